"""The Model parameter: a file parameter whose dialog widget lists the installed models.

Kept apart from :mod:`.model_widget` so that algorithms (and qgis_process, which has no dialogs)
never import Processing's GUI code: the widget class is named by its dotted path and only
imported when a dialog is built.
"""

from __future__ import annotations

from qgis.core import QgsProcessingParameterFile

#: Dotted path of the widget wrapper class (this package is ``satvision`` or the plugin folder's name).
WIDGET_WRAPPER = f"{__package__}.model_widget.ModelWidgetWrapper"


def with_model_chooser(parameter: QgsProcessingParameterFile, task: str) -> QgsProcessingParameterFile:
    """``parameter`` shown in dialogs as an editable list of the installed ``task`` models plus a
    browse button; its value stays a model file path or name, as in qgis_process."""
    metadata = dict(parameter.metadata())
    metadata["widget_wrapper"] = {"class": WIDGET_WRAPPER, "task": task}
    parameter.setMetadata(metadata)
    return parameter
