"""Segmentation training data: image/label GeoTIFF pairs, a split, random patches, validation tiles.

Pairs come from a folder with ``images/`` and ``labels/`` holding files of the same names, or
from a manifest (CSV with columns ``image,label``, or a JSON list of ``{"image", "label"}``;
paths relative to the manifest), which is what the Earth Engine exporter writes. Datasets whose
image and label names differ by a fixed suffix (Sen1Floods11: ``<chip>_S2Hand.tif`` and
``<chip>_LabelHand.tif``) are paired by the name without that suffix: give ``image_suffix`` and
``label_suffix`` (the CLI's ``--image-suffix _S2Hand --label-suffix _LabelHand``). The rule is
explicit, never guessed: a name that does not end with its suffix, or a label that is missing or
found twice, is an error that says so.

Labels are one band of class indices (0 background, 1 water, …). The value 255, the label's
nodata, and every pixel where the image has no data are ignored (:data:`IGNORE_INDEX`).

The split is 70/15/15 **by image**, seeded, so pixels of one scene never serve both training and
validation. With fewer than three images that is impossible, so each image is instead cut into
three horizontal bands of rows (70/15/15 from the top): spatially disjoint, so validation still
measures pixels the network never trained on, though from the same scene (an optimistic estimate).

Training draws random patches whose water fraction lies in ``[min_water, max_water]`` (the seed
used 30–70 %) by rejection sampling with a bounded number of tries, taking the closest candidate
when none fits. Validation does *not* filter: it tiles each validation region with a fixed grid of
non-overlapping patches (deterministic, every labelled pixel counted exactly once), so the
metrics describe whole scenes as the plugin will see them, not the balanced patches training
prefers. Everything is read by windows; small images are cached in memory.
"""

from __future__ import annotations

import csv
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from ..core.errors import SatVisionError
from ..core.raster import grid_of, open_raster, read_window, select_bands

IGNORE_INDEX = 255
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")
MANIFEST_NAMES = ("manifest.json", "manifest.csv")


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Pair:
    """An image and its label raster, on the same grid."""

    image: Path
    label: Path

    @property
    def name(self) -> str:
        return self.image.stem


def find_pairs(source: str | os.PathLike[str], image_suffix: str = "", label_suffix: str = "") -> list[Pair]:
    """Image/label pairs from a folder (``images/`` + ``labels/``, or a manifest in it) or a manifest file.

    In ``images/`` + ``labels/`` folders an image ``NAME{image_suffix}.EXT`` pairs with the label
    ``NAME{label_suffix}.EXT2`` (any raster extension); without suffixes the names are the same.
    """
    path = Path(source)
    if path.is_file():
        _refuse_suffixes_with_manifest(path, image_suffix, label_suffix)
        return read_manifest(path)
    if not path.is_dir():
        raise SatVisionError(f"The training data {path} does not exist. Give a folder with images/ and labels/, or a manifest (.csv/.json).")
    images, labels = path / "images", path / "labels"
    if images.is_dir() and labels.is_dir():
        return _pairs_from_folders(images, labels, image_suffix, label_suffix)
    for name in MANIFEST_NAMES:
        if (path / name).is_file():
            _refuse_suffixes_with_manifest(path / name, image_suffix, label_suffix)
            return read_manifest(path / name)
    raise SatVisionError(
        f"{path} has no images/ and labels/ subfolders and no {' or '.join(MANIFEST_NAMES)}. Put the image "
        "GeoTIFFs in images/ and the label GeoTIFFs with the same names in labels/, or give a manifest."
    )


def _refuse_suffixes_with_manifest(manifest: Path, image_suffix: str, label_suffix: str) -> None:
    if image_suffix or label_suffix:
        raise SatVisionError(
            f"Name suffixes pair images/ with labels/ folders, but {manifest.name} is a manifest that lists each pair "
            "already: leave out --image-suffix/--label-suffix."
        )


def _rasters(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and not p.name.startswith("."))


def _shown(names: Sequence[str]) -> str:
    return ", ".join(names[:5]) + (f" … (+{len(names) - 5})" if len(names) > 5 else "")


