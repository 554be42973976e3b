"""The model catalogue: bundled models and the user's model folders.

Bundled models live in ``resources/models/``. User folders come from the environment variable
``SATVISION_MODELS_DIR`` (several joined with the path separator) and from the provider's
Processing option; the caller passes the latter in, keeping this module QGIS-free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..core.errors import SatVisionError
from .card import ModelCard

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "resources" / "models"
ENVIRONMENT_VARIABLE = "SATVISION_MODELS_DIR"


@dataclass(frozen=True)
class ModelEntry:
    """A model file found in a folder: its card, or why it could not be read."""

    path: Path
    source: str  # "bundled" or "user"
    card: ModelCard | None
    error: str | None = None

    @property
    def name(self) -> str:
        return self.card.name if self.card else self.path.stem

    def summary(self, include_card: bool = False) -> dict:
        """A JSON-friendly description for listings; ``include_card`` adds the whole card."""
        info: dict = {"name": self.name, "path": str(self.path), "source": self.source, "valid": self.card is not None}
        if self.card:
            info.update(
                task=self.card.task,
                architecture=self.card.architecture.id,
                bands=self.card.bands,
                gsd_m=self.card.gsd_m,
                classes=self.card.class_names(),
                license=self.card.license,
            )
            if include_card:
                info["card"] = self.card.to_dict()
        else:
            info["error"] = self.error
        return info


def user_model_dirs(extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """User model folders: ``extra`` (e.g. the Processing option) then the environment variable."""
    folders = [Path(item) for item in extra if str(item).strip()]
    folders += [Path(item) for item in os.environ.get(ENVIRONMENT_VARIABLE, "").split(os.pathsep) if item.strip()]
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def list_models(
    user_dirs: Iterable[str | os.PathLike[str]] = (),
    task: str | None = None,
    bundled_dir: Path = BUNDLED_MODELS_DIR,
) -> list[ModelEntry]:
    """All model files in the bundled folder and the user folders, bundled first.

    Unreadable files are listed with their error rather than hidden, so a user sees why a
    model they copied does not show up as usable. With ``task``, only valid models of that
    task are returned.
    """
    from .modelfile import MODEL_SUFFIX, read_card

    entries: list[ModelEntry] = []
    sources = [(bundled_dir, "bundled")] + [(folder, "user") for folder in user_model_dirs(user_dirs)]
    for folder, source in sources:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"*{MODEL_SUFFIX}")):
            try:
                entries.append(ModelEntry(path, source, read_card(path)))
            except SatVisionError as error:
                entries.append(ModelEntry(path, source, None, str(error)))
    if task is not None:
        entries = [entry for entry in entries if entry.card is not None and entry.card.task == task]
    return entries


def resolve_model(reference: str | os.PathLike[str] | None, task: str, user_dirs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """A model file from what a user typed: empty (the bundled default), a path, a model file's
    name in the model folders (``my-water.safetensors``) or a model name (card name or file stem).

    A readable model made for another task fails here with :func:`wrong_task_hint`.
    """
    if reference is None or not str(reference).strip():
        return default_model_path(task)
    text = str(reference).strip()
    path = Path(text).expanduser()
    if not path.exists() and path.name == text:  # a bare name: look in the model folders
        from .modelfile import MODEL_SUFFIX

        found = _model_named(text, task, user_dirs, MODEL_SUFFIX)
        if found is None and not path.suffix:
            raise SatVisionError(_not_found(text, task, user_dirs))
        path = found or path
    _check_task(path, task, user_dirs)
    return path  # load_model reports a missing or unsuitable file precisely


def _model_named(text: str, task: str, user_dirs: Iterable[str | os.PathLike[str]], suffix: str) -> Path | None:
    """The model file ``text`` names in the bundled or user folders: a file name, a card name or a file stem."""
    if text.endswith(suffix):
        for folder in [BUNDLED_MODELS_DIR, *user_model_dirs(user_dirs)]:
            if (folder / text).is_file():
                return folder / text
        return None
    for entry in list_models(user_dirs, task=task):
        if entry.name == text or entry.path.stem == text:
            return entry.path
    return None


def _installed_names(task: str, user_dirs: Iterable[str | os.PathLike[str]]) -> str:
    return ", ".join(f"{entry.name} ({entry.path.name})" for entry in list_models(user_dirs, task=task)) or "none installed"


def _not_found(text: str, task: str, user_dirs: Iterable[str | os.PathLike[str]]) -> str:
    return (
        f"No {task} model named {text!r} was found (installed {task} models: {_installed_names(task, user_dirs)}). "
        f"Choose one from the Model parameter's list in QGIS, give a model file path, or a name from "
        f"`satvision models list --task {task}`; put your own models in the user models folder "
        f"(Processing options > Providers > SatVision, or {ENVIRONMENT_VARIABLE})."
    )


def wrong_task_hint(file_name: str, card_task: str, card_name: str, task: str,
                    user_dirs: Iterable[str | os.PathLike[str]] = ()) -> str:
    """What to tell a user who gave a ``card_task`` model to a tool that needs a ``task`` model:
    in QGIS terms (the Model parameter and its list) and in the command line's."""
    return (
        f"{file_name} is a {card_task} model ({card_name}), but this tool needs a {task} model. "
        f"Choose a {task} model in the Model parameter (installed {task} models: {_installed_names(task, user_dirs)}), "
        f"or leave it empty for the default; on the command line see `satvision models list --task {task}`."
    )


