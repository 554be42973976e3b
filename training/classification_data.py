"""Labelled tiles for classification: folders of images per class (the EuroSAT layout).

``DATA/<Class>/*.jpg|png`` (8-bit renderings, e.g. EuroSAT RGB) or ``DATA/<Class>/*.tif`` (GeoTIFF
chips of raster values, bands matched by description). ``DATA`` may instead hold ``train/``,
``valid/`` (or ``val/``, ``validation/``) and optionally ``test/``, each in that layout; otherwise
each class is split by seed into 70/15/15 % train/validation/test.

Every sample is returned in the model's *rendered* domain, the values right before the card's
mean/std: 8-bit images divided by 255; GeoTIFF chips through the card's reflectance scale and
rendering. All tiles are decoded once into one uint8/float32 array (the training set of a tile
classifier fits in memory: EuroSAT RGB is 230 MB); DataLoader workers share it by fork.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.errors import SatVisionError
from ..core.feedback import Feedback, SilentFeedback

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
RASTER_SUFFIXES = (".tif", ".tiff")
SPLIT_FOLDERS = {"train": ("train", "training"), "validation": ("valid", "val", "validation"), "test": ("test",)}
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
EIGHT_BIT = 255.0


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass
class ClassSplit:
    """Samples of each part and the class names (sorted folder names, identical in every part)."""

    class_names: list[str]
    train: list[Sample]
    validation: list[Sample]
    test: list[Sample]
    how: str

    def part(self, name: str) -> list[Sample]:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    def describe(self) -> str:
        return (f"{len(self.train)} train / {len(self.validation)} validation / {len(self.test)} test tiles, "
                f"{len(self.class_names)} classes ({self.how})")


def class_folders(root: Path) -> list[str]:
    """Sorted names of the sub-folders of ``root`` that hold tiles."""
    if not root.is_dir():
        raise SatVisionError(f"The data folder {root} does not exist.")
    names = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and _tiles_in(entry))
    if len(names) < 2:
        raise SatVisionError(
            f"{root} must hold one sub-folder of tiles per class (at least two), e.g. {root}/Forest/*.jpg "
            f"(tiles: {', '.join(IMAGE_SUFFIXES + RASTER_SUFFIXES)})."
        )
    return names


def _tiles_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES + RASTER_SUFFIXES)


def samples_of(root: Path, class_names: Sequence[str]) -> list[Sample]:
    """Every tile under ``root/<class>/`` for the given classes (a missing class folder is an error)."""
    samples = []
    for index, name in enumerate(class_names):
        folder = root / name
        if not folder.is_dir():
            raise SatVisionError(f"{root} has no folder for class {name!r}: every split needs the same classes.")
        samples += [Sample(path, index) for path in _tiles_in(folder)]
    return samples


def find_split_folders(root: Path) -> dict[str, Path]:
    found = {}
    for part, names in SPLIT_FOLDERS.items():
        for name in names:
            if (root / name).is_dir():
                found[part] = root / name
                break
    return found


def split_samples(data: Path, seed: int = 0, validation: Path | None = None, test: Path | None = None) -> ClassSplit:
    """The train/validation/test tiles: given folders, split sub-folders, or a seeded split per class."""
    data = Path(data)
    parts = find_split_folders(data)
    if "train" in parts and not validation:
        data, validation, test = parts["train"], parts.get("validation"), test or parts.get("test")
    class_names = class_folders(data)
    if validation is not None:
        if set(class_folders(Path(validation))) - set(class_names):
            missing = sorted(set(class_folders(Path(validation))) - set(class_names))
            raise SatVisionError(f"{validation} has classes that {data} lacks: {', '.join(missing)}.")
        return ClassSplit(
            class_names, samples_of(data, class_names), samples_of(Path(validation), class_names),
            samples_of(Path(test), class_names) if test else [], how=f"validation from {Path(validation).name}/",
        )
    rng = np.random.default_rng(seed)
    train, valid, held = [], [], []
    for sample_list in _by_class(samples_of(data, class_names), len(class_names)):
        order = rng.permutation(len(sample_list))
        first = int(round(SPLIT_FRACTIONS[0] * len(order)))
        second = first + int(round(SPLIT_FRACTIONS[1] * len(order)))
        train += [sample_list[i] for i in order[:first]]
        valid += [sample_list[i] for i in order[first:second]]
        held += [sample_list[i] for i in order[second:]]
    return ClassSplit(class_names, train, valid, held, how=f"seeded 70/15/15 split per class, seed {seed}")


def _by_class(samples: Sequence[Sample], classes: int) -> list[list[Sample]]:
    grouped: list[list[Sample]] = [[] for _ in range(classes)]
    for sample in samples:
        grouped[sample.label].append(sample)
    return grouped


def tile_kind(samples: Sequence[Sample]) -> str:
    """``image`` (8-bit JPEG/PNG) or ``raster`` (GeoTIFF); mixing them is refused."""
    kinds = {"raster" if sample.path.suffix.lower() in RASTER_SUFFIXES else "image" for sample in samples}
    if len(kinds) > 1:
        raise SatVisionError("The data mixes 8-bit images (JPEG/PNG) and GeoTIFF chips; use one kind.")
    return kinds.pop() if kinds else "image"


class TileReader:
    """Decodes tiles to ``(C, H, W)`` float32 in the rendered domain.

    Images: the channels in file order (RGB for EuroSAT, i.e. B4, B3, B2) divided by 255.
    GeoTIFF chips: ``bands`` matched by description, through ``render`` (the card's reflectance
    scale and rendering, without mean/std).
    """

    def __init__(self, kind: str, bands: Sequence[str], render: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.kind, self.bands, self.render = kind, list(bands), render

    def read(self, path: Path) -> np.ndarray:
        if self.kind == "image":
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB" if len(self.bands) == 3 else "L"))
            except (OSError, UnidentifiedImageError) as error:
                raise SatVisionError(f"Cannot decode the image {path}: {error}") from error
            pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
            return pixels.astype(np.float32) / EIGHT_BIT
        from rasterio.windows import Window

        from ..core.raster import open_raster, read_window, select_bands

        with open_raster(path) as dataset:
            indexes = select_bands(dataset, self.bands)
            values, valid = read_window(dataset, indexes, Window(0, 0, dataset.width, dataset.height))
        rendered = self.render(values) if self.render else values
        return np.where(valid[None], rendered, 0.0).astype(np.float32)


class TileSet(Dataset):
    """Tiles decoded once into memory; items ``{"values": (C, S, S) float32, "target": int64}``.

    All tiles are brought to ``size`` pixels (bilinear) when they differ. ``transform`` (training
    augmentation) is applied per item as ``transform(values, label)``. ``set_epoch`` reshuffles (seeded)
    so an epoch's order is the same on every process and after a resume. ``feedback.progress`` gets
    the share of tiles decoded, every 1000 tiles.
    """

    def __init__(self, samples: Sequence[Sample], reader: TileReader, size: int, transform: Callable | None = None,
                 shuffle_seed: int | None = None, feedback: Feedback | None = None) -> None:
        if not samples:
            raise SatVisionError("No tiles to read (an empty split).")
        feedback = feedback or SilentFeedback()
        self.samples = list(samples)
        self.transform = transform
        self.shuffle_seed = shuffle_seed
        self.order = np.arange(len(self.samples))
        first = reader.read(self.samples[0].path)
        self.values = np.empty((len(self.samples), first.shape[0], size, size), dtype=np.float16 if reader.kind == "image" else np.float32)
        self.targets = torch.tensor([sample.label for sample in self.samples], dtype=torch.int64)
        for index, sample in enumerate(self.samples):
            tile = first if index == 0 else reader.read(sample.path)
            if tile.shape[0] != first.shape[0]:
                raise SatVisionError(f"{sample.path} has {tile.shape[0]} bands, the other tiles {first.shape[0]}.")
            self.values[index] = _resize(tile, size)
            if index % 1000 == 0:
                feedback.progress(index / len(self.samples))

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle_seed is not None:
            self.order = np.random.default_rng((self.shuffle_seed, epoch)).permutation(len(self.samples))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        position = int(self.order[index])
        values = torch.from_numpy(self.values[position].astype(np.float32))
        if self.transform is not None:
            values = self.transform(values, self.targets[position])
        return {"values": values, "target": self.targets[position]}

    def class_counts(self, classes: int) -> list[int]:
        return torch.bincount(self.targets, minlength=classes).tolist()


def _resize(tile: np.ndarray, size: int) -> np.ndarray:
    if tile.shape[-2:] == (size, size):
        return tile
    values = torch.from_numpy(tile)[None]
    shrinking = tile.shape[-1] > size
    return torch.nn.functional.interpolate(values, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)[0].numpy()


def tile_size_of(samples: Sequence[Sample], reader: TileReader) -> int:
    """The side of the first tile (tiles are square in EuroSAT-like data)."""
    tile = reader.read(samples[0].path)
    return int(tile.shape[-1])


def band_statistics(dataset: TileSet, limit: int = 5000, seed: int = 0) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation (rendered domain) of up to ``limit`` seeded tiles."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(dataset), size=min(limit, len(dataset)), replace=False)
    values = dataset.values[np.sort(chosen)].astype(np.float64)
    mean = values.mean(axis=(0, 2, 3))
    std = values.std(axis=(0, 2, 3))
    return [float(v) for v in mean], [float(max(v, 1e-6)) for v in std]
