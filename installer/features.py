"""Feature sets -> pip requirement lines, read from ``requirements/*.txt`` (the one list of packages).

The Makefile installs the same files into the development environment, so the plugin's installer
and ``make install`` can never disagree on a package or a version range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import SatVisionError

#: The folder of requirement files (at the plugin's root; the plugin zip must ship it).
REQUIREMENTS_DIR = Path(__file__).resolve().parent.parent / "requirements"


@dataclass(frozen=True)
class FeatureSet:
    key: str
    title: str
    #: requirement files, relative to ``requirements/`` (``-r`` includes are followed)
    files: tuple[str, ...]
    #: whether the set contains torch (the torch build then matters)
    needs_torch: bool
    #: import names that must import once installed (checked before the new folder is switched to)
    modules: tuple[str, ...] = ()


FEATURE_SETS: tuple[FeatureSet, ...] = (
    FeatureSet("segmentation", "Segmentation and classification (PyTorch, timm, segmentation-models-pytorch)", ("ml.txt",), True,
               ("torch", "torchvision", "timm", "segmentation_models_pytorch", "safetensors")),
    FeatureSet("earthengine", "Google Earth Engine (earthengine-api)", ("earthengine.txt",), False, ("ee",)),
    FeatureSet("generation", "Synthetic imagery generation (diffusers, transformers; with PyTorch)", ("ml.txt", "generation.txt"), True,
               ("torch", "safetensors", "diffusers", "transformers")),
    FeatureSet("training", "Training and evaluation (accelerate; with PyTorch)", ("train.txt",), True, ("torch", "accelerate")),
)
FEATURE_KEYS = tuple(feature.key for feature in FEATURE_SETS)


def feature_set(key: str) -> FeatureSet:
    for feature in FEATURE_SETS:
        if feature.key == key:
            return feature
    raise SatVisionError(f"Unknown feature set {key!r}: choose among {', '.join(FEATURE_KEYS)}.")


def read_requirements(path: Path, seen: frozenset[Path] = frozenset()) -> list[str]:
    """The requirement lines of ``path`` without comments and blank lines, following ``-r FILE``."""
    path = path.resolve()
    if path in seen:
        return []
    if not path.is_file():
        raise SatVisionError(
            f"The requirement list {path} is missing, so SatVision cannot tell what to install. "
            "Reinstall the plugin (its zip ships the requirements folder)."
        )
    lines: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            lines += read_requirements(path.parent / line.split(None, 1)[1], seen | {path})
        else:
            lines.append(line)
    return lines


def requirement_lines(keys: list[str] | tuple[str, ...], folder: Path = REQUIREMENTS_DIR) -> list[str]:
    """The requirement lines of the chosen feature sets, each once, in file order."""
    if not keys:
        raise SatVisionError(f"Choose at least one feature set to install ({', '.join(FEATURE_KEYS)}).")
    lines: list[str] = []
    for key in keys:
        for name in feature_set(key).files:
            lines += read_requirements(folder / name)
    return list(dict.fromkeys(lines))


def needs_torch(keys: list[str] | tuple[str, ...]) -> bool:
    return any(feature_set(key).needs_torch for key in keys)


def modules_of(keys: list[str] | tuple[str, ...]) -> list[str]:
    """The import names the chosen feature sets provide, each once."""
    return list(dict.fromkeys(module for key in keys for module in feature_set(key).modules))
