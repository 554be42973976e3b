#!/usr/bin/env python3
"""Run QGIS's PyQt5 -> PyQt6 migration script (pip package ``qgis-pyqt5to6``) as a dry run.

The script rewrites files in place and has no dry-run flag in the published 0.0.0.dev0, so it runs
on a copy of the QGIS layer in a temporary folder; this prints the unified diff of what it would
change, and every warning it writes, and exits 1 when there is anything (0 when nothing, 2 when
the tool is not installed: ``make install`` puts it in ``.build/qt6-migration``).

The tool runs in its own interpreter with ``-S`` and ``PYTHONPATH`` set to the tool folder only,
so it cannot import QGIS. That is deliberate: the script does ``from qgis.core import *`` after
``from PyQt6 import QtCore``, and Debian's QGIS (built on PyQt5) re-binds ``QtCore`` to PyQt5's,
so with QGIS importable it silently stops checking every ``Qt.*`` enum. Without QGIS it checks
the Qt classes (from PyQt6) and prints a notice that QGIS classes were not introspected; the
``Qgs*`` enums are checked by ``scripts/check_qt6_idioms.py``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess  # nosec B404 - runs the migration tool with a fixed argument list
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TOOL = ROOT / ".build" / "qt6-migration"
DEFAULT_PATHS = ("__init__.py", "plugin.py", "provider", "algorithms", "tests/desktop_driver.py")
PARTIAL_NOTICE = "QGIS classes not available for introspection, only a partial upgrade will be performed"


def copy_sources(paths: list[str], destination: Path) -> list[Path]:
    """Copy the Python files under ``paths`` (relative to ROOT) into ``destination``; return their relative paths."""
    copied = []
    for name in paths:
        source = ROOT / name
        if not source.exists():
            raise SystemExit(f"{name} does not exist (paths are relative to {ROOT})")
        files = [source] if source.is_file() else sorted(source.rglob("*.py"))
        for file in files:
            relative = file.relative_to(ROOT)
            if "__pycache__" in relative.parts:
                continue
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, destination / relative)
            copied.append(relative)
    return copied


def run_tool(tool: Path, folder: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(tool)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return subprocess.run(  # nosec B603 - fixed arguments, no shell
        [sys.executable, "-S", "-m", "pyqt5to6.pyqt5to6", str(folder)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help=f"files or folders relative to the repository (default: {' '.join(DEFAULT_PATHS)})")
    parser.add_argument("--tool", type=Path, default=DEFAULT_TOOL, help="folder qgis-pyqt5to6 is installed in (pip install --target)")
    args = parser.parse_args(argv)
    if not (args.tool / "pyqt5to6" / "pyqt5to6.py").is_file():
        print(f"qgis-pyqt5to6 is not installed in {args.tool}: run `make install` (requirements/qt6-migration.txt)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="satvision-pyqt5to6-") as temporary:
        folder = Path(temporary)
        files = copy_sources(args.paths or list(DEFAULT_PATHS), folder)
        result = run_tool(args.tool, folder)
        findings = 0
        for relative in files:
            before = (ROOT / relative).read_text(encoding="utf-8").splitlines(keepends=True)
            after = (folder / relative).read_text(encoding="utf-8").splitlines(keepends=True)
            diff = list(difflib.unified_diff(before, after, f"a/{relative}", f"b/{relative}"))
            if diff:
                findings += 1
                sys.stdout.writelines(diff)
        messages = [line.replace(temporary + os.sep, "") for line in (result.stdout + result.stderr).splitlines()
                    if line.strip() and line.strip() != PARTIAL_NOTICE]
        for line in messages:
            print(line)
    if result.returncode not in (0, 1) or (result.returncode == 1 and not findings):
        print(f"pyqt5to6 failed (exit status {result.returncode})", file=sys.stderr)
        return 1
    if findings or messages:
        print(f"QGIS's PyQt5 -> PyQt6 migration script would change {findings} file(s) (diff above) or warns (above)", file=sys.stderr)
        return 1
    print(f"pyqt5to6: nothing to change in {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
