"""The strip reader shared by segmentation and classification (core/strips.py), on real GeoTIFFs:
strips equal direct reads, the next strip is read before it is asked for, padding past the
window's right and bottom edges is invalid, a read error of the reading thread reaches the caller,
and leaving the reader stops its thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from satvision.core.errors import RasterError
from satvision.core.raster import open_raster, read_window
from satvision.core.strips import StripReader

BANDS = [1, 2, 3, 4]
WIDTH, HEIGHT, TILE = 40, 64, 16


def write_raster(path: Path) -> Path:
    """4 bands of random uint16 values (nodata 0 in a small box), 16-row strips, uncompressed."""
    values = np.random.default_rng(7).integers(1, 3000, size=(4, HEIGHT, WIDTH), dtype=np.uint16)
    values[:, 20:24, 5:9] = 0
    with rasterio.open(path, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=4, dtype="uint16", nodata=0,
                       crs="EPSG:32618", transform=from_origin(420000, 4120000, 10, 10), blockysize=TILE) as out:
        out.write(values)
    return path


@pytest.fixture
def raster(tmp_path) -> Path:
    return write_raster(tmp_path / "r.tif")


class WatchedDataset:
    """A real rasterio dataset whose reads are recorded as they start: the strip's (column, row)
    offset and the thread reading it. Everything else is the dataset's own."""

    def __init__(self, dataset) -> None:
        self._dataset = dataset
        self.reads: list[tuple[tuple[int, int], str]] = []
        self._changed = threading.Condition()

    def __getattr__(self, name):
        return getattr(self._dataset, name)

    def read(self, *args, window: Window, **kwargs):
        with self._changed:
            self.reads.append(((int(window.col_off), int(window.row_off)), threading.current_thread().name))
            self._changed.notify_all()
        return self._dataset.read(*args, window=window, **kwargs)

    def wait_for_reads(self, count: int) -> list[tuple[int, int]]:
        """The offsets read, once ``count`` reads have started (a generous bound in case they never do)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.reads) >= count, timeout=30)
            return [offset for offset, _ in self.reads]


def reading_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("satvision-read")}


def test_strips_equal_direct_reads_and_the_next_one_is_read_before_it_is_asked_for(raster):
    window = Window(2, 3, 36, 58)  # inside the raster: no padding
    rows, spans = [0, 16, 32, 42], [(0, 20), (20, 16)]
    with open_raster(raster) as dataset:
        watched = WatchedDataset(dataset)
        with StripReader(watched, BANDS, window, rows, TILE, spans) as reader:
            order = [(row, span) for row in range(len(rows)) for span in range(len(spans))]
            for number, (row, span) in enumerate(order):
                values, valid = reader.get(row, span)
                left, width = spans[span]
                expected_values, expected_valid = read_window(dataset, BANDS, Window(2 + left, 3 + rows[row], width, TILE))
                np.testing.assert_array_equal(values, expected_values)
                np.testing.assert_array_equal(valid, expected_valid)
                if (row, span) == (1, 0):  # the nodata box (raster rows 20–23, columns 5–8) is invalid
                    assert not valid[1:5, 3:7].any() and valid.sum() == valid.size - 16
                following = order[number + 1] if number + 1 < len(order) else None
                assert reader.ahead == following
                if following is not None:  # its file read starts without the caller asking for it
                    assert watched.wait_for_reads(number + 2)[number + 1] == (2 + spans[following[1]][0], 3 + rows[following[0]])
            assert len(watched.reads) == len(order)  # each strip read once, on the reading thread
            assert {thread for _, thread in watched.reads} <= {thread.name for thread in reading_threads()}
            assert reader.get(3, 1) is reader.get(3, 1) and len(watched.reads) == len(order)  # the strip in use: no new read
            back, _ = reader.get(1, 0)  # out of order: read on request, the same values
            np.testing.assert_array_equal(back, read_window(dataset, BANDS, Window(2, 19, 20, TILE))[0])
        bands = len(BANDS)
        assert reader.buffer_bytes == 2 * (bands * TILE * 20 * 4 + TILE * 20)  # the widest strip, twice


def test_strips_past_the_windows_right_and_bottom_edges_are_padding(raster):
    rows, spans = [0, 16], [(0, 16), (16, 16)]
    with open_raster(raster) as dataset:
        # the whole raster: the last span passes its right edge (40 px), the last row its bottom (64 px)
        with StripReader(dataset, BANDS, Window(0, 0, WIDTH, HEIGHT), [0, 48, 56], TILE, [(0, 32), (32, 16)]) as reader:
            values, valid = reader.get(0, 1)
            assert valid.shape == (TILE, 16) and valid[:, :8].all() and not valid[:, 8:].any()
            assert (values[:, :, 8:] == 0).all()
            values, valid = reader.get(2, 0)
            assert valid[:8].all() and not valid[8:].any() and (values[:, 8:] == 0).all()
        # part of it (20 × 20 px from column 10, row 30): the raster's data past the window is padding too
        window = Window(10, 30, 20, 20)
        with StripReader(dataset, BANDS, window, rows, TILE, spans) as reader:
            _, valid = reader.get(1, 1)  # columns 26–42 and rows 46–62 of the raster: 4 × 4 px inside the window
            assert valid[:4, :4].all() and not valid[4:].any() and not valid[:, 4:].any()
        # segmentation's rows below the window are read as the raster has them; its columns past the window stay padding
        with StripReader(dataset, BANDS, window, rows, TILE, spans, pad_bottom=False) as reader:
            values, valid = reader.get(1, 1)
            raster_values, raster_valid = read_window(dataset, BANDS, Window(26, 46, 16, TILE))
            np.testing.assert_array_equal(valid[:, :4], raster_valid[:, :4])
            assert valid[:, :4].all() and not valid[:, 4:].any()
            np.testing.assert_array_equal(values, raster_values)


def test_a_read_error_in_the_reading_thread_reaches_the_caller_and_the_thread_stops(raster):
    size = raster.stat().st_size
    with open(raster, "r+b") as file:
        file.truncate(size // 2)  # the first 16 rows stay intact
    before = reading_threads()
    with open_raster(raster) as dataset:
        watched = WatchedDataset(dataset)
        with pytest.raises(RasterError, match=r"16–32 \(rows\): the file is damaged or incomplete"):
            with StripReader(watched, BANDS, Window(0, 0, WIDTH, HEIGHT), [0, 16, 32], TILE, [(0, WIDTH)]) as reader:
                reader.get(0)
                assert watched.wait_for_reads(2) == [(0, 0), (0, 16)]  # the damaged strip is read ahead, unasked
                assert reading_threads() - before
                reader.get(1)
    assert watched.reads[1][0] == (0, 16) and watched.reads[1][1].startswith("satvision-read")
    assert not reading_threads() - before  # leaving on the error stopped the thread


def test_leaving_the_reader_stops_its_thread_and_it_reads_no_more(raster):
    before = reading_threads()
    with open_raster(raster) as dataset:
        with StripReader(dataset, BANDS, Window(0, 0, WIDTH, HEIGHT), [0, 16, 32, 48], TILE, [(0, WIDTH)]) as reader:
            reader.get(0)
            assert reader.ahead == (1, 0) and reading_threads() - before
        assert not reading_threads() - before and reader.ahead is None
        with pytest.raises(RuntimeError, match="shutdown"):
            reader.get(1)
