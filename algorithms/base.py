"""What every SatVision algorithm shares: naming, help, icon, error translation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingParameterEnum
from qgis.PyQt.QtGui import QIcon

from ..core.dependencies import require
from ..core.errors import SatVisionError
from ..models.test_time_augmentation import TTA_MODES, TTA_TITLES

ICON = Path(__file__).resolve().parent.parent / "resources" / "icon.svg"


class SatVisionAlgorithm(QgsProcessingAlgorithm):
    """Base class. Subclasses set the class attributes and implement ``execute``.

    ``execute`` (``run`` is taken by QGIS) gets the arguments of ``processAlgorithm``; any
    :class:`SatVisionError` it raises (bad input, missing package, cancellation) becomes a
    ``QgsProcessingException`` carrying the same message.
    """

    algorithm_id: str = ""
    display_name: str = ""
    group_name: str = ""
    group_key: str = ""
    help_text: str = ""
    #: import names the algorithm needs; checked before ``run`` with an install hint
    requires: tuple[str, ...] = ()

    def name(self) -> str:
        return self.algorithm_id

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.display_name

    def group(self) -> str:
        return self.group_name

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return self.group_key

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.help_text

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def createInstance(self):  # noqa: N802 - QGIS API
        return type(self)()

    def processAlgorithm(self, parameters, context, feedback) -> dict[str, Any]:  # noqa: N802 - QGIS API
        try:
            require(*self.requires)
            return self.execute(parameters, context, feedback)
        except SatVisionError as error:
            raise QgsProcessingException(str(error)) from error

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        raise NotImplementedError

    def add_advanced_parameters(self, parameters) -> None:
        """Add ``parameters`` under "Advanced parameters"."""
        from .qgis_enums import mark_advanced

        for parameter in parameters:
            self.addParameter(mark_advanced(parameter))

    TEST_TIME_AUGMENTATION = "TEST_TIME_AUGMENTATION"

    def test_time_augmentation_parameter(self) -> QgsProcessingParameterEnum:
        """Enum "Test-time augmentation": the model's default (index 0), then none, flips, d4."""
        options = ["The model's default"] + [TTA_TITLES[mode] for mode in TTA_MODES]
        return QgsProcessingParameterEnum(self.TEST_TIME_AUGMENTATION, "Test-time augmentation (average over flipped/rotated views)",
                                          options=options, defaultValue=0)

    def test_time_augmentation(self, parameters, context) -> str | None:
        """The chosen mode, or None for the model card's default."""
        index = self.parameterAsEnum(parameters, self.TEST_TIME_AUGMENTATION, context)
        return TTA_MODES[index - 1] if index > 0 else None

    def raster_and_bounds(self, parameters, context, raster_name: str, extent_name: str):
        """The input raster layer (read by GDAL, with a CRS) and the optional extent as
        ``(west, south, east, north)`` in the raster's CRS, or None."""
        layer = self.parameterAsRasterLayer(parameters, raster_name, context)
        if layer is None or layer.providerType() != "gdal":
            raise QgsProcessingException("The input must be a raster layer read by GDAL (a file such as a GeoTIFF).")
        if not layer.crs().isValid():
            raise QgsProcessingException(
                f"The raster {layer.name()} has no coordinate reference system. Assign one first "
                "(Raster > Projections > Assign Projection)."
            )
        if not parameters.get(extent_name):
            return layer, None
        extent = self.parameterAsExtent(parameters, extent_name, context, layer.crs())
        return layer, (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
