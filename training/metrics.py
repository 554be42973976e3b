"""Segmentation metrics from a confusion matrix: accuracy, IoU, Dice and mean cross-entropy.

The matrix (rows: true class, columns: predicted class) and the cross-entropy sum accumulate
over batches (or over windows of whole rasters) and can be summed across processes, so the
metrics of a split are exact, not averages of per-batch values. Pixels labelled
``ignore_index`` never count. "Water" is the foreground class, index 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .segmentation_pairs import IGNORE_INDEX

FOREGROUND = 1
PROBABILITY_EPSILON = 1e-7


class SegmentationMetrics:
    """Accumulates a confusion matrix and the cross-entropy of labelled pixels."""

    def __init__(self, class_names: list[str], ignore_index: int = IGNORE_INDEX) -> None:
        self.class_names = list(class_names)
        self.num_classes = len(class_names)
        self.ignore_index = ignore_index
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.float64)
        self.cross_entropy_sum = 0.0

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of logits ``(N, C, H, W)`` and targets ``(N, H, W)`` (prediction = argmax)."""
        logits = logits.detach().float()
        labelled = target != self.ignore_index
        cross_entropy = torch.nn.functional.cross_entropy(
            logits, torch.where(labelled, target, 0), reduction="none"
        )[labelled].sum()
        self._add(logits.argmax(dim=1), target, labelled, float(cross_entropy))

    def update_from_probability(self, predicted: np.ndarray | torch.Tensor, probability: np.ndarray | torch.Tensor,
                                target: np.ndarray | torch.Tensor) -> None:
        """Add predicted classes, the foreground probability and targets of a two-class model
        (as the inference engine writes them): cross-entropy is ``-log p(true class)``."""
        predicted, probability, target = _tensor(predicted), _tensor(probability), _tensor(target).long()
        labelled = target != self.ignore_index
        p = probability.double().clamp(PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)
        p_true = torch.where(target == FOREGROUND, p, 1 - p)
        self._add(predicted.long(), target, labelled, float(-torch.log(p_true)[labelled].sum()))

    def _add(self, predicted: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor, cross_entropy: float) -> None:
        pairs = target[labelled].long() * self.num_classes + predicted[labelled].long()
        counts = torch.bincount(pairs, minlength=self.num_classes**2)
        self.confusion += counts.reshape(self.num_classes, self.num_classes).cpu().double()
        self.cross_entropy_sum += cross_entropy

    # -- merging (across processes or images)

    def state(self) -> torch.Tensor:
        """Everything accumulated, as one float64 vector (sum it across processes)."""
        return torch.cat([self.confusion.flatten(), torch.tensor([self.cross_entropy_sum], dtype=torch.float64)])

    def load_state(self, state: torch.Tensor) -> None:
        state = state.detach().cpu().double()
        self.confusion = state[:-1].reshape(self.num_classes, self.num_classes).clone()
        self.cross_entropy_sum = float(state[-1])

    def merge(self, other: "SegmentationMetrics") -> None:
        self.confusion += other.confusion
        self.cross_entropy_sum += other.cross_entropy_sum

    # -- results

    @property
    def pixels(self) -> int:
        return int(self.confusion.sum())

    def compute(self) -> dict[str, float]:
        """``accuracy``, ``iou_<class>`` for every class, ``mean_iou``, ``iou_water`` and ``dice`` (the
        foreground class), ``mean_dice``, ``cross_entropy`` (mean over labelled pixels), ``pixels``.
        A class absent from both truth and prediction has IoU/Dice NaN and is left out of the means."""
        confusion = self.confusion
        total = float(confusion.sum())
        true_positive = confusion.diag()
        per_true = confusion.sum(dim=1)
        per_predicted = confusion.sum(dim=0)
        union = per_true + per_predicted - true_positive
        iou = [float(tp / u) if u > 0 else math.nan for tp, u in zip(true_positive, union)]
        dice = [float(2 * tp / (t + p)) if t + p > 0 else math.nan for tp, t, p in zip(true_positive, per_true, per_predicted)]
        result: dict[str, float] = {"accuracy": float(true_positive.sum()) / total if total else math.nan}
        for name, value in zip(self.class_names, iou):
            result[f"iou_{name}"] = value
        result["mean_iou"] = _nanmean(iou)
        result["iou_water"] = iou[FOREGROUND]
        result["dice"] = dice[FOREGROUND]
        result["mean_dice"] = _nanmean(dice)
        result["cross_entropy"] = self.cross_entropy_sum / total if total else math.nan
        result["pixels"] = int(total)
        return result


def _tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    return array if isinstance(array, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(array))


def _nanmean(values: list[float]) -> float:
    present = [v for v in values if not math.isnan(v)]
    return sum(present) / len(present) if present else math.nan
