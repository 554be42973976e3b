"""The pip steps of an install: resolve (a dry run with a report), install the exact list, import check.

pip runs twice: a dry run (``--report``) resolves the requirements against what QGIS's Python
already has, with a constraints file pinning QGIS's numpy & co.; the install then takes exactly
that list (``--no-deps``), minus what QGIS ships (:mod:`.protected`), so pip can never replace numpy.
"""

from __future__ import annotations

import re
import subprocess  # nosec B404 - the import check runs QGIS's Python with an argument list
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.errors import SatVisionError
from .pip_runner import NO_WINDOW, Interpreter, pip_environment, run_pip
from .plan import Plan, read_report, with_sizes
from .protected import protected_versions, write_constraints

PYPI = "https://pypi.org/simple"
Log = Callable[[str], None]


@dataclass(frozen=True)
class Sources:
    """Where pip looks: ``index_url`` replaces PyPI (empty: PyPI); ``find_links`` are wheelhouses, the
    only source when no index URL is given (air-gapped); ``torch_index`` is PyTorch's wheel index for
    the chosen build (None: PyPI's torch)."""

    index_url: str = ""
    find_links: tuple[str, ...] = ()
    torch_index: str | None = None

    @property
    def offline(self) -> bool:
        return bool(self.find_links) and not self.index_url

    def links(self) -> list[str]:
        return [argument for link in self.find_links for argument in ("--find-links", link)]

    def arguments(self) -> list[str]:
        """pip's index options: the user's index or PyPI, the torch index as an extra one, wheelhouses."""
        if self.offline:
            return ["--no-index", *self.links()]
        arguments = ["--index-url", self.index_url or PYPI]
        if self.torch_index and not self.index_url:
            arguments += ["--extra-index-url", self.torch_index]
        return arguments + self.links()

    def torch_only(self) -> list[str] | None:
        """The options to resolve torch from its own index alone, or None when it comes from elsewhere."""
        if self.torch_index and not self.offline and not self.index_url:
            return ["--index-url", self.torch_index, *self.links()]
        return None


def _common(work: Path) -> list[str]:
    return ["--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-c", str(work / "constraints.txt")]


def resolve(python: Interpreter, requirements: list[str], sources: Sources, work: Path, log: Log, is_cancelled) -> Plan:
    """What pip would install for ``requirements`` (with download sizes), QGIS's packages pinned."""
    versions = protected_versions()
    write_constraints(work / "constraints.txt", versions)
    log("Kept from QGIS's Python: " + (", ".join(f"{name} {version}" for name, version in sorted(versions.items())) or "nothing found"))
    torch_lines = [line for line in requirements if _name(line) in ("torch", "torchvision")]
    torch_only = sources.torch_only()
    if torch_only and torch_lines:
        # torch and torchvision from the chosen index alone: with PyPI beside it, a newer PyPI torch
        # (another CUDA build) would win. The rest is then resolved with both, those two pinned.
        log(f"Resolving PyTorch from {sources.torch_index}…")
        first = dry_run(python, torch_lines, torch_only, work, "torch-report.json", log, is_cancelled, upgrade=True)
        pins = {package.name: package.version for package in first.packages if _name(package.name) in ("torch", "torchvision")}
        if pins:
            write_constraints(work / "constraints.txt", {**versions, **pins})
    log("Resolving the packages to install…")
    return with_sizes(dry_run(python, requirements, sources.arguments(), work, "report.json", log, is_cancelled))


def dry_run(python: Interpreter, requirements: list[str], sources: list[str], work: Path, report_name: str, log: Log, is_cancelled,
             upgrade: bool = False) -> Plan:
    """pip's resolution of ``requirements`` against what QGIS's Python has (``upgrade``: the
    requirements themselves at their newest allowed version even when QGIS's Python has one)."""
    report = work / report_name
    arguments = ["install", "--dry-run", *(["--upgrade"] if upgrade else []), "--report", str(report), *_common(work),
                 *sources, *requirements]
    result = run_pip(python, arguments, log, is_cancelled)
    if result.returncode != 0:
        raise SatVisionError("pip could not resolve the packages: " + " ".join(result.errors())
                             + " — check the index URL / wheelhouse and the network; the previous packages stay in use.")
    return read_report(report)


def install_into(python: Interpreter, plan: Plan, sources: Sources, work: Path, staging: Path, log: Log, is_cancelled,
                 progress) -> None:
    """pip install the plan's exact pins (``--no-deps``) into ``staging``, with progress per package."""
    total = len(plan.packages)
    started = {"count": 0}

    def on_line(line: str) -> None:
        log(line)
        if line.startswith(("Collecting ", "Processing ")):
            started["count"] += 1
            progress(10 + 80 * min(started["count"], total) / total)

    log(f"Installing {total} package(s) into a new folder…")
    arguments = ["install", "--no-deps", "--target", str(staging), *_common(work), *sources.arguments(),
                 *(package.pin for package in plan.packages)]
    result = run_pip(python, arguments, on_line, is_cancelled)
    if result.returncode != 0:
        raise SatVisionError("pip failed: " + " ".join(result.errors()) + " — the previous packages stay in use.")


def check_imports(python: Interpreter, staging: Path, modules: list[str], log: Log) -> None:
    """Import ``modules`` in a child QGIS Python that sees ``staging`` as the provider will put it."""
    if not modules:
        return
    log("Checking that the new packages import: " + ", ".join(modules))
    code = (
        "import os, sys\n"
        "folder = sys.argv[1]\n"
        "position = next((i for i, p in enumerate(sys.path) if os.path.basename(os.path.normpath(p)).lower() "
        "in ('site-packages', 'dist-packages')), len(sys.path))\n"
        "sys.path.insert(position, folder)\n"
        "import importlib\n"
        "for name in sys.argv[2:]:\n"
        "    importlib.import_module(name)\n"
    )
    completed = subprocess.run([str(python.path), "-c", code, str(staging), *modules], capture_output=True, text=True,  # nosec B603
                               env=pip_environment(), timeout=600, creationflags=NO_WINDOW)
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["no error output"])[-1]
        raise SatVisionError(f"The new packages were installed but do not import ({last}); the previous packages stay in use. "
                             "Try the mode 'repair', or another torch build.")


def _name(line: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return match.group(1).lower().replace("_", "-") if match else ""
