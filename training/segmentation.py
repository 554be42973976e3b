"""Water segmentation training: a model file from image/label pairs.

``train_segmentation`` writes to its output folder:

- ``model.safetensors``: the best weights (by the monitored validation metric) with a complete
  model card (bands, GSD, normalisation from the training patches, classes, tiling, metrics of
  the validation and test splits, license, processing levels);
- ``log.csv`` (one row per epoch), ``curves.png``, ``triptychs/*.png`` (validation tiles: image,
  water probability, label), ``training.json`` (settings and results);
- ``checkpoints/``: ``last.safetensors`` + ``last_state.pt`` (resume), ``best.safetensors``.

Its settings are :class:`training.segmentation_settings.SegmentationTrainingSettings`; a trained
model is evaluated by :mod:`training.segmentation_evaluate`, architectures compared by
:mod:`training.segmentation_compare`.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..core.errors import SatVisionError
from ..core.feedback import Feedback, SilentFeedback
from ..models.architectures import build_network
from ..models.card import Architecture, ClassInfo, ModelCard, Normalisation, NormalisedDifference, Tiling
from ..models.modelfile import load_model, read_card, save_model
from ..models.normalisation import normalise
from ..models.spectral_indices import index_inputs
from ..version import __version__
from . import plots
from .augment import PatchAugmentation
from .distillation import DistillationTarget, Teacher, distillation_loss, patch_bands
from .losses import SegmentationObjective, build_loss
from .metrics import SegmentationMetrics
from .reporting import clean_metrics, jsonable, write_json
from .segmentation_datasets import TileSet, TrainPatches, reflectance_statistics
from .segmentation_pairs import IGNORE_INDEX, Region, Split, find_pairs, ground_sample_distance, region_json, split_pairs
from .segmentation_sampling import PatchSettings, PatchSource, water_fraction
from .segmentation_settings import SegmentationTrainingSettings
from .trainer import CHECKPOINTS, LAST_WEIGHTS, LOG, Trainer, TrainingResult, check_new_run, read_log

CLASS_COLOURS = ("#000000", "#1f78b4")
STATISTICS_PATCHES = 64
TRIPTYCHS = 4


class SegmentationTask:
    """The segmentation side of :class:`training.trainer.TrainingTask`.

    With a ``teacher`` (:mod:`training.distillation`) the patches carry the teacher's bands after the
    model's own, and the training loss adds ``teacher_weight`` × the divergence from the teacher's
    water probability; validation and test losses stay the labels' alone.
    """

    def __init__(self, card: ModelCard, loss: str = "dice_ce", aux_weight: float = 1.0, cgm_weight: float = 0.5,
                 teacher: Teacher | None = None, teacher_weight: float = 1.0) -> None:
        self.normalisation = card.normalisation
        self.bands = list(card.bands)
        self.class_names = card.class_names()
        self.objective = SegmentationObjective(build_loss(loss, IGNORE_INDEX), aux_weight, cgm_weight, IGNORE_INDEX)
        self.teacher = teacher
        self.teacher_weight = teacher_weight

    def inputs(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        # exactly what inference.predictor does: normalise, then invalid pixels to 0 (the band mean);
        # the model's bands come first in the patches (a teacher's others follow)
        values = batch["values"][:, : len(self.bands)]
        return normalise(values, self.normalisation, self.bands) * batch["valid"].unsqueeze(1)

    def training_target(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | DistillationTarget:
        if self.teacher is None:
            return batch["target"]
        return DistillationTarget(batch["target"], self.teacher.probability(batch["values"], batch["valid"]), batch["valid"])

    def loss(self, outputs: Mapping[str, Any], target: torch.Tensor | DistillationTarget) -> torch.Tensor:
        if isinstance(target, DistillationTarget):
            return (self.objective(outputs, target.labels)
                    + self.teacher_weight * distillation_loss(outputs["logits"], target.teacher_probability, target.valid))
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


def train_segmentation(settings: SegmentationTrainingSettings, feedback: Feedback | None = None) -> SegmentationTrainingRun:
    """Train a water segmentation model; see the module docstring for what is written.

    The pairs in ``settings.data`` are split (by image, or by row bands), patches drawn with the
    water-fraction window, and the network trained with the best weights by the monitored
    validation metric kept; the model file gets a complete card with validation and test metrics.
    Under ``accelerate launch`` the same call trains on several GPUs.

    Args:
        settings (SegmentationTrainingSettings): Everything the run takes: data and output folders,
            architecture and encoder, bands and classes, patches, loss, augmentation, card fields and
            the training loop (``settings.trainer``: epochs, batch size, learning rate, device, seed,
            resume...).
        feedback (Feedback | None): Gets the run's lines (epochs, metrics; none with
            ``settings.trainer.quiet``) and is asked every step
            whether to stop (:class:`training.trainer.Trainer`): any object with ``progress``,
            ``cancelled``, ``info`` and ``warning`` (:class:`core.feedback.Feedback`). None
            (default): silent, never cancelled.

    Returns:
        SegmentationTrainingRun: The model file's path and card, the training result (best and last
        epoch, time), the validation and test metrics, the parameter count, the split, and
        ``is_main`` (False in the other processes of a multi-GPU run).

    Raises:
        SatVisionError: No image/label pairs in ``settings.data``, or pairs that do not match; the
            patch size is not divisible by 2^encoder depth; not two class names; an unknown
            architecture or loss; an output folder that holds another run (without ``resume``).
        RasterError: An image cannot be read or lacks the chosen bands (``BandMismatchError``).
        MissingDependencyError: A package the architecture needs is not installed.
        OperationCancelled: ``feedback.cancelled()`` became true; the last completed epoch stays in
            ``checkpoints/`` (resume it with ``TrainerConfig(resume=True)``).

    Example:
        >>> from pathlib import Path
        >>> from satvision.training.segmentation import train_segmentation
        >>> from satvision.training.segmentation_settings import SegmentationTrainingSettings
        >>> from satvision.training.trainer_config import TrainerConfig
        >>> settings = SegmentationTrainingSettings(
        ...     data=Path("pairs"), output=Path("runs/water"), architecture="unet", encoder="resnet34",
        ...     bands=["B2", "B3", "B4", "B8", "B11", "B12"], trainer=TrainerConfig(epochs=40, batch_size=16),
        ... )
        >>> run = train_segmentation(settings)
        >>> print(run.model_path, run.test.get("iou_water"))
    """
    feedback = feedback or SilentFeedback()
    params = settings.architecture_params()
    if settings.patch_size % (2**settings.encoder_depth):
        raise SatVisionError(
            f"The patch size ({settings.patch_size}) must be divisible by 2^encoder depth ({2 ** settings.encoder_depth})."
        )
    if len(settings.class_names) != 2:
        raise SatVisionError("Water segmentation has two classes (background, water): give two class names.")
    pairs = find_pairs(settings.data)
    split = split_pairs(pairs, settings.seed, mode=settings.split)
    bands = patch_bands(settings.bands, Teacher.bands_of(settings.teacher)) if settings.teacher else list(settings.bands)
    source = PatchSource(bands, len(settings.class_names), settings.cache_mb * 2**20)
    try:
        return _train(settings, params, pairs, split, source, feedback)
    finally:
        source.close()  # open rasters must not outlive GDAL (QGIS tears it down at exit)


def _train(settings: SegmentationTrainingSettings, params: dict[str, Any], pairs, split: Split, source: PatchSource,
           feedback: Feedback) -> SegmentationTrainingRun:
    output = Path(settings.output)
    source.check(pairs)
    patch = PatchSettings(settings.patch_size, settings.min_water, settings.max_water, settings.max_tries,
                          unfiltered=settings.unfiltered_patches, weighting=settings.patch_weighting)
    length = settings.patches_per_epoch or default_patches_per_epoch(split.train, settings.patch_size, settings.trainer.batch_size)

    checkpoint = output / CHECKPOINTS / LAST_WEIGHTS
    if not settings.trainer.resume:
        check_new_run(output)
    resuming = settings.trainer.resume and checkpoint.is_file()
    start = _fine_tuned_card(settings, params) if settings.init_from and not resuming else None
    if resuming:
        card = _checkpoint_card(checkpoint, settings, params)
    elif start is not None:  # fine-tuning keeps the normalisation the weights learned with
        card = _new_card(settings, params, pairs, split, start.normalisation.mean, start.normalisation.std, start.normalisation.indices)
        # weights derived from the start model carry its licence unless the user names one (share-alike terms still bind)
        card = dataclasses.replace(card, license=start.license if settings.license == "unspecified" else settings.license,
                                   training_data=f"{card.training_data}; fine-tuned from {start.name}, itself trained on: "
                                                       f"{start.training_data}",
                                   extra={**card.extra, "init_from": {"name": start.name, "file": Path(settings.init_from).name,
                                                                      "license": start.license}})
    else:
        plain = TrainPatches(source, split.train, patch, length, settings.seed)
        indices = index_inputs(settings.index_inputs, settings.bands)
        mean, std = reflectance_statistics(plain, min(length, STATISTICS_PATCHES), settings.reflectance_scale, indices)
        own = list(range(len(settings.bands))) + list(range(len(source.bands), len(source.bands) + len(indices)))
        card = _new_card(settings, params, pairs, split, [mean[i] for i in own], [std[i] for i in own], indices)
    teacher = Teacher(settings.teacher, card) if settings.teacher else None
    if teacher is not None:
        card = dataclasses.replace(card, extra={**card.extra, "teacher": {**teacher.describe(), "weight": settings.teacher_weight}})

    augmentation = PatchAugmentation(settings.augment, settings.reflectance_scale, source.bands)
    train_data = TrainPatches(source, split.train, patch, length, settings.seed, augmentation)
    val_data = TileSet(source, split.validation, settings.patch_size, settings.max_validation_tiles, settings.seed)
    test_data = TileSet(source, split.test, settings.patch_size, settings.max_validation_tiles, settings.seed)

    torch.manual_seed(settings.seed)
    network = build_network(card)
    if settings.encoder_weights and not resuming:
        _load_pretrained_encoder(network, settings)
    if start is not None:
        pretrained, _ = load_model(settings.init_from, task="segmentation")
        network.load_state_dict(pretrained.float().state_dict())  # bundled files store float16
        feedback.info(f"Fine-tuning {start.name} ({Path(settings.init_from).name})")
    task = SegmentationTask(card, settings.loss, settings.aux_weight, settings.cgm_weight, teacher, settings.teacher_weight)
    trainer = Trainer(network, task, settings.trainer, output,
                      save_weights=lambda path, weights: save_model(path, weights, card), feedback=feedback)
    trainer.say(f"{split.describe()}; {length} patches per epoch of {settings.patch_size} px; "
                f"{settings.architecture} ({settings.encoder}, depth {settings.encoder_depth}) on {trainer.placement}"
                + (f"; distilled from {teacher.card.name} ({','.join(teacher.card.bands)}), weight {settings.teacher_weight:g}" if teacher else ""))
    result = trainer.fit(train_data, val_data)
    validation = clean_metrics({k: v for k, v in result.kept_metrics.items() if k not in ("epoch", "lr", "train_loss", "encoder_frozen", "seconds")})
    if not validation:
        _, validation = trainer.evaluate(val_data, "validation")
        validation = clean_metrics(validation)
    test_loss, test = trainer.evaluate(test_data, "test")
    test = clean_metrics({**test, "loss": test_loss})
    metrics = {
        **{k: v for k, v in validation.items() if k != "val_loss"},
        "evaluated_on": "validation split, non-overlapping tiles of whole regions (argmax)",
        "best_epoch": result.best_epoch,
        "kept_epoch": result.kept_epoch,
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
        _write_triptychs(network, task, val_data, source.bands, output / "triptychs", trainer.device)
        write_json(output / "training.json", {
            "settings": jsonable(settings), "split": {
                "description": split.describe(),
                **{part: [region_json(region) for region in split.part(part)] for part in ("train", "validation", "test")},
            },
            "best_epoch": result.best_epoch, "kept_epoch": result.kept_epoch, "last_epoch": result.last_epoch, "stopped_early": result.stopped_early,
            "seconds": round(result.seconds, 2), "parameters": parameters, "validation": validation, "test": test,
        })
    trainer.accelerator.wait_for_everyone()
    return SegmentationTrainingRun(model_path, final_card, result, validation, test, parameters, split, trainer.is_main)


def default_patches_per_epoch(regions: Sequence[Region], patch_size: int, batch_size: int) -> int:
    """1.5 patches per patch-sized area of training pixels (the origin notebook's rule), at least one batch."""
    return max(batch_size, int(1.5 * sum(region.pixels for region in regions) / patch_size**2))


def _new_card(settings: SegmentationTrainingSettings, params: dict[str, Any], pairs, split: Split,
              mean: list[float], std: list[float], indices: Sequence[NormalisedDifference] = ()) -> ModelCard:
    gsd = settings.gsd_m or ground_sample_distance(pairs)
    name = settings.name or f"water-{settings.architecture}-{settings.encoder}"
    return ModelCard(
        format_version=1,
        name=name,
        task="segmentation",
        architecture=Architecture(settings.architecture, params),
        bands=list(settings.bands),
        gsd_m=float(gsd),
        normalisation=Normalisation(float(settings.reflectance_scale), [round(v, 6) for v in mean], [round(v, 6) for v in std],
                                    indices=list(indices)),
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
            "split": {"mode": settings.split, "seed": settings.seed},  # what `satvision evaluate --split` repeats
            "encoder_weights": settings.encoder_weights,
            "augmentation": jsonable(settings.augment),
            "optimizer": {"name": "AdamW", "lr": settings.trainer.lr, "weight_decay": settings.trainer.weight_decay,
                          "schedule": settings.trainer.schedule, "batch_size": settings.trainer.batch_size,
                          "freeze_encoder_epochs": settings.trainer.freeze_encoder_epochs,
                          "ema_decay": settings.trainer.ema_decay},
        },
    )


