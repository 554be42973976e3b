"""Names shared by the classification CLI and training, importable without torch."""

from __future__ import annotations

from typing import Sequence

#: ``--architecture`` values that select our ViT from scratch (the rest are timm model names).
VIT_PRESETS = ("vit", "vit-seed", "vit-tiny64", "vit-small64")

#: What ``compare classification`` trains by default: the origin notebook's experiment (ViT from scratch vs
#: the timm ViT-Tiny/16 vs CNNs).
COMPARE_DEFAULT = ("vit-tiny64", "vit_tiny_patch16_224", "mobilenetv2_100", "resnet50")

#: Class colours for EuroSAT's classes (others get a palette colour).
CLASS_COLOURS = {
    "AnnualCrop": "#e6c84b", "Forest": "#1b7837", "HerbaceousVegetation": "#a6d96a", "Highway": "#7f7f7f",
    "Industrial": "#984ea3", "Pasture": "#d9ef8b", "PermanentCrop": "#f4a582", "Residential": "#e41a1c",
    "River": "#4393c3", "SeaLake": "#08306b",
}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def class_colours(names: Sequence[str]) -> list[str]:
    return [CLASS_COLOURS.get(name, PALETTE[index % len(PALETTE)]) for index, name in enumerate(names)]
