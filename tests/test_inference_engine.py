"""The tiled inference engine: seams, nodata, bounded memory, padding, georeferencing, cancellation."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import RecordingFeedback
from rasterio.transform import from_origin
from rasterio.warp import calculate_default_transform, reproject

from satvision.core.errors import OperationCancelled, SatVisionError
from satvision.core.raster import Grid, open_raster, write_geotiff
from satvision.core.tiling import StripBlender, TileLayout, blend_window, tile_origins
from satvision.inference.predictor import Predictor
from satvision.inference.segment_engine import SegmentationSettings, segment_raster
from satvision.models.architectures import build_network

BANDS = ["B2", "B3", "B4", "B8"]


@pytest.fixture(scope="module")
def predictor():
    from conftest import tiny_unet_card

    torch.manual_seed(0)
    card = tiny_unet_card(tiling={"tile_size": 64, "overlap": 16})
    return Predictor(build_network(card), card, "cpu")


def synthetic_raster(path: Path, width: int, height: int, *, crs: int = 32618, pixel: float = 10.0, nodata_box=None) -> Path:
    rng = np.random.default_rng(width * 7 + height)
    values = rng.integers(300, 3000, size=(4, height, width), dtype=np.uint16)
    values[:, : height // 3, : width // 2] = [[[600]], [[900]], [[500]], [[200]]]  # a "water" block
    if nodata_box is not None:
        rows, columns = nodata_box
        values[:, rows, columns] = 0
    grid = Grid(rasterio.crs.CRS.from_epsg(crs), from_origin(435730, 4179460, pixel, pixel), width, height)
    with write_geotiff(path, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    return path


def test_tile_origins_cover_the_axis_and_end_at_the_edge():
    assert tile_origins(1000, 256, 32) == [0, 224, 448, 672, 744]
    assert tile_origins(200, 256, 32) == [0]
    for length in (256, 257, 511, 1933):
        origins = tile_origins(length, 256, 64)
        assert origins[0] == 0 and origins[-1] + 256 >= length
        assert all(b - a <= 256 - 64 for a, b in zip(origins, origins[1:]))


def test_blend_window_is_smooth_symmetric_and_positive():
    window = blend_window(64, 16)
    assert window.shape == (64, 64) and window.min() > 0 and window.max() == 1.0
    np.testing.assert_allclose(window, window.T)
    np.testing.assert_allclose(window, window[::-1, ::-1])
    assert np.all(np.diff(window[32, :17]) > 0)  # rising across the overlap


def test_strip_blender_reproduces_a_constant_and_weighted_means():
    layout = TileLayout(150, 130, 64, 16)
    blender = StripBlender(layout, batch_size=3)
    outputs = np.full((130, 150), np.nan, dtype=np.float32)
    for tile in layout.tiles():
        truth = np.fromfunction(lambda r, c: (r + tile.y) * 0.001 + (c + tile.x) * 0.002, (64, 64), dtype=np.float32)
        blender.add(tile, truth, np.ones((64, 64), bool))
        if tile.last_in_row:
            first, blended, covered = blender.finish_row(tile.row_index)
            assert covered.all()
            outputs[first : first + blended.shape[0]] = blended
    expected = np.fromfunction(lambda r, c: r * 0.001 + c * 0.002, (130, 150), dtype=np.float32)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)  # consistent tiles blend to the same field


def _tiled_and_one_pass(predictor, raster: Path, tmp_path: Path, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    with open_raster(raster) as dataset:
        values = dataset.read().astype(np.float32)
    one_pass = predictor.class_probability(values[None], np.ones((1, *values.shape[1:]), bool), 1)[0]
    settings = SegmentationSettings(tile_size=128, overlap=overlap, batch_size=3, device="cpu")
    segment_raster(raster, predictor, tmp_path / f"p{overlap}.tif", tmp_path / f"m{overlap}.tif", settings)
    with open_raster(tmp_path / f"p{overlap}.tif") as dataset:
        return dataset.read(1), one_pass


def _predictor_for(params: dict) -> Predictor:
    from conftest import tiny_unet_card

    torch.manual_seed(0)
    card = tiny_unet_card(architecture={"id": "unet", "params": params}, tiling={"tile_size": 128, "overlap": 32})
    return Predictor(build_network(card), card, "cpu")


def test_stitching_is_exact_when_the_receptive_field_fits_in_the_overlap(tmp_path):
    """Seam test, part 1: a shallow UNet (receptive field under the 32 px overlap) tiled in
    128 px tiles gives the one-pass result: max difference ≤ 0.02, mean ≤ 0.001."""
    predictor = _predictor_for({"encoder_name": "resnet18", "encoder_depth": 1, "decoder_channels": [16]})
    tiled, one_pass = _tiled_and_one_pass(predictor, synthetic_raster(tmp_path / "r.tif", 352, 288), tmp_path, 32)
    error = np.abs(tiled - one_pass)
    assert error.max() <= 0.02 and error.mean() <= 0.001


def test_blending_hides_tile_borders_of_a_deep_network(tmp_path):
    """Seam test, part 2: a ResNet18 UNet whose receptive field exceeds the overlap. Tiled and
    blended vs one pass: mean difference ≤ 0.02, 99th percentile ≤ 0.15, and under half the
    error of hard tiling without overlap."""
    predictor = _predictor_for({"encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": [32, 16, 8]})
    raster = synthetic_raster(tmp_path / "r.tif", 352, 288)
    blended, one_pass = _tiled_and_one_pass(predictor, raster, tmp_path, 32)
    hard, _ = _tiled_and_one_pass(predictor, raster, tmp_path, 0)
    blended_error, hard_error = np.abs(blended - one_pass), np.abs(hard - one_pass)
    assert blended_error.mean() <= 0.02 and np.percentile(blended_error, 99) <= 0.15
    assert blended_error.mean() < 0.5 * hard_error.mean()


def test_outputs_keep_crs_transform_and_mark_nodata(predictor, tmp_path):
    raster = synthetic_raster(tmp_path / "r.tif", 150, 130, nodata_box=(slice(60, 100), slice(20, 90)))
    settings = SegmentationSettings(tile_size=64, overlap=16, batch_size=2, device="cpu", threshold=0.0)
    run = segment_raster(raster, predictor, tmp_path / "p.tif", tmp_path / "m.tif", settings)
    assert not run.resampled and run.tile_count == 9
    with open_raster(raster) as source, open_raster(tmp_path / "p.tif") as probability, open_raster(tmp_path / "m.tif") as mask:
        for output in (probability, mask):
            assert output.crs == source.crs and output.transform == source.transform
            assert (output.width, output.height) == (150, 130)
        p, m = probability.read(1), mask.read(1)
    nodata = np.zeros((130, 150), bool)
    nodata[60:100, 20:90] = True
    assert (p[nodata] == -1).all() and (m[nodata] == 255).all()  # threshold 0 would call every valid pixel water
    assert ((p[~nodata] >= 0) & (p[~nodata] <= 1)).all() and (m[~nodata] == 1).all()


def test_tiles_without_data_are_skipped_and_a_nodata_raster_gives_only_nodata(predictor, tmp_path):
    raster = synthetic_raster(tmp_path / "r.tif", 130, 130, nodata_box=(slice(0, 130), slice(0, 130)))
    run = segment_raster(raster, predictor, tmp_path / "p.tif", tmp_path / "m.tif", SegmentationSettings(tile_size=64, overlap=16, device="cpu"))
    assert run.skipped_tiles == run.tile_count == 9
    with open_raster(tmp_path / "m.tif") as mask:
        assert (mask.read(1) == 255).all()


@pytest.mark.parametrize(("width", "height"), [(40, 25), (64, 64), (65, 130), (199, 71)])
def test_small_and_odd_sized_rasters_are_padded_not_cropped(predictor, tmp_path, width, height):
    raster = synthetic_raster(tmp_path / "r.tif", width, height)
    segment_raster(raster, predictor, tmp_path / "p.tif", tmp_path / "m.tif", SegmentationSettings(tile_size=64, overlap=16, device="cpu"))
    with open_raster(tmp_path / "p.tif") as probability:
        p = probability.read(1)
    assert p.shape == (height, width) and (p >= 0).all()


def test_memory_is_bounded_by_the_strip_not_the_raster(predictor, tmp_path):
    """numpy allocations (tracked by tracemalloc) stay flat when the raster gets 4× taller."""
    peaks, buffers = [], []
    for height in (256, 1024):
        raster = synthetic_raster(tmp_path / f"r{height}.tif", 256, height)
        tracemalloc.start()
        run = segment_raster(raster, predictor, tmp_path / f"p{height}.tif", tmp_path / f"m{height}.tif",
                             SegmentationSettings(tile_size=64, overlap=16, batch_size=4, device="cpu"))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        buffers.append(run.peak_buffer_bytes)
    assert buffers[0] == buffers[1]
    assert peaks[1] < 1.2 * peaks[0], peaks
    assert peaks[1] < 256 * 1024 * 4 * 4  # below one full-raster float32 copy of the input


def test_geographic_rasters_are_processed_in_utm_and_returned_on_their_grid(predictor, tmp_path):
    utm = synthetic_raster(tmp_path / "utm.tif", 160, 120, nodata_box=(slice(0, 120), slice(140, 160)))
    with open_raster(utm) as source:
        transform, width, height = calculate_default_transform(source.crs, "EPSG:4326", source.width, source.height, *source.bounds)
        values = np.zeros((4, height, width), np.uint16)
        reproject(source.read(), values, src_transform=source.transform, src_crs=source.crs, dst_transform=transform,
                  dst_crs="EPSG:4326", src_nodata=0, dst_nodata=0)
    geographic = tmp_path / "geo.tif"
    grid = Grid(rasterio.crs.CRS.from_epsg(4326), transform, width, height)
    with write_geotiff(geographic, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    run = segment_raster(geographic, predictor, tmp_path / "p.tif", tmp_path / "m.tif", SegmentationSettings(device="cpu", threshold=0.0))
    assert run.resampled and "EPSG:32618" in run.notes[0]
    with open_raster(geographic) as source, open_raster(tmp_path / "m.tif") as mask:
        assert mask.crs == source.crs and mask.transform == source.transform and mask.shape == source.shape
        valid = source.read_masks(1) > 0
        m = mask.read(1)
    assert (m[~valid] == 255).all()  # nodata never becomes water, also after warping
    assert (m[valid] != 255).mean() > 0.99


def test_a_coarser_raster_is_brought_to_the_models_gsd(predictor, tmp_path):
    coarse = synthetic_raster(tmp_path / "coarse.tif", 80, 60, pixel=20.0)
    run = segment_raster(coarse, predictor, tmp_path / "p.tif", tmp_path / "m.tif", SegmentationSettings(device="cpu"))
    assert run.resampled and run.tile_count == TileLayout(160, 120, 64, 16).count  # 80×60 px at 20 m = 160×120 at 10 m
    with open_raster(tmp_path / "p.tif") as probability:
        assert probability.res == (20.0, 20.0) and probability.shape == (60, 80)


def test_extent_limits_the_output_grid(predictor, tmp_path):
    raster = synthetic_raster(tmp_path / "r.tif", 200, 150)
    west, north = 435730 + 50 * 10, 4179460 - 40 * 10
    bounds = (west, north - 70 * 10, west + 90 * 10, north)
    segment_raster(raster, predictor, tmp_path / "p.tif", tmp_path / "m.tif", SegmentationSettings(device="cpu", bounds=bounds))
    with open_raster(tmp_path / "p.tif") as probability:
        assert probability.shape == (70, 90) and probability.transform.c == west and probability.transform.f == north
    with pytest.raises(SatVisionError, match="extent is empty"):
        segment_raster(raster, predictor, tmp_path / "p.tif", tmp_path / "m.tif", SegmentationSettings(bounds=(west, north, west, north)))
    with pytest.raises(SatVisionError, match="does not overlap"):
        segment_raster(raster, predictor, tmp_path / "p.tif", tmp_path / "m.tif", SegmentationSettings(bounds=(0, 0, 10, 10)))


def test_cancellation_leaves_no_files(predictor, tmp_path):
    raster = synthetic_raster(tmp_path / "in" / "r.tif", 200, 200)
    calls = []
    with pytest.raises(OperationCancelled):
        segment_raster(raster, predictor, tmp_path / "out" / "p.tif", tmp_path / "out" / "m.tif",
                       SegmentationSettings(tile_size=64, overlap=16, batch_size=2, device="cpu"),
                       feedback=RecordingFeedback(fractions=calls, cancel_when=lambda: len(calls) >= 2))
    assert list((tmp_path / "out").iterdir()) == []
