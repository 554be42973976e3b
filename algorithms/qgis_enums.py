"""Processing enums whose spelling changed between QGIS versions, resolved once.

QGIS 3.36 moved the Processing enums into the ``Qgis`` namespace
(``Qgis.ProcessingNumberParameterType.Integer``…) and QGIS 4 (Qt 6) drops the old spellings
(``QgsProcessingParameterNumber.Type.Integer``…). Each name here is the new enum member where it
exists and the old one otherwise (QGIS 3.22–3.34), so the algorithms read the same everywhere.
"""

from __future__ import annotations

from typing import Any, Callable

from qgis.core import (
    Qgis,
    QgsProcessing,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterNumber,
)


def _member(enum_name: str, member: str, old: Callable[[], Any]) -> Any:
    enum = getattr(Qgis, enum_name, None)
    if enum is not None and hasattr(enum, member):
        return getattr(enum, member)
    return old()


INTEGER = _member("ProcessingNumberParameterType", "Integer", lambda: QgsProcessingParameterNumber.Type.Integer)
DOUBLE = _member("ProcessingNumberParameterType", "Double", lambda: QgsProcessingParameterNumber.Type.Double)
DATE = _member("ProcessingDateTimeParameterDataType", "Date", lambda: QgsProcessingParameterDateTime.Type.Date)
ADVANCED = _member("ProcessingParameterFlag", "Advanced", lambda: QgsProcessingParameterDefinition.Flag.FlagAdvanced)
VECTOR_POLYGON = _member("ProcessingSourceType", "VectorPolygon", lambda: QgsProcessing.SourceType.TypeVectorPolygon)


def mark_advanced(parameter: Any) -> Any:
    """``parameter`` flagged as advanced (shown under "Advanced parameters")."""
    parameter.setFlags(parameter.flags() | ADVANCED)
    return parameter


def set_help(parameter: Any, text: str) -> Any:
    """``parameter`` with ``text`` as its help (the dialog's tooltip in newer QGIS).

    ``QgsProcessingParameterDefinition.setHelp`` exists since QGIS 3.16; on a QGIS without it the
    parameter keeps only its description.
    """
    if text and hasattr(parameter, "setHelp"):
        parameter.setHelp(text)
    return parameter
