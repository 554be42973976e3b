"""Segmentation training data, part two: windowed reads of image/label pairs and random patches.

Training draws random patches whose water fraction lies in ``[min_water, max_water]`` (the origin notebook
notebook used 30–70 %) by rejection sampling with a bounded number of tries, taking the closest
candidate when none fits. Validation does *not* filter: it tiles each validation region with a
fixed grid of non-overlapping patches (:func:`tile_grid`: deterministic, every labelled pixel
counted exactly once), so the metrics describe whole scenes as the plugin will see them, not the
balanced patches training prefers. Everything is read by windows; small images are cached in
memory. Plain numpy and rasterio: the torch datasets live in :mod:`training.segmentation_datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from ..core.errors import SatVisionError
from ..core.raster import open_raster, read_window, select_bands
from .segmentation_pairs import IGNORE_INDEX, Pair, Region
from .segmentation_settings import PATCH_WEIGHTINGS

# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Sample:
    """A patch: raw raster values ``(bands, size, size)`` float32, image validity, and labels
    ``(size, size)`` uint8 with :data:`IGNORE_INDEX` where unlabelled or outside the region."""

    values: np.ndarray
    valid: np.ndarray
    label: np.ndarray


class PairReader:
    """Windowed reads of one pair, opened lazily in the process that reads (rasterio handles
    cannot cross process boundaries, so DataLoader workers open their own)."""

    def __init__(self, pair: Pair, bands: Sequence[str], num_classes: int, cache: "_CacheBudget") -> None:
        self.pair = pair
        self.bands = list(bands)
        self.num_classes = num_classes
        self._cache_budget = cache
        self._image: Any = None
        self._label: Any = None
        self._indexes: list[int] = []
        self._cached: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _open(self) -> None:
        if self._image is not None:
            return
        try:
            self._image = rasterio.open(self.pair.image)
            self._label = rasterio.open(self.pair.label)
            self._indexes = select_bands(self._image, self.bands)
            _check_grids(self._image, self._label, self.pair)
        except Exception as error:
            self.close()
            if isinstance(error, rasterio.errors.RasterioIOError):
                raise SatVisionError(f"GDAL cannot read {self.pair.image.name} or its label ({error}).") from error
            raise
        image, label = self._image, self._label
        nbytes = image.width * image.height * (len(self._indexes) * np.dtype(image.dtypes[0]).itemsize + 2)
        if self._cache_budget.take(nbytes):
            values = image.read(self._indexes)
            valid = np.all(image.read_masks(self._indexes) > 0, axis=0)
            if values.dtype.kind == "f":
                valid &= np.all(np.isfinite(values), axis=0)
            self._cached = (values, valid, self._labels(label.read(1), label.read_masks(1) > 0))

    def _labels(self, raw: np.ndarray, labelled: np.ndarray) -> np.ndarray:
        return label_classes(raw, labelled, self.num_classes, self.pair.label.name)

    def label_window(self, region: Region, y: int, x: int, size: int) -> np.ndarray:
        """Labels of a window (ignore outside the region and the raster); cheap, for rejection sampling."""
        self._open()
        if self._cached is not None:
            label = _slice(self._cached[2], y, x, size, IGNORE_INDEX)
        else:
            raw, labelled = read_window(self._label, [1], Window(x, y, size, size))
            label = self._labels(raw[0], labelled)
        return _outside_region(label, region, y, IGNORE_INDEX)

    def read(self, region: Region, y: int, x: int, size: int) -> Sample:
        """Image values, validity and labels of the ``size``-square window at ``(y, x)``."""
        self._open()
        if self._cached is not None:
            values = _slice(self._cached[0], y, x, size, 0).astype(np.float32)
            valid = _slice(self._cached[1], y, x, size, False)
            label = _slice(self._cached[2], y, x, size, IGNORE_INDEX)
        else:
            values, valid = read_window(self._image, self._indexes, Window(x, y, size, size))
            raw, labelled = read_window(self._label, [1], Window(x, y, size, size))
            label = self._labels(raw[0], labelled)
        valid = _outside_region(valid, region, y, False)
        values[:, ~valid] = 0.0
        label = np.where(valid, _outside_region(label, region, y, IGNORE_INDEX), IGNORE_INDEX).astype(np.uint8)
        return Sample(values, valid, label)

    def close(self) -> None:
        for handle in (self._image, self._label):
            if handle is not None:
                handle.close()
        self._image = self._label = None
        self._cached = None


def _check_grids(image: Any, label: Any, pair: Pair) -> None:
    if (label.width, label.height) != (image.width, image.height):
        raise SatVisionError(
            f"The label {pair.label.name} is {label.width}×{label.height} px but its image {pair.image.name} is "
            f"{image.width}×{image.height} px: labels must be on the image's grid."
        )


def label_classes(raw: np.ndarray, labelled: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    """Label values as uint8 class indices, :data:`IGNORE_INDEX` where unlabelled; fails on values
    that are neither a class index nor 255."""
    out = np.where(labelled, raw, IGNORE_INDEX)
    bad = (out != IGNORE_INDEX) & ((out < 0) | (out >= num_classes) | (out != np.round(out)))
    if bad.any():
        raise SatVisionError(
            f"The label {name} holds the value {out[bad].flat[0]:g}, which is no class index "
            f"(0…{num_classes - 1}) and not {IGNORE_INDEX} (ignore). Recode it or set it as the label's nodata."
        )
    return out.astype(np.uint8)


def _slice(array: np.ndarray, y: int, x: int, size: int, fill: Any) -> np.ndarray:
    """``array[..., y:y+size, x:x+size]`` padded with ``fill`` where the window leaves the array."""
    height, width = array.shape[-2:]
    out = np.full((*array.shape[:-2], size, size), fill, dtype=array.dtype)
    top, left, bottom, right = max(y, 0), max(x, 0), min(y + size, height), min(x + size, width)
    if bottom > top and right > left:
        out[..., top - y : bottom - y, left - x : right - x] = array[..., top:bottom, left:right]
    return out


def _outside_region(array: np.ndarray, region: Region, y: int, fill: Any) -> np.ndarray:
    """``array`` (a window starting at row ``y``) with rows outside the region set to ``fill``."""
    size = array.shape[-2]
    above, below = max(0, region.row_start - y), max(0, y + size - region.row_stop)
    if above or below:
        array = array.copy()
        array[..., : min(above, size), :] = fill
        if below:
            array[..., size - min(below, size) :, :] = fill
    return array


class _CacheBudget:
    """Bytes of whole-image cache a process may still use."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, nbytes: int) -> bool:
        if nbytes <= self.left:
            self.left -= nbytes
            return True
        return False


