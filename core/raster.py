"""Raster I/O shared by every algorithm: open, pick bands, read windows, write GeoTIFFs.

Built on rasterio (Debian's build shares GDAL with QGIS). Reads are windowed so that memory
follows the window, not the raster; writes are atomic (see :mod:`core.atomic`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError  # GDAL errors during reads (CPLE_AppDefinedError, ...); not re-exported
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

from .atomic import atomic_path
from .bands import check_band_positions, match_bands
from .errors import RasterError, SatVisionError

#: Creation options for every GeoTIFF SatVision writes.
GEOTIFF_CREATION_OPTIONS: Mapping[str, Any] = {
    "tiled": True,
    "blockxsize": 256,
    "blockysize": 256,
    "compress": "deflate",
    "zlevel": 1,  # a third of the default level's time; float probabilities hardly compress further
    "bigtiff": "if_safer",
}

#: GDAL's block cache during a streaming job. GDAL keeps every block it reads or writes in one
#: process-wide cache of 5 % of the RAM by default, so a long sequential pass over a large raster
#: grows the process by up to that much for no gain (each block is used once).
STREAMING_BLOCK_CACHE_BYTES = 128 * 2**20


@contextlib.contextmanager
def bounded_block_cache(limit_bytes: int = STREAMING_BLOCK_CACHE_BYTES) -> Iterator[None]:
    """Cap GDAL's (global) block cache at ``limit_bytes`` during the ``with`` block, then restore it.

    Memory of raster work must depend on tile and batch size only, not on the raster's size.
    A smaller cap that is already set (by the user or QGIS) is left alone.
    """
    from osgeo import gdal

    previous = gdal.GetCacheMax()
    lowered = previous > limit_bytes
    if lowered:
        gdal.SetCacheMax(limit_bytes)
    try:
        yield
    finally:
        if lowered:
            gdal.SetCacheMax(previous)


@dataclass(frozen=True)
class Grid:
    """Where pixels lie on the ground: CRS, affine transform and size."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Width and height of a pixel in CRS units, also on a rotated grid (where ``a`` and ``e`` are not)."""
        return float(np.hypot(self.transform.a, self.transform.d)), float(np.hypot(self.transform.b, self.transform.e))


@contextlib.contextmanager
def open_raster(path: str | os.PathLike[str]) -> Iterator[rasterio.io.DatasetReader]:
    """Open a raster for reading, failing with a message that names the file and the cause."""
    file = Path(path)
    if not file.exists():
        raise RasterError(f"The raster {file} does not exist. Check the path.")
    try:
        dataset = rasterio.open(file)
    except RasterioIOError as error:
        raise RasterError(
            f"GDAL cannot read {file} as a raster ({error}). Use a GeoTIFF or another "
            "GDAL-readable raster format."
        ) from error
    with dataset:
        yield dataset


def grid_of(dataset: rasterio.io.DatasetReader) -> Grid:
    """The grid of ``dataset``; fails clearly when the raster has no CRS."""
    if dataset.crs is None:
        raise RasterError(
            f"The raster {dataset.name} has no coordinate reference system, so results could "
            "not be placed on the map. Assign one first (QGIS: Raster > Projections > Assign "
            "Projection, or gdal_edit.py -a_srs EPSG:XXXX FILE)."
        )
    return Grid(dataset.crs, dataset.transform, dataset.width, dataset.height)


def band_descriptions(dataset: rasterio.io.DatasetReader) -> list[str | None]:
    """Band descriptions of ``dataset``, one per band (``None`` where a band has none)."""
    return [description or None for description in dataset.descriptions]


def select_bands(
    dataset: rasterio.io.DatasetReader,
    wanted: Sequence[str],
    positions: Sequence[int] | None = None,
) -> list[int]:
    """1-based indexes of the bands that provide ``wanted``.

    By default bands are matched by description (``B02`` matches ``B2``, ``red`` matches
    ``B4``). An explicit ``positions`` list maps model bands to raster bands by number instead.
    """
    if positions:
        indexes = check_band_positions(positions, dataset.count, wanted)
    else:
        indexes = match_bands(wanted, band_descriptions(dataset), source=f"the raster {Path(dataset.name).name}",
                              path=dataset.name)
    refuse_complex_bands(dataset, indexes)
    return indexes


