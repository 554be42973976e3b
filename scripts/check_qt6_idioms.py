#!/usr/bin/env python3
"""Report what QGIS's PyQt5 -> PyQt6 migration script would rewrite in the QGIS layer.

The QGIS plugin repository asks plugins to pass QGIS's ``scripts/pyqt5_to_pyqt6/pyqt5_to_pyqt6.py``
in dry-run mode with nothing to change. That script needs PyQt6 (or its enum table) and is not on
the pip registry (the ``qgis-pyqt5to6`` package holds an old copy that needs Python 3.12 and
PyQt6), so this is an independent checker, written from what the script is documented and seen
to rewrite in its default, QGIS 3 compatible mode, that runs on the QGIS Python at hand (QGIS 3.22
on PyQt5 here). It reads the files with :mod:`ast`, exits 1 when it finds anything (0 when
nothing, 2 when it cannot run) and with ``--list`` prints each finding as
``file:line:col: rule: found -> suggested``. Default paths: the QGIS layer (``__init__.py``,
``plugin.py``, ``provider/``, ``algorithms/``) and ``tests/desktop_driver.py``. Rules:

``direct-import``
    ``PyQt5``, ``PyQt6`` or ``sip`` imported directly: import them through ``qgis.PyQt``.
``qt-module``
    ``from qgis.PyQt.Qt import ...``: the ``Qt`` module is gone in Qt 6; use ``qgis.PyQt.QtCore``.
``exec_``
    ``obj.exec_()`` calls and ``def exec_`` methods: ``exec`` (PyQt6 has no ``exec_``).
``unscoped-enum``
    An enum member read from a class, ``Qt.AlignLeft`` or ``QgsProcessing.TypeVectorPolygon``,
    where PyQt6 only has the scoped spelling ``Qt.AlignmentFlag.AlignLeft``. Decided at run time:
    the class is imported from the QGIS Python modules (``qgis.core``, ``qgis.gui``,
    ``qgis.analysis``, ``qgis.PyQt.Qt*``), the attribute is read, and it is reported when its value
    is an enum member whose enum type is an attribute of that same class (directly or inherited,
    ``QgsProcessingParameterNumber.Flag``) through which the member can be read.
``renamed-enum``
    Enum members that Qt 6 removed under their old name (``Qt.MidButton`` ...): the new name.
``qvariant``
    ``QVariant()`` and ``QVariant(QVariant.Int)`` (an invalid/NULL variant): ``NULL`` from
    ``qgis.core``; ``QVariant.Type.Int``: ``QVariant.Int``.
``qapp``
    ``qApp`` (gone in PyQt6): ``QApplication.instance()``.
``qdatetime``
    ``QDateTime(y, m, d, h, mi, s, ms, spec)`` and ``QDateTime(QDate(...))``, which Qt 6 lacks:
    ``QDateTime(QDate(...), QTime(...)[, spec])``.
``removed-in-qt6``
    What the script warns about because Qt 6 removed it: ``QRegExp``, ``resources_rc``,
    ``QApplication.desktop()``, ``QFontMetrics.width()``, ``activated[str]`` and
    ``addAction`` with four or more arguments.

The floor is QGIS 3.22 (the oldest QGIS the plugin supports), and the checker never demands a
spelling that 3.22 lacks:

* an enum member is reported only when the scoped spelling it suggests can be read in the QGIS
  it runs on; a member whose enum has no scoped spelling on the class there (in 3.22
  ``QgsGeometry.CapFlat`` is a ``Qgis.EndCapStyle`` member that ``QgsGeometry.EndCapStyle`` does not
  hold, and the enums that QGIS 3.36 moved into ``Qgis``, ``Qgis.ProcessingSourceType``..., do not
  exist yet) is left alone. ``algorithms/qgis_enums.py`` bridges those: it reads the new ``Qgis``
  enums by name where they exist and falls back to the scoped 3.22 spellings;
* an attribute that this QGIS lacks (the newer enum on an older QGIS, behind ``hasattr``) is not
  judged;
* ``QVariant.Int``... stay: QGIS 3 takes ``QVariant.Type`` values (``QgsField``), the script leaves
  them in its default, QGIS 3 compatible mode, and their ``QMetaType.Type`` replacement is
  accepted only from QGIS 3.38 on.
"""

from __future__ import annotations

