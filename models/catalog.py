"""The model catalogue: bundled models and the user's model folders.

Bundled models live in ``resources/models/``. User folders come from the environment variable
``SATVISION_MODELS_DIR`` (several joined with the path separator) and from the provider's
Processing option; the caller passes the latter in, keeping this module QGIS-free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

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
    """A model file from what a user typed: empty (the bundled default), a path, or a model name."""
    if reference is None or not str(reference).strip():
        return default_model_path(task)
    path = Path(str(reference).strip()).expanduser()
    if path.suffix or path.exists() or os.sep in str(reference):
        return path  # a path; load_model reports a missing or unsuitable file precisely
    entries = list_models(user_dirs, task=task)
    for entry in entries:
        if entry.name == str(reference).strip():
            return entry.path
    available = ", ".join(entry.name for entry in entries) or "none"
    raise SatVisionError(
        f"No {task} model named {str(reference).strip()!r} was found (available: {available}). "
        "Give a model file path or a name from `satvision models list`."
    )


#: The bundled model each task uses when the user names none.
DEFAULT_MODELS = {"segmentation": "water-default.safetensors", "classification": "landcover-default.safetensors"}


def default_model_path(task: str) -> Path:
    """The bundled default model file of ``task``; fails naming the file and how to make it."""
    if task not in DEFAULT_MODELS:
        raise SatVisionError(f"There is no default {task} model; choose a model file.")
    path = BUNDLED_MODELS_DIR / DEFAULT_MODELS[task]
    if not path.is_file():
        raise SatVisionError(
            f"No model was given and the default {task} model {path} is missing. Pass a model file "
            f"(--model FILE), or train one with `satvision train {task} --data DATA --output DIR` and copy "
            f"DIR/model.safetensors to {path}."
        )
    return path
