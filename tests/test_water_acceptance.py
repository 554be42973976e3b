"""The burn-scar part of ``scripts/water_acceptance.py`` (issue 15): the ``wildfire_ca`` files carry the
visible bands only as the 8-bit true-colour image, so the script recovers reflectance from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from tests_helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
WILDFIRE = ROOT.parent / "shared" / "data" / "s2_scenes" / "wildfire_ca"
needs_wildfire = pytest.mark.skipif(not (WILDFIRE / "CODY_20240608_post_fire.tif").is_file(),
                                    reason="needs ../shared/data/s2_scenes (shared data, present in CI)")


@needs_wildfire
def test_reflectance_from_the_true_colour_image_keeps_the_grid_and_the_real_bands(tmp_path):
    script = load_script("water_acceptance")
    original = WILDFIRE / "CODY_20240608_post_fire.tif"
    converted = script.reflectance_from_tci(original, tmp_path / "cody.tif")
    with rasterio.open(original) as source, rasterio.open(converted) as result:
        tci_red, tci_green, tci_blue, nir, swir2 = source.read()
        assert result.descriptions == ("B2", "B3", "B4", "B8", "B12")
        assert (result.crs, result.transform, result.shape) == (source.crs, source.transform, source.shape)
        assert result.nodata == 0
        blue, green, red, out_nir, out_swir2 = result.read()
    np.testing.assert_allclose(red, tci_red * 2000 / 255, rtol=1e-6)  # TCI 255 = reflectance 0.2 (L2A)
    np.testing.assert_allclose(blue, tci_blue * 2000 / 255, rtol=1e-6)
    np.testing.assert_array_equal(out_nir, nir)
    np.testing.assert_array_equal(out_swir2, swir2)
    with rasterio.open(WILDFIRE / "CODY_20240608_burn_mask.tif") as source:
        burnt = source.read(1) > 0
    # the fresh scar: black in the visible (as dark as water) but its NIR stays above its green
    assert np.median(green[burnt]) < 300 and np.median(out_nir[burnt]) > np.median(green[burnt])


@needs_wildfire
def test_a_model_that_reads_b11_gets_it_estimated_from_b12(tmp_path):
    script = load_script("water_acceptance")
    original = WILDFIRE / "CODY_20240608_post_fire.tif"
    five = script.reflectance_from_tci(original, tmp_path / "five.tif")
    six = script.reflectance_from_tci(original, tmp_path / "six.tif", estimate_b11=True)
    with rasterio.open(five) as first, rasterio.open(six) as second:
        assert second.descriptions == ("B2", "B3", "B4", "B8", "B11", "B12")
        shared = dict(zip(first.descriptions, first.read()))
        estimated = dict(zip(second.descriptions, second.read()))
    for band, values in shared.items():
        np.testing.assert_array_equal(estimated[band], values)
    np.testing.assert_allclose(estimated["B11"], shared["B12"] * script.B11_FROM_B12, rtol=1e-6)
    assert script.B11_FROM_B12 > 1  # over char and dry grass B11 lies a little above B12


TERRAMIND = ROOT.parent / "shared" / "data" / "s2_scenes" / "terramind"


@pytest.mark.skipif(not (TERRAMIND / "433D_629L_3_1_S2L2A.tif").is_file(),
                    reason="needs ../shared/data/s2_scenes (shared data, present in CI)")
def test_the_l1c_l2a_picture_shows_where_the_two_masks_differ(tmp_path):
    from PIL import Image

    script = load_script("water_acceptance")
    image = TERRAMIND / "433D_629L_3_1_S2L2A.tif"
    with rasterio.open(image) as source:
        shape = source.shape
    l1c, l2a = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    l1c[:, :80] = l2a[:, :80] = 1  # both call water
    l1c[:, 80:150] = 1  # the L1C only
    l2a[:, 150:] = 1  # the L2A only
    l1c[0, :] = 255  # no data in the L1C
    kinds = [name for name, _ in script.AGREEMENT_KINDS]
    classes = script.agreement_classes(l1c, l2a)
    assert (classes[1:, :80] == kinds.index("both")).all() and (classes[1:, 80:150] == kinds.index("L1C only")).all()
    assert (classes[1:, 150:] == kinds.index("L2A only")).all() and (classes[0] == kinds.index("no data")).all()
    l2a[1:, 150:] = 0
    assert (script.agreement_classes(l1c, l2a)[1:, 150:] == kinds.index("neither")).all()
    l2a[1:, 150:] = 1
    script.agreement_picture(image, l1c, l2a, tmp_path / "pair.png", "433D")
    colours = {tuple(pixel) for pixel in np.asarray(Image.open(tmp_path / "pair.png").convert("RGB")).reshape(-1, 3)}
    assert {(0x1F, 0x77, 0xB4), (0xD6, 0x27, 0x28), (0xFF, 0x9F, 0x0E)} <= colours


FTW = ROOT.parent / "shared" / "data" / "s2_scenes" / "ftw" / "ftw_inference-img.tif"


@pytest.mark.skipif(not FTW.is_file(), reason="needs ../shared/data/s2_scenes (shared data, present in CI)")
def test_one_date_of_the_ftw_stack_becomes_a_four_band_raster_named_by_band(tmp_path):
    script = load_script("water_acceptance")
    converted = script.ftw_date(FTW, "B", tmp_path / "inn.tif")
    with rasterio.open(FTW) as source, rasterio.open(converted) as result:
        assert result.descriptions == ("B2", "B3", "B4", "B8")
        assert (result.crs, result.transform, result.shape, result.nodata) == (source.crs, source.transform, source.shape, source.nodata)
        stack = dict(zip(source.descriptions, source.read()))  # A_B4, A_B3, A_B2, A_B8, B_B4...
        blue, green, red, nir = result.read()
    for band, values in zip(("B_B2", "B_B3", "B_B4", "B_B8"), (blue, green, red, nir)):
        np.testing.assert_array_equal(values, stack[band])
    assert not np.array_equal(green, stack["A_B3"])  # the other date is not taken


def test_mask_iou_counts_pixels_either_mask_holds():
    script = load_script("water_acceptance")
    first, second = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    assert script.mask_iou(first, second) is None
    first[0, :] = True
    second[0, :2] = second[1, :2] = True
    assert script.mask_iou(first, second) == pytest.approx(2 / 6)
