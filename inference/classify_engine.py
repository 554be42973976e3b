"""Classifying a raster: the whole raster as one tile, or every tile of a grid.

Grid mode streams the raster in strips of one tile row (read one strip ahead), batches the tiles
and hands each finished batch of :class:`TilePrediction` to a sink (the vector writer). A strip
holds the tiles of at most :data:`~satvision.core.tiling.MAX_BAND_WIDTH` (16,384) columns, a
wider raster's rows are read in several strips, and tiles waiting for a batch are handed on
after :data:`MAX_PENDING_TILES`, so memory is bounded by tile size × batch size and a strip of
at most ``MAX_BAND_WIDTH + tile`` columns (two strips of ``4 × bands × tile × that`` bytes),
never by the raster's width or height. Tile size, batch memory and the job's estimated time
are checked before any tile runs (:mod:`inference.limits`). Tiles whose valid share is
under ``min_valid_fraction`` are not run and come out marked ``nodata``. Rasters that are not on a
UTM grid at the model's GSD are read through a warped view at the model's GSD; tile outlines are
then transformed back into the raster's CRS.

Whole mode reads the raster (or the extent) resampled to exactly one model tile (GDAL average),
so memory is one tile whatever the raster's size.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..core.errors import OperationCancelled, SatVisionError
from ..core.feedback import Feedback, SilentFeedback
from ..core.options import option
from ..core.raster import Grid, extent_window, open_raster, read_resampled, select_bands
from ..core.resampling import model_grid, needs_resampling, warped
from ..core.strips import StripReader
from ..core.tiling import MAX_BAND_WIDTH
from ..models.classifier_input import min_tile_size, network_input_size
from ..models.normalisation import ReflectanceOffsetSetting, inspect_raster_input, parse_reflectance_offset
from .common_options import (
    band_positions_option,
    batch_size_option,
    device_option,
    reflectance_offset_option,
    test_time_augmentation_option,
)
from .limits import check_batch, check_job
from .predictor import Predictor

MODES = ("grid", "whole")
CANCELLED = "Cancelled: no output was written."
#: Tiles (mostly skipped ones) held for the sink at most before they are handed on.
MAX_PENDING_TILES = 4096


@dataclass(frozen=True)
class ClassificationSettings:
    """How to classify: mode, tile size and stride in model pixels (defaults from the card),
    batching, device, extent, explicit band positions, the valid share a tile needs.

    Taken by :func:`inference.classify_job.classify_tiles` and
    :func:`inference.classify_engine.classify_raster`; ``None`` fields fall back to the model's card.
    Each field's help is declared with the field (see core/options.py); ``satvision evaluate
    classification --help`` and the Classify tiles algorithm list them. The Classify tiles algorithm
    and ``satvision evaluate classification`` build their parameters from these declarations. The
    field that is not a user option: ``max_job_hours`` (refuse jobs estimated over this many hours;
    None: ``SATVISION_MAX_JOB_HOURS`` or 12 h; 0: no limit).
    """

    mode: str = option("grid", choices=MODES, label="Mode",
                       help="Grid of tiles (grid): one polygon per tile. Whole raster as one tile (whole): the raster (or "
                            "extent) is resampled to one model tile and gets one class, for image chips such as EuroSAT "
                            "patches.")
    tile_size: int | None = option(None, minimum=0, unset=0, label="Tile size in pixels (0: the model's)",
                                   help="Side of the square tiles in pixels (grid mode); 0 (or none) uses the tile size in "
                                        "the model's card.")
    stride: int | None = option(None, minimum=0, unset=0, label="Stride in pixels (0: the tile size, tiles side by side)",
                                help="Distance between tile origins in pixels (grid mode); 0 (or none) puts tiles side by "
                                     "side, less than the tile size overlaps them.")
    batch_size: int = batch_size_option(32)
    device: str = device_option()
    bounds: tuple[float, float, float, float] | None = option(
        None, label="Limit to extent", help="Classify only this part of the raster (empty: the whole raster).")
    band_positions: Sequence[int] | None = band_positions_option()
    min_valid_fraction: float = option(0.5, minimum=0.0, maximum=1.0,
                                       label="Minimum share of valid pixels for a tile to be classified",
                                       help="Tiles with a smaller share of pixels with data are not classified; they get "
                                            "status nodata.")
    test_time_augmentation: str | None = test_time_augmentation_option()  # none, flips or d4; default the card's
    #: refuse jobs estimated over this many hours; None: SATVISION_MAX_JOB_HOURS or 12 h; 0: no limit
    max_job_hours: float | None = None
    #: raster values subtracted before normalising: "auto" (detect the +1000 of Sentinel-2 baseline
    #: 04.00 and later from metadata or the darkest values) or a number (0: none); see models.normalisation
    reflectance_offset: ReflectanceOffsetSetting = reflectance_offset_option()


@dataclass
class TilePrediction:
    """One tile: where (column/row in the tile grid, outline in the raster's CRS) and what."""

    column: int
    row: int
    outline: list[tuple[float, float]]  # closed ring: 5 corner points
    valid_fraction: float
    probabilities: np.ndarray | None  # None: skipped (mostly nodata)

    @property
    def skipped(self) -> bool:
        return self.probabilities is None


@dataclass
class ClassificationRun:
    grid: Grid  # the raster's grid (or the extent's part of it)
    tile_grid: Grid | None = None  # one cell per tile (stride-sized cells, centred on each tile); CRS of processing
    mode: str = "grid"
    tile_size: int = 0
    stride: int = 0
    tile_count: int = 0
    skipped_tiles: int = 0
    device: str = ""
    test_time_augmentation: str = "none"
    resampled: bool = False
    seconds: float = 0.0
    forward_seconds: float = 0.0
    peak_buffer_bytes: int = 0  # strips read and batch arrays (grid mode): bounded, whatever the raster's size
    reflectance_offset: float = 0.0  # raster values subtracted before normalising (resolved from the setting)
    notes: list[str] = field(default_factory=list)  # for the log (e.g. the reflectance offset and why)
    warnings: list[str] = field(default_factory=list)


TileSink = Callable[[list[TilePrediction]], None]


def classify_raster(
    raster: str | Path,
    predictor: Predictor,
    sink: TileSink,
    settings: ClassificationSettings = ClassificationSettings(),
    feedback: Feedback | None = None,
) -> ClassificationRun:
    """Classify ``raster`` and pass every tile (classified or skipped) to ``sink``, batch by batch."""
    started = time.perf_counter()
    card = predictor.card
    if settings.mode not in MODES:
        raise SatVisionError(f"Unknown mode {settings.mode!r}; choose grid or whole.")
    if card.task != "classification":
        raise SatVisionError(f"{card.name} is a {card.task} model; tile classification needs a classification model.")
    tile = settings.tile_size or card.tiling.tile_size
    stride = settings.stride or tile
    if tile < 1:
        raise SatVisionError(f"The tile size must be at least 1 px, not {tile}; 0 uses the model's ({card.tiling.tile_size} px).")
    if not 0 < stride <= tile:
        raise SatVisionError(f"The stride ({stride} px) must be between 1 and the tile size ({tile} px).")
    smallest = min_tile_size(card)
    if tile < smallest:
        raise SatVisionError(
            f"Tile size {tile} px is too small for the model {card.name}: it reads every tile resized to "
            f"{network_input_size(card)} px, so a tile under {smallest} px is magnified more than 4 times into a few "
            f"blurred blocks. Set Tile size to {smallest} px or more, or to 0 for the model's {card.tiling.tile_size} px."
        )
    if settings.batch_size < 1:
        raise SatVisionError("The batch size must be at least 1.")
    check_batch(predictor, tile, settings.batch_size, network_side=network_input_size(card))
    if not 0.0 <= settings.min_valid_fraction <= 1.0:
        raise SatVisionError("The minimum valid share of a tile must be between 0 and 1.")
    parse_reflectance_offset(settings.reflectance_offset)  # a bad setting fails before the raster is opened
    feedback = feedback or SilentFeedback()

    with open_raster(raster) as dataset:
        band_indexes = select_bands(dataset, card.bands, settings.band_positions)
        window, grid = extent_window(dataset, settings.bounds)
        run = ClassificationRun(grid=grid, mode=settings.mode, tile_size=tile, stride=stride, device=predictor.label,
                                test_time_augmentation=predictor.test_time_augmentation)
        inspection = inspect_raster_input(dataset, band_indexes, window, card.normalisation,
                                          settings.reflectance_offset)  # before any work
        run.reflectance_offset = inspection.offset
        run.notes.extend(inspection.notes)
        run.warnings.extend(inspection.warnings)
        if settings.mode == "whole":
            _classify_whole(dataset, band_indexes, window, grid, predictor, tile, settings, sink, run, feedback)
        else:
            with _processing_view(dataset, window, grid, card.gsd_m, run) as (source, source_window, processing_grid):
                _classify_grid(source, band_indexes, source_window, processing_grid, grid, predictor, tile, stride,
                               settings, sink, run, feedback)
    run.seconds = time.perf_counter() - started
    run.forward_seconds = predictor.forward_seconds
    feedback.progress(1.0)
    return run


@contextlib.contextmanager
def _processing_view(dataset, window: Window, grid: Grid, gsd_m: float, run: ClassificationRun) -> Iterator[tuple]:
    """The raster as the model sees it: itself, or a warped view at the model's GSD in UTM."""
    if not needs_resampling(grid, gsd_m):
        yield dataset, window, grid
        return
    processing = model_grid(grid, gsd_m)
    run.resampled = True
    run.warnings.append(
        f"The raster ({grid.crs.to_string()}, {grid.pixel_size[0]:g} units per pixel) is read at the model's "
        f"{gsd_m:g} m in {processing.crs.to_string()}; tile outlines are transformed back to the raster's CRS."
    )
    with warped(dataset, processing, Resampling.bilinear) as view:
        yield view, Window(0, 0, processing.width, processing.height), processing


def grid_origins(length: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis: every ``stride`` pixels while a tile still starts inside.

    Unlike segmentation tiles, classification tiles are not shifted inward at the edge: a grid
    cell keeps its place on the regular grid and the part beyond the raster counts as nodata.
    """
    count = max(1, math.ceil((length - tile) / stride) + 1) if length > tile else 1
    return [index * stride for index in range(count)]


def _classify_grid(source, band_indexes, window: Window, processing: Grid, output: Grid, predictor: Predictor, tile: int,
                   stride: int, settings: ClassificationSettings, sink: TileSink, run: ClassificationRun,
                   feedback: Feedback) -> None:
    columns = grid_origins(processing.width, tile, stride)
    rows = grid_origins(processing.height, tile, stride)
    if processing.width < tile and processing.height < tile:
        run.warnings.append(
            f"The raster ({processing.width} × {processing.height} px at the model's GSD) is smaller than a tile "
            f"({tile} px): it is classified as one tile padded with nodata. Choose a smaller tile size or the whole mode."
        )
    elif processing.width < tile or processing.height < tile:
        run.warnings.append(
            f"The raster ({processing.width} × {processing.height} px at the model's GSD) is "
            f"{'narrower' if processing.width < tile else 'shorter'} than a tile ({tile} px): its tiles are padded with nodata."
        )
    run.tile_count = len(columns) * len(rows)
    check_job(predictor, run.tile_count, tile, settings.batch_size, settings.max_job_hours)  # before any tile
    # A raster narrower or shorter than a tile cannot fill one: its valid share counts the part
    # of the tile that can hold data, so the padding alone never gets the tile skipped.
    tile_area = min(tile, processing.width) * min(tile, processing.height)
    offset = (tile - stride) / 2  # cells of the tile grid: stride-sized, centred on their tile
    run.tile_grid = Grid(processing.crs, _cell_transform(processing, offset, stride), len(columns), len(rows))
    to_output = _outline_transformer(processing, output)
    bands = len(band_indexes)
    values = np.zeros((settings.batch_size, bands, tile, tile), dtype=np.float32)
    valid = np.zeros((settings.batch_size, tile, tile), dtype=bool)
    pending: list[TilePrediction] = []  # every tile since the last batch, in grid order
    batched: list[TilePrediction] = []  # those of them in the batch arrays (slot = position)
    done = 0

    def flush() -> None:
        nonlocal done
        if feedback.cancelled():
            raise OperationCancelled(CANCELLED)
        if batched:
            probabilities = predictor.class_probabilities(values[: len(batched)], valid[: len(batched)],
                                                          run.reflectance_offset).cpu().numpy()
            for slot, prediction in enumerate(batched):
                prediction.probabilities = probabilities[slot]
        sink(list(pending))
        done += len(pending)
        feedback.progress(done / run.tile_count)
        pending.clear()
        batched.clear()

    chunks = _column_chunks(columns, tile)
    # each tile row's strips, one per column chunk, padded to whole tiles
    spans = [(left, chunk_columns[-1][1] + tile - left) for left, chunk_columns in chunks]
    with StripReader(source, band_indexes, window, rows, tile, spans) as reader:
        for row_number, y in enumerate(rows):
            for chunk_number, (left, chunk_columns) in enumerate(chunks):
                strip_values, strip_valid = reader.get(row_number, chunk_number)
                for column_number, x in chunk_columns:
                    tile_valid = strip_valid[:, x - left : x - left + tile]
                    fraction = min(1.0, float(tile_valid.sum()) / tile_area)
                    prediction = TilePrediction(column_number, row_number, to_output(x, y, tile), fraction, None)
                    pending.append(prediction)
                    if fraction < max(settings.min_valid_fraction, 1e-9):
                        run.skipped_tiles += 1
                    else:
                        slot = len(batched)
                        values[slot] = strip_values[:, :, x - left : x - left + tile]
                        valid[slot] = tile_valid
                        batched.append(prediction)
                    if len(batched) == settings.batch_size or len(pending) >= MAX_PENDING_TILES:
                        flush()
            if feedback.cancelled():
                raise OperationCancelled(CANCELLED)
            if pending and not batched:  # only skipped tiles waiting: hand them on (memory, progress)
                flush()
        flush()
        run.peak_buffer_bytes = values.nbytes + valid.nbytes + reader.buffer_bytes


def _cell_transform(processing: Grid, offset: float, stride: int):
    from rasterio.transform import Affine

    return processing.transform * Affine.translation(offset, offset) * Affine.scale(stride, stride)


def _outline_transformer(processing: Grid, output: Grid) -> Callable[[int, int, int], list[tuple[float, float]]]:
    """``(x, y, tile)`` in processing pixels → the tile's closed outline in the output CRS."""
    transform = processing.transform
    same_crs = processing.crs == output.crs
    if not same_crs:
        from rasterio.warp import transform as transform_points

    def outline(x: int, y: int, tile: int) -> list[tuple[float, float]]:
        corners = [transform * (x, y), transform * (x + tile, y), transform * (x + tile, y + tile), transform * (x, y + tile)]
        if not same_crs:
            xs, ys = transform_points(processing.crs, output.crs, [c[0] for c in corners], [c[1] for c in corners])
            corners = list(zip(xs, ys))
        return [*corners, corners[0]]

    return outline


def _column_chunks(columns: list[int], tile: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """Tile columns grouped so that a group's tiles span at most ``MAX_BAND_WIDTH`` pixels (one
    tile when tiles are wider): ``(left pixel, [(column number, x), ...])`` per group."""
    chunks: list[tuple[int, list[tuple[int, int]]]] = []
    for number, x in enumerate(columns):
        if not chunks or x + tile - chunks[-1][0] > MAX_BAND_WIDTH:
            chunks.append((x, []))
        chunks[-1][1].append((number, x))
    return chunks


def _classify_whole(dataset, band_indexes, window: Window, grid: Grid, predictor: Predictor, tile: int,
                    settings: ClassificationSettings, sink: TileSink, run: ClassificationRun, feedback: Feedback) -> None:
    """The window resampled (GDAL average) to one model tile; a warning when that is far from the model's GSD."""
    from rasterio.transform import Affine

    card = predictor.card
    metres_per_pixel = _metres_per_pixel(grid)
    tile_gsd = max(grid.width * metres_per_pixel[0], grid.height * metres_per_pixel[1]) / tile
    if not 0.5 <= tile_gsd / card.gsd_m <= 2.0:
        run.warnings.append(
            f"As one tile of {tile} px, the raster is seen at about {tile_gsd:.1f} m per pixel; the model expects "
            f"{card.gsd_m:g} m. Results may be unreliable: use the grid mode for rasters much larger or smaller than a tile."
        )
    values, valid = read_resampled(dataset, band_indexes, window, (tile, tile))
    if feedback.cancelled():
        raise OperationCancelled(CANCELLED)
    run.tile_count = 1
    run.tile_grid = Grid(grid.crs, grid.transform * Affine.scale(grid.width, grid.height), 1, 1)  # one cell: the window
    transform = grid.transform
    corners = [transform * (0, 0), transform * (grid.width, 0), transform * (grid.width, grid.height), transform * (0, grid.height)]
    outline = [*corners, corners[0]]
    fraction = float(valid.mean())
    if fraction < max(settings.min_valid_fraction, 1e-9):
        run.skipped_tiles = 1
        sink([TilePrediction(0, 0, outline, fraction, None)])
        return
    probabilities = predictor.class_probabilities(values[None], valid[None], run.reflectance_offset).cpu().numpy()[0]
    sink([TilePrediction(0, 0, outline, fraction, probabilities)])


def _metres_per_pixel(grid: Grid) -> tuple[float, float]:
    if grid.crs.is_geographic:
        from ..core.resampling import grid_centre_lonlat

        _, latitude = grid_centre_lonlat(grid)
        metres = 111_320.0
        return abs(grid.transform.a) * metres * math.cos(math.radians(latitude)), abs(grid.transform.e) * metres
    factor = grid.crs.linear_units_factor[1] if grid.crs.is_projected else 1.0
    return abs(grid.transform.a) * factor, abs(grid.transform.e) * factor
