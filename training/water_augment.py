"""Physically grounded augmentation for water segmentation: water colour, atmosphere, clouds, sensor.

Our real training scenes (``.build/water_data``) hold mostly clear, dark water; the bundled model
called turbid, sediment-laden flood water land. These transforms add the variety the data lacks.
They work on raw raster values (reflectance × ``reflectance_scale``) of one patch and know each
band by its Sentinel-2 name (``B2``, ``B02``, ``red``… via :func:`core.bands.normalise_band_name`),
so a 4-band (B2, B3, B4, B8) and a 6-band (… B11, B12) model get the same physics on the bands
they have. Every transform draws from ``torch``'s random generator, which the dataset seeds per
item, so runs repeat for a seed. Values stay ``>= 0``; invalid pixels (no data) are never touched.

Spectra (reflectance, per Sentinel-2 band; rounded, representative values, not fits):

- **Sediment-laden water** (:data:`SEDIMENT_MODERATE` → :data:`SEDIMENT_HIGH`, interpolated by a
  random concentration): reflectance rises with suspended sediment first in green and red, then
  in the red edge and near infrared, and saturates at high concentration: red ~0.08–0.15 and NIR
  ~0.03–0.10 at hundreds to thousands of g/m³, while SWIR stays < ~0.03 because water itself
  absorbs there (Doxaran et al. 2002, Remote Sens. Environ. 81, Gironde estuary; Nechad et al.
  2010, Remote Sens. Environ. 114; Dogliotti et al. 2015, Remote Sens. Environ. 156, red/NIR
  turbidity; Knaeps et al. 2015, Remote Sens. Environ. 168, SWIR of extremely turbid waters).
- **Algae bloom** (:data:`ALGAE`): chlorophyll raises green (peak near 560 nm), absorbs red
  (665 nm), and gives a red-edge peak near 705 nm and moderately raised NIR (Gitelson 1992,
  Int. J. Remote Sens. 13; Matthews et al. 2012 MPH, Remote Sens. Environ. 124; Hu 2009 FAI,
  Remote Sens. Environ. 113). Kept moderate (NIR ~0.05): a surface scum with NIR above red
  looks like vegetation and is not what a water label should teach.
- **Cloud** (:data:`CLOUD`): bright and flat from blue to NIR (0.3–0.65 after a random
  brightness), lower in SWIR (water/ice absorption; B11 ~0.2–0.45, B12 ~0.15–0.3), as the cloud
  tests of Fmask (Zhu & Woodcock 2012) and :mod:`training.water_label_builder` expect.
- **Shadow**: the direct beam is blocked, diffuse sky light remains, and sky light is bluish:
  a band keeps ``diffuse + (1 - diffuse) * (1 - depth)`` of its surface signal with the diffuse
  share :data:`SHADOW_DIFFUSE` falling from 0.3 (blue) to 0.05 (SWIR). The path radiance (the
  patch's dark object capped by :data:`MAX_PATH_REFLECTANCE`) is scattered above the shadow and
  stays whole: at L1C a shadow keeps its blue and green haze while its NIR drops, which is what
  makes shadows look like water.

Labels: water colour changes keep the water label (still water). Under a thick cloud (opacity
>= ``thick``) the label becomes 255 (ignore: what lies under it cannot be seen), never land;
thin cloud and shadows keep their labels (shadow on land stays land: the model must learn that
shadow is not water).

The +1000 offset of processing baseline >= 04.00 (January 2022): our data builder removes it
(:mod:`training.water_label_scenes`), so training values are harmonised; but what users feed
may not be (a SAFE product's JP2 bands read as they are), and SatVision's inference does not
remove it. :class:`BaselineOffset` therefore *adds* ``0.1 × reflectance_scale`` (1000 DN at the
usual scale) to every valid value of a patch: it simulates an un-harmonised input. It trades
absolute-level cues for robustness to such inputs, so it is off unless asked for. The other
direction of the L1C↔L2A difference is covered by :class:`training.augment.SimulateL2A` (L1C →
L2A: dark-object subtraction) and :class:`Haze` (L2A → L1C: path radiance added).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from ..core.bands import normalise_band_name
from ..core.errors import SatVisionError

IGNORE = 255
WATER = 1

#: Central wavelengths of Sentinel-2 MSI bands in micrometres (S2A, ESA's spectral response).
WAVELENGTH_UM: Mapping[str, float] = {
    "B1": 0.443, "B2": 0.492, "B3": 0.560, "B4": 0.665, "B5": 0.704, "B6": 0.740, "B7": 0.783,
    "B8": 0.833, "B8A": 0.865, "B9": 0.945, "B10": 1.374, "B11": 1.614, "B12": 2.202,
}

#: Moderately turbid water (tens of g/m³ suspended sediment).
SEDIMENT_MODERATE: Mapping[str, float] = {
    "B1": 0.03, "B2": 0.04, "B3": 0.07, "B4": 0.06, "B5": 0.05, "B6": 0.03, "B7": 0.025, "B8": 0.02,
    "B8A": 0.018, "B9": 0.005, "B10": 0.0, "B11": 0.004, "B12": 0.002,
}
#: Highly turbid, sediment-laden water (hundreds to thousands of g/m³: flood water, estuaries).
SEDIMENT_HIGH: Mapping[str, float] = {
    "B1": 0.06, "B2": 0.08, "B3": 0.13, "B4": 0.15, "B5": 0.14, "B6": 0.11, "B7": 0.10, "B8": 0.09,
    "B8A": 0.085, "B9": 0.03, "B10": 0.0, "B11": 0.02, "B12": 0.01,
}
#: A moderate algae bloom: green up, red absorbed, red-edge peak, NIR moderately up.
ALGAE: Mapping[str, float] = {
    "B1": 0.02, "B2": 0.03, "B3": 0.07, "B4": 0.04, "B5": 0.07, "B6": 0.06, "B7": 0.055, "B8": 0.05,
    "B8A": 0.045, "B9": 0.015, "B10": 0.0, "B11": 0.008, "B12": 0.004,
}
#: The most path reflectance an L1C patch carries per band (clear to hazy air; Rayleigh and aerosol
#: scattering fall with wavelength). The darkest pixel of a patch estimates its path radiance only
#: where the patch has dark water; on a land-only patch it is the darkest soil, so it is capped here.
MAX_PATH_REFLECTANCE: Mapping[str, float] = {
    "B1": 0.12, "B2": 0.09, "B3": 0.06, "B4": 0.045, "B5": 0.04, "B6": 0.035, "B7": 0.03, "B8": 0.03,
    "B8A": 0.025, "B9": 0.02, "B10": 0.0, "B11": 0.01, "B12": 0.005,
}
#: A thick cloud at brightness 1 (scaled per cloud by a random brightness).
CLOUD: Mapping[str, float] = {
    "B1": 0.5, "B2": 0.5, "B3": 0.5, "B4": 0.5, "B5": 0.5, "B6": 0.5, "B7": 0.5, "B8": 0.5,
    "B8A": 0.5, "B9": 0.2, "B10": 0.3, "B11": 0.35, "B12": 0.23,
}
#: Share of a band's light that is diffuse sky light and so remains in a cloud shadow.
SHADOW_DIFFUSE: Mapping[str, float] = {
    "B1": 0.3, "B2": 0.3, "B3": 0.22, "B4": 0.15, "B5": 0.13, "B6": 0.12, "B7": 0.11, "B8": 0.1,
    "B8A": 0.1, "B9": 0.08, "B10": 0.05, "B11": 0.05, "B12": 0.05,
}


def band_ids(bands: Sequence[str]) -> list[str]:
    """Sentinel-2 band ids (``B2``…``B12``, ``B8A``) of the model's bands; a clear error otherwise."""
    ids = [normalise_band_name(band) for band in bands]
    unknown = [band for band, band_id in zip(bands, ids) if band_id not in WAVELENGTH_UM]
    if unknown:
        raise SatVisionError(
            "The physical augmentations (synthetic water, snow and burn scars, terrain shading, turbid water, algae, haze, "
            f"clouds) need Sentinel-2 band names, but {', '.join(unknown)} is none. Name the bands B1…B12/B8A (or blue, green, "
            "red, nir, swir16, swir22) in --bands, or turn these augmentations off "
            "(--synthetic-water/--snow/--burn-scars/--terrain-shading/--turbid/--algae/--haze/--clouds 0)."
        )
    return ids


