"""Synthetic shallow water on land: flooded fields, narrow channels and ponds, by linear spectral mixing.

Why: the real scenes we may train on (``.build/water_data``) hold lakes, estuaries and the sea, but
little shallow flood water over fields and few channels one to four pixels wide; those are what
the bundled models missed on the hand-labelled flood chips (water found only in the middle of
flooded parcels, narrow rivers dropped). This step puts such water on the land of a real patch.

Physics, per band (reflectance; the patch's own pixels give the land and the bottom):

- **Water column**: a water-leaving spectrum from clear (:data:`CLEAR_WATER`) through moderately
  turbid to sediment-laden (:data:`~training.water_augment.SEDIMENT_MODERATE` →
  :data:`~training.water_augment.SEDIMENT_HIGH`) by a random concentration ``c`` (``U^1.5``: clear
  to moderate more often), varying ±25 % smoothly over the water body.
- **Bottom seen through the water**: the land pixel under the water, darkened as wet ground is
  (a factor 0.5–0.8), attenuated twice over the depth ``z`` (down and up):
  ``T = exp(-2 (a_w + c K_sed) z)`` with ``a_w`` the absorption of pure water
  (:data:`PURE_WATER_ABSORPTION`: negligible in blue, ~3 m⁻¹ in B8, hundreds to thousands per
  metre in B11/B12, so SWIR never sees the bottom: that is what separates shallow water from wet
  soil) and ``K_sed`` 5–20 m⁻¹ the extra attenuation of suspended sediment. The depth varies
  smoothly over the water body, log-uniform between 0.1 and 2 m.
- **Mixed pixels**: the shapes are drawn at 4× resolution and averaged, so a 10 m pixel holds a
  water share ``α``; its value is ``α·water + (1−α)·land`` (linear mixing of areas). The
  path radiance of the patch stays on top: its dark-object value (~0 on L2A), capped per band by
  :data:`~training.water_augment.MAX_PATH_REFLECTANCE` (on a land-only patch the darkest pixel is soil, not the path).

Shapes: a meandering **channel** 0.6–5 px wide across the patch (rivers, canals, ditches);
**flooded parcels** (a rotated grid of fields 6–20 px, the ones on low ground, a smooth field,
flooded whole); **ponds** (a few ellipses 1–6 px in radius). Water is put only on land (label 0)
that has data; existing water and ignored pixels are left alone.

Labels: water where ``α >= 0.5``; 255 (ignore, undecidable) where ``0.2 <= α < 0.5``; unchanged
elsewhere. Absorption values: Hale & Querry 1973 (Appl. Opt. 12) and Pope & Fry 1997 (Appl. Opt.
36), rounded; sediment attenuation: Doxaran et al. 2002; wet-soil darkening: Lobell & Asner 2002
(Soil Sci. Soc. Am. J. 66).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from .water_augment import (
    IGNORE,
    MAX_PATH_REFLECTANCE,
    SEDIMENT_HIGH,
    SEDIMENT_MODERATE,
    band_ids,
    band_spectrum,
    capped_path_reflectance,
    smooth_field,
)

LAND = 0
WATER = 1
SUPERSAMPLE = 4

#: Clear, deep inland water (reflectance): a little blue/green, nearly nothing from red on.
CLEAR_WATER: Mapping[str, float] = {
    "B1": 0.035, "B2": 0.035, "B3": 0.035, "B4": 0.02, "B5": 0.012, "B6": 0.006, "B7": 0.005, "B8": 0.004,
    "B8A": 0.004, "B9": 0.002, "B10": 0.0, "B11": 0.002, "B12": 0.001,
}
#: Absorption of pure water at the Sentinel-2 bands (m⁻¹), rounded.
PURE_WATER_ABSORPTION: Mapping[str, float] = {
    "B1": 0.007, "B2": 0.015, "B3": 0.064, "B4": 0.41, "B5": 0.7, "B6": 2.6, "B7": 2.4, "B8": 2.9,
    "B8A": 4.6, "B9": 40.0, "B10": 900.0, "B11": 620.0, "B12": 3100.0,
}
SHAPES = ("channel", "parcels", "ponds")


def uniform(low: float, high: float) -> float:
    """One draw from U(low, high) by torch's generator (seeded per item by the dataset)."""
    return low + (high - low) * float(torch.rand(()))


