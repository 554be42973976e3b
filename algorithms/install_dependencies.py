"""``satvision:installdependencies``: installs the Python packages of the chosen feature sets into the
plugin's own folder (the installer/ package does the work; this reads parameters and reports)."""

from __future__ import annotations

import json
import re
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterString,
)

from ..installer.features import FEATURE_SETS
from ..installer.install import MODES, Facts, Request, run
from ..installer.torch_builds import OVERRIDES
from .base import SatVisionAlgorithm

#: labels of the torch builds, in the fixed order of :data:`OVERRIDES` (Processing stores indexes:
#: a new CUDA build is appended there, never inserted)
TORCH_LABELS = {
    "auto": "Automatic (CUDA matched to the NVIDIA driver, Apple GPU on Apple silicon, else CPU)",
    "cpu": "CPU only",
    "default": "PyPI's default wheels",
}
MODE_LABELS = (
    "Install (adds the chosen feature sets)",
    "Plan only (lists what would be installed and the download size)",
    "Repair (reinstalls what is installed into a new folder)",
    "Remove (stops using SatVision's packages folder and deletes it)",
)


class InstallDependenciesAlgorithm(SatVisionAlgorithm):
    algorithm_id = "installdependencies"
    display_name = "Install dependencies"
    group_name = "Tools"
    group_key = "tools"
    help_text = (
        "Installs the Python packages SatVision needs (PyTorch and the model libraries, the Earth Engine "
        "client, the generation and training libraries) into a folder of the plugin, per QGIS profile and "
        "Python version, with the pip of QGIS's own Python. QGIS's numpy, GDAL and PyQt are never installed, "
        "upgraded or replaced: pip resolves against them (a constraints file pins them).\n\n"
        "The PyTorch build follows the machine: CUDA wheels matched to the NVIDIA driver (nvidia-smi), the "
        "default wheels (Apple GPU) on Apple silicon, CPU wheels otherwise; the log says which and why.\n\n"
        "Run 'Plan only' first to see the packages and the download size. An install goes into a new folder "
        "and is switched to only when complete and importable: a failure or a cancellation keeps the "
        "previous packages. Restart QGIS after replacing packages that were already in use.\n\n"
        "From a terminal: qgis_process run satvision:installdependencies --FEATURES=0 (several sets: --FEATURES=0,1)"
    )
    short_description = "Install PyTorch and SatVision's other Python packages into the plugin's folder, with the right torch build."

    FEATURES = "FEATURES"
    TORCH_BUILD = "TORCH_BUILD"
    MODE = "MODE"
    INDEX_URL = "INDEX_URL"
    FIND_LINKS = "FIND_LINKS"
    EXTRA_REQUIREMENTS = "EXTRA_REQUIREMENTS"

    parameter_help = {
        FEATURES: "What to install; sets installed earlier are kept. Segmentation and classification is what "
                  "Segment water and Classify tiles need.",
        TORCH_BUILD: "Automatic reads the NVIDIA driver version and picks the newest CUDA build it supports; "
                     "force CPU (smaller download) or a CUDA version here.",
        MODE: "Install, plan only, repair (reinstall into a new folder) or remove.",
        INDEX_URL: "A package index replacing PyPI (a company mirror), e.g. https://mirror.example/simple.",
        FIND_LINKS: "Folders or URLs of wheel files (a wheelhouse made with 'pip download'), separated by ';'. "
                    "With no index URL they are the only source: for machines without internet.",
        EXTRA_REQUIREMENTS: "Extra pip requirements, separated by ';' (e.g. timm==1.0.15), for experts.",
    }

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterEnum(
            self.FEATURES, "Feature sets", options=[feature.title for feature in FEATURE_SETS], allowMultiple=True, defaultValue=[0]))
        torch_options = [TORCH_LABELS.get(value, f"CUDA {value[2:-1]}.{value[-1]} ({value})") for value in OVERRIDES]
        self.addParameter(QgsProcessingParameterEnum(self.TORCH_BUILD, "PyTorch build", options=torch_options, defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(self.MODE, "Mode", options=list(MODE_LABELS), defaultValue=0))
        self.add_advanced_parameters([
            QgsProcessingParameterString(self.INDEX_URL, "Package index URL (instead of PyPI)", optional=True),
            QgsProcessingParameterString(self.FIND_LINKS, "Wheel folders or URLs (offline installs)", optional=True),
            QgsProcessingParameterString(self.EXTRA_REQUIREMENTS, "Extra requirements", optional=True),
        ])
        self.addOutput(QgsProcessingOutputString("FOLDER", "Active packages folder"))
        self.addOutput(QgsProcessingOutputString("VERSIONS", "Installed versions (JSON)"))
        self.addOutput(QgsProcessingOutputString("TORCH_BUILD_USED", "PyTorch build and why"))
        self.addOutput(QgsProcessingOutputNumber("DOWNLOAD_BYTES", "Download size of the plan (bytes)"))

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        request = Request(
            features=tuple(FEATURE_SETS[index].key for index in self.parameterAsEnums(parameters, self.FEATURES, context)),
            mode=MODES[self.parameterAsEnum(parameters, self.MODE, context)],
            torch_build=OVERRIDES[self.parameterAsEnum(parameters, self.TORCH_BUILD, context)],
            index_url=self.parameterAsString(parameters, self.INDEX_URL, context).strip(),
            find_links=_split(self.parameterAsString(parameters, self.FIND_LINKS, context)),
            extra_requirements=_split(self.parameterAsString(parameters, self.EXTRA_REQUIREMENTS, context)),
        )
        outcome = run(request, Facts(profile_dir=QgsApplication.qgisSettingsDirPath()), feedback.pushInfo,
                      is_cancelled=feedback.isCanceled, progress=feedback.setProgress)
        if outcome.restart_needed:
            feedback.pushWarning("Restart QGIS to use the new packages: the previous ones are loaded in this session.")
        return {
            "FOLDER": str(outcome.folder or ""),
            "VERSIONS": json.dumps(outcome.versions, sort_keys=True),
            "TORCH_BUILD_USED": f"{outcome.torch.tag}: {outcome.torch.reason}" if outcome.torch else "",
            "DOWNLOAD_BYTES": outcome.plan.download_bytes if outcome.plan else 0,
        }


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in re.split(r"[;\n]", text or "") if part.strip())