def band_spectrum(table: Mapping[str, float], ids: Sequence[str], scale: float = 1.0) -> torch.Tensor:
    """The values of ``table`` for the bands ``ids``, times ``scale``, as a float32 tensor."""
    return torch.tensor([table[band] * scale for band in ids], dtype=torch.float32)


def smooth_field(height: int, width: int, cells: int = 4) -> torch.Tensor:
    """A smooth random field in about [-1, 1]: ``cells``² normal values upsampled bicubically."""
    coarse = torch.randn(1, 1, cells, cells)
    field = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0, 0]
    return field.clamp(-2.0, 2.0) / 2.0


def dark_object(values: torch.Tensor, valid: torch.Tensor, percentile: float = 1.0) -> torch.Tensor:
    """Per band, the ``percentile`` of the valid pixels (on a subsample): a dark-object estimate."""
    pixels = values[:, valid]
    pixels = pixels[:, :: max(1, pixels.shape[1] // 16384)]
    if pixels.shape[1] == 0:
        return torch.zeros(values.shape[0])
    rank = min(pixels.shape[1], max(1, round(pixels.shape[1] * percentile / 100.0)))
    return torch.kthvalue(pixels, rank, dim=1).values


def capped_path_reflectance(values: torch.Tensor, valid: torch.Tensor, max_path: torch.Tensor) -> torch.Tensor:
    """The patch's path radiance per band, ``(bands, 1, 1)``: its dark-object value capped by ``max_path``
    (on a land-only patch the darkest pixel is soil, not the path; see :data:`MAX_PATH_REFLECTANCE`)."""
    return torch.minimum(dark_object(values, valid), max_path)[:, None, None]


def shade_under_path(values: torch.Tensor, path: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """``path + (values − path)·light``: shade (or light) the surface signal while the path radiance,
    scattered above the shade, stays whole (cloud shadows, terrain shading)."""
    return path + (values - path).clamp(min=0.0) * light


class WaterColour:
    """Move the water pixels (label 1) towards another water spectrum, keeping their texture.

    The water's own signal is the median of the patch's water pixels less the patch's dark-object
    value (the 1st percentile of its valid pixels: the path radiance an L1C patch carries, about
    zero on L2A). Each band is raised by ``strength × max(target − that signal, 0)``: only raised,
    never lowered, so water already more turbid than the target stays as it is, and the path
    radiance stays on top (an L1C patch gets an L1C-looking turbid water). The target of the
    sediment kind interpolates :data:`SEDIMENT_MODERATE` → :data:`SEDIMENT_HIGH` by a random
    concentration; ``strength`` (0.5–1) varies smoothly over the patch (plumes are not uniform).
    Labels are unchanged.
    """

    def __init__(self, bands: Sequence[str], reflectance_scale: float, p: float, kind: str = "sediment") -> None:
        ids = band_ids(bands)
        self.p, self.kind = p, kind
        if kind == "sediment":
            self.low = band_spectrum(SEDIMENT_MODERATE, ids, reflectance_scale)
            self.high = band_spectrum(SEDIMENT_HIGH, ids, reflectance_scale)
        elif kind == "algae":
            self.low = self.high = band_spectrum(ALGAE, ids, reflectance_scale)
        else:
            raise ValueError(f"unknown water colour {kind!r}")

    def __call__(self, values: torch.Tensor, valid: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        apply = bool(torch.rand(()) < self.p)
        concentration = float(torch.rand(()))
        field = smooth_field(*values.shape[-2:])
        water = valid & (label == WATER)
        if not apply or not bool(water.any()):
            return values, label
        target = self.low + concentration * (self.high - self.low)
        reference = values[:, water].median(dim=1).values - dark_object(values, valid)
        raise_by = (target - reference).clamp(min=0.0)
        strength = (0.75 + 0.25 * field).clamp(0.5, 1.0)  # 0.5–1 of the way, smooth over the patch
        raised = values + raise_by[:, None, None] * strength[None]
        return torch.where(water[None], raised, values), label


class CloudAndShadow:
    """A soft random cloud blob (bright in all bands) and its shadow, offset as the sun casts it.

    Opacity: a Gaussian envelope of random centre and radius (8–35 % of the patch) roughened by a
    smooth field, ramped to [0, peak] with peak in [0.3, 1] (thin to thick). The shadow is the
    same blob moved 8–40 % of the patch in a random direction, darkening each band's surface signal
    (the path radiance stays) by a random depth (0.4–0.8 of the direct light) less the diffuse share
    :data:`SHADOW_DIFFUSE`; a thin
    cloud casts a fainter shadow (full depth from opacity ``thick`` on). Labels:
    255 where opacity >= ``thick``; unchanged elsewhere (shadow keeps water and land).
    """

    def __init__(self, bands: Sequence[str], reflectance_scale: float, p: float, thick: float = 0.5) -> None:
        ids = band_ids(bands)
        self.p, self.thick = p, thick
        self.cloud = band_spectrum(CLOUD, ids, reflectance_scale)
        self.diffuse = band_spectrum(SHADOW_DIFFUSE, ids)
        self.max_path = band_spectrum(MAX_PATH_REFLECTANCE, ids, reflectance_scale)

    def opacity(self, height: int, width: int) -> torch.Tensor:
        centre_y, centre_x = float(torch.rand(())) * height, float(torch.rand(())) * width
        radius = (0.08 + 0.27 * float(torch.rand(()))) * max(height, width)
        peak = 0.3 + 0.7 * float(torch.rand(()))
        rows = torch.arange(height, dtype=torch.float32)[:, None]
        columns = torch.arange(width, dtype=torch.float32)[None, :]
        envelope = torch.exp(-((rows - centre_y) ** 2 + (columns - centre_x) ** 2) / (2 * radius**2))
        density = envelope * (1.0 + 0.5 * smooth_field(height, width, cells=6))
        return ((density - 0.25) / 0.45).clamp(0.0, 1.0) * peak

    def __call__(self, values: torch.Tensor, valid: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        apply = bool(torch.rand(()) < self.p)
        height, width = values.shape[-2:]
        alpha = self.opacity(height, width)
        angle = 2 * math.pi * float(torch.rand(()))
        distance = (0.08 + 0.32 * float(torch.rand(()))) * max(height, width)
        depth = 0.4 + 0.4 * float(torch.rand(()))
        brightness = 0.6 + 0.7 * float(torch.rand(()))
        if not apply:
            return values, label
        shift = (round(distance * math.sin(angle)), round(distance * math.cos(angle)))
        shadow = _shifted(alpha, *shift)
        kept = 1.0 - depth * (1.0 - self.diffuse)[:, None, None] * (shadow / self.thick).clamp(max=1.0)[None]
        out = shade_under_path(values, capped_path_reflectance(values, valid, self.max_path), kept)
        out = out * (1.0 - alpha[None]) + (self.cloud * brightness)[:, None, None] * alpha[None]
        out = torch.where(valid[None], out, values)
        label = torch.where(valid & (alpha >= self.thick), torch.full_like(label, IGNORE), label)
        return out, label


def _shifted(field: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``field`` moved by ``(dy, dx)`` pixels, zero where it comes from outside."""
    out = torch.zeros_like(field)
    height, width = field.shape
    if abs(dy) >= height or abs(dx) >= width:
        return out
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = \
        field[max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)]
    return out


class SunGain:
    """One multiplicative factor per patch on every band (illumination: sun elevation, BRDF, slope).

    Reflectance products are already divided by the cosine of the sun zenith angle, but low winter
    sun, view/sun geometry and slopes still scale all bands together by tens of per cent.
    """

    def __init__(self, p: float, gain: tuple[float, float] = (0.7, 1.3)) -> None:
        self.p, self.gain = p, gain

    def __call__(self, values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        apply = bool(torch.rand(()) < self.p)
        factor = self.gain[0] + (self.gain[1] - self.gain[0]) * float(torch.rand(()))
        return values * factor if apply else values


class Haze:
    """Additive path radiance decreasing with wavelength, with the transmittance loss it brings.

    ``path(λ) = a (λ / 0.492 µm)^-α`` with ``a`` (at B2) in ``[0, haze_max]`` reflectance and
    ``α`` in [1, 4] (1: aerosol-like, Ångström exponents of haze; 4: Rayleigh scattering);
    ``out = value × (1 − path) + path`` (first-order: what is scattered into the path is lost from
    the surface signal), with ``a`` varying ±20 % smoothly over the patch. On L2A-like patches this
    is the L2A → L1C direction (top-of-atmosphere blue over dark water ~0.07–0.1).
    """

    def __init__(self, bands: Sequence[str], reflectance_scale: float, p: float, haze_max: float = 0.08) -> None:
        self.wavelength = torch.tensor([WAVELENGTH_UM[band] for band in band_ids(bands)])
        self.p, self.haze_max, self.scale = p, haze_max, float(reflectance_scale)

    def __call__(self, values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        apply = bool(torch.rand(()) < self.p)
        amount = self.haze_max * float(torch.rand(()))
        exponent = 1.0 + 3.0 * float(torch.rand(()))
        field = 1.0 + 0.2 * smooth_field(*values.shape[-2:])
        if not apply:
            return values
        path = (amount * (self.wavelength / WAVELENGTH_UM["B2"]) ** -exponent)[:, None, None] * field[None]
        out = values * (1.0 - path) + path * self.scale
        return torch.where(valid[None], out, values)


class BaselineOffset:
    """Add the +1000 DN offset of processing baseline >= 04.00 (``0.1 × reflectance_scale``) to every
    valid value: an un-harmonised input as a user may feed it (see the module docstring)."""

    def __init__(self, reflectance_scale: float, p: float) -> None:
        self.offset, self.p = 0.1 * float(reflectance_scale), p

    def __call__(self, values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if bool(torch.rand(()) < self.p):
            return torch.where(valid[None], values + self.offset, values)
        return values


class SensorNoise:
    """Gaussian noise per pixel and band, sigma drawn per patch from ``[0, sigma]`` reflectance."""

    def __init__(self, reflectance_scale: float, sigma: float) -> None:
        self.sigma = sigma * float(reflectance_scale)

    def __call__(self, values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        sigma = self.sigma * float(torch.rand(()))
        noisy = (values + torch.randn_like(values) * sigma).clamp(min=0.0)
        return torch.where(valid[None], noisy, values)
