"""Distillation from a teacher water model that sees more bands (learning with privileged information).

Why: a 4-band (B2, B3, B4, B8) model cannot see SWIR, which is what separates shallow flood water in
fields from wet soil, but a 6-band teacher can. Fitted to the three ``water_dev`` chips themselves, a
per-pixel rule on B2, B3, B4 and B8 alone reaches water IoU 0.857 pooled (with B11 and B12: 0.923), so
those four bands hold more than the 4-band models trained on labels learn from them (0.766). The
teacher's water probability on every training patch, after augmentation (synthetic water, burn
scars, snow and the rest carry SWIR physics the teacher reads), is a second target beside the
labels: it decides the pixels the labels leave undecided (255) and says how sure a pixel is where
the labels are hard. Vapnik & Vashist 2009 (Neural Networks 22, learning using privileged
information); Hinton et al. 2015 (arXiv:1503.02531); Gupta et al. 2016 (CVPR, cross-modal
distillation).

The student reads its own bands; the training patches carry the union of its bands and the
teacher's (the student's first), and each model takes its own from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..core.errors import SatVisionError
from ..models.card import ModelCard
from ..models.modelfile import load_model, read_card
from ..models.normalisation import normalise


def patch_bands(student_bands: Sequence[str], teacher_bands: Sequence[str]) -> list[str]:
    """The bands training patches carry: the student's, then the teacher's others, in the teacher's order."""
    extra = [band for band in teacher_bands if band not in student_bands]
    return [*student_bands, *extra]


@dataclass
class DistillationTarget:
    """What the loss of a distilled training step gets: the labels, the teacher's water
    probability ``(N, H, W)`` and the pixels with data ``(N, H, W)``."""

    labels: torch.Tensor
    teacher_probability: torch.Tensor
    valid: torch.Tensor


class Teacher:
    """A segmentation model file run in inference mode on training patches of :func:`patch_bands`."""

    def __init__(self, path: str | Path, student_card: ModelCard) -> None:
        card = read_card(path)
        if card.task != "segmentation" or len(card.classes) != 2:
            raise SatVisionError(f"The teacher {Path(path).name} must be a two-class segmentation model (it is a {card.task} model).")
        if card.normalisation.reflectance_scale != student_card.normalisation.reflectance_scale:
            raise SatVisionError(
                f"The teacher {Path(path).name} reads reflectance × {card.normalisation.reflectance_scale:g}, the student "
                f"× {student_card.normalisation.reflectance_scale:g}: give both the same --reflectance-scale."
            )
        self.path = Path(path)
        self.card = card
        self.network: torch.nn.Module | None = None  # loaded on first use, on the batch's device
        bands = patch_bands(student_card.bands, card.bands)
        self.indexes = [bands.index(band) for band in card.bands]

    @staticmethod
    def bands_of(path: str | Path) -> list[str]:
        return list(read_card(path).bands)

    def describe(self) -> dict[str, object]:
        """What the student's card records about its teacher."""
        return {"name": self.card.name, "file": self.path.name, "bands": list(self.card.bands),
                "metrics": {key: value for key, value in self.card.metrics.items() if not isinstance(value, dict)}}

    @torch.no_grad()
    def probability(self, values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The teacher's water probability ``(N, H, W)`` of raw patch values ``(N, bands, H, W)``."""
        if self.network is None:
            self.network, _ = load_model(self.path, task="segmentation", device=values.device)
            self.network.float()  # bundled files store float16; the network runs in float32
        inputs = normalise(values[:, self.indexes], self.card.normalisation, self.card.bands) * valid.unsqueeze(1)
        return torch.softmax(self.network(inputs).float(), dim=1)[:, 1]


def distillation_loss(logits: torch.Tensor, teacher_probability: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean KL divergence KL(teacher ‖ student) of the two-class water distributions over the pixels
    with data (0 when the two agree); 0 with a gradient when no pixel has data."""
    if not valid.any():
        return logits.sum() * 0.0
    log_student = torch.log_softmax(logits.float(), dim=1)
    teacher = torch.stack([1.0 - teacher_probability, teacher_probability], dim=1).clamp_min(1e-6)
    divergence = (teacher * (teacher.log() - log_student)).sum(dim=1)
    return divergence[valid].mean()
