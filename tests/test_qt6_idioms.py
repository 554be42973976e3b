"""scripts/check_qt6_idioms.py: what QGIS's PyQt5 -> PyQt6 migration script would rewrite.

Our QGIS layer has nothing to rewrite (the command `make lint` runs exits 0), and each kind of
rewrite is found, with its fix, in a small planted file, whose fixed spelling then passes.
The enums are judged in the real QGIS Python of the test session.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_qt6_idioms.py"


@pytest.fixture(scope="module")
def checker():
    spec = importlib.util.spec_from_file_location("check_qt6_idioms", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def qt_names(checker):
    return checker.QtNames()


def findings_in(checker, qt_names, directory: Path, source: str, name: str = "planted.py"):
    path = directory / name
    path.write_text(source, encoding="utf-8")
    return checker.check([path], qt_names)


def test_our_qgis_layer_has_nothing_to_rewrite():
    """The exact command of `make lint`, on the default paths (the QGIS layer and the desktop driver)."""
    completed = subprocess.run([sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout == ""


QT_IMPORTS = "from qgis.PyQt.QtCore import Qt\nfrom qgis.core import QgsProcessing, QgsProcessingParameterNumber\n"

#: (rule, planted source, the suggestion expected for its finding, the fixed source)
PLANTED = {
    "pyqt5 import": ("direct-import", "from PyQt5.QtCore import QTimer\n", "from qgis.PyQt.QtCore import QTimer",
                     "from qgis.PyQt.QtCore import QTimer\n"),
    "pyqt6 import": ("direct-import", "from PyQt6 import QtWidgets\n", "from qgis.PyQt import QtWidgets",
                     "from qgis.PyQt import QtWidgets\n"),
    "sip import": ("direct-import", "import sip\n", "from qgis.PyQt import sip", "from qgis.PyQt import sip\n"),
    "Qt module": ("qt-module", "from qgis.PyQt.Qt import Qt\n", "from qgis.PyQt.QtCore import Qt", "from qgis.PyQt.QtCore import Qt\n"),
    "exec_ call": ("exec_", "def run(dialog):\n    return dialog.exec_()\n", "dialog.exec(...)", "def run(dialog):\n    return dialog.exec()\n"),
    "exec_ method": ("exec_", "class Dialog:\n    def exec_(self):\n        return 0\n", "def exec(",
                     "class Dialog:\n    def exec(self):\n        return 0\n"),
    "Qt enum": ("unscoped-enum", QT_IMPORTS + "align = Qt.AlignLeft\n", "Qt.AlignmentFlag.AlignLeft",
                QT_IMPORTS + "align = Qt.AlignmentFlag.AlignLeft\n"),
    "source type": ("unscoped-enum", QT_IMPORTS + "types = [QgsProcessing.TypeVectorPolygon]\n",
                    "QgsProcessing.SourceType.TypeVectorPolygon", QT_IMPORTS + "types = [QgsProcessing.SourceType.TypeVectorPolygon]\n"),
    "number type": ("unscoped-enum", QT_IMPORTS + "kind = QgsProcessingParameterNumber.Double\n",
                    "QgsProcessingParameterNumber.Type.Double", QT_IMPORTS + "kind = QgsProcessingParameterNumber.Type.Double\n"),
    "inherited flag": ("unscoped-enum", QT_IMPORTS + "flag = QgsProcessingParameterNumber.FlagAdvanced\n",
                       "QgsProcessingParameterNumber.Flag.FlagAdvanced", QT_IMPORTS + "flag = QgsProcessingParameterNumber.Flag.FlagAdvanced\n"),
    "renamed enum": ("renamed-enum", QT_IMPORTS + "button = Qt.MidButton\n", "Qt.MouseButton.MiddleButton",
                     QT_IMPORTS + "button = Qt.MouseButton.MiddleButton\n"),
    "NULL variant": ("qvariant", "from qgis.PyQt.QtCore import QVariant\nvalue = QVariant()\n", "NULL (from qgis.core import NULL)",
                     "from qgis.core import NULL\nvalue = NULL\n"),
    "QVariant.Type": ("qvariant", "from qgis.PyQt.QtCore import QVariant\nkind = QVariant.Type.Int\n", "QVariant.Int",
                      "from qgis.PyQt.QtCore import QVariant\nkind = QVariant.Int\n"),
    "qApp": ("qapp", "from qgis.PyQt.QtWidgets import QDialog\nqApp.processEvents()\n", "QApplication.instance().processEvents",
             "from qgis.PyQt.QtWidgets import QApplication\nQApplication.instance().processEvents()\n"),
    "QDateTime": ("qdatetime", "from qgis.PyQt.QtCore import QDate, QDateTime\nwhen = QDateTime(QDate(2020, 1, 1))\n",
                  "QDateTime(QDate(2020, 1, 1), QTime(0, 0, 0))",
                  "from qgis.PyQt.QtCore import QDate, QDateTime, QTime\nwhen = QDateTime(QDate(2020, 1, 1), QTime(0, 0, 0))\n"),
    "QRegExp": ("removed-in-qt6", "from qgis.PyQt.QtCore import QRegExp\n", "QRegularExpression (QRegExp is gone in Qt 6)",
                "from qgis.PyQt.QtCore import QRegularExpression\n"),
}


@pytest.mark.parametrize("rule, planted, suggestion, fixed", PLANTED.values(), ids=PLANTED.keys())
def test_each_kind_is_found_and_its_fix_passes(checker, qt_names, tmp_path, rule, planted, suggestion, fixed):
    found = findings_in(checker, qt_names, tmp_path, planted)
    assert [(finding.rule, finding.suggestion) for finding in found] == [(rule, suggestion)]
    assert findings_in(checker, qt_names, tmp_path, fixed) == []


def test_enum_suggestions_are_the_same_member_in_this_qgis(checker, qt_names, tmp_path):
    """Each suggested scoped spelling exists here and is the member that was read unscoped."""
    source = QT_IMPORTS + "from qgis.core import Qgis\nvalues = [Qt.AlignTop | Qt.AlignRight, Qgis.Warning, QgsProcessing.TypeRaster]\n"
    found = findings_in(checker, qt_names, tmp_path, source)
    assert [finding.found for finding in found] == ["Qt.AlignTop", "Qt.AlignRight", "Qgis.Warning", "QgsProcessing.TypeRaster"]
    namespace: dict = {}
    exec(QT_IMPORTS + "from qgis.core import Qgis\n", namespace)  # our own constant source
    for finding in found:
        assert finding.rule == "unscoped-enum"
        assert eval(finding.suggestion, namespace) == eval(finding.found, namespace)


def test_no_spelling_this_qgis_lacks_is_demanded(checker, qt_names, tmp_path):
    """Bridges like algorithms/qgis_enums.py, QVariant types and members without a scoped spelling pass.

    In QGIS 3.22 ``QgsGeometry.CapFlat`` is a ``Qgis.EndCapStyle`` member that ``QgsGeometry.EndCapStyle``
    does not hold, so there is no scoped spelling on the class to demand.
    """
    source = (
        "from qgis.core import Qgis, QgsGeometry, QgsProcessing\nfrom qgis.PyQt.QtCore import QVariant\n"
        "POLYGON = (Qgis.ProcessingSourceType.VectorPolygon if hasattr(Qgis, 'ProcessingSourceType')\n"
        "           else QgsProcessing.SourceType.TypeVectorPolygon)\n"
        "INTEGER = getattr(Qgis, 'ProcessingNumberParameterType', None)\n"
        "FIELD_TYPE = QVariant.Int\n"
        "CAP = QgsGeometry.CapFlat\n"
    )
    assert findings_in(checker, qt_names, tmp_path, source) == []


def test_our_own_names_are_not_taken_for_qt_classes(checker, qt_names, tmp_path):
    source = "class Qt:\n    AlignLeft = 1\n\n\nalign = Qt.AlignLeft\n"
    assert findings_in(checker, qt_names, tmp_path, source) == []


def test_list_prints_file_line_and_fix_and_fails(checker, tmp_path, capsys):
    planted = tmp_path / "planted.py"
    planted.write_text(QT_IMPORTS + "\n\nalign = Qt.AlignLeft\n", encoding="utf-8")
    assert checker.main(["--list", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{planted}:5:8: unscoped-enum: Qt.AlignLeft -> Qt.AlignmentFlag.AlignLeft"]
    assert "1 Qt 6 migration finding" in err
    planted.write_text(QT_IMPORTS + "\n\nalign = Qt.AlignmentFlag.AlignLeft\n", encoding="utf-8")
    assert checker.main(["--list", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""
