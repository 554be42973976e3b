"""What QGIS ships that pip must never install, upgrade or shadow, and the constraints file pinning it.

GDAL's Python bindings, PyQt and sip are built with QGIS, and numpy (with the packages compiled
against it that QGIS installers ship) must stay the build GDAL was compiled against: a pip that
replaces numpy breaks ``from osgeo import gdal`` and every raster algorithm.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

#: normalised distribution names never installed into SatVision's folder
PROTECTED = frozenset({
    "numpy", "gdal", "pyqt5", "pyqt6", "pyqt5-sip", "pyqt6-sip", "sip", "pyqt5-qt5", "pyqt6-qt6", "qgis",
    # compiled against numpy and shipped by QGIS installers (OSGeo4W, QGIS.app) or Linux distributions
    "scipy", "pandas", "matplotlib", "shapely", "pyproj", "h5py", "netcdf4", "rasterio", "fiona", "numexpr",
})


def normalise(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_protected(name: str) -> bool:
    return normalise(name) in PROTECTED


def protected_versions() -> dict[str, str]:
    """The protected distributions installed in the running Python (QGIS's), with their versions.

    numpy's version is read from the imported module when it is loaded: that build is the one QGIS uses.
    """
    versions: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = normalise(distribution.metadata.get("Name") or "")
        if name in PROTECTED and name not in versions:
            versions[name] = distribution.version
    try:
        import numpy

        versions["numpy"] = numpy.__version__
    except ImportError:
        pass
    return versions


def constraints_text(versions: dict[str, str]) -> str:
    """A pip constraints file pinning each of ``versions``: pip's resolver then picks only packages that
    work with QGIS's numpy (and the rest), or fails saying which requirement conflicts."""
    lines = ["# Written by SatVision's installer: what QGIS's Python ships, pinned (never replaced)."]
    lines += [f"{name}=={version}" for name, version in sorted(versions.items())]
    return "\n".join(lines) + "\n"


def write_constraints(path: Path, versions: dict[str, str]) -> Path:
    path.write_text(constraints_text(versions), encoding="utf-8")
    return path
