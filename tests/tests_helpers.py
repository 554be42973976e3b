"""Helpers importable by test modules (conftest fixtures are not importable)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np


def qgis_process_json(completed: subprocess.CompletedProcess) -> dict:
    """The JSON answer of ``qgis_process --json`` (stdout), failing with its output on error."""
    assert completed.returncode == 0, f"exit {completed.returncode}\n{completed.stdout}\n{completed.stderr}"
    return json.loads(completed.stdout)


#: Mean colours of the synthetic classes (RGB, 8-bit): easy to tell apart, noisy enough to need learning.
COLOURS = {"Forest": (40, 90, 40), "SeaLake": (20, 40, 110), "AnnualCrop": (170, 150, 80)}


def write_image_folders(root: Path, per_class: int = 24, size: int = 16, seed: int = 0) -> Path:
    """A folder of class sub-folders (the EuroSAT layout) of noisy 8-bit PNG tiles in ``COLOURS``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True)
        for index in range(per_class):
            pixels = np.clip(np.array(colour)[:, None, None] + rng.normal(0, 25, (3, size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels.transpose(1, 2, 0)).save(folder / f"{name}_{index}.png")
    return root
