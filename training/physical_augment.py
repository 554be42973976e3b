"""The physical augmentation steps for water, composed in a fixed order.

The steps themselves live in :mod:`training.water_augment` (water colour, clouds and shadows,
illumination, haze, sensor), :mod:`training.synthetic_water`, :mod:`training.synthetic_snow` and
:mod:`training.synthetic_burn` (shallow water, snow and burn scars put on land) and
:mod:`training.terrain_shading` (relief shading on land).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..core.errors import SatVisionError
from .augment_settings import WaterAugmentSettings
from .synthetic_burn import SyntheticBurnScar
from .synthetic_snow import SyntheticSnow
from .synthetic_water import SyntheticShallowWater
from .terrain_shading import TerrainShading
from .water_augment import BaselineOffset, CloudAndShadow, Haze, SensorNoise, SunGain, WaterColour

#: The steps that act on every band alike, so need no band names.
BAND_FREE_STEPS = ("sun_gain_p", "baseline_offset_p")


class PhysicalAugmentation:
    """The physical steps in a fixed order: surface (shallow water, snow and burn scars put on land, terrain shading,
    turbid, algae), clouds and shadows, illumination, atmosphere. Called on ``(values, valid, label)`` tensors; returns ``(values, label)``.
    Sensor-side steps (:meth:`sensor`: baseline offset, noise) run after the radiometric jitter."""

    def __init__(self, settings: WaterAugmentSettings, bands: Sequence[str] | None, reflectance_scale: float) -> None:
        needs_bands = any(getattr(settings, name) > 0 for name in settings.PROBABILITIES if name not in BAND_FREE_STEPS)
        if needs_bands and not bands:
            raise SatVisionError("The physical augmentations need the model's band names: give them (--bands).")
        self.surface: list = []
        if settings.synthetic_water_p > 0:  # first, so the water colour steps also act on the water it puts
            self.surface.append(SyntheticShallowWater(bands, reflectance_scale, settings.synthetic_water_p))
        if settings.snow_p > 0:  # on the land the synthetic water left, never under water
            self.surface.append(SyntheticSnow(bands, reflectance_scale, settings.snow_p))
        if settings.burn_scar_p > 0:  # likewise on land only
            self.surface.append(SyntheticBurnScar(bands, reflectance_scale, settings.burn_scar_p))
        if settings.terrain_shading_p > 0:  # after the land covers, so snow and scars lie on slopes too
            self.surface.append(TerrainShading(bands, reflectance_scale, settings.terrain_shading_p))
        if settings.turbid_p > 0:
            self.surface.append(WaterColour(bands, reflectance_scale, settings.turbid_p, "sediment"))
        if settings.algae_p > 0:
            self.surface.append(WaterColour(bands, reflectance_scale, settings.algae_p, "algae"))
        if settings.clouds_p > 0:
            self.surface.append(CloudAndShadow(bands, reflectance_scale, settings.clouds_p, settings.cloud_thick))
        self.light: list = []
        if settings.sun_gain_p > 0:
            self.light.append(SunGain(settings.sun_gain_p, settings.sun_gain))
        if settings.haze_p > 0:
            self.light.append(Haze(bands, reflectance_scale, settings.haze_p, settings.haze_max))
        self.sensor_steps: list = []
        if settings.baseline_offset_p > 0:
            self.sensor_steps.append(BaselineOffset(reflectance_scale, settings.baseline_offset_p))
        if settings.noise_sigma > 0:
            self.sensor_steps.append(SensorNoise(reflectance_scale, settings.noise_sigma))

    def __call__(self, values: torch.Tensor, valid: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for step in self.surface:
            values, label = step(values, valid, label)
        for step in self.light:
            values = step(values, valid)
        return values, label

    def sensor(self, values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        for step in self.sensor_steps:
            values = step(values, valid)
        return values
