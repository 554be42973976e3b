"""The diagnostics report users paste into bug reports (``satvision:diagnose``, ``satvision diagnose``).

It reports on the layers below the command line (core, models, Earth Engine), so it sits above
them, at the package root, and imports them directly (all light: no torch, no Earth Engine API)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Any, Iterable

from .core.dependencies import import_error, interpreter_path
from .core.devices import describe_device, resolve_device
from .core.triton_guard import triton_state
from .earthengine.credentials import credentials_status
from .installer.report import installation_report
from .models.catalog import BUNDLED_MODELS_DIR, list_models
from .models.catalog import user_model_dirs as resolve_model_dirs
from .version import __version__

#: report key → (distribution name, import name)
PACKAGES = {
    "torch": ("torch", "torch"),
    "torchvision": ("torchvision", "torchvision"),
    "timm": ("timm", "timm"),
    "segmentation_models_pytorch": ("segmentation-models-pytorch", "segmentation_models_pytorch"),
    "diffusers": ("diffusers", "diffusers"),
    "transformers": ("transformers", "transformers"),
    "safetensors": ("safetensors", "safetensors"),
    "rasterio": ("rasterio", "rasterio"),
    "numpy": ("numpy", "numpy"),
    "earthengine_api": ("earthengine-api", "ee"),
}


def package_versions() -> dict[str, str | None]:
    """Installed version of each package, ``None`` when it is not installed."""
    versions: dict[str, str | None] = {}
    for key, (distribution, module) in PACKAGES.items():
        try:
            versions[key] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            loaded = sys.modules.get(module)
            versions[key] = getattr(loaded, "__version__", None) if loaded else None
    return versions


def gdal_version() -> str | None:
    try:
        from osgeo import gdal

        return gdal.__version__
    except ImportError:
        pass
    try:
        import rasterio

        return rasterio.__gdal_version__
    except ImportError:
        return None


def compute_device_report() -> dict[str, Any]:
    """The device ``auto`` would pick, or why none can run."""
    problem = import_error("torch")
    if problem:
        return {"type": None, "available": False, "problem": f"PyTorch is not usable: {problem}"}
    report = describe_device(resolve_device("auto"))
    report["available"] = True
    return report


def collect_report(qgis_version: str | None = None, user_model_dirs: Iterable[str] = ()) -> dict[str, Any]:
    """Everything a bug report needs: versions, device, models, Earth Engine credentials."""
    folders = [str(folder) for folder in resolve_model_dirs(user_model_dirs)]
    versions = package_versions()
    return {
        "satvision": __version__,
        "qgis": qgis_version,
        "python": platform.python_version(),
        "python_executable": str(interpreter_path()),
        "platform": platform.platform(),
        "gdal": gdal_version(),
        "packages": versions,
        "missing_packages": sorted(name for name, version in versions.items() if version is None),
        "compute_device": compute_device_report(),
        # satvision:installdependencies: its folder, versions, and whether the torch build fits the GPU
        "installed_packages": installation_report(platform.system()),
        # "blocked" inside QGIS: see core/triton_guard.py (SATVISION_ALLOW_TRITON=1 lifts it)
        "triton": triton_state(),
        "model_folders": {"bundled": str(BUNDLED_MODELS_DIR), "user": folders},
        "models": [entry.summary(include_card=True) for entry in list_models(folders)],
        "earth_engine": credentials_status(),
        "environment": {name: os.environ[name] for name in ("QGIS_PLUGINPATH", "SATVISION_MODELS_DIR") if name in os.environ},
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as indented text for logs and terminals."""
    lines: list[str] = []

    def emit(key: str, value: Any, depth: int, absent: str = "none") -> None:
        pad = "  " * depth
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            for inner_key, inner_value in value.items():
                emit(inner_key, inner_value, depth + 1, "not installed" if key == "packages" else "none")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{key}:")
            for item in value:
                lines.append(f"{pad}  - {item.get('name', '')}")
                for inner_key, inner_value in item.items():
                    if inner_key != "name":
                        emit(inner_key, inner_value, depth + 2)
        else:
            shown = (", ".join(map(str, value)) or "none") if isinstance(value, list) else (absent if value is None else value)
            lines.append(f"{pad}{key}: {shown}")

    for key, value in report.items():
        emit(key, value, 0)
    return "\n".join(lines)
