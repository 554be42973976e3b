"""The "Device" parameter: only the devices this machine can have, at indexes that never move.

Processing stores an enum by index (batch files, graphical models, qgis_process commands), so the
order is fixed everywhere and Apple's MPS, which exists only on macOS on Apple silicon, comes last:
leaving it out elsewhere moves no other choice. The platform decides, never an import of torch
(the toolbox must open fast and without torch installed). The label, help and default are the
``device`` field's declaration on the job's settings (:mod:`inference.common_options`).
"""

from __future__ import annotations

import platform

from qgis.core import QgsProcessingParameterEnum

from .declared_parameters import declared_option
from .qgis_enums import set_help

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


def device_parameter(name: str, settings_class: type) -> QgsProcessingParameterEnum:
    """Enum over :func:`offered_devices` with the label, help and default of ``settings_class.device``."""
    item = declared_option(settings_class, "device")
    labels = dict(DEVICE_OPTIONS)
    automatic = "a CUDA GPU, then the Apple GPU, then the CPU" if mps_possible() else "a CUDA GPU if present, else the CPU"
    offered = offered_devices()
    options = [f"{labels[value]} ({automatic})" if value == "auto" else labels[value] for value in offered]
    parameter = QgsProcessingParameterEnum(name, item.option.label, options=options, defaultValue=offered.index(item.default))
    return set_help(parameter, item.option.help)


def device_value(index: int) -> str:
    """The core's device name for the enum ``index`` (the same on every machine)."""
    return DEVICE_OPTIONS[index][0]
