"""Segmentation losses by name, and the objective that adds deep supervision and the CGM loss.

``dice_ce`` is the origin notebook's loss: cross-entropy plus soft Dice of the foreground classes computed
from the softmax. The others are segmentation-models-pytorch's losses in multiclass mode. Every
loss ignores pixels labelled :data:`~training.segmentation_pairs.IGNORE_INDEX`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import SatVisionError
from .segmentation_pairs import IGNORE_INDEX


class DiceCrossEntropyLoss(nn.Module):
    """Cross-entropy + (1 − soft Dice of classes 1…) over the whole batch, ignored pixels excluded.

    The Dice term counts the batch as one volume (as the origin notebook's Keras loss did), so a patch
    without water does not produce an undefined per-image Dice; ``smooth`` keeps it finite
    when a whole batch has no foreground.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, dice_weight: float = 1.0, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.dice_weight = dice_weight
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        cross_entropy = _cross_entropy(logits, target, self.ignore_index)
        labelled = (target != self.ignore_index).unsqueeze(1)
        probabilities = torch.softmax(logits, dim=1)[:, 1:] * labelled
        one_hot = F.one_hot(torch.where(labelled.squeeze(1), target, 0), logits.shape[1]).permute(0, 3, 1, 2)[:, 1:]
        one_hot = one_hot.to(probabilities.dtype) * labelled
        intersection = (probabilities * one_hot).sum()
        dice = (2 * intersection + self.smooth) / (probabilities.sum() + one_hot.sum() + self.smooth)
        return cross_entropy + self.dice_weight * (1.0 - dice)


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Mean cross-entropy of labelled pixels; 0 (with a gradient) when none is labelled."""
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


class _CrossEntropy(nn.Module):
    def __init__(self, ignore_index: int) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _cross_entropy(logits.float(), target, self.ignore_index)


def _smp(name: str) -> Callable[[int], nn.Module]:
    def build(ignore_index: int) -> nn.Module:
        import segmentation_models_pytorch as smp

        return getattr(smp.losses, name)(mode="multiclass", ignore_index=ignore_index)

    return build


LOSSES: dict[str, Callable[[int], nn.Module]] = {
    "dice_ce": lambda ignore_index: DiceCrossEntropyLoss(ignore_index),
    "ce": _CrossEntropy,
    "dice": _smp("DiceLoss"),
    "focal": _smp("FocalLoss"),
    "lovasz": _smp("LovaszLoss"),
    "jaccard": _smp("JaccardLoss"),
    "tversky": _smp("TverskyLoss"),
}


def build_loss(name: str, ignore_index: int = IGNORE_INDEX) -> nn.Module:
    """The loss ``name`` (see :data:`LOSSES`) as a module ``(logits, target) -> scalar``."""
    if name not in LOSSES:
        raise SatVisionError(f"Unknown loss {name!r}; choose one of {', '.join(LOSSES)}.")
    return LOSSES[name](ignore_index)


class SegmentationObjective(nn.Module):
    """The training loss of a model's outputs (see :class:`training.trainer.TrainingOutputs`).

    ``loss(logits) + aux_weight * mean(loss(aux_i)) + cgm_weight * CE(has_foreground, tile has
    foreground)``; the last two only when the model provides them (UNet 3+).
    """

    def __init__(self, loss: nn.Module, aux_weight: float = 1.0, cgm_weight: float = 0.5,
                 ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.loss = loss
        self.aux_weight = aux_weight
        self.cgm_weight = cgm_weight
        self.ignore_index = ignore_index

    def forward(self, outputs: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
        total = self.loss(outputs["logits"].float(), target)
        aux = outputs.get("aux") or []
        if aux and self.aux_weight:
            total = total + self.aux_weight * torch.stack([self.loss(item.float(), target) for item in aux]).mean()
        has_foreground = outputs.get("has_foreground")
        if has_foreground is not None and self.cgm_weight:
            present = ((target > 0) & (target != self.ignore_index)).flatten(1).any(dim=1).long()
            total = total + self.cgm_weight * F.cross_entropy(has_foreground.float(), present)
        return total
