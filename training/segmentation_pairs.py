"""Segmentation training data, part one: image/label GeoTIFF pairs and their train/validation/test split.

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

Patches are drawn by :mod:`training.segmentation_sampling` and served to torch by
:mod:`training.segmentation_datasets`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.errors import SatVisionError
from ..core.raster import Grid, grid_of, open_raster
from .segmentation_settings import SPLIT_MODES

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
    by_place: bool = False  # whole images, kept together by grid and placed by name (``mode="place"``)
    why_rows: str = ""  # why images were split into row bands when another split was asked for

    def describe(self) -> str:
        if self.by_place:
            return (f"split by place (images on one grid kept together, each place's part fixed by its name and the seed, "
                    f"about 70/15/15): {len(self.train)} train, {len(self.validation)} validation, {len(self.test)} test images")
        if self.by_image:
            return (f"split by image (seeded 70/15/15): {len(self.train)} train, {len(self.validation)} validation, "
                    f"{len(self.test)} test images")
        reason = f" because {self.why_rows}" if self.why_rows else ""
        return f"{len(self.train)} image(s) each split into horizontal row bands (70/15/15 from the top){reason}"

    def part(self, name: str) -> list[Region]:
        parts = {"train": self.train, "validation": self.validation, "test": self.test}
        if name == "all":
            return self.train + self.validation + self.test
        if name not in parts:
            raise SatVisionError(f"Unknown split {name!r}; choose all, train, validation or test.")
        return parts[name]


def raster_grid(path: Path) -> Grid:
    """Where a raster's pixels lie (CRS, transform, size), from its header."""
    with open_raster(path) as dataset:
        return grid_of(dataset)


def split_pairs(pairs: Sequence[Pair], seed: int = 0, fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
                mode: str = "image") -> Split:
    """A reproducible train/validation/test split by image, by place (``mode="place"``) or by row
    bands (``mode="rows"``, and always with under 3 images or places).

    Splitting by rows keeps every image in training (its top 70 %), which matters when a few small
    images carry a kind of scene (snow, a burn scar) that no other image has. Splitting by place
    keeps the images of one grid (the L1C and L2A of one acquisition) in one part, so a test place
    was never trained on at another processing level, and fixes each place's part by its name and
    the seed alone (:func:`name_share`), so adding images to the data never moves the others
    (the split by image reshuffles them all).
    """
    if mode not in SPLIT_MODES:
        raise SatVisionError(f"Unknown split {mode!r}; choose one of {', '.join(SPLIT_MODES)}.")
    if not pairs:
        raise SatVisionError("No training pairs were given.")
    ordered = sorted(pairs, key=lambda pair: (str(pair.image), str(pair.label)))
    grids = {pair: raster_grid(pair.image) for pair in ordered}
    sizes = {pair: (grid.width, grid.height) for pair, grid in grids.items()}

    def whole(pair: Pair) -> Region:
        width, height = sizes[pair]
        return Region(pair, 0, height, width, height)

    places = place_groups(ordered, grids) if mode == "place" else []
    if len(places) >= 3:
        parts = split_places(places, seed, fractions)
        return Split(*([whole(pair) for group in part for pair in group] for part in parts), by_image=True, by_place=True)
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
    why = ("" if mode == "rows" else "fewer than 3 places (grids) were given" if mode == "place" and len(ordered) >= 3
           else "fewer than 3 images were given")
    return Split(train, validation, test, by_image=False, why_rows=why)


def place_groups(pairs: Sequence[Pair], grids: Mapping[Pair, Grid]) -> list[list[Pair]]:
    """The pairs grouped by the grid of their image (CRS, transform and size: one place, e.g. the L1C
    and L2A of one acquisition), in the order given; an image without a CRS is a place of its own."""
    groups: dict[Any, list[Pair]] = {}
    for pair in pairs:
        grid = grids[pair]
        key = (grid.crs.to_wkt(), tuple(grid.transform)[:6], grid.width, grid.height) if grid.crs else str(pair.image)
        groups.setdefault(key, []).append(pair)
    return list(groups.values())


def name_share(name: str, seed: int) -> float:
    """A number in [0, 1) fixed by ``name`` and ``seed`` alone (SHA-256): where a place falls in the split."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_places(places: Sequence[Sequence[Pair]], seed: int,
                 fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> tuple[list, list, list]:
    """Train, validation and test places (three or more): a place whose first image name has a
    :func:`name_share` under 0.70 trains, under 0.85 validates, else tests. A part left empty takes
    the place nearest its range from the largest part, so each part has one."""
    shares = {id(place): name_share(place[0].name, seed) for place in places}
    bounds = (0.0, fractions[0], fractions[0] + fractions[1], 1.0)
    parts: list[list] = [[], [], []]
    for place in places:
        share = shares[id(place)]
        parts[0 if share < bounds[1] else 1 if share < bounds[2] else 2].append(place)
    for empty in (index for index in (1, 2, 0) if not parts[index]):
        donor = max(parts, key=len)
        middle = (bounds[empty] + bounds[empty + 1]) / 2
        nearest = min(donor, key=lambda place: abs(shares[id(place)] - middle))
        donor.remove(nearest)
        parts[empty].append(nearest)
    return parts[0], parts[1], parts[2]


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


def region_json(region: Region) -> dict[str, Any]:
    return {"image": str(region.pair.image), "label": str(region.pair.label), "rows": [region.row_start, region.row_stop]}
