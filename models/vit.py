"""A Vision Transformer written from scratch (Dosovitskiy et al. 2021), as the origin notebook describes it.

Patchify the image into P×P patches (N = HW/P²), project each linearly to D, prepend a learnable
class token (with class-token pooling), add learned 1-D positional embeddings, run pre-norm
encoder blocks (multi-head self-attention and an MLP with GELU, dropout, residuals), apply a
final norm, pool, and classify with an MLP head.

The origin notebook (Keras) had two peculiarities that :data:`SEED_PRESET` reproduces so its parameter
count can be checked against the origin notebook's summary: each of the 8 attention heads has its own
``key_dim = D`` (Keras' ``MultiHeadAttention(num_heads=8, key_dim=D)``, so attention works in
8·D dimensions and projects back to D), and the head flattens all patch tokens
(``pooling="flatten"``) before two dense layers of 2048 and 1024 units.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

POOLINGS = ("cls", "mean", "flatten")


@dataclass(frozen=True)
class ViTConfig:
    """Constructor arguments of :class:`VisionTransformer` (stored as the card's architecture params)."""

    image_size: int = 64
    patch_size: int = 8
    dim: int = 192
    depth: int = 6
    heads: int = 6
    head_dim: int | None = None  # per-head width; None = dim // heads (the usual ViT), the origin notebook used dim
    mlp_units: list[int] | None = None  # hidden units of each block's MLP; None = [4·dim, dim]
    mlp_activate_last: bool = False  # GELU after the MLP's last layer too (the origin notebook's Keras mlp())
    pooling: str = "cls"  # "cls" (class token), "mean" (of the patch tokens) or "flatten" (the origin notebook)
    head_units: list[int] = field(default_factory=list)  # hidden layers of the classification head
    dropout: float = 0.1  # after the patch embedding and in every MLP
    attention_dropout: float = 0.0
    head_dropout: float = 0.0
    drop_path: float = 0.1  # stochastic depth, linearly rising over the blocks

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {self.pooling!r}")
        if self.head_dim is None and self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}; give head_dim")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def params(self) -> dict[str, Any]:
        return asdict(self)


#: The origin notebook's ViT: 128 px input, 8 px patches (N = 256), D = 100, 8 layers of 8 heads
#: with key_dim = D, MLP units [2D, D] with GELU on both, attention dropout 0.2, MLP dropout 0.1,
#: flatten + dropout 0.5 + dense 2048 and 1024 (GELU, dropout 0.5). No class token (flatten).
SEED_PRESET = ViTConfig(
    image_size=128, patch_size=8, dim=100, depth=8, heads=8, head_dim=100, mlp_units=[200, 100],
    mlp_activate_last=True, pooling="flatten", head_units=[2048, 1024], dropout=0.1,
    attention_dropout=0.2, head_dropout=0.5, drop_path=0.0,
)
#: Parameters of the origin notebook's ViT with its one-unit sigmoid output, counted by Keras' summary as
#: 57,455,149 trainable: Keras lists no weights for the positional ``Embedding`` applied to a
#: constant position tensor (256 × 100 = 25,600). Ours counts them: 57,480,749.
SEED_KERAS_TRAINABLE = 57_455_149
SEED_POSITION_EMBEDDING = 256 * 100

def parameter_summary(network: nn.Module, classes: int) -> str:
    """Parameter counts of a ViT classifier, and for the origin notebook's preset the check against the origin notebook.

    ``network`` is the :class:`models.classification` classifier (``encoder`` + ``head``).
    """
    def count(module: nn.Module) -> int:
        return sum(parameter.numel() for parameter in module.parameters())

    encoder, head = network.encoder, network.head
    config: ViTConfig = encoder.config
    text = (f"ViT from scratch: {count(network):,} parameters (patch embedding {count(encoder.patch_embedding):,}, "
            f"position embedding {encoder.position_embedding.numel():,}, {config.depth} blocks × {count(encoder.blocks[0]):,}, "
            f"head {count(head):,})")
    if config == SEED_PRESET:
        last = head[-1]
        one_unit = count(network) - count(last) + last.in_features + 1
        text += (f"; with the origin notebook's one sigmoid unit it would be {one_unit:,} = the origin notebook's Keras summary "
                 f"({SEED_KERAS_TRAINABLE:,} trainable) + the {SEED_POSITION_EMBEDDING:,} position-embedding weights "
                 f"Keras did not list")
    return text


