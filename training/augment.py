"""Joint augmentation of multispectral patches and their labels (torchvision.transforms.v2).

Geometric transforms (flips, 90° rotations, elastic distortion) move image, labels and the image
validity together: labels and validity travel as one two-channel ``tv_tensors.Mask``, resampled
with nearest neighbour and filled with 255 (ignore / invalid) where the distortion pulls in
pixels from outside the patch.

Radiometric transforms work per band on raw raster values, with offsets given in reflectance
(``reflectance_scale`` converts): ``v2.ColorJitter`` only handles 1 or 3 channels.

- :class:`MultispectralJitter`: a random gain and offset per band (brightness/contrast).
- :class:`SimulateL2A`: subtracts a random share of each band's dark-object value (a low
  percentile of the patch), imitating the atmospheric correction from L1C (top of atmosphere)
  to L2A (surface reflectance), which removes path radiance and darkens mostly blue and green.
  A model trained on L1C with this augmentation copes better with L2A inputs.

Physical augmentations for water (shallow water put on land, turbid and algae water, clouds and
shadows, sun-angle gain, haze, the +1000 baseline offset, noise; all off by default) live in
:mod:`training.synthetic_water` and :mod:`training.water_augment`, composed by
:mod:`training.physical_augment`, and need the model's band names (``PatchAugmentation(..., bands=...)``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from .augment_settings import AugmentSettings
from .physical_augment import PhysicalAugmentation
from .segmentation_pairs import IGNORE_INDEX


class RandomRot90(v2.Transform):
    """Rotate by a random multiple of 90° (exact: no interpolation)."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"k": int(torch.randint(0, 4, ()).item())}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["k"] == 0:
            return inpt
        return tv_tensors.wrap(torch.rot90(inpt.as_subclass(torch.Tensor), params["k"], dims=(-2, -1)), like=inpt)


class MultispectralJitter(v2.Transform):
    """Per-band ``value * gain + offset`` on images only, for any number of bands."""

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, gain: float, offset: float, reflectance_scale: float, p: float = 1.0) -> None:
        super().__init__()
        self.gain, self.offset, self.scale, self.p = gain, offset, float(reflectance_scale), p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        bands = next(item for item in flat_inputs if isinstance(item, tv_tensors.Image)).shape[-3]
        apply = bool(torch.rand(()) < self.p)
        gain = 1.0 + (torch.rand(bands) * 2 - 1) * self.gain
        offset = (torch.rand(bands) * 2 - 1) * self.offset * self.scale
        return {"apply": apply, "gain": gain, "offset": offset}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params["apply"]:
            return inpt
        out = inpt.as_subclass(torch.Tensor) * params["gain"][:, None, None] + params["offset"][:, None, None]
        return tv_tensors.wrap(out.clamp_(min=0.0), like=inpt)


