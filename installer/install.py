"""Plan, install into a new folder, switch when complete; repair and remove.

An install never touches the active working set: pip installs (``--target``) into a new staging
folder, the new packages are imported once in a child Python, and only then is the folder renamed
to a generation and the ``active`` pointer switched (one atomic rename). A failure or a
cancellation deletes the staging folder and leaves the previous set in use.

The pip steps (resolve, install, import check) are in :mod:`.pip_steps`.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..core.errors import SatVisionError
from . import features as feature_sets
from .interpreter import PIP_FOLDER, qgis_python
from .locations import (
    MANIFEST,
    STAGING_PREFIX,
    WORK_PREFIX,
    active_generation,
    generations,
    new_generation_name,
    packages_root,
    set_active,
)
from .pip_steps import Sources, check_imports, install_into, resolve
from .plan import Plan
from .torch_builds import TorchChoice, choose_torch_build, query_gpu

MODES = ("install", "plan", "repair", "remove")
#: a staging folder this old was left by a QGIS that stopped mid-install
STALE_STAGING_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Facts:
    """The running QGIS: its profile folder and Python (``sys.executable`` is QGIS's binary there)."""

    profile_dir: str
    system: str = field(default_factory=platform.system)
    machine: str = field(default_factory=platform.machine)
    executable: str = sys.executable
    prefix: str = sys.prefix
    python_version: tuple[int, int] = tuple(sys.version_info[:2])  # type: ignore[assignment]

    @property
    def root(self) -> Path:
        return packages_root(self.profile_dir, self.python_version)


@dataclass(frozen=True)
class Request:
    features: tuple[str, ...] = ()
    mode: str = "install"
    #: ``auto`` or one of :data:`.torch_builds.OVERRIDES`
    torch_build: str = "auto"
    #: replaces PyPI (a mirror); empty: PyPI
    index_url: str = ""
    #: wheelhouse folders or URLs; with no ``index_url`` they are the only source (air-gapped)
    find_links: tuple[str, ...] = ()
    #: extra requirement lines (pins an expert wants; tests force a bogus version with it)
    extra_requirements: tuple[str, ...] = ()


@dataclass
class Outcome:
    mode: str
    folder: Path | None
    features: list[str]
    torch: TorchChoice | None
    plan: Plan | None
    #: distribution -> version of the active folder
    versions: dict[str, str]
    #: modules already loaded from the previous folder (a QGIS restart uses the new ones)
    restart_needed: bool = False


Log = Callable[[str], None]


def run(request: Request, facts: Facts, log: Log, is_cancelled: Callable[[], bool] = lambda: False,
        progress: Callable[[float], None] = lambda _: None, gpu_query=query_gpu) -> Outcome:
    """Carry out ``request`` for the QGIS described by ``facts``; raises :class:`SatVisionError`
    (cancellation included) with the previous working set still active."""
    if request.mode not in MODES:
        raise SatVisionError(f"Unknown mode {request.mode!r}: choose among {', '.join(MODES)}.")
    root = facts.root
    if request.mode == "remove":
        return _remove(root, log)
    previous = active_generation(root)
    installed = _manifest(previous).get("features", []) if previous else []
    # install adds the chosen sets to what is installed; repair reinstalls what is installed
    keys = list(dict.fromkeys(installed if request.mode == "repair" and installed else [*installed, *request.features]))
    if not keys:
        raise SatVisionError("Choose at least one feature set to install (segmentation, earthengine, generation, training).")
    root.mkdir(parents=True, exist_ok=True)
    python = qgis_python(facts.system, facts.executable, facts.prefix, facts.python_version, root, log, is_cancelled)
    requirements = feature_sets.requirement_lines(keys) + list(request.extra_requirements)
    torch = None
    if feature_sets.needs_torch(keys):
        torch = choose_torch_build(facts.system, facts.machine, gpu_query(), request.torch_build)
        log(f"PyTorch build: {torch.tag} — {torch.reason}.")
    # short names: torch's deepest files must stay under Windows' 260-character path limit
    token = secrets.token_hex(3)
    work, staging = root / f"{WORK_PREFIX}{token}", root / f"{STAGING_PREFIX}{token}"
    work.mkdir()
    staging.mkdir()
    sources = Sources(request.index_url, request.find_links, torch.index_url if torch else None)
    try:
        plan = resolve(python, requirements, sources, work, log, is_cancelled)
        progress(10)
        for line in plan.describe():
            log(line)
        if request.mode == "plan":
            return Outcome("plan", previous, keys, torch, plan, _versions(previous))
        if not plan.packages:
            log("Everything needed is already in QGIS's Python: nothing to install.")
        else:
            install_into(python, plan, sources, work, staging, log, is_cancelled, progress)
        check_imports(python, staging, feature_sets.modules_of(keys), log)
        generation = root / new_generation_name()
        (staging / MANIFEST).write_text(json.dumps({
            "features": keys, "torch": asdict(torch) if torch else None, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "packages": {package.name: package.version for package in plan.packages},
        }, indent=2), encoding="utf-8")
        os.replace(staging, generation)
        set_active(root, generation)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    log(f"Installed into {generation}; it is now SatVision's active packages folder.")
    _prune(root, generation, previous)
    progress(100)
    from .activate import activate, loaded_from

    restart = bool(previous and loaded_from(previous))
    activate(facts.profile_dir, facts.python_version)
    return Outcome(request.mode, generation, keys, torch, plan, _versions(generation), restart)


def _remove(root: Path, log: Log) -> Outcome:
    folder = active_generation(root)
    set_active(root, None)
    shutil.rmtree(root / PIP_FOLDER, ignore_errors=True)
    left = []
    for generation in generations(root):
        shutil.rmtree(generation, ignore_errors=True)
        if generation.exists():
            left.append(str(generation))
    log("SatVision's packages folder is no longer used" + (f" ({folder})" if folder else " (nothing was installed)") + ".")
    if left:
        log("Some files are in use and stay until QGIS restarts (run remove again then): " + ", ".join(left))
    return Outcome("remove", None, [], None, None, {}, restart_needed=bool(folder))


def _prune(root: Path, active: Path, previous: Path | None) -> None:
    """Delete the generations other than the active and the previous one, and staging folders left
    by a QGIS that was killed mid-install (best effort: files in use stay until the next time)."""
    from .activate import loaded_from

    keep = {active, previous}
    for generation in generations(root):
        if generation not in keep and not loaded_from(generation):  # this session may still import from it lazily
            shutil.rmtree(generation, ignore_errors=True)
    for leftover in [*root.glob(STAGING_PREFIX + "*"), *root.glob(WORK_PREFIX + "*")]:
        if time.time() - leftover.stat().st_mtime > STALE_STAGING_SECONDS:
            shutil.rmtree(leftover, ignore_errors=True)


def _manifest(folder: Path | None) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8")) if folder else {}
    except (OSError, ValueError):
        return {}


def _versions(folder: Path | None) -> dict[str, str]:
    """distribution -> version of what is installed in ``folder`` (its *.dist-info)."""
    if folder is None or not folder.is_dir():
        return {}
    from importlib.metadata import distributions

    return {distribution.metadata["Name"]: distribution.version for distribution in distributions(path=[str(folder)])}
