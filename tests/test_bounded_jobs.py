"""Issue 14: memory and time bounded or refused up front.

A VRT that declares a huge raster (200,000 × 200,000 px, nodata everywhere except one small real
GeoTIFF placed in it) stands for a mosaic nobody should process whole: the job is refused before
any tile with its estimate; a long thin strip of it is processed with buffers that do not grow
with its width; batch and tile sizes that cannot work are refused with the parameter to change.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from tests_helpers import HUGE, NORTH, PATCH, PATCH_X, PIXEL, WEST, build_huge_vrt

from satvision.core.errors import SatVisionError
from satvision.core.raster import open_raster
from satvision.core.tiling import MAX_BAND_WIDTH, StripBlender, TileLayout
from satvision.inference.classify_engine import ClassificationSettings, classify_raster
from satvision.inference.limits import MAX_HOURS_VARIABLE
from satvision.inference.predictor import Predictor
from satvision.inference.segment_engine import PROBABILITY_NODATA, SegmentationSettings, segment_raster
from satvision.models.architectures import build_network


@pytest.fixture(scope="module")
def unet_predictor() -> Predictor:
    from conftest import tiny_unet_card

    torch.manual_seed(0)
    card = tiny_unet_card()  # 256 px tiles, overlap 32, encoder depth 3 (tiles: multiples of 8)
    return Predictor(build_network(card), card, "cpu")


@pytest.fixture(scope="module")
def classifier_predictor() -> Predictor:
    from conftest import tiny_classifier_card

    torch.manual_seed(0)
    card = tiny_classifier_card()  # ViT reading 16 px
    return Predictor(build_network(card), card, "cpu")


@pytest.fixture(scope="module")
def huge_vrt(tmp_path_factory) -> Path:
    return build_huge_vrt(tmp_path_factory.mktemp("huge"))


def strip_bounds(width: int, height: int = 256, left: int = 0) -> tuple[float, float, float, float]:
    """``width × height`` px of the huge VRT from its top row and column ``left``, as an extent."""
    return WEST + left * PIXEL, NORTH - height * PIXEL, WEST + (left + width) * PIXEL, NORTH


def test_a_huge_job_is_refused_up_front_with_its_estimate(unet_predictor, huge_vrt, tmp_path, monkeypatch):
    """625 million 8 px tiles: over the default 12 h limit at anything above 0.07 ms per tile (the
    tiny UNet takes about 1 ms per tile in batches of one on 2 CPU cores)."""
    monkeypatch.delenv(MAX_HOURS_VARIABLE, raising=False)  # the default limit
    started = time.perf_counter()
    with pytest.raises(SatVisionError) as refusal:
        segment_raster(huge_vrt, unet_predictor, tmp_path / "p.tif", tmp_path / "m.tif",
                       SegmentationSettings(tile_size=8, overlap=0, batch_size=1, device="cpu"))
    message = str(refusal.value)
    assert "625,000,000 tiles" in message  # (200,000 / 8)²
    assert "Limit to extent" in message and "on cpu" in message and MAX_HOURS_VARIABLE in message
    assert time.perf_counter() - started < 15
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_job_limit_has_an_explicit_override(unet_predictor, huge_vrt, tmp_path, monkeypatch):
    """16,000 tiles of 8 px (a 4,000 × 256 px strip): refused under a limit of 36 ms from the
    environment, run when the setting says no limit (0) or a limit it fits in."""
    settings = SegmentationSettings(tile_size=8, overlap=0, device="cpu", bounds=strip_bounds(4000))
    monkeypatch.setenv(MAX_HOURS_VARIABLE, "0.00001")
    with pytest.raises(SatVisionError, match=r"This job has 16,000 tiles .*the limit is 1e-05 h"):
        segment_raster(huge_vrt, unet_predictor, tmp_path / "p.tif", tmp_path / "m.tif", settings)
    assert list(tmp_path.iterdir()) == []
    for hours in (0, 1000):
        run = segment_raster(huge_vrt, unet_predictor, tmp_path / "p.tif", tmp_path / "m.tif",
                             replace(settings, max_job_hours=hours))
        assert run.tile_count == 16_000 == run.skipped_tiles
    monkeypatch.setenv(MAX_HOURS_VARIABLE, "a lot")
    with pytest.raises(SatVisionError, match="not a number of hours"):
        segment_raster(huge_vrt, unet_predictor, tmp_path / "p.tif", tmp_path / "m.tif", settings)


def test_a_long_thin_strip_runs_with_buffers_independent_of_its_width(unet_predictor, huge_vrt, tmp_path):
    """20,000 and 200,000 px wide strips of the huge VRT (the real patch inside the wider one):
    the engine's peak buffer does not grow, stays under the bound documented in
    inference/segment_engine.py, and far below one full-width strip; across the band boundary the
    probabilities are those of a one-band run of the same tiles (no seam)."""
    peaks = []
    for width in (20_000, HUGE):
        probability, mask = tmp_path / f"p{width}.tif", tmp_path / f"m{width}.tif"
        run = segment_raster(huge_vrt, unet_predictor, probability, mask,
                             SegmentationSettings(device="cpu", bounds=strip_bounds(width), max_job_hours=0))
        peaks.append(run.peak_buffer_bytes)
        stride = 256 - 32
        assert run.tile_count == -(-(width - 256) // stride) + 1
        with open_raster(probability) as written:
            assert (written.width, written.height) == (width, 256)
            real = written.read(1, window=rasterio.windows.Window(PATCH_X, 0, PATCH, PATCH)) if width == HUGE else None
            around = written.read(1, window=rasterio.windows.Window(0, 0, 2000, 256))
        assert (around == PROBABILITY_NODATA).all()  # nodata stays nodata
        if real is not None:  # the model ran on the real patch
            assert ((real >= 0) & (real <= 1)).all()
            assert run.skipped_tiles < run.tile_count
    tile, bands, batch, span = 256, 4, 4, MAX_BAND_WIDTH + 2 * 256
    bound = 2 * tile * span * (4 * bands + 1) + 8 * (tile + 224 * (batch + 1)) * span + batch * tile * tile * (4 * bands + 1)
    assert peaks[0] <= bound and peaks[1] <= bound, (peaks, bound)
    assert peaks[1] <= 1.02 * peaks[0]  # 10× wider, same buffers (band spans differ by a few tile columns)
    assert peaks[1] < HUGE * 256 * 4 * bands  # less than one full-width strip of the input
    # One band over exactly the huge layout's tiles 730–739 (origins 730 × 224 …; 2,272 px wide, so
    # no tile is shifted at its edge) blends the patch as the 200,000 px run did across its bands.
    left = 730 * 224
    assert left < PATCH_X < MAX_BAND_WIDTH * 10 < PATCH_X + PATCH < left + 2272
    segment_raster(huge_vrt, unet_predictor, tmp_path / "one.tif", tmp_path / "one_mask.tif",
                   SegmentationSettings(device="cpu", bounds=strip_bounds(2272, left=left)))
    with open_raster(tmp_path / "one.tif") as one_band:
        reference = one_band.read(1, window=rasterio.windows.Window(PATCH_X - left, 0, PATCH, PATCH))
    np.testing.assert_allclose(real, reference, atol=1e-5)


def test_column_bands_blend_exactly_like_one_full_width_pass():
    """The seam rule: every pixel gets the same weighted mean whether the layout runs whole or in bands."""
    layout = TileLayout(1000, 300, 64, 16)
    rng = np.random.default_rng(3)
    predictions = {(tile.x, tile.y): rng.random((64, 64), dtype=np.float32) for tile in layout.tiles()}
    valid = np.ones((64, 64), bool)

    def assemble(bands) -> np.ndarray:
        out = np.full((300, 1000), np.nan, dtype=np.float32)
        for band in bands:
            blender = StripBlender(layout, 3, band)
            for tile in (layout.band_tiles(band) if band else layout.tiles()):
                blender.add(tile, predictions[(tile.x, tile.y)], valid)
                if tile.last_in_row:
                    first, blended, covered = blender.finish_row(tile.row_index)
                    left, start, stop = (band.left, band.start, band.stop) if band else (0, 0, 1000)
                    out[first : first + blended.shape[0], start:stop] = blended[:, start - left : stop - left]
        return out

    banded = layout.bands(max_width=256)
    assert len(banded) == 4
    whole = assemble([None])
    np.testing.assert_array_equal(assemble(banded), whole)
    assert not np.isnan(whole).any()


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_any_tile(unet_predictor, huge_vrt, tmp_path):
    started = time.perf_counter()
    with pytest.raises(SatVisionError) as refusal:
        segment_raster(huge_vrt, unet_predictor, tmp_path / "p.tif", tmp_path / "m.tif",
                       SegmentationSettings(batch_size=100_000, device="cpu", bounds=strip_bounds(2000)))
    message = str(refusal.value)
    assert "Batch size 100000" in message and "Set Batch size to" in message and "available" in message
    suggested = int(message.split("Set Batch size to ")[1].split()[0])
    assert 1 <= suggested < 100_000
    assert time.perf_counter() - started < 5 and list(tmp_path.iterdir()) == []
    # the suggested batch passes the same check
    segment_raster(huge_vrt, unet_predictor, tmp_path / "p.tif", tmp_path / "m.tif",
                   SegmentationSettings(batch_size=min(suggested, 64), device="cpu", bounds=strip_bounds(512)))


@pytest.mark.parametrize("tile_size", [1, 100])
def test_a_tile_size_that_does_not_fit_the_network_is_refused(unet_predictor, huge_vrt, tmp_path, tile_size):
    """The tiny UNet has 3 encoder stages: tiles must be multiples of 8 (1 px and 100 px are not)."""
    with pytest.raises(SatVisionError) as refusal:
        segment_raster(huge_vrt, unet_predictor, tmp_path / "p.tif", tmp_path / "m.tif",
                       SegmentationSettings(tile_size=tile_size, overlap=0, device="cpu", bounds=strip_bounds(512)))
    message = str(refusal.value)
    assert f"Tile size {tile_size} px" in message and "multiple of 8 px" in message
    suggested = int(message.split("Set Tile size to ")[1].split()[0])
    assert suggested % 8 == 0 and suggested >= tile_size
    assert list(tmp_path.iterdir()) == []
    segment_raster(huge_vrt, unet_predictor, tmp_path / "p.tif", tmp_path / "m.tif",
                   SegmentationSettings(tile_size=suggested, overlap=0, device="cpu", bounds=strip_bounds(512)))


def test_classification_refuses_tiny_tiles_huge_batches_and_huge_jobs(classifier_predictor, huge_vrt, monkeypatch):
    monkeypatch.delenv(MAX_HOURS_VARIABLE, raising=False)
    tiles: list = []
    with pytest.raises(SatVisionError, match=r"Tile size 1 px is too small.*Set Tile size to 4 px"):
        classify_raster(huge_vrt, classifier_predictor, tiles.extend, ClassificationSettings(tile_size=1, device="cpu"))
    with pytest.raises(SatVisionError, match=r"Batch size 100000 .*Set Batch size to \d+"):
        classify_raster(huge_vrt, classifier_predictor, tiles.extend,
                        ClassificationSettings(tile_size=64, batch_size=100_000, device="cpu"))
    started = time.perf_counter()
    with pytest.raises(SatVisionError, match=r"This job has 2,500,000,000 tiles .*Limit to extent"):  # > 0.017 ms per tile
        classify_raster(huge_vrt, classifier_predictor, tiles.extend,
                        ClassificationSettings(tile_size=4, batch_size=4, device="cpu"))
    assert time.perf_counter() - started < 15
    assert tiles == []  # no tile reached the sink


def test_a_wide_classification_strip_is_read_in_bounded_chunks(classifier_predictor, huge_vrt):
    """A 200,000 px wide row of tiles: the same buffers as a 20,000 px one (bounded by the chunk,
    not the width); every tile comes out once, in grid order, the real patch classified."""
    settings = ClassificationSettings(device="cpu", bounds=strip_bounds(20_000, 16), max_job_hours=0)
    narrow = classify_raster(huge_vrt, classifier_predictor, lambda tiles: None, settings)
    tiles: list = []
    run = classify_raster(huge_vrt, classifier_predictor, tiles.extend, replace(settings, bounds=strip_bounds(HUGE, 16)))
    assert 0 < run.peak_buffer_bytes == narrow.peak_buffer_bytes
    assert run.peak_buffer_bytes <= 2 * 16 * (MAX_BAND_WIDTH + 16) * (4 * 4 + 1) + 32 * 16 * 16 * (4 * 4 + 1)
    assert run.tile_count == HUGE // 16 == len(tiles)
    assert [tile.column for tile in tiles] == list(range(HUGE // 16))
    # the tiles at least half on the real patch (its last one holds 8 of its 16 columns)
    classified = [tile.column for tile in tiles if not tile.skipped]
    assert classified == [column for column in range(HUGE // 16)
                          if min(column * 16 + 16, PATCH_X + PATCH) - max(column * 16, PATCH_X) >= 8]


@pytest.mark.parametrize(("parameter", "value", "expected"), [
    ("BATCH_SIZE", 100_000, "Set Batch size to"),
    ("TILE_SIZE", 1, "Set Tile size to"),
])
def test_segmentwater_in_qgis_refuses_them_with_a_message_not_a_crash(plugin, huge_vrt, tmp_path, parameter, value, expected):
    """Through processing.run (as QGIS desktop runs it): a QgsProcessingException with the fix, no output."""
    import processing
    from conftest import tiny_unet_card
    from qgis.core import QgsProcessingException

    from satvision.models.modelfile import save_model

    torch.manual_seed(0)
    card = tiny_unet_card()
    model = save_model(tmp_path / "tiny.safetensors", build_network(card).state_dict(), card)
    output = tmp_path / "out" / "water.gpkg"
    output.parent.mkdir()
    west, south, east, north = strip_bounds(2000)
    with pytest.raises(QgsProcessingException, match=expected):
        processing.run("satvision:segmentwater", {
            "INPUT": str(huge_vrt), "MODEL": str(model), "OUTPUT": str(output), "OVERLAP": 0,
            "EXTENT": f"{west},{east},{south},{north} [EPSG:32618]", parameter: value,
        })
    assert list(output.parent.iterdir()) == []


def test_a_whole_sentinel2_tile_passes_the_default_limit_with_the_bundled_models(monkeypatch):
    """10,980 px square with the bundled models' own tiling (the classifier's 29,584 tiles are timed)."""
    from satvision.inference.classify_engine import grid_origins
    from satvision.inference.limits import check_job
    from satvision.models.catalog import resolve_model
    from satvision.models.modelfile import load_model

    monkeypatch.delenv(MAX_HOURS_VARIABLE, raising=False)
    side = 10_980
    for task, model in (("segmentation", None), ("segmentation", "water-default-6band.safetensors"),
                        ("classification", None)):
        network, card = load_model(resolve_model(model, task), task=task)
        predictor = Predictor(network, card, "cpu")
        tile, overlap = card.tiling.tile_size, card.tiling.overlap
        if task == "segmentation":
            count = TileLayout(side, side, tile, overlap).count
            assert count == math.ceil((side - overlap) / (tile - overlap)) ** 2  # 128 px tiles, 16 overlap: 98²
        else:
            count = len(grid_origins(side, tile, tile)) ** 2
            assert count == 172 * 172
        check_job(predictor, count, tile, 4 if task == "segmentation" else 32, None)  # no refusal
