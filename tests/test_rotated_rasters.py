"""Rasters whose geotransform has rotation or shear terms keep every pixel (issue 14): the model's
UTM grid covers their whole footprint, results come back on their own grid, and an extent works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform as transform_points
from rasterio.windows import Window

from satvision.core.raster import Grid, extent_window, open_raster, write_geotiff
from satvision.core.resampling import model_grid, needs_resampling
from satvision.inference.predictor import Predictor
from satvision.inference.segment_engine import MASK_NODATA, PROBABILITY_NODATA, SegmentationSettings, segment_raster
from satvision.models.architectures import build_network

BANDS = ["B2", "B3", "B4", "B8"]
CROP = Window(600, 700, 160, 120)  # lagoon, channels and fields of the real scene


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    from conftest import tiny_unet_card

    torch.manual_seed(0)
    card = tiny_unet_card(tiling={"tile_size": 64, "overlap": 16})
    return Predictor(build_network(card), card, "cpu")


def rotated_transform(origin: tuple[float, float], angle: float, shear: float = 0.0, pixel: float = 10.0) -> Affine:
    return Affine.translation(*origin) * Affine.rotation(angle) * Affine.shear(shear, 0.0) * Affine.scale(pixel, -pixel)


def rotated_copy(scene: Path, path: Path, angle: float, shear: float = 0.0) -> Path:
    """The scene's CROP with the same pixels, placed on a rotated (and sheared) grid at its corner."""
    with open_raster(scene) as source:
        values = source.read(window=CROP)
        origin = source.window_transform(CROP) * (0, 0)
        crs = source.crs
    values[:, :15, :20] = 0  # nodata, which must stay nodata
    grid = Grid(crs, rotated_transform(origin, angle, shear), CROP.width, CROP.height)
    with write_geotiff(path, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    return path


@pytest.mark.parametrize(
    "angle, shear",
    [(30.0, 0.0), (-120.0, 15.0)],  # rotated; rotated past 90° (rows run north) and sheared
)
def test_a_rotated_raster_keeps_its_pixels(predictor, scene, tmp_path, angle, shear):
    raster = rotated_copy(scene, tmp_path / "rotated.tif", angle, shear)
    probability_path, mask_path = tmp_path / "probability.tif", tmp_path / "mask.tif"

    run = segment_raster(raster, predictor, probability_path, mask_path, SegmentationSettings(device="cpu"))

    assert run.resampled  # the model sees a north-up grid
    with open_raster(raster) as source, open_raster(probability_path) as probability, open_raster(mask_path) as mask:
        assert (probability.crs, probability.transform, probability.shape) == (source.crs, source.transform, source.shape)
        valid = np.all(source.read_masks() > 0, axis=0)
        values = probability.read(1)
        classes = mask.read(1)
    assert 0.95 < valid.mean() < 1.0
    lost = int((values[valid] == PROBABILITY_NODATA).sum())
    assert lost == 0, f"{lost} of the raster's {int(valid.sum())} valid pixels came out nodata"
    assert ((values[valid] >= 0) & (values[valid] <= 1)).all()
    assert ((classes[valid] == 0) | (classes[valid] == 1)).all()
    assert (values[~valid] == PROBABILITY_NODATA).all() and (classes[~valid] == MASK_NODATA).all()


@pytest.mark.parametrize("crs, origin, pixel", [("EPSG:32618", (435730.0, 4179460.0), 10.0), ("EPSG:4326", (-75.7, 37.7), 1e-4)])
@pytest.mark.parametrize("angle, shear", [(30.0, 0.0), (-120.0, 0.0), (90.0, 0.0), (12.0, 15.0)])
def test_the_model_grid_covers_the_whole_rotated_footprint(crs, origin, pixel, angle, shear):
    grid = Grid(CRS.from_string(crs), rotated_transform(origin, angle, shear, pixel), 300, 200)
    assert needs_resampling(grid, 10.0)

    model = model_grid(grid, 10.0)

    assert model.transform.b == model.transform.d == 0 and model.pixel_size == pytest.approx((10.0, 10.0))
    # Every pixel of the raster's edges (centres and outer corners) lies inside the model grid.
    edge = [(column, row) for column in np.arange(0, 300.5, 0.5) for row in (0, 0.5, 199.5, 200)]
    edge += [(column, row) for row in np.arange(0, 200.5, 0.5) for column in (0, 0.5, 299.5, 300)]
    xs, ys = zip(*(grid.transform * point for point in edge))
    xs, ys = transform_points(grid.crs, model.crs, xs, ys)
    columns, rows = zip(*(~model.transform * point for point in zip(xs, ys)))
    assert min(columns) >= 0 and max(columns) <= model.width
    assert min(rows) >= 0 and max(rows) <= model.height


@pytest.mark.parametrize("angle", [30.0, 90.0, 150.0])
def test_an_extent_on_a_rotated_raster_gives_the_pixels_under_it(tmp_path, angle):
    origin = (435730.0, 4179460.0)
    grid = Grid(CRS.from_epsg(32618), rotated_transform(origin, angle), 300, 200)
    path = tmp_path / "rotated.tif"
    with write_geotiff(path, grid, 1, "uint8", nodata=0) as writer:
        writer.write(np.ones((1, 200, 300), np.uint8))
    centre_x, centre_y = grid.transform * (150, 100)
    bounds = (centre_x - 400, centre_y - 300, centre_x + 400, centre_y + 300)

    with open_raster(path) as dataset:
        window, window_grid = extent_window(dataset, bounds)

    assert window_grid.transform == grid.transform * Affine.translation(window.col_off, window.row_off)
    corners = [(bounds[0], bounds[3]), (bounds[2], bounds[3]), (bounds[2], bounds[1]), (bounds[0], bounds[1])]
    for column, row in (~window_grid.transform * corner for corner in corners):
        # the window holds the whole extent (but for the partial pixels at its far edges, as for a north-up raster)
        assert -1e-6 <= column <= window.width + 1 and -1e-6 <= row <= window.height + 1
    # ... and no more than the extent's footprint needs (its diagonal over a pixel, plus rounding).
    assert window.width * window.height <= (1000 / 10 + 2) ** 2


def test_warping_back_in_smaller_blocks_gives_the_same_rasters(predictor, scene, tmp_path, monkeypatch):
    """The nearest fill of edge pixels reads each block with a halo: block boundaries leave no trace."""
    from satvision.inference import segment_engine as segment

    raster = rotated_copy(scene, tmp_path / "rotated.tif", -120.0, 15.0)
    outputs = {}
    for rows in (segment.WARP_BLOCK_ROWS, 7):  # one block; 18 blocks of 7 rows
        monkeypatch.setattr(segment, "WARP_BLOCK_ROWS", rows)
        probability_path, mask_path = tmp_path / f"probability{rows}.tif", tmp_path / f"mask{rows}.tif"
        segment_raster(raster, predictor, probability_path, mask_path, SegmentationSettings(device="cpu"))
        with open_raster(probability_path) as probability, open_raster(mask_path) as mask:
            outputs[rows] = (probability.read(1), mask.read(1))
    (whole, whole_mask), (blocks, blocks_mask) = outputs.values()
    np.testing.assert_array_equal(whole, blocks)
    np.testing.assert_array_equal(whole_mask, blocks_mask)


def test_missing_pixels_take_the_nearest_known_value_within_the_radius():
    from satvision.inference.segment_engine import fill_from_nearest

    rng = np.random.default_rng(14)
    values = np.arange(60 * 50, dtype=np.float32).reshape(60, 50)  # every value names its pixel
    known = rng.random((60, 50)) < 0.03
    wanted = rng.random((60, 50)) < 0.8

    filled, now_known = fill_from_nearest(values, known, wanted, 3)

    known_rows, known_columns = np.nonzero(known)
    assert (filled[known] == values[known]).all() and now_known[known].all()
    for row, column in zip(*np.nonzero(~known)):
        distances = np.hypot(known_rows - row, known_columns - column)
        nearest = distances.min()
        if wanted[row, column] and nearest <= 3:
            assert now_known[row, column]
            source = int(filled[row, column])
            assert np.hypot(source // 50 - row, source % 50 - column) == nearest  # a nearest known pixel
        else:  # not wanted, or nothing known within 3 px: left alone
            assert not now_known[row, column] and filled[row, column] == values[row, column]
