"""Water figures of a segmentation model against hand labels, beside the NDWI > 0 baseline.

This is the measurement side of ``satvision evaluate segmentation`` (the engine run itself lives
in :func:`training.segmentation_evaluate.evaluate_segmentation`):

- **Label conventions.** :class:`LabelConvention` turns raw label values into water / not water /
  ignored. The project's convention is 0 land, 1 water, 255 ignore, and any other value is an
  error (a JRC-style 1 land / 2 water label must never be read silently as "1 = water"). With a
  value map (``--water-values 1,2``) the listed values are water and every other labelled value
  is not water. Ignore values (``--ignore-value -1``, repeatable; default 255) and the label's
  nodata are never counted.
- **Counted pixels.** A pixel counts when the label counts it, the model's output covers it
  (the engine's mask is not nodata) and the NDWI baseline is defined there (B3 and B8 valid):
  the model and NDWI are always scored on exactly the same pixels.
- **Figures.** Water IoU, precision and recall, *pooled* (true/false positives and negatives summed
  over the images, then one ratio) and *mean per image* (the mean of each image's ratio over
  the images where it is defined: an image with no water in label nor prediction has no IoU).
- **Baseline.** NDWI = (B3 − B8) / (B3 + B8) > 0 on the raw values (the ratio is scale-free),
  B3 and B8 located by band description; where B3 + B8 = 0 it is not water.

Everything is read in blocks of rows, so memory follows the raster's width, never its size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from ..core.errors import BandMismatchError, SatVisionError
from ..core.raster import open_raster, read_window, select_bands
from .metrics import SegmentationMetrics
from .segmentation_pairs import IGNORE_INDEX, Region

DEFAULT_WATER_VALUES = (1.0,)
DEFAULT_LAND_VALUES = (0.0,)
DEFAULT_IGNORE_VALUES = (float(IGNORE_INDEX),)
NDWI_BANDS = ("B3", "B8")
BLOCK_ROWS = 256
PICTURE_SIDE = 768
#: Grids whose transforms differ by less than this share of a pixel are the same grid.
GRID_TOLERANCE = 1e-3

# what a picture shows per pixel
LABEL_IGNORED, LABEL_LAND, LABEL_WATER = 0, 1, 2


def _number_text(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class LabelConvention:
    """Which raw label values are water, which are ignored, and what the others are.

    ``value_map`` False is the project's strict convention: ``land_values`` are not water and any
    value outside water, land and ignore is refused. ``value_map`` True: every labelled value
    that is neither water nor ignored is not water.
    """

    water_values: tuple[float, ...] = DEFAULT_WATER_VALUES
    ignore_values: tuple[float, ...] = DEFAULT_IGNORE_VALUES
    value_map: bool = False
    land_values: tuple[float, ...] = DEFAULT_LAND_VALUES

    @classmethod
    def from_options(cls, water_values: Sequence[float] | None = None,
                     ignore_values: Sequence[float] | None = None) -> "LabelConvention":
        """The convention of the CLI options: none given is the project's 0 / 1 / 255."""
        water = tuple(float(v) for v in water_values) if water_values else DEFAULT_WATER_VALUES
        ignore = tuple(float(v) for v in ignore_values) if ignore_values else DEFAULT_IGNORE_VALUES
        both = sorted(set(water) & set(ignore))
        if both:
            raise SatVisionError(
                f"The label value(s) {', '.join(map(_number_text, both))} are given both as water (--water-values) "
                "and as ignored (--ignore-value): give each value once."
            )
        return cls(water, ignore, value_map=bool(water_values))

    def describe(self) -> str:
        water = ", ".join(map(_number_text, self.water_values))
        ignored = ", ".join(map(_number_text, self.ignore_values))
        land = ("every other labelled value" if self.value_map
                else ", ".join(map(_number_text, self.land_values)))
        return f"water = {water}; not water = {land}; ignored = {ignored} and the label's nodata"

    def to_json(self) -> dict[str, Any]:
        return {"water_values": list(self.water_values), "ignore_values": list(self.ignore_values),
                "not_water": "other labelled values" if self.value_map else list(self.land_values),
                "description": self.describe()}

    def targets(self, raw: np.ndarray, labelled: np.ndarray, name: str) -> np.ndarray:
        """uint8 targets: 1 water, 0 not water, :data:`IGNORE_INDEX` ignored or unlabelled."""
        counted = labelled & ~np.isin(raw, self.ignore_values)
        water = np.isin(raw, self.water_values)
        if not self.value_map:
            unknown = counted & ~water & ~np.isin(raw, self.land_values)
            if unknown.any():
                values = [_number_text(float(v)) for v in np.unique(raw[unknown])[:5]]
                value = values[0]
                raise SatVisionError(
                    f"The label {name} holds the value(s) {', '.join(values)}, which are neither water "
                    f"({', '.join(map(_number_text, self.water_values))}), land "
                    f"({', '.join(map(_number_text, self.land_values))}) nor ignored "
                    f"({', '.join(map(_number_text, self.ignore_values))}). Say what its values mean: "
                    f"--water-values V[,V…] lists the water values (every other labelled value is then not water) "
                    f"and --ignore-value {value} (repeatable) leaves a value out."
                )
        return np.where(counted, water, IGNORE_INDEX).astype(np.uint8)


