"""The architecture factory: a card's ``architecture.id`` → a torch network.

:data:`ARCHITECTURES` is the table of the architectures SatVision knows (as
segmentation-models-pytorch keeps its encoders): each spec names its task, the packages it needs
and its builder as ``"module:function"`` (relative to this package), a function that receives the
card and returns an ``nn.Module``. The input channel count comes from the card's bands and the
output count from its classes, so a card always describes the network it builds. Reading the
table imports nothing: the builder's module is imported when a network is built, and builders
import their libraries lazily.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..core.dependencies import require
from ..core.errors import ModelCardError
from .card import ModelCard

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ArchitectureSpec:
    id: str
    task: str
    description: str
    builder: str  # "module:function", the module relative to satvision.models
    requires: tuple[str, ...] = ("torch",)

    @property
    def build(self) -> Callable[[ModelCard], "torch.nn.Module"]:
        """The builder ``card -> nn.Module`` (imports its module)."""
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module, __package__), function)


SMP = ("torch", "segmentation_models_pytorch")
TIMM = ("torch", "timm")

#: Every architecture by id.
ARCHITECTURES: dict[str, ArchitectureSpec] = {
    spec.id: spec
    for spec in (
        ArchitectureSpec("vit", "classification", "Vision Transformer from scratch (the origin notebook's; presets: seed, tiny64, small64)",
                         ".classification:build_vit"),
        ArchitectureSpec("timm", "classification", "any timm backbone by name (vit_tiny_patch16_224, mobilenetv2_100, resnet50, …)",
                         ".classification:build_timm", TIMM),
        ArchitectureSpec(
            "diffusionsat", "generation",
            "DiffusionSat-compatible text + metadata latent diffusion (SD 2.1 UNet with metadata embedding, VAE, CLIP text encoder)",
            ".generation:build_diffusionsat", ("torch", "diffusers", "transformers"),
        ),
        ArchitectureSpec("unet", "segmentation", "UNet on any smp encoder (ResNet50 as in the origin notebook)", ".segmentation:build_unet", SMP),
        ArchitectureSpec(
            "attention_unet", "segmentation",
            "Attention U-Net: UNet with additive attention gates on every skip (Oktay et al. 2018), any smp encoder",
            ".segmentation:build_attention_unet", SMP,
        ),
        ArchitectureSpec(
            "unet3plus", "segmentation",
            "UNet 3+: full-scale skips, deep supervision, classification-guided tile gate (Huang et al. 2020), any smp encoder",
            ".segmentation:build_unet3plus", SMP,
        ),
    )
}


def architectures() -> dict[str, ArchitectureSpec]:
    """All architectures by id (a copy of :data:`ARCHITECTURES`)."""
    return dict(ARCHITECTURES)


def build_network(card: ModelCard) -> "torch.nn.Module":
    """Build the (randomly initialised) network a card describes."""
    known = architectures()
    spec = known.get(card.architecture.id)
    if spec is None:
        raise ModelCardError(
            f"Model {card.name!r} uses architecture {card.architecture.id!r}, which this "
            f"SatVision does not know (known: {', '.join(sorted(known))}). Update SatVision or "
            "fix architecture.id in the card."
        )
    if spec.task != card.task:
        raise ModelCardError(
            f"Architecture {spec.id!r} is a {spec.task} architecture but the card of "
            f"{card.name!r} says task {card.task!r}."
        )
    require(*spec.requires)
    try:
        return spec.build(card)
    except TypeError as error:
        raise ModelCardError(
            f"architecture.params of {card.name!r} do not fit {spec.id!r}: {error}."
        ) from error

