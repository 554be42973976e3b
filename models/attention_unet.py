"""Attention U-Net (Oktay et al. 2018) on any segmentation-models-pytorch encoder.

A U-Net whose skip connections pass through additive attention gates: the decoder feature,
coarser but semantically richer, decides pixel by pixel how much of the encoder's fine but
unselective skip feature reaches the decoder. A plain U-Net copies skip responses of dark
non-water surfaces (shadow, asphalt, burnt ground) straight into the output; the gates learn
to damp them while keeping the sharp edges of real water.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.encoders import get_encoder
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """Conv (no bias: BatchNorm has one) → BatchNorm → ReLU, size-preserving."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class AttentionGate(nn.Module):
    """Additive attention gate: ``x * psi`` with
    ``psi = sigmoid(BN(conv1x1(relu(BN(conv1x1(g)) + BN(conv1x1(x))))))``.

    ``g`` is the gating signal (the decoder feature, already upsampled to the skip's size) and
    ``x`` the skip feature. The coefficients ``psi`` (N, 1, H, W), in (0, 1), are the output of
    the :attr:`psi` submodule, so a forward hook on it shows where the gate lets the skip through.
    """

    def __init__(self, gate_channels: int, skip_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Conv2d(gate_channels, inter_channels, 1, bias=False), nn.BatchNorm2d(inter_channels))
        self.skip = nn.Sequential(nn.Conv2d(skip_channels, inter_channels, 1, bias=False), nn.BatchNorm2d(inter_channels))
        self.psi = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv2d(inter_channels, 1, 1, bias=False),
            nn.BatchNorm2d(1),
            nn.Sigmoid(),
        )

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x * self.psi(self.gate(g) + self.skip(x))


class AttentionDecoderBlock(nn.Module):
    """Upsample to the skip's size, gate the skip, concatenate, two conv3x3-BN-ReLU.

    ``skip_channels == 0`` means no skip at this level (the last, full-resolution block, or an
    encoder stage without features such as the first stage of the Mix Transformers).
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.attention = (
            AttentionGate(in_channels, skip_channels, max(skip_channels // 2, 1)) if skip_channels > 0 else None
        )
        self.conv = nn.Sequential(
            conv_bn_relu(in_channels + skip_channels, out_channels),
            conv_bn_relu(out_channels, out_channels),
        )

    def forward(self, x: torch.Tensor, size: Sequence[int], skip: torch.Tensor | None = None) -> torch.Tensor:
        # Upsample to the exact size of the next encoder level rather than by a factor 2, so
        # encoders whose stages do not halve exactly still line up (as smp.Unet does).
        x = F.interpolate(x, size=tuple(size), mode="nearest")
        if self.attention is not None and skip is not None:
            x = torch.cat([x, self.attention(x, skip)], dim=1)
        return self.conv(x)


class AttentionUnet(nn.Module):
    """U-Net with attention-gated skips; constructor arguments follow ``smp.Unet``.

    The encoder is built without pretrained weights: a SatVision model's weights always come
    from its model file, never from a download. Returns logits (N, classes, H, W) at the input
    resolution; H and W must be divisible by ``2 ** encoder_depth``.
    """

    def __init__(
        self,
        encoder_name: str = "resnet50",
        encoder_depth: int = 5,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        in_channels: int = 3,
        classes: int = 1,
    ) -> None:
        super().__init__()
        if len(decoder_channels) != encoder_depth:
            raise ValueError(
                f"decoder_channels lists {len(decoder_channels)} blocks but encoder_depth is "
                f"{encoder_depth}; give one decoder channel count per encoder stage."
            )
        self.encoder = get_encoder(encoder_name, in_channels=in_channels, depth=encoder_depth, weights=None)
        # Deepest first; level 0 is the input itself and is never a skip.
        encoder_channels = list(self.encoder.out_channels[1:])[::-1]
        block_in = [encoder_channels[0], *decoder_channels[:-1]]
        block_skip = [*encoder_channels[1:], 0]
        self.decoder = nn.ModuleList(
            AttentionDecoderBlock(i, s, o) for i, s, o in zip(block_in, block_skip, decoder_channels)
        )
        self.segmentation_head = nn.Conv2d(decoder_channels[-1], classes, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        sizes = [feature.shape[-2:] for feature in features][::-1]  # deepest first, input last
        skips = features[1:][::-1]
        y = skips[0]
        for index, block in enumerate(self.decoder):
            skip = skips[index + 1] if index + 1 < len(skips) else None
            y = block(y, sizes[index + 1], skip)
        return self.segmentation_head(y)
