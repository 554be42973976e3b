"""UNet 3+ (Huang et al. 2020) on any segmentation-models-pytorch encoder.

Full-scale skip connections: every decoder level sees every encoder level at or above its
resolution (max-pooled down to its scale) and every deeper decoder output (upsampled), so
fine edges and coarse context meet at each scale instead of only through a chain of
neighbouring levels. Deep supervision trains every decoder level directly, and a
classification-guided module (CGM) on the deepest feature learns whether a tile contains
any foreground at all, which at inference suppresses false positives on tiles without water.

Levels: level 0 is the input itself (full resolution; smp encoders start at stride 2, and
the input is the one full-resolution feature they expose), levels 1..D are the encoder stages,
decoder levels run from D-1 down to 0, and the deepest "decoder output" is encoder level D.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.encoders import get_encoder
from torch import nn

from .attention_unet import conv_bn_relu


def _to_scale(branch: nn.Module, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bring one source to ``size`` through its conv3x3-BN-ReLU ``branch``.

    A shallower (larger) source is max-pooled first, then convolved. A deeper (smaller) one
    is convolved at its own resolution, then bilinearly upsampled: the paper upsamples first,
    but convolving e.g. 2048 channels after a 32x upsampling is most of the network's cost
    (about 600 instead of 260 GFLOP for a 256 px tile with ResNet-50), for the same role.
    """
    size = tuple(size)
    if x.shape[-2] < size[0] or x.shape[-1] < size[1]:
        return F.interpolate(branch(x), size=size, mode="bilinear", align_corners=False)
    if tuple(x.shape[-2:]) != size:
        x = F.adaptive_max_pool2d(x, size)  # = max_pool2d(2**k) when the sizes divide
    return branch(x)


class FullScaleBlock(nn.Module):
    """One UNet 3+ decoder level: each source → conv3x3-BN-ReLU to ``cat_channels`` at this
    level's scale, concatenated and fused by conv3x3-BN-ReLU to ``cat_channels * len(sources)``."""

    def __init__(self, source_channels: Sequence[int], cat_channels: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(conv_bn_relu(channels, cat_channels) for channels in source_channels)
        self.out_channels = cat_channels * len(source_channels)
        self.fuse = conv_bn_relu(self.out_channels, self.out_channels)

    def forward(self, sources: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        return self.fuse(torch.cat([_to_scale(branch, x, size) for branch, x in zip(self.branches, sources)], dim=1))


class UNet3Plus(nn.Module):
    """UNet 3+ with deep supervision and a classification-guided module.

    ``forward`` returns only the main logits (N, classes, H, W), as the inference engine
    expects; ``training_outputs`` also returns the deep-supervision logits and the CGM logits
    for the trainer's losses. H and W must be divisible by ``2 ** encoder_depth``.

    ``gate_penalty``: in eval mode, with ``classification_guided``, the foreground logits of
    every tile are lowered by ``gate_penalty * (1 - p_has_foreground)``. A segmentation head
    alone judges each pixel from a limited context and fires on water-like pixels (shadows,
    dark fields) on tiles that contain no water at all; the CGM sees the whole tile, and its
    verdict removes those false positives while leaving tiles that do contain water
    untouched. The gate is soft (a logit offset, not a hard 0/1 mask) so a CGM that is unsure
    only nudges the segmentation.
    """

    def __init__(
        self,
        encoder_name: str = "resnet50",
        encoder_depth: int = 5,
        cat_channels: int = 64,
        deep_supervision: bool = True,
        classification_guided: bool = True,
        gate_penalty: float = 10.0,
        in_channels: int = 3,
        classes: int = 1,
    ) -> None:
        super().__init__()
        self.encoder = get_encoder(encoder_name, in_channels=in_channels, depth=encoder_depth, weights=None)
        self.depth = encoder_depth
        self.gate_penalty = float(gate_penalty)
        encoder_channels = list(self.encoder.out_channels)  # level 0 (the input) … level D
        decoded_channels = {encoder_depth: encoder_channels[encoder_depth]}
        # Encoder levels a decoder level uses: those at or above it that have channels (some
        # encoders, e.g. the Mix Transformers, expose an empty stage).
        self._encoder_levels: list[list[int]] = []
        blocks = []
        for level in range(encoder_depth - 1, -1, -1):
            shallow = [k for k in range(level + 1) if encoder_channels[k] > 0]
            deep = range(level + 1, encoder_depth + 1)
            block = FullScaleBlock([encoder_channels[k] for k in shallow] + [decoded_channels[k] for k in deep], cat_channels)
            decoded_channels[level] = block.out_channels
            self._encoder_levels.append(shallow)
            blocks.append(block)
        self.decoder = nn.ModuleList(blocks)  # deepest decoder level (D-1) first
        self.head = nn.Conv2d(decoded_channels[0], classes, kernel_size=3, padding=1)
        # Deep supervision: one head per level below the main one, deepest (encoder level D) first.
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(decoded_channels[level], classes, kernel_size=3, padding=1)
            for level in (range(encoder_depth, 0, -1) if deep_supervision else ())
        )
        self.cgm: nn.Module | None = None
        if classification_guided:
            self.cgm = nn.Sequential(
                nn.Dropout(0.5),
                nn.Conv2d(encoder_channels[encoder_depth], 2, kernel_size=1),
                nn.AdaptiveMaxPool2d(1),
                nn.Flatten(),
            )

    def _decode(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Decoder outputs by level (0 = full resolution), with level D the deepest encoder feature."""
        features = self.encoder(x)
        decoded = {self.depth: features[self.depth]}
        for level, block, shallow in zip(range(self.depth - 1, -1, -1), self.decoder, self._encoder_levels):
            sources = [features[k] for k in shallow] + [decoded[k] for k in range(level + 1, self.depth + 1)]
            decoded[level] = block(sources, features[level].shape[-2:])
        return decoded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        decoded = self._decode(x)
        logits = self.head(decoded[0])
        if self.cgm is not None and not self.training:
            logits = self.suppress_empty_tiles(logits, self.cgm(decoded[self.depth]))
        return logits

    def suppress_empty_tiles(self, logits: torch.Tensor, has_foreground: torch.Tensor) -> torch.Tensor:
        """Lower the foreground logits (classes 1…) by ``gate_penalty * (1 - p_has_foreground)``."""
        p_foreground = torch.softmax(has_foreground, dim=1)[:, 1]
        penalty = (self.gate_penalty * (1.0 - p_foreground))[:, None, None, None]
        return torch.cat([logits[:, :1], logits[:, 1:] - penalty], dim=1)

    def training_outputs(self, x: torch.Tensor) -> dict[str, Any]:
        """Everything the trainer needs for the UNet 3+ losses.

        ``logits``: main logits, never gated by the CGM (the CGM has its own loss; gating here
        would hide segmentation errors from the segmentation loss). ``aux``: deep-supervision
        logits at input size, deepest first (empty without deep supervision).
        ``has_foreground``: CGM logits (N, 2), index 1 = "tile contains foreground" (None
        without the CGM).
        """
        decoded = self._decode(x)
        size = x.shape[-2:]
        aux = [
            F.interpolate(head(decoded[level]), size=size, mode="bilinear", align_corners=False)
            for level, head in zip(range(self.depth, 0, -1), self.aux_heads)
        ]
        return {
            "logits": self.head(decoded[0]),
            "aux": aux,
            "has_foreground": self.cgm(decoded[self.depth]) if self.cgm is not None else None,
        }