def _check_task(path: Path, task: str, user_dirs: Iterable[str | os.PathLike[str]]) -> None:
    """Fail with :func:`wrong_task_hint` when ``path`` is a readable model of another task."""
    from ..core.errors import TaskMismatchError
    from .modelfile import read_card

    try:
        card = read_card(path)
    except SatVisionError:
        return  # missing, damaged, pickled…: load_model says so precisely
    if card.task != task:
        raise TaskMismatchError(wrong_task_hint(path.name, card.task, card.name, task, user_dirs))


def model_choices(task: str, user_dirs: Iterable[str | os.PathLike[str]] = ()) -> list[tuple[str, str]]:
    """``(label, file path)`` of every valid ``task`` model, bundled first, for a model chooser.

    The label names the model and its file and says where it comes from
    (``satvision-water-default — water-default.safetensors (bundled)``).
    """
    return [(f"{entry.name} — {entry.path.name} ({entry.source})", str(entry.path))
            for entry in list_models(user_dirs, task=task)]


#: The bundled model each task uses when the user names none (for water: the fallback of
#: :data:`DEFAULT_WATER_MODELS`, which :func:`default_water_model` chooses from).
DEFAULT_MODELS = {"segmentation": "water-default.safetensors", "classification": "landcover-default.safetensors"}

#: The bundled water models, preferred first: the 6-band model (B2, B3, B4, B8, B11, B12; SWIR
#: separates turbid water from wet soil and shadow) when the raster has its bands, else the 4-band one.
DEFAULT_WATER_MODELS = ("water-default-6band.safetensors", DEFAULT_MODELS["segmentation"])


@dataclass(frozen=True)
class DefaultChoice:
    """The default model chosen for a raster, and why (a line for the log)."""

    path: Path
    reason: str


def default_water_candidates(bundled_dir: Path = BUNDLED_MODELS_DIR) -> list[Path]:
    """The bundled water model files of :data:`DEFAULT_WATER_MODELS` present in ``bundled_dir``, preferred first."""
    return [bundled_dir / name for name in DEFAULT_WATER_MODELS if (bundled_dir / name).is_file()]