@dataclass
class WaterCounts:
    """Confusion of one water prediction against the label on counted pixels."""

    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0
    true_negative: int = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        """Add boolean predictions and truths of counted pixels (same shape)."""
        predicted, truth = predicted.astype(bool), truth.astype(bool)
        self.true_positive += int(np.count_nonzero(predicted & truth))
        self.false_positive += int(np.count_nonzero(predicted & ~truth))
        self.false_negative += int(np.count_nonzero(~predicted & truth))
        self.true_negative += int(np.count_nonzero(~predicted & ~truth))

    def __add__(self, other: "WaterCounts") -> "WaterCounts":
        return WaterCounts(self.true_positive + other.true_positive, self.false_positive + other.false_positive,
                           self.false_negative + other.false_negative, self.true_negative + other.true_negative)

    @property
    def pixels(self) -> int:
        return self.true_positive + self.false_positive + self.false_negative + self.true_negative

    @property
    def iou(self) -> float:
        return _ratio(self.true_positive, self.true_positive + self.false_positive + self.false_negative)

    @property
    def precision(self) -> float:
        return _ratio(self.true_positive, self.true_positive + self.false_positive)

    @property
    def recall(self) -> float:
        return _ratio(self.true_positive, self.true_positive + self.false_negative)

    def figures(self) -> dict[str, Any]:
        return {"iou": self.iou, "precision": self.precision, "recall": self.recall,
                "true_positive": self.true_positive, "false_positive": self.false_positive,
                "false_negative": self.false_negative, "true_negative": self.true_negative, "pixels": self.pixels}


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


FIGURES = ("iou", "precision", "recall")
FIGURE_TITLES = {"iou": "IoU", "precision": "precision", "recall": "recall"}
PREDICTORS = ("model", "ndwi")


@dataclass
class ImageCounts:
    """The model's and the NDWI baseline's counts on one image (the same pixels)."""

    model: WaterCounts = field(default_factory=WaterCounts)
    ndwi: WaterCounts = field(default_factory=WaterCounts)

    def figures(self) -> dict[str, Any]:
        return {"model": self.model.figures(), "ndwi": self.ndwi.figures()}


