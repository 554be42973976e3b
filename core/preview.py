"""Preview pictures of rasters (true colour PNGs), read decimated so memory stays small."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .raster import open_raster, select_bands

TRUE_COLOUR = ("B4", "B3", "B2")


def stretch(band: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``band`` scaled to [0, 1] between the 2nd and 98th percentile of its valid pixels."""
    values = band[valid]
    low, high = np.percentile(values, (2, 98)) if values.size else (0.0, 1.0)
    return np.clip((band - low) / max(high - low, 1e-6), 0, 1)


def read_true_colour(raster: str | os.PathLike[str], max_side: int = 1024) -> np.ndarray:
    """An RGBA uint8 array of the raster's B4/B3/B2, at most ``max_side`` pixels wide or high.

    Each band is stretched between its 2nd and 98th percentile of valid pixels; invalid
    (nodata) pixels are transparent.
    """
    with open_raster(raster) as dataset:
        indexes = select_bands(dataset, TRUE_COLOUR)
        factor = max(1.0, max(dataset.width, dataset.height) / max_side)
        shape = (max(1, round(dataset.height / factor)), max(1, round(dataset.width / factor)))
        data = dataset.read(indexes, out_shape=(len(indexes), *shape)).astype("float32")
        valid = np.all(dataset.read_masks(indexes, out_shape=(len(indexes), *shape)) > 0, axis=0)
    rgba = np.zeros((*shape, 4), dtype=np.uint8)
    for channel, band in enumerate(data):
        rgba[..., channel] = (stretch(band, valid) * 255).astype(np.uint8)
    rgba[..., 3] = np.where(valid, 255, 0)
    return rgba


def write_true_colour_png(raster: str | os.PathLike[str], png: str | os.PathLike[str], max_side: int = 1024) -> Path:
    """Write the true-colour preview of ``raster`` to ``png`` atomically."""
    from PIL import Image

    with atomic_path(png) as temporary:
        Image.fromarray(read_true_colour(raster, max_side), mode="RGBA").save(temporary, format="PNG")
    return Path(png)


def write_outline_preview(
    raster: str | os.PathLike[str],
    mask: str | os.PathLike[str],
    png: str | os.PathLike[str],
    max_side: int = 1600,
    colour: tuple[int, int, int] = (255, 230, 0),
) -> Path:
    """True colour of ``raster`` with the outlines of ``mask`` (1 = inside) drawn over it.

    The mask must lie on the raster's grid (as SatVision's masks do); both are read decimated
    to at most ``max_side`` pixels, so memory stays small for any raster size.
    """
    from PIL import Image

    rgba = read_true_colour(raster, max_side)
    with open_raster(mask) as dataset:
        inside = dataset.read(1, out_shape=rgba.shape[:2]) == 1
    interior = inside.copy()
    interior[1:, :] &= inside[:-1, :]
    interior[:-1, :] &= inside[1:, :]
    interior[:, 1:] &= inside[:, :-1]
    interior[:, :-1] &= inside[:, 1:]
    rgba[inside & ~interior, :3] = colour
    with atomic_path(png) as temporary:
        Image.fromarray(rgba, mode="RGBA").save(temporary, format="PNG")
    return Path(png)
