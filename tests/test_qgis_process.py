"""The plugin as ``qgis_process`` loads it on a server: listing, running diagnose, no torch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests_helpers import qgis_process_json

pytestmark = pytest.mark.qgis_process

REPORT_FIELDS = {
    "satvision", "qgis", "python", "gdal", "packages", "missing_packages",
    "compute_device", "models", "model_folders", "earth_engine",
}
ALGORITHMS = ("diagnose", "fetchsentinel2", "exporttrainingpairs", "segmentwater", "classifytiles", "generateimagery")
PACKAGE_FIELDS = {
    "torch", "torchvision", "timm", "segmentation_models_pytorch", "diffusers",
    "transformers", "rasterio", "earthengine_api",
}


def test_the_provider_and_its_algorithms_are_listed(qgis_process):
    completed = qgis_process("list")
    assert completed.returncode == 0, completed.stderr
    assert "SatVision" in completed.stdout
    for algorithm in ALGORITHMS:
        assert f"satvision:{algorithm}" in completed.stdout


def test_help_describes_diagnose(qgis_process):
    completed = qgis_process("help", "satvision:diagnose")
    assert completed.returncode == 0 and "compute device" in completed.stdout


def test_diagnose_json_returns_every_field(qgis_process, tmp_path):
    answer = qgis_process_json(qgis_process("run", "satvision:diagnose", "--json", "--", f"OUTPUT={tmp_path / 'r.json'}"))
    results = answer["results"]
    assert REPORT_FIELDS <= set(results)
    assert PACKAGE_FIELDS <= set(results["packages"])
    assert results["qgis"] == answer["qgis_version"]
    assert results["compute_device"]["available"] is True
    assert results["TORCH_VERSION"] == results["packages"]["torch"]
    assert json.loads(Path(tmp_path / "r.json").read_text())["gdal"] == results["gdal"]


def test_the_provider_loads_without_torch_and_diagnose_says_how_to_install(qgis_process, tmp_path):
    shadow = tmp_path / "no-torch"
    (shadow / "torch").mkdir(parents=True)
    (shadow / "torch" / "__init__.py").write_text("raise ImportError('No module named torch (hidden by the test)')\n")
    import os

    hide_torch = {"PYTHONPATH": f"{shadow}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    listed = qgis_process("list", env=hide_torch)
    assert listed.returncode == 0 and all(f"satvision:{algorithm}" in listed.stdout for algorithm in ALGORITHMS)
    results = qgis_process_json(qgis_process("run", "satvision:diagnose", "--json", env=hide_torch))["results"]
    device = results["compute_device"]
    assert device["available"] is False and "PyTorch is not usable" in device["problem"]
