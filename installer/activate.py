"""Puts SatVision's active packages folder on ``sys.path`` (the provider calls it at load).

The folder goes just before the first ``site-packages``/``dist-packages`` entry: its packages win
over older copies in QGIS's Python (Debian's typing_extensions 4.4 cannot run torch, which needs
>= 4.8), while numpy, GDAL, PyQt and the rest of :data:`.protected.PROTECTED` are never in it, so
QGIS's own builds are the ones imported. Entries of QGIS itself and of plugins stay in front.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from .locations import active_generation, packages_root


def insert_position(path: list[str]) -> int:
    """Index of the first site-packages or dist-packages folder in ``path`` (its end when none)."""
    for index, entry in enumerate(path):
        if os.path.basename(os.path.normpath(entry)).lower() in ("site-packages", "dist-packages"):
            return index
    return len(path)


def activate(profile_dir: str | os.PathLike, python_version: tuple[int, int] | None = None,
             path: list[str] | None = None) -> Path | None:
    """Put the active generation of ``profile_dir``'s packages on ``path`` (``sys.path``), replacing
    any other generation there; return it, or None when nothing is installed."""
    path = sys.path if path is None else path
    root = packages_root(profile_dir, python_version or sys.version_info[:2])
    folder = active_generation(root)
    root_text = os.path.normcase(str(root))
    stale = [entry for entry in path if os.path.normcase(entry).startswith(root_text + os.sep)
             and (folder is None or os.path.normcase(entry) != os.path.normcase(str(folder)))]
    for entry in stale:
        path.remove(entry)
    if folder is not None and str(folder) not in path:
        path.insert(insert_position(path), str(folder))
    importlib.invalidate_caches()
    return folder


def loaded_from(folder: Path) -> list[str]:
    """Top-level modules already imported from ``folder`` (they stay loaded until QGIS restarts)."""
    prefix = os.path.normcase(str(folder)) + os.sep
    names = set()
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if location and os.path.normcase(location).startswith(prefix):
            names.add(name.split(".")[0])
    return sorted(names)