import argparse
import ast
import enum
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
#: the QGIS layer: the code that imports QGIS (plus the script ``qgis --code`` runs in the desktop test)
DEFAULT_PATHS = ("__init__.py", "plugin.py", "provider", "algorithms", "tests/desktop_driver.py")
#: modules whose classes are looked up, as the migration script looks up Qt's and QGIS's classes
QT_MODULES = (
    "qgis.core", "qgis.gui", "qgis.analysis",
    "qgis.PyQt.QtCore", "qgis.PyQt.QtGui", "qgis.PyQt.QtWidgets", "qgis.PyQt.QtNetwork", "qgis.PyQt.QtXml",
    "qgis.PyQt.QtSql", "qgis.PyQt.QtSvg", "qgis.PyQt.QtPrintSupport", "qgis.PyQt.QtTest", "qgis.PyQt.Qsci",
)
DIRECT_MODULES = ("PyQt5", "PyQt6", "sip")
#: enum members Qt 6 removed, with the member that replaces them (Qt 5.15 has both)
RENAMED_ENUMS = {
    ("Qt", "MidButton"): "Qt.MouseButton.MiddleButton",
    ("Qt", "TextColorRole"): "Qt.ItemDataRole.ForegroundRole",
    ("Qt", "BackgroundColorRole"): "Qt.ItemDataRole.BackgroundRole",
    ("QPainter", "HighQualityAntialiasing"): "QPainter.RenderHint.Antialiasing",
}


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    col: int
    rule: str
    found: str
    suggestion: str

    def format(self, root: Path = ROOT) -> str:
        try:
            shown = self.path.resolve().relative_to(root)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}:{self.col}: {self.rule}: {self.found} -> {self.suggestion}"


class QtNames:
    """The Qt and QGIS classes by name, and the enum test, from the QGIS Python at hand."""

    def __init__(self, module_names: Sequence[str] = QT_MODULES) -> None:
        self.classes: dict[str, type] = {}
        for module_name in module_names:
            try:
                module = importlib.import_module(module_name)
            except ImportError:  # an optional module this build lacks (QScintilla, ...)
                continue
            for name, value in vars(module).items():
                if isinstance(value, type):
                    self.classes.setdefault(name, value)
        core = importlib.import_module("qgis.PyQt.QtCore")
        # PyQt5's enums are sip.enumtype instances, PyQt6's (and QGIS's newer ones) enum.Enum
        self.enum_metatypes = (type(core.Qt.AlignmentFlag), enum.EnumMeta)
        self.qvariant = core.QVariant
        self._scoped: dict[tuple[int, str], str | None] = {}

    def is_enum_type(self, value: Any) -> bool:
        return isinstance(value, self.enum_metatypes)

    def scoped_name(self, cls: type, member: str) -> str | None:
        """Name of the enum type on ``cls`` that holds ``cls.member``, if it is an unscoped enum member."""
        key = (id(cls), member)
        if key not in self._scoped:
            self._scoped[key] = self._find_scope(cls, member)
        return self._scoped[key]

    def _find_scope(self, cls: type, member: str) -> str | None:
        if self.is_enum_type(cls):
            return None  # already scoped: Qt.AlignmentFlag.AlignLeft
        try:
            value = getattr(cls, member)
        except Exception:  # an attribute this QGIS lacks is not judged
            return None
        enum_type = type(value)
        if value is enum_type or not self.is_enum_type(enum_type):
            return None
        names = sorted({*dir(cls), enum_type.__name__})
        holders = []
        for name in names:
            try:
                if getattr(cls, name, None) is enum_type and getattr(enum_type, member, None) == value:
                    holders.append(name)
            except Exception:  # odd descriptors on wrapped classes
                continue
        if not holders:
            return None  # no scoped spelling in this QGIS: not demanded
        return enum_type.__name__ if enum_type.__name__ in holders else holders[0]


