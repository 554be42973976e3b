"""The ``satvision`` Processing provider."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..installer.activate import activate
from ..version import __version__
from . import settings

ICON = Path(__file__).resolve().parent.parent / "resources" / "icon.svg"


class SatVisionProvider(QgsProcessingProvider):
    def id(self) -> str:
        return settings.PROVIDER_ID

    def name(self) -> str:
        return "SatVision"

    def longName(self) -> str:  # noqa: N802 - QGIS API
        return f"SatVision {__version__} — deep learning on satellite imagery"

    def versionInfo(self) -> str:  # noqa: N802 - QGIS API
        return __version__

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def svgIconPath(self) -> str:  # noqa: N802 - QGIS API
        return str(ICON)

    def load(self) -> bool:
        # the packages installed by satvision:installdependencies, before any algorithm imports torch
        activate(QgsApplication.qgisSettingsDirPath())
        settings.add_settings(self.name())
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        settings.remove_settings()

    def supportedOutputVectorLayerExtensions(self) -> list[str]:  # noqa: N802 - QGIS API
        from ..core.vector_io import OUTPUT_DRIVERS

        return [extension.lstrip(".") for extension in OUTPUT_DRIVERS]

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802 - QGIS API
        return ["tif"]

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:  # noqa: N802 - QGIS API
        return "gpkg"

    def defaultRasterFileExtension(self) -> str:  # noqa: N802 - QGIS API
        return "tif"

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API
        from ..algorithms import all_algorithms

        for algorithm in all_algorithms():
            self.addAlgorithm(algorithm)
