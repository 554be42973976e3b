"""Tile classification: train a model file (see :mod:`training.classification_settings` for the options).

``train_classification`` writes to its output folder:

- ``model.safetensors``: the best weights (by validation accuracy) with a complete card: classes
  with colours, bands, GSD, the normalisation from raster values (including the rendering that
  turns reflectance into the 8-bit look of JPEG training tiles), tiling, metrics, license;
- ``log.csv``, ``curves.png``, ``confusion_matrix.png``, ``report.txt`` (per-class precision,
  recall, F1 on validation), ``training.json``; ``checkpoints/`` (best, last + resumable state).

Two-phase training: ``--head-epochs N`` trains only the head for the first N epochs (the encoder
frozen: the origin notebook's linear probe), then the whole network. Mixed precision on GPU; several GPUs
with ``accelerate launch`` (see :mod:`training.trainer`). Evaluating a model file:
:mod:`training.classification_evaluation`; comparing architectures: :mod:`training.classification_comparison`.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..core.atomic import atomic_path
from ..core.errors import SatVisionError
from ..core.feedback import Feedback, SilentFeedback
from ..models.architectures import build_network
from ..models.augmented_views import averaged_probabilities, check_mode
from ..models.card import Architecture, ClassInfo, ModelCard, Normalisation, Tiling
from ..models.modelfile import read_card, save_model
from ..version import __version__
from . import plots
from .augment import MultispectralJitter, RandomRot90, RoughWater
from .classification_data import ClassSplit, TileReader, TileSet, band_statistics, split_samples, tile_kind, tile_size_of
from .classification_metrics import ClassificationMetrics
from .classification_presets import VIT_PRESETS, class_colours
from .classification_rendering import EUROSAT_BANDS, render_function, rendering_of
from .classification_settings import ClassificationTrainingSettings, check_test_zoom
from .reporting import clean_metrics, jsonable, write_json
from .trainer import CHECKPOINTS, LAST_WEIGHTS, LOG, Trainer, TrainingResult, check_new_run, read_log


class ClassificationTask:
    """The classification side of :class:`training.trainer.TrainingTask` (inputs in the rendered domain)."""

    def __init__(self, card: ModelCard, label_smoothing: float = 0.0) -> None:
        norm = card.normalisation
        self.mean = torch.tensor(norm.mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.std = torch.tensor(norm.std, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.class_names = card.class_names()
        self.label_smoothing = label_smoothing

    def inputs(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        values = batch["values"]
        return (values - self.mean.to(values.device)) / self.std.to(values.device)

    def training_target(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return batch["target"]

    def loss(self, outputs: Mapping[str, Any], target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(outputs["logits"].float(), target, label_smoothing=self.label_smoothing)

    def new_metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(self.class_names)


def training_augmentation(settings: ClassificationTrainingSettings, size: int, rendered_range: bool,
                          class_names: Sequence[str] = ()) -> Callable | None:
    """Dihedral flips/rotations (overhead imagery has no "up"), a mild random resized crop,
    per-band brightness/contrast jitter and pixel noise, with torchvision.transforms.v2.

    Pixel noise matters for real scenes: a network trained on EuroSAT's calm, clean tiles reads
    fine bright speckle (whitecaps on a rough winter sea, sensor noise) as buildings; with noise
    on training tiles it learns that speckle alone is not structure. Rough water
    (:class:`training.augment.RoughWater`) adds wave stripes and whitecaps to tiles of the water
    classes for the same reason. The returned callable takes ``(values, label)``.
    """
    if not settings.augment:
        return None
    steps: list[v2.Transform] = [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), RandomRot90()]
    if settings.crop_scale < 1:
        steps.append(v2.RandomResizedCrop(size, scale=(settings.crop_scale, 1.0), ratio=(0.8, 1.25), antialias=True))
    if settings.jitter > 0:
        steps.append(MultispectralJitter(settings.jitter, settings.jitter / 2, 1.0, p=0.8))
    if settings.noise > 0:
        levels = [v2.GaussianNoise(sigma=settings.noise * share, clip=False) for share in (0.25, 0.5, 0.75, 1.0)]
        steps.append(v2.RandomApply([v2.RandomChoice(levels)], p=0.5))
    compose = v2.Compose(steps)
    rough = RoughWater() if settings.rough_water > 0 else None
    water_labels = {index for index, name in enumerate(class_names) if name in settings.rough_water_classes}

    def transform(values: torch.Tensor, label: int) -> torch.Tensor:
        out = compose(tv_tensors.Image(values)).as_subclass(torch.Tensor)
        if rough is not None and int(label) in water_labels and float(torch.rand(())) < settings.rough_water:
            out = rough(out)
        return out.clamp_(0.0, 1.0) if rendered_range else out

    return transform


@dataclass
class ClassificationTrainingRun:
    model_path: Path
    card: ModelCard
    result: TrainingResult
    validation: dict[str, Any]
    report: dict[str, Any]
    test: dict[str, Any]
    parameters: int
    split: ClassSplit
    is_main: bool = True


def architecture_for(settings: ClassificationTrainingSettings, tile_size: int) -> Architecture:
    """The card's architecture: a ViT preset (+ overrides) or a timm model name."""
    from ..models.vit import PRESETS, ViTConfig

    name = settings.architecture
    if name in VIT_PRESETS:
        preset = PRESETS["tiny64" if name == "vit" else name.removeprefix("vit-")]
        params = {**preset.params(), **settings.vit_overrides}
        if settings.input_size:
            params["image_size"] = settings.input_size
        try:
            config = ViTConfig(**params)
        except (TypeError, ValueError) as error:
            raise SatVisionError(f"Invalid ViT settings: {error}.") from error
        return Architecture("vit", {**config.params(), **_zoom(settings)})
    import timm

    if not timm.is_model(name):
        raise SatVisionError(
            f"Unknown architecture {name!r}: give a ViT preset ({', '.join(VIT_PRESETS)}) or a timm model name "
            f"(e.g. vit_tiny_patch16_224, mobilenetv2_100, resnet50; `timm.list_models()` lists them)."
        )
    size = settings.input_size or tile_size
    model_kwargs: dict[str, Any] = {}
    if _takes_image_size(name):
        model_kwargs["img_size"] = size
    params = {"model_name": name, "input_size": size, "drop_rate": settings.drop_rate, "model_kwargs": model_kwargs}
    return Architecture("timm", {**params, **_zoom(settings)})


