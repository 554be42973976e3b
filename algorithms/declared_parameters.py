"""Processing parameters built from the options declared on the core's settings (:mod:`core.options`).

The default, bounds, choices and help of such a parameter are those of the settings field, so the
dialog, ``qgis_process``, the command line and the Python API cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber

from ..core.options import DeclaredOption, base_type, declared
from .qgis_enums import DOUBLE, INTEGER, set_help


def declared_option(settings_class: type, field_name: str) -> DeclaredOption:
    return declared(settings_class, [field_name])[field_name]


def number_parameter(name: str, settings_class: type, field_name: str, description: str = "", *,
                     optional: bool = False) -> QgsProcessingParameterNumber:
    """A number parameter (integer or double, by the field's type) with the field's default, bounds and help."""
    item = declared_option(settings_class, field_name)
    kind, _ = base_type(item.type)
    keywords: dict[str, Any] = {}
    if item.option.minimum is not None:
        keywords["minValue"] = item.option.minimum
    if item.option.maximum is not None:
        keywords["maxValue"] = item.option.maximum
    default = item.default
    if default is None and item.option.unset is not None:  # e.g. 0: the model's tile size
        default = item.option.unset
        keywords["minValue"] = min(keywords.get("minValue", default), default)
    parameter = QgsProcessingParameterNumber(
        name, description or item.option.label, INTEGER if kind is int else DOUBLE, default, optional, **keywords)
    set_help(parameter, item.option.help)
    return parameter


def enum_parameter(name: str, settings_class: type, field_name: str, labels: list[str] | None = None,
                   description: str = "") -> QgsProcessingParameterEnum:
    """A single-choice enum over the field's declared choices (shown as ``labels`` when given), default the field's."""
    item = declared_option(settings_class, field_name)
    choices = list(item.option.choices or ())
    if not choices:
        raise ValueError(f"{settings_class.__name__}.{field_name} declares no choices")
    parameter = QgsProcessingParameterEnum(name, description or item.option.label, options=labels or choices,
                                           defaultValue=choices.index(item.default))
    set_help(parameter, item.option.help)
    return parameter


def help_of(settings_class: type, field_name: str) -> str:
    """The declared help of a settings field (for parameters built by hand)."""
    return declared_option(settings_class, field_name).option.help
