"""Terrain shading on land: slopes turned from the sun darker, slopes facing it brighter; deep shade ignored.

Why: at L1C (top of atmosphere) a slope in shade keeps the path radiance, which is strong in blue
and green, while its surface signal, strong in the near infrared, drops: green comes near or above
NIR and the slope looks like water. Sen2Cor's terrain correction brightens such slopes at L2A, so a
model that calls them water at L1C disagrees with its own L2A mask of the same place. The bundled
6-band model did exactly that on the terramind 433D valley: 556 pixels of shaded valley sides,
labelled land, were water at L1C only (B8 0.076 at L1C, 0.110 at L2A). Our scenes hold few steep
valleys, so this step draws relief.

Physics, per patch:

- **Relief**: V-shaped valleys along the zero lines of a smooth random field (its absolute value:
  long winding valleys rather than round hills, which would look like ponds in shade), plus a
  gentler undulation, scaled so that its steep slopes (95th percentile) reach an angle drawn from
  20°–60°: in the median patch 15 % of the land gets less than half the direct light of flat ground.
- **Sun**: zenith ``θz`` 25°–75° (Sentinel-2 passes at 10:30 local time: high sun in the tropical
  summer, low in a boreal winter), azimuth ``φ`` anywhere.
- **Direct light** on a facet of normal ``n``, relative to flat ground:
  ``max(n·s, 0) / cos θz`` with ``s`` the direction to the sun (Lambertian; the cosine law that
  terrain corrections invert, Teillet et al. 1982, Can. J. Remote Sens. 8), capped at
  :data:`MAX_GAIN`; zero on facets turned away (self-shadow). Cast shadows of ridges are not drawn.
- **Diffuse sky light** remains in shade, bluish: a band keeps ``d + (1 − d)·direct`` of its surface
  signal, ``d`` from :data:`~training.water_augment.SHADOW_DIFFUSE` (0.3 blue to 0.05 SWIR).
- **Path radiance stays on top**: a band becomes ``path + (value − path)·light``. The path is the
  patch's dark object capped as for synthetic water, times ``u`` from [0, 1]: on an L1C patch the
  dark object is the path, on an L2A one it is a dark surface (patches do not say their level; see
  :mod:`training.synthetic_burn`).

Land only (label 0 with data): water lies flat. Water and ignored pixels are left alone.

Labels: shaded land stays land, except in deep shade (less than :data:`DEEP_SHADE` of the direct
light of flat ground), which becomes 255 (ignore). There diffuse sky light alone lights the land:
dark in every band, green at or above NIR at L1C and SWIR near zero, it has water's spectrum, and
calling it land teaches a model to drop dark water (a model trained with a first version that did
fell from 0.705 to 0.561 water IoU on the flooded fields of the USA ``water_dev`` chip). Undecidable
is ignored, never land.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .synthetic_water import drawn_land, uniform
from .water_augment import (
    IGNORE,
    MAX_PATH_REFLECTANCE,
    SHADOW_DIFFUSE,
    band_ids,
    band_spectrum,
    capped_path_reflectance,
    shade_under_path,
    smooth_field,
)

#: Steepest slope drawn per patch (degrees, 95th percentile of the relief's slopes).
SLOPE_DEG = (20.0, 60.0)
#: Sun zenith angle drawn per patch (degrees).
SUN_ZENITH_DEG = (25.0, 75.0)
#: A slope facing a low sun gets more direct light than flat ground, at most this many times.
MAX_GAIN = 1.6
#: Land with less direct light than this (share of flat ground's) is labelled 255: see the module docstring.
DEEP_SHADE = 0.3


def relief(height: int, width: int, steepest_deg: float) -> torch.Tensor:
    """A random elevation of winding valleys (in pixels of ground distance) whose 95th-percentile slope is ``steepest_deg``."""
    valleys = smooth_field(height, width, cells=int(uniform(3, 7))).abs()  # V-shaped valleys along its zero lines
    surface = valleys + 0.3 * smooth_field(height, width, cells=int(uniform(6, 12)))
    dz_dy, dz_dx = torch.gradient(surface)
    steep = torch.quantile(torch.hypot(dz_dx, dz_dy).reshape(-1), 0.95).clamp(min=1e-6)
    return surface * (math.tan(math.radians(steepest_deg)) / steep)


def direct_light(elevation: torch.Tensor, zenith_deg: float, azimuth_deg: float) -> torch.Tensor:
    """Direct sunlight on each facet relative to flat ground: ``max(n·s, 0) / cos θz``, capped at :data:`MAX_GAIN`.

    Rows run south and columns east (north up); the azimuth is clockwise from north."""
    dz_dy, dz_dx = torch.gradient(elevation)
    zenith, azimuth = math.radians(zenith_deg), math.radians(azimuth_deg)
    sun = (math.sin(zenith) * math.sin(azimuth), -math.sin(zenith) * math.cos(azimuth), math.cos(zenith))  # east, south, up
    cos_incidence = (-dz_dx * sun[0] - dz_dy * sun[1] + sun[2]) / torch.sqrt(1.0 + dz_dx**2 + dz_dy**2)
    return (cos_incidence.clamp(min=0.0) / math.cos(zenith)).clamp(max=MAX_GAIN)


class TerrainShading:
    """Shade a patch's land by a random relief under a random sun with probability ``p``; deep shade labelled 255.

    Called on raw values (reflectance × ``reflectance_scale``), validity and label of one patch;
    returns ``(values, label)``. The physics is in the module docstring."""

    def __init__(self, bands: Sequence[str], reflectance_scale: float, p: float,
                 path_share: tuple[float, float] = (0.0, 1.0)) -> None:
        """``path_share``: the range of ``u``, the share of the dark object kept as path radiance
        (``(1, 1)`` for patches known to be L1C, ``(0, 0)`` for L2A)."""
        ids = band_ids(bands)
        self.p, self.path_share = p, path_share
        self.diffuse = band_spectrum(SHADOW_DIFFUSE, ids)
        self.max_path = band_spectrum(MAX_PATH_REFLECTANCE, ids) * float(reflectance_scale)

    def __call__(self, values: torch.Tensor, valid: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        land = drawn_land(self.p, valid, label)
        if land is None:
            return values, label
        height, width = values.shape[-2:]
        elevation = relief(height, width, uniform(*SLOPE_DEG))
        direct = direct_light(elevation, uniform(*SUN_ZENITH_DEG), uniform(0.0, 360.0))
        light = self.diffuse[:, None, None] + (1.0 - self.diffuse)[:, None, None] * direct[None]
        path = capped_path_reflectance(values, valid, self.max_path) * uniform(*self.path_share)
        shaded = shade_under_path(values, path, light)
        label = torch.where(land & (direct < DEEP_SHADE), torch.full_like(label, IGNORE), label)
        return torch.where(land[None], shaded, values), label
