"""Optional heavy dependencies, imported only when needed, with install instructions.

The QGIS provider must load when torch and friends are missing; the algorithms that need
them then fail with a message naming the package and the command that installs it into the
Python that is running (QGIS's own Python inside QGIS).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

#: import name → (pip requirement, what it is for)
PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("torch", "PyTorch, which runs every model"),
    "torchvision": ("torchvision", "torchvision, used by timm and segmentation models"),
    "timm": ("timm", "timm, the image-model backbones"),
    "segmentation_models_pytorch": ("segmentation-models-pytorch", "segmentation-models-pytorch, the UNet family"),
    "safetensors": ("safetensors", "safetensors, the model file format"),
    "diffusers": ("diffusers", "diffusers, the diffusion UNet and schedulers"),
    "transformers": ("transformers", "transformers, the CLIP text encoder"),
    "ee": ("earthengine-api", "earthengine-api, the Google Earth Engine client"),
    "rasterio": ("rasterio", "rasterio, raster reading and writing"),
}


def import_error(module: str) -> str | None:
    """Why ``module`` cannot be imported here, or ``None`` when it imports.

    Importing (rather than only finding) catches broken installs too, such as a package
    built against another numpy.
    """
    try:
        importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - any failure means unusable
        return f"{type(error).__name__}: {error}"
    return None


def missing(*modules: str) -> list[str]:
    """The import names among ``modules`` that cannot be imported here."""
    return [name for name in modules if import_error(name) is not None]


def interpreter_path() -> Path:
    """The Python interpreter running this code, also when embedded in QGIS.

    Inside QGIS ``sys.executable`` is the QGIS binary or whatever ``python3`` is on PATH, so
    the interpreter is derived from ``sys.prefix`` instead.
    """
    prefix = Path(sys.prefix)
    if os.name == "nt":
        return prefix / "python.exe"
    return prefix / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"


#: import name -> the feature set of ``satvision:installdependencies`` that installs it
#: (``installer/features.py``; tests/test_installer.py checks the two agree)
FEATURE_OF: dict[str, str] = {
    "torch": "segmentation", "torchvision": "segmentation", "timm": "segmentation",
    "segmentation_models_pytorch": "segmentation", "safetensors": "segmentation",
    "diffusers": "generation", "transformers": "generation", "ee": "earthengine", "accelerate": "training",
}
#: the feature sets in the order of the algorithm's FEATURES parameter (its enum indexes)
FEATURE_ORDER: tuple[str, ...] = ("segmentation", "earthengine", "generation", "training")


def install_hint(modules: list[str]) -> str:
    """How to install ``modules``: the Install dependencies algorithm first, pip by hand for experts."""
    requirements = " ".join(PACKAGES.get(name, (name, ""))[0] for name in modules)
    features = list(dict.fromkeys(FEATURE_OF[name] for name in modules if name in FEATURE_OF))
    algorithm = ""
    if features:
        chosen = ", ".join(f"'{feature}'" for feature in features)
        # one comma-separated value: qgis_process 3.22 reads a repeated --FEATURES as no value at all
        arguments = "--FEATURES=" + ",".join(str(FEATURE_ORDER.index(feature)) for feature in features)
        algorithm = (
            f"run SatVision's Install dependencies (Processing Toolbox > SatVision > Tools > Install dependencies, "
            f"feature set{'s' if len(features) > 1 else ''} {chosen}; or in a terminal: qgis_process run satvision:installdependencies {arguments}), "
            "which picks the PyTorch build for this machine and never replaces QGIS's numpy or GDAL; or by hand: "
        )
    return (
        f"Install into the Python that runs SatVision: {algorithm}{interpreter_path()} -m pip install "
        f"{requirements} (Windows: in the OSGeo4W Shell; macOS: QGIS's bundled python3). "
        "See the README, section 'Installing in QGIS'."
    )


def require(*modules: str) -> None:
    """Raise :class:`MissingDependencyError` unless all ``modules`` can be imported."""
    from .errors import MissingDependencyError

    absent = missing(*modules)
    if absent:
        described = "; ".join(PACKAGES.get(name, (name, name))[1] for name in absent)
        raise MissingDependencyError(
            f"SatVision needs {described}, which {'is' if len(absent) == 1 else 'are'} not "
            f"installed. {install_hint(absent)}"
        )
