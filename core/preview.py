"""Preview pictures of rasters (true colour PNGs), read decimated so memory stays small."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio.windows import Window, from_bounds

from .atomic import atomic_path
from .raster import open_raster, select_bands

TRUE_COLOUR = ("B4", "B3", "B2")


def stretch(band: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``band`` scaled to [0, 1] between the 2nd and 98th percentile of its valid pixels."""
    values = band[valid]
    low, high = np.percentile(values, (2, 98)) if values.size else (0.0, 1.0)
    return np.clip((band - low) / max(high - low, 1e-6), 0, 1)


def read_true_colour(
    raster: str | os.PathLike[str],
    max_side: int = 1024,
    bands: Sequence[int] | None = None,
    bounds: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """An RGBA uint8 array of the raster's B4/B3/B2, at most ``max_side`` pixels wide or high.

    ``bands``: the 1-based raster bands to show as red, green and blue (default: B4, B3, B2 by band
    description). ``bounds``: only this part of the raster (west, south, east, north in its CRS), e.g.
    the grid of a mask made for an extent. Each band is stretched between its 2nd and 98th percentile
    of valid pixels; invalid (nodata) pixels are transparent.
    """
    with open_raster(raster) as dataset:
        indexes = list(bands) if bands else select_bands(dataset, TRUE_COLOUR)
        whole = Window(0, 0, dataset.width, dataset.height)
        window = from_bounds(*bounds, transform=dataset.transform).round_offsets().round_lengths() if bounds else whole
        boundless = window != whole  # only a part (an extent's mask) may reach past the raster's edge
        factor = max(1.0, max(window.width, window.height) / max_side)
        shape = (max(1, round(window.height / factor)), max(1, round(window.width / factor)))
        data = dataset.read(indexes, window=window, out_shape=(len(indexes), *shape), boundless=boundless).astype("float32")
        masks = dataset.read_masks(indexes, window=window, out_shape=(len(indexes), *shape), boundless=boundless)
        valid = np.all(masks > 0, axis=0)
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
    bands: Sequence[int] | None = None,
) -> Path:
    """True colour of ``raster`` with the outlines of ``mask`` (1 = inside) drawn over it.

    The mask must lie on the raster's grid (as SatVision's masks do), the whole of it or the part
    a job was limited to; both are read decimated to at most ``max_side`` pixels, so memory stays
    small for any raster size. ``bands``: as :func:`read_true_colour`.
    """
    from PIL import Image
    from rasterio.transform import array_bounds

    with open_raster(mask) as dataset:
        rgba = read_true_colour(raster, max_side, bands=bands,
                                bounds=array_bounds(dataset.height, dataset.width, dataset.transform))
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


def write_tile_class_preview(
    raster: str | os.PathLike[str],
    tiles: str | os.PathLike[str],
    png: str | os.PathLike[str],
    colours: dict[str, str],
    max_side: int = 1400,
    title: str = "",
    bands: Sequence[int] | None = None,
) -> Path:
    """True colour of ``raster`` with each classified tile of the vector layer ``tiles`` filled
    half-transparent in its class colour, outlined, and a legend with the tile count per class.

    Tiles must be in the raster's CRS (as ``classifytiles`` writes them). Tiles marked ``nodata``
    are drawn as grey outlines. ``bands``: as :func:`read_true_colour`.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Polygon
    from osgeo import ogr
    from rasterio.transform import array_bounds

    from .raster import grid_of

    rgba = read_true_colour(raster, max_side, bands=bands)
    with open_raster(raster) as dataset:
        grid = grid_of(dataset)
    west, south, east, north = array_bounds(grid.height, grid.width, grid.transform)
    figure, axis = plt.subplots(figsize=(11, 11 * rgba.shape[0] / rgba.shape[1] + 0.6))
    axis.imshow(rgba, extent=(west, east, south, north))
    counts: dict[str, int] = {}
    source = ogr.Open(os.fspath(tiles))
    try:
        layer = source.GetLayer(0)
        for feature in layer:
            ring = feature.GetGeometryRef().GetGeometryRef(0)
            points = [ring.GetPoint_2D(i) for i in range(ring.GetPointCount())]
            name = feature.GetField("class")
            if name is None:
                axis.add_patch(Polygon(points, closed=True, fill=False, edgecolor="#9e9e9e", linewidth=0.3))
                continue
            counts[name] = counts.get(name, 0) + 1
            colour = colours.get(name, "#ff00ff")
            axis.add_patch(Polygon(points, closed=True, facecolor=colour, alpha=0.45, edgecolor=colour, linewidth=0.4))
    finally:
        source = None
    axis.set_xlim(west, east)
    axis.set_ylim(south, north)
    axis.set_axis_off()
    legend = [Patch(facecolor=colours.get(name, "#ff00ff"), alpha=0.7, label=f"{name} ({count})")
              for name, count in sorted(counts.items(), key=lambda item: -item[1])]
    if legend:
        axis.legend(handles=legend, loc="lower left", fontsize=9, framealpha=0.85)
    if title:
        axis.set_title(title)
    figure.tight_layout()
    with atomic_path(png) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    plt.close(figure)
    return Path(png)
