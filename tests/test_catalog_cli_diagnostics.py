"""Model catalogue, the diagnostics report and the command line, without QGIS."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from satvision import __version__
from satvision.core.dependencies import install_hint, require
from satvision.core.errors import MissingDependencyError
from satvision.diagnostics import collect_report, format_report
from satvision.models.catalog import list_models
from satvision.models.modelfile import read_card

ROOT = Path(__file__).resolve().parent.parent


def satvision(*arguments: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "satvision", *arguments], capture_output=True, text=True, cwd=ROOT, **kwargs)


def test_user_models_are_found_from_the_environment_and_folders(saved_model, tmp_path, monkeypatch):
    env_folder = tmp_path / "env-models"
    env_folder.mkdir()
    shutil.copy(saved_model, env_folder / "from-env.safetensors")
    (env_folder / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    monkeypatch.setenv("SATVISION_MODELS_DIR", str(env_folder))
    entries = list_models([saved_model.parent], bundled_dir=tmp_path / "no-bundled")
    by_file = {entry.path.name: entry for entry in entries}
    assert set(by_file) == {"tiny.safetensors", "from-env.safetensors", "broken.safetensors"}
    assert all(entry.source == "user" for entry in entries)
    assert by_file["from-env.safetensors"].card.name == "tiny-water-unet"
    assert by_file["broken.safetensors"].card is None and "damaged or truncated" in by_file["broken.safetensors"].error
    assert [entry.path.name for entry in list_models([env_folder], task="segmentation", bundled_dir=tmp_path / "none")] == ["from-env.safetensors"]
    assert list_models([env_folder], task="classification", bundled_dir=tmp_path / "none") == []


def test_bundled_models_are_listed_first(saved_model, tmp_path):
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    shutil.copy(saved_model, bundled / "default.safetensors")
    entries = list_models([saved_model.parent], bundled_dir=bundled)
    assert [(entry.source, entry.path.name) for entry in entries] == [("bundled", "default.safetensors"), ("user", "tiny.safetensors")]


def test_diagnostics_report_versions_device_models_and_credentials(saved_model):
    report = collect_report(qgis_version="3.22.16", user_model_dirs=[str(saved_model.parent)])
    assert report["satvision"] == __version__ and report["qgis"] == "3.22.16"
    assert report["gdal"].startswith("3.")
    expected_packages = {
        "torch", "torchvision", "timm", "segmentation_models_pytorch", "diffusers",
        "transformers", "rasterio", "earthengine_api", "safetensors", "numpy",
    }
    assert set(report["packages"]) == expected_packages
    import torch

    assert report["packages"]["torch"] == torch.__version__.split("+")[0] or report["packages"]["torch"] == torch.__version__
    device = report["compute_device"]
    assert device["available"] and device["type"] == ("cuda" if torch.cuda.is_available() else "cpu")
    if device["type"] == "cpu":
        assert device["threads"] == torch.get_num_threads()
    assert [model["name"] for model in report["models"] if model["source"] == "user"] == ["tiny-water-unet"]
    assert report["models"][-1]["task"] == "segmentation"
    assert report["models"][-1]["card"] == read_card(saved_model).to_dict()
    text = format_report(report)
    assert "compute_device:" in text and "tiny-water-unet" in text


def test_earth_engine_credentials_are_reported_without_secrets(tmp_path, monkeypatch):
    key = tmp_path / "key.json"
    secret = "-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n"
    key.write_text(json.dumps({"type": "service_account", "client_email": "bot@proj.iam.gserviceaccount.com",
                               "private_key": secret, "private_key_id": "abc123secretid"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.setenv("EARTHENGINE_PROJECT", "my-ee-project")
    report = collect_report()
    credentials = report["earth_engine"]
    assert credentials["configured"] and credentials["kind"] == "service account key"
    assert credentials["service_account"] == "bot@proj.iam.gserviceaccount.com"
    assert credentials["project"] == "my-ee-project"
    dumped = json.dumps(report) + format_report(report)
    assert "SECRETSECRET" not in dumped and "abc123secretid" not in dumped


def test_missing_credentials_say_how_to_configure(tmp_path, monkeypatch):
    for variable in ("GOOGLE_APPLICATION_CREDENTIALS", "SATVISION_EE_SERVICE_ACCOUNT_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # the client reads ~/.config/earthengine/credentials only
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    credentials = collect_report()["earth_engine"]
    assert not credentials["configured"] and "earthengine authenticate" in credentials["problem"]
    folder = tmp_path / ".config" / "earthengine"
    folder.mkdir(parents=True)
    (folder / "credentials").write_text('{"refresh_token": "TOKEN-SECRET"}')
    credentials = collect_report()["earth_engine"]
    assert credentials["configured"] and "TOKEN-SECRET" not in json.dumps(credentials)


def test_a_missing_package_error_says_how_to_install():
    with pytest.raises(MissingDependencyError,
                       match=r"not installed\. Install into the Python that runs SatVision: .*python3\.\d+ -m pip install no_such_package_xyz"):
        require("torch", "no_such_package_xyz")
    # known packages are named by their pip requirement, not their import name
    assert "pip install segmentation-models-pytorch earthengine-api" in install_hint(["segmentation_models_pytorch", "ee"])


def test_cli_version_and_diagnose_json():
    assert satvision("--version").stdout.strip() == f"satvision {__version__}"
    completed = satvision("diagnose", "--json")
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert {"packages", "compute_device", "models", "earth_engine", "gdal", "python"} <= set(report)


def test_cli_models_list_show_and_convert(saved_model, tmp_path, make_card):
    listed = satvision("models", "list", "--folder", str(saved_model.parent), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [entry["name"] for entry in json.loads(listed.stdout) if entry["source"] == "user"] == ["tiny-water-unet"]
    shown = satvision("models", "show", str(saved_model))
    assert json.loads(shown.stdout)["architecture"]["id"] == "unet"

    import torch

    from satvision.models.architectures import build_network

    checkpoint = tmp_path / "weights.pth"
    torch.save(build_network(make_card()).state_dict(), checkpoint)
    card_file = tmp_path / "card.json"
    card_file.write_text(make_card().to_json())
    converted = satvision("models", "convert", str(checkpoint), "--card", str(card_file), str(tmp_path / "out.safetensors"))
    assert converted.returncode == 0, converted.stderr
    assert json.loads(satvision("models", "show", str(tmp_path / "out.safetensors")).stdout)["name"] == "tiny-water-unet"


def test_cli_errors_are_one_clear_line_without_traceback(tmp_path):
    completed = satvision("models", "show", str(tmp_path / "absent.safetensors"))
    assert completed.returncode == 2
    assert completed.stderr.startswith("satvision: error: The model file") and "Traceback" not in completed.stderr


def test_cli_sample_data_writes_the_scene_and_a_preview(tmp_path):
    completed = satvision("sample-data", str(tmp_path / "s2.tif"), "--bands", "B4,B8,B11", "--preview", str(tmp_path / "s2.png"))
    assert completed.returncode != 0 and "B2" in completed.stderr  # the true-colour preview needs B2, B3, B4
    completed = satvision("sample-data", str(tmp_path / "s2.tif"), "--bands", "B2,B3,B4,B11", "--preview", str(tmp_path / "s2.png"))
    assert completed.returncode == 0, completed.stderr
    from PIL import Image

    from satvision.core.raster import open_raster

    with open_raster(tmp_path / "s2.tif") as dataset:
        assert dataset.descriptions == ("B2", "B3", "B4", "B11") and dataset.res == (10.0, 10.0)
        assert dataset.read(4).mean() > 0  # the 20 m band was resampled onto the 10 m grid
    with Image.open(tmp_path / "s2.png") as preview:
        assert preview.mode == "RGBA" and max(preview.size) == 1024


def test_the_core_imports_without_qgis_or_torch():
    """Architecture rule: models, raster core, Earth Engine client and CLI are plain Python."""
    code = (
        "import sys, satvision, satvision.models, satvision.models.modelfile, satvision.core.raster, "
        "satvision.diagnostics, satvision.earthengine.credentials, satvision.cli.main, satvision.training; "
        "loaded = sorted(name for name in ('qgis', 'processing', 'torch') if name in sys.modules); "
        "print(','.join(loaded))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == ""
