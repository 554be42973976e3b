"""The model card: a JSON description that travels inside every SatVision model file.

It says what the weights are for and how to feed them: task, architecture and its constructor
arguments, input bands in order, ground sample distance, the normalisation from raster values
to network input, classes with colours, inference tiling, training data, metrics, license.

Validation is strict in both directions: a missing field and an unknown field are both errors,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..core.errors import ModelCardError
from .augmented_views import TTA_MODES

FORMAT_VERSION = 1
TASKS = ("classification", "segmentation", "generation")
PROCESSING_LEVELS = ("L1C", "L2A")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class ClassInfo:
    """One output class: its index in the network output, a name and a display colour.

    ``name`` is the id written to outputs and fields (``SeaLake``); the optional ``label`` is
    what people read in legends (``Sea or lake``), by default the name in words.
    """

    index: int
    name: str
    colour: str
    label: str = ""

    @property
    def display_label(self) -> str:
        """The card's label, or the name turned into words (``HerbaceousVegetation`` → ``Herbaceous vegetation``)."""
        return self.label.strip() if isinstance(self.label, str) and self.label.strip() else words_of(self.name)


_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def words_of(name: str) -> str:
    """A class id in words: CamelCase and ``snake_case`` split, the first word capitalised,
    acronyms kept (``AnnualCrop`` → ``Annual crop``, ``no_data`` → ``No data``, ``NDVIHigh`` → ``NDVI high``)."""
    parts = _WORD.findall(name)
    if not parts:
        return name
    words = [part if part.isupper() and len(part) > 1 else part.lower() for part in parts]
    words[0] = words[0][0].upper() + words[0][1:]
    return " ".join(words)


@dataclass(frozen=True)
class Architecture:
    """Which network to build (an id of the architecture factory) and its constructor arguments."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendering:
    """An optional linear stretch from reflectance to [0, 1], applied before mean/std.

    Models trained on 8-bit renderings (EuroSAT JPEGs) need the same rendering of a
    reflectance raster: ``clip((reflectance - low) / (high - low), 0, 1)``, optionally
    quantised to ``levels`` steps (256 for 8-bit imagery).
    """

    low: list[float]
    high: list[float]
    levels: int | None = None


@dataclass(frozen=True)
class NormalisedDifference:
    """A spectral index the network takes as an extra input channel: ``(plus - minus) / (plus + minus)``
    of two of the card's bands' reflectance (see :mod:`models.spectral_indices`)."""

    name: str
    plus: str
    minus: str


@dataclass(frozen=True)
class Normalisation:
    """From raster values to network input.

    ``reflectance = value / reflectance_scale``; then the optional ``rendering``; then one channel
    per entry of ``indices`` appended (computed from reflectance); then ``(x - mean) / std`` per
    channel, so ``mean`` and ``std`` list the bands, then the indices.
    """

    reflectance_scale: float
    mean: list[float]
    std: list[float]
    rendering: Rendering | None = None
    indices: list[NormalisedDifference] = field(default_factory=list)


@dataclass(frozen=True)
class Tiling:
    """Inference defaults: tile side and overlap between tiles in pixels, and the test-time
    augmentation (``none``, ``flips`` or ``d4``: see :mod:`models.augmented_views`)."""

    tile_size: int
    overlap: int
    test_time_augmentation: str = "none"


@dataclass(frozen=True)
class ModelCard:
    """Everything the plugin and the trainer need to know about a model file."""

    format_version: int
    name: str
    task: str
    architecture: Architecture
    bands: list[str]
    gsd_m: float
    normalisation: Normalisation
    classes: list[ClassInfo]
    tiling: Tiling
    training_data: str
    metrics: dict[str, Any]
    license: str
    description: str = ""
    processing_levels: list[str] = field(default_factory=list)
    created: str = ""
    software_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for item in data["classes"]:  # no empty labels: cards without labels stay readable by older SatVision
            if not item.get("label"):
                item.pop("label", None)
        if not data["normalisation"]["indices"]:  # likewise cards without index inputs
            del data["normalisation"]["indices"]
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "model card") -> "ModelCard":
        card = _build(cls, data, source)
        _check_values(card, source)
        return card

    @property
    def input_channels(self) -> int:
        """The network's input channels: the bands, then the spectral indices."""
        return len(self.bands) + len(self.normalisation.indices)

    def class_names(self) -> list[str]:
        return [item.name for item in sorted(self.classes, key=lambda item: item.index)]

    def class_labels(self) -> list[str]:
        """The classes' labels in words, in index order (see :attr:`ClassInfo.display_label`)."""
        return [item.display_label for item in sorted(self.classes, key=lambda item: item.index)]