def default_water_model(
    band_descriptions: Sequence[str | None],
    band_positions: Sequence[int] | None = None,
    candidates: Sequence[Path] | None = None,
) -> DefaultChoice:
    """The default water model for a raster with ``band_descriptions``, and why.

    ``candidates`` are model files, preferred first (default: the bundled ones). With explicit
    ``band_positions`` the model whose band count equals the number of positions is chosen (or a
    :class:`SatVisionError` says none has it); otherwise the first candidate whose bands the raster
    has by description (matched as :func:`core.bands.match_bands` matches), else the last one, whose
    band check then reports precisely what is missing.
    """
    from ..core.bands import complete_band_sets, normalise_band_name
    from .modelfile import read_card

    paths = list(default_water_candidates() if candidates is None else candidates)
    if not paths:
        raise SatVisionError(
            f"No model was given and no default water model ({', '.join(DEFAULT_WATER_MODELS)}) is installed in "
            f"{BUNDLED_MODELS_DIR}. Pass a model file (--model FILE or the Model parameter), reinstall the plugin, "
            "or train one with `satvision train segmentation --data DATA --output DIR` and copy its model.safetensors there."
        )
    cards = [(path, read_card(path)) for path in paths]

    def label(card: ModelCard) -> str:
        return f"{len(card.bands)}-band ({', '.join(card.bands)})"

    if band_positions:
        for path, card in cards:
            if len(card.bands) == len(band_positions):
                return DefaultChoice(path, f"Default water model: {label(card)}, as the Bands parameter gives "
                                           f"{len(band_positions)} raster bands")
        counts = " or ".join(str(len(card.bands)) for _, card in cards)
        raise SatVisionError(
            f"The Bands parameter gives {len(band_positions)} raster band(s), but the default water models need "
            f"{counts} ({'; '.join(label(card) for _, card in cards)}). Fix: give {counts} bands in the model's "
            "order, leave Bands empty to match bands by description, or choose a model with that many bands."
        )
    available = {normalise_band_name(text) for text in band_descriptions if text}
    for path, card in cards[:-1]:
        if all(normalise_band_name(band) in available for band in card.bands):
            extra = [band for band in card.bands if band not in cards[-1][1].bands]
            return DefaultChoice(path, f"Default water model: {label(card)} (the raster has "
                                       f"{' and '.join(extra) or 'all its bands'})")
    path, card = cards[-1]
    if len(cards) == 1:
        others = [name for name in DEFAULT_WATER_MODELS if name != path.name]
        why = f"the other default, {', '.join(others)}, is not installed" if others else "the only default"
        return DefaultChoice(path, f"Default water model: {label(card)} ({why})")
    missing = [band for band in cards[0][1].bands if normalise_band_name(band) not in available]
    # Bands named with a prefix or suffix (A_B11, B12_20m) are not matched by name, but the user should hear of them.
    named_otherwise = complete_band_sets(cards[0][1].bands, band_descriptions)
    sets = " or ".join(f"{','.join(str(number) for number in numbers)} ({pattern})" for pattern, numbers in named_otherwise.items())
    hint = (f"; the raster seems to have them under other names: give Bands {sets} to run the "
            f"{len(cards[0][1].bands)}-band model") if named_otherwise else ""
    return DefaultChoice(path, f"Default water model: {label(card)} (the raster has no {'/'.join(missing)} band: "
                               "fetch them or stack them, see README, \"The bundled water models\"; without SWIR, fresh burn "
                               f"scars and dark bare soil look like water and can be called water{hint})")


def default_model_path(task: str, bundled_dir: Path = BUNDLED_MODELS_DIR) -> Path:
    """The bundled default model file of ``task``; fails naming the file and how to make it."""
    if task not in DEFAULT_MODELS:
        raise SatVisionError(f"There is no default {task} model; choose a model file.")
    path = bundled_dir / DEFAULT_MODELS[task]
    if not path.is_file():
        raise SatVisionError(
            f"No model was given and the default {task} model {path} is missing. Pass a model file "
            f"(--model FILE), or train one with `satvision train {task} --data DATA --output DIR` and copy "
            f"DIR/model.safetensors to {path}."
        )
    return path
