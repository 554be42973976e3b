"""Synthetic burn scars on land, labelled land: the dark look-alike a model without SWIR calls water.

Why: a fresh burn scar is as dark as deep water in the visible (black char reflects 2–4 %), and
a 4-band (B2, B3, B4, B8) model whose training scenes hold no fire called 87 % of a near-black
scar in California water (``scripts/water_acceptance.py``, part 4). What tells them apart is the
near infrared, which stays a little above the green over char (NDWI < 0, where water's is > 0),
and SWIR, where char is bright (10–30 %) and water dark. This step lays scars on a patch's land.

Physics, per band (reflectance):

- **Scar spectrum**: from black char (:data:`CHAR`: ~3 % in the visible, rising slowly to 6 % in
  B8 and 11–12 % in SWIR) to grey ash on scorched soil (:data:`ASH`: 10–14 % visible, 19 % B8,
  25–27 % SWIR), by a random completeness of combustion drawn towards char. Reflectance of burnt
  surfaces rises monotonically with wavelength (Trigg & Flasse 2000, Int. J. Remote Sens. 21;
  Pereira et al. 1999, in *Remote Sensing of Large Wildfires*, Springer; Roy et al. 2006, IEEE
  GRSL 3: the NIR drop and SWIR rise that the normalised burn ratio measures).
- **Illumination**: scars burn on slopes: a smooth factor 0.35–1 over the patch shades the whole
  spectrum (shaded char is darker than any water in the visible, but keeps NIR above green).
- **Cover**: a fire's outline is sharp; inside it unburnt plants survive in islands. A smooth
  random field thresholded at a random burnt share (15–80 % of the land) with a narrow edge,
  times a density 0.6–1, gives each pixel a burnt share ``α``; a pixel becomes
  ``α·(scar + u·path) + (1−α)·land``.
- **Path radiance**: the patch's dark object, capped as for synthetic water, is the path radiance of
  an L1C patch but a dark surface (water, shadow) on an L2A one, where the path is gone; a scar is so
  dark that adding the wrong one decides its colour (a dark-object green above the NIR made scars
  on L2A patches brighter than real ones and NDWI-positive). Patches do not say their level, so
  ``u`` is drawn from [0, 1]: from surface reflectance to the full TOA path.

Labels: unchanged (a burn scar is land). Water and ignored pixels are left alone.
"""

from __future__ import annotations

from typing import Mapping

import torch

from .land_cover import LandCoverStep
from .synthetic_water import uniform

#: Black char, complete combustion (surface reflectance, rounded from the sources above).
CHAR: Mapping[str, float] = {
    "B1": 0.03, "B2": 0.03, "B3": 0.035, "B4": 0.04, "B5": 0.045, "B6": 0.05, "B7": 0.055, "B8": 0.06,
    "B8A": 0.065, "B9": 0.06, "B10": 0.005, "B11": 0.11, "B12": 0.12,
}
#: Grey ash on scorched soil, incomplete combustion.
ASH: Mapping[str, float] = {
    "B1": 0.09, "B2": 0.10, "B3": 0.12, "B4": 0.14, "B5": 0.16, "B6": 0.17, "B7": 0.18, "B8": 0.19,
    "B8A": 0.20, "B9": 0.19, "B10": 0.01, "B11": 0.27, "B12": 0.25,
}


class SyntheticBurnScar(LandCoverStep):
    """Lay a burn scar on the land of a patch with probability ``p``; labels unchanged (see
    :class:`~training.land_cover.LandCoverStep` and the module docstring for the physics)."""

    end_members = (CHAR, ASH)
    cover, edge, density = (0.15, 0.8), (0.005, 0.05), (0.6, 1.0)  # a sharp outline, unburnt islands
    darkest_light = (0.35, 0.9)

    def mix(self) -> float:
        return float(torch.rand(())) ** 2  # most fresh scars are mostly char

    def path_share(self) -> float:
        return uniform(0.0, 1.0)  # from L2A (no path) to the full L1C path: see the module docstring
