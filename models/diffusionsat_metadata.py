"""DiffusionSat's metadata conditioning: normalisation of the seven fields and their embedding.

The seven fields, in this order, are longitude, latitude, ground sample distance, cloud cover,
year, month and day. Each is normalised as in DiffusionSat's training (below), goes through the
same sinusoidal projection as the diffusion timestep, then through its own two-layer MLP; the
seven results are summed and added to the timestep embedding of the UNet.

Attached to a stock diffusers ``UNet2DConditionModel`` as its ``class_embedding`` (with
``class_embed_type`` left ``None``), the normalised metadata travels as ``class_labels`` and the
parameter names are those of the released checkpoints:
``metadata_embedding.{0..6}.linear_{1,2}.{weight,bias}``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

FIELDS = ("lon", "lat", "gsd", "cloud_cover", "year", "month", "day")
NUM_FIELDS = len(FIELDS)
#: Year offset and span of DiffusionSat's normalisation: (year - 1980) / 120 * 1000.
YEAR_OFFSET, YEAR_SPAN = 1980, 120


@dataclass(frozen=True)
class Metadata:
    """Raw metadata of one image; ``None`` = unknown (normalised to 0, the learned "null")."""

    lon: float | None = None
    lat: float | None = None
    #: metres per pixel of the generated image
    gsd: float | None = None
    #: 0–1 fraction (not percent)
    cloud_cover: float | None = None
    date: dt.date | None = None

    def raw(self) -> list[float | None]:
        day = self.date
        return [self.lon, self.lat, self.gsd, self.cloud_cover,
                day.year if day else None, day.month if day else None, day.day if day else None]


def normalise_values(raw: Sequence[float | None]) -> list[float]:
    """The seven normalised values of DiffusionSat's training, computed in float64.

    ``raw`` = [lon°, lat°, gsd m, cloud fraction, year, month, day]; ``None`` → 0.
    """
    if len(raw) != NUM_FIELDS:
        raise ValueError(f"expected {NUM_FIELDS} metadata values ({', '.join(FIELDS)}), got {len(raw)}")
    lon, lat, gsd, cloud, year, month, day = raw
    scaled = [
        None if lon is None else (lon + 180.0) / 360.0 * 1000.0,
        None if lat is None else (lat + 90.0) / 180.0 * 1000.0,
        None if gsd is None else gsd * 1000.0,
        None if cloud is None else cloud * 1000.0,
        None if year is None else (year - YEAR_OFFSET) / YEAR_SPAN * 1000.0,
        None if month is None else month / 12.0 * 1000.0,
        None if day is None else day / 31.0 * 1000.0,
    ]
    return [0.0 if value is None else float(value) for value in scaled]


def normalise(metadata: Sequence[Metadata], device: torch.device | str | None = None) -> torch.Tensor:
    """A float32 (batch, 7) tensor of normalised metadata (kept float32: fp16 would round it)."""
    return torch.tensor([normalise_values(item.raw()) for item in metadata], dtype=torch.float32, device=device)


def timestep_sinusoid(values: torch.Tensor, channels: int, flip_sin_to_cos: bool = True,
                      freq_shift: float = 0) -> torch.Tensor:
    """diffusers' ``Timesteps(channels, flip_sin_to_cos, downscale_freq_shift=freq_shift)``, in float32.

    DiffusionSat projects the metadata with the UNet's own timestep projection, so the two flags
    are the UNet config's ``flip_sin_to_cos`` and ``freq_shift`` (SD 2.1: true and 0).
    """
    from diffusers.models.embeddings import get_timestep_embedding

    return get_timestep_embedding(values.float(), channels, flip_sin_to_cos=flip_sin_to_cos,
                                  downscale_freq_shift=freq_shift)


class FieldEmbedding(nn.Module):
    """diffusers' ``TimestepEmbedding(channels, embed_dim)``: linear, SiLU, linear (same names)."""

    def __init__(self, channels: int, embed_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(channels, embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(embed_dim, embed_dim)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(sample)))


class MetadataEmbedding(nn.Module):
    """Seven sinusoid + MLP embedders whose outputs are summed (the UNet adds the sum to its
    timestep embedding). Parameters: ``metadata_embedding.{i}.linear_{1,2}.*`` as released."""

    def __init__(self, channels: int = 320, embed_dim: int = 1280, num_fields: int = NUM_FIELDS,
                 flip_sin_to_cos: bool = True, freq_shift: float = 0) -> None:
        super().__init__()
        self.channels = channels
        #: the UNet's timestep projection settings, which DiffusionSat also applies to the metadata
        self.flip_sin_to_cos = bool(flip_sin_to_cos)
        self.freq_shift = freq_shift
        self.metadata_embedding = nn.ModuleList(FieldEmbedding(channels, embed_dim) for _ in range(num_fields))

    def forward(self, metadata: torch.Tensor) -> torch.Tensor:
        """``metadata``: (batch, 7) normalised values; returns (batch, embed_dim) in the MLP's dtype."""
        if metadata.ndim != 2 or metadata.shape[1] != len(self.metadata_embedding):
            raise ValueError(f"metadata must be (batch, {len(self.metadata_embedding)}), got {tuple(metadata.shape)}")
        dtype = self.metadata_embedding[0].linear_1.weight.dtype
        total = None
        for index, embedder in enumerate(self.metadata_embedding):
            projected = timestep_sinusoid(metadata[:, index], self.channels, self.flip_sin_to_cos, self.freq_shift).to(dtype)
            embedded = embedder(projected)
            total = embedded if total is None else total + embedded
        return total