def _pairs_from_folders(images: Path, labels: Path, image_suffix: str = "", label_suffix: str = "") -> list[Pair]:
    image_files = _rasters(images)
    if not image_files:
        raise SatVisionError(f"{images} holds no rasters ({', '.join(RASTER_SUFFIXES)}).")
    if not image_suffix and not label_suffix:
        missing = [p.name for p in image_files if not (labels / p.name).is_file()]
        if missing:
            raise SatVisionError(
                f"{len(missing)} image(s) in {images} have no label of the same name in {labels}: {_shown(missing)}."
                + _suffix_hint(image_files, _rasters(labels))
            )
        return [Pair(p, labels / p.name) for p in image_files]
    unsuffixed = [p.name for p in image_files if not p.stem.endswith(image_suffix)]
    if unsuffixed:
        raise SatVisionError(
            f"{len(unsuffixed)} image(s) in {images} do not end with the image suffix {image_suffix!r}: {_shown(unsuffixed)}. "
            "Give the suffix every image name ends with (before the extension) as --image-suffix, or move other files away."
        )
    by_stem: dict[str, list[Path]] = {}
    for label in _rasters(labels):
        by_stem.setdefault(label.stem, []).append(label)
    pairs, missing = [], []
    for image in image_files:
        key = image.stem[: len(image.stem) - len(image_suffix)] if image_suffix else image.stem
        found = by_stem.get(key + label_suffix, [])
        if len(found) > 1:
            raise SatVisionError(
                f"The image {image.name} matches {len(found)} labels in {labels} ({', '.join(p.name for p in found)}): "
                "keep one raster per label name."
            )
        if not found:
            missing.append(f"{image.name} (looked for {key + label_suffix}.*)")
        else:
            pairs.append(Pair(image, found[0]))
    if missing:
        raise SatVisionError(
            f"{len(missing)} image(s) in {images} have no label in {labels} under the rule image NAME{image_suffix} -> "
            f"label NAME{label_suffix}: {_shown(missing)}. Check --image-suffix and --label-suffix."
        )
    return pairs


def _suffix_hint(image_files: Sequence[Path], label_files: Sequence[Path]) -> str:
    """The ``--image-suffix/--label-suffix`` that would pair these folders, when the names differ
    only by one suffix after their last underscore (as Sen1Floods11's ``_S2Hand``/``_LabelHand``)."""

    def split(files: Sequence[Path]) -> tuple[set[str], set[str]]:
        parts = [p.stem.rpartition("_") for p in files]
        return {head for head, sep, _ in parts if sep}, {sep + tail for _, sep, tail in parts if sep}

    image_keys, image_suffixes = split(image_files)
    label_keys, label_suffixes = split(label_files)
    if len(image_suffixes) == 1 and len(label_suffixes) == 1 and image_keys and image_keys <= label_keys:
        return (f" The names differ by a suffix: pair them with --image-suffix {next(iter(image_suffixes))} "
                f"--label-suffix {next(iter(label_suffixes))}.")
    return " Give labels the image's file name, or pair names that differ by a suffix with --image-suffix/--label-suffix."


def read_manifest(path: Path) -> list[Pair]:
    """Pairs listed in a CSV (``image,label`` columns) or JSON (list of objects) manifest."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise SatVisionError(f"Cannot read the manifest {path}: {error.strerror}.") from error
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or not {"image", "label"} <= {name.strip() for name in reader.fieldnames}:
            raise SatVisionError(f"The manifest {path.name} needs the columns image,label (found: {reader.fieldnames}).")
        rows: list[Any] = [{key.strip(): value for key, value in row.items() if key} for row in reader]
    elif suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise SatVisionError(f"The manifest {path.name} is not valid JSON ({error}).") from error
        if isinstance(rows, dict) and isinstance(rows.get("pairs"), list):
            rows = rows["pairs"]
        if not isinstance(rows, list):
            raise SatVisionError(f"The manifest {path.name} must be a JSON list of {{\"image\": …, \"label\": …}} objects.")
    else:
        raise SatVisionError(f"Unknown manifest format {path.name}: use .csv (columns image,label) or .json.")
    pairs = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("image") or not row.get("label"):
            raise SatVisionError(f"Entry {number} of the manifest {path.name} lacks an image or a label path.")
        image, label = (path.parent / str(row["image"]).strip(), path.parent / str(row["label"]).strip())
        for kind, file in (("image", image), ("label", label)):
            if not file.is_file():
                raise SatVisionError(f"The {kind} {file} listed in the manifest {path.name} (entry {number}) does not exist.")
        pairs.append(Pair(image, label))
    if not pairs:
        raise SatVisionError(f"The manifest {path.name} lists no pairs.")
    return pairs


# --------------------------------------------------------------------------- split


@dataclass(frozen=True)
class Region:
    """Rows ``[row_start, row_stop)`` of a pair's image (the whole image when splitting by image)."""

    pair: Pair
    row_start: int
    row_stop: int
    width: int
    height: int  # of the whole image

    @property
    def rows(self) -> int:
        return self.row_stop - self.row_start

    @property
    def pixels(self) -> int:
        return self.rows * self.width