def summarise(images: Sequence[ImageCounts]) -> dict[str, Any]:
    """``pooled`` (counts summed over images) and ``mean_per_image`` figures of model and NDWI."""
    result: dict[str, Any] = {"pooled": {}, "mean_per_image": {}}
    for predictor in PREDICTORS:
        counts = [getattr(image, predictor) for image in images]
        pooled = sum(counts, WaterCounts())
        result["pooled"][predictor] = pooled.figures()
        means: dict[str, Any] = {}
        for name in FIGURES:
            values = [getattr(count, name) for count in counts if not math.isnan(getattr(count, name))]
            means[name] = float(np.mean(values)) if values else math.nan
            means[f"{name}_images"] = len(values)
        result["mean_per_image"][predictor] = means
    return result


# --------------------------------------------------------------------------- reading


def default_model(images: Sequence[Path], bundled_dir: Path | None = None) -> tuple[Path, str]:
    """The bundled water model for all ``images`` and why: the 6-band model only when every image has
    its bands by description (one model is measured on them all), else the 4-band one."""
    from ..core.bands import normalise_band_name
    from ..models.catalog import BUNDLED_MODELS_DIR, default_water_candidates, default_water_model

    common: set[str] | None = None
    for image in images:
        with open_raster(image) as dataset:
            names = {normalise_band_name(text) for text in dataset.descriptions if text}
        common = names if common is None else common & names
    choice = default_water_model(sorted(common or ()), None, default_water_candidates(bundled_dir or BUNDLED_MODELS_DIR))
    return choice.path, choice.reason.replace("the raster has", "every image has" if len(images) > 1 else "the raster has")


def ndwi_band_indexes(dataset: Any) -> list[int] | None:
    """1-based indexes of B3 and B8 (by band description), None when the raster lacks them."""
    try:
        return select_bands(dataset, NDWI_BANDS)
    except BandMismatchError:
        return None


def ndwi_water(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """NDWI = (B3 − B8) / (B3 + B8) > 0, False where B3 + B8 = 0."""
    green, nir = green.astype(np.float64), nir.astype(np.float64)
    total = green + nir
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total != 0, (green - nir) / np.where(total != 0, total, 1), 0) > 0


def check_same_grid(output: Any, reference: Any, window: Window, what: str, against: str) -> None:
    """Fail unless ``output`` lies on ``window`` of ``reference``'s grid: same size, CRS and
    transform (within :data:`GRID_TOLERANCE` of a pixel)."""
    expected = window_transform(window, reference.transform)
    transform = reference.transform
    pixel = max(abs(transform.a), abs(transform.e), abs(transform.b), abs(transform.d))
    same_size = (output.width, output.height) == (int(window.width), int(window.height))
    same_transform = all(abs(a - b) <= GRID_TOLERANCE * pixel for a, b in zip(output.transform[:6], expected[:6]))
    if not (same_size and output.crs == reference.crs and same_transform):
        raise SatVisionError(
            f"{what} is not on {against}'s grid ({output.width}×{output.height} px in {output.crs}, origin "
            f"{output.transform.c:.10g}, {output.transform.f:.10g}, pixel {output.transform.a:.6g} × {output.transform.e:.6g}; "
            f"expected {int(window.width)}×{int(window.height)} px in {reference.crs}, origin {expected.c:.10g}, "
            f"{expected.f:.10g}, pixel {expected.a:.6g} × {expected.e:.6g}). Put the label on its image's grid "
            "(gdalwarp with the image's -t_srs, -te and -ts), then evaluate again."
        )


def check_pair_grid(region: Region) -> None:
    """Fail before any work unless the region's label lies on its image's grid."""
    with open_raster(region.pair.image) as image, open_raster(region.pair.label) as label:
        check_same_grid(label, image, Window(0, 0, image.width, image.height), f"The label {region.pair.label.name}",
                        f"its image {region.pair.image.name}")


