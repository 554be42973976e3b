"""A land cover laid on a patch's land, labelled land: what synthetic snow and burn scars share.

Each step mixes a spectrum between two end members (fresh to old snow, char to ash), shades it
with a smooth illumination field, adds a share of the patch's path radiance, and lays it on the
land with a patchy cover (:func:`patchy_share`). Water and ignored pixels are left alone; labels
are unchanged. The physics of each cover is in its module (:mod:`training.synthetic_snow`,
:mod:`training.synthetic_burn`).
"""

from __future__ import annotations

from typing import ClassVar, Mapping, Sequence

import torch

from .synthetic_water import drawn_land, uniform
from .water_augment import MAX_PATH_REFLECTANCE, band_ids, band_spectrum, capped_path_reflectance, smooth_field


def patchy_share(height: int, width: int, cover: tuple[float, float], edge: tuple[float, float],
                 density: tuple[float, float]) -> torch.Tensor:
    """Per pixel the share of a patch a land cover (snow, a burn scar) takes: a smooth random field
    above the level that leaves a share drawn from ``cover`` of the patch covered, soft-edged over a
    width drawn from ``edge`` (in field units), times a density drawn from ``density`` (partial
    cover: forest under snow, unburnt plants in a scar)."""
    field = smooth_field(height, width, cells=int(uniform(2, 7)))
    level = torch.quantile(field.reshape(-1), 1.0 - uniform(*cover))
    width_of_edge = uniform(*edge)
    return ((field - level) / width_of_edge + 0.5).clamp(0.0, 1.0) * uniform(*density)


class LandCoverStep:
    """Lay the cover on the land of a patch with probability ``p``; labels unchanged.

    Called on raw values (reflectance × ``reflectance_scale``), validity and label of one patch;
    returns ``(values, label)``. Subclasses give the end members and the ranges below.
    """

    #: The two end-member spectra (reflectance per band) the cover's spectrum is mixed between.
    end_members: ClassVar[tuple[Mapping[str, float], Mapping[str, float]]]
    #: Ranges of :func:`patchy_share`'s cover, edge and density.
    cover: ClassVar[tuple[float, float]]
    edge: ClassVar[tuple[float, float]]
    density: ClassVar[tuple[float, float]]
    #: Range of the darkest illumination over the patch (the brightest is 1).
    darkest_light: ClassVar[tuple[float, float]]

    def __init__(self, bands: Sequence[str], reflectance_scale: float, p: float) -> None:
        ids = band_ids(bands)
        self.p, self.scale = p, float(reflectance_scale)
        self.first, self.second = (band_spectrum(spectrum, ids) for spectrum in self.end_members)
        self.max_path = band_spectrum(MAX_PATH_REFLECTANCE, ids) * self.scale

    def mix(self) -> float:
        """Where the spectrum lies between the first (0) and the second (1) end member."""
        return float(torch.rand(()))

    def path_share(self) -> float:
        """The share of the patch's capped dark object added as path radiance."""
        return 1.0

    def __call__(self, values: torch.Tensor, valid: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        land = drawn_land(self.p, valid, label)
        if land is None:
            return values, label
        height, width = values.shape[-2:]
        share = patchy_share(height, width, cover=self.cover, edge=self.edge, density=self.density) * land
        spectrum = self.first + (self.second - self.first) * self.mix()
        low = uniform(*self.darkest_light)
        illumination = low + (1.0 - low) * (0.5 + 0.5 * smooth_field(height, width, cells=4))
        path = capped_path_reflectance(values, valid, self.max_path) * self.path_share()
        surface = path + spectrum[:, None, None] * illumination[None] * self.scale
        mixed = share[None] * surface + (1.0 - share[None]) * values
        return torch.where(valid[None], mixed.clamp(min=0.0), values), label
