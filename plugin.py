"""The QGIS plugin object: registers the Processing provider.

``initProcessing`` is what ``qgis_process`` and headless QGIS call; ``initGui`` (desktop only)
calls it too. The plugin needs no ``iface``: its algorithms live in the Processing toolbox, and
code that needs the desktop imports ``qgis.utils.iface`` where it runs (flake8-qgis QGS105).
"""

from __future__ import annotations

from qgis.core import QgsApplication


class SatVisionPlugin:
    def __init__(self) -> None:
        self.provider = None

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API
        from .provider.provider import SatVisionProvider

        if self.provider is None:
            self.provider = SatVisionProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
