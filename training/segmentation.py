"""Water segmentation: train a model file, evaluate one with the real inference engine, compare
the UNet family.

``train_segmentation`` writes to its output folder:

- ``model.safetensors``: the best weights (by the monitored validation metric) with a complete
  model card (bands, GSD, normalisation from the training patches, classes, tiling, metrics of
  the validation and test splits, license, processing levels);
- ``log.csv`` (one row per epoch), ``curves.png``, ``triptychs/*.png`` (validation tiles: image,
  water probability, label), ``training.json`` (settings and results);
- ``checkpoints/``: ``last.safetensors`` + ``last_state.pt`` (resume), ``best.safetensors``.

``evaluate_segmentation`` runs :func:`inference.segment.segment_raster` on each whole image, as the
plugin does, and compares the mask and probability it writes with the label window by window,
beside the NDWI > 0 baseline on the same pixels (:mod:`training.water_evaluation`).
"""

from __future__ import annotations

import dataclasses
import datetime
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from ..core.errors import SatVisionError
from ..core.raster import open_raster
from ..models.architectures import architectures, build_network
from ..models.card import Architecture, ClassInfo, ModelCard, Normalisation, Tiling
from ..models.modelfile import read_card, save_model
from ..models.normalisation import normalise
from ..version import __version__
from . import plots
from .augment import AugmentSettings, PatchAugmentation
from .losses import SegmentationObjective, build_loss
from .metrics import SegmentationMetrics
from .reporting import clean_metrics, jsonable, write_comparison, write_json
from .segmentation_data import (
    IGNORE_INDEX,
    PatchSettings,
    PatchSource,
    Region,
    Split,
    TileSet,
    TrainPatches,
    find_pairs,
    ground_sample_distance,
    reflectance_statistics,
    split_pairs,
    water_fraction,
)
from .trainer import CHECKPOINTS, LAST_WEIGHTS, LOG, Trainer, TrainerConfig, TrainingResult, check_new_run, read_log
from .water_evaluation import LabelConvention

DEFAULT_BANDS = ("B2", "B3", "B4", "B8")
DEFAULT_CLASSES = ("background", "water")
CLASS_COLOURS = ("#000000", "#1f78b4")
SEGMENTATION_ARCHITECTURES = ("unet", "attention_unet", "unet3plus")
DECODER_CHANNELS = (256, 128, 64, 32, 16)
STATISTICS_PATCHES = 64
TRIPTYCHS = 4


@dataclass
class SegmentationTrainingSettings:
    """Everything ``satvision train segmentation`` takes; see the CLI help for each option."""

    data: Path
    output: Path
    architecture: str = "unet"
    encoder: str = "resnet34"
    encoder_depth: int = 5
    encoder_weights: str | None = None  # a local encoder weights file (never a download)
    decoder_channels: list[int] | None = None  # unet / attention_unet; default the last `depth` of 256…16
    cat_channels: int = 64  # unet3plus
    bands: list[str] = field(default_factory=lambda: list(DEFAULT_BANDS))
    class_names: list[str] = field(default_factory=lambda: list(DEFAULT_CLASSES))
    patch_size: int = 256
    patches_per_epoch: int | None = None  # default 1.5 × (training pixels / patch²), as the seed
    min_water: float = 0.3
    max_water: float = 0.7
    max_tries: int = 20
    unfiltered_patches: float = 0.0
    patch_weighting: str = "area"  # "scene": each training image supplies patches alike
    split: str = "image"  # "rows": every image split into row bands, so each is trained on
    max_validation_tiles: int | None = None
    loss: str = "dice_ce"
    aux_weight: float = 1.0
    cgm_weight: float = 0.5
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    reflectance_scale: float = 10000.0
    gsd_m: float | None = None
    name: str | None = None
    description: str = ""
    license: str = "unspecified"
    processing_levels: list[str] = field(default_factory=lambda: ["L1C"])
    cache_mb: int = 512
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    @property
    def seed(self) -> int:
        return self.trainer.seed

    def architecture_params(self) -> dict[str, Any]:
        if self.architecture not in SEGMENTATION_ARCHITECTURES:
            known = [name for name, spec in architectures().items() if spec.task == "segmentation"]
            raise SatVisionError(f"Unknown segmentation architecture {self.architecture!r}; choose one of {', '.join(known)}.")
        params: dict[str, Any] = {"encoder_name": self.encoder, "encoder_depth": self.encoder_depth}
        if self.architecture == "unet3plus":
            params["cat_channels"] = self.cat_channels
        else:
            channels = self.decoder_channels or list(DECODER_CHANNELS[-self.encoder_depth :])
            if len(channels) != self.encoder_depth:
                raise SatVisionError(f"Give one decoder channel count per encoder stage ({self.encoder_depth}), not {len(channels)}.")
            params["decoder_channels"] = list(channels)
        return params


