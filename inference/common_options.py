"""The options every model-running job has, declared once: device, batch size, test-time
augmentation, reflectance offset, band positions and extent (see :mod:`core.options`).

Each job's settings dataclass makes these fields with the factories below, so their help, label,
choices and default read the same in every job, on the command line and in Processing. Torch-free
and light: the command line builds its parsers from them.
"""

from __future__ import annotations

from typing import Any

from ..core.devices import DEVICE_CHOICES
from ..core.options import option
from ..models.augmented_views import TTA_MODES
from ..models.normalisation import AUTO

DEVICE_HELP = (
    "Where the model runs. Automatic (auto) picks a CUDA GPU when PyTorch sees one, then the Apple GPU (MPS) on a Mac "
    "with Apple silicon, else the CPU; the log says what ran. Choosing a GPU that is not available stops with a "
    "message instead of silently using the CPU."
)
TEST_TIME_AUGMENTATION_HELP = (
    "Runs the model on flipped (and 90°-rotated) copies of each tile, turns the results back and averages them: "
    "steadier results for 4 or 8 times the inference time. none: 1 pass; flips: 4 passes; d4: flips and 90° "
    "rotations, 8 passes. The model's default is what its card recommends."
)
REFLECTANCE_OFFSET_HELP = (
    "Raster values subtracted before the model sees them. Since January 2022 (processing baseline 04.00) "
    "Sentinel-2 L1C and L2A products store reflectance × 10000 + 1000; files exported from them keep that "
    "+1000, while Earth Engine's HARMONIZED collections remove it. auto (default) subtracts 1000 when the "
    "raster's metadata says so (BOA_ADD_OFFSET / RADIO_ADD_OFFSET) or when no sampled value of the model's bands "
    "is below 1000 and the darkest sampled value of the raster's Sentinel-2 bands (B10 too) lies between 900 and "
    "1200: a scene without the offset always has darker pixels (water, shadow, SWIR). The log says what was found. "
    "0 keeps the values as they are; a number subtracts that many."
)
BAND_POSITIONS_HELP = (
    "Leave empty to match the model's bands (e.g. B2, B3, B4, B8) with the raster's band descriptions. "
    "Choose raster bands here, in the model's order, when the raster's bands have no such descriptions or "
    "when it holds several sets of them (two dates in one stack: A_B4 … B_B8)."
)


def device_option() -> Any:
    """``device``: auto, cpu, cuda or mps (default auto)."""
    return option("auto", choices=DEVICE_CHOICES, label="Device", help=DEVICE_HELP)


def batch_size_option(default: int) -> Any:
    """``batch_size``: tiles per forward pass, at least 1."""
    return option(default, minimum=1, label="Batch size (tiles per forward pass)",
                  help="Tiles per forward pass: more is faster on a GPU but needs more memory.")


def test_time_augmentation_option() -> Any:
    """``test_time_augmentation``: none, flips or d4; None (default): the model card's."""
    return option(None, choices=TTA_MODES, flag="--tta", label="Test-time augmentation (average over flipped/rotated views)",
                  help=TEST_TIME_AUGMENTATION_HELP)


def reflectance_offset_option() -> Any:
    """``reflectance_offset``: ``auto`` (default) or a number of raster values (0: none); see models.normalisation."""
    return option(AUTO, metavar="auto|N", label="Reflectance offset (auto, or raster values to subtract; 0: none)",
                  help=REFLECTANCE_OFFSET_HELP)


def band_positions_option() -> Any:
    """``band_positions``: explicit 1-based raster bands in the model's order; None (default): by description."""
    return option(None, label="Bands in the model's order (empty: match band descriptions)", help=BAND_POSITIONS_HELP)