def refuse_complex_bands(dataset: rasterio.io.DatasetReader, band_indexes: Sequence[int]) -> None:
    """Refuse complex bands (radar SLC, FFT output): reading them as real numbers would silently
    drop the imaginary part."""
    complex_bands = [index for index in band_indexes if "complex" in dataset.dtypes[index - 1]]  # complex_int16 too
    if complex_bands:
        raise RasterError(
            f"Band(s) {', '.join(map(str, complex_bands))} of the raster {Path(dataset.name).name} have the complex data "
            f"type {dataset.dtypes[complex_bands[0] - 1]}, which is not reflectance (the imaginary part would be lost). "
            "Choose real-valued bands: the Sentinel-2 reflectance bands of an L1C or L2A product."
        )


def extent_window(
    dataset: rasterio.io.DatasetReader,
    bounds: tuple[float, float, float, float] | None,
) -> tuple[Window, Grid]:
    """The window of ``dataset`` inside ``bounds`` (west, south, east, north in its CRS) and its
    grid; the whole raster when ``bounds`` is None. Empty or disjoint extents are clear errors."""
    grid = grid_of(dataset)
    full = Window(0, 0, grid.width, grid.height)
    if bounds is None:
        return full, grid
    west, south, east, north = bounds
    if not all(np.isfinite(bounds)):
        raise SatVisionError(f"The extent {tuple(bounds)} has a coordinate that is not a finite number. Give a real extent.")
    if not (east > west and north > south):
        raise SatVisionError("The extent is empty (zero width or height). Draw or choose a larger extent.")
    # The pixels under the extent's four corners; unlike rasterio's from_bounds this also holds for
    # rotated, flipped or south-up geotransforms (from_bounds refuses them or divides by zero).
    columns, rows = zip(*(~grid.transform * corner for corner in ((west, north), (east, north), (east, south), (west, south))))
    requested = Window(min(columns), min(rows), max(columns) - min(columns), max(rows) - min(rows))
    requested = requested.round_offsets().round_lengths()
    try:
        window = requested.intersection(full)
    except Exception as error:  # rasterio raises WindowError for disjoint windows
        raise SatVisionError("The extent does not overlap the raster. Choose an extent inside the raster.") from error
    if window.width < 1 or window.height < 1:
        raise SatVisionError("The extent does not overlap the raster. Choose an extent inside the raster.")
    return window, Grid(grid.crs, dataset.window_transform(window), int(window.width), int(window.height))