class PatchSource:
    """Reads windows of any region of a set of pairs; picklable (readers reopen in each process)."""

    def __init__(self, bands: Sequence[str], num_classes: int = 2, cache_bytes: int = 512 * 2**20) -> None:
        self.bands = list(bands)
        self.num_classes = num_classes
        self.cache_bytes = cache_bytes
        self._readers: dict[Pair, PairReader] = {}
        self._budget = _CacheBudget(cache_bytes)

    def reader(self, pair: Pair) -> PairReader:
        if pair not in self._readers:
            self._readers[pair] = PairReader(pair, self.bands, self.num_classes, self._budget)
        return self._readers[pair]

    def close(self) -> None:
        """Close every open raster (before the process or QGIS shuts GDAL down) and drop caches."""
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
        self._budget = _CacheBudget(self.cache_bytes)

    def check(self, pairs: Sequence[Pair]) -> None:
        """Fail early, naming the file, when a pair lacks a band or its grids differ."""
        for pair in pairs:
            with open_raster(pair.image) as image, open_raster(pair.label) as label:
                select_bands(image, self.bands)
                _check_grids(image, label, pair)

    def __getstate__(self) -> dict:
        return {"bands": self.bands, "num_classes": self.num_classes, "cache_bytes": self.cache_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)


# --------------------------------------------------------------------------- patches


@dataclass(frozen=True)
class PatchSettings:
    """Random training patches: side, the water fraction window, and how hard to look for it."""

    size: int = 256
    min_water: float = 0.3
    max_water: float = 0.7
    max_tries: int = 20
    min_labelled: float = 0.5  # a candidate with fewer labelled pixels is only taken as a last resort
    unfiltered: float = 0.0  # share of patches drawn without the water-fraction window (any content)
    weighting: str = "area"  # how a patch's image is chosen: "area" (by pixels) or "scene" (each image alike)

    def __post_init__(self) -> None:
        if self.size < 8:
            raise SatVisionError(f"The patch size must be at least 8 px, not {self.size}.")
        if not 0.0 <= self.unfiltered <= 1.0:
            raise SatVisionError(f"The share of unfiltered patches must lie between 0 and 1, not {self.unfiltered}.")
        if not 0.0 <= self.min_water <= self.max_water <= 1.0:
            raise SatVisionError(f"The water fraction bounds must satisfy 0 ≤ min ≤ max ≤ 1 (got {self.min_water}, {self.max_water}).")
        if self.max_tries < 1:
            raise SatVisionError("max_tries must be at least 1.")
        if self.weighting not in PATCH_WEIGHTINGS:
            raise SatVisionError(f"Unknown patch weighting {self.weighting!r}; choose one of {', '.join(PATCH_WEIGHTINGS)}.")