class SimulateL2A(v2.Transform):
    """Subtract a random share of each band's dark-object value (L1C → L2A look-alike).

    The dark-object value is the ``percentile`` of the band's non-zero pixels in the patch (zero is
    where there is no data); bright bands under haze lose more, as atmospheric correction does.
    """

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, p: float, percentile: float = 1.0, share: tuple[float, float] = (0.3, 1.0)) -> None:
        super().__init__()
        self.p, self.percentile, self.share = p, percentile, share

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        bands = next(item for item in flat_inputs if isinstance(item, tv_tensors.Image)).shape[-3]
        low, high = self.share
        return {"apply": bool(torch.rand(()) < self.p), "share": low + torch.rand(bands) * (high - low)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params["apply"]:
            return inpt
        values = inpt.as_subclass(torch.Tensor)
        dark = torch.zeros(values.shape[-3])
        for band in range(values.shape[-3]):
            data = values[band].reshape(-1)
            data = data[:: max(1, data.numel() // 16384)]  # a subsample is plenty for a low percentile
            data = data[data > 0]
            if data.numel():
                rank = min(data.numel(), max(1, round(data.numel() * self.percentile / 100.0)))
                dark[band] = torch.kthvalue(data.float(), rank).values
        out = values - (params["share"] * dark)[:, None, None]
        return tv_tensors.wrap(torch.where(values > 0, out.clamp(min=0.0), values), like=inpt)


class PatchAugmentation:
    """Callable ``(values, valid, label) → (values, valid, label)`` as tensors, for the datasets.

    Order: geometric transforms, then the physical water steps (surface, clouds, light, haze;
    :mod:`training.water_augment`, which need ``bands``), then the L2A simulation and jitter, then the
    sensor steps (baseline offset, noise). Steps that are off draw no random numbers, so runs with
    the physical steps off repeat those made before they existed.
    """

    def __init__(self, settings: AugmentSettings, reflectance_scale: float, bands: Sequence[str] | None = None) -> None:
        fill = {tv_tensors.Image: 0.0, tv_tensors.Mask: IGNORE_INDEX}
        geometric: list[v2.Transform] = []
        if settings.flips:
            geometric += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
        if settings.rotations:
            geometric.append(RandomRot90())
        if settings.elastic_p > 0:
            elastic = v2.ElasticTransform(alpha=settings.elastic_alpha, sigma=settings.elastic_sigma, fill=fill)
            geometric.append(v2.RandomApply([elastic], p=settings.elastic_p))
        radiometric: list[v2.Transform] = []
        if settings.simulate_l2a_p > 0:
            radiometric.append(SimulateL2A(settings.simulate_l2a_p, settings.l2a_percentile, settings.l2a_share))
        if settings.jitter_p > 0 and (settings.gain > 0 or settings.offset > 0):
            radiometric.append(MultispectralJitter(settings.gain, settings.offset, reflectance_scale, p=settings.jitter_p))
        self.geometric = v2.Compose(geometric) if geometric else v2.Identity()
        self.radiometric = v2.Compose(radiometric) if radiometric else v2.Identity()
        self.physical = PhysicalAugmentation(settings.water, bands, reflectance_scale) if settings.water.enabled() else None

    def __call__(self, values: Any, valid: Any, label: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image = tv_tensors.Image(torch.as_tensor(np.asarray(values), dtype=torch.float32))
        # labels and validity as one mask: 255 in the validity channel (fill) means "no data"
        mask = tv_tensors.Mask(torch.stack([torch.as_tensor(np.asarray(label), dtype=torch.uint8),
                                            torch.as_tensor(np.asarray(valid), dtype=torch.uint8)]))
        image, mask = self.geometric(image, mask)
        valid_out = mask[1] == 1
        label_out = torch.where(valid_out, mask[0], IGNORE_INDEX)
        if self.physical is not None:
            physical, label_out = self.physical(image.as_subclass(torch.Tensor), valid_out, label_out)
            image = tv_tensors.wrap(physical, like=image)
        image, mask = self.radiometric(image, mask)
        values_out = image.as_subclass(torch.Tensor)
        if self.physical is not None:
            values_out = self.physical.sensor(values_out, valid_out)
        return values_out * valid_out, valid_out, label_out.long()


class RoughWater:
    """Wind-roughened water on a calm-water tile: oriented wave stripes and sparse whitecaps.

    EuroSAT's SeaLake tiles are calm, clean water; open sea in wind (a winter coast) has waves a few
    pixels long and whitecaps, a fine texture that a network trained on calm tiles reads as forest
    or buildings. Applied to the tiles of the water classes only, on values in the rendered 0–1
    domain: two crossing sinusoids (wavelength 2–6 px, amplitude up to ``amplitude``) and bright
    pixels at a density up to ``whitecaps``, the same on every band (waves and foam are grey).
    """

    def __init__(self, amplitude: float = 0.02, whitecaps: float = 0.01) -> None:
        self.amplitude, self.whitecaps = amplitude, whitecaps

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        height, width = values.shape[-2:]
        rows = torch.arange(height, dtype=torch.float32)[:, None]
        columns = torch.arange(width, dtype=torch.float32)[None, :]
        angle = float(torch.rand(())) * math.pi
        waves = torch.zeros(height, width)
        for turn in (0.0, float(torch.randn(())) * 0.3):
            wavelength = 2.0 + 4.0 * float(torch.rand(()))
            phase = 2 * math.pi * float(torch.rand(()))
            along = columns * math.cos(angle + turn) + rows * math.sin(angle + turn)
            waves += torch.sin(2 * math.pi * along / wavelength + phase) * self.amplitude * float(torch.rand(())) / 2
        density = self.whitecaps * float(torch.rand(()))
        foam = (torch.rand(height, width) < density).float() * (0.05 + 0.3 * torch.rand(height, width))
        return values + (waves + foam)[None]
