"""Water segmentation evaluation through the real inference engine.

``evaluate_segmentation`` runs :func:`inference.segment_engine.segment_raster` on each whole image, as the
plugin does, and compares the mask and probability it writes with the label window by window,
beside the NDWI > 0 baseline on the same pixels (:mod:`training.water_evaluation`).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from ..core.errors import SatVisionError
from ..core.feedback import Feedback, SilentFeedback
from ..core.raster import open_raster
from . import plots
from .metrics import SegmentationMetrics
from .reporting import clean_metrics
from .segmentation_pairs import IGNORE_INDEX, Region, find_pairs, region_json, split_pairs
from .water_evaluation import LabelConvention


@dataclass
class SegmentationEvaluation:
    model: Path
    model_name: str
    metrics: dict[str, Any]
    per_image: list[dict[str, Any]]
    seconds: float
    water: dict[str, Any] = field(default_factory=dict)  # see training.water_evaluation

    def to_json(self) -> dict[str, Any]:
        return {"model": str(self.model), "model_name": self.model_name, **self.metrics, "water": self.water,
                "per_image": self.per_image, "seconds": round(self.seconds, 2)}


def evaluate_segmentation(
    model_path: str | Path | None,
    data: str | Path,
    *,
    split: str = "all",
    seed: int | None = None,
    split_mode: str | None = None,
    tile_size: int | None = None,
    batch_size: int = 4,
    device: str = "auto",
    threshold: float = 0.5,
    reflectance_offset: str | float = "auto",
    test_time_augmentation: str | None = None,
    labels: LabelConvention | None = None,
    image_suffix: str = "",
    label_suffix: str = "",
    output: str | Path | None = None,
    feedback: Feedback | None = None,
    bundled_models_dir: Path | None = None,
) -> SegmentationEvaluation:
    """Metrics of a model on labelled pairs, through the real tiled inference engine.

    Each image (or, with ``split``, each region of the split training used, same ``seed``) is
    segmented by :func:`inference.segment_engine.segment_raster`, as the algorithm runs it (rasters off
    the model's UTM grid, e.g. EPSG:4326, are resampled to it and back onto their own grid); the
    outputs must land on the label's grid. ``labels`` says which label values are water and which
    are ignored (default 0 land, 1 water, 255 ignore). Water IoU, precision and recall, pooled and
    mean per image, come with the NDWI > 0 baseline on the same pixels (see
    :mod:`training.water_evaluation`); accuracy, class IoU, Dice and cross-entropy are pooled.
    With ``output`` each image's water mask (``NAME_water_mask.tif``) and picture (``NAME.png``:
    true colour, label, model, NDWI) are written there. Without ``model_path`` the bundled water model
    that suits every image runs (:func:`training.water_evaluation.default_model`; ``bundled_models_dir``
    overrides the bundled folder), and ``feedback.info`` says which and why, then which image is being measured.

    Args:
        model_path (str | Path | None): The segmentation model file. None: the bundled water model
            that suits every image (6-band when every image has B11 and B12, else 4-band).
        data (str | Path): A folder with ``images/`` and ``labels/`` (same file names), or a
            manifest ``.csv`` (image,label) / ``.json`` (e.g. the one ``export_training_pairs`` writes).
        split (str): ``all`` (default: every whole image), or ``train``, ``validation`` or ``test``:
            that part of the split training made (same ``split_mode`` and ``seed``).
        seed (int | None): The seed of the split (with ``split`` other than ``all``). None (default):
            the one the model card records (cards written since the split is recorded), else 0.
        split_mode (str | None): ``image`` or ``rows``, how training split the pairs (``--split``).
            None (default): the one the model card records, else ``image``.
        tile_size (int | None): Tile side in pixels. None (default): the model card's.
        batch_size (int): Tiles per forward pass. Default 4.
        device (str): ``auto`` (default: a CUDA GPU, then Apple MPS, else the CPU), ``cpu``, ``cuda``
            or ``mps``.
        threshold (float): Water probability (0-1) at or above which a pixel is water. Default 0.5.
        reflectance_offset (str | float): Raster values subtracted before normalising: ``auto``
            (default: detect the +1000 of Sentinel-2 baseline 04.00 per image) or a number (0: none).
        test_time_augmentation (str | None): ``none``, ``flips`` (4 passes) or ``d4`` (8 passes):
            average the model over flipped/rotated views of each tile, as Segment water can. None
            (default): what the model card recommends.
        labels (LabelConvention | None): Which label values are water and which are ignored. None
            (default): 0 land, 1 water, 255 ignored.
        image_suffix (str): In ``images/`` + ``labels/`` folders, the image ``NAME{image_suffix}.EXT``
            pairs with the label ``NAME{label_suffix}.EXT2`` (e.g. ``_image``). Default none: same names.
        label_suffix (str): The labels' suffix, as above (e.g. ``_label``). Default none.
        output (str | Path | None): Folder for each image's water mask (``NAME_water_mask.tif``) and
            picture (``NAME.png``). None (default): nothing is written.
        feedback (Feedback | None): Gets the log lines (the model chosen, the image being
            measured): any object with ``progress``, ``cancelled``, ``info`` and ``warning``
            (:class:`core.feedback.Feedback`). None (default): silent.
        bundled_models_dir (Path | None): The folder the default model is chosen from. None
            (default): the plugin's ``resources/models``.

    Returns:
        SegmentationEvaluation: The model's path and name, the pooled metrics (accuracy, class IoU,
        Dice, cross-entropy), the per-image metrics, the water figures with the NDWI baseline
        (``water``), the time taken; ``to_json()`` gives all of it as JSON.

    Raises:
        SatVisionError: No pairs in ``data``; a label not on its image's grid, or with values
            outside the label convention; an unknown ``split``; ``output`` is a file or an input's
            folder.
        ModelFileError: The model file is unreadable or unsafe, or not a segmentation model.
        RasterError: An image cannot be read or lacks the model's bands (``BandMismatchError``).

    Example:
        >>> from satvision.training.segmentation_evaluate import evaluate_segmentation
        >>> evaluation = evaluate_segmentation("runs/water/model.safetensors", "pairs", split="test", output="evaluation")
        >>> print(evaluation.metrics["iou_water"], evaluation.water["pooled"])
    """
    from ..inference.predictor import Predictor
    from ..inference.segment_engine import SegmentationSettings, segment_raster
    from ..models.modelfile import load_model
    from . import water_evaluation as water

    feedback = feedback or SilentFeedback()
    started = time.perf_counter()
    convention = labels or water.LabelConvention()
    pairs = find_pairs(data, image_suffix, label_suffix)
    if model_path:
        path = Path(model_path)
    else:  # the 6-band default when every image has B11 and B12, else the 4-band one
        path, reason = water.default_model([pair.image for pair in pairs], bundled_models_dir)
        feedback.info(reason)
    network, card = load_model(path, task="segmentation", device="cpu")
    predictor = Predictor(network, card, device, test_time_augmentation)
    if split == "all":
        regions = _whole_regions(pairs)
    else:
        mode, split_seed, source = training_split(card, split_mode, seed)
        made = split_pairs(pairs, split_seed, mode=mode)
        regions = made.part(split)
        feedback.info(f"Measuring the {split} part of the split training made: {made.describe()}, seed {split_seed} ({source}).")
    for region in regions:
        water.check_pair_grid(region)
    folder = _evaluation_folder(output, regions)
    engine_settings = SegmentationSettings(tile_size=tile_size, batch_size=batch_size, device=device, threshold=threshold,
                                           reflectance_offset=reflectance_offset)
    total = SegmentationMetrics(card.class_names(), IGNORE_INDEX)
    per_image, counts = [], []
    has_ndwi = True
    with tempfile.TemporaryDirectory(prefix="satvision-evaluate-") as scratch:
        for number, region in enumerate(regions, start=1):
            feedback.info(f"[{number}/{len(regions)}] {region.pair.image.name}")
            name = _output_name(region)
            probability_path = Path(scratch) / "probability.tif"
            mask_path = folder / f"{name}_water_mask.tif" if folder else Path(scratch) / "mask.tif"
            with open_raster(region.pair.image) as dataset:
                whole = region.row_start == 0 and region.row_stop == dataset.height
                bounds = None if whole else window_bounds(Window(0, region.row_start, region.width, region.rows), dataset.transform)
            segment_raster(region.pair.image, predictor, probability_path, mask_path, dataclasses.replace(engine_settings, bounds=bounds))
            metrics = SegmentationMetrics(card.class_names(), IGNORE_INDEX)
            picture = water.PictureSampler(region.width, region.rows) if folder else None
            image_counts, image_ndwi = water.compare_image(region, mask_path, probability_path, convention, metrics, picture)
            has_ndwi &= image_ndwi
            total.merge(metrics)
            counts.append(image_counts)
            per_image.append({**region_json(region), **clean_metrics(metrics.compute()),
                              "water": water.clean(image_counts.figures())})
            if picture is not None:
                plots.plot_water_comparison(picture.true_colour(region), picture.label, picture.counted, picture.model,
                                            picture.ndwi if image_ndwi else None, folder / f"{name}.png",
                                            water.picture_title(name, image_counts, image_ndwi))
    summary = {**water.clean(water.summarise(counts)), "ndwi_baseline": has_ndwi, "labels": convention.to_json(),
               "test_time_augmentation": predictor.test_time_augmentation}
    if not has_ndwi:
        for scope in ("pooled", "mean_per_image"):
            summary[scope]["ndwi"] = {key: None for key in summary[scope]["ndwi"]}
    return SegmentationEvaluation(path, card.name, clean_metrics(total.compute()), per_image,
                                  time.perf_counter() - started, summary)


def _evaluation_folder(output: str | Path | None, regions: Sequence[Region]) -> Path | None:
    """The folder for masks and pictures, created; refused when it is a file or an input's folder."""
    if output is None:
        return None
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise SatVisionError(f"--output {folder} is a file; give a folder for the masks and pictures.")
    inputs = {region.pair.image.parent.resolve() for region in regions} | {region.pair.label.parent.resolve() for region in regions}
    if folder.resolve() in inputs:
        raise SatVisionError(f"--output {folder} holds the evaluated images or labels; give another folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SatVisionError(f"Cannot create the output folder {folder}: {error.strerror}. Choose a folder you can write to.") from error
    return folder


def _output_name(region: Region) -> str:
    """The image's name, with the rows when only a band of rows of it was evaluated."""
    partial = region.rows != region.height
    return f"{region.pair.name}_rows{region.row_start}-{region.row_stop}" if partial else region.pair.name


def training_split(card: Any, split_mode: str | None, seed: int | None) -> tuple[str, int, str]:
    """The split mode and seed to repeat, and where they came from: given, else the model card's, else ``image`` and 0.

    Evaluating a model trained with ``--split rows`` on a split by image would count pixels it
    trained on as test pixels: the card records the split so that cannot happen by default.
    """
    recorded = card.extra.get("split")
    recorded = recorded if isinstance(recorded, dict) else {}

    def origin(given: Any, key: str) -> str:
        return "given" if given is not None else "the model card's" if key in recorded else "the default"

    mode = split_mode or recorded.get("mode") or "image"
    chosen_seed = seed if seed is not None else int(recorded.get("seed", 0))
    return mode, chosen_seed, f"split {origin(split_mode, 'mode')}, seed {origin(seed, 'seed')}"


def _whole_regions(pairs) -> list[Region]:
    regions = []
    for pair in pairs:
        with open_raster(pair.image) as dataset:
            regions.append(Region(pair, 0, dataset.height, dataset.width, dataset.height))
    return regions
