"""Synthetic snow on land, labelled land: the bright look-alike a model without SWIR calls water.

Why: snow is bright in the visible and a little darker in the near infrared, so its NDWI
(B3 − B8)/(B3 + B8) is slightly positive, as water's is. Only SWIR tells them apart (snow is
dark in B11/B12 like water, but bright in the visible). A 4-band (B2, B3, B4, B8) model trained
with synthetic shallow water called 21 % of a snowy BigEarthNet patch water: the real training
scenes hold too little snow to teach the difference. This step lays snow on a patch's land.

Physics, per band (reflectance):

- **Snow spectrum**: from fresh, fine-grained snow (:data:`FRESH_SNOW`: ~0.95 in the visible,
  0.85 in B8, 0.1 in B11) to old, coarse-grained or dirty snow (:data:`OLD_SNOW`: ~0.7 visible,
  0.55 in B8, 0.03 in B11) by a random age; ice absorption grows with wavelength and grain size
  (Warren 1982, Rev. Geophys. 20; Dozier & Painter 2004, Annu. Rev. Earth Planet. Sci. 32).
- **Illumination**: slopes facing away from the sun and thin cloud shade snow: a smooth factor
  0.35–1 over the patch multiplies the whole spectrum (shaded snow keeps its shape, so its NDWI
  stays positive: the hardest case).
- **Cover**: a smooth random field thresholded at a random snow-cover share (25–95 % of the
  land), with a soft edge, gives each pixel a snow share ``α``; forests and patchy snow are
  partial cover (``α`` up to 0.4–1 by patch). A pixel becomes ``α·snow + (1−α)·land``, plus the
  patch's path radiance, capped as for synthetic water.

Labels: unchanged (snow on land is land). Water and ignored pixels are left alone: ice on water
is not simulated (whether frozen water is "water" is a labelling choice the data must make).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .synthetic_water import LAND, MAX_PATH_REFLECTANCE, capped_path_reflectance, patchy_share, uniform
from .water_augment import band_ids, band_spectrum, smooth_field

#: Fresh, fine-grained snow (reflectance; Warren 1982, Sentinel-2 snow pixels, rounded).
FRESH_SNOW: Mapping[str, float] = {
    "B1": 0.95, "B2": 0.95, "B3": 0.94, "B4": 0.92, "B5": 0.9, "B6": 0.88, "B7": 0.86, "B8": 0.84,
    "B8A": 0.82, "B9": 0.6, "B10": 0.05, "B11": 0.1, "B12": 0.06,
}
#: Old, coarse-grained, a little dirty snow.
OLD_SNOW: Mapping[str, float] = {
    "B1": 0.68, "B2": 0.7, "B3": 0.7, "B4": 0.68, "B5": 0.65, "B6": 0.62, "B7": 0.6, "B8": 0.55,
    "B8A": 0.52, "B9": 0.35, "B10": 0.02, "B11": 0.03, "B12": 0.02,
}


class SyntheticSnow:
    """Lay snow on the land of a patch with probability ``p``; labels unchanged.

    Called on raw values (reflectance × ``reflectance_scale``), validity and label of one patch;
    returns ``(values, label)``. See the module docstring for the physics.
    """

    def __init__(self, bands: Sequence[str], reflectance_scale: float, p: float) -> None:
        ids = band_ids(bands)
        self.p, self.scale = p, float(reflectance_scale)
        self.fresh = band_spectrum(FRESH_SNOW, ids)
        self.old = band_spectrum(OLD_SNOW, ids)
        self.max_path = band_spectrum(MAX_PATH_REFLECTANCE, ids) * self.scale

    def __call__(self, values: torch.Tensor, valid: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not bool(torch.rand(()) < self.p):
            return values, label
        land = valid & (label == LAND)
        if not bool(land.any()):
            return values, label
        height, width = values.shape[-2:]
        share = patchy_share(height, width, cover=(0.25, 0.95), edge=(0.02, 0.2), density=(0.4, 1.0)) * land
        age = float(torch.rand(()))
        spectrum = self.fresh + (self.old - self.fresh) * age
        low = uniform(0.35, 0.8)
        illumination = low + (1.0 - low) * (0.5 + 0.5 * smooth_field(height, width, cells=4))
        dark = capped_path_reflectance(values, valid, self.max_path)
        snow = dark + spectrum[:, None, None] * illumination[None] * self.scale
        mixed = share[None] * snow + (1.0 - share[None]) * values
        return torch.where(valid[None], mixed.clamp(min=0.0), values), label
