"""What the land steps (synthetic snow, synthetic burn scars, terrain shading; issue 15) share: they change only
land with data, never water or nodata, keep every label (terrain shading may ignore land in deep shade), give 4-band models the same physics on their
bands, are off by default and reach training through the patch augmentation and the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_water_augment import CROPS, FOUR, SCALE, SIX, apply_step, read_crop, read_land_crop

from satvision.cli.main import build_parser
from satvision.training.augment import PatchAugmentation
from satvision.training.augment_settings import AugmentSettings, WaterAugmentSettings
from satvision.training.segmentation_pairs import IGNORE_INDEX
from satvision.training.synthetic_burn import SyntheticBurnScar
from satvision.training.synthetic_snow import SyntheticSnow
from satvision.training.terrain_shading import TerrainShading

STEPS = {"snow": (SyntheticSnow, "snow_p", "--snow"), "burn_scars": (SyntheticBurnScar, "burn_scar_p", "--burn-scars"),
         "terrain_shading": (TerrainShading, "terrain_shading_p", "--terrain-shading")}
#: Steps that may label land they made undecidable 255 (terrain shading: deep shade has water's spectrum).
MAY_IGNORE_LAND = {"terrain_shading"}


def assert_labels_kept(name: str, new_label: np.ndarray, label: np.ndarray) -> None:
    """Every label is kept, except land that a step in :data:`MAY_IGNORE_LAND` may turn to 255 (never to water)."""
    changed = new_label != label
    if name in MAY_IGNORE_LAND:
        assert (label[changed] == 0).all() and (new_label[changed] == IGNORE_INDEX).all()
    else:
        assert not changed.any()


@pytest.fixture(scope="module")
def land_crop() -> tuple[np.ndarray, np.ndarray]:
    return read_land_crop()


@pytest.mark.parametrize("name", STEPS)
def test_only_land_with_data_changes_and_water_is_left_alone(name):
    step = STEPS[name][0](SIX, SCALE, p=1.0)
    values, label, _, _ = read_crop(*CROPS[0])
    assert 0.2 < label.mean() < 0.8
    valid = np.ones(label.shape, bool)
    valid[:, :20] = False
    values[:, :, :20] = -9999.0  # a negative nodata value must come back as it was
    changed = np.zeros(label.shape, bool)
    for seed in range(6):
        out, new_label = apply_step(step, values, label, seed, valid)
        changed |= (out != values).any(axis=0)
        assert_labels_kept(name, new_label, label)
    assert changed.any()
    assert not changed[:, :20].any(), "pixels without data are untouched"
    assert not changed[label == 1].any(), "water is never covered"


@pytest.mark.parametrize("name", STEPS)
def test_four_band_models_get_the_same_physics_on_their_bands(name, land_crop):
    values, label = land_crop
    make = STEPS[name][0]
    out6, _ = apply_step(make(SIX, SCALE, p=1.0), values, label, seed=3)
    out4, _ = apply_step(make(FOUR, SCALE, p=1.0), values[:4], label, seed=3)
    assert (out6 != values).any()
    np.testing.assert_allclose(out4, out6[:4], rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("name", STEPS)
def test_off_by_default_and_on_through_the_patch_augmentation(name, land_crop):
    values, label = land_crop
    _, field, _ = STEPS[name]
    assert getattr(WaterAugmentSettings(), field) == 0.0
    settings = AugmentSettings(flips=False, rotations=False, elastic_p=0.0, jitter_p=0.0,
                               water=WaterAugmentSettings(**{field: 1.0}))
    assert settings.water.enabled()
    torch.manual_seed(0)
    out, _, out_label = PatchAugmentation(settings, SCALE, SIX)(values, np.ones(label.shape, bool), label)
    assert (np.abs(out.numpy() - values) > 0.01 * SCALE).any()
    assert_labels_kept(name, out_label.numpy(), label)


@pytest.mark.parametrize("name", STEPS)
def test_the_training_command_line_takes_the_probability(name):
    _, field, flag = STEPS[name]
    parser = build_parser()
    arguments = parser.parse_args(["train", "segmentation", "--data", "d", "--output", "o", flag, "0.2"])
    assert getattr(arguments, field) == 0.2
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "segmentation", "--data", "d", "--output", "o", flag, "-0.1"])
