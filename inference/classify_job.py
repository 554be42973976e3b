"""The tile-classification job: raster in, classified tile polygons (plus an optional class raster) out.

Used by the ``satvision:classifytiles`` algorithm, the demo and scripts. Tiles are written to the
vector output as their batches finish (one transaction, a temporary file renamed at the end);
a failure or cancellation leaves no output.

Fields of each tile: ``column``, ``row`` (in the tile grid), ``class``, ``class_label`` (the class in words) and
``class_index`` (the most probable class), ``confidence`` (its probability), ``class_2``/``prob_2`` and
``class_3``/``prob_3`` (the runners-up), ``valid_share`` (share of the tile with data),
``status`` (``classified`` or ``nodata``: skipped, classes left empty) and one ``p_<class>``
field per class with the full probability vector.
"""

from __future__ import annotations

import contextlib
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from osgeo import ogr, osr
from rasterio.windows import Window

from ..core.atomic import atomic_path
from ..core.diskspace import check_free_space, explain_no_space
from ..core.feedback import Feedback, SilentFeedback
from ..core.outputs import check_outputs
from ..core.outputs import raster as raster_output
from ..core.outputs import vector as vector_output
from ..core.raster import bounded_block_cache, extent_window, grid_of, open_raster, write_geotiff
from ..core.scratch import remove_stale_scratch
from ..core.terminate import cleanup_on_terminate
from ..core.vector_io import check, created_dataset, output_driver, transaction
from ..models.card import ModelCard
from ..models.catalog import resolve_model
from ..models.modelfile import load_model, read_card
from .classify_engine import ClassificationRun, ClassificationSettings, TilePrediction, classify_raster
from .predictor import Predictor, augmentation_note

CLASS_NODATA = 255
TOP = 3
#: Bytes of a tile feature in a GeoPackage (outline, fixed fields, index), and per class (a probability, names).
FEATURE_BYTES, CLASS_FIELD_BYTES = 400, 24
#: Width and decimals of the probability fields (0.1234).
PROBABILITY_WIDTH, PROBABILITY_DECIMALS = 6, 4
#: Tile classes (a byte per tile) kept in memory before they go to a temporary file beside the class raster.
SPOOL_BYTES = 1 << 20
#: Largest block of the class raster written at once (rows of the tile grid, or part of one row).
BLOCK_BYTES = 1 << 20


@dataclass
class TileResult:
    """What the job wrote, and for a single tile its class and probabilities."""

    card: ModelCard
    model_path: Path
    run: ClassificationRun
    output_path: Path
    class_raster_path: Path | None
    classified: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    first_tile: dict | None = None  # class, confidence, probabilities of the first classified tile

    @property
    def single(self) -> bool:
        return self.run.tile_count == 1

    @property
    def warnings(self) -> list[str]:
        return self.run.warnings


def probability_field(class_name: str) -> str:
    """``p_`` + the class name reduced to letters, digits and underscores (a portable field name)."""
    return "p_" + re.sub(r"[^0-9A-Za-z_]+", "_", class_name).strip("_").lower()


