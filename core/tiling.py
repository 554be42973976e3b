"""Tiling geometry and seamless blending with memory bounded by a strip of tiles.

Tiles of side ``tile`` overlap their neighbours by ``overlap`` pixels. The last tile of a row
or column is shifted inward to end at the raster edge, so no tile is padded unless the raster
is smaller than one tile. Each prediction is weighted by a window that rises smoothly (raised
cosine) across the overlap, so that overlapping predictions fade into each other without seams.

:class:`StripBlender` accumulates weighted predictions only for the rows that later tiles can
still touch, and hands back finished rows as soon as the tile rows covering them are done: its
memory is (tile + stride × rows in flight) × band width, never the raster's height.

A raster wider than :data:`MAX_BAND_WIDTH` is processed in vertical :class:`ColumnBand` s: each
band owns a range of output columns (block-aligned, at most ``MAX_BAND_WIDTH`` wide) and runs
every tile of the raster's one tile layout that touches those columns, so the tiles across a
band boundary run in both bands and every owned pixel gets exactly the predictions, weights and
blend it would get in one full-width pass: no seam. A band's tiles span at most
``MAX_BAND_WIDTH + 2 × tile`` columns, so nothing held per row grows with the raster's width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

#: Smallest blending weight, so raster-edge pixels covered by a single tile keep their value.
MIN_WEIGHT = 1e-3

#: Widest range of output columns processed in one pass (pixels). A multiple of the 256 px block
#: width of the GeoTIFFs SatVision writes, so each output block is written by one band only; wide
#: enough that a whole Sentinel-2 tile (10,980 px) is one band.
MAX_BAND_WIDTH = 16384


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles along one axis (the last one shifted to end at the edge)."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    origins = list(range(0, length - tile, stride))
    origins.append(length - tile)
    return origins


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """A ``tile × tile`` float32 weight: raised-cosine ramps across ``overlap``, 1 inside."""
    ramp = np.ones(tile, dtype=np.float32)
    if overlap > 0:
        positions = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        rising = 0.5 - 0.5 * np.cos(np.pi * positions)
        ramp[:overlap] = rising
        ramp[tile - overlap :] = rising[::-1]
    ramp = np.maximum(ramp, MIN_WEIGHT)
    return np.outer(ramp, ramp)


@dataclass(frozen=True)
class Tile:
    row_index: int  # index of the tile row
    x: int  # column offset in the raster (window origin)
    y: int  # row offset in the raster
    last_in_row: bool


@dataclass(frozen=True)
class TileLayout:
    width: int
    height: int
    tile: int
    overlap: int

    def __post_init__(self) -> None:
        if self.tile <= 0 or not 0 <= 2 * self.overlap < self.tile:
            raise ValueError(f"tile {self.tile} with overlap {self.overlap}: overlap must be under half the tile")
        if self.width <= 0 or self.height <= 0:
            raise ValueError("empty raster")

    @property
    def columns(self) -> list[int]:
        return tile_origins(self.width, self.tile, self.overlap)

    @property
    def rows(self) -> list[int]:
        return tile_origins(self.height, self.tile, self.overlap)

    @property
    def count(self) -> int:
        return len(self.columns) * len(self.rows)

    def tiles(self) -> Iterator[Tile]:
        columns = self.columns
        for row_index, y in enumerate(self.rows):
            for column_index, x in enumerate(columns):
                yield Tile(row_index, x, y, column_index == len(columns) - 1)

    def rows_in_flight(self, batch_size: int, columns: int | None = None) -> int:
        """How many tile rows one batch can span (plus the one being finished), for rows of
        ``columns`` tiles (default: the whole layout's)."""
        return math.ceil(batch_size / (columns or len(self.columns))) + 1

    def bands(self, max_width: int = MAX_BAND_WIDTH) -> list["ColumnBand"]:
        """The vertical bands that together process the layout (one when it is narrow enough)."""
        columns = self.columns
        bands = []
        for start in range(0, self.width, max_width):
            stop = min(start + max_width, self.width)
            touching = [x for x in columns if x < stop and x + self.tile > start]
            bands.append(ColumnBand(start, stop, touching, self.tile))
        return bands

    def band_tiles(self, band: "ColumnBand") -> Iterator[Tile]:
        """The tiles of ``band`` row by row; ``last_in_row`` marks the band's last tile of a row."""
        for row_index, y in enumerate(self.rows):
            for column_index, x in enumerate(band.columns):
                yield Tile(row_index, x, y, column_index == len(band.columns) - 1)


@dataclass(frozen=True)
class ColumnBand:
    """Output columns ``start``–``stop`` (the band's own) and the x origins of the tiles touching them."""

    start: int
    stop: int
    columns: list[int]
    tile: int

    @property
    def left(self) -> int:
        """First column any of the band's tiles covers."""
        return self.columns[0]

    @property
    def right(self) -> int:
        """Column after the last one the band's tiles cover (may pass the raster's edge when it is narrower than a tile)."""
        return self.columns[-1] + self.tile

    def owns(self, x: int) -> bool:
        """Whether a tile starting at ``x`` is counted in this band (each tile is owned by one band)."""
        return self.start <= x < self.stop


class StripBlender:
    """Weighted accumulation of per-tile predictions, releasing finished rows in order.

    ``add(tile, prediction, valid)`` adds a ``tile × tile`` prediction weighted by the blend
    window and by validity; ``finish_row(row_index)`` returns ``(first_row, blended, covered)``
    for the rows no later tile can change: ``blended`` is the weighted mean, ``covered`` is
    False where no valid prediction landed (nodata).
    """

    def __init__(self, layout: TileLayout, batch_size: int, band: ColumnBand | None = None) -> None:
        self.layout = layout
        self.window = blend_window(layout.tile, layout.overlap)
        stride = layout.tile - layout.overlap
        # one band: columns left..right of the raster; finish_row returns those columns
        self._left = band.left if band is not None else 0
        right = min(band.right, layout.width) if band is not None else layout.width
        capacity = layout.tile + stride * layout.rows_in_flight(batch_size, len(band.columns) if band else None)
        self._numerator = np.zeros((capacity, right - self._left), dtype=np.float32)
        self._denominator = np.zeros((capacity, right - self._left), dtype=np.float32)
        self._start = 0  # raster row held at buffer row 0
        self._rows = layout.rows

    @property
    def buffer_bytes(self) -> int:
        return self._numerator.nbytes + self._denominator.nbytes

    def add(self, tile: Tile, prediction: np.ndarray, valid: np.ndarray) -> None:
        height = min(self.layout.tile, self.layout.height - tile.y)
        width = min(self.layout.tile, self.layout.width - tile.x)
        top = tile.y - self._start
        if top < 0 or top + height > self._numerator.shape[0]:
            raise RuntimeError("tile outside the blending strip: tiles must arrive in row order")
        weight = self.window[:height, :width] * valid[:height, :width]
        left = tile.x - self._left
        self._numerator[top : top + height, left : left + width] += weight * prediction[:height, :width]
        self._denominator[top : top + height, left : left + width] += weight

    def finish_row(self, row_index: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Rows finished by tile row ``row_index``, over the blender's columns (the band's ``left``
        to ``right``, or the whole width)."""
        next_start = self._rows[row_index + 1] if row_index + 1 < len(self._rows) else self.layout.height
        count = next_start - self._start
        numerator = self._numerator[:count]
        denominator = self._denominator[:count]
        covered = denominator > 0
        blended = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=covered)
        first_row = self._start
        # shift the unfinished rows to the top of the buffer (numpy copes with the overlap)
        remaining = self._numerator.shape[0] - count
        for buffer in (self._numerator, self._denominator):
            buffer[:remaining] = buffer[count:]
            buffer[remaining:] = 0
        self._start = next_start
        return first_row, blended, covered
