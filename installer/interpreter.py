"""QGIS's Python for pip: found from the platform facts, checked to be the Python QGIS runs, with a
pip new enough for install reports (a newer pip is put beside it when it is not)."""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404 - runs QGIS's Python with an argument list, no shell
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Callable

from ..core.errors import SatVisionError
from .pip_runner import NO_WINDOW, Interpreter, pip_environment, run_pip
from .torch_builds import version_tuple

#: ``pip install --dry-run --report`` appeared in pip 22.2; older ones get NEWER_PIP in PIP_FOLDER
MINIMUM_PIP = (22, 2)
NEWER_PIP = "pip>=23.3,<27"
PIP_FOLDER = ".pip"


def interpreter_for_pip(system: str, executable: str, prefix: str, version: tuple[int, int],
                        exists: Callable[[PurePath], bool]) -> PurePath | None:
    """The Python interpreter to run ``-m pip`` with, inside QGIS, or None when none is found.

    Inside QGIS ``sys.executable`` is usually the QGIS binary (``qgis-bin.exe``, ``QGIS``,
    ``qgis_process.bin``), not Python. ``system`` is ``platform.system()``; ``exists`` tells whether
    a candidate file exists (``os.path.isfile`` in real use).

    - Windows (OSGeo4W and the standalone installer): ``python3.exe``/``python.exe`` beside
      ``qgis-bin.exe`` in ``bin/``, else the one in ``sys.prefix`` (``apps/Python3xx``);
    - macOS (QGIS.app): the bundled ``Contents/MacOS/bin/python3``, else ``sys.prefix/bin``;
    - Linux and others: ``sys.prefix/bin/python3.X``; ``sys.executable`` only when it lives there
      (inside QGIS it can be whatever ``python3`` is first on PATH: a pyenv or conda Python with
      other packages, which once made a plan count on a sympy QGIS's Python does not have).
    """
    major, minor = version
    if system == "Windows":
        binary, home = PureWindowsPath(executable), PureWindowsPath(prefix)
        name = binary.name.lower()
        candidates = [binary] if name.startswith("python") and name.endswith(".exe") else []
        candidates += [binary.parent / "python3.exe", binary.parent / "python.exe", home / "python.exe", home / "python3.exe"]
    else:
        binary, home = PurePosixPath(executable), PurePosixPath(prefix)
        candidates = []
        if system == "Darwin":
            candidates += [binary.parent / "bin" / "python3", binary.parent / "bin" / f"python{major}.{minor}"]
        candidates += [home / "bin" / f"python{major}.{minor}", home / "bin" / "python3"]
        if binary.name.startswith("python") and binary.parent == home / "bin":
            candidates.append(binary)
    for candidate in candidates:
        if exists(candidate):
            return candidate
    return None


def qgis_python(system: str, executable: str, prefix: str, version: tuple[int, int], root: Path,
                log: Callable[[str], None], is_cancelled: Callable[[], bool]) -> Interpreter:
    """QGIS's Python, checked to be the one running QGIS and to have a pip that writes reports (an
    older pip gets a newer one beside it, in the packages folder, never in QGIS's Python)."""
    python = interpreter_for_pip(system, executable, prefix, version, lambda path: os.path.isfile(path))
    if python is None:
        raise SatVisionError(
            f"Cannot find QGIS's Python interpreter (looked beside {executable} and in {prefix}). "
            "Install the packages by hand as the README's 'Installing in QGIS › By hand' says."
        )
    found, pip_version = _probe(Interpreter(python))
    if os.path.normcase(found) != os.path.normcase(os.path.realpath(prefix)):
        raise SatVisionError(
            f"{python} is another Python ({found}) than the one QGIS runs ({prefix}), so packages installed "
            "with it would not fit. Install the packages by hand as the README's 'Installing in QGIS › By hand' says."
        )
    if version_tuple(pip_version)[:2] >= MINIMUM_PIP:
        return Interpreter(python)
    home = root / PIP_FOLDER
    newer = Interpreter(python, str(home))
    if not home.is_dir() or version_tuple(_probe(newer)[1])[:2] < MINIMUM_PIP:
        log(f"QGIS's pip {pip_version} cannot write install reports: putting a newer pip in {home} (QGIS's stays as it is)…")
        shutil.rmtree(home, ignore_errors=True)
        result = run_pip(python, ["install", "--target", str(home), "--no-deps", "--disable-pip-version-check", NEWER_PIP], log, is_cancelled)
        if result.returncode != 0:
            raise SatVisionError(f"QGIS's pip {pip_version} is too old and a newer one could not be fetched: "
                                 + " ".join(result.errors()) + f" — update it: {python} -m pip install --upgrade pip")
    return newer


def _probe(interpreter: Interpreter) -> tuple[str, str]:
    """The real ``sys.prefix`` of ``interpreter`` and the version of the pip it imports."""
    probe = "import os, sys, pip; print(os.path.realpath(sys.prefix)); print(pip.__version__)"
    try:
        completed = subprocess.run([str(interpreter.path), "-c", probe], capture_output=True, text=True,  # nosec B603 - argument list
                                   env=pip_environment(pip_home=interpreter.pip_home), timeout=120, creationflags=NO_WINDOW)
        problem = "" if completed.returncode == 0 else (completed.stderr.strip().splitlines() or ["no output"])[-1]
    except (OSError, subprocess.SubprocessError) as error:
        problem = str(error)
    if problem:
        raise SatVisionError(
            f"QGIS's Python ({interpreter.path}) has no usable pip: {problem}. "
            "Install it (Debian/Ubuntu: sudo apt install python3-pip; other systems: "
            f"{interpreter.path} -m ensurepip), then run Install dependencies again."
        )
    prefix, version = (completed.stdout.splitlines() + ["", ""])[:2]
    return prefix.strip(), version.strip()
