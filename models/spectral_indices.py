"""Spectral indices a segmentation network takes beside its bands (the card's ``normalisation.indices``).

A normalised difference ``(plus - minus) / (plus + minus)`` of two reflectance bands does not
change when the light does (sun angle, thin haze and terrain scale both bands alike), which a
network fed only normalised bands has to learn from the scenes it saw. Given as an input
channel, the index's meaning is the same on every scene.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ..core.errors import SatVisionError
from .card import NormalisedDifference

if TYPE_CHECKING:
    import torch

#: Indices by name: (plus band, minus band), Sentinel-2 band names.
KNOWN_INDICES = {
    "NDWI": ("B3", "B8"),  # McFeeters 1996: open water > 0
    "MNDWI": ("B3", "B11"),  # Xu 2006: separates water from built-up land and shadow
    "NDVI": ("B8", "B4"),
}


def index_inputs(names: Sequence[str], bands: Sequence[str]) -> list[NormalisedDifference]:
    """The card entries of the indices ``names`` (see :data:`KNOWN_INDICES`) over ``bands``."""
    indices = []
    for name in names:
        key = name.upper()
        if key not in KNOWN_INDICES:
            raise SatVisionError(f"Unknown spectral index {name!r}; choose from {', '.join(KNOWN_INDICES)}.")
        plus, minus = KNOWN_INDICES[key]
        missing = [band for band in (plus, minus) if band not in bands]
        if missing:
            raise SatVisionError(f"The index {key} needs band(s) {', '.join(missing)}, which the model's bands "
                                 f"({', '.join(bands)}) lack: add them to --bands or drop {key}.")
        indices.append(NormalisedDifference(key, plus, minus))
    if len({index.name for index in indices}) != len(indices):
        raise SatVisionError("Each spectral index may be given once.")
    return indices


def index_channels(reflectance: "torch.Tensor", indices: Sequence[NormalisedDifference], bands: Sequence[str]) -> "torch.Tensor":
    """One channel per index from ``reflectance`` ``(..., C, H, W)`` whose channels are ``bands``:
    the normalised difference in [-1, 1], 0 where the two bands sum to zero or less (nodata,
    over-corrected dark pixels). Shape ``(..., len(indices), H, W)``."""
    import torch

    axis = reflectance.dim() - 3
    bands = list(bands)
    channels = []
    for index in indices:
        plus = reflectance.narrow(axis, bands.index(index.plus), 1)
        minus = reflectance.narrow(axis, bands.index(index.minus), 1)
        total = plus + minus
        difference = (plus - minus) / total.clamp_min(1e-6)
        channels.append(torch.where(total > 0, difference, torch.zeros_like(difference)).clamp(-1.0, 1.0))
    return torch.cat(channels, dim=axis)
