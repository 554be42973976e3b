"""Evaluate a tile classifier on a folder of class sub-folders, through the inference engine.

The tiles go through the same code as ``satvision:classifytiles`` (:mod:`inference.classify_engine`, whole
mode: the raster as one model tile): :class:`inference.predictor.Predictor` normalises them from the
card, averages the test-time augmentation views and runs the network as the plugin does, and each
GeoTIFF chip is read as the engine reads a raster (bands matched by description, the reflectance
offset resolved by :func:`models.normalisation.inspect_raster_input`, GDAL-average resampling to
the card's tile size, nodata entering as the band mean). So the figures are what the algorithm
would produce on those tiles. Segmentation is evaluated the same way (:mod:`training.water_evaluation`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..core.errors import SatVisionError
from ..core.feedback import Feedback, SilentFeedback
from ..models.augmented_views import check_mode
from ..models.card import ModelCard
from ..models.normalisation import ReflectanceOffsetSetting, parse_reflectance_offset
from . import plots
from .classification_data import Sample, TileReader, _resize, class_folders, samples_of, tile_kind
from .classification_metrics import ClassificationMetrics
from .classification_settings import check_test_zoom
from .reporting import clean_metrics


@dataclass
class ClassificationEvaluation:
    model: Path
    model_name: str
    metrics: dict[str, Any]
    per_class: dict[str, Any]
    confusion: list[list[int]]
    class_names: list[str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"model": str(self.model), "model_name": self.model_name, **self.metrics, "per_class": self.per_class,
                "confusion_matrix": self.confusion, "classes": self.class_names, "seconds": round(self.seconds, 2)}


def evaluate_classification(model_path: str | Path | None, data: str | Path, *, batch_size: int = 64, device: str = "auto",
                            confusion_png: Path | None = None, feedback: Feedback | None = None,
                            test_time_augmentation: str | None = None, test_zoom: float | None = None,
                            reflectance_offset: ReflectanceOffsetSetting | None = None) -> ClassificationEvaluation:
    """Metrics of a model on a folder of class sub-folders (all tiles; class names must match the card's).

    Probabilities are averaged over ``test_time_augmentation`` views (default: the card's, as the
    plugin does). ``test_zoom`` tries another inference zoom (default: the card's), to choose one
    for ``train classification --test-zoom``. ``reflectance_offset`` is the setting of Classify
    tiles (default: its default, ``auto``: detected per chip as the algorithm does per raster; or a number).

    8-bit image tiles are taken as already rendered (the card's rendering is how rasters are made
    to look like them): the predictor gets them with the card's mean/std only. GeoTIFF chips go
    through the card's full normalisation, as in the plugin.

    Args:
        model_path (str | Path | None): The classifier model file. None: the bundled land-cover
            classifier.
        data (str | Path): A folder of class sub-folders (named as the card's classes) of tiles:
            8-bit JPEG/PNG renderings or GeoTIFF chips with band descriptions.
        batch_size (int): Tiles per forward pass. Default 64.
        device (str): ``auto`` (default: a CUDA GPU, then Apple MPS, else the CPU), ``cpu``, ``cuda``
            or ``mps``.
        confusion_png (Path | None): Also draw the confusion matrix in this PNG. None (default): not drawn.
        feedback (Feedback | None): Gets the log lines (tiles and classes found, the reflectance
            offset per chip): any object with ``progress``, ``cancelled``, ``info`` and ``warning``
            (:class:`core.feedback.Feedback`). None (default): silent.
        test_time_augmentation (str | None): ``none``, ``flips`` (4 passes) or ``d4`` (8 passes).
            None (default): the card's.
        test_zoom (float | None): Inference zoom from 1 (off) to 2: magnify each tile and classify its
            centre. None (default): the card's.
        reflectance_offset (ReflectanceOffsetSetting | None): ``auto`` (detected per chip), or a
            number of raster values to subtract (0: none). None (default): Classify tiles' default,
            ``auto``.

    Returns:
        ClassificationEvaluation: The model's path and name, the metrics (accuracy, macro F1... with
        the test-time augmentation and zoom used), the per-class report, the confusion matrix, the
        class names and the time taken; ``to_json()`` gives all of it as JSON.

    Raises:
        SatVisionError: ``data`` has class folders the model does not know, or 8-bit images for a
            model that needs other than 1 or 3 bands; an invalid ``test_time_augmentation``,
            ``test_zoom`` or ``reflectance_offset``; no default model is bundled.
        ModelFileError: The model file is unreadable or unsafe, or not a classifier.
        RasterError: A chip cannot be read or lacks the model's bands (``BandMismatchError``).

    Example:
        >>> from pathlib import Path
        >>> from satvision.training.classification_evaluation import evaluate_classification
        >>> evaluation = evaluate_classification(None, "EuroSAT_RGB_test", test_time_augmentation="flips",
        ...                                      confusion_png=Path("confusion.png"))
        >>> print(evaluation.metrics["accuracy"], evaluation.per_class)
    """
    from ..core.devices import resolve_device
    from ..inference.classify_engine import ClassificationSettings
    from ..inference.predictor import Predictor
    from ..models.catalog import default_model_path
    from ..models.modelfile import load_model

    feedback = feedback or SilentFeedback()
    started = time.perf_counter()
    if reflectance_offset is None:
        reflectance_offset = ClassificationSettings().reflectance_offset
    parse_reflectance_offset(reflectance_offset)  # a bad setting fails before any work
    path = Path(model_path) if model_path else default_model_path("classification")
    network, card = load_model(path, task="classification", device=str(resolve_device(device)))
    augmentation = check_mode(test_time_augmentation or card.tiling.test_time_augmentation)
    if test_zoom is not None:
        network.test_zoom = check_test_zoom(test_zoom)
    root = Path(data)
    present = class_folders(root)
    unknown = sorted(set(present) - set(card.class_names()))
    if unknown:
        raise SatVisionError(f"{root} has class folders the model does not know: {', '.join(unknown)} "
                             f"(the model's classes: {', '.join(card.class_names())}).")
    samples = [dataclasses.replace(sample, label=card.class_names().index(sample.path.parent.name))
               for sample in samples_of(root, present)]
    kind = tile_kind(samples)
    if kind == "image" and len(card.bands) not in (1, 3):
        raise SatVisionError(
            f"{root} holds 8-bit images (RGB or grey), but {card.name} needs {len(card.bands)} bands "
            f"({', '.join(card.bands)}): evaluate it on GeoTIFF chips with those band descriptions."
        )
    predictor = Predictor(network, card if kind == "raster" else rendered_input_card(card), device, augmentation)
    feedback.info(f"{len(samples)} tiles of {len(present)} classes from {root}")
    tiles = _image_tiles(samples, card) if kind == "image" else _raster_tiles(samples, card, reflectance_offset, feedback)
    metrics = ClassificationMetrics(card.class_names())
    for values, valid, offset, labels in _batches(tiles, batch_size):
        probabilities = predictor.class_probabilities(values, valid, offset).float().cpu()
        metrics.update(probabilities.clamp_min(1e-12).log(), torch.as_tensor(labels))  # log-probabilities are logits
    if confusion_png:
        plots.plot_confusion_matrix(metrics.confusion.numpy(), card.class_names(), confusion_png,
                                    title=f"{card.name} on {root.name}: accuracy {metrics.compute()['accuracy']:.4f}")
    return ClassificationEvaluation(path, card.name, {**clean_metrics(metrics.compute()), "test_time_augmentation": augmentation,
                                                      "test_zoom": network.test_zoom},
                                    clean_metrics(metrics.report()),
                                    metrics.confusion.long().tolist(), card.class_names(), time.perf_counter() - started)


def rendered_input_card(card: ModelCard) -> ModelCard:
    """``card`` for inputs already in its rendered domain (8-bit tiles divided by 255): only its
    per-band mean/std remain of the normalisation."""
    normalisation = dataclasses.replace(card.normalisation, reflectance_scale=1.0, rendering=None)
    return dataclasses.replace(card, normalisation=normalisation)


#: One tile for the predictor: values (bands, tile, tile), validity (tile, tile), reflectance offset, label.
Tile = tuple[np.ndarray, np.ndarray, float, int]


def _image_tiles(samples: Sequence[Sample], card: ModelCard) -> Iterator[Tile]:
    """8-bit tiles divided by 255 (the rendered domain), at the card's tile size, all valid."""
    reader = TileReader("image", card.bands)
    size = card.tiling.tile_size
    for sample in samples:
        values = _resize(reader.read(sample.path), size)
        yield values, np.ones(values.shape[-2:], dtype=bool), 0.0, sample.label


def _raster_tiles(samples: Sequence[Sample], card: ModelCard, reflectance_offset: ReflectanceOffsetSetting,
                  feedback: Feedback) -> Iterator[Tile]:
    """Each chip read as Classify tiles reads a raster in whole mode (see :mod:`inference.classify_engine`)."""
    from ..core.raster import extent_window, open_raster, read_resampled, select_bands
    from ..models.normalisation import inspect_raster_input

    size = card.tiling.tile_size
    said: set[str] = set()
    for sample in samples:
        with open_raster(sample.path) as dataset:
            band_indexes = select_bands(dataset, card.bands)
            window, _ = extent_window(dataset, None)
            inspection = inspect_raster_input(dataset, band_indexes, window, card.normalisation, reflectance_offset)
            values, valid = read_resampled(dataset, band_indexes, window, (size, size))
        for message in inspection.warnings:
            if message not in said:
                said.add(message)
                feedback.warning(message)
        yield values, valid, inspection.offset, sample.label


def _batches(tiles: Iterator[Tile], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, float, list[int]]]:
    """Batches of up to ``batch_size`` tiles with the same reflectance offset (the predictor takes one per batch)."""
    if batch_size < 1:
        raise SatVisionError("The batch size must be at least 1.")
    batch: list[Tile] = []

    def stacked() -> tuple[np.ndarray, np.ndarray, float, list[int]]:
        return (np.stack([tile[0] for tile in batch]).astype(np.float32), np.stack([tile[1] for tile in batch]),
                batch[0][2], [tile[3] for tile in batch])

    for tile in tiles:
        if batch and (len(batch) == batch_size or tile[2] != batch[0][2]):
            yield stacked()
            batch = []
        batch.append(tile)
    if batch:
        yield stacked()
