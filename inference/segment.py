"""Segmenting a raster of any size into a class-probability GeoTIFF and a mask GeoTIFF.

The raster is streamed in strips of tile rows; tiles are batched, predicted, blended with
smooth weights and written row by row as soon as no later tile can touch them, so memory is
bounded by tile size × batch size × a strip, not by the raster. Pixels without valid data are
nodata in both outputs. Rasters that are not on a UTM grid at the model's GSD are processed on
such a grid and the results warped back onto the input grid.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..core.errors import OperationCancelled, RasterError, SatVisionError
from ..core.raster import Grid, extent_window, open_raster, read_window, select_bands, write_geotiff
from ..core.resampling import model_grid, needs_resampling, warped
from ..core.tiling import StripBlender, Tile, TileLayout
from ..models.card import ModelCard
from .predictor import Predictor

PROBABILITY_NODATA = -1.0
MASK_NODATA = 255

ProgressCallback = Callable[[float], None]
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class SegmentationSettings:
    """How to run: tiling (defaults from the card), batching, device, threshold, area, bands."""

    tile_size: int | None = None
    overlap: int | None = None
    batch_size: int = 4
    device: str = "auto"
    threshold: float = 0.5
    bounds: tuple[float, float, float, float] | None = None  # (west, south, east, north) in the raster's CRS
    band_positions: Sequence[int] | None = None  # explicit 1-based raster bands, else by description
    class_name: str | None = None  # the class whose probability is written; default the card's foreground
    test_time_augmentation: str | None = None  # none, flips or d4; default the card's


@dataclass
class SegmentationRun:
    """What happened: sizes, counts, device and timings (for the log and benchmarks)."""

    grid: Grid
    tile_count: int = 0
    skipped_tiles: int = 0
    device: str = ""
    resampled: bool = False
    seconds: float = 0.0
    forward_seconds: float = 0.0
    peak_buffer_bytes: int = 0
    class_name: str = ""
    notes: list[str] = field(default_factory=list)


def foreground_class(card: ModelCard, requested: str | None = None) -> tuple[int, str]:
    """Index and name of the class to map: ``requested``, else ``water``, else index 1."""
    names = card.class_names()
    wanted = requested or ("water" if "water" in names else names[min(1, len(names) - 1)])
    if wanted not in names:
        raise SatVisionError(f"The model has no class {wanted!r}; its classes are {', '.join(names)}.")
    return names.index(wanted), wanted


def segment_raster(
    raster: str | Path,
    predictor: Predictor,
    probability_path: str | Path,
    mask_path: str | Path,
    settings: SegmentationSettings = SegmentationSettings(),
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> SegmentationRun:
    """Write the class probability (float32, nodata -1) and mask (uint8 1/0, nodata 255) of
    ``raster`` on its own grid (or the part of it inside ``settings.bounds``)."""
    started = time.perf_counter()
    card = predictor.card
    class_index, class_name = foreground_class(card, settings.class_name)
    tile = settings.tile_size or card.tiling.tile_size
    overlap = card.tiling.overlap if settings.overlap is None else settings.overlap
    if not 0 <= 2 * overlap < tile:
        raise SatVisionError(f"Overlap {overlap} px must be under half the tile size ({tile} px).")
    if settings.batch_size < 1:
        raise SatVisionError("The batch size must be at least 1.")
    report = progress or (lambda fraction: None)
    cancelled = is_cancelled or (lambda: False)

    with open_raster(raster) as dataset:
        band_indexes = select_bands(dataset, card.bands, settings.band_positions)
        window, output_grid = extent_window(dataset, settings.bounds)
        run = SegmentationRun(grid=output_grid, device=predictor.label, class_name=class_name)
        tags = {
            "SATVISION_MODEL": card.name,
            "SATVISION_CLASS": class_name,
            "SATVISION_THRESHOLD": str(settings.threshold),
        }
        job = _TileJob(predictor, class_index, tile, overlap, settings.batch_size, settings.threshold, report, cancelled, run)
        if not needs_resampling(output_grid, card.gsd_m):
            job.run(dataset, band_indexes, window, output_grid, probability_path, mask_path, class_name, tags)
        else:
            run.resampled = True
            processing_grid = model_grid(output_grid, card.gsd_m)
            run.notes.append(
                f"resampled from {output_grid.crs.to_string()} at {output_grid.pixel_size[0]:g} to "
                f"{processing_grid.crs.to_string()} at {card.gsd_m:g} m for the model, and back"
            )
            with warped(dataset, processing_grid) as view, tempfile.TemporaryDirectory(
                prefix=".satvision-", dir=Path(probability_path).parent
            ) as scratch:
                model_probability = Path(scratch) / "probability.tif"
                job.share = 0.9
                # only the probability is needed on the model grid: the mask is made after warping back
                job.run(view, band_indexes, Window(0, 0, view.width, view.height), processing_grid,
                        model_probability, None, class_name, tags)
                _warp_back(model_probability, output_grid, probability_path, mask_path, settings.threshold,
                           class_name, tags, cancelled, input_validity=(dataset, band_indexes, window))
    run.seconds = time.perf_counter() - started
    run.forward_seconds = predictor.forward_seconds
    report(1.0)
    return run



class _TileJob:
    """One pass of tiles over a source window, writing probability and mask on ``grid``."""

    def __init__(self, predictor, class_index, tile, overlap, batch_size, threshold, report, cancelled, run) -> None:
        self.predictor = predictor
        self.class_index = class_index
        self.tile = tile
        self.overlap = overlap
        self.batch_size = batch_size
        self.threshold = threshold
        self.report = report
        self.cancelled = cancelled
        self.run_info = run
        self.share = 1.0  # fraction of the progress bar this pass covers

    def run(self, source, band_indexes, window: Window, grid: Grid, probability_path, mask_path: Path | None,
            class_name, tags) -> None:
        layout = TileLayout(int(window.width), int(window.height), self.tile, self.overlap)
        blender = StripBlender(layout, self.batch_size)
        rows_in_flight = layout.rows_in_flight(self.batch_size)
        self.run_info.tile_count += layout.count
        values = np.zeros((self.batch_size, len(band_indexes), self.tile, self.tile), dtype=np.float32)
        valid = np.zeros((self.batch_size, self.tile, self.tile), dtype=bool)
        queue: list[tuple[Tile, int | None]] = []  # tiles waiting, with their batch slot (None: skipped)
        filled = 0
        done = 0

        with write_geotiff(probability_path, grid, 1, "float32", nodata=PROBABILITY_NODATA,
                           band_names=[f"{class_name}_probability"], tags=tags) as probability_out, \
             (write_geotiff(mask_path, grid, 1, "uint8", nodata=MASK_NODATA, band_names=[f"{class_name}_mask"], tags=tags)
              if mask_path else contextlib.nullcontext()) as mask_out, \
             _StripReader(source, band_indexes, window, layout) as strips:

            def process() -> None:
                nonlocal filled, done
                if self.cancelled():
                    raise OperationCancelled("Cancelled: no output was written.")
                if filled:
                    probabilities = self.predictor.class_probability(values[:filled], valid[:filled], self.class_index)
                for tile, slot in queue:
                    if slot is not None:
                        blender.add(tile, probabilities[slot], valid[slot])
                    if tile.last_in_row:
                        self._write_rows(*blender.finish_row(tile.row_index), probability_out, mask_out)
                done += len(queue)
                self.report(self.share * done / layout.count)
                queue.clear()
                filled = 0

            for tile in layout.tiles():
                strip_values, strip_valid = strips.get(tile.row_index)
                tile_valid = strip_valid[:, tile.x : tile.x + self.tile]
                if tile_valid.any():
                    values[filled] = strip_values[:, :, tile.x : tile.x + self.tile]
                    valid[filled] = tile_valid
                    queue.append((tile, filled))
                    filled += 1
                else:
                    self.run_info.skipped_tiles += 1
                    queue.append((tile, None))
                if filled == self.batch_size or tile.row_index - queue[0][0].row_index >= rows_in_flight - 1:
                    process()
            process()
            self.run_info.peak_buffer_bytes = max(
                self.run_info.peak_buffer_bytes, blender.buffer_bytes + values.nbytes + valid.nbytes + strips.buffer_bytes
            )

    def _write_rows(self, first_row: int, blended: np.ndarray, covered: np.ndarray, probability_out, mask_out) -> None:
        rows = Window(0, first_row, blended.shape[1], blended.shape[0])
        probability_out.write(np.where(covered, blended, PROBABILITY_NODATA).astype(np.float32)[None], window=rows)
        if mask_out is not None:
            mask_out.write(_mask(blended, covered, self.threshold)[None], window=rows)


class _StripReader:
    """Reads the strip of each tile row (full window width, one tile high), one row ahead."""

    def __init__(self, source, band_indexes, window: Window, layout: TileLayout) -> None:
        self.source = source
        self.band_indexes = list(band_indexes)
        self.window = window
        self.layout = layout
        self.width = max(layout.width, layout.tile)
        self.rows = layout.rows
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="satvision-read")
        self._pending: dict[int, object] = {}
        self._current: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None
        self.buffer_bytes = 0

    def __enter__(self) -> "_StripReader":
        return self

    def __exit__(self, *exc) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _read(self, row_index: int) -> tuple[np.ndarray, np.ndarray]:
        y = self.rows[row_index]
        strip = Window(self.window.col_off, self.window.row_off + y, self.width, self.layout.tile)
        values, valid = read_window(self.source, self.band_indexes, strip)
        # columns beyond the window (padding of rasters narrower than a tile) are not data
        valid[:, self.layout.width :] = False
        return values, valid

    def get(self, row_index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values (bands, tile, width), valid (tile, width))`` of a tile row."""
        if self._current is None or self._current[0] != row_index:
            future = self._pending.pop(row_index, None)
            strip = future.result() if future is not None else self._read(row_index)
            self._current = (row_index, strip)
            if row_index + 1 < len(self.rows) and row_index + 1 not in self._pending:
                self._pending[row_index + 1] = self._executor.submit(self._read, row_index + 1)
            self.buffer_bytes = max(self.buffer_bytes, 2 * (strip[0].nbytes + strip[1].nbytes))
        return self._current[1]


