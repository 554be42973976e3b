"""How classification tiles look: reflectance rendered to the 8-bit look of EuroSAT-like tiles.

Numpy only (no torch): the rendering constants, the rendering a training run records in its card,
and the numpy rendering applied to GeoTIFF chips during training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from ..core.errors import SatVisionError
from ..models.card import Rendering

if TYPE_CHECKING:
    from .classification_settings import ClassificationTrainingSettings

#: EuroSAT RGB tiles are Sentinel-2 L1C B4, B3, B2 (digital numbers, reflectance × 10000) clipped
#: from 0–2750 to 1–255 (0 left for nodata), as the dataset's maintainer described it
#: (``gdal_translate -scale 0 2750 1 255``; jensleitloff/CNN-Sentinel issue 1). As our rendering
#: ``clip((r - low) / (high - low), 0, 1)`` quantised to 256 levels: 1/255 at r = 0, 1 at r = 0.275.
EUROSAT_RENDERING_HIGH = 0.275
EUROSAT_RENDERING_LOW = -EUROSAT_RENDERING_HIGH / 254.0
EUROSAT_BANDS = ("B4", "B3", "B2")


def render_function(reflectance_scale: float, rendering: Rendering | None) -> Callable[[np.ndarray], np.ndarray]:
    """Raster values → the rendered domain (reflectance, then the optional rendering), in numpy:
    the first two steps of :func:`models.normalisation.normalise`, for GeoTIFF chips."""

    def render(values: np.ndarray) -> np.ndarray:
        reflectance = values / reflectance_scale
        if rendering is None:
            return reflectance
        low, high = np.array(rendering.low)[:, None, None], np.array(rendering.high)[:, None, None]
        out = np.clip((reflectance - low) / (high - low), 0, 1)
        return np.round(out * (rendering.levels - 1)) / (rendering.levels - 1) if rendering.levels else out

    return render


def rendering_of(settings: ClassificationTrainingSettings, bands: int) -> Rendering | None:
    """The rendering a run records in its card (``--rendering``) for ``bands`` bands; ``None`` for none."""
    if settings.rendering == "none":
        return None
    if settings.rendering != "eurosat":
        raise SatVisionError(f"Unknown rendering {settings.rendering!r}; choose eurosat or none.")
    return Rendering([EUROSAT_RENDERING_LOW] * bands, [EUROSAT_RENDERING_HIGH] * bands, 256)