def classify_tiles(
    raster: str | Path,
    output_path: str | Path,
    *,
    model: str | None = None,
    class_raster_path: str | Path | None = None,
    settings: ClassificationSettings = ClassificationSettings(),
    user_model_dirs: Iterable[str] = (),
    feedback: Feedback | None = None,
) -> TileResult:
    """Classify ``raster`` (grid of tiles or one tile) into a vector layer at ``output_path``.

    Each tile becomes a polygon with its class, confidence, runners-up and full probability vector
    (the fields are listed in the module docstring). Before any work the outputs are checked (see
    :mod:`core.outputs`) and the free space compared with their size; SIGTERM and a full disk leave
    no output and no scratch.

    Args:
        raster (str | Path): A GeoTIFF (any GDAL raster) with the model's bands, matched by band
            description unless ``settings.band_positions`` names them.
        output_path (str | Path): The tile polygons to write; the extension picks the OGR format
            (``.gpkg``, ``.shp``, ``.geojson``...).
        model (str | None): A model file path, a model file's name in the model folders, or a model
            name (card name or file stem). None (default) or empty: the bundled land-cover classifier.
        class_raster_path (str | Path | None): Also write the class index of each tile (uint8
            GeoTIFF, one pixel per tile, 255 no data) here. It is on the tile grid in the CRS the
            tiles were processed in: the raster's, or the UTM zone of a raster that had to be
            resampled to the model's GSD. None (default): not written.
        settings (ClassificationSettings): Mode (``grid`` or ``whole``), tile size and stride,
            batch size, device, extent, bands, the valid share a tile needs, test-time augmentation
            and reflectance offset; the defaults come from the model's card.
        user_model_dirs (Iterable[str]): Extra folders searched for a ``model`` given by name
            (besides the bundled folder and ``SATVISION_MODELS_DIR``). Default: none.
        feedback (Feedback | None): Gets the progress (0-1), the log lines and the warnings, and is
            asked whether to stop: any object with ``progress``, ``cancelled``, ``info`` and
            ``warning`` (:class:`core.feedback.Feedback`). None (default): silent, never cancelled.

    Returns:
        TileResult: The model's card and path, the engine's run (tile counts, mode, timings,
        warnings), the paths written, the count of classified tiles per class and, for a single
        tile (``result.single``), its class and probabilities (``first_tile``).

    Raises:
        SatVisionError: An output path is an input, another output or a folder; the model is not
            found; the tile size does not fit the network, the batch does not fit in memory or the
            job would take longer than the limit.
        ModelFileError: The model file is unreadable or unsafe, or made for another task
            (``TaskMismatchError``).
        RasterError: The raster cannot be read, or lacks the model's bands (``BandMismatchError``).
        NoSpaceError: The disk has too little free space for the outputs.
        OperationCancelled: ``feedback.cancelled()`` became true; nothing was written.

    Example:
        >>> from satvision.inference.classify_engine import ClassificationSettings
        >>> from satvision.inference.classify_job import classify_tiles
        >>> result = classify_tiles("scene.tif", "tiles.gpkg", class_raster_path="classes.tif",
        ...                         settings=ClassificationSettings(mode="grid", batch_size=64))
        >>> print(result.classified, result.class_counts)
    """
    feedback = feedback or SilentFeedback()
    output_path = Path(output_path)
    model_path = resolve_model(model, "classification", user_model_dirs)
    folders = check_outputs(inputs={"INPUT": raster, "MODEL": model_path},
                            outputs={"OUTPUT": vector_output(output_path), "OUTPUT_CLASS_RASTER": raster_output(class_raster_path)})
    removed = remove_stale_scratch(folders)
    if removed:
        feedback.info(f"Removed {len(removed)} temporary file(s) left by earlier runs that did not finish")
    needs = space_needed(raster, read_card(model_path), settings, output_path, class_raster_path)
    check_free_space(needs)
    with cleanup_on_terminate(), explain_no_space(output_path.parent, sum(needs.values())):
        return _classify_tiles(raster, output_path, model_path, class_raster_path, settings, feedback)


def space_needed(raster: str | Path, card: ModelCard, settings: ClassificationSettings, output_path: Path,
                 class_raster_path: str | Path | None) -> dict[Path, int]:
    """Bytes the outputs take, per folder: a feature per tile (its fields and outline), a byte per tile in the
    class raster and one in its scratch (the tile classes once past :data:`SPOOL_BYTES`)."""
    with open_raster(raster) as dataset:
        _, grid = extent_window(dataset, settings.bounds)
    tile_m = (settings.stride or settings.tile_size or card.tiling.tile_size) * card.gsd_m
    if grid.crs.is_geographic:
        width_m, height_m = (grid.width * abs(grid.transform.a) * 111_320.0, grid.height * abs(grid.transform.e) * 111_320.0)
    else:
        factor = grid.crs.linear_units_factor[1] if grid.crs.is_projected else 1.0
        width_m, height_m = grid.width * abs(grid.transform.a) * factor, grid.height * abs(grid.transform.e) * factor
    tiles = 1 if settings.mode == "whole" else math.ceil(width_m / tile_m) * math.ceil(height_m / tile_m)
    needs = {output_path.parent: tiles * (FEATURE_BYTES + CLASS_FIELD_BYTES * len(card.classes))}
    if class_raster_path:
        folder = Path(class_raster_path).parent
        needs[folder] = needs.get(folder, 0) + 2 * tiles
    return needs


