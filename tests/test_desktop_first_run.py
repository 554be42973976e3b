"""A new user's first run in the real QGIS desktop (Xvfb with GLX), in a fresh profile where PyTorch
is not importable: Segment water fails with a message naming Install dependencies; Install
dependencies, run from its dialog, installs the segmentation set from the package registry into the
profile's packages folder; Segment water, run again in the same session, makes the water polygons;
QGIS exits cleanly. The run is the session fixture ``first_run_in_the_desktop`` (conftest.py,
tests/desktop_first_run.py), shared with tests/test_installer_qgis_process.py so PyTorch is installed
once per test session (minutes: about 2.8 GB from the registry, 5.4 GB on disk).
"""

from __future__ import annotations

import json
from pathlib import Path

from satvision.installer.locations import PACKAGES_FOLDER, active_generation


def test_missing_packages_then_install_dependencies_then_segment_water_in_the_qgis_desktop(first_run_in_the_desktop):
    first_run = first_run_in_the_desktop
    output = first_run.completed.stdout + first_run.completed.stderr
    assert first_run.completed.returncode == 0 and "QGIS died on signal" not in output, (first_run.completed.returncode, output[-4000:])
    report = first_run.report
    assert report["errors"] == [], report["errors"]
    assert report["plugin_active"] and report["provider"] and report["input_loaded"]

    # 1. torch is not importable, and Segment water says what to do
    assert report["torch_before"] is None, "the development environment must be hidden"
    failed = report["runs"]["water_before_install"]
    assert not failed["successful"] and not failed["timed_out"], failed["log"][-3000:]
    assert "PyTorch" in failed["log"] and "Install dependencies" in failed["log"], failed["log"][-3000:]
    assert "satvision:installdependencies --FEATURES=0" in failed["log"]

    # 2. Install dependencies from its dialog: the segmentation set, into the profile's packages folder
    install = report["runs"]["install"]
    assert install["successful"] and not install["timed_out"], install["log"][-5000:]
    folder = Path(install["results"]["FOLDER"])
    assert folder.parent.parent == first_run.profiles / "profiles" / "default" / "python" / PACKAGES_FOLDER
    assert active_generation(folder.parent) == folder
    assert "torch" in json.loads(install["results"]["VERSIONS"])
    assert (report["torch_after_install"] or "").startswith(str(folder) + "/"), report["torch_after_install"]

    # 3. Segment water again in the same session: water polygons on the map
    water = report["runs"]["water"]
    assert water["successful"] and not water["timed_out"], water["log"][-3000:]
    (layer,) = [layer for layer in report["layers"] if Path(layer["source"].split("|")[0]).name == "water.gpkg"]
    assert layer["valid"] and "Polygon" in layer["geometry"] and layer["features"] >= 1  # the crop holds open water
    assert not [layer for layer in report["layers"] if "water_before_install" in layer["source"]]

    # QGIS's numpy is the same file, unchanged, before and after
    assert report["numpy_after"] == report["numpy_before"]