def _zoom(settings: ClassificationTrainingSettings) -> dict[str, float]:
    """The ``test_zoom`` architecture parameter (absent at 1: no zoom)."""
    zoom = check_test_zoom(settings.test_zoom)
    return {"test_zoom": zoom} if zoom != 1.0 else {}


def _takes_image_size(model_name: str) -> bool:
    """Transformers with absolute position embeddings are built for the input size."""
    import timm

    entry = timm.models.model_entrypoint(model_name)
    return any(part in entry.__module__ for part in ("vision_transformer", "deit", "beit", "eva", "swin", "cait", "xcit"))


# --------------------------------------------------------------------------- training


def train_classification(settings: ClassificationTrainingSettings, feedback: Feedback | None = None) -> ClassificationTrainingRun:
    """Train a tile classifier; see the module docstring for what is written.

    The tiles of ``settings.data`` (class sub-folders) are split (or ``train/``, ``valid/``,
    ``test/`` used), the network built (a ViT preset or any timm model), optionally started from
    local backbone weights or a SatVision classifier, and trained with the best weights by the
    monitored validation metric kept; the model file gets a complete card with validation (and
    test) metrics. Under ``accelerate launch`` the same call trains on several GPUs.

    Args:
        settings (ClassificationTrainingSettings): Everything the run takes: data, validation, test
            and output folders, architecture, bands, GSD, rendering, augmentation, card fields and
            the training loop (``settings.trainer``: epochs, batch size, learning rate, device,
            seed, resume...).
        feedback (Feedback | None): Gets the run's lines (epochs, metrics; none with
            ``settings.trainer.quiet``) and is asked every step whether to stop
            (:class:`training.trainer.Trainer`): any object with ``progress``, ``cancelled``, ``info``
            and ``warning`` (:class:`core.feedback.Feedback`). None (default): silent, never cancelled.

    Returns:
        ClassificationTrainingRun: The model file's path and card, the training result (best and
        last epoch, time), the validation metrics and per-class report, the test metrics (empty
        without test tiles), the parameter count, the split, and ``is_main`` (False in the other
        processes of a multi-GPU run).

    Raises:
        SatVisionError: No tiles or classes in ``settings.data``; GeoTIFF chips without ``bands``,
            or 8-bit images with other than 1 or 3 bands; an unknown architecture; a checkpoint or
            ``init_from`` model that does not fit; an output folder that holds another run (without
            ``resume``).
        ModelFileError: ``init_from`` or ``backbone_weights`` is unreadable or unsafe.
        MissingDependencyError: A package the architecture needs (timm) is not installed.
        OperationCancelled: ``feedback.cancelled()`` became true; the last completed epoch stays in
            ``checkpoints/`` (resume it with ``TrainerConfig(resume=True)``).

    Example:
        >>> from pathlib import Path
        >>> from satvision.training.classification_settings import ClassificationTrainingSettings, classification_trainer
        >>> from satvision.training.classification_training import train_classification
        >>> trainer = classification_trainer()
        >>> trainer.epochs = 10
        >>> settings = ClassificationTrainingSettings(data=Path("EuroSAT_RGB"), output=Path("runs/landcover"),
        ...                                           architecture="resnet18", trainer=trainer)
        >>> run = train_classification(settings)
        >>> print(run.model_path, run.validation["accuracy"])
    """
    feedback = feedback or SilentFeedback()
    output = Path(settings.output)
    split = split_samples(settings.data, settings.seed, settings.validation, settings.test)
    kind = tile_kind(split.train + split.validation + split.test)
    bands = settings.bands or (list(EUROSAT_BANDS) if kind == "image" else None)
    if bands is None:
        raise SatVisionError("GeoTIFF chips need --bands (the band descriptions to read, in model order, e.g. B4,B3,B2,B8).")
    if kind == "image" and len(bands) not in (1, 3):
        raise SatVisionError(f"8-bit images have 3 (RGB) or 1 (grey) channels; --bands names {len(bands)}.")
    checkpoint = output / CHECKPOINTS / LAST_WEIGHTS
    resuming = settings.trainer.resume and checkpoint.is_file()
    if not settings.trainer.resume:
        check_new_run(output)

    provisional_render = None if kind == "image" else render_function(settings.reflectance_scale, rendering_of(settings, len(bands)))
    reader = TileReader(kind, bands, provisional_render)
    tile_size = tile_size_of(split.train, reader)
    feedback.info(f"Reading {split.describe()}")
    architecture = architecture_for(settings, tile_size)
    augmentation = training_augmentation(settings, tile_size, rendered_range=kind == "image" or settings.rendering != "none",
                                         class_names=split.class_names)
    train_data = TileSet(split.train, reader, tile_size, augmentation, shuffle_seed=settings.seed)
    val_data = TileSet(split.validation, reader, tile_size)
    test_data = TileSet(split.test, reader, tile_size) if split.test else None

    init_card = read_card(settings.init_from) if settings.init_from and not resuming else None
    if resuming:
        card = read_card(checkpoint)
        if card.architecture != architecture or card.bands != list(bands) or card.class_names() != split.class_names:
            raise SatVisionError(f"The checkpoint in {checkpoint.parent} is another model ({card.architecture.id}); resume with the same options.")
    elif init_card is not None:  # fine-tuning keeps the normalisation the weights learned with
        card = _new_card(settings, architecture, bands, split, kind, tile_size, init_card.normalisation.mean, init_card.normalisation.std)
    else:
        mean, std = band_statistics(train_data, seed=settings.seed)
        card = _new_card(settings, architecture, bands, split, kind, tile_size, mean, std)

    torch.manual_seed(settings.seed)
    network = build_network(card)
    if settings.backbone_weights and not resuming:
        _load_backbone(network, card, settings.backbone_weights)
    if init_card is not None:
        feedback.info(initialise_from_model(network, card, Path(settings.init_from), init_card))
    config = dataclasses.replace(settings.trainer, freeze_encoder_epochs=settings.head_epochs)
    task = ClassificationTask(card, settings.label_smoothing)
    trainer = Trainer(network, task, config, output, save_weights=lambda path, weights: save_model(path, weights, card),
                      feedback=feedback)
    parameters = sum(p.numel() for p in network.parameters())
    trainer.say(f"{split.describe()}; {card.architecture.id} {architecture.params.get('model_name', '')} "
                f"({parameters / 1e6:.2f} M parameters) on {trainer.placement}")
    if card.architecture.id == "vit":
        from ..models.vit import parameter_summary

        trainer.say(parameter_summary(network, len(card.classes)))
    result = trainer.fit(train_data, val_data)

    tta = card.tiling.test_time_augmentation
    validation_loss, validation_metrics, confusion = _evaluate(trainer, task, val_data, "validation", tta)
    test: dict[str, Any] = {}
    if test_data is not None:
        test_loss, test_metrics, _ = _evaluate(trainer, task, test_data, "test", tta)
        test = clean_metrics({**test_metrics.compute(), "loss": test_loss, "per_class": clean_metrics(test_metrics.report())})
    report = clean_metrics(validation_metrics.report())
    validation = clean_metrics({**validation_metrics.compute(), "loss": validation_loss})
    metrics = {**validation, "per_class": report, "evaluated_on": f"validation ({len(val_data)} tiles)",
               "test_time_augmentation": tta,
               "best_epoch": result.best_epoch, "kept_epoch": result.kept_epoch, "epochs_trained": result.last_epoch}
    if test:
        metrics["test"] = test
    final_card = dataclasses.replace(card, metrics=metrics, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    model_path = output / "model.safetensors"
    if trainer.is_main:
        save_model(model_path, network.state_dict(), final_card)
        rows = read_log(output / LOG)
        if rows:
            plots.plot_curves(rows, output / "curves.png", title=f"{final_card.name}: {split.describe()}",
                              metrics=("accuracy", "macro_f1"))
        plots.plot_confusion_matrix(confusion.numpy(), split.class_names, output / "confusion_matrix.png",
                                    title=f"{final_card.name} on validation: accuracy {validation['accuracy']:.4f}")
        with atomic_path(output / "report.txt") as temporary:
            temporary.write_text(validation_metrics.report_text() + "\n", encoding="utf-8")
        write_json(output / "training.json", {
            "settings": jsonable(settings), "split": split.describe(), "parameters": parameters,
            "best_epoch": result.best_epoch, "kept_epoch": result.kept_epoch, "last_epoch": result.last_epoch, "stopped_early": result.stopped_early,
            "seconds": round(result.seconds, 2), "validation": validation, "per_class": report, "test": test,
        })
    trainer.accelerator.wait_for_everyone()
    return ClassificationTrainingRun(model_path, final_card, result, validation, report, test, parameters, split, trainer.is_main)


def _new_card(settings: ClassificationTrainingSettings, architecture: Architecture, bands: Sequence[str], split: ClassSplit,
              kind: str, tile_size: int, mean: list[float], std: list[float]) -> ModelCard:
    rendering = rendering_of(settings, len(bands))
    if kind == "image" and rendering is None:
        raise SatVisionError("8-bit image tiles need a rendering from reflectance (--rendering eurosat) so that rasters can be classified.")
    name = settings.name or f"landcover-{architecture.params.get('model_name', architecture.id)}"
    return ModelCard(
        format_version=1,
        name=name,
        task="classification",
        architecture=architecture,
        bands=list(bands),
        gsd_m=float(settings.gsd_m),
        normalisation=Normalisation(float(settings.reflectance_scale), [round(v, 6) for v in mean], [round(v, 6) for v in std], rendering),
        classes=[ClassInfo(i, class_name, colour) for i, (class_name, colour) in enumerate(zip(split.class_names, class_colours(split.class_names)))],
        tiling=Tiling(tile_size, 0, check_mode(settings.test_time_augmentation)),
        training_data=f"{Path(settings.data).name}: {split.describe()}; seed {settings.seed}",
        metrics={},
        license=settings.license,
        description=settings.description
        or f"Land-cover tile classifier ({architecture.params.get('model_name', 'ViT from scratch')}) trained with SatVision.",
        processing_levels=list(settings.processing_levels),
        software_version=f"satvision {__version__}",
        extra={
            "rendering_note": (
                "8-bit training tiles = reflectance × 10000 clipped from 0–2750 to 1–255 (EuroSAT's rendering, per its "
                "maintainer: gdal_translate -scale 0 2750 1 255)" if kind == "image" and settings.rendering == "eurosat" else ""
            ),
            "label_smoothing": settings.label_smoothing,
            "backbone_weights": settings.backbone_weights,
            "init_from": Path(settings.init_from).name if settings.init_from else None,
            "augmentation": ({"flips_rotations": True, "crop_scale": settings.crop_scale, "jitter": settings.jitter,
                              "noise": settings.noise, "rough_water": settings.rough_water,
                              "rough_water_classes": list(settings.rough_water_classes)} if settings.augment else None),
            "optimizer": {"name": "AdamW", "lr": settings.trainer.lr, "weight_decay": settings.trainer.weight_decay,
                          "schedule": settings.trainer.schedule, "batch_size": settings.trainer.batch_size,
                          "head_epochs": settings.head_epochs, "epochs": settings.trainer.epochs,
                          "ema_decay": settings.trainer.ema_decay},
        },
    )


def initialise_from_model(network: torch.nn.Module, card: ModelCard, path: Path, start: ModelCard) -> str:
    """Start from the weights of SatVision classifier ``path`` with card ``start`` (fine-tuning);
    returns what was loaded.

    The architecture (dropout and the test zoom aside) and the bands must be the same; a CNN may
    change its input size (fine-tuning at a higher resolution: its weights fit any size). With the
    same class names in the same order the head is kept; with other classes only the encoder is
    loaded and the head starts fresh.
    """
    from safetensors.torch import load_file

    from ..models.modelfile import check_weights_match

    if start.task != "classification":
        raise SatVisionError(f"--init-from {path.name} is a {start.task} model; fine-tuning needs a classification model.")

    def shape(architecture: Architecture) -> tuple[str, dict[str, Any]]:
        free = {"drop_rate", "test_zoom"}
        if architecture.id == "timm" and not _takes_image_size(architecture.params["model_name"]):
            free.add("input_size")
        return architecture.id, {key: value for key, value in architecture.params.items() if key not in free}

    if shape(start.architecture) != shape(card.architecture):
        raise SatVisionError(
            f"--init-from {path.name} is a {start.architecture.id} {start.architecture.params.get('model_name', '')} "
            f"with {start.architecture.params}, but this run builds {card.architecture.params}: choose the same "
            "--architecture, --vit settings and (but for a CNN) --input-size as that model."
        )
    if len(start.bands) != len(card.bands):
        raise SatVisionError(f"--init-from {path.name} takes {len(start.bands)} bands ({', '.join(start.bands)}); "
                             f"this run has {len(card.bands)} ({', '.join(card.bands)}).")
    weights = load_file(str(path))
    if start.class_names() == card.class_names():
        check_weights_match(network, weights, path.name)
        network.load_state_dict(weights)
        return f"Fine-tuning {start.name} ({path.name}): encoder and head loaded"
    encoder = {key[len("encoder."):]: value for key, value in weights.items() if key.startswith("encoder.")}
    network.encoder.load_state_dict(encoder)
    return f"Fine-tuning {start.name} ({path.name}): encoder loaded, new head for {len(card.classes)} classes"


def _load_backbone(network: torch.nn.Module, card: ModelCard, weights: str) -> None:
    """Initialise the encoder from local pretrained weights, adapted by timm (bands, image size)."""
    from ..models.classification import timm_encoder

    if card.architecture.id != "timm":
        raise SatVisionError("--backbone-weights applies to timm backbones; the ViT from scratch starts from random weights.")
    params = card.architecture.params
    pretrained = timm_encoder(params["model_name"], len(card.bands), params.get("model_kwargs"), weights_file=weights)
    network.encoder.load_state_dict(pretrained.state_dict())


def _evaluate(trainer: Trainer, task: ClassificationTask, data: TileSet, description: str, test_time_augmentation: str):
    """Loss (one pass), metrics object and confusion matrix (with the card's test-time
    augmentation, as the plugin classifies) of the (best) network on ``data``."""
    loss, _ = trainer.evaluate(data, description)
    metrics = task.new_metrics()
    network = trainer.network.eval()
    loader = torch.utils.data.DataLoader(data, batch_size=trainer.config.batch_size)
    with torch.no_grad():
        for batch in loader:
            batch = {key: value.to(trainer.device) for key, value in batch.items()}
            probabilities = averaged_probabilities(network, task.inputs(batch), test_time_augmentation)
            metrics.update(probabilities.clamp_min(1e-12).log(), batch["target"])  # log-probabilities are logits
    return loss, metrics, metrics.confusion
