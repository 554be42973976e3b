"""The "Device" parameter: only the devices this machine can have, at indexes that never move.

Processing stores an enum by index (batch files, graphical models, qgis_process commands), so the
order is fixed everywhere and Apple's MPS, which exists only on macOS on Apple silicon, comes last:
leaving it out elsewhere moves no other choice. The platform decides, never an import of torch
(the toolbox must open fast and without torch installed).
"""

from __future__ import annotations

import platform

from qgis.core import QgsProcessingParameterEnum

#: (value for the core, label) in the fixed order of the enum's indexes
DEVICE_OPTIONS: tuple[tuple[str, str], ...] = (
    ("auto", "Automatic"),
    ("cpu", "CPU"),
    ("cuda", "CUDA GPU (NVIDIA)"),
    ("mps", "Apple GPU (MPS)"),
)


def mps_possible() -> bool:
    """Whether this machine can have Apple's MPS at all: macOS on Apple silicon (arm64)."""
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def offered_devices() -> list[str]:
    """The values offered here, in the fixed order (``mps`` only where it can exist)."""
    return [value for value, _ in DEVICE_OPTIONS if value != "mps" or mps_possible()]


def device_parameter(name: str) -> QgsProcessingParameterEnum:
    """Enum "Device" over :func:`offered_devices`, default automatic."""
    labels = dict(DEVICE_OPTIONS)
    automatic = "a CUDA GPU, then the Apple GPU, then the CPU" if mps_possible() else "a CUDA GPU if present, else the CPU"
    options = [f"{labels[value]} ({automatic})" if value == "auto" else labels[value] for value in offered_devices()]
    return QgsProcessingParameterEnum(name, "Device", options=options, defaultValue=0)


def device_value(index: int) -> str:
    """The core's device name for the enum ``index`` (the same on every machine)."""
    return DEVICE_OPTIONS[index][0]


#: Help shared by the algorithms' Device parameters.
DEVICE_HELP = (
    "Where the model runs. Automatic picks a CUDA GPU when PyTorch sees one"
    + (", then the Apple GPU (MPS)" if mps_possible() else "")
    + ", else the CPU; the output 'Device that ran the model' and the log say what ran. "
    "Choosing a GPU that is not available stops with a message instead of silently using the CPU."
)