class _FileChecker(ast.NodeVisitor):
    def __init__(self, path: Path, tree: ast.Module, names: QtNames) -> None:
        self.path = path
        self.names = names
        self.findings: list[Finding] = []
        self.bound: dict[str, Any] = {}  # names bound by imports of Qt/QGIS modules
        self.shadowed: set[str] = set()  # names bound otherwise (our own classes, other imports)
        self.font_metrics: set[str] = set()
        self._collect_bindings(tree)

    # -- name resolution ------------------------------------------------------------------------
    def _collect_bindings(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_qt_module(node.module or ""):
                for alias in node.names:
                    if alias.name != "*":
                        self.bound[alias.asname or alias.name] = _import_attribute(node.module or "", alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if _is_qt_module(alias.name):
                        target = alias.name if alias.asname else alias.name.split(".")[0]
                        self.bound[alias.asname or target] = _import_module(target)
                    else:
                        self.shadowed.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                self.shadowed.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                self.shadowed.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.shadowed.add(node.id)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and _called_name(node.value) in (
                "QFontMetrics", "QFontMetricsF"
            ):
                self.font_metrics.update(t.id for t in node.targets if isinstance(t, ast.Name))

    def resolve(self, node: ast.AST) -> Any:
        """The object a ``Name`` or dotted ``Attribute`` stands for, or None when unknown."""
        if isinstance(node, ast.Name):
            if node.id in self.bound:
                return self.bound[node.id]
            if node.id in self.shadowed:
                return None
            return self.names.classes.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.resolve(node.value)
            if owner is None:
                return None
            try:
                return getattr(owner, node.attr)
            except Exception:  # an attribute this QGIS lacks
                return None
        return None

    def add(self, node: ast.AST, rule: str, suggestion: str, found: str | None = None) -> None:
        text = found if found is not None else ast.unparse(node)
        self.findings.append(Finding(self.path, node.lineno, node.col_offset, rule, text, suggestion))

    # -- imports --------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802 - ast.NodeVisitor API
        for alias in node.names:
            top, _, rest = alias.name.partition(".")
            if top not in DIRECT_MODULES:
                continue
            if top == "sip" or rest == "sip":
                suggestion = "from qgis.PyQt import sip"
            elif rest:
                suggestion = f"from qgis.PyQt import {rest}"
            else:
                suggestion = "import qgis.PyQt"
            self.add(node, "direct-import", suggestion, f"import {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802 - ast.NodeVisitor API
        module = node.module or ""
        imported = ", ".join(alias.name for alias in node.names)
        top, _, rest = module.partition(".")
        if node.level == 0 and top in DIRECT_MODULES:
            if top == "sip":
                target = "qgis.PyQt.sip"
            else:
                target = f"qgis.PyQt.{rest}" if rest else "qgis.PyQt"
            self.add(node, "direct-import", f"from {target} import {imported}", f"from {module} import {imported}")
        if node.level == 0 and module == "qgis.PyQt.Qt":
            self.add(node, "qt-module", f"from qgis.PyQt.QtCore import {imported}", f"from {module} import {imported}")
        for alias in node.names:
            if alias.name == "QRegExp":
                self.add(node, "removed-in-qt6", "QRegularExpression (QRegExp is gone in Qt 6)", f"import of {alias.name}")
            elif alias.name == "qApp":
                self.add(node, "qapp", "import QApplication and use QApplication.instance()", f"import of {alias.name}")
            elif alias.name == "resources_rc":
                self.add(node, "removed-in-qt6", "load icons by file path (no compiled resources in Qt 6)", f"import of {alias.name}")
        self.generic_visit(node)

    # -- definitions and calls ------------------------------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:  # noqa: N802 - ast.NodeVisitor API
        if node.name == "exec_":
            self.add(node, "exec_", "def exec(", "def exec_(")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815 - ast.NodeVisitor API

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802 - ast.NodeVisitor API
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr == "exec_":
                self.add(node, "exec_", f"{ast.unparse(func.value)}.exec(...)", f"{ast.unparse(func)}(...)")
            elif func.attr == "desktop" and not node.args and not node.keywords:
                self.add(node, "removed-in-qt6", "QApplication.primaryScreen() / QScreen (QDesktopWidget is gone in Qt 6)")
            elif func.attr == "addAction" and len(node.args) >= 4:
                found = f"{ast.unparse(func)}(<{len(node.args)} arguments>)"
                self.add(node, "removed-in-qt6", "action = QAction(...); widget.addAction(action)", found)
        if self._is_qvariant(func):
            if not node.args and not node.keywords:
                self.add(node, "qvariant", "NULL (from qgis.core import NULL)")
            elif len(node.args) == 1 and isinstance(node.args[0], ast.Attribute) and self._is_qvariant(node.args[0].value):
                self.add(node, "qvariant", "NULL (from qgis.core import NULL)")
        if _called_name(node) == "QDateTime":
            args = [ast.unparse(arg) for arg in node.args]
            if len(args) == 8:
                self.add(node, "qdatetime", f"QDateTime(QDate({', '.join(args[:3])}), QTime({', '.join(args[3:7])}), {args[7]})")
            elif len(args) == 1 and isinstance(node.args[0], ast.Call) and _called_name(node.args[0]) == "QDate":
                self.add(node, "qdatetime", f"QDateTime({args[0]}, QTime(0, 0, 0))")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:  # noqa: N802 - ast.NodeVisitor API
        value, index = node.value, node.slice
        if isinstance(value, ast.Attribute) and value.attr == "activated" and isinstance(index, ast.Name) and index.id == "str":
            self.add(node, "removed-in-qt6", f"{ast.unparse(value.value)}.textActivated (activated[str] is gone in Qt 6)")
        self.generic_visit(node)

    # -- attributes: enums, QVariant, qApp, QFontMetrics ----------------------------------------
    def visit_Attribute(self, node: ast.Attribute) -> None:  # noqa: N802 - ast.NodeVisitor API
        self._check_attribute(node)
        self.generic_visit(node)

    def _check_attribute(self, node: ast.Attribute) -> None:
        value = node.value
        if isinstance(value, ast.Name) and value.id == "qApp":
            self.add(node, "qapp", f"QApplication.instance().{node.attr}")
            return
        if node.attr == "width" and self._is_font_metrics(value):
            self.add(node, "removed-in-qt6", f"{ast.unparse(value)}.horizontalAdvance (QFontMetrics.width is gone in Qt 6)")
            return
        if isinstance(value, ast.Attribute) and value.attr == "Type" and self._is_qvariant(value.value):
            self.add(node, "qvariant", f"{ast.unparse(value.value)}.{node.attr}")
            return
        owner = self.resolve(value)
        if not isinstance(owner, type) or owner is self.names.qvariant:
            return  # QVariant.Int stays (see the module docstring)
        renamed = RENAMED_ENUMS.get((owner.__name__, node.attr))
        if renamed is not None:
            self.add(node, "renamed-enum", renamed)
            return
        scope = self.names.scoped_name(owner, node.attr)
        if scope is not None:
            self.add(node, "unscoped-enum", f"{ast.unparse(value)}.{scope}.{node.attr}")

    def _is_qvariant(self, node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id == "QVariant") or self.resolve(node) is self.names.qvariant

    def _is_font_metrics(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.font_metrics
        if isinstance(node, ast.Call):
            func = node.func
            return (isinstance(func, ast.Attribute) and func.attr == "fontMetrics") or _called_name(node) in ("QFontMetrics", "QFontMetricsF")
        return False


def _is_qt_module(module: str) -> bool:
    return module == "qgis" or module.startswith("qgis.") or module.split(".")[0] in DIRECT_MODULES


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception:  # a module this build lacks, or one that needs a running QGIS: not judged
        return None


def _import_attribute(module: str, name: str) -> Any:
    owner = _import_module(module)
    if owner is not None and hasattr(owner, name):
        return getattr(owner, name)
    return _import_module(f"{module}.{name}")


def _called_name(call: ast.Call) -> str | None:
    return call.func.id if isinstance(call.func, ast.Name) else None


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        else:
            yield path


def check_file(path: Path, names: QtNames) -> list[Finding]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    checker = _FileChecker(path, tree, names)
    checker.visit(tree)
    return sorted(checker.findings, key=lambda f: (f.line, f.col, f.rule))


def check(paths: Iterable[Path], names: QtNames | None = None) -> list[Finding]:
    """Findings in the Python files under ``paths`` (files or folders)."""
    names = names or QtNames()
    return [finding for path in python_files(paths) for finding in check_file(path, names)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help=f"files or folders (default: {' '.join(DEFAULT_PATHS)})")
    parser.add_argument("--list", action="store_true", help="print each finding as file:line:col: rule: found -> suggested")
    args = parser.parse_args(argv)
    paths = args.paths or [ROOT / path for path in DEFAULT_PATHS]
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        print(f"check_qt6_idioms: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        names = QtNames()
    except ImportError as error:
        print(f"check_qt6_idioms: needs QGIS's Python (qgis.core, qgis.PyQt) to judge enums: {error}", file=sys.stderr)
        return 2
    try:
        findings = check(paths, names)
    except SyntaxError as error:
        print(f"check_qt6_idioms: cannot parse {error.filename}:{error.lineno}: {error.msg}", file=sys.stderr)
        return 2
    if args.list:
        for finding in findings:
            print(finding.format())
    if findings:
        hint = "" if args.list else " (run with --list to see them)"
        print(f"check_qt6_idioms: {len(findings)} Qt 6 migration finding(s){hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
