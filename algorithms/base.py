"""What every SatVision algorithm shares: naming, help, icon, error translation."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingParameterEnum
from qgis.PyQt.QtGui import QIcon

from ..core.dependencies import require
from ..core.errors import SatVisionError
from ..models.augmented_views import TTA_MODES, TTA_TITLES
from .declared_parameters import declared_option
from .feedback import ProcessingFeedback
from .qgis_enums import set_help

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
    #: one line for the toolbox tooltip
    short_description: str = ""
    #: help (the dialog's tooltip) of each parameter by name; :meth:`addParameter` applies it
    parameter_help: dict[str, str] = {}
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

    def shortDescription(self) -> str:  # noqa: N802 - QGIS API
        return self.short_description

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def addParameter(self, parameter, createOutput: bool = True) -> bool:  # noqa: N802,N803 - QGIS API
        """QGIS's ``addParameter``, giving ``parameter`` its help from :attr:`parameter_help`."""
        set_help(parameter, self.parameter_help.get(parameter.name(), ""))
        return super().addParameter(parameter, createOutput)

    def createInstance(self):  # noqa: N802 - QGIS API
        return type(self)()

    def processAlgorithm(self, parameters, context, feedback) -> dict[str, Any]:  # noqa: N802 - QGIS API
        try:
            if "torch" in self.requires:
                self.announce_model_loading(feedback)
            require(*self.requires)
            return self.execute(parameters, context, feedback)
        except SatVisionError as error:
            raise QgsProcessingException(str(error)) from error

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        raise NotImplementedError

    def announce_model_loading(self, feedback) -> None:
        """Say at once that PyTorch and the model are loading: the first import of torch and the
        model's loading take seconds (~20 s on a first run) in which the dialog would show nothing."""
        feedback.setProgressText("Loading PyTorch and the model…")
        feedback.pushInfo("Loading PyTorch and the model… (the first run can take ~20 s)")
        self._loading_started = time.monotonic()

    def core_feedback(self, feedback) -> ProcessingFeedback:
        """The core's feedback over ``feedback``; after :meth:`announce_model_loading` it says
        "Model loaded in N s" before the core's "Model …" line (see :class:`ProcessingFeedback`)."""
        return ProcessingFeedback(feedback, getattr(self, "_loading_started", None))

    def optional_output_layer(self, parameters, name: str, context) -> str | None:
        """The path of the optional layer output ``name``, or None when it is not wanted.

        Batch mode passes every layer destination, an empty one too, with a project to load it
        into; ``parameterAsOutputLayer`` then lists "" among the layers to load, and the batch
        dialog reports "The following layers were not correctly generated" after a successful
        row. That empty entry is dropped here.
        """
        path = self.parameterAsOutputLayer(parameters, name, context)
        if path:
            return path
        layers = context.layersToLoadOnCompletion()
        if "" in layers:
            del layers[""]
            context.setLayersToLoadOnCompletion(layers)
        return None

    @staticmethod
    def produced(results: dict[str, Any]) -> dict[str, Any]:
        """``results`` without the outputs that were not produced (None): QGIS then lists
        nothing for them rather than an empty value."""
        return {name: value for name, value in results.items() if value is not None}

    def add_advanced_parameters(self, parameters) -> None:
        """Add ``parameters`` under "Advanced parameters"."""
        from .qgis_enums import mark_advanced

        for parameter in parameters:
            self.addParameter(mark_advanced(parameter))

    TEST_TIME_AUGMENTATION = "TEST_TIME_AUGMENTATION"

    def test_time_augmentation_parameter(self, settings_class: type) -> QgsProcessingParameterEnum:
        """Enum over the model's default (index 0), then the declared modes of
        ``settings_class.test_time_augmentation`` (none, flips, d4), with its label, help and default."""
        item = declared_option(settings_class, "test_time_augmentation")
        modes = list(item.option.choices or ())
        options = ["The model's default"] + [TTA_TITLES[mode] for mode in modes]
        default = 0 if item.default is None else 1 + modes.index(item.default)
        parameter = QgsProcessingParameterEnum(self.TEST_TIME_AUGMENTATION, item.option.label, options=options,
                                               defaultValue=default)
        return set_help(parameter, item.option.help)

    def test_time_augmentation(self, parameters, context) -> str | None:
        """The chosen mode, or None for the model card's default."""
        index = self.parameterAsEnum(parameters, self.TEST_TIME_AUGMENTATION, context)
        return TTA_MODES[index - 1] if index > 0 else None

    def band_numbers(self, parameters, name: str, context) -> list[int] | None:
        """The band numbers of a multiple band parameter, or None when it is empty.

        qgis_process 3.22 reads ``BANDS=4,3,2,1`` as the single band 0 (its list separator is
        ``;``, and repeating ``BANDS=N`` works too): a text of band numbers separated by commas,
        semicolons or spaces is split here, and any other text is refused.
        """
        raw = parameters.get(name)
        if isinstance(raw, str) and raw.strip():
            if not re.fullmatch(r"\s*\d+(\s*[,;\s]\s*\d+)*\s*", raw):
                raise SatVisionError(
                    f"Cannot read the band list {raw!r}: give band numbers in the model's order, e.g. "
                    f"{name}=4;3;2;1 or {name}=4,3,2,1, or repeat {name}=N once per band."
                )
            return [int(number) for number in re.split(r"[,;\s]+", raw.strip())]
        return self.parameterAsInts(parameters, name, context) or None

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
