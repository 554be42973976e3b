"""Classification metrics from a confusion matrix: accuracy, per-class precision/recall/F1 (the
origin notebook's classification report), macro averages and mean cross-entropy.

Like :class:`training.metrics.SegmentationMetrics`, the matrix and the cross-entropy sum
accumulate exactly over batches and can be summed across processes.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class ClassificationMetrics:
    """Confusion matrix (rows: true class, columns: predicted) and the summed cross-entropy."""

    def __init__(self, class_names: list[str]) -> None:
        self.class_names = list(class_names)
        self.num_classes = len(class_names)
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.float64)
        self.cross_entropy_sum = 0.0

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add logits ``(N, C)`` and targets ``(N,)`` (prediction = argmax)."""
        logits = logits.detach().float()
        self.cross_entropy_sum += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
        self.add_predictions(logits.argmax(dim=1), target)

    def add_predictions(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        pairs = target.long().cpu() * self.num_classes + predicted.long().cpu()
        self.confusion += torch.bincount(pairs, minlength=self.num_classes**2).reshape(self.num_classes, -1).double()

    def state(self) -> torch.Tensor:
        return torch.cat([self.confusion.flatten(), torch.tensor([self.cross_entropy_sum], dtype=torch.float64)])

    def load_state(self, state: torch.Tensor) -> None:
        state = state.detach().cpu().double()
        self.confusion = state[:-1].reshape(self.num_classes, self.num_classes).clone()
        self.cross_entropy_sum = float(state[-1])

    def compute(self) -> dict[str, float]:
        """``accuracy``, ``macro_f1``, ``macro_precision``, ``macro_recall``, ``cross_entropy``, ``tiles``."""
        total = float(self.confusion.sum())
        report = self.report()
        return {
            "accuracy": float(self.confusion.diag().sum()) / total if total else math.nan,
            "macro_precision": _mean(item["precision"] for item in report.values()),
            "macro_recall": _mean(item["recall"] for item in report.values()),
            "macro_f1": _mean(item["f1"] for item in report.values()),
            "cross_entropy": self.cross_entropy_sum / total if total else math.nan,
            "tiles": int(total),
        }

    def report(self) -> dict[str, dict[str, Any]]:
        """Per class: precision, recall, F1 and support (true tiles), as sklearn's classification report."""
        true_positive = self.confusion.diag()
        per_true = self.confusion.sum(dim=1)
        per_predicted = self.confusion.sum(dim=0)
        out = {}
        for index, name in enumerate(self.class_names):
            tp, t, p = float(true_positive[index]), float(per_true[index]), float(per_predicted[index])
            precision = tp / p if p else math.nan
            recall = tp / t if t else math.nan
            f1 = 2 * precision * recall / (precision + recall) if p and t and (precision + recall) else (0.0 if t or p else math.nan)
            out[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(t)}
        return out

    def report_text(self) -> str:
        """The report as a fixed-width table, like the origin notebook's ``classification_report``."""
        width = max(12, *(len(name) for name in self.class_names))
        lines = [f"{'':>{width}}  precision    recall  f1-score   support", ""]
        for name, item in self.report().items():
            lines.append(f"{name:>{width}}  {_f(item['precision']):>9} {_f(item['recall']):>9} {_f(item['f1']):>9} {item['support']:>9}")
        summary = self.compute()
        lines += ["", f"{'accuracy':>{width}}  {'':>9} {'':>9} {_f(summary['accuracy']):>9} {summary['tiles']:>9}",
                  f"{'macro avg':>{width}}  {_f(summary['macro_precision']):>9} {_f(summary['macro_recall']):>9} "
                  f"{_f(summary['macro_f1']):>9} {summary['tiles']:>9}"]
        return "\n".join(lines)


def _mean(values) -> float:
    present = [v for v in values if not math.isnan(v)]
    return sum(present) / len(present) if present else math.nan


def _f(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"