#: Compact presets for 64 px EuroSAT-size tiles.
PRESETS: dict[str, ViTConfig] = {
    "seed": SEED_PRESET,
    "tiny64": ViTConfig(image_size=64, patch_size=8, dim=192, depth=6, heads=3, pooling="cls"),
    "small64": ViTConfig(image_size=64, patch_size=8, dim=256, depth=8, heads=8, pooling="cls"),
}


class PatchEmbedding(nn.Module):
    """P×P patches → D, as one strided convolution (the same linear map on every patch)."""

    def __init__(self, in_channels: int, patch_size: int, dim: int) -> None:
        super().__init__()
        self.projection = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(images).flatten(2).transpose(1, 2)  # (B, N, D)


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with ``heads`` heads of ``head_dim`` each (may differ from dim / heads)."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        self.qkv = nn.Linear(dim, 3 * heads * head_dim)
        self.output = nn.Linear(heads * head_dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, count, _ = tokens.shape
        q, k, v = self.qkv(tokens).reshape(batch, count, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.output(attended.transpose(1, 2).reshape(batch, count, self.heads * self.head_dim))


class MLP(nn.Module):
    """Dense layers with GELU and dropout; GELU after the last layer only with ``activate_last``."""

    def __init__(self, in_features: int, units: list[int], dropout: float, activate_last: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index, width in enumerate(units):
            layers.append(nn.Linear(in_features, width))
            if index < len(units) - 1 or activate_last:
                layers.append(nn.GELU())
            layers.append(nn.Dropout(dropout))
            in_features = width
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DropPath(nn.Module):
    """Stochastic depth: drops a whole residual branch per sample while training."""

    def __init__(self, probability: float) -> None:
        super().__init__()
        self.probability = probability

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.probability == 0.0:
            return x
        keep = 1.0 - self.probability
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: ViTConfig, drop_path: float) -> None:
        super().__init__()
        head_dim = config.head_dim or config.dim // config.heads
        units = config.mlp_units or [4 * config.dim, config.dim]
        if units[-1] != config.dim:
            raise ValueError(f"the block MLP must end at dim ({config.dim}), not {units[-1]}")
        self.norm1 = nn.LayerNorm(config.dim, eps=1e-6)
        self.attention = MultiHeadSelfAttention(config.dim, config.heads, head_dim, config.attention_dropout)
        self.norm2 = nn.LayerNorm(config.dim, eps=1e-6)
        self.mlp = MLP(config.dim, units, config.dropout, config.mlp_activate_last)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attention(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """The ViT trunk: image → pooled feature vector of :attr:`num_features` values."""

    def __init__(self, in_channels: int, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embedding = PatchEmbedding(in_channels, config.patch_size, config.dim)
        self.class_token = nn.Parameter(torch.zeros(1, 1, config.dim)) if config.pooling == "cls" else None
        tokens = config.num_patches + (1 if self.class_token is not None else 0)
        self.position_embedding = nn.Parameter(torch.zeros(1, tokens, config.dim))
        self.dropout = nn.Dropout(config.dropout)
        rates = [config.drop_path * index / max(1, config.depth - 1) for index in range(config.depth)]
        self.blocks = nn.Sequential(*(EncoderBlock(config, rate) for rate in rates))
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.num_features = config.dim * config.num_patches if config.pooling == "flatten" else config.dim
        self._initialise()

    def _initialise(self) -> None:
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        if self.class_token is not None:
            nn.init.trunc_normal_(self.class_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                nn.init.trunc_normal_(module.weight, std=1 / math.sqrt(fan_in))
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embedding(images)
        if self.class_token is not None:
            tokens = torch.cat([self.class_token.expand(len(tokens), -1, -1), tokens], dim=1)
        tokens = self.norm(self.blocks(self.dropout(tokens + self.position_embedding)))
        if self.config.pooling == "cls":
            return tokens[:, 0]
        if self.config.pooling == "mean":
            return tokens.mean(dim=1)
        return tokens.flatten(1)


def vit_head(config: ViTConfig, in_features: int, classes: int) -> nn.Module:
    """The classification head: dropout, the hidden layers of ``head_units`` (GELU, dropout), logits."""
    layers: list[nn.Module] = [nn.Dropout(config.head_dropout)] if config.head_units else []
    if config.head_units:
        layers.append(MLP(in_features, list(config.head_units), config.head_dropout, activate_last=True))
        in_features = config.head_units[-1]
    layers.append(nn.Linear(in_features, classes))
    return nn.Sequential(*layers)
