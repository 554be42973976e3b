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
from typing import Callable, Iterable

from ..core.diskspace import check_free_space, explain_no_space, raster_bytes, same_disk
from ..core.errors import OperationCancelled
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
from .segment import SegmentationRun, SegmentationSettings, segment_raster

#: Share of the progress bar spent on inference; vectorising takes the rest.
INFERENCE_SHARE = 0.85


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
    min_area_m2: float = 0.0,
    simplify_m: float = 0.0,
    user_model_dirs: Iterable[str] = (),
    progress: Callable[[float], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    bundled_models_dir: Path = BUNDLED_MODELS_DIR,
) -> WaterResult:
    """Segment water in ``raster`` and write polygons to ``polygons_path`` (any OGR format by extension).

    Without ``model`` the default water model of ``bundled_models_dir`` that suits the raster runs
    (see :func:`default_model_for_raster`); the log says which and why.
    """
    report = progress or (lambda fraction: None)
    cancelled = is_cancelled or (lambda: False)
    say = log or (lambda message: None)
    polygons_path = Path(polygons_path)
    if model is None or not str(model).strip():
        model_path = default_model_for_raster(raster, settings.band_positions, bundled_models_dir, say)
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
        say(f"Removed {len(removed)} temporary file(s) left by earlier runs that did not finish")
    needs = space_needed(raster, settings, polygons_path.parent, probability_path, mask_path)
    check_free_space(needs)
    with cleanup_on_terminate(), explain_no_space(polygons_path.parent, sum(needs.values())):
        return _segment_water(raster, polygons_path, model_path, probability_path, mask_path, settings, min_area_m2,
                              simplify_m, report, cancelled, say)


def default_model_for_raster(raster: str | Path, band_positions, bundled_models_dir: Path = BUNDLED_MODELS_DIR,
                             log: Callable[[str], None] | None = None) -> Path:
    """The bundled water model for ``raster`` (6-band when it has B11 and B12 by description, else
    4-band; by count with explicit ``band_positions``), logged with the reason."""
    with open_raster(raster) as dataset:
        descriptions = list(dataset.descriptions)
    choice = default_water_model(descriptions, band_positions, default_water_candidates(bundled_models_dir))
    if log:
        log(choice.reason)
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
                   settings: SegmentationSettings, min_area_m2: float, simplify_m: float, report, cancelled,
                   say) -> WaterResult:
    network, card = load_model(model_path, task="segmentation")
    predictor = Predictor(network, card, settings.device, settings.test_time_augmentation)
    say(f"Model {card.name} ({card.architecture.id}, bands {', '.join(card.bands)}, {card.gsd_m:g} m) on {predictor.label}"
        + augmentation_note(predictor.test_time_augmentation))

    written: list[Path] = []
    with bounded_block_cache(), scratch_folder(polygons_path.parent) as scratch:
        probability_scratch = Path(scratch) / "probability.tif"
        mask_scratch = Path(scratch) / "mask.tif"
        try:
            run = segment_raster(
                raster, predictor, probability_scratch, mask_scratch, settings,
                progress=lambda fraction: report(INFERENCE_SHARE * fraction), is_cancelled=cancelled,
            )
            warnings = list(run.warnings)
            if run.skipped_tiles == run.tile_count:
                warnings.append("The raster has no valid pixels (all nodata) in the processed area: no water polygons.")
            for note in run.notes:
                say(f"Note: {note}")
            if cancelled():
                raise OperationCancelled("Cancelled: no output was written.")
            polygons = vectorize_mask(
                mask_scratch, polygons_path, probability_path=probability_scratch,
                min_area_m2=min_area_m2, simplify_m=simplify_m,
                progress=lambda fraction: report(INFERENCE_SHARE + (1 - INFERENCE_SHARE) * fraction),
                is_cancelled=cancelled,
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
    say(
        f"{run.tile_count} tiles ({run.skipped_tiles} without data skipped) in {run.seconds:.1f} s "
        f"(model forward {run.forward_seconds:.1f} s); {polygons.polygon_count} water polygons, "
        f"{polygons.total_area_m2 / 1e6:.3f} km²"
    )
    return WaterResult(card, model_path, run, polygons, polygons_path,
                       Path(probability_path) if probability_path else None,
                       Path(mask_path) if mask_path else None, warnings)