def _mask(probability: np.ndarray, covered: np.ndarray, threshold: float) -> np.ndarray:
    """1 where the class probability reaches ``threshold``, 0 elsewhere, nodata where uncovered."""
    return np.where(covered, probability >= threshold, MASK_NODATA).astype(np.uint8)


def _warp_back(model_probability: Path, grid: Grid, probability_path, mask_path, threshold, class_name, tags, cancelled,
               input_validity) -> None:
    """Warp the probability computed on the model grid onto ``grid``, strip by strip.

    Pixels invalid in the input stay nodata: bilinear warping would otherwise bleed values a
    pixel or two into nodata areas.
    """
    dataset, band_indexes, window = input_validity
    with open_raster(model_probability) as source, warped(
        source, grid, Resampling.bilinear, src_nodata=PROBABILITY_NODATA, nodata=PROBABILITY_NODATA
    ) as view, write_geotiff(probability_path, grid, 1, "float32", nodata=PROBABILITY_NODATA,
                             band_names=[f"{class_name}_probability"], tags=tags) as probability_out, \
            write_geotiff(mask_path, grid, 1, "uint8", nodata=MASK_NODATA,
                          band_names=[f"{class_name}_mask"], tags=tags) as mask_out:
        for row in range(0, grid.height, 256):
            if cancelled():
                raise OperationCancelled("Cancelled: no output was written.")
            rows = Window(0, row, grid.width, min(256, grid.height - row))
            probability = view.read(1, window=rows)
            _, valid = read_window(dataset, band_indexes, Window(window.col_off, window.row_off + row, grid.width, rows.height))
            covered = (probability != PROBABILITY_NODATA) & valid
            probability[~covered] = PROBABILITY_NODATA
            probability_out.write(probability[None], window=rows)
            mask_out.write(_mask(probability, covered, threshold)[None], window=rows)