def water_fraction(label: np.ndarray) -> tuple[float, float]:
    """``(fraction of labelled pixels that are foreground, fraction of pixels labelled)``."""
    labelled = label != IGNORE_INDEX
    count = int(labelled.sum())
    if count == 0:
        return 0.0, 0.0
    return float(((label > 0) & labelled).sum()) / count, count / label.size


def sample_patch(source: PatchSource, regions: Sequence[Region], settings: PatchSettings, rng: np.random.Generator) -> tuple[Sample, float]:
    """A random patch (region chosen by area) whose water fraction lies in the settings' window
    (or, for a share ``unfiltered`` of patches, any patch: scenes are mostly land, and a model
    that only ever saw 30–70 % water, or UNet 3+'s tile classifier, needs to see that too).

    Up to ``max_tries`` candidate windows are drawn; the first inside the window is taken, else the
    one closest to it. Only labels are read for candidates; the image only for the chosen one.
    Returns the sample and its water fraction.

    With ``weighting="area"`` every candidate draws its image anew, by pixel count (the origin notebook's way:
    one large image then supplies nearly every patch, and the water window favours watery images).
    With ``"scene"`` the image is drawn first, each image of the split alike (weighted by the share
    of it in ``regions``), and all candidates come from it: a small snow or burn-scar image gets
    as many patches as a large coastal one.
    """
    size = settings.size
    low, high = (0.0, 1.0) if settings.unfiltered and rng.random() < settings.unfiltered else (settings.min_water, settings.max_water)
    weights = _region_weights(regions, settings.weighting)
    chosen = regions[int(rng.choice(len(regions), p=weights))] if settings.weighting == "scene" else None
    best: tuple[float, Region, int, int, float] | None = None
    for _ in range(settings.max_tries):
        region = chosen or regions[int(rng.choice(len(regions), p=weights))]
        y = region.row_start + int(rng.integers(0, max(0, region.rows - size) + 1))
        x = int(rng.integers(0, max(0, region.width - size) + 1))
        fraction, labelled = water_fraction(source.reader(region.pair).label_window(region, y, x, size))
        distance = max(low - fraction, fraction - high, 0.0)
        if labelled < settings.min_labelled:
            distance += 1.0 + (1.0 - labelled)
        if best is None or distance < best[0]:
            best = (distance, region, y, x, fraction)
        if distance == 0.0:
            break
    if best is None:  # PatchSettings refuses max_tries < 1, so a candidate was always drawn
        raise SatVisionError("No training patch could be drawn (max_tries must be at least 1).")
    _, region, y, x, fraction = best
    return source.reader(region.pair).read(region, y, x, size), fraction


def _region_weights(regions: Sequence[Region], weighting: str) -> np.ndarray:
    """Probabilities of drawing each region: by pixels, or each image alike (its regions by pixels)."""
    pixels = np.array([region.pixels for region in regions], dtype=np.float64)
    if weighting == "scene":
        per_image: dict[Pair, float] = {}
        for region, count in zip(regions, pixels):
            per_image[region.pair] = per_image.get(region.pair, 0.0) + count
        pixels = np.array([count / per_image[region.pair] for region, count in zip(regions, pixels)])
    return pixels / pixels.sum()


def tile_grid(regions: Sequence[Region], size: int) -> list[tuple[int, int, int]]:
    """``(region index, y, x)`` of a non-overlapping grid of ``size`` tiles covering every region
    (edge tiles padded with ignore), so each labelled pixel is counted exactly once."""
    tiles = []
    for index, region in enumerate(regions):
        for y in range(region.row_start, region.row_stop, size):
            for x in range(0, region.width, size):
                tiles.append((index, y, x))
    return tiles
