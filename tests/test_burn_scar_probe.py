"""``scripts/burn_scar_probe.py`` (issue 15): each variant changes the named bands of the dark burnt
pixels only, on the original grid, so a change in the model's call is the variant's doing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from tests_helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
WILDFIRE = ROOT.parent / "shared" / "data" / "s2_scenes" / "wildfire_ca"


def test_a_model_that_reads_swir_1_gets_six_bands_and_others_the_files_five():
    script = load_script("burn_scar_probe")
    assert script.probe_bands(["B2", "B3", "B4", "B8", "B11", "B12"]) == ("B2", "B3", "B4", "B8", "B11", "B12")
    assert script.probe_bands(["B2", "B3", "B4", "B8"]) == ("B2", "B3", "B4", "B8", "B12")


@pytest.mark.skipif(not (WILDFIRE / "CODY_20240608_post_fire.tif").is_file(),
                    reason="needs ../shared/data/s2_scenes (shared data, present in CI)")
def test_a_variant_scales_the_named_bands_of_the_dark_burnt_pixels_only(tmp_path):
    script = load_script("burn_scar_probe")
    reflectance = script.reflectance_from_tci(WILDFIRE / "CODY_20240608_post_fire.tif", tmp_path / "cody.tif")
    with rasterio.open(reflectance) as source:
        original = dict(zip(source.descriptions, source.read()))
        grid = (source.crs, source.transform, source.shape)
    dark = np.zeros(grid[2], bool)
    dark[50:100, 60:120] = True
    bands = ("B2", "B3", "B4", "B8", "B11", "B12")
    variant = script.variant_file(reflectance, bands, dark, {"B8": 2.0, "B12": 0.5}, tmp_path / "variant.tif")
    with rasterio.open(variant) as result:
        assert result.descriptions == bands and (result.crs, result.transform, result.shape) == grid
        values = dict(zip(bands, result.read()))
    np.testing.assert_allclose(values["B8"][dark], original["B8"][dark] * 2.0, rtol=1e-6)
    np.testing.assert_allclose(values["B12"][dark], original["B12"][dark] * 0.5, rtol=1e-6)
    np.testing.assert_allclose(values["B11"], original["B12"] * script.B11_FROM_B12, rtol=1e-6)  # B11 derived, not scaled
    for band in ("B2", "B3", "B4"):
        np.testing.assert_array_equal(values[band], original[band])
    np.testing.assert_array_equal(values["B8"][~dark], original["B8"][~dark])
    np.testing.assert_array_equal(values["B12"][~dark], original["B12"][~dark])
