"""Issue 15: two bundled water models (6-band with SWIR, 4-band without), chosen automatically.

Tiny real random-weight UNets stand in for the bundled models: they are written to a temporary
folder that is passed as the bundled folder, so the choice is tested whether or not the real
6-band model is installed yet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import RecordingFeedback, tiny_unet_card
from rasterio.transform import from_origin

from satvision.core.errors import SatVisionError
from satvision.models.catalog import (
    BUNDLED_MODELS_DIR,
    DEFAULT_WATER_MODELS,
    default_water_candidates,
    default_water_model,
    list_models,
)
from satvision.models.modelfile import read_card

FOUR = ["B2", "B3", "B4", "B8"]
SIX = ["B2", "B3", "B4", "B8", "B11", "B12"]
SIX_BAND_FILE, FOUR_BAND_FILE = DEFAULT_WATER_MODELS


def save_tiny_unet(path: Path, bands: list[str]) -> Path:
    import torch

    from satvision.models.architectures import build_network
    from satvision.models.modelfile import save_model

    torch.manual_seed(0)
    count = len(bands)
    card = tiny_unet_card(
        name=f"tiny-water-{count}band", bands=bands,
        normalisation={"reflectance_scale": 10000.0, "mean": [0.1] * count, "std": [0.05] * count},
    )
    return save_model(path, build_network(card).state_dict(), card)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> Path:
    """A bundled-models folder with both defaults (tiny models)."""
    folder = tmp_path_factory.mktemp("bundled")
    save_tiny_unet(folder / FOUR_BAND_FILE, FOUR)
    save_tiny_unet(folder / SIX_BAND_FILE, SIX)
    return folder


@pytest.fixture(scope="module")
def four_only(tmp_path_factory) -> Path:
    """A bundled-models folder as shipped before the 6-band model is dropped in."""
    folder = tmp_path_factory.mktemp("four_only")
    save_tiny_unet(folder / FOUR_BAND_FILE, FOUR)
    return folder


@pytest.mark.parametrize(
    ("descriptions", "positions", "chosen", "why"),
    [
        (SIX, None, SIX_BAND_FILE, "6-band (B2, B3, B4, B8, B11, B12) (the raster has B11 and B12)"),
        (["B02", "B03", "B04", "B08", "B11", "B12"], None, SIX_BAND_FILE, "the raster has B11 and B12"),
        (["blue", "green", "red", "nir", "swir16", "swir22"], None, SIX_BAND_FILE, "6-band"),  # STAC common names
        (["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12", "SCL"], None, SIX_BAND_FILE, "6-band"),
        (FOUR, None, FOUR_BAND_FILE, "4-band (B2, B3, B4, B8) (the raster has no B11/B12 band: fetch them or stack them, see README"),
        (FOUR, None, FOUR_BAND_FILE, "without SWIR, fresh burn scars and dark bare soil look like water"),  # measured: README
        (["B2", "B3", "B4", "B8", "B11"], None, FOUR_BAND_FILE, "the raster has no B12 band"),
        ([None] * 6, None, FOUR_BAND_FILE, "the raster has no B2/B3/B4/B8/B11/B12 band"),  # its check then names the fix
        ([None] * 6, [1, 2, 3, 4, 5, 6], SIX_BAND_FILE, "as the Bands parameter gives 6 raster bands"),
        ([None] * 6, [3, 2, 1, 4], FOUR_BAND_FILE, "as the Bands parameter gives 4 raster bands"),
        (SIX, [1, 2, 3, 4], FOUR_BAND_FILE, "4-band"),  # explicit positions win over descriptions
        (["B2", "B3", "B4", "B8", "B11_20m", "B12_20m"], None, FOUR_BAND_FILE,  # SWIR under other names: named, not guessed
         "the raster has no B11/B12 band: fetch them or stack them"),
        (["B2", "B3", "B4", "B8", "B11_20m", "B12_20m"], None, FOUR_BAND_FILE,
         "the raster seems to have them under other names: give Bands 1,2,3,4,5,6 (*_20m) to run the 6-band model)"),
        ([f"{date}_{band}" for date in "AB" for band in SIX], None, FOUR_BAND_FILE,
         "give Bands 1,2,3,4,5,6 (A_*) or 7,8,9,10,11,12 (B_*) to run the 6-band model"),
    ],
)
def test_the_default_water_model_table(bundled, descriptions, positions, chosen, why):
    choice = default_water_model(descriptions, positions, default_water_candidates(bundled))
    assert choice.path == bundled / chosen
    assert choice.reason.startswith("Default water model: ") and why in choice.reason
    assert len(read_card(choice.path).bands) == (6 if chosen == SIX_BAND_FILE else 4)


def test_band_positions_matching_no_default_are_refused_with_the_fix(bundled):
    with pytest.raises(SatVisionError, match=r"gives 3 raster band\(s\), but the default water models need 6 or 4.*Fix: give 6 or 4 bands"):
        default_water_model(SIX, [1, 2, 3], default_water_candidates(bundled))


def test_without_the_6band_file_the_4band_model_runs_and_says_why(four_only):
    assert default_water_candidates(four_only) == [four_only / FOUR_BAND_FILE]
    choice = default_water_model(SIX, None, default_water_candidates(four_only))
    assert choice.path == four_only / FOUR_BAND_FILE
    assert f"the other default, {SIX_BAND_FILE}, is not installed" in choice.reason
    with pytest.raises(SatVisionError, match="gives 6 raster band"):
        default_water_model(SIX, [1, 2, 3, 4, 5, 6], default_water_candidates(four_only))
    with pytest.raises(SatVisionError, match="no default water model"):
        default_water_model(SIX, None, default_water_candidates(four_only / "absent"))


def test_both_defaults_are_listed_as_segmentation_models(bundled):
    names = [entry.path.name for entry in list_models(task="segmentation", bundled_dir=bundled) if entry.source == "bundled"]
    assert sorted(names) == sorted(DEFAULT_WATER_MODELS)


def test_the_real_bundled_folder_gives_a_default_with_or_without_the_6band_model():
    """Holds today (4-band only) and once the 6-band model is dropped into resources/models."""
    candidates = default_water_candidates()
    assert candidates and candidates[-1] == BUNDLED_MODELS_DIR / FOUR_BAND_FILE
    assert read_card(candidates[-1]).bands == FOUR
    choice = default_water_model(SIX, None)
    if (BUNDLED_MODELS_DIR / SIX_BAND_FILE).is_file():
        assert read_card(BUNDLED_MODELS_DIR / SIX_BAND_FILE).bands == SIX
        assert choice.path == BUNDLED_MODELS_DIR / SIX_BAND_FILE
    else:
        assert choice.path == BUNDLED_MODELS_DIR / FOUR_BAND_FILE and "is not installed" in choice.reason
    assert default_water_model(FOUR, None).path == BUNDLED_MODELS_DIR / FOUR_BAND_FILE


def write_scene(path: Path, bands: list[str], size: int = 64) -> Path:
    """A small UTM raster of plausible reflectance with ``bands`` as band descriptions."""
    values = np.random.default_rng(0).integers(300, 3000, (len(bands), size, size), dtype=np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=len(bands), dtype="uint16",
                       crs="EPSG:32618", transform=from_origin(400000, 4100000, 10, 10), nodata=0) as dataset:
        dataset.write(values)
        for index, name in enumerate(bands, start=1):
            dataset.set_band_description(index, name)
    return path


@pytest.mark.parametrize(
    ("bands", "chosen", "why"),
    [(SIX, SIX_BAND_FILE, "6-band (B2, B3, B4, B8, B11, B12) (the raster has B11 and B12)"),
     (FOUR, FOUR_BAND_FILE, "4-band (B2, B3, B4, B8) (the raster has no B11/B12 band")],
)
def test_segment_water_without_a_model_runs_the_default_that_suits_the_raster(bundled, tmp_path, bands, chosen, why):
    from satvision.inference.segment_job import segment_water

    lines: list[str] = []
    raster = write_scene(tmp_path / "scene.tif", bands)
    result = segment_water(raster, tmp_path / "water.gpkg", model=None, feedback=RecordingFeedback(messages=lines),
                           bundled_models_dir=bundled)
    assert result.model_path == bundled / chosen and result.card.bands == (SIX if chosen == SIX_BAND_FILE else FOUR)
    assert any(why in line for line in lines), lines
    assert (tmp_path / "water.gpkg").is_file()


def test_the_evaluation_default_suits_every_image(bundled, tmp_path):
    from satvision.training.water_evaluation import default_model

    six = write_scene(tmp_path / "six.tif", SIX, 8)
    four = write_scene(tmp_path / "four.tif", FOUR, 8)
    path, reason = default_model([six], bundled)
    assert path == bundled / SIX_BAND_FILE and "the raster has B11 and B12" in reason
    path, reason = default_model([six, four], bundled)  # one model is measured on all images
    assert path == bundled / FOUR_BAND_FILE and "every image has no B11/B12 band" in reason


def test_fetching_sentinel2_gets_the_6band_models_bands_by_default(bundled):
    from satvision.cli.main import build_parser
    from satvision.earthengine.sentinel2 import Sentinel2Query

    query = Sentinel2Query("2024-06-01", "2024-06-30")
    assert query.bands == tuple(SIX)
    assert default_water_model(list(query.output_bands), None, default_water_candidates(bundled)).path == bundled / SIX_BAND_FILE
    arguments = build_parser().parse_args(["fetch", "sentinel2", "--bounds=0,0,1,1", "--start", "2024-06-01",
                                           "--end", "2024-06-30", "--output", "x.tif"])
    assert arguments.bands == "B2,B3,B4,B8,B11,B12"


def write_label(path: Path, size: int = 64) -> Path:
    """A 0 land / 1 water label on :func:`write_scene`'s grid."""
    values = np.zeros((1, size, size), np.uint8)
    values[:, :, : size // 2] = 1
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8",
                       crs="EPSG:32618", transform=from_origin(400000, 4100000, 10, 10)) as dataset:
        dataset.write(values)
    return path


@pytest.mark.parametrize(("bands", "chosen"), [(SIX, SIX_BAND_FILE), (FOUR, FOUR_BAND_FILE)])
def test_evaluate_segmentation_without_a_model_measures_the_default_that_suits_the_images(bundled, tmp_path, bands, chosen):
    from satvision.training.segmentation_evaluate import evaluate_segmentation

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    write_scene(tmp_path / "images" / "chip.tif", bands)
    write_label(tmp_path / "labels" / "chip.tif")
    lines: list[str] = []
    result = evaluate_segmentation(None, tmp_path, feedback=RecordingFeedback(messages=lines), bundled_models_dir=bundled)
    assert result.model == bundled / chosen
    assert any(line.startswith(f"Default water model: {len(bands)}-band") for line in lines), lines
