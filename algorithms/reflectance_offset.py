"""The advanced "Reflectance offset" parameter of the inference algorithms: ``auto`` or a number.

A string parameter (default ``auto``): the same value works in the dialog, in batch mode, in
graphical models and with ``qgis_process run ... --REFLECTANCE_OFFSET=1000`` on QGIS 3.22 to 4,
and ``auto`` needs no magic number. The core checks the value (``models.normalisation``) and
refuses anything but auto or a number of at least 0 before any work. The label, help and default
are the ``reflectance_offset`` field's declaration on the job's settings (:mod:`inference.common_options`).
"""

from __future__ import annotations

from qgis.core import QgsProcessingParameterString

from ..models.normalisation import AUTO
from .declared_parameters import declared_option
from .qgis_enums import set_help

REFLECTANCE_OFFSET = "REFLECTANCE_OFFSET"


def reflectance_offset_parameter(settings_class: type) -> QgsProcessingParameterString:
    """String parameter with the label, help and default (``auto``) of ``settings_class.reflectance_offset``."""
    item = declared_option(settings_class, "reflectance_offset")
    parameter = QgsProcessingParameterString(REFLECTANCE_OFFSET, item.option.label, defaultValue=str(item.default))
    return set_help(parameter, item.option.help)


def reflectance_offset_value(algorithm, parameters, context) -> str:
    """The parameter's text (``auto`` when empty); the core parses and checks it."""
    text = algorithm.parameterAsString(parameters, REFLECTANCE_OFFSET, context).strip()
    return text or AUTO
