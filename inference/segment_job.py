"""The water-segmentation job: raster in, water polygons (plus optional rasters) out.

Used by the ``satvision:segmentwater`` algorithm and by scripts. Nothing appears at the output
paths until the whole job has succeeded: rasters are computed in a scratch folder and moved
into place at the end, polygons are written atomically, and a failure, a cancellation or SIGTERM
removes everything the run wrote. Before any work the outputs are checked (none may be an input,
another output or a folder; see :mod:`core.outputs`) and the free space compared with the rasters'
size; a full disk during the run is reported as such.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..core.diskspace import check_free_space, explain_no_space, raster_bytes, same_disk
from ..core.errors import OperationCancelled
from ..core.feedback import Feedback, ShareFeedback, SilentFeedback
from ..core.options import default_of, option
from ..core.outputs import check_outputs
from ..core.outputs import raster as raster_output
from ..core.outputs import vector as vector_output
from ..core.raster import bounded_block_cache, extent_window, open_raster
from ..core.scratch import remove_stale_scratch, scratch_folder
from ..core.terminate import cleanup_on_terminate
from ..core.vectorize import VectorizeSummary, vectorize_mask
from ..models.card import ModelCard
from ..models.catalog import BUNDLED_MODELS_DIR, default_water_candidates, default_water_model, resolve_model
from ..models.modelfile import load_model
from .predictor import Predictor, augmentation_note
from .segment_engine import SegmentationRun, SegmentationSettings, segment_raster

#: Share of the progress bar spent on inference; vectorising takes the rest.
INFERENCE_SHARE = 0.85


@dataclass(frozen=True)
class PolygonSettings:
    """How the water mask becomes polygons (see :func:`core.vectorize.vectorize_mask`), declared once:
    :func:`segment_water`'s ``min_area_m2`` and ``simplify_m`` and the Segment water algorithm read
    their defaults from here.

    Each field's help is declared with the field (see core/options.py); the Segment water
    algorithm's dialog (``qgis_process help satvision:segmentwater``) lists them, as ``satvision ... --help``
    lists the options of the commands.
    """

    min_area_m2: float = option(300.0, minimum=0.0, label="Minimum polygon and hole area (m²)",
                                help="Polygons smaller than this are dropped and holes smaller than this are filled (m²).")
    simplify_m: float = option(5.0, minimum=0.0, label="Simplification tolerance (m, 0: none)",
                               help="Tolerance for simplifying the polygon outlines, in metres; 0 keeps every pixel edge.")


@dataclass
class WaterResult:
    card: ModelCard
    model_path: Path
    run: SegmentationRun
    polygons: VectorizeSummary
    polygons_path: Path
    probability_path: Path | None
    mask_path: Path | None
    warnings: list[str]


def segment_water(
    raster: str | Path,
    polygons_path: str | Path,
    *,
    model: str | None = None,
    probability_path: str | Path | None = None,
    mask_path: str | Path | None = None,
    settings: SegmentationSettings = SegmentationSettings(),
    min_area_m2: float = default_of(PolygonSettings, "min_area_m2"),
    simplify_m: float = default_of(PolygonSettings, "simplify_m"),
    user_model_dirs: Iterable[str] = (),
    feedback: Feedback | None = None,
    bundled_models_dir: Path = BUNDLED_MODELS_DIR,
) -> WaterResult:
    """Segment water in ``raster`` and write polygons to ``polygons_path`` (any OGR format by extension).

    The raster is segmented tile by tile (:func:`inference.segment_engine.segment_raster`), the
    water mask vectorised, and the polygons (plus the optional probability and mask GeoTIFFs)
    written only when the whole job has succeeded (see the module). Polygons under ``min_area_m2``
    are dropped and holes under it filled; outlines are simplified with a tolerance of
    ``simplify_m`` (defaults: :class:`PolygonSettings`, as in QGIS; 0 and 0 keep every polygon and
    pixel edge).

    Args:
        raster (str | Path): A GeoTIFF (any GDAL raster) with the model's bands, matched by band
            description unless ``settings.band_positions`` names them.
        polygons_path (str | Path): The water polygons to write; the extension picks the OGR
            format (``.gpkg``, ``.shp``, ``.geojson``...). Fields: ``area_m2``, ``perimeter_m``,
            ``mean_probability``.
        model (str | None): A model file path, a model file's name in the model folders, or a model
            name (card name or file stem). None (default) or empty: the bundled water model of
            ``bundled_models_dir`` that suits the raster (:func:`default_model_for_raster`: 6-band
            when the raster has B11 and B12, else 4-band); the log says which and why.
        probability_path (str | Path | None): Also write the water probability (float32 GeoTIFF,
            0-1, nodata -1) here. None (default): not written.
        mask_path (str | Path | None): Also write the water mask (uint8 GeoTIFF: 1 water, 0 not,
            255 no data) here. None (default): not written.
        settings (SegmentationSettings): Tiling, batch size, device, threshold, extent, bands,
            test-time augmentation and reflectance offset; the defaults come from the model's card.
        min_area_m2 (float): Polygons smaller than this are dropped and holes smaller than this
            filled, in square metres (default 300, from :class:`PolygonSettings`; 0 keeps all).
        simplify_m (float): Outline simplification tolerance in metres (default 5, from
            :class:`PolygonSettings`; 0 keeps every pixel edge).
        user_model_dirs (Iterable[str]): Extra folders searched for a ``model`` given by name
            (besides the bundled folder and ``SATVISION_MODELS_DIR``). Default: none.
        feedback (Feedback | None): Gets the progress (0-1), the log lines and the warnings, and is
            asked whether to stop: any object with ``progress``, ``cancelled``, ``info`` and
            ``warning`` (:class:`core.feedback.Feedback`). None (default): silent, never cancelled.
        bundled_models_dir (Path): The folder the default model is chosen from (default the
            plugin's ``resources/models``).

    Returns:
        WaterResult: The model's card and path, the engine's run (tile counts, timings, notes), the
        polygon summary (count, total area), the paths written (``probability_path`` and
        ``mask_path`` None when not requested) and the warnings.

    Raises:
        SatVisionError: An output path is an input, another output or a folder; the model is not
            found; the tile size does not fit the network, the batch does not fit in memory or the
            job would take longer than the limit.
        ModelFileError: The model file is unreadable or unsafe, or made for another task
            (``TaskMismatchError``).
        RasterError: The raster cannot be read, or lacks the model's bands (``BandMismatchError``).
        NoSpaceError: The disk has too little free space for the outputs (checked before work, and
            a full disk during the run).
        OperationCancelled: ``feedback.cancelled()`` became true; nothing was written.

    Example:
        >>> from satvision.core.feedback import CallbackFeedback
        >>> from satvision.inference.segment_engine import SegmentationSettings
        >>> from satvision.inference.segment_job import segment_water
        >>> result = segment_water(
        ...     "scene.tif", "water.gpkg", probability_path="water_probability.tif",
        ...     settings=SegmentationSettings(batch_size=8, threshold=0.5), min_area_m2=500.0,
        ...     feedback=CallbackFeedback(log=print),
        ... )
        >>> print(result.polygons.polygon_count, result.card.name)
    """
    feedback = feedback or SilentFeedback()
    polygons_path = Path(polygons_path)
    if model is None or not str(model).strip():
        model_path = default_model_for_raster(raster, settings.band_positions, bundled_models_dir, feedback)
    else:
        model_path = resolve_model(model, "segmentation", user_model_dirs)
    # fail before minutes of inference, not after
    folders = check_outputs(
        inputs={"INPUT": raster, "MODEL": model_path},
        outputs={"OUTPUT": vector_output(polygons_path), "PROBABILITY": raster_output(probability_path),
                 "MASK": raster_output(mask_path)},
    )
    removed = remove_stale_scratch(folders)
    if removed:
        feedback.info(f"Removed {len(removed)} temporary file(s) left by earlier runs that did not finish")
    needs = space_needed(raster, settings, polygons_path.parent, probability_path, mask_path)
    check_free_space(needs)
    with cleanup_on_terminate(), explain_no_space(polygons_path.parent, sum(needs.values())):
        return _segment_water(raster, polygons_path, model_path, probability_path, mask_path, settings, min_area_m2,
                              simplify_m, feedback)


def default_model_for_raster(raster: str | Path, band_positions, bundled_models_dir: Path = BUNDLED_MODELS_DIR,
                             feedback: Feedback | None = None) -> Path:
    """The bundled water model for ``raster`` (6-band when it has B11 and B12 by description, else
    4-band; by count with explicit ``band_positions``), logged with the reason."""
    with open_raster(raster) as dataset:
        descriptions = list(dataset.descriptions)
    choice = default_water_model(descriptions, band_positions, default_water_candidates(bundled_models_dir))
    (feedback or SilentFeedback()).info(choice.reason)
    return choice.path


def space_needed(raster: str | Path, settings: SegmentationSettings, scratch: Path,
                 probability_path: str | Path | None, mask_path: str | Path | None) -> dict[Path, int]:
    """Bytes written per folder: both rasters (uncompressed) in the scratch folder, and again where a
    requested raster goes to another disk (moved there at the end)."""
    with open_raster(raster) as dataset:
        _, grid = extent_window(dataset, settings.bounds)
    probability = raster_bytes(grid.width, grid.height, 1, "float32")
    mask = raster_bytes(grid.width, grid.height, 1, "uint8")
    needs = {scratch: probability + mask}
    for target, size in ((probability_path, probability), (mask_path, mask)):
        if target and not same_disk(Path(target).parent, scratch):
            needs[Path(target).parent] = needs.get(Path(target).parent, 0) + size
    return needs


def _segment_water(raster, polygons_path: Path, model_path: Path, probability_path, mask_path,
                   settings: SegmentationSettings, min_area_m2: float, simplify_m: float, feedback: Feedback) -> WaterResult:
    network, card = load_model(model_path, task="segmentation")
    predictor = Predictor(network, card, settings.device, settings.test_time_augmentation)
    feedback.info(f"Model {card.name} ({card.architecture.id}, bands {', '.join(card.bands)}, {card.gsd_m:g} m) on {predictor.label}"
        + augmentation_note(predictor.test_time_augmentation))

    written: list[Path] = []
    with bounded_block_cache(), scratch_folder(polygons_path.parent) as scratch:
        probability_scratch = Path(scratch) / "probability.tif"
        mask_scratch = Path(scratch) / "mask.tif"
        try:
            run = segment_raster(
                raster, predictor, probability_scratch, mask_scratch, settings,
                feedback=ShareFeedback(feedback, 0.0, INFERENCE_SHARE),
            )
            warnings = list(run.warnings)
            if run.skipped_tiles == run.tile_count:
                warnings.append("The raster has no valid pixels (all nodata) in the processed area: no water polygons.")
            for note in run.notes:
                feedback.info(f"Note: {note}")
            if feedback.cancelled():
                raise OperationCancelled("Cancelled: no output was written.")
            polygons = vectorize_mask(
                mask_scratch, polygons_path, probability_path=probability_scratch,
                min_area_m2=min_area_m2, simplify_m=simplify_m,
                feedback=ShareFeedback(feedback, INFERENCE_SHARE, 1.0),
            )
            written.append(polygons_path)
            for source, target in ((probability_scratch, probability_path), (mask_scratch, mask_path)):
                if target:
                    shutil.move(str(source), str(target))
                    written.append(Path(target))
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    feedback.info(
        f"{run.tile_count} tiles ({run.skipped_tiles} without data skipped) in {run.seconds:.1f} s "
        f"(model forward {run.forward_seconds:.1f} s); {polygons.polygon_count} water polygons, "
        f"{polygons.total_area_m2 / 1e6:.3f} km²"
    )
    return WaterResult(card, model_path, run, polygons, polygons_path,
                       Path(probability_path) if probability_path else None,
                       Path(mask_path) if mask_path else None, warnings)
