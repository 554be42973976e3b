"""Segmentation training data, part three: the torch datasets (random training patches, fixed
validation tiles) and the band statistics of the training patches (the model card's normalisation)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.errors import SatVisionError
from ..models.card import NormalisedDifference
from ..models.spectral_indices import index_channels
from .segmentation_pairs import Region
from .segmentation_sampling import PatchSettings, PatchSource, Sample, sample_patch, tile_grid

# --------------------------------------------------------------------------- torch datasets

Augment = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[Any, Any, Any]]


def _to_item(values: Any, valid: Any, label: Any) -> dict[str, Any]:
    return {
        "values": torch.as_tensor(values, dtype=torch.float32),
        "valid": torch.as_tensor(valid, dtype=torch.bool),
        "target": torch.as_tensor(label).long(),
    }


class TrainPatches(Dataset):
    """``length`` random patches per epoch. Item ``i`` of epoch ``e`` depends only on
    ``(seed, e, i)`` — position and augmentation alike — so runs repeat with any worker count."""

    def __init__(self, source: PatchSource, regions: Sequence[Region], settings: PatchSettings, length: int,
                 seed: int = 0, augment: Augment | None = None) -> None:
        if not regions:
            raise SatVisionError("There are no training regions.")
        self.source = source
        self.regions = list(regions)
        self.settings = settings
        self.length = int(length)
        self.seed = int(seed)
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> tuple[Sample, float]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return sample_patch(self.source, self.regions, self.settings, rng)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample, _ = self.sample(index)
        values, valid, label = sample.values, sample.valid, sample.label
        if self.augment is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFF)
                values, valid, label = self.augment(values, valid, label)
        return _to_item(values, valid, label)


class TileSet(Dataset):
    """The fixed validation (or test) tiles of some regions: a deterministic, unfiltered grid."""

    def __init__(self, source: PatchSource, regions: Sequence[Region], size: int, max_tiles: int | None = None, seed: int = 0) -> None:
        self.source = source
        self.regions = list(regions)
        self.size = size
        tiles = tile_grid(self.regions, size)
        if max_tiles is not None and len(tiles) > max_tiles:
            chosen = sorted(random.Random(seed).sample(range(len(tiles)), max_tiles))  # nosec B311 - seeded subset
            tiles = [tiles[i] for i in chosen]
        self.tiles = tiles

    def __len__(self) -> int:
        return len(self.tiles)

    def sample(self, index: int) -> Sample:
        region_index, y, x = self.tiles[index]
        region = self.regions[region_index]
        return self.source.reader(region.pair).read(region, y, x, self.size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.sample(index)
        return _to_item(sample.values, sample.valid, sample.label)


# --------------------------------------------------------------------------- statistics


@dataclass
class BandStatistics:
    """Running per-band mean and standard deviation of valid pixels (float64 sums)."""

    bands: int
    total: np.ndarray = field(init=False)
    squares: np.ndarray = field(init=False)
    count: int = 0

    def __post_init__(self) -> None:
        self.total = np.zeros(self.bands)
        self.squares = np.zeros(self.bands)

    def add(self, values: np.ndarray, valid: np.ndarray) -> None:
        pixels = values[:, valid].astype(np.float64)
        self.total += pixels.sum(axis=1)
        self.squares += (pixels**2).sum(axis=1)
        self.count += pixels.shape[1]

    def mean_std(self) -> tuple[list[float], list[float]]:
        if self.count == 0:
            raise SatVisionError("The training patches hold no valid pixels: check the images' nodata and the labels.")
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean**2, 0.0))
        return [float(v) for v in mean], [float(max(v, 1e-6)) for v in std]


def reflectance_statistics(patches: TrainPatches, count: int, reflectance_scale: float,
                           indices: Sequence[NormalisedDifference] = ()) -> tuple[list[float], list[float]]:
    """Per-band mean/std of reflectance (``value / reflectance_scale``), then per spectral index,
    over ``count`` unaugmented training patches (epoch 0's first patches: deterministic for a seed)."""
    bands = patches.source.bands
    statistics = BandStatistics(len(bands) + len(indices))
    for index in range(max(1, count)):
        sample, _ = patches.sample(index)
        reflectance = sample.values / float(reflectance_scale)
        if indices:
            channels = index_channels(torch.from_numpy(np.ascontiguousarray(reflectance, dtype=np.float32)), indices, bands)
            reflectance = np.concatenate([reflectance, channels.numpy()])
        statistics.add(reflectance, sample.valid)
    return statistics.mean_std()