class SegmentationTask:
    """The segmentation side of :class:`training.trainer.TrainingTask`."""

    def __init__(self, card: ModelCard, loss: str = "dice_ce", aux_weight: float = 1.0, cgm_weight: float = 0.5) -> None:
        self.normalisation = card.normalisation
        self.class_names = card.class_names()
        self.objective = SegmentationObjective(build_loss(loss, IGNORE_INDEX), aux_weight, cgm_weight, IGNORE_INDEX)

    def inputs(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        # exactly what inference.predictor does: normalise, then invalid pixels to 0 (the band mean)
        return normalise(batch["values"], self.normalisation) * batch["valid"].unsqueeze(1)

    def loss(self, outputs: Mapping[str, Any], target: torch.Tensor) -> torch.Tensor:
        return self.objective(outputs, target)

    def new_metrics(self) -> SegmentationMetrics:
        return SegmentationMetrics(self.class_names, IGNORE_INDEX)


@dataclass
class SegmentationTrainingRun:
    model_path: Path
    card: ModelCard
    result: TrainingResult
    validation: dict[str, Any]
    test: dict[str, Any]
    parameters: int
    split: Split
    is_main: bool = True  # False in the other processes of a multi-GPU run


# --------------------------------------------------------------------------- training


def train_segmentation(settings: SegmentationTrainingSettings, is_cancelled: Callable[[], bool] | None = None) -> SegmentationTrainingRun:
    """Train a water segmentation model; see the module docstring for what is written."""
    params = settings.architecture_params()
    if settings.patch_size % (2**settings.encoder_depth):
        raise SatVisionError(
            f"The patch size ({settings.patch_size}) must be divisible by 2^encoder depth ({2 ** settings.encoder_depth})."
        )
    if len(settings.class_names) != 2:
        raise SatVisionError("Water segmentation has two classes (background, water): give two class names.")
    pairs = find_pairs(settings.data)
    split = split_pairs(pairs, settings.seed, mode=settings.split)
    source = PatchSource(settings.bands, len(settings.class_names), settings.cache_mb * 2**20)
    try:
        return _train(settings, params, pairs, split, source, is_cancelled)
    finally:
        source.close()  # open rasters must not outlive GDAL (QGIS tears it down at exit)


def _train(settings: SegmentationTrainingSettings, params: dict[str, Any], pairs, split: Split, source: PatchSource,
           is_cancelled: Callable[[], bool] | None) -> SegmentationTrainingRun:
    output = Path(settings.output)
    source.check(pairs)
    patch = PatchSettings(settings.patch_size, settings.min_water, settings.max_water, settings.max_tries,
                          unfiltered=settings.unfiltered_patches, weighting=settings.patch_weighting)
    length = settings.patches_per_epoch or default_patches_per_epoch(split.train, settings.patch_size, settings.trainer.batch_size)

    checkpoint = output / CHECKPOINTS / LAST_WEIGHTS
    if not settings.trainer.resume:
        check_new_run(output)
    if settings.trainer.resume and checkpoint.is_file():
        card = _checkpoint_card(checkpoint, settings, params)
    else:
        plain = TrainPatches(source, split.train, patch, length, settings.seed)
        mean, std = reflectance_statistics(plain, min(length, STATISTICS_PATCHES), settings.reflectance_scale)
        card = _new_card(settings, params, pairs, split, mean, std)

    augmentation = PatchAugmentation(settings.augment, settings.reflectance_scale, settings.bands)
    train_data = TrainPatches(source, split.train, patch, length, settings.seed, augmentation)
    val_data = TileSet(source, split.validation, settings.patch_size, settings.max_validation_tiles, settings.seed)
    test_data = TileSet(source, split.test, settings.patch_size, settings.max_validation_tiles, settings.seed)

    torch.manual_seed(settings.seed)
    network = build_network(card)
    if settings.encoder_weights and not (settings.trainer.resume and checkpoint.is_file()):
        _load_pretrained_encoder(network, settings)
    task = SegmentationTask(card, settings.loss, settings.aux_weight, settings.cgm_weight)
    trainer = Trainer(network, task, settings.trainer, output,
                      save_weights=lambda path, weights: save_model(path, weights, card), is_cancelled=is_cancelled)
    trainer.say(f"{split.describe()}; {length} patches per epoch of {settings.patch_size} px; "
                f"{settings.architecture} ({settings.encoder}, depth {settings.encoder_depth}) on {trainer.placement}")
    result = trainer.fit(train_data, val_data)
    validation = clean_metrics({k: v for k, v in result.best_metrics.items() if k not in ("epoch", "lr", "train_loss", "encoder_frozen", "seconds")})
    if not validation:
        _, validation = trainer.evaluate(val_data, "validation")
        validation = clean_metrics(validation)
    test_loss, test = trainer.evaluate(test_data, "test")
    test = clean_metrics({**test, "loss": test_loss})
    metrics = {
        **{k: v for k, v in validation.items() if k != "val_loss"},
        "evaluated_on": "validation split, non-overlapping tiles of whole regions (argmax)",
        "best_epoch": result.best_epoch,
        "epochs_trained": result.last_epoch,
        "monitor": result.monitor,
        "test": test,
    }
    final_card = dataclasses.replace(card, metrics=metrics, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    model_path = output / "model.safetensors"
    parameters = sum(p.numel() for p in network.parameters())
    if trainer.is_main:
        save_model(model_path, network.state_dict(), final_card)
        rows = read_log(output / LOG)
        if rows:
            plots.plot_curves(rows, output / "curves.png", title=f"{final_card.name}: {split.describe()}")
        _write_triptychs(network, task, val_data, settings.bands, output / "triptychs", trainer.device)
        write_json(output / "training.json", {
            "settings": jsonable(settings), "split": {
                "description": split.describe(),
                **{part: [_region_json(region) for region in split.part(part)] for part in ("train", "validation", "test")},
            },
            "best_epoch": result.best_epoch, "last_epoch": result.last_epoch, "stopped_early": result.stopped_early,
            "seconds": round(result.seconds, 2), "parameters": parameters, "validation": validation, "test": test,
        })
    trainer.accelerator.wait_for_everyone()
    return SegmentationTrainingRun(model_path, final_card, result, validation, test, parameters, split, trainer.is_main)


def default_patches_per_epoch(regions: Sequence[Region], patch_size: int, batch_size: int) -> int:
    """1.5 patches per patch-sized area of training pixels (the seed's rule), at least one batch."""
    return max(batch_size, int(1.5 * sum(region.pixels for region in regions) / patch_size**2))


def _new_card(settings: SegmentationTrainingSettings, params: dict[str, Any], pairs, split: Split,
              mean: list[float], std: list[float]) -> ModelCard:
    gsd = settings.gsd_m or ground_sample_distance(pairs)
    name = settings.name or f"water-{settings.architecture}-{settings.encoder}"
    return ModelCard(
        format_version=1,
        name=name,
        task="segmentation",
        architecture=Architecture(settings.architecture, params),
        bands=list(settings.bands),
        gsd_m=float(gsd),
        normalisation=Normalisation(float(settings.reflectance_scale), [round(v, 6) for v in mean], [round(v, 6) for v in std]),
        classes=[ClassInfo(i, class_name, CLASS_COLOURS[i]) for i, class_name in enumerate(settings.class_names)],
        tiling=Tiling(settings.patch_size, settings.patch_size // 8),
        training_data=(
            f"{len(pairs)} image/label pairs from {Path(settings.data).name} ({split.describe()}); "
            f"{settings.patch_size} px patches with {settings.min_water:g}–{settings.max_water:g} water fraction; seed {settings.seed}"
        ),
        metrics={},
        license=settings.license,
        description=settings.description or f"Water segmentation ({settings.architecture}, {settings.encoder} encoder) trained with SatVision.",
        processing_levels=list(settings.processing_levels),
        software_version=f"satvision {__version__}",
        extra={
            "loss": settings.loss,
            "encoder_weights": settings.encoder_weights,
            "augmentation": jsonable(settings.augment),
            "optimizer": {"name": "AdamW", "lr": settings.trainer.lr, "weight_decay": settings.trainer.weight_decay,
                          "schedule": settings.trainer.schedule, "batch_size": settings.trainer.batch_size,
                          "freeze_encoder_epochs": settings.trainer.freeze_encoder_epochs,
                          "ema_decay": settings.trainer.ema_decay},
        },
    )


def _checkpoint_card(checkpoint: Path, settings: SegmentationTrainingSettings, params: dict[str, Any]) -> ModelCard:
    """The card the interrupted run started with (its normalisation must stay), checked against the request."""
    card = read_card(checkpoint)
    if card.architecture.id != settings.architecture or card.architecture.params != params or card.bands != list(settings.bands):
        raise SatVisionError(
            f"The checkpoint in {checkpoint.parent} is a {card.architecture.id} {card.architecture.params} on bands "
            f"{','.join(card.bands)}, not the requested {settings.architecture} {params} on {','.join(settings.bands)}. "
            "Resume with the same options, or train into another output folder."
        )
    return card


def _load_pretrained_encoder(network: torch.nn.Module, settings: SegmentationTrainingSettings) -> None:
    """Initialise ``network.encoder`` from a local weights file (no hub: SatVision never downloads).

    The file is a safetensors file or a pickled state dict (read with ``weights_only=True``) of
    the encoder, e.g. an ImageNet ResNet saved by ``torch.save(model.state_dict(), path)``; keys may
    carry an ``encoder.`` prefix. Input convolutions for another band count are adapted the way
    smp does it: RGB filters are cycled over the bands and rescaled by 3 / bands.
    """
    from pathlib import Path

    from ..models.safe_checkpoints import read_checkpoint_tensors

    source = Path(settings.encoder_weights)
    if not source.is_file():
        raise SatVisionError(
            f"--encoder-weights must be a local weights file; {source} does not exist. SatVision never "
            "downloads weights: save the encoder's state dict on a machine with access and pass its path."
        )
    if source.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(source))
    else:
        tensors = read_checkpoint_tensors(source)
    tensors = {key.removeprefix("encoder."): value for key, value in tensors.items()}
    target = network.encoder.state_dict()
    loaded = {}
    for key, value in tensors.items():
        if key not in target:
            continue
        wanted = target[key]
        if value.shape != wanted.shape and value.dim() == 4 and value.shape[0] == wanted.shape[0] and value.shape[2:] == wanted.shape[2:]:
            bands = wanted.shape[1]
            value = value[:, [index % value.shape[1] for index in range(bands)]] * (value.shape[1] / bands)
        if value.shape == wanted.shape:
            loaded[key] = value
    if not loaded:
        raise SatVisionError(f"{source.name} holds no weights for the {settings.encoder} encoder (no matching names and shapes).")
    network.encoder.load_state_dict(loaded, strict=False)


def _write_triptychs(network: torch.nn.Module, task: SegmentationTask, tiles: TileSet, bands: Sequence[str],
                     folder: Path, device: torch.device) -> None:
    """Triptychs of the validation tiles with the most balanced water among the first 64 tiles."""
    candidates = []
    for index in range(min(len(tiles), 64)):
        sample = tiles.sample(index)
        fraction, labelled = water_fraction(sample.label)
        if labelled >= 0.5:
            candidates.append((abs(fraction - 0.5), index, sample))
    network.eval()
    for rank, (_, index, sample) in enumerate(sorted(candidates, key=lambda item: item[:2])[:TRIPTYCHS], start=1):
        batch = {"values": torch.from_numpy(sample.values)[None].to(device), "valid": torch.from_numpy(sample.valid)[None].to(device)}
        with torch.no_grad():
            probability = torch.softmax(network(task.inputs(batch)).float(), dim=1)[0, 1].cpu().numpy()
        region_index, y, x = tiles.tiles[index]
        name = tiles.regions[region_index].pair.name
        plots.plot_triptych(sample.values, sample.valid, probability, sample.label, bands,
                            folder / f"{rank:02d}_{name}_y{y}_x{x}.png", title=f"{name} (row {y}, column {x})")


# --------------------------------------------------------------------------- evaluation


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
    seed: int = 0,
    tile_size: int | None = None,
    batch_size: int = 4,
    device: str = "auto",
    threshold: float = 0.5,
    reflectance_offset: str | float = "auto",
    labels: LabelConvention | None = None,
    image_suffix: str = "",
    label_suffix: str = "",
    output: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    bundled_models_dir: Path | None = None,
) -> SegmentationEvaluation:
    """Metrics of a model on labelled pairs, through the real tiled inference engine.

    Each image (or, with ``split``, each region of the split training used, same ``seed``) is
    segmented by :func:`inference.segment.segment_raster`, as the algorithm runs it (rasters off
    the model's UTM grid, e.g. EPSG:4326, are resampled to it and back onto their own grid); the
    outputs must land on the label's grid. ``labels`` says which label values are water and which
    are ignored (default 0 land, 1 water, 255 ignore). Water IoU, precision and recall, pooled and
    mean per image, come with the NDWI > 0 baseline on the same pixels (see
    :mod:`training.water_evaluation`); accuracy, class IoU, Dice and cross-entropy are pooled.
    With ``output`` each image's water mask (``NAME_water_mask.tif``) and picture (``NAME.png``:
    true colour, label, model, NDWI) are written there. Without ``model_path`` the bundled water model
    that suits every image runs (:func:`training.water_evaluation.default_model`; ``bundled_models_dir``
    overrides the bundled folder), and ``progress`` says which and why.
    """
    from ..inference.predictor import Predictor
    from ..inference.segment import SegmentationSettings, segment_raster
    from ..models.modelfile import load_model
    from . import water_evaluation as water

    started = time.perf_counter()
    convention = labels or water.LabelConvention()
    pairs = find_pairs(data, image_suffix, label_suffix)
    if model_path:
        path = Path(model_path)
    else:  # the 6-band default when every image has B11 and B12, else the 4-band one
        path, reason = water.default_model([pair.image for pair in pairs], bundled_models_dir)
        if progress:
            progress(reason)
    network, card = load_model(path, task="segmentation", device="cpu")
    predictor = Predictor(network, card, device)
    regions = _whole_regions(pairs) if split == "all" else split_pairs(pairs, seed).part(split)
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
            if progress:
                progress(f"[{number}/{len(regions)}] {region.pair.image.name}")
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
            per_image.append({**_region_json(region), **clean_metrics(metrics.compute()),
                              "water": water.clean(image_counts.figures())})
            if picture is not None:
                plots.plot_water_comparison(picture.true_colour(region), picture.label, picture.counted, picture.model,
                                            picture.ndwi if image_ndwi else None, folder / f"{name}.png",
                                            water.picture_title(name, image_counts, image_ndwi))
    summary = {**water.clean(water.summarise(counts)), "ndwi_baseline": has_ndwi, "labels": convention.to_json()}
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


def _whole_regions(pairs) -> list[Region]:
    regions = []
    for pair in pairs:
        with open_raster(pair.image) as dataset:
            regions.append(Region(pair, 0, dataset.height, dataset.width, dataset.height))
    return regions


# --------------------------------------------------------------------------- comparison


def compare_segmentation(settings: SegmentationTrainingSettings, architectures_to_compare: Sequence[str] = SEGMENTATION_ARCHITECTURES,
                         is_cancelled: Callable[[], bool] | None = None) -> list[dict[str, Any]]:
    """Train each architecture with the same data, split, seed, epochs and encoder (each in
    ``output/<architecture>/``), then write ``comparison.csv`` and ``comparison.md`` in ``output``.

    The table follows the seed's: accuracy, IoU and Dice as class means (the seed's metric
    definitions) and mean cross-entropy, on the test split; plus water IoU, parameters and time.
    """
    rows = []
    is_main = True
    for architecture in architectures_to_compare:
        run_settings = dataclasses.replace(
            settings, architecture=architecture, output=Path(settings.output) / architecture,
            name=f"{settings.name or 'water'}-{architecture}",
        )
        run = train_segmentation(run_settings, is_cancelled)
        is_main = run.is_main
        rows.append({
            "model": architecture,
            "accuracy": run.test.get("accuracy"),
            "iou": run.test.get("mean_iou"),
            "dice": run.test.get("mean_dice"),
            "cross_entropy": run.test.get("cross_entropy"),
            "iou_water": run.test.get("iou_water"),
            "parameters": run.parameters,
            "training_seconds": round(run.result.seconds, 1),
            "best_epoch": run.result.best_epoch,
            "model_path": str(run.model_path),
        })
    if not is_main:
        return rows
    write_comparison(Path(settings.output), rows, comparison_markdown(rows))
    return rows


MODEL_TITLES = {"unet": "UNET", "attention_unet": "Attention UNET", "unet3plus": "UNET3+"}


def comparison_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The seed's table ``Model | Accuracy | IoU | Dice | CE`` plus water IoU, parameters and time."""

    def percent(value: Any) -> str:
        return "–" if value is None else f"{100 * value:.2f}%"

    lines = [
        "| Model | Accuracy | IoU | Dice | CE | Water IoU | Parameters | Training time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ce = "–" if row["cross_entropy"] is None else f"{row['cross_entropy']:.4f}"
        minutes, seconds = divmod(int(round(row["training_seconds"])), 60)
        lines.append(
            f"| {MODEL_TITLES.get(row['model'], row['model'])} | {percent(row['accuracy'])} | {percent(row['iou'])} | "
            f"{percent(row['dice'])} | {ce} | {percent(row['iou_water'])} | {row['parameters'] / 1e6:.2f} M | {minutes}:{seconds:02d} |"
        )
    lines.append("")
    lines.append("Test split; IoU and Dice are means over the classes (as in the seed), CE the mean cross-entropy per pixel.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def _region_json(region: Region) -> dict[str, Any]:
    return {"image": str(region.pair.image), "label": str(region.pair.label), "rows": [region.row_start, region.row_stop]}
