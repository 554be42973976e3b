"""Compare tile classifiers: ViT from scratch, the timm ViT-Tiny/16 and CNNs on the same split and seed.

``compare_classification`` trains each architecture (:func:`training.classification_training.train_classification`)
in ``output/<architecture>/`` and writes ``comparison.md`` / ``comparison.csv``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.feedback import Feedback, SilentFeedback
from .classification_presets import COMPARE_DEFAULT
from .classification_settings import ClassificationTrainingSettings
from .classification_training import train_classification
from .reporting import write_comparison


def compare_classification(settings: ClassificationTrainingSettings, architectures: Sequence[str] = COMPARE_DEFAULT,
                           feedback: Feedback | None = None) -> list[dict[str, Any]]:
    """Train each architecture on the same split and seed (each in ``output/<architecture>/``);
    write ``comparison.md`` / ``comparison.csv``: Model | Accuracy (validation), parameters, time.

    Args:
        settings (ClassificationTrainingSettings): The run every architecture shares (data, output
            folder, bands, augmentation, trainer...); its ``architecture`` is replaced by each one
            compared, and the model names become ``NAME-ARCHITECTURE`` (``landcover-...`` without
            ``settings.name``).
        architectures (Sequence[str]): ViT presets or timm model names to train, in order. Default
            :data:`training.classification_presets.COMPARE_DEFAULT`: ``vit-tiny64``,
            ``vit_tiny_patch16_224``, ``mobilenetv2_100``, ``resnet50``.
        feedback (Feedback | None): Gets every run's lines and is asked every step whether to stop:
            any object with ``progress``, ``cancelled``, ``info`` and ``warning``
            (:class:`core.feedback.Feedback`). None (default): silent, never cancelled.

    Returns:
        list[dict[str, Any]]: One row per architecture: ``model``, ``accuracy`` and ``macro_f1``
        (validation), ``test_accuracy`` (None without test tiles), ``parameters``,
        ``training_seconds``, ``best_epoch`` and ``model_path``.

    Raises:
        SatVisionError: As :func:`training.classification_training.train_classification` (bad data
            or settings, an unknown architecture, an output folder holding another run).
        MissingDependencyError: timm is not installed.
        OperationCancelled: ``feedback.cancelled()`` became true; the table is not written.

    Example:
        >>> from pathlib import Path
        >>> from satvision.training.classification_comparison import compare_classification
        >>> from satvision.training.classification_settings import ClassificationTrainingSettings
        >>> settings = ClassificationTrainingSettings(data=Path("EuroSAT_RGB"), output=Path("runs/compare"))
        >>> rows = compare_classification(settings, ["vit-tiny64", "resnet18"])
        >>> print((settings.output / "comparison.md").read_text())
    """
    feedback = feedback or SilentFeedback()
    rows = []
    is_main = True
    for architecture in architectures:
        run_settings = dataclasses.replace(settings, architecture=architecture, output=Path(settings.output) / architecture,
                                           name=f"{settings.name or 'landcover'}-{architecture}")
        run = train_classification(run_settings, feedback)
        is_main = run.is_main
        rows.append({
            "model": architecture, "accuracy": run.validation.get("accuracy"), "macro_f1": run.validation.get("macro_f1"),
            "test_accuracy": run.test.get("accuracy"), "parameters": run.parameters,
            "training_seconds": round(run.result.seconds, 1), "best_epoch": run.result.best_epoch, "model_path": str(run.model_path),
        })
    if is_main:
        write_comparison(Path(settings.output), rows, comparison_markdown(rows))
    return rows


MODEL_TITLES = {"vit-tiny64": "ViT from scratch (tiny64)", "vit-seed": "ViT from scratch (origin notebook)",
                "vit-small64": "ViT from scratch (small64)", "vit_tiny_patch16_224": "ViT-Tiny/16 (timm)",
                "mobilenetv2_100": "MobileNetV2", "resnet50": "ResNet50"}


def comparison_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The origin notebook's table ``Model | Accuracy`` plus macro F1, parameters and training time."""
    lines = ["| Model | Accuracy | Macro F1 | Parameters | Training time |", "|---|---|---|---|---|"]
    for row in rows:
        minutes, seconds = divmod(int(round(row["training_seconds"])), 60)
        accuracy = "–" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f}%"
        f1 = "–" if row["macro_f1"] is None else f"{100 * row['macro_f1']:.2f}%"
        title = MODEL_TITLES.get(row["model"], row["model"])
        lines.append(f"| {title} | {accuracy} | {f1} | {row['parameters'] / 1e6:.2f} M | {minutes}:{seconds:02d} |")
    lines += ["", "Validation split; every model trained with the same data, split, seed, epochs and augmentation."]
    return "\n".join(lines)