def compare_image(region: Region, mask_path: Path, probability_path: Path, convention: LabelConvention,
                  metrics: SegmentationMetrics, picture: "PictureSampler | None" = None) -> tuple[ImageCounts, bool]:
    """Score the engine's outputs for ``region`` against its label, and NDWI on the same pixels.

    Adds the counted pixels to ``metrics`` (accuracy, class IoU, cross-entropy) and returns the
    water counts and whether the NDWI baseline could be computed (the image has B3 and B8).
    """
    from ..inference.segment_engine import MASK_NODATA

    counts = ImageCounts()
    with open_raster(region.pair.image) as image, open_raster(region.pair.label) as label, \
            open_raster(mask_path) as mask_file, open_raster(probability_path) as probability_file:
        region_window = Window(0, region.row_start, region.width, region.rows)
        check_same_grid(mask_file, label, region_window, f"The model output for {region.pair.image.name}",
                        f"the label {region.pair.label.name}")
        ndwi_indexes = ndwi_band_indexes(image)
        for top in range(0, region.rows, BLOCK_ROWS):
            rows = min(BLOCK_ROWS, region.rows - top)
            source = Window(0, region.row_start + top, region.width, rows)
            output = Window(0, top, region.width, rows)
            mask = mask_file.read(1, window=output)
            probability = probability_file.read(1, window=output)
            raw, labelled = read_window(label, [1], source)
            target = convention.targets(raw[0], labelled, region.pair.label.name)
            counted = (target != IGNORE_INDEX) & (mask != MASK_NODATA)
            ndwi = np.zeros(mask.shape, dtype=bool)
            if ndwi_indexes is not None:
                bands, valid = read_window(image, ndwi_indexes, source)
                counted &= valid
                ndwi = ndwi_water(bands[0], bands[1])
            truth = target == 1
            model = mask == 1
            metrics.update_from_probability(np.where(counted, mask, 0), np.where(counted, probability, 0),
                                            np.where(counted, target, IGNORE_INDEX))
            counts.model.add(model[counted], truth[counted])
            if ndwi_indexes is not None:
                counts.ndwi.add(ndwi[counted], truth[counted])
            if picture is not None:
                state = np.where(target == IGNORE_INDEX, LABEL_IGNORED, np.where(truth, LABEL_WATER, LABEL_LAND))
                picture.add(top, state.astype(np.uint8), counted, model, ndwi)
    return counts, ndwi_indexes is not None


# --------------------------------------------------------------------------- pictures


class PictureSampler:
    """Every ``step``-th pixel of a region's label, counted pixels and predictions, gathered block
    by block, so the picture of any raster costs at most ``max_side``² pixels of memory."""

    def __init__(self, width: int, rows: int, max_side: int = PICTURE_SIDE) -> None:
        self.step = max(1, math.ceil(max(width, rows) / max_side))
        self.shape = (math.ceil(rows / self.step), math.ceil(width / self.step))
        self.label = np.zeros(self.shape, dtype=np.uint8)
        self.counted = np.zeros(self.shape, dtype=bool)
        self.model = np.zeros(self.shape, dtype=bool)
        self.ndwi = np.zeros(self.shape, dtype=bool)

    def add(self, top: int, label: np.ndarray, counted: np.ndarray, model: np.ndarray, ndwi: np.ndarray) -> None:
        first = (-top) % self.step
        rows = slice(first, None, self.step)
        start = (top + first) // self.step
        picked = label[rows, :: self.step]
        target = slice(start, start + picked.shape[0])
        self.label[target] = picked
        self.counted[target] = counted[rows, :: self.step]
        self.model[target] = model[rows, :: self.step]
        self.ndwi[target] = ndwi[rows, :: self.step]

    def true_colour(self, region: Region) -> np.ndarray:
        """The region's B4/B3/B2 (or its first bands) at the sampler's size, stretched to [0, 1]."""
        from .plots import true_colour

        with open_raster(region.pair.image) as image:
            try:
                indexes, names = select_bands(image, ("B4", "B3", "B2")), ["B4", "B3", "B2"]
            except BandMismatchError:
                indexes = [min(i, image.count) for i in (1, 2, 3)]
                names = [f"band {i}" for i in indexes]
            window = Window(0, region.row_start, region.width, region.rows)
            values = image.read(indexes, window=window, out_shape=(len(indexes), *self.shape)).astype(np.float32)
            valid = np.all(image.read_masks(indexes, window=window, out_shape=(len(indexes), *self.shape)) > 0, axis=0)
        return true_colour(values, valid, names)


