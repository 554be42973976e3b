"""Names shared by the classification CLI and training, importable without torch."""

#: ``--architecture`` values that select our ViT from scratch (the rest are timm model names).
VIT_PRESETS = ("vit", "vit-seed", "vit-tiny64", "vit-small64")

#: What ``compare classification`` trains by default: the seed's experiment (ViT from scratch vs
#: the timm ViT-Tiny/16 vs CNNs).
COMPARE_DEFAULT = ("vit-tiny64", "vit_tiny_patch16_224", "mobilenetv2_100", "resnet50")
