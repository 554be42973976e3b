"""Segmentation architectures (UNet family) for the architecture factory (builders named in
:data:`.architectures.ARCHITECTURES`).

The network modules live in their own files and are imported inside the builders, so torch
and smp are only imported when a network is actually built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .card import ModelCard

if TYPE_CHECKING:
    import torch


def prune_unused_stages(network: "torch.nn.Module", depth: int) -> "torch.nn.Module":
    """Replace encoder stages deeper than ``depth`` by identities.

    smp builds every stage of an encoder even when ``encoder_depth`` < 5 and only skips them in
    ``forward``; their weights would still fill the model file (8.4 M of ResNet18's 11.2 M
    parameters are in its last stage). The stages come from the encoder's ``get_stages()``.
    """
    import torch

    encoder = network.encoder
    stages = encoder.get_stages() if hasattr(encoder, "get_stages") else {}
    unused = {
        id(module)
        for stride, modules in stages.items()
        if stride > 2**depth
        for stage in modules
        for module in stage.modules()
    }
    for name, module in list(encoder.named_modules()):
        if name and id(module) in unused:
            parent_name, _, child = name.rpartition(".")
            parent = encoder.get_submodule(parent_name) if parent_name else encoder
            if id(parent) not in unused:
                setattr(parent, child, torch.nn.Identity())
    return network


def tile_multiple(card: ModelCard) -> int:
    """What a tile side must be a multiple of for this network: ``2 ** encoder_depth``.

    The UNet family (smp UNet, our Attention UNet and UNet3+) halves the tile once per encoder
    stage and joins each decoder level with the encoder level of the same size (smp's default
    depth 5: multiples of 32, as every model is trained). smp 0.6 and our decoders no longer
    fail on other sizes: each halving drops the odd pixel and the decoder stretches the deeper
    features back onto the skips by interpolation, so predictions come out shifted and blurred;
    a tile under ``2 ** encoder_depth`` has not even one cell at the deepest stage (a 1 px tile
    runs the network on a single pixel). It is also the smallest tile worth running.
    """
    return 2 ** int(card.architecture.params.get("encoder_depth", 5))


def _build(network_class: type, card: ModelCard, params: dict) -> "torch.nn.Module":
    """Input channels from the card's bands and indices, outputs from its classes, unused stages pruned."""
    network = network_class(in_channels=card.input_channels, classes=len(card.classes), **params)
    return prune_unused_stages(network, params.get("encoder_depth", 5))


def build_unet(card: ModelCard) -> "torch.nn.Module":
    import segmentation_models_pytorch as smp

    params = dict(card.architecture.params)
    params.setdefault("encoder_name", "resnet50")
    params["encoder_weights"] = None  # weights come from the model file, never from a hub
    return _build(smp.Unet, card, params)


def build_attention_unet(card: ModelCard) -> "torch.nn.Module":
    from .attention_unet import AttentionUnet

    return _build(AttentionUnet, card, card.architecture.params)


def build_unet3plus(card: ModelCard) -> "torch.nn.Module":
    from .unet3plus import UNet3Plus

    return _build(UNet3Plus, card, card.architecture.params)
