"""Where SatVision's packages go and which folder is active.

Layout, per QGIS profile and Python version (packages built for one Python do not load in another)::

    <profile>/python/satvision-packages/py3.11/
        active                 one line: the name of the active generation (switched atomically)
        g-20261130T081500-1a2b/  a complete working set (pip --target)
        .s-…/  .w-…/           an install in progress (pip's target, renamed to g-… when complete;
                               pip's constraints and report)
        .pip/                  a newer pip, only when QGIS's own is too old for install reports

The paths are pure functions of the facts passed in (table-tested on any machine).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

PACKAGES_FOLDER = "satvision-packages"
POINTER = "active"
#: in each generation: the feature sets, torch build and packages it was installed with
MANIFEST = "satvision-install.json"
GENERATION_PREFIX = "g-"
STAGING_PREFIX = ".s-"
WORK_PREFIX = ".w-"


def packages_root(profile_dir: str | os.PathLike, python_version: tuple[int, int]) -> Path:
    """``<profile>/python/satvision-packages/py<major>.<minor>``: owned by the plugin, never QGIS's own
    site-packages; ``python/`` is the profile's folder for Python (plugins live beside it)."""
    return Path(profile_dir) / "python" / PACKAGES_FOLDER / f"py{python_version[0]}.{python_version[1]}"


def new_generation_name(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{GENERATION_PREFIX}{stamp}-{secrets.token_hex(2)}"


def active_generation(root: Path) -> Path | None:
    """The active working set, or None when nothing was installed (or it was removed)."""
    try:
        name = (root / POINTER).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    folder = root / name
    if not name.startswith(GENERATION_PREFIX) or "/" in name or "\\" in name or not folder.is_dir():
        return None
    return folder


def set_active(root: Path, generation: Path | None) -> None:
    """Point ``active`` at ``generation`` (None: nothing active) in one atomic rename."""
    pointer = root / POINTER
    if generation is None:
        pointer.unlink(missing_ok=True)
        return
    temporary = root / f".{POINTER}.{os.getpid()}.tmp"
    temporary.write_text(generation.name + "\n", encoding="utf-8")
    os.replace(temporary, pointer)


def generations(root: Path) -> list[Path]:
    """The complete working sets, oldest first."""
    if not root.is_dir():
        return []
    return sorted(path for path in root.iterdir() if path.is_dir() and path.name.startswith(GENERATION_PREFIX))