def _classify_tiles(raster: str | Path, output_path: Path, model_path: Path, class_raster_path: str | Path | None,
                    settings: ClassificationSettings, feedback: Feedback) -> TileResult:
    driver = output_driver(output_path, "classified tiles")
    network, card = load_model(model_path, task="classification")
    predictor = Predictor(network, card, settings.device, settings.test_time_augmentation)
    feedback.info(f"Model {card.name} ({card.architecture.id}, bands {', '.join(card.bands)}, {card.gsd_m:g} m, "
        f"{len(card.classes)} classes) on {predictor.label}" + augmentation_note(predictor.test_time_augmentation))
    names = card.class_names()
    labels = card.class_labels()
    if class_raster_path and len(names) >= CLASS_NODATA:
        from ..core.errors import SatVisionError

        raise SatVisionError(f"The model has {len(names)} classes; a class raster holds at most {CLASS_NODATA - 1}. "
                             "Leave the class raster out and use the tile polygons.")
    counts = np.zeros(len(names), dtype=np.int64)
    first: dict | None = None

    with open_raster(raster) as source:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(grid_of(source).crs.to_wkt())  # fails clearly on a raster without CRS
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)

    with _Cells.beside(class_raster_path) as cells, bounded_block_cache(), atomic_path(output_path) as temporary, \
            created_dataset(driver, temporary) as dataset:
        layer = _create_layer(dataset, srs, names)

        def sink(tiles: list[TilePrediction]) -> None:
            nonlocal first
            for tile in tiles:
                feature = ogr.Feature(layer.GetLayerDefn())
                feature.SetField("column", tile.column)
                feature.SetField("row", tile.row)
                feature.SetField("valid_share", round(tile.valid_fraction, 4))
                if tile.skipped:
                    feature.SetField("status", "nodata")
                else:
                    order = np.argsort(tile.probabilities)[::-1]
                    feature.SetField("status", "classified")
                    feature.SetField("class", names[order[0]])
                    feature.SetField("class_label", labels[order[0]])
                    feature.SetField("class_index", int(order[0]))
                    feature.SetField("confidence", float(tile.probabilities[order[0]]))
                    for rank in range(1, min(TOP, len(names))):
                        feature.SetField(f"class_{rank + 1}", names[order[rank]])
                        feature.SetField(f"prob_{rank + 1}", float(tile.probabilities[order[rank]]))
                    for index, name in enumerate(names):
                        feature.SetField(probability_field(name), float(tile.probabilities[index]))
                    counts[order[0]] += 1
                    if first is None:
                        first = {"class": names[order[0]], "confidence": float(tile.probabilities[order[0]]),
                                 "probabilities": {name: float(p) for name, p in zip(names, tile.probabilities)}}
                ring = ogr.Geometry(ogr.wkbLinearRing)
                for x, y in tile.outline:
                    ring.AddPoint_2D(float(x), float(y))
                polygon = ogr.Geometry(ogr.wkbPolygon)
                polygon.AddGeometry(ring)
                feature.SetGeometry(polygon)
                check(layer.CreateFeature(feature), "Writing a tile")
                if cells is not None:
                    cells.add(tile.row, tile.column, CLASS_NODATA if tile.skipped else int(order[0]))

        with transaction(dataset):
            run = classify_raster(raster, predictor, sink, settings, feedback)
        for note in run.notes:
            feedback.info(f"Note: {note}")
        if cells is not None and run.tile_grid is not None:
            _write_class_raster(Path(class_raster_path), run, cells, card)
    for warning in run.warnings:
        feedback.warning(warning)
    classified = int(counts.sum())
    feedback.info(f"{run.tile_count} tiles of {run.tile_size} px ({run.skipped_tiles} mostly without data, skipped) in "
        f"{run.seconds:.1f} s (model forward {run.forward_seconds:.1f} s) on {run.device}")
    per_class = ", ".join(f"{name} {int(count)}" for name, count in zip(names, counts))
    feedback.info(f"Tiles per class: {per_class if classified else 'none classified'}")
    return TileResult(card, model_path, run, output_path, Path(class_raster_path) if class_raster_path else None,
                      classified, {name: int(count) for name, count in zip(names, counts) if count}, first)


