"""Segmentation architectures (UNet family) for the architecture factory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .architectures import register
from .card import ModelCard

if TYPE_CHECKING:
    import torch

SMP = ("torch", "segmentation_models_pytorch")


@register("unet", task="segmentation", description="UNet on any smp encoder (ResNet50 as in the seed)", requires=SMP)
def build_unet(card: ModelCard) -> "torch.nn.Module":
    import segmentation_models_pytorch as smp

    params = dict(card.architecture.params)
    params.setdefault("encoder_name", "resnet50")
    params["encoder_weights"] = None  # weights come from the model file, never from a hub
    return smp.Unet(in_channels=len(card.bands), classes=len(card.classes), **params)