# --------------------------------------------------------------------------- text


def _cell(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def format_report(result: Mapping[str, Any]) -> str:
    """The text table of ``evaluate segmentation`` from its JSON object (see ``SegmentationEvaluation.to_json``)."""
    water = result["water"]
    has_ndwi = water.get("ndwi_baseline", True)
    lines = [
        f"Model {result['model_name']} ({result['model']}) on {len(result['per_image'])} image(s), "
        f"{water['pooled']['model']['pixels']} counted pixels (labelled, covered by the model's output, B3/B8 valid)",
        f"Labels: {water['labels']['description']}",
        *([f"Test-time augmentation: {water['test_time_augmentation']}"] if water.get("test_time_augmentation", "none") != "none" else []),
        "",
        f"{'water':<30}{'model':>9}{'NDWI>0':>9}",
    ]
    for scope, title in (("pooled", "pooled"), ("mean_per_image", "mean per image")):
        for name in FIGURES:
            model = water[scope]["model"][name]
            ndwi = water[scope]["ndwi"][name] if has_ndwi else None
            lines.append(f"{FIGURE_TITLES[name] + ', ' + title:<30}{_cell(model):>9}{_cell(ndwi):>9}")
    lines.append("")
    lines.append(f"{'image':<32}{'pixels':>10}{'water %':>9}   {'IoU model/NDWI':<16}{'precision':<16}recall")
    for item in result["per_image"]:
        model, ndwi = item["water"]["model"], item["water"]["ndwi"]
        share = 100 * (model["true_positive"] + model["false_negative"]) / model["pixels"] if model["pixels"] else math.nan
        cells = [f"{_cell(model[name])}/{_cell(ndwi[name] if has_ndwi else None)}" for name in FIGURES]
        lines.append((f"{Path(item['image']).name[:31]:<32}{model['pixels']:>10}{share:>9.1f}   "
                      + "".join(f"{cell:<16}" for cell in cells)).rstrip())
    fewer = [f"{'NDWI' if predictor == 'ndwi' else 'model'} {name} {water['mean_per_image'][predictor][name + '_images']} of "
             f"{len(result['per_image'])}" for predictor in PREDICTORS for name in FIGURES
             if (predictor == "model" or has_ndwi)
             and water["mean_per_image"][predictor][name + "_images"] < len(result["per_image"])]
    if fewer:
        lines.append(f"Means per image leave out images where a figure is undefined (IoU: no water in label nor prediction; "
                     f"precision: no predicted water; recall: no labelled water): {', '.join(fewer)} images.")
    if not has_ndwi:
        lines.append("NDWI baseline: n/a (the images lack bands described B3 and B8)")
    other = ", ".join(f"{name} {_cell(result.get(name))}" for name in ("accuracy", "mean_iou", "dice", "cross_entropy"))
    lines.append(f"Model, all classes (pooled): {other}")
    return "\n".join(lines)


def clean(values: Any) -> Any:
    """NaN → None, floats rounded to 6 digits, recursively (lists too)."""
    if isinstance(values, float):
        return None if math.isnan(values) else round(values, 6)
    if isinstance(values, Mapping):
        return {key: clean(value) for key, value in values.items()}
    if isinstance(values, (list, tuple)):
        return [clean(value) for value in values]
    return values


def picture_title(name: str, counts: ImageCounts, has_ndwi: bool) -> str:
    ndwi = f"{_cell(counts.ndwi.iou)}" if has_ndwi else "n/a"
    return (f"{name}: water IoU model {_cell(counts.model.iou)} (precision {_cell(counts.model.precision)}, "
            f"recall {_cell(counts.model.recall)}), NDWI>0 {ndwi}")
