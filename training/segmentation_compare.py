"""The UNet family compared on the same data: each architecture trained, then one table."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.feedback import Feedback, SilentFeedback
from .reporting import write_comparison
from .segmentation import train_segmentation
from .segmentation_settings import SEGMENTATION_ARCHITECTURES, SegmentationTrainingSettings


def compare_segmentation(settings: SegmentationTrainingSettings, architectures_to_compare: Sequence[str] = SEGMENTATION_ARCHITECTURES,
                         feedback: Feedback | None = None) -> list[dict[str, Any]]:
    """Train each architecture with the same data, split, seed, epochs and encoder (each in
    ``output/<architecture>/``), then write ``comparison.csv`` and ``comparison.md`` in ``output``.

    The table follows the origin notebook's: accuracy, IoU and Dice as class means (the origin notebook's metric
    definitions) and mean cross-entropy, on the test split; plus water IoU, parameters and time.

    Args:
        settings (SegmentationTrainingSettings): The run every architecture shares (data, output
            folder, encoder, bands, patches, loss, trainer...); its ``architecture`` is replaced by
            each one compared, and the model names become ``NAME-ARCHITECTURE`` (``water-...`` without
            ``settings.name``).
        architectures_to_compare (Sequence[str]): The architectures to train, in order. Default all
            three: ``unet``, ``attention_unet``, ``unet3plus``.
        feedback (Feedback | None): Gets every run's lines and is asked every step whether to stop:
            any object with ``progress``, ``cancelled``, ``info`` and ``warning``
            (:class:`core.feedback.Feedback`). None (default): silent, never cancelled.

    Returns:
        list[dict[str, Any]]: One row per architecture: ``model``, ``accuracy``, ``iou``, ``dice``,
        ``cross_entropy``, ``iou_water`` (test split), ``parameters``, ``training_seconds``,
        ``best_epoch`` and ``model_path``.

    Raises:
        SatVisionError: As :func:`training.segmentation.train_segmentation` (bad data or settings,
            an unknown architecture, an output folder holding another run).
        OperationCancelled: ``feedback.cancelled()`` became true; the table is not written.

    Example:
        >>> from pathlib import Path
        >>> from satvision.training.segmentation_compare import compare_segmentation
        >>> from satvision.training.segmentation_settings import SegmentationTrainingSettings
        >>> from satvision.training.trainer_config import TrainerConfig
        >>> settings = SegmentationTrainingSettings(data=Path("pairs"), output=Path("runs/compare"),
        ...                                         trainer=TrainerConfig(epochs=40))
        >>> rows = compare_segmentation(settings, ["unet", "unet3plus"])
        >>> print((settings.output / "comparison.md").read_text())
    """
    feedback = feedback or SilentFeedback()
    rows = []
    is_main = True
    for architecture in architectures_to_compare:
        run_settings = dataclasses.replace(
            settings, architecture=architecture, output=Path(settings.output) / architecture,
            name=f"{settings.name or 'water'}-{architecture}",
        )
        run = train_segmentation(run_settings, feedback)
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
    """The origin notebook's table ``Model | Accuracy | IoU | Dice | CE`` plus water IoU, parameters and time."""

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
    lines.append("Test split; IoU and Dice are means over the classes (as in the origin notebook), CE the mean cross-entropy per pixel.")
    return "\n".join(lines)
