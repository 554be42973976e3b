"""Fine-tuning data for the generation model: GeoTIFFs with captions, metadata from the files.

A folder of GeoTIFFs (any depth). Each image's caption comes from ``NAME.txt`` beside it, or from
``captions.csv`` (columns ``file,caption``) / ``captions.json`` (``{"file": "caption"}``) in the
folder. Its metadata are read from the file itself:

- longitude and latitude: the image centre, from its georeferencing (any CRS);
- GSD: the pixel size in metres (converted from degrees for geographic CRSs);
- date: the tag ``date`` / ``acquisition_date`` (ISO) or TIFF's ``TIFFTAG_DATETIME``;
- cloud cover: the tag ``cloud_cover`` (a fraction 0–1, or a percentage when above 1).

A field that cannot be read stays unknown (normalised to 0, as in DiffusionSat's training).
Images are the first three bands (or those named red/green/blue, B4/B3/B2), uint8 as they are
and other types stretched per image (2–98 %); a random crop of ``image_size`` (smaller images
are resized up) with random flips.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.warp import transform as transform_points
from torch.utils.data import Dataset

from ..core.errors import SatVisionError
from ..models.diffusionsat_metadata import Metadata, normalise_values

SUFFIXES = (".tif", ".tiff")
RGB_NAMES = (("red", "green", "blue"), ("B4", "B3", "B2"), ("R", "G", "B"))


@dataclass(frozen=True)
class CaptionedImage:
    path: Path
    caption: str
    metadata: Metadata


def read_captions(folder: Path) -> dict[str, str]:
    captions: dict[str, str] = {}
    table = folder / "captions.csv"
    if table.is_file():
        with table.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                captions[Path(row["file"]).name] = row["caption"]
    listing = folder / "captions.json"
    if listing.is_file():
        captions.update({Path(key).name: value for key, value in json.loads(listing.read_text(encoding="utf-8")).items()})
    return captions


def image_metadata(dataset: Any) -> Metadata:
    """Longitude/latitude of the centre, GSD in metres, date and cloud cover of an open raster."""
    lon = lat = gsd = None
    if dataset.crs is not None:
        centre_x, centre_y = dataset.transform * (dataset.width / 2, dataset.height / 2)
        (lon,), (lat,) = transform_points(dataset.crs, "EPSG:4326", [centre_x], [centre_y])
        size = abs(dataset.transform.a)
        if dataset.crs.is_geographic:
            gsd = size * 111_320.0 * math.cos(math.radians(lat))
        else:
            gsd = size * dataset.crs.linear_units_factor[1]
    tags = {key.lower(): value for key, value in dataset.tags().items()}
    date = None
    for key in ("date", "acquisition_date", "tifftag_datetime"):
        text = tags.get(key)
        if text:
            try:
                date = dt.date.fromisoformat(text[:10].replace(":", "-"))
                break
            except ValueError:
                continue
    cloud = None
    if tags.get("cloud_cover"):
        cloud = float(tags["cloud_cover"])
        cloud = cloud / 100.0 if cloud > 1.0 else cloud
    return Metadata(lon=lon, lat=lat, gsd=gsd, cloud_cover=cloud, date=date)


def find_images(folder: str | Path) -> list[CaptionedImage]:
    root = Path(folder)
    if not root.is_dir():
        raise SatVisionError(f"The training folder {root} does not exist.")
    items = []
    captions: dict[Path, dict[str, str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES):
        table = captions.setdefault(path.parent, read_captions(path.parent))
        sidecar = path.with_suffix(".txt")
        caption = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else table.get(path.name)
        if not caption:
            raise SatVisionError(
                f"{path.name} has no caption: write it in {sidecar.name} beside it, or in captions.csv "
                "(columns file,caption) in its folder."
            )
        with rasterio.open(path) as dataset:
            if dataset.count < 3:
                raise SatVisionError(f"{path.name} has {dataset.count} band(s); the generation model needs RGB (3 bands).")
            metadata = image_metadata(dataset)
        items.append(CaptionedImage(path, caption, metadata))
    if not items:
        raise SatVisionError(f"No GeoTIFFs found in {root}.")
    return items


def rgb_indexes(dataset: Any) -> list[int]:
    names = [name or "" for name in dataset.descriptions]
    for candidates in RGB_NAMES:
        if all(name in names for name in candidates):
            return [names.index(name) + 1 for name in candidates]
    return [1, 2, 3]


def to_unit_range(values: np.ndarray) -> np.ndarray:
    """uint8 as is, other types stretched 2–98 % per band; result in [0, 1]."""
    if values.dtype == np.uint8:
        return values.astype(np.float32) / 255.0
    values = values.astype(np.float32)
    out = np.empty_like(values)
    for band in range(values.shape[0]):
        low, high = np.percentile(values[band], (2, 98))
        out[band] = np.clip((values[band] - low) / max(high - low, 1e-6), 0.0, 1.0)
    return out


class CaptionedImages(Dataset):
    """Random crops in [-1, 1] with their caption and normalised metadata (seeded per epoch)."""

    def __init__(self, items: list[CaptionedImage], image_size: int, seed: int = 0) -> None:
        self.items, self.image_size, self.seed, self.epoch = items, image_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        with rasterio.open(item.path) as dataset:
            values = to_unit_range(dataset.read(rgb_indexes(dataset)))
        image = torch.from_numpy(values)
        size = self.image_size
        raw = item.metadata.raw()
        if min(image.shape[1:]) < size:
            scale = size / min(image.shape[1:])
            if raw[2] is not None:  # upsampled: the pixels the model sees are smaller
                raw[2] = raw[2] / scale
            shape = (max(size, round(image.shape[1] * scale)), max(size, round(image.shape[2] * scale)))
            image = torch.nn.functional.interpolate(image[None], size=shape, mode="bilinear", align_corners=False)[0]
        top = int(rng.integers(0, image.shape[1] - size + 1))
        left = int(rng.integers(0, image.shape[2] - size + 1))
        image = image[:, top : top + size, left : left + size]
        if rng.random() < 0.5:
            image = image.flip(-1)
        if rng.random() < 0.5:
            image = image.flip(-2)
        return {
            "pixels": image * 2.0 - 1.0,
            "caption": item.caption,
            "metadata": torch.tensor(normalise_values(raw), dtype=torch.float32),
        }