@dataclass(frozen=True)
class Split:
    train: list[Region]
    validation: list[Region]
    test: list[Region]
    by_image: bool

    def describe(self) -> str:
        if self.by_image:
            return (f"split by image (seeded 70/15/15): {len(self.train)} train, {len(self.validation)} validation, "
                    f"{len(self.test)} test images")
        reason = " because fewer than 3 images were given" if len(self.train) < 3 else ""
        return f"{len(self.train)} image(s) each split into horizontal row bands (70/15/15 from the top){reason}"

    def part(self, name: str) -> list[Region]:
        parts = {"train": self.train, "validation": self.validation, "test": self.test}
        if name == "all":
            return self.train + self.validation + self.test
        if name not in parts:
            raise SatVisionError(f"Unknown split {name!r}; choose all, train, validation or test.")
        return parts[name]


def raster_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a raster, from its header."""
    with open_raster(path) as dataset:
        return dataset.width, dataset.height


SPLIT_MODES = ("image", "rows")


def split_pairs(pairs: Sequence[Pair], seed: int = 0, fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
                mode: str = "image") -> Split:
    """A reproducible train/validation/test split by image, or by row bands (``mode="rows"``, and
    always with under 3 images).

    Splitting by rows keeps every image in training (its top 70 %), which matters when a few small
    images carry a kind of scene (snow, a burn scar) that no other image has.
    """
    if mode not in SPLIT_MODES:
        raise SatVisionError(f"Unknown split {mode!r}; choose one of {', '.join(SPLIT_MODES)}.")
    if not pairs:
        raise SatVisionError("No training pairs were given.")
    ordered = sorted(pairs, key=lambda pair: (str(pair.image), str(pair.label)))
    sizes = {pair: raster_size(pair.image) for pair in ordered}

    def whole(pair: Pair) -> Region:
        width, height = sizes[pair]
        return Region(pair, 0, height, width, height)

    if len(ordered) >= 3 and mode == "image":
        random.Random(seed).shuffle(ordered)  # nosec B311 - a seeded data split, not security
        count = len(ordered)
        n_val = max(1, round(count * fractions[1]))
        n_test = max(1, round(count * fractions[2]))
        n_train = count - n_val - n_test
        return Split(
            train=[whole(p) for p in ordered[:n_train]],
            validation=[whole(p) for p in ordered[n_train : n_train + n_val]],
            test=[whole(p) for p in ordered[n_train + n_val :]],
            by_image=True,
        )
    train, validation, test = [], [], []
    for pair in ordered:
        width, height = sizes[pair]
        first = round(height * fractions[0])
        second = round(height * (fractions[0] + fractions[1]))
        if not 0 < first < second < height:
            raise SatVisionError(f"{pair.image.name} has only {height} rows, too few to split into train/validation/test bands.")
        train.append(Region(pair, 0, first, width, height))
        validation.append(Region(pair, first, second, width, height))
        test.append(Region(pair, second, height, width, height))
    return Split(train, validation, test, by_image=False)


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


PATCH_WEIGHTINGS = ("area", "scene")


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

    With ``weighting="area"`` every candidate draws its image anew, by pixel count (the seed's way:
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


def reflectance_statistics(patches: TrainPatches, count: int, reflectance_scale: float) -> tuple[list[float], list[float]]:
    """Per-band mean/std of reflectance (``value / reflectance_scale``) over ``count`` unaugmented
    training patches (epoch 0's first patches: deterministic for a seed)."""
    statistics = BandStatistics(len(patches.source.bands))
    for index in range(max(1, count)):
        sample, _ = patches.sample(index)
        statistics.add(sample.values / float(reflectance_scale), sample.valid)
    return statistics.mean_std()


def ground_sample_distance(pairs: Sequence[Pair]) -> float:
    """The images' pixel size in metres (the first image's; all must agree within 2 %).

    Geographic grids are converted at their centre latitude (an estimate: inference resamples such
    rasters to UTM at this distance).
    """
    import math

    from ..core.resampling import grid_centre_lonlat

    sizes = []
    for pair in pairs:
        with open_raster(pair.image) as dataset:
            grid = grid_of(dataset)
        width, height = grid.pixel_size
        if grid.crs.is_geographic:
            _, latitude = grid_centre_lonlat(grid)
            width = width * 111_320.0 * math.cos(math.radians(latitude))
            height = height * 110_574.0
        elif grid.crs.linear_units_factor[1] != 1.0:
            factor = grid.crs.linear_units_factor[1]
            width, height = width * factor, height * factor
        sizes.append(((width + height) / 2, pair))
    first = sizes[0][0]
    for size, pair in sizes:
        if abs(size - first) / first > 0.02:
            raise SatVisionError(
                f"The images have different pixel sizes ({first:g} m in {sizes[0][1].image.name}, {size:g} m in "
                f"{pair.image.name}). Resample them to one ground sample distance, or give it explicitly (--gsd)."
            )
    return round(first, 3)
