"""Decide the pixels a water label left undecided, with a teacher model that sees more bands.

The label rule (:mod:`training.water_label_builder`) marks what it cannot decide as ignore (255):
shores and marsh, lakes under cloud shadow, dark forest, the edges of turbid water. A loss never
sees those pixels, yet they are the ones a model without SWIR gets wrong. The 6-band model decides
many of them with B11 and B12, where water is dark and wet soil, shadow and forest are not; a
4-band model trained on its confident decisions learns from them (distillation on the undecided
pixels only). Labelled pixels never change, and neither does anything outside the image's valid
area or where the teacher is unsure: it stays ignore.

    from satvision.training.teacher_labels import teach_labels
    teach_labels(".build/water_data", "resources/models/water-default-6band.safetensors", ".build/water_data_taught")
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path
from ..core.bands import match_bands
from ..core.errors import OperationCancelled, SatVisionError
from ..core.feedback import Feedback, SilentFeedback
from ..core.raster import Grid, band_descriptions, grid_of, open_raster, write_geotiff
from .segmentation_pairs import find_pairs
from .water_label_builder import BANDS, IGNORE, LAND, WATER, reconcile_levels

DEFAULT_CONFIDENCE = 0.9  #: a teacher probability at or above this is water, at or below 1 - this land


@dataclass(frozen=True)
class FilledCounts:
    """Pixels of one label: undecided before, and how many of them the teacher decided."""

    undecided: int
    to_water: int
    to_land: int

    @property
    def still_undecided(self) -> int:
        return self.undecided - self.to_water - self.to_land


@dataclass(frozen=True)
class TaughtPair:
    name: str
    image: Path
    label: Path
    review: Path
    pixels: int
    counts: FilledCounts


def check_confidence(confidence: float) -> None:
    """Refuse a confidence that would let one probability mean both water and land, or neither ever."""
    if not 0.5 < confidence <= 1.0:
        raise SatVisionError(f"The teacher's confidence must be above 0.5 and at most 1 (got {confidence:g}).")


def fill_undecided(label: np.ndarray, probability: np.ndarray,
                   confidence: float = DEFAULT_CONFIDENCE) -> tuple[np.ndarray, FilledCounts]:
    """``label`` with its undecided (255) pixels set to water where ``probability`` (the teacher's water
    probability; negative where the image has no data) is at least ``confidence`` and to land where it is
    at most ``1 - confidence``; every other pixel as it was."""
    check_confidence(confidence)
    if label.shape != probability.shape:
        raise SatVisionError(f"The label ({label.shape}) and the teacher's probability ({probability.shape}) differ in size.")
    valid = probability >= 0
    undecided = (label == IGNORE) & valid
    out = label.copy()
    out[undecided & (probability >= confidence)] = WATER
    out[undecided & (probability <= 1.0 - confidence)] = LAND
    return out, _counts(label, out, valid)


def teach_labels(data: str | Path, teacher: str | Path, output: str | Path, *, confidence: float = DEFAULT_CONFIDENCE,
                 device: str = "auto", batch_size: int = 4, feedback: Feedback | None = None) -> list[TaughtPair]:
    """Write ``output/images`` (the images of ``data``, unchanged), ``output/labels`` (their labels with
    the undecided pixels the teacher is sure of decided), ``output/review/NAME.png`` (true colour | label
    before | label after) and ``output/summary.tsv``.

    ``data`` is a folder that :func:`training.segmentation_pairs.find_pairs` reads, whose images carry
    the teacher's bands as reflectance x 10000 without offset (what ``scripts/build_water_labels.py``
    writes). The teacher runs through the real engine, as the Segment water algorithm runs it. The L1C
    and L2A of one acquisition, which came with one label, keep one label: the two decisions are
    joined as the label builder joins them (:func:`training.water_label_builder.reconcile_levels`).
    """
    from ..inference.predictor import Predictor
    from ..inference.segment_engine import SegmentationSettings, segment_raster
    from ..models.modelfile import load_model

    check_confidence(confidence)  # before the teacher runs
    feedback = feedback or SilentFeedback()
    source, target = Path(data).resolve(), Path(output).resolve()
    if target == source or source in target.parents or target in source.parents:
        raise SatVisionError(f"The output {target} must be a folder apart from the data {source}: nothing is written over its input.")
    pairs = find_pairs(source)
    network, card = load_model(teacher, task="segmentation", device="cpu")
    predictor = Predictor(network, card, device)
    settings = SegmentationSettings(batch_size=batch_size, device=device, reflectance_offset=0.0)
    decided: list[_Decided] = []
    with tempfile.TemporaryDirectory(prefix="satvision-teacher-") as scratch:
        for number, pair in enumerate(pairs, start=1):
            if feedback.cancelled():
                raise OperationCancelled("Cancelled before any label was written.")
            feedback.info(f"[{number}/{len(pairs)}] {pair.image.name}")
            probability_path, mask_path = Path(scratch) / "probability.tif", Path(scratch) / "mask.tif"
            segment_raster(pair.image, predictor, probability_path, mask_path, settings)
            with open_raster(probability_path) as dataset:
                probability = dataset.read(1)
            decided.append(_decide(pair.image, pair.label, probability, confidence))
            feedback.progress(0.9 * number / len(pairs))
    _join_processing_levels(decided)
    for folder in ("images", "labels", "review"):
        (target / folder).mkdir(parents=True, exist_ok=True)
    taught = [_write_taught(item, target, card.name, confidence) for item in decided]
    _write_summary(target / "summary.tsv", taught, card.name, confidence)
    feedback.progress(1.0)
    return taught


@dataclass
class _Decided:
    image: Path
    label_path: Path
    label: np.ndarray
    filled: np.ndarray
    valid: np.ndarray
    grid: Grid
    tags: dict[str, str]
    level: str


def _decide(image: Path, label_path: Path, probability: np.ndarray, confidence: float) -> _Decided:
    with open_raster(label_path) as dataset:
        label, grid, tags = dataset.read(1), grid_of(dataset), dataset.tags()
    with open_raster(image) as dataset:
        level = dataset.tags().get("PROCESSING_LEVEL", "")
    filled, _ = fill_undecided(label, probability, confidence)
    return _Decided(image, label_path, label, filled, probability >= 0, grid, tags, level)


def _join_processing_levels(decided: list[_Decided]) -> None:
    """An L1C and an L2A image on one grid with one label are one acquisition: give them one decision."""
    for first in decided:
        for second in decided:
            if (first.level, second.level) == ("L1C", "L2A") and first.grid == second.grid \
                    and np.array_equal(first.label, second.label):
                joined = reconcile_levels(first.filled, second.filled)
                first.filled = np.where(first.valid, joined, first.filled).astype(np.uint8)
                second.filled = np.where(second.valid, joined, second.filled).astype(np.uint8)


def _write_taught(item: _Decided, target: Path, teacher: str, confidence: float) -> TaughtPair:
    from .water_label_review import write_teacher_review_png

    counts = _counts(item.label, item.filled, item.valid)
    image_out = target / "images" / item.image.name
    with atomic_path(image_out) as temporary:
        shutil.copyfile(item.image, temporary)
    label_out = target / "labels" / item.label_path.name
    tags = {**item.tags, "TEACHER": teacher, "TEACHER_CONFIDENCE": f"{confidence:g}",
            "TEACHER_WATER": str(counts.to_water), "TEACHER_LAND": str(counts.to_land)}
    with write_geotiff(label_out, item.grid, 1, "uint8", nodata=IGNORE, band_names=["water"], tags=tags) as out:
        out.write(item.filled[None])
    with open_raster(item.image) as dataset:
        values = dataset.read(match_bands(BANDS, band_descriptions(dataset), source=f"the image {item.image.name}"))
    review = write_teacher_review_png(target / "review" / f"{item.image.stem}.png",
                                      _title(item.image.stem, counts, item.label.size), values, item.valid,
                                      item.label, item.filled)
    return TaughtPair(item.image.stem, image_out, label_out, review, int(item.label.size), counts)


def _counts(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> FilledCounts:
    undecided = (before == IGNORE) & valid
    return FilledCounts(int(undecided.sum()), int((undecided & (after == WATER)).sum()),
                        int((undecided & (after == LAND)).sum()))


def _title(name: str, counts: FilledCounts, pixels: int) -> str:
    def share(count: int) -> str:
        return f"{100 * count / max(pixels, 1):.1f}%"
    return (f"{name}: undecided {share(counts.undecided)}, teacher: water {share(counts.to_water)}, "
            f"land {share(counts.to_land)}, still undecided {share(counts.still_undecided)}")


def _write_summary(path: Path, taught: list[TaughtPair], teacher: str, confidence: float) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["name", "pixels", "undecided", "to_water", "to_land", "still_undecided", "teacher", "confidence"])
        for pair in taught:
            counts = pair.counts
            writer.writerow([pair.name, pair.pixels, counts.undecided, counts.to_water, counts.to_land,
                             counts.still_undecided, teacher, f"{confidence:g}"])