def load_card_json(text: str, source: str = "model card") -> ModelCard:
    """Parse and validate a card from JSON text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelCardError(f"The {source} is not valid JSON ({error}).") from error
    if not isinstance(data, dict):
        raise ModelCardError(f"The {source} must be a JSON object, not {type(data).__name__}.")
    return ModelCard.from_dict(data, source)


_NESTED = {
    "architecture": Architecture,
    "normalisation": Normalisation,
    "rendering": Rendering,
    "tiling": Tiling,
}
_NESTED_LISTS = {"classes": ClassInfo, "indices": NormalisedDifference}


def _build(kind: type, data: Mapping[str, Any], where: str) -> Any:
    """Build dataclass ``kind`` from ``data``, naming missing, unknown and mistyped fields."""
    if not isinstance(data, Mapping):
        raise ModelCardError(f"{where}: expected an object, got {type(data).__name__}.")
    fields = {item.name: item for item in dataclasses.fields(kind)}
    required = [
        name
        for name, item in fields.items()
        if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    unknown = sorted(set(data) - set(fields))
    problems = []
    if missing:
        problems.append(f"missing field(s): {', '.join(missing)}")
    if unknown:
        problems.append(
            f"unknown field(s): {', '.join(unknown)} (a typo, or a card from a newer SatVision; "
            f"known fields: {', '.join(fields)})"
        )
    if problems:
        raise ModelCardError(f"{where} is invalid: {'; '.join(problems)}.")
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name in _NESTED and value is not None:
            value = _build(_NESTED[name], value, f"{where} → {name}")
        elif name in _NESTED_LISTS:
            if not isinstance(value, list):
                raise ModelCardError(f"{where} → {name} must be a list of objects.")
            value = [_build(_NESTED_LISTS[name], item, f"{where} → {name}[{i}]") for i, item in enumerate(value)]
        values[name] = value
    return kind(**values)


def _check_values(card: ModelCard, where: str) -> None:
    problems: list[str] = []

    def expect(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    expect(isinstance(card.format_version, int), "format_version must be an integer")
    if isinstance(card.format_version, int) and card.format_version > FORMAT_VERSION:
        raise ModelCardError(
            f"{where} has format version {card.format_version}, newer than this SatVision "
            f"understands ({FORMAT_VERSION}). Update SatVision to use this model."
        )
    expect(card.task in TASKS, f"task must be one of {', '.join(TASKS)}, not {card.task!r}")
    expect(isinstance(card.name, str) and card.name.strip() != "", "name must be a non-empty string")
    expect(isinstance(card.architecture.id, str) and card.architecture.id != "", "architecture.id is empty")
    expect(isinstance(card.architecture.params, dict), "architecture.params must be an object")
    if isinstance(card.architecture.params, dict) and "test_zoom" in card.architecture.params:
        zoom = card.architecture.params["test_zoom"]
        expect(_is_number(zoom) and 1 <= zoom <= 2, "architecture.params.test_zoom must be a number from 1 (no zoom) to 2")
    expect(
        isinstance(card.bands, list) and len(card.bands) > 0 and all(isinstance(b, str) and b for b in card.bands),
        "bands must be a non-empty list of band names such as B2, B3, B4, B8",
    )
    expect(len(set(card.bands)) == len(card.bands), "bands must not repeat")
    expect(_is_number(card.gsd_m) and card.gsd_m > 0, "gsd_m must be a positive number of metres")
    norm = card.normalisation
    expect(_is_number(norm.reflectance_scale) and norm.reflectance_scale > 0, "normalisation.reflectance_scale must be positive")
    for index in norm.indices:
        expect(index.plus in card.bands and index.minus in card.bands,
               f"normalisation.indices: {index.name} needs bands {index.plus} and {index.minus}, which are not all in bands")
    expect(not norm.indices or card.task == "segmentation", "normalisation.indices are for segmentation models only")
    channels = "band" if not norm.indices else "band, then one per index"
    for name in ("mean", "std"):
        values = getattr(norm, name)
        expect(
            isinstance(values, list) and len(values) == card.input_channels and all(_is_number(v) for v in values),
            f"normalisation.{name} must list one number per {channels} ({card.input_channels})",
        )
    expect(all(_is_number(v) and v > 0 for v in norm.std), "normalisation.std values must be positive")
    if norm.rendering is not None:
        for name in ("low", "high"):
            values = getattr(norm.rendering, name)
            expect(
                isinstance(values, list) and len(values) == len(card.bands),
                f"normalisation.rendering.{name} must list one number per band",
            )
        expect(
            all(high > low for low, high in zip(norm.rendering.low, norm.rendering.high)),
            "normalisation.rendering.high must exceed low for every band",
        )
    if card.task in ("classification", "segmentation"):
        expect(len(card.classes) >= 2, f"a {card.task} model needs at least two classes")
    indexes = sorted(item.index for item in card.classes)
    expect(indexes == list(range(len(indexes))), "classes must have indexes 0, 1, 2, … without gaps")
    for item in card.classes:
        expect(isinstance(item.colour, str) and bool(_COLOUR.match(item.colour)), f"class {item.name!r}: colour must look like #1f78b4")
        expect(isinstance(item.label, str), f"class {item.name!r}: label must be text such as \"Sea or lake\"")
    expect(isinstance(card.tiling.tile_size, int) and card.tiling.tile_size > 0, "tiling.tile_size must be a positive integer")
    expect(
        isinstance(card.tiling.overlap, int) and 0 <= card.tiling.overlap * 2 < card.tiling.tile_size,
        "tiling.overlap must be a non-negative integer under half the tile size",
    )
    expect(card.tiling.test_time_augmentation in TTA_MODES,
           f"tiling.test_time_augmentation must be one of {', '.join(TTA_MODES)}")
    expect(isinstance(card.metrics, dict), "metrics must be an object")
    expect(isinstance(card.license, str) and card.license.strip() != "", "license must name the weights' license")
    expect(
        all(level in PROCESSING_LEVELS for level in card.processing_levels),
        f"processing_levels may only contain {', '.join(PROCESSING_LEVELS)}",
    )
    if problems:
        raise ModelCardError(f"{where} is invalid: {'; '.join(problems)}.")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
