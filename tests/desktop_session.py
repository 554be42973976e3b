"""What the desktop tests share: Xvfb with GLX, a fresh QGIS profile with SatVision enabled, the
plugins folder QGIS loads SatVision from, and the small real raster they run on."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parent.parent
QGIS = shutil.which("qgis") or "/usr/bin/qgis"
XVFB = shutil.which("Xvfb") or "/usr/bin/Xvfb"


def crop_scene(scene: Path, path: Path) -> Path:
    """256 × 256 px of the real Virginia scene: coast, channels and farmland."""
    with rasterio.open(scene) as source:
        window = Window(1500, 800, 256, 256)
        profile = {**source.profile, "width": 256, "height": 256, "transform": source.window_transform(window)}
        data, descriptions = source.read(window=window), source.descriptions
    with rasterio.open(path, "w", **profile) as target:
        target.write(data)
        target.descriptions = descriptions
    return path


def start_xvfb(log: Path) -> tuple[subprocess.Popen, str]:
    """Xvfb with GLX on a free display (it tells which through -displayfd)."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        [XVFB, "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "+extension", "GLX", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        number = pipe.readline().strip()
    assert number, f"Xvfb did not start: {log.read_text(errors='replace')}"
    return server, f":{number}"


def fresh_profiles(folder: Path) -> Path:
    """A profiles folder whose default profile has SatVision enabled (as the Plugin Manager leaves it)."""
    settings = folder / "profiles" / "default" / "QGIS"
    settings.mkdir(parents=True)
    (settings / "QGIS3.ini").write_text("[PythonPlugins]\nsatvision=true\n\n[qgis]\ncheckVersion=false\n", encoding="utf-8")
    return folder


def plugins_folder() -> Path:
    """``.build/plugins`` with SatVision linked in (``QGIS_PLUGINPATH``)."""
    plugins = ROOT / ".build" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    if not (plugins / "satvision").exists():
        (plugins / "satvision").symlink_to(ROOT)
    return plugins
