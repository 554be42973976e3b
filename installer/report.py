"""What ``satvision:diagnose`` says about the installed packages: the active folder, its versions, and
whether the PyTorch build fits the GPU (a CPU build on a machine with an NVIDIA GPU is the classic
"GPU detected but CPU used")."""

from __future__ import annotations

import json
import re
import sys
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from .locations import GENERATION_PREFIX, MANIFEST, PACKAGES_FOLDER
from .torch_builds import CUDA_BUILDS, GpuFacts, version_tuple

FIX = "run Install dependencies (Processing Toolbox > SatVision > Tools) with mode Repair and PyTorch build Automatic"


def active_folder(path: list[str] | None = None) -> Path | None:
    """The packages folder the provider put on ``sys.path`` (None when SatVision's installer is not in use)."""
    for entry in sys.path if path is None else path:
        folder = Path(entry)
        if folder.name.startswith(GENERATION_PREFIX) and folder.parent.parent.name == PACKAGES_FOLDER and folder.is_dir():
            return folder
    return None


def folder_report(folder: Path | None) -> dict[str, Any]:
    """The folder, the feature sets and torch build it was installed with, and the versions in it."""
    if folder is None:
        return {"folder": None, "features": [], "torch_build": None, "versions": {}}
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    versions = {distribution.metadata["Name"]: distribution.version for distribution in distributions(path=[str(folder)])}
    torch = manifest.get("torch") or {}
    return {"folder": str(folder), "features": manifest.get("features", []), "torch_build": torch.get("tag"),
            "versions": dict(sorted(versions.items()))}


def torch_build_check(torch_version: str | None, torch_cuda: str | None, gpu: GpuFacts | None, system: str) -> dict[str, Any]:
    """Whether the installed torch build fits the GPU: ``matches`` False with the fix when it does not.

    ``torch_cuda`` is ``torch.version.cuda`` (None for CPU and MPS builds); ``gpu`` what nvidia-smi says.
    """
    built_for = f"CUDA {torch_cuda}" if torch_cuda else "CPU (or Apple MPS)"
    found = f"NVIDIA {gpu.name + ' ' if gpu.name else ''}with driver {gpu.driver}" if gpu else "no NVIDIA GPU"
    check: dict[str, Any] = {"torch": torch_version, "built_for": built_for if torch_version else None, "gpu": found}
    if torch_version is None:
        return {**check, "matches": None, "advice": "PyTorch is not installed: " + FIX.replace("Repair", "Install")}
    if gpu is None:
        advice = ("a CUDA build runs on the CPU here; the CPU build is a much smaller download" if torch_cuda else "")
        return {**check, "matches": True, "advice": advice}
    if not torch_cuda:
        return {**check, "matches": False,
                "advice": f"this PyTorch is a CPU build but an NVIDIA GPU is present, so models run on the CPU: {FIX}"}
    needed = _minimum_driver(torch_cuda, system)
    if needed and version_tuple(gpu.driver) < version_tuple(needed):
        return {**check, "matches": False,
                "advice": f"CUDA {torch_cuda} needs driver >= {needed}: update the NVIDIA driver, or {FIX}"}
    return {**check, "matches": True, "advice": ""}


def _minimum_driver(cuda: str, system: str) -> str | None:
    wanted = tuple(int(part) for part in re.findall(r"\d+", cuda)[:2])
    for build in CUDA_BUILDS:
        if tuple(int(part) for part in build.cuda.split(".")) == wanted:
            return build.windows_driver if system == "Windows" else build.linux_driver
    return None


def installation_report(system: str) -> dict[str, Any]:
    """The folder report and the torch build check for the running Python (imports torch, as the
    diagnostics' device report does anyway)."""
    from .torch_builds import query_gpu

    try:
        import torch

        torch_version, torch_cuda = torch.__version__, torch.version.cuda
    except Exception:  # noqa: BLE001 - not installed or broken: reported as not installed
        torch_version = torch_cuda = None
    return {**folder_report(active_folder()), "torch_check": torch_build_check(torch_version, torch_cuda, query_gpu(), system)}
