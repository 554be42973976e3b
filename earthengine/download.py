"""Tiled, parallel pixel download into one GeoTIFF: bounded concurrency, retries, cancellation.

Each request tile is fetched with ``ee.data.computePixels`` on a worker thread (the calls wait
on the network, so threads overlap them well); the main thread writes finished tiles into
their window of the output. At most ``max_parallel`` requests are in flight and at most twice
that many tiles are held in memory, so memory depends on the tile size and the concurrency,
never on the area.

Rate limits (429) and server errors (5xx) are retried with exponential back-off and jitter;
other 4xx answers fail at once with an explained message. Cancelling stops new requests at
once, interrupts back-off waits, and abandons those in flight; the caller's atomic writer then
removes the partial file.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..core.errors import OperationCancelled
from ..core.feedback import Feedback, SilentFeedback
from ..core.raster import Grid
from .errors import RateLimitExhausted, explain, http_status, is_retryable
from .grid import RequestTile, request_tiles, tile_count


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    first_delay_s: float = 1.0
    max_delay_s: float = 32.0

    def delay(self, attempt: int) -> float:
        """Exponential back-off with full jitter (attempt 1 → up to ``first_delay_s``)."""
        ceiling = min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 1))
        return random.uniform(0.5 * ceiling, ceiling)  # nosec B311 - retry jitter, not security


@dataclass
class DownloadStats:
    tiles: int = 0
    requests: int = 0
    retries: int = 0
    bytes: int = 0
    seconds: float = 0.0
    max_in_flight: int = 0


class _Cancelled(Exception):
    pass


class TileFetcher:
    """Fetches the pixels of one request tile, retrying what is worth retrying."""

    def __init__(self, image: Any, grid: Grid, band_ids: Sequence[str], dtype: str, retry: RetryPolicy,
                 stop: threading.Event, project: str | None, credentials_kind: str | None) -> None:
        self.image, self.grid, self.band_ids, self.dtype = image, grid, list(band_ids), np.dtype(dtype)
        self.retry, self.stop = retry, stop
        self.project, self.credentials_kind = project, credentials_kind
        self.stats = DownloadStats()
        self._lock = threading.Lock()
        self._in_flight = 0

    def __call__(self, tile: RequestTile) -> np.ndarray:
        import ee

        request = {"expression": self.image, "fileFormat": "NUMPY_NDARRAY", "bandIds": self.band_ids, "grid": tile.grid(self.grid)}
        started = time.monotonic()
        for attempt in range(1, self.retry.attempts + 1):
            if self.stop.is_set():
                raise _Cancelled
            try:
                with self._counted():
                    pixels = ee.data.computePixels(request)
            except Exception as error:  # noqa: BLE001 - sorted into retry / explained failure
                if not is_retryable(error):
                    raise explain(error, self.project, self.credentials_kind) from None
                if attempt == self.retry.attempts:
                    raise self._exhausted(error, tile, attempt, time.monotonic() - started) from None
                with self._lock:
                    self.stats.retries += 1
                if self.stop.wait(self.retry.delay(attempt)):
                    raise _Cancelled from None
                continue
            return self._to_bands(pixels, tile)
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """Count the request and how many are in flight at once."""
        with self._lock:
            self._in_flight += 1
            self.stats.requests += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _to_bands(self, pixels: np.ndarray, tile: RequestTile) -> np.ndarray:
        """The structured (H, W) array of one field per band as (bands, H, W) of the output type."""
        expected = (int(tile.window.height), int(tile.window.width))
        if pixels.shape != expected or pixels.dtype.names is None:
            raise explain(RuntimeError(
                f"Earth Engine returned pixels of shape {pixels.shape} for a {expected[1]} x {expected[0]} request"
            ), self.project)
        bands = np.stack([pixels[name].astype(self.dtype, copy=False) for name in self.band_ids])
        with self._lock:
            self.stats.bytes += pixels.nbytes
        return bands

    def _exhausted(self, error: BaseException, tile: RequestTile, attempts: int, seconds: float) -> RateLimitExhausted:
        status = http_status(error)
        what = "too many requests (HTTP 429)" if status == 429 else f"HTTP {status}" if status else type(error).__name__
        return RateLimitExhausted(
            f"Earth Engine still answered {what} for request tile {tile.index + 1} after {attempts} attempts "
            f"over {seconds:.0f} s. Lower 'Parallel requests', or run again later: the project's "
            "quota of concurrent requests is shared by everything that uses the project."
        )


def download(
    image: Any,
    grid: Grid,
    band_ids: Sequence[str],
    write: Callable[[np.ndarray, RequestTile], None],
    *,
    dtype: str = "uint16",
    tile_size: int,
    max_parallel: int,
    retry: RetryPolicy = RetryPolicy(),
    project: str | None = None,
    credentials_kind: str | None = None,
    feedback: Feedback | None = None,
) -> DownloadStats:
    """Fetch ``image`` on ``grid`` tile by tile and hand each tile to ``write`` (main thread)."""
    feedback = feedback or SilentFeedback()
    total = tile_count(grid, tile_size)
    stop = threading.Event()
    fetcher = TileFetcher(image, grid, band_ids, dtype, retry, stop, project, credentials_kind)
    tiles = iter(request_tiles(grid, tile_size))
    pending: dict[Future, RequestTile] = {}
    started = time.monotonic()
    done = 0
    executor = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="satvision-ee")
    try:
        while True:
            while len(pending) < 2 * max_parallel:  # queued + running tiles held at once
                tile = next(tiles, None)
                if tile is None:
                    break
                pending[executor.submit(fetcher, tile)] = tile
            if not pending:
                break
            finished, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            if feedback.cancelled():
                raise OperationCancelled("Download cancelled; no output was written.")
            for future in finished:
                tile = pending.pop(future)
                bands = future.result()  # raises the explained failure of that tile
                write(bands, tile)
                done += 1
                feedback.progress(done / total)
                if done == total or done % max(1, total // 10) == 0:
                    feedback.info(f"Tile {done}/{total} written")
    except _Cancelled:
        raise OperationCancelled("Download cancelled; no output was written.") from None
    finally:
        stop.set()
        executor.shutdown(wait=False, cancel_futures=True)
    stats = fetcher.stats
    stats.tiles = done
    stats.seconds = time.monotonic() - started
    return stats
