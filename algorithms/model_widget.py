"""Dialog widget of the Model parameter: an editable combo box of the installed models and a browse button.

The list holds the valid models of the algorithm's task from the bundled folder and the user
models folders (see :func:`models.catalog.model_choices`); the user may also type a model name or
a path, or browse for a file. The value is the chosen file's path, or what was typed.
"""

from __future__ import annotations

from typing import Any

from processing.gui.wrappers import DIALOG_MODELER, WidgetWrapper

try:
    from qgis.core import NULL
except ImportError:  # a QGIS without the NULL QVariant
    NULL = None
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QToolButton, QWidget

from ..models.catalog import model_choices
from ..provider.settings import user_models_folders

#: First entry of the list: an empty value, which means the task's bundled default model.
DEFAULT_LABEL = "(empty: the default model)"


class ModelWidgetWrapper(WidgetWrapper):
    """Processing widget wrapper named in the parameter's ``widget_wrapper`` metadata (with ``task``)."""

    def __init__(self, param, dialog, row=0, col=0, task: str = "segmentation", **kwargs) -> None:
        self.task = task
        super().__init__(param, dialog, row, col, **kwargs)

    def createWidget(self, **kwargs) -> QWidget:  # noqa: N802 - QGIS API
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.setMinimumContentsLength(30)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.addItem(DEFAULT_LABEL, "")
        for label, path in model_choices(self.task, user_models_folders()):
            self.combo.addItem(label, path)
            self.combo.setItemData(self.combo.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        if self.dialogType == DIALOG_MODELER:  # model inputs and child outputs that give a file or a string
            for value in self._modeler_values():
                self.combo.addItem(self.dialog.resolveValueDescription(value), value)
        self.combo.currentIndexChanged.connect(lambda _index: self.widgetValueHasChanged.emit(self))
        self.combo.editTextChanged.connect(lambda _text: self.widgetValueHasChanged.emit(self))
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Choose a model file (.safetensors)")
        browse.clicked.connect(self.browse)
        widget = QWidget()
        layout = QHBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.combo, 1)
        layout.addWidget(browse)
        widget.setLayout(layout)
        return widget

    def _modeler_values(self) -> list[Any]:
        from qgis.core import QgsProcessingOutputFile, QgsProcessingOutputString, QgsProcessingParameterFile

        try:
            return list(self.dialog.getAvailableValuesOfType(QgsProcessingParameterFile,
                                                             (QgsProcessingOutputFile, QgsProcessingOutputString)))
        except AttributeError:  # a dialog without the modeler API
            return []

    def browse(self) -> None:
        filename, _filter = QFileDialog.getOpenFileName(
            self.widget, "Choose a model file", self.combo.currentText(), "SatVision models (*.safetensors);;All files (*)"
        )
        if filename:
            self.combo.setEditText(filename)

    def setValue(self, value: Any) -> None:  # noqa: N802 - QGIS API
        if value is None or value == NULL or (isinstance(value, str) and not value.strip()):
            self.combo.setCurrentIndex(0)
            return
        for index in range(self.combo.count()):
            if self.combo.itemData(index) == value:
                self.combo.setCurrentIndex(index)
                return
        self.combo.setEditText(str(value))

    def value(self) -> Any:
        """The chosen model's path, a modeler source, or the typed name/path; None for the default."""
        text = self.combo.currentText()
        index = self.combo.findText(text)
        if index >= 0:
            data = self.combo.itemData(index)
            return data if data not in ("", None) else None
        return text.strip() or None
