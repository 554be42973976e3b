"""The first-run path in the real QGIS desktop, run once per test session (the ``first_run_in_the_desktop``
fixture of conftest.py) because it installs PyTorch from the package registry (about 5.4 GB on disk).

A fresh profile, the plugin enabled, SatVision's development environment hidden (no PYTHONPATH, so
torch is not importable), Xvfb with GLX; tests/desktop_first_run_driver.py then runs Segment water
(fails, naming Install dependencies), Install dependencies (segmentation set) and Segment water again.
Two tests read the outcome: tests/test_desktop_first_run.py (the desktop's side) and
tests/test_installer_qgis_process.py (a new ``qgis_process`` on the installed profile).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from desktop_session import QGIS, crop_scene, fresh_profiles, plugins_folder, start_xvfb

DRIVER = Path(__file__).resolve().parent / "desktop_first_run_driver.py"
#: generous: a cold PyPI download of torch and its CUDA libraries takes minutes
INSTALL_TIMEOUT_S = 1500


@dataclass
class FirstRun:
    #: the QGIS profiles folder (``--profiles-path``; ``QGIS_CUSTOM_CONFIG_PATH`` for qgis_process)
    profiles: Path
    raster: Path
    completed: subprocess.CompletedProcess
    #: what the driver saw (tests/desktop_first_run_driver.py), empty when it wrote nothing
    report: dict


def run_first_run(folder: Path, scene: Path, torch_build: str) -> FirstRun:
    """The whole first-run path in one QGIS desktop session under ``folder``."""
    from satvision.installer.torch_builds import OVERRIDES

    outputs, runtime = folder / "outputs", folder / "runtime"
    outputs.mkdir()
    runtime.mkdir(mode=0o700)
    raster, report = crop_scene(scene, folder / "small.tif"), folder / "report.json"
    plugins = plugins_folder()
    # nothing of the development environment: QGIS's own Python plus the profile's packages folder
    hidden = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH", "SATVISION_ALLOW_TRITON")
    environment = {key: value for key, value in os.environ.items() if key not in hidden}
    server, display = start_xvfb(folder / "xvfb.log")
    environment.update({
        "DISPLAY": display,
        "QGIS_PLUGINPATH": str(plugins),
        "XDG_RUNTIME_DIR": str(runtime),
        "SATVISION_DESKTOP_TEST": json.dumps({
            "raster": str(raster), "output_folder": str(outputs), "report": str(report),
            "torch_build": OVERRIDES.index(torch_build), "timeout_s": 300, "install_timeout_s": INSTALL_TIMEOUT_S,
        }),
    })
    profiles = fresh_profiles(folder / "profiles")
    try:
        completed = subprocess.run(
            [QGIS, "--nologo", "--noversioncheck", "--profiles-path", str(profiles), "--code", str(DRIVER)],
            capture_output=True, text=True, env=environment, timeout=INSTALL_TIMEOUT_S + 600,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    answer = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
    return FirstRun(profiles, raster, completed, answer)
