"""QGIS's own PyQt5 -> PyQt6 migration script (pip package qgis-pyqt5to6) finds nothing to change.

``scripts/check_qt6_migration.py`` runs the script on a copy of the QGIS layer (it rewrites files in
place) and prints the diff; ``make install`` installs it into ``.build/qt6-migration``.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_qt6_migration.py"


def load_wrapper():
    spec = importlib.util.spec_from_file_location("check_qt6_migration", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_script_would_change_nothing_in_the_qgis_layer():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to change" in result.stdout


def test_migration_script_rewrites_pyqt5_idioms(tmp_path):
    """The script is live: run as the gate runs it, it rewrites Qt enums, exec_ and PyQt5 imports.

    Guards against a set-up where it silently checks less (with PyQt5's QGIS importable it loses
    every Qt.* enum) and so would pass anything.
    """
    wrapper = load_wrapper()
    source = (
        "from PyQt5.QtWidgets import QDialog, QMessageBox\n"
        "from qgis.PyQt.QtCore import Qt\n\n\n"
        "def run(dialog: QDialog):\n"
        "    dialog.exec_()\n"
        "    return Qt.AlignLeft, QMessageBox.Yes\n"
    )
    (tmp_path / "canary.py").write_text(source, encoding="utf-8")
    result = wrapper.run_tool(wrapper.DEFAULT_TOOL, tmp_path)
    rewritten = (tmp_path / "canary.py").read_text(encoding="utf-8")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "from qgis.PyQt.QtWidgets import QDialog, QMessageBox" in rewritten
    assert "dialog.exec()" in rewritten
    assert "Qt.AlignmentFlag.AlignLeft" in rewritten
    assert "QMessageBox.StandardButton.Yes" in rewritten
