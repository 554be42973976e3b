"""Reading a window of a raster strip by strip, the next strip read ahead on a background thread.

Tiled inference reads its input one strip at a time: a strip is one tile row high and spans a
range of columns (in segmentation the column band's tiles, in classification a chunk of tile
columns). While the caller works on one strip the reader already reads the next one, so reading
overlaps the model's work. Two strips exist at a time (the one in use and the one read ahead), so
memory is bounded by tile size × span width, never by the raster's size; :attr:`StripReader.buffer_bytes`
counts them for the engines' ``peak_buffer_bytes``.

Strips are addressed as ``(row, span)``: ``rows`` are the tops of the tile rows and ``spans`` the
``(left, width)`` column ranges, both in pixels from the window's origin. The read-ahead order is
row by row, span by span within a row (``(0, 0), (0, 1), …, (1, 0), …``): the order in which the
engines ask for them. Every read runs on the reader's one thread, one at a time, so the dataset is
never read from two threads at once; an error there (a damaged file) is raised in the caller when
it asks for that strip.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Sequence

import numpy as np
from rasterio.windows import Window

from .raster import read_window

#: A strip's address: (tile row, column span).
StripKey = tuple[int, int]


class StripReader:
    """The strips of ``window`` in ``source``: ``height`` pixels from each of ``rows``, across each of
    ``spans``; use as a context manager (leaving it stops the reading thread, also on errors).

    Strips may reach past the window's right and bottom edges (rasters narrower or shorter than a
    tile, tiles padded to whole tiles): those pixels are padding, invalid in the strip's mask. With
    ``pad_bottom=False`` rows below the window are read as the raster has them (inside the raster
    they are data): segmentation's behaviour, whose tiles pass the bottom only when the window is
    shorter than one tile.
    """

    def __init__(self, source, band_indexes: Sequence[int], window: Window, rows: Sequence[int], height: int,
                 spans: Sequence[tuple[int, int]], *, pad_bottom: bool = True) -> None:
        self.source = source
        self.band_indexes = list(band_indexes)
        self.window = window
        self.rows = rows
        self.height = height
        self.spans = list(spans)
        self.pad_bottom = pad_bottom
        self.buffer_bytes = 0  # largest strip × 2 (the one in use and the one read ahead)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="satvision-read")
        self._current: tuple[StripKey, tuple[np.ndarray, np.ndarray]] | None = None
        self._ahead: tuple[StripKey, Future] | None = None

    def __enter__(self) -> "StripReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the reading thread (waiting for a read in progress) and let go of the strips."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._current = self._ahead = None

    @property
    def ahead(self) -> StripKey | None:
        """The strip being read (or already read) ahead of the caller's requests, if any."""
        return self._ahead[0] if self._ahead is not None else None

    def following(self, key: StripKey) -> StripKey | None:
        """The strip after ``key`` in reading order (the next span, else the next row's first), or None at the end."""
        row, span = key
        if span + 1 < len(self.spans):
            return row, span + 1
        if row + 1 < len(self.rows):
            return row + 1, 0
        return None

    def get(self, row: int, span: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(values (bands, height, width), valid (height, width))`` of a strip, from its span's
        left column; asking again for the strip in use returns it without reading. Starts reading
        the following strip before returning."""
        key = (row, span)
        if self._current is not None and self._current[0] == key:
            return self._current[1]
        self._current = None
        if self._ahead is not None and self._ahead[0] == key:
            future = self._ahead[1]
        else:  # not the strip read ahead (out of order, or the first): read it now, on the reading thread
            if self._ahead is not None:
                self._ahead[1].cancel()
            future = self._executor.submit(self._read, key)
        self._ahead = None
        strip = future.result()  # an error of the reading thread is raised here
        self._current = (key, strip)
        following = self.following(key)
        if following is not None:
            self._ahead = (following, self._executor.submit(self._read, following))
        self.buffer_bytes = max(self.buffer_bytes, 2 * (strip[0].nbytes + strip[1].nbytes))
        return strip

    def _read(self, key: StripKey) -> tuple[np.ndarray, np.ndarray]:
        row, span = key
        top = self.rows[row]
        left, width = self.spans[span]
        strip = Window(self.window.col_off + left, self.window.row_off + top, width, self.height)
        values, valid = read_window(self.source, self.band_indexes, strip)
        # pixels past the window's edges (padding) are not data
        valid[:, max(0, int(self.window.width) - left):] = False
        if self.pad_bottom:
            valid[max(0, int(self.window.height) - top):, :] = False
        return values, valid
