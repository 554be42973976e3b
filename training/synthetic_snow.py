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

from typing import Mapping

from .land_cover import LandCoverStep

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


class SyntheticSnow(LandCoverStep):
    """Lay snow on the land of a patch with probability ``p``; labels unchanged (see
    :class:`~training.land_cover.LandCoverStep` and the module docstring for the physics)."""

    end_members = (FRESH_SNOW, OLD_SNOW)  # by a random age
    cover, edge, density = (0.25, 0.95), (0.02, 0.2), (0.4, 1.0)
    darkest_light = (0.35, 0.8)
