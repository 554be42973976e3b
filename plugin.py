"""The QGIS plugin object: registers the Processing provider.

``initProcessing`` is what ``qgis_process`` and headless QGIS call; ``initGui`` (desktop only)
calls it too. ``iface`` is only touched in ``initGui``.
"""

from __future__ import annotations

from qgis.core import QgsApplication


class SatVisionPlugin:
    def __init__(self, iface=None) -> None:
        self.iface = iface
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
