"""The real QGIS desktop, as a user runs it: Xvfb with GLX (so Mesa's OpenGL and libLLVM are
loaded, as on a Linux desktop), the plugin enabled in a fresh profile, Segment water and Classify
tiles run from their dialogs. Before the triton guard this killed QGIS with signal 11.

Also the guard on its own, in a plain Python process that loads libLLVM the way Mesa does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from desktop_session import QGIS, crop_scene, fresh_profiles, plugins_folder, start_xvfb

DRIVER = Path(__file__).resolve().parent / "desktop_driver.py"


def test_the_heavy_packages_import_beside_mesas_llvm_once_triton_is_kept_out():
    """What QGIS desktop does to the process: Mesa's libLLVM with global symbols, then torch & co."""
    code = (
        "import ctypes; ctypes.CDLL('libLLVM-15.so.1', mode=ctypes.RTLD_GLOBAL)\n"
        "from satvision.core.triton_guard import keep_triton_out\n"
        "assert keep_triton_out() == 'blocked'\n"
        "import torchvision, timm, segmentation_models_pytorch, diffusers, torch\n"
        "from torch.utils._triton import has_triton\n"
        "print(has_triton(), torch.nn.Conv2d(3, 2, 3)(torch.ones(1, 3, 8, 8)).shape[1])\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.split() == ["False", "2"]


def test_the_guard_can_be_lifted_and_leaves_other_processes_alone():
    code = (
        "import sys\n"
        "from satvision.core.triton_guard import keep_triton_out, triton_state\n"
        "before = triton_state()\n"
        "print(before, keep_triton_out())\n"
    )
    environment = {**os.environ, "SATVISION_ALLOW_TRITON": "1"}
    lifted = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=60)
    assert lifted.stdout.split() == ["not", "imported", "not", "imported"], lifted.stderr
    environment.pop("SATVISION_ALLOW_TRITON")
    guarded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=60)
    assert guarded.stdout.split() == ["not", "imported", "blocked"], guarded.stderr


@pytest.fixture
def small_scene(scene, tmp_path) -> Path:
    return crop_scene(scene, tmp_path / "small.tif")


def test_segment_water_and_classify_tiles_run_from_their_dialogs_in_the_qgis_desktop(small_scene, tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    report_path = tmp_path / "report.json"
    server, display = start_xvfb(tmp_path / "xvfb.log")
    environment = {
        key: value for key, value in os.environ.items() if key not in ("QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH")
    }
    environment.update({
        "DISPLAY": display,
        "QGIS_PLUGINPATH": str(plugins_folder()),
        "PYTHONPATH": sysconfig.get_paths()["purelib"],  # the project's venv: torch & co.
        "XDG_RUNTIME_DIR": str(tmp_path / "runtime"),
        "SATVISION_DESKTOP_TEST": json.dumps({
            "raster": str(small_scene), "output_folder": str(outputs), "report": str(report_path), "timeout_s": 240,
        }),
    })
    environment.pop("SATVISION_ALLOW_TRITON", None)
    (tmp_path / "runtime").mkdir(mode=0o700)
    try:
        completed = subprocess.run(
            [QGIS, "--nologo", "--noversioncheck", "--profiles-path", str(fresh_profiles(tmp_path / "profile")),
             "--code", str(DRIVER)],
            capture_output=True, text=True, env=environment, timeout=600,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    died = "QGIS died on signal" in completed.stdout + completed.stderr
    assert completed.returncode == 0 and not died, (completed.returncode, (completed.stdout + completed.stderr)[-4000:])
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["errors"] == []
    # the conditions of the crash were there: Mesa's GL driver and its LLVM in the process
    assert any(name.startswith("libLLVM") for name in report["libraries"]), report["libraries"]
    assert not any("libtriton" in name for name in report["libraries"])
    assert report["plugin_active"] and report["provider"] and report["input_loaded"]

    for algorithm_id in ("satvision:segmentwater", "satvision:classifytiles"):
        run = report["runs"][algorithm_id]
        assert run["successful"] and not run.get("timed_out"), run["log"][-3000:]

    layers = {Path(layer["source"].split("|")[0]).name: layer for layer in report["layers"]}
    water = layers["water.gpkg"]
    assert water["valid"] and water["renderer"] == "singleSymbol" and water["colour"] == "#1f78b4"
    assert water["features"] >= 1  # the crop holds open water
    tiles = layers["tiles.gpkg"]
    assert tiles["valid"] and tiles["renderer"] == "categorizedSymbol" and tiles["features"] == 16
    assert len(tiles["categories"]) == 11  # ten EuroSAT classes and the hollow "no data" one
    probability = layers["water_probability.tif"]
    assert probability["valid"] and probability["renderer"] == "singlebandpseudocolor"
    order = report["tree_order"]
    assert order.index(water["name"]) < order.index(probability["name"]), order  # polygons drawn above
