"""``satvision:diagnose``: versions, compute device, models and credentials, for bug reports."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    Qgis,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
)

from ..core.atomic import atomic_path
from ..diagnostics import collect_report, format_report
from ..provider.settings import user_models_folders
from .base import SatVisionAlgorithm


class DiagnoseAlgorithm(SatVisionAlgorithm):
    algorithm_id = "diagnose"
    display_name = "Diagnose installation"
    group_name = "Tools"
    group_key = "tools"
    help_text = (
        "Reports what SatVision runs on: the versions of QGIS, Python, GDAL and the Python "
        "packages SatVision uses (torch, torchvision, timm, segmentation-models-pytorch, "
        "diffusers, transformers, rasterio, earthengine-api), the compute device that will run "
        "models (CUDA GPU name and memory, or CPU and thread count), the models found in the "
        "bundled and user folders with their cards, and whether Earth Engine credentials are "
        "configured (never printing a secret); and what Install dependencies installed (the folder and "
        "the versions) and whether the PyTorch build fits the GPU.\n\n"
        "Paste the report into bug reports. Missing packages are listed with the command that "
        "installs them. Optionally writes the report as a JSON file."
    )

    OUTPUT = "OUTPUT"

    short_description = "What SatVision runs on: versions, missing packages, compute device, models and credentials."
    parameter_help = {OUTPUT: "Optional JSON file with the whole report (the log shows it either way)."}

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, "Report file (JSON)", fileFilter="JSON files (*.json)", optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputString("REPORT", "Report (JSON text)"))
        self.addOutput(QgsProcessingOutputString("QGIS_VERSION", "QGIS version"))
        self.addOutput(QgsProcessingOutputString("TORCH_VERSION", "PyTorch version"))
        self.addOutput(QgsProcessingOutputString("COMPUTE_DEVICE", "Compute device"))
        self.addOutput(QgsProcessingOutputNumber("MODEL_COUNT", "Models found"))

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        report = collect_report(qgis_version=Qgis.QGIS_VERSION, user_model_dirs=user_models_folders())
        feedback.pushInfo(format_report(report))
        for name in report["missing_packages"]:
            feedback.reportError(f"Missing Python package: {name}", False)
        if report["installed_packages"]["torch_check"]["matches"] is False:
            feedback.reportError(f"PyTorch build: {report['installed_packages']['torch_check']['advice']}", False)
        device = report["compute_device"]
        results: dict[str, Any] = {
            **report,
            "REPORT": json.dumps(report, indent=2),
            "QGIS_VERSION": Qgis.QGIS_VERSION,
            "TORCH_VERSION": report["packages"]["torch"] or "",
            "COMPUTE_DEVICE": f"{device['type']}: {device.get('name', '')}" if device["available"] else "none",
            "MODEL_COUNT": len(report["models"]),
        }
        destination = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if destination:
            with atomic_path(destination) as temporary:
                temporary.write_text(json.dumps(report, indent=2), encoding="utf-8")
            results[self.OUTPUT] = destination
        return results