def _fine_tuned_card(settings: SegmentationTrainingSettings, params: dict[str, Any]) -> ModelCard:
    """The card of the model ``settings.init_from`` fine-tunes, checked against the requested network and inputs."""
    path = Path(settings.init_from)
    if settings.encoder_weights:  # the start model's weights would silently replace them
        raise SatVisionError("--init-from and --encoder-weights both set the encoder's weights: give one of them.")
    start = read_card(path)
    if start.task != "segmentation" or len(start.classes) != len(settings.class_names):
        raise SatVisionError(f"--init-from {path.name} is a {start.task} model with {len(start.classes)} classes; fine-tuning "
                             f"needs a segmentation model with {len(settings.class_names)} (background, water).")
    difference = _network_difference(start, settings, params)
    if difference:
        raise SatVisionError(f"--init-from {path.name} is {difference}: give the options that model was trained with "
                             f"(`satvision models show {path}` lists them).")
    if start.normalisation.reflectance_scale != settings.reflectance_scale:
        raise SatVisionError(f"--init-from {path.name} reads reflectance × {start.normalisation.reflectance_scale:g}; give "
                             f"--reflectance-scale {start.normalisation.reflectance_scale:g}.")
    return start


def _checkpoint_card(checkpoint: Path, settings: SegmentationTrainingSettings, params: dict[str, Any]) -> ModelCard:
    """The card the interrupted run started with (its normalisation must stay), checked against the request."""
    card = read_card(checkpoint)
    difference = _network_difference(card, settings, params)
    if difference:
        raise SatVisionError(f"The checkpoint in {checkpoint.parent} is {difference}. Resume with the same options, or train "
                             "into another output folder.")
    return card


def _network_difference(card: ModelCard, settings: SegmentationTrainingSettings, params: dict[str, Any]) -> str | None:
    """How the network and inputs of ``card`` differ from those the settings build, or None when they are the same."""
    inputs = [*card.bands, *(index.name for index in card.normalisation.indices)]
    requested = [*settings.bands, *(index.name for index in index_inputs(settings.index_inputs, settings.bands))]
    if card.architecture.id == settings.architecture and card.architecture.params == params and inputs == requested:
        return None
    return (f"a {card.architecture.id} {card.architecture.params} on inputs {','.join(inputs)}, not the requested "
            f"{settings.architecture} {params} on {','.join(requested)}")


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