def _create_layer(dataset: ogr.DataSource, srs: osr.SpatialReference, names: list[str]) -> ogr.Layer:
    layer = dataset.CreateLayer("tiles", srs, ogr.wkbPolygon)
    if layer is None:
        from osgeo import gdal

        from ..core.errors import SatVisionError

        raise SatVisionError(f"Cannot create the tile layer: {gdal.GetLastErrorMsg()}")
    # probabilities and shares as 0.1234 (width 6, 4 decimals), not the Shapefile default of 24.15
    fields = [("column", ogr.OFTInteger), ("row", ogr.OFTInteger), ("class", ogr.OFTString),
              ("class_label", ogr.OFTString), ("class_index", ogr.OFTInteger), ("confidence", ogr.OFTReal)]
    for rank in range(2, min(TOP, len(names)) + 1):
        fields += [(f"class_{rank}", ogr.OFTString), (f"prob_{rank}", ogr.OFTReal)]
    fields += [("valid_share", ogr.OFTReal), ("status", ogr.OFTString)]
    fields += [(probability_field(name), ogr.OFTReal) for name in names]
    for name, kind in fields:
        definition = ogr.FieldDefn(name, kind)
        if kind == ogr.OFTReal:
            definition.SetWidth(PROBABILITY_WIDTH)
            definition.SetPrecision(PROBABILITY_DECIMALS)
        check(layer.CreateField(definition), f"Creating the field {name}")
    return layer


class _Cells:
    """The class index of every tile (:data:`CLASS_NODATA`: none), a byte each, in grid order.

    The engine hands tiles on row by row, each row from column 0: the classes are appended to a
    file that stays in memory up to :data:`SPOOL_BYTES` and then goes to an anonymous temporary
    file beside the class raster (removed when closed, or by the system when the process dies),
    so memory does not grow with the tile count (only the current tile row is held as a whole).
    A tile out of that order is a bug, not bad
    input: it raises at once instead of shifting the raster.
    """

    def __init__(self, folder: Path) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=folder, prefix=".satvision-classes-")
        self._row = bytearray()  # classes of the current tile row
        self._row_index = 0
        self.width: int | None = None
        self.height = 0

    @classmethod
    @contextlib.contextmanager
    def beside(cls, class_raster_path: str | Path | None) -> Iterator["_Cells | None"]:
        """Cells for a class raster at ``class_raster_path`` (None: no class raster, no cells)."""
        if not class_raster_path:
            yield None
            return
        cells = cls(Path(class_raster_path).parent)
        try:
            yield cells
        finally:
            cells._file.close()

    def add(self, row: int, column: int, class_index: int) -> None:
        if row == self._row_index + 1 and column == 0 and self._row and len(self._row) == (self.width or len(self._row)):
            self._end_row()
            self._row_index = row
        if row != self._row_index or column != len(self._row):
            raise RuntimeError(f"Tile (row {row}, column {column}) out of grid order after row {self._row_index}, "
                               f"column {len(self._row) - 1}")
        self._row.append(class_index)

    def _end_row(self) -> None:
        self.width = len(self._row)
        self._file.write(self._row)
        self._row.clear()
        self.height += 1

    def blocks(self, width: int, height: int) -> Iterator[tuple[Window, np.ndarray]]:
        """Windows of the ``width × height`` tile grid and their classes, each at most :data:`BLOCK_BYTES`."""
        if self._row:
            self._end_row()
        if (self.width, self.height) != (width, height):
            raise RuntimeError(f"{self.height} rows of {self.width} tiles classified for a {height} × {width} tile grid")
        columns = min(width, BLOCK_BYTES)
        rows = max(1, BLOCK_BYTES // columns)  # whole rows, or one row in parts: each block is contiguous
        for top in range(0, height, rows):
            block_rows = min(rows, height - top)
            for left in range(0, width, columns):
                block_columns = min(columns, width - left)
                self._file.seek(top * width + left)
                data = self._file.read(block_rows * block_columns)
                yield Window(left, top, block_columns, block_rows), np.frombuffer(data, np.uint8).reshape(block_rows, block_columns)


def _write_class_raster(path: Path, run: ClassificationRun, cells: _Cells, card: ModelCard) -> None:
    """One pixel per tile (stride-sized, centred on the tile), the class index; 255 = skipped.
    Written in blocks of at most :data:`BLOCK_BYTES`: memory does not grow with the tile count."""
    grid = run.tile_grid
    tags = {"SATVISION_MODEL": card.name, "SATVISION_CLASSES": ",".join(card.class_names())}
    with write_geotiff(path, grid, 1, "uint8", nodata=CLASS_NODATA, band_names=["class_index"], tags=tags) as writer:
        for window, classes in cells.blocks(grid.width, grid.height):
            writer.write(classes[None], window=window)
        writer.write_colormap(1, {item.index: _rgb(item.colour) for item in card.classes})


def _rgb(colour: str) -> tuple[int, int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16), 255