def read_window(
    dataset: rasterio.io.DatasetReader,
    band_indexes: Sequence[int],
    window: Window,
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` of the chosen bands as float32, with a validity mask.

    The window may reach past the raster's edges: the outside is filled with 0 and marked
    invalid, so callers can pad edge tiles without cropping. A pixel is valid when every
    selected band is valid there according to GDAL's mask (nodata value, mask band or alpha)
    and its value is finite.

    Returns ``(data, valid)`` with shapes ``(bands, height, width)`` and ``(height, width)``.
    """
    indexes = list(band_indexes)
    height, width = int(window.height), int(window.width)
    data = np.zeros((len(indexes), height, width), dtype=np.float32)
    valid = np.zeros((height, width), dtype=bool)
    # Read only the part inside the raster and pad by hand: boundless reads are slower and
    # not allowed on warped VRTs.
    top, left = int(window.row_off), int(window.col_off)
    inner_top, inner_left = max(top, 0), max(left, 0)
    inner_bottom, inner_right = min(top + height, dataset.height), min(left + width, dataset.width)
    if inner_bottom <= inner_top or inner_right <= inner_left:
        return data, valid
    inner = Window(inner_left, inner_top, inner_right - inner_left, inner_bottom - inner_top)
    rows = slice(inner_top - top, inner_bottom - top)
    columns = slice(inner_left - left, inner_right - left)
    with _read_errors(dataset, inner):
        data[:, rows, columns] = dataset.read(indexes, window=inner, out_dtype="float32")
        masks = dataset.read_masks(indexes, window=inner)
    valid[rows, columns] = np.all(masks > 0, axis=0) & np.all(np.isfinite(data[:, rows, columns]), axis=0)
    data[:, ~valid] = 0.0
    return data, valid


def read_resampled(
    dataset: rasterio.io.DatasetReader,
    band_indexes: Sequence[int],
    window: Window,
    size: tuple[int, int],
    nearest: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` (inside the raster) resampled to ``size = (height, width)`` pixels.

    Values are GDAL averages of valid pixels (``nearest``: the nearest pixel's value), validity
    the nearest source pixel's. GDAL resamples chunk by chunk, so memory follows ``size``, not
    the window.
    """
    from rasterio.enums import Resampling

    indexes = list(band_indexes)
    shape = (len(indexes), *size)
    with _read_errors(dataset, window):
        values = Resampling.nearest if nearest else Resampling.average
        data = dataset.read(indexes, window=window, out_shape=shape, resampling=values, out_dtype="float32")
        masks = dataset.read_masks(indexes, window=window, out_shape=shape, resampling=Resampling.nearest)
    valid = np.all(masks > 0, axis=0) & np.all(np.isfinite(data), axis=0)
    data[:, ~valid] = 0.0
    return data, valid


def sample_values(
    dataset: rasterio.io.DatasetReader,
    band_indexes: Sequence[int],
    window: Window,
    side: int = 128,
    per_window: int = 4096,
) -> np.ndarray:
    """A cheap sample of the valid values of the chosen bands inside ``window``: ``(bands, n)`` float32.

    Reads the window decimated to at most ``side`` × ``side`` pixels when the raster has
    overviews (GDAL then reads an overview, not the full resolution), otherwise up to five
    windows of ``side`` × ``side`` pixels (the centre and the four quarter points), one at a
    time, keeping at most ``per_window`` pixels of each: cost and memory never grow with the
    raster. Used to see whether values look like what a model expects.
    """
    indexes = list(band_indexes)
    width, height = int(window.width), int(window.height)
    if (width > side or height > side) and dataset.overviews(indexes[0]):
        data, valid = read_resampled(dataset, indexes, window, (min(side, height), min(side, width)), nearest=True)
        return data[:, valid]
    w, h = min(side, width), min(side, height)
    windows = []
    for fx, fy in ((0.5, 0.5), (0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)):
        left = int(window.col_off) + min(max(0, int(fx * width) - w // 2), width - w)
        top = int(window.row_off) + min(max(0, int(fy * height) - h // 2), height - h)
        if (left, top) not in windows:
            windows.append((left, top))
    parts = []
    for left, top in windows:
        data, valid = read_window(dataset, indexes, Window(left, top, w, h))
        values = data[:, valid]
        parts.append(values[:, :: max(1, values.shape[1] // per_window)][:, :per_window])
    return np.concatenate(parts, axis=1)


@contextlib.contextmanager
def _read_errors(dataset: rasterio.io.DatasetReader, window: Window) -> Iterator[None]:
    """Turn GDAL read failures (truncated or corrupt files) into a :class:`RasterError` naming
    the file and the window, instead of a traceback."""
    try:
        yield
    except (RasterioIOError, CPLE_BaseError) as error:
        source = getattr(dataset, "src_dataset", None) or dataset  # a warped view: name the file under it
        raise RasterError(
            f"Reading the raster {source.name} failed at pixels {int(window.col_off)}–"
            f"{int(window.col_off + window.width)} (columns), {int(window.row_off)}–{int(window.row_off + window.height)} "
            f"(rows): the file is damaged or incomplete (truncated?); re-download or re-export it. (GDAL: {error})"
        ) from error


def geotiff_profile(
    grid: Grid,
    count: int,
    dtype: str,
    nodata: float | int | None = None,
) -> dict[str, Any]:
    """A rasterio profile for a tiled, compressed GeoTIFF on ``grid``."""
    predictor = 3 if np.dtype(dtype).kind == "f" else 2
    small = grid.width < 256 or grid.height < 256
    options = dict(GEOTIFF_CREATION_OPTIONS)
    if small:  # GDAL requires tiles no larger than needed; strips suit small rasters
        options = {key: value for key, value in options.items() if not key.startswith(("tiled", "block"))}
    return {
        "driver": "GTiff",
        "crs": grid.crs,
        "transform": grid.transform,
        "width": grid.width,
        "height": grid.height,
        "count": count,
        "dtype": dtype,
        "nodata": nodata,
        "predictor": predictor,
        **options,
    }


@contextlib.contextmanager
def write_geotiff(
    path: str | os.PathLike[str],
    grid: Grid,
    count: int,
    dtype: str,
    *,
    nodata: float | int | None = None,
    band_names: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[rasterio.io.DatasetWriter]:
    """Open a GeoTIFF for writing on ``grid``; it appears at ``path`` only when complete.

    Writes go to a temporary file beside ``path`` that is renamed when the ``with`` block
    ends without an exception; on an exception (a failure or a cancellation) it is removed.
    """
    if band_names is not None and len(band_names) != count:
        raise ValueError(f"{len(band_names)} band names given for {count} bands")
    # Internal masks keep every output a single file that the atomic rename moves whole.
    with atomic_path(path) as temporary, rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(temporary, "w", **geotiff_profile(grid, count, dtype, nodata)) as writer:
            for index, name in enumerate(band_names or [], start=1):
                writer.set_band_description(index, name)
            if tags:
                writer.update_tags(**tags)
            yield writer