def drawn_land(p: float, valid: torch.Tensor, label: torch.Tensor) -> torch.Tensor | None:
    """The land with data a land step changes, or None when it does not run: drawn with probability
    ``p`` (the draw comes first, so seeded runs repeat) and only if the patch has such land."""
    if not bool(torch.rand(()) < p):
        return None
    land = valid & (label == LAND)
    return land if bool(land.any()) else None


def _pixel_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns (in pixels) of the sub-pixel sample centres, ``SUPERSAMPLE``× per axis."""
    rows = (torch.arange(height * SUPERSAMPLE, dtype=torch.float32) + 0.5) / SUPERSAMPLE
    columns = (torch.arange(width * SUPERSAMPLE, dtype=torch.float32) + 0.5) / SUPERSAMPLE
    return rows[:, None].expand(-1, columns.numel()), columns[None, :].expand(rows.numel(), -1)


def _area_share(fine: torch.Tensor) -> torch.Tensor:
    """The share of each pixel covered, from the sub-pixel samples (0/1)."""
    pooled = torch.nn.functional.avg_pool2d(fine[None, None].float(), SUPERSAMPLE)
    return pooled[0, 0]


def channel(height: int, width: int) -> torch.Tensor:
    """A meandering channel across the patch, 0.6–5 px wide: water share per pixel."""
    size = max(height, width)
    heading = uniform(0, 2 * math.pi)
    # pick a point in the patch, step back one patch size along the heading, then walk 3 patch sizes
    # forward with a smoothly turning heading: the channel enters, passes near that point and leaves
    y, x = uniform(0, height), uniform(0, width)
    y, x = y - math.sin(heading) * size, x - math.cos(heading) * size
    step, turn, points = size / 24, 0.0, []
    for _ in range(72):
        points.append((y, x))
        turn = 0.7 * turn + uniform(-0.35, 0.35)
        heading += turn
        y, x = y + math.sin(heading) * step, x + math.cos(heading) * step
    half_width = uniform(0.3, 2.5)
    fine_height, fine_width = height * SUPERSAMPLE, width * SUPERSAMPLE
    inside = torch.zeros(fine_height, fine_width, dtype=torch.bool)
    for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]):
        # only the sub-pixels near this segment: its bounding box grown by the half width
        top = max(0, math.floor((min(y0, y1) - half_width) * SUPERSAMPLE))
        bottom = min(fine_height, math.ceil((max(y0, y1) + half_width) * SUPERSAMPLE))
        left = max(0, math.floor((min(x0, x1) - half_width) * SUPERSAMPLE))
        right = min(fine_width, math.ceil((max(x0, x1) + half_width) * SUPERSAMPLE))
        if top >= bottom or left >= right:
            continue
        rows = (torch.arange(top, bottom, dtype=torch.float32)[:, None] + 0.5) / SUPERSAMPLE
        columns = (torch.arange(left, right, dtype=torch.float32)[None, :] + 0.5) / SUPERSAMPLE
        dy, dx = y1 - y0, x1 - x0
        along = (((rows - y0) * dy + (columns - x0) * dx) / max(dy * dy + dx * dx, 1e-6)).clamp(0.0, 1.0)
        distance2 = (rows - (y0 + along * dy)) ** 2 + (columns - (x0 + along * dx)) ** 2
        inside[top:bottom, left:right] |= distance2 <= half_width**2
    return _area_share(inside)


def parcels(height: int, width: int) -> torch.Tensor:
    """Flooded fields: a rotated grid of parcels, those on low ground (a smooth field) flooded whole."""
    cell = uniform(6, 20)
    angle = uniform(0, math.pi / 2)
    rows, columns = _pixel_grid(height, width)
    u = (columns * math.cos(angle) + rows * math.sin(angle)) / cell
    v = (-columns * math.sin(angle) + rows * math.cos(angle)) / cell
    parcel_u, parcel_v = torch.floor(u).long(), torch.floor(v).long()
    ground = smooth_field(height * SUPERSAMPLE, width * SUPERSAMPLE, cells=3)
    # the level of each parcel: the ground at its first sample, so a parcel floods whole
    keys = (parcel_u - parcel_u.min()) * 100_003 + (parcel_v - parcel_v.min())
    unique, inverse = torch.unique(keys.reshape(-1), return_inverse=True)
    level = torch.zeros(unique.numel()).scatter_reduce(0, inverse, ground.reshape(-1), reduce="mean", include_self=False)
    flooded_share = uniform(0.15, 0.6)
    threshold = torch.quantile(level, flooded_share)
    flooded = (level <= threshold)[inverse].reshape(rows.shape)
    return _area_share(flooded)


def ponds(height: int, width: int) -> torch.Tensor:
    """A few ponds: ellipses 1–6 px in radius."""
    rows, columns = _pixel_grid(height, width)
    inside = torch.zeros_like(rows, dtype=torch.bool)
    for _ in range(int(uniform(1, 7))):
        centre_y, centre_x = uniform(0, height), uniform(0, width)
        radius_y, radius_x = uniform(1, 6), uniform(1, 6)
        angle = uniform(0, math.pi)
        dy, dx = rows - centre_y, columns - centre_x
        along = dx * math.cos(angle) + dy * math.sin(angle)
        across = -dx * math.sin(angle) + dy * math.cos(angle)
        inside |= (along / radius_x) ** 2 + (across / radius_y) ** 2 <= 1.0
    return _area_share(inside)


SHAPE_MAKERS = {"channel": channel, "parcels": parcels, "ponds": ponds}


class SyntheticShallowWater:
    """Put shallow water (flooded fields, a channel or ponds) on the land of a patch with probability ``p``.

    Called on raw values (reflectance × ``reflectance_scale``), validity and label of one patch;
    returns ``(values, label)``. See the module docstring for the physics and the labels.
    """

    def __init__(self, bands: Sequence[str], reflectance_scale: float, p: float) -> None:
        ids = band_ids(bands)
        self.p, self.scale = p, float(reflectance_scale)
        self.clear = band_spectrum(CLEAR_WATER, ids)
        self.moderate = band_spectrum(SEDIMENT_MODERATE, ids)
        self.high = band_spectrum(SEDIMENT_HIGH, ids)
        self.absorption = band_spectrum(PURE_WATER_ABSORPTION, ids)
        self.max_path = band_spectrum(MAX_PATH_REFLECTANCE, ids) * self.scale

    def water_column(self, concentration: float) -> torch.Tensor:
        """Water-leaving reflectance per band: clear (0) → moderate (0.5) → sediment-laden (1)."""
        if concentration <= 0.5:
            return self.clear + (self.moderate - self.clear) * (concentration / 0.5)
        return self.moderate + (self.high - self.moderate) * ((concentration - 0.5) / 0.5)

    def __call__(self, values: torch.Tensor, valid: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        land = drawn_land(self.p, valid, label)
        if land is None:
            return values, label
        height, width = values.shape[-2:]
        shape = SHAPES[int(torch.randint(len(SHAPES), ()))]
        share = SHAPE_MAKERS[shape](height, width) * land
        concentration = float(torch.rand(())) ** 1.5  # clear to moderate more often than sediment-laden
        depth = torch.exp(math.log(0.1) + (math.log(2.0) - math.log(0.1)) * (0.5 + 0.5 * smooth_field(height, width, cells=3)))
        attenuation = self.absorption + concentration * uniform(5.0, 20.0)
        transmitted = torch.exp(-2.0 * attenuation[:, None, None] * depth[None])
        dark = capped_path_reflectance(values, valid, self.max_path)
        bottom = (values - dark).clamp(min=0.0) * uniform(0.5, 0.8)
        plume = (1.0 + 0.25 * smooth_field(height, width, cells=4))[None]  # sediment is never uniform
        water = dark + self.water_column(concentration)[:, None, None] * plume * self.scale + transmitted * bottom
        mixed = share[None] * water + (1.0 - share[None]) * values
        out = torch.where(valid[None], mixed.clamp(min=0.0), values)
        label = torch.where(share >= 0.5, torch.full_like(label, WATER), label)
        label = torch.where((share >= 0.2) & (share < 0.5), torch.full_like(label, IGNORE), label)
        return out, label
