"""Segmenting a raster of any size into a class-probability GeoTIFF and a mask GeoTIFF.

The raster is streamed in strips of tile rows; tiles are batched, predicted, blended with
smooth weights and written row by row as soon as no later tile can touch them. A raster wider
than :data:`~satvision.core.tiling.MAX_BAND_WIDTH` (16,384 px) is processed in vertical bands of
at most that width, seamlessly (see :mod:`core.tiling`), so a strip is never wider than
``W = MAX_BAND_WIDTH + 2 × tile``. Pixels without valid data are nodata in both outputs. Rasters
that are not on a UTM grid at the model's GSD are processed on such a grid and the results
warped back onto the input grid, in blocks of 256 rows × at most ``MAX_BAND_WIDTH`` columns.

Memory bound (``SegmentationRun.peak_buffer_bytes``), independent of the raster's width and
height: with ``b`` bands, tile ``t``, stride ``s = t − overlap`` and batch ``B``,

* strips read (current and the one read ahead): ``2 × t × W × (4 b + 1)`` bytes;
* blending: ``8 × (t + s × (⌈B / tiles per band row⌉ + 1)) × W`` bytes;
* the batch: ``B × t² × (4 b + 1)`` bytes, plus the network's activations (checked against the
  available memory before work, see :mod:`inference.limits`).

With the defaults (4 bands, 256 px tiles, overlap 32, batch 4) that is under 250 MB, whatever
the raster's size. Jobs whose tile size does not fit the network, whose batch does not fit in
memory, or whose estimated time exceeds the limit are refused before any tile runs.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..core.errors import OperationCancelled, SatVisionError
from ..core.feedback import Feedback, ShareFeedback, SilentFeedback
from ..core.options import option
from ..core.raster import Grid, extent_window, open_raster, read_window, select_bands, write_geotiff
from ..core.resampling import model_grid, needs_resampling, warped
from ..core.strips import StripReader
from ..core.tiling import MAX_BAND_WIDTH, ColumnBand, StripBlender, Tile, TileLayout
from ..models.card import ModelCard
from ..models.normalisation import ReflectanceOffsetSetting, inspect_raster_input, parse_reflectance_offset
from ..models.segmentation import tile_multiple
from .common_options import (
    band_positions_option,
    batch_size_option,
    device_option,
    reflectance_offset_option,
    test_time_augmentation_option,
)
from .limits import axis_count, check_batch, check_job
from .predictor import Predictor

PROBABILITY_NODATA = -1.0
MASK_NODATA = 255

@dataclass(frozen=True)
class SegmentationSettings:
    """How to run: tiling (defaults from the card), batching, device, threshold, area, bands.

    Taken by :func:`inference.segment_job.segment_water` and
    :func:`inference.segment_engine.segment_raster`; ``None`` fields fall back to the model's card.
    Each field's help is declared with the field (see core/options.py); ``satvision evaluate
    segmentation --help`` and the Segment water algorithm list them. The Segment water algorithm and
    ``satvision evaluate segmentation`` build their parameters from these declarations. Fields that
    are not user options: ``class_name`` (the class whose probability is written; None: the card's
    foreground class) and ``max_job_hours`` (refuse jobs estimated over this many hours; None:
    ``SATVISION_MAX_JOB_HOURS`` or 12 h; 0: no limit).
    """

    tile_size: int | None = option(None, minimum=0, unset=0, label="Tile size in pixels (0: the model's)",
                                   help="Side of the square tiles the model sees, in pixels; 0 (or none) uses the tile size "
                                        "in the model's card.")
    overlap: int | None = option(None, minimum=0, unset=-1, label="Tile overlap in pixels (-1: the model's)",
                                 help="Pixels shared by neighbouring tiles, blended without seams; -1 (or none) uses the "
                                      "model's overlap.")
    batch_size: int = batch_size_option(4)
    device: str = device_option()
    threshold: float = option(0.5, minimum=0.0, maximum=1.0, label="Water probability threshold",
                              help="A pixel is water (in the mask) when its probability is at or above this value.")
    #: (west, south, east, north) in the raster's CRS
    bounds: tuple[float, float, float, float] | None = option(
        None, label="Limit to extent", help="Process only this part of the raster (empty: the whole raster).")
    band_positions: Sequence[int] | None = band_positions_option()  # explicit 1-based raster bands, else by description
    class_name: str | None = None  # the class whose probability is written; default the card's foreground
    test_time_augmentation: str | None = test_time_augmentation_option()  # none, flips or d4; default the card's
    #: refuse jobs estimated over this many hours; None: SATVISION_MAX_JOB_HOURS or 12 h; 0: no limit
    max_job_hours: float | None = None
    #: raster values subtracted before normalising: "auto" (detect the +1000 of Sentinel-2 baseline
    #: 04.00 and later from metadata or the darkest values) or a number (0: none); see models.normalisation
    reflectance_offset: ReflectanceOffsetSetting = reflectance_offset_option()


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
    reflectance_offset: float = 0.0  # raster values subtracted before normalising (resolved from the setting)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # input that looks unlike what the model expects


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
    feedback: Feedback | None = None,
) -> SegmentationRun:
    """Write the class probability (float32, nodata -1) and mask (uint8 1/0, nodata 255) of
    ``raster`` on its own grid (or the part of it inside ``settings.bounds``)."""
    started = time.perf_counter()
    card = predictor.card
    class_index, class_name = foreground_class(card, settings.class_name)
    tile = settings.tile_size or card.tiling.tile_size
    overlap = card.tiling.overlap if settings.overlap is None else settings.overlap
    check_tile_size(card, tile, overlap)
    if not 0 <= 2 * overlap < tile:
        raise SatVisionError(f"Overlap {overlap} px must be under half the tile size ({tile} px).")
    if settings.batch_size < 1:
        raise SatVisionError("The batch size must be at least 1.")
    check_batch(predictor, tile, settings.batch_size, tile_multiple=tile_multiple(card))
    parse_reflectance_offset(settings.reflectance_offset)  # a bad setting fails before the raster is opened
    feedback = feedback or SilentFeedback()

    with open_raster(raster) as dataset:
        band_indexes = select_bands(dataset, card.bands, settings.band_positions)
        window, output_grid = extent_window(dataset, settings.bounds)
        run = SegmentationRun(grid=output_grid, device=predictor.label, class_name=class_name)
        inspection = inspect_raster_input(dataset, band_indexes, window, card.normalisation,
                                          settings.reflectance_offset)  # before any work
        run.reflectance_offset = inspection.offset
        run.warnings.extend(inspection.warnings)
        tags = {
            "SATVISION_MODEL": card.name,
            "SATVISION_CLASS": class_name,
            "SATVISION_THRESHOLD": str(settings.threshold),
        }
        resample = needs_resampling(output_grid, card.gsd_m)
        processing_grid = model_grid(output_grid, card.gsd_m) if resample else output_grid
        stride = tile - overlap
        tile_count = axis_count(processing_grid.width, tile, stride) * axis_count(processing_grid.height, tile, stride)
        check_job(predictor, tile_count, tile, settings.batch_size, settings.max_job_hours)  # before any output
        job = _TileJob(predictor, class_index, tile, overlap, settings.batch_size, settings.threshold, feedback, run)
        if not resample:
            job.run(dataset, band_indexes, window, output_grid, probability_path, mask_path, class_name, tags)
        else:
            run.resampled = True
            run.notes.append(
                f"resampled from {output_grid.crs.to_string()} at {output_grid.pixel_size[0]:g} to "
                f"{processing_grid.crs.to_string()} at {card.gsd_m:g} m for the model, and back"
            )
            with warped(dataset, processing_grid) as view, tempfile.TemporaryDirectory(
                prefix=".satvision-", dir=Path(probability_path).parent
            ) as scratch:
                model_probability = Path(scratch) / "probability.tif"
                job.feedback = ShareFeedback(feedback, 0.0, 0.9)
                # only the probability is needed on the model grid: the mask is made after warping back
                job.run(view, band_indexes, Window(0, 0, view.width, view.height), processing_grid,
                        model_probability, None, class_name, tags)
                _warp_back(model_probability, output_grid, probability_path, mask_path, settings.threshold,
                           class_name, tags, feedback, input_validity=(dataset, band_indexes, window))
    run.notes.extend(inspection.notes)  # after the resampling note: what the offset was and how to change it
    run.seconds = time.perf_counter() - started
    run.forward_seconds = predictor.forward_seconds
    feedback.progress(1.0)
    return run


def check_tile_size(card: ModelCard, tile: int, overlap: int) -> None:
    """Refuse a tile size that does not fit the network (not a multiple of ``2 ** encoder_depth``,
    see :func:`models.segmentation.tile_multiple`)."""
    multiple = tile_multiple(card)
    if tile >= multiple and tile % multiple == 0:
        return
    smallest = max(tile, 2 * max(overlap, 0) + 1, multiple)
    suggestion = -(-smallest // multiple) * multiple
    depth = multiple.bit_length() - 1
    raise SatVisionError(
        f"Tile size {tile} px does not fit the model {card.name}: its network ({card.architecture.id}, {depth} "
        f"encoder stages) halves each tile {depth} times, so the tile size must be a multiple of {multiple} px "
        f"(other sizes give shifted, blurred predictions; smaller ones have no cell left at the deepest stage). "
        f"Set Tile size to {suggestion} px, or to 0 for the model's {card.tiling.tile_size} px."
    )


class _TileJob:
    """One pass of tiles over a source window, writing probability and mask on ``grid``."""

    def __init__(self, predictor, class_index, tile, overlap, batch_size, threshold, feedback: Feedback, run) -> None:
        self.predictor = predictor
        self.class_index = class_index
        self.tile = tile
        self.overlap = overlap
        self.batch_size = batch_size
        self.threshold = threshold
        self.feedback = feedback  # a share of the job's when the pass is followed by warping back
        self.run_info = run

    def run(self, source, band_indexes, window: Window, grid: Grid, probability_path, mask_path: Path | None,
            class_name, tags) -> None:
        layout = TileLayout(int(window.width), int(window.height), self.tile, self.overlap)
        bands = layout.bands(MAX_BAND_WIDTH)
        self.run_info.tile_count += layout.count
        self._total = sum(len(band.columns) for band in bands) * len(layout.rows)  # with the tiles shared by two bands
        self._done = 0
        values = np.zeros((self.batch_size, len(band_indexes), self.tile, self.tile), dtype=np.float32)
        valid = np.zeros((self.batch_size, self.tile, self.tile), dtype=bool)

        with write_geotiff(probability_path, grid, 1, "float32", nodata=PROBABILITY_NODATA,
                           band_names=[f"{class_name}_probability"], tags=tags) as probability_out, \
             (write_geotiff(mask_path, grid, 1, "uint8", nodata=MASK_NODATA, band_names=[f"{class_name}_mask"], tags=tags)
              if mask_path else contextlib.nullcontext()) as mask_out:
            for band in bands:
                self._run_band(source, band_indexes, window, layout, band, values, valid, probability_out, mask_out)

    def _run_band(self, source, band_indexes, window: Window, layout: TileLayout, band: ColumnBand,
                  values: np.ndarray, valid: np.ndarray, probability_out, mask_out) -> None:
        """Every tile touching the band's columns, row by row; writes the band's own columns."""
        blender = StripBlender(layout, self.batch_size, band)
        rows_in_flight = layout.rows_in_flight(self.batch_size, len(band.columns))
        queue: list[tuple[Tile, int | None]] = []  # tiles waiting, with their batch slot (None: skipped)
        filled = 0

        # the strip of each tile row across the band's tiles; rows below the window are read as the raster has them
        with StripReader(source, band_indexes, window, layout.rows, layout.tile, [(band.left, band.right - band.left)],
                         pad_bottom=False) as strips:

            def process() -> None:
                nonlocal filled
                if self.feedback.cancelled():
                    raise OperationCancelled("Cancelled: no output was written.")
                if filled:
                    probabilities = self.predictor.class_probability(values[:filled], valid[:filled], self.class_index,
                                                                         self.run_info.reflectance_offset)
                for tile, slot in queue:
                    if slot is not None:
                        blender.add(tile, probabilities[slot], valid[slot])
                    if tile.last_in_row:
                        self._write_rows(band, *blender.finish_row(tile.row_index), probability_out, mask_out)
                self._done += len(queue)
                self.feedback.progress(self._done / self._total)
                queue.clear()
                filled = 0

            for tile in layout.band_tiles(band):
                strip_values, strip_valid = strips.get(tile.row_index)
                x = tile.x - band.left
                tile_valid = strip_valid[:, x : x + self.tile]
                if tile_valid.any():
                    values[filled] = strip_values[:, :, x : x + self.tile]
                    valid[filled] = tile_valid
                    queue.append((tile, filled))
                    filled += 1
                else:
                    if band.owns(tile.x):  # a tile shared with the previous band is counted there
                        self.run_info.skipped_tiles += 1
                    queue.append((tile, None))
                if filled == self.batch_size or tile.row_index - queue[0][0].row_index >= rows_in_flight - 1:
                    process()
            process()
            self.run_info.peak_buffer_bytes = max(
                self.run_info.peak_buffer_bytes, blender.buffer_bytes + values.nbytes + valid.nbytes + strips.buffer_bytes
            )

    def _write_rows(self, band: ColumnBand, first_row: int, blended: np.ndarray, covered: np.ndarray, probability_out,
                    mask_out) -> None:
        """Write the band's own columns of finished rows (``blended`` spans the band's tiles)."""
        own = slice(band.start - band.left, band.stop - band.left)
        blended, covered = blended[:, own], covered[:, own]
        rows = Window(band.start, first_row, blended.shape[1], blended.shape[0])
        probability_out.write(np.where(covered, blended, PROBABILITY_NODATA).astype(np.float32)[None], window=rows)
        if mask_out is not None:
            mask_out.write(_mask(blended, covered, self.threshold)[None], window=rows)


def _mask(probability: np.ndarray, covered: np.ndarray, threshold: float) -> np.ndarray:
    """1 where the class probability reaches ``threshold``, 0 elsewhere, nodata where uncovered."""
    return np.where(covered, probability >= threshold, MASK_NODATA).astype(np.uint8)


#: Rows of the blocks the probability is warped back in.
WARP_BLOCK_ROWS = 256
#: Input-valid pixels that come back nodata take the probability of the nearest covered pixel
#: within this many pixels (see :func:`fill_from_nearest`).
FILL_RADIUS = 3
#: Rows of a block whose missing pixels are filled at once (bounds the fill's index arrays).
FILL_BAND_ROWS = 16


def _warp_back(model_probability: Path, grid: Grid, probability_path, mask_path, threshold, class_name, tags,
               feedback: Feedback, input_validity) -> None:
    """Warp the probability computed on the model grid onto ``grid``, in blocks of
    :data:`WARP_BLOCK_ROWS` rows × at most ``MAX_BAND_WIDTH`` columns.

    Pixels invalid in the input stay nodata: bilinear warping would otherwise bleed values a
    pixel or two into nodata areas. Valid pixels at the edge of a rotated or sheared raster
    whose centre falls in a model-grid pixel just outside its footprint come back nodata from
    GDAL: they take the nearest probability (:func:`fill_from_nearest`). Each block is read
    with a halo of :data:`FILL_RADIUS` pixels, so the result does not depend on block boundaries.
    """
    dataset, band_indexes, window = input_validity
    halo = FILL_RADIUS
    with open_raster(model_probability) as source, warped(
        source, grid, Resampling.bilinear, src_nodata=PROBABILITY_NODATA, nodata=PROBABILITY_NODATA
    ) as view, write_geotiff(probability_path, grid, 1, "float32", nodata=PROBABILITY_NODATA,
                             band_names=[f"{class_name}_probability"], tags=tags) as probability_out, \
            write_geotiff(mask_path, grid, 1, "uint8", nodata=MASK_NODATA,
                          band_names=[f"{class_name}_mask"], tags=tags) as mask_out:
        for column in range(0, grid.width, MAX_BAND_WIDTH):
            width = min(MAX_BAND_WIDTH, grid.width - column)
            for row in range(0, grid.height, WARP_BLOCK_ROWS):
                if feedback.cancelled():
                    raise OperationCancelled("Cancelled: no output was written.")
                block = Window(column, row, width, min(WARP_BLOCK_ROWS, grid.height - row))
                # the block with its halo, inside the output grid
                left, top = max(column - halo, 0), max(row - halo, 0)
                right, bottom = min(column + width + halo, grid.width), min(row + block.height + halo, grid.height)
                read = Window(left, top, right - left, bottom - top)
                probability = view.read(1, window=read)
                _, valid = read_window(dataset, band_indexes,
                                       Window(window.col_off + left, window.row_off + top, read.width, read.height))
                covered = (probability != PROBABILITY_NODATA) & valid
                probability, covered = fill_from_nearest(probability, covered, valid, FILL_RADIUS)
                inner = (slice(row - top, row - top + block.height), slice(column - left, column - left + width))
                probability, covered = probability[inner], covered[inner]
                probability[~covered] = PROBABILITY_NODATA
                probability_out.write(probability[None], window=block)
                mask_out.write(_mask(probability, covered, threshold)[None], window=block)


def fill_from_nearest(values: np.ndarray, known: np.ndarray, wanted: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Give each ``wanted`` pixel that is not ``known`` the value of the nearest ``known`` pixel
    within ``radius`` pixels (Euclidean; equally near ones in a fixed order, so the result
    depends only on the neighbourhood). Returns the values and the new ``known``; pixels with
    no known pixel that near stay unknown.

    Works on the coordinates of the missing pixels (a few at the edges of a footprint), in
    bands of :data:`FILL_BAND_ROWS` rows: time grows with their number, and memory stays
    bounded even when a whole block is missing.
    """
    missing = wanted & ~known
    if not missing.any():
        return values, known
    filled_values, filled_known = values.copy(), known.copy()
    height, width = known.shape
    offsets = sorted((dy * dy + dx * dx, dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
                     if 0 < dy * dy + dx * dx <= radius * radius)
    for first in range(0, height, FILL_BAND_ROWS):
        rows, columns = np.nonzero(missing[first : first + FILL_BAND_ROWS])
        rows += first
        source = np.full(rows.size, -1, dtype=np.int64)  # flat index of the pixel each one takes, -1: none yet
        for _, dy, dx in offsets:
            todo = np.flatnonzero(source < 0)
            if todo.size == 0:
                break
            y, x = rows[todo] + dy, columns[todo] + dx
            inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
            hit = np.zeros(todo.size, dtype=bool)
            hit[inside] = known[y[inside], x[inside]]  # the known pixels given, not those just filled
            source[todo[hit]] = y[hit] * width + x[hit]
        found = source >= 0
        filled_values[rows[found], columns[found]] = values.flat[source[found]]
        filled_known[rows[found], columns[found]] = True
    return filled_values, filled_known
