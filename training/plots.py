"""Training pictures: loss and metric curves from ``log.csv``, prediction triptychs.

Matplotlib with the Agg backend (no display, no Qt); every PNG is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.atomic import atomic_path

CURVE_METRICS = ("accuracy", "iou_water", "dice", "mean_iou")
WATER_COLOUR = (0x1F / 255, 0x78 / 255, 0xB4 / 255)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    _pyplot().close(figure)
    return Path(path)


def plot_curves(rows: Sequence[Mapping[str, Any]], path: Path, title: str = "",
                metrics: Sequence[str] = CURVE_METRICS) -> Path:
    """Train/validation loss, validation ``metrics`` and the learning rate by epoch."""
    metric_names = metrics
    plt = _pyplot()
    epochs = [int(row["epoch"]) for row in rows]
    figure, (losses, metrics, rates) = plt.subplots(1, 3, figsize=(15, 4))
    for name, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        losses.plot(epochs, [float(row[name]) for row in rows], marker="o", label=label)
    losses.set_title("loss")
    for name in metric_names:
        if rows and name in rows[0]:
            metrics.plot(epochs, [float(row[name]) for row in rows], marker="o", label=name)
    metrics.set_title("validation metrics")
    metrics.set_ylim(0, 1.02)
    rates.plot(epochs, [float(row["lr"]) for row in rows], marker="o")
    rates.set_title("learning rate (end of epoch)")
    rates.set_yscale("log")
    for axis in (losses, metrics, rates):
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    losses.legend()
    metrics.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)


def true_colour(values: np.ndarray, valid: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """An RGB float image of a patch: B4/B3/B2 when present, else the first three bands (or one
    band as grey), each stretched between its 2nd and 98th percentile of valid pixels."""
    from ..core.bands import normalise_band_name
    from ..core.preview import stretch

    names = [normalise_band_name(band) for band in bands]
    if all(band in names for band in ("B4", "B3", "B2")):
        channels = [names.index(band) for band in ("B4", "B3", "B2")]
    else:
        channels = [min(i, len(bands) - 1) for i in range(3)]
    rgb = np.zeros((*values.shape[1:], 3), dtype=np.float32)
    for out, channel in enumerate(channels):
        rgb[..., out] = stretch(values[channel], valid)
    rgb[~valid] = 0
    return rgb


def plot_triptych(values: np.ndarray, valid: np.ndarray, probability: np.ndarray, label: np.ndarray,
                  bands: Sequence[str], path: Path, title: str = "", ignore_index: int = 255) -> Path:
    """Image (true colour), water probability and label of one patch, side by side."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    axes[0].imshow(true_colour(values, valid, bands))
    axes[0].set_title("image")
    shown = axes[1].imshow(np.ma.masked_where(~valid, probability), vmin=0, vmax=1, cmap="Blues")
    axes[1].set_title("water probability")
    figure.colorbar(shown, ax=axes[1], fraction=0.046)
    colours = np.zeros((*label.shape, 3), dtype=np.float32)
    colours[label == 1] = WATER_COLOUR
    colours[label == ignore_index] = (0.6, 0.6, 0.6)
    axes[2].imshow(colours)
    axes[2].set_title("label (grey: ignored)")
    for axis in axes:
        axis.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)


def plot_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str], path: Path, title: str = "") -> Path:
    """Counts (rows: true class, columns: predicted), coloured by the share of each true class."""
    plt = _pyplot()
    counts = np.asarray(confusion, dtype=np.int64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.6 * len(class_names) + 2.5)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    shown = axis.imshow(shares, vmin=0, vmax=1, cmap="Blues")
    figure.colorbar(shown, ax=axis, fraction=0.046, label="share of the true class")
    for row in range(len(class_names)):
        for column in range(len(class_names)):
            if counts[row, column]:
                axis.text(column, row, str(counts[row, column]), ha="center", va="center", fontsize=8,
                          color="white" if shares[row, column] > 0.5 else "black")
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return _save(figure, path)


#: Colours of the water comparison panels (label, model, NDWI).
LAND_COLOUR = (0.93, 0.90, 0.80)
NOT_COUNTED_COLOUR = (0.6, 0.6, 0.6)
FALSE_WATER_COLOUR = (0.89, 0.10, 0.11)
MISSED_WATER_COLOUR = (1.0, 0.60, 0.0)


def plot_water_comparison(rgb: np.ndarray, label: np.ndarray, counted: np.ndarray, model: np.ndarray,
                          ndwi: np.ndarray | None, path: Path, title: str = "") -> Path:
    """True colour | label | model | NDWI > 0 of one evaluated image, with a legend.

    ``label`` holds 0 ignored, 1 land, 2 water; ``counted`` the pixels scored; ``model`` and
    ``ndwi`` the predicted water (``ndwi`` None: no baseline). The prediction panels colour
    agreement with the label: water found (blue), water missed (orange), false water (red),
    land (beige); pixels not scored are grey.
    """
    from matplotlib.patches import Patch

    plt = _pyplot()
    truth = label == 2
    label_colours = np.zeros((*label.shape, 3), dtype=np.float32)
    label_colours[:] = NOT_COUNTED_COLOUR
    label_colours[label == 1] = LAND_COLOUR
    label_colours[truth] = WATER_COLOUR

    def agreement(predicted: np.ndarray) -> np.ndarray:
        colours = np.zeros((*label.shape, 3), dtype=np.float32)
        colours[:] = NOT_COUNTED_COLOUR
        colours[counted & ~predicted & ~truth] = LAND_COLOUR
        colours[counted & predicted & truth] = WATER_COLOUR
        colours[counted & ~predicted & truth] = MISSED_WATER_COLOUR
        colours[counted & predicted & ~truth] = FALSE_WATER_COLOUR
        return colours

    panels = [(rgb, "true colour"), (label_colours, "label"), (agreement(model), "model")]
    if ndwi is not None:
        panels.append((agreement(ndwi), "NDWI > 0"))
    height, width = label.shape
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2 * height / max(width, 1) + 0.9))
    for axis, (picture, name) in zip(axes, panels):
        axis.imshow(picture, interpolation="nearest")
        axis.set_title(name)
        axis.axis("off")
    legend = [Patch(color=WATER_COLOUR, label="water (label) / water found"),
              Patch(color=MISSED_WATER_COLOUR, label="water missed"),
              Patch(color=FALSE_WATER_COLOUR, label="false water"),
              Patch(color=LAND_COLOUR, label="not water"),
              Patch(color=NOT_COUNTED_COLOUR, label="not scored (ignored, no data)")]
    figure.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=8, frameon=False)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(figure, path)
