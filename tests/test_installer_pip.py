"""The installer with a real pip, without QGIS: cancellation stops pip and keeps the previous working
set; an offline install takes only the wheelhouse."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from satvision.core.errors import OperationCancelled
from satvision.installer.features import requirement_lines
from satvision.installer.install import Facts, Request, run
from satvision.installer.locations import STAGING_PREFIX, WORK_PREFIX, active_generation, set_active
from satvision.installer.pip_runner import pip_environment


def test_cancelling_stops_pip_and_keeps_the_previous_folder(tmp_path):
    facts = Facts(profile_dir=str(tmp_path), executable=sys.executable, prefix=sys.prefix)
    previous = facts.root / "g-previous"
    previous.mkdir(parents=True)
    set_active(facts.root, previous)
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(OperationCancelled, match="previous packages stay in use"):
        run(Request(features=("earthengine",)), facts, lines.append, is_cancelled=lambda: any(line.startswith("Looking in") or
                                                                                                line.startswith("Collecting") for line in lines))
    assert time.monotonic() - started < 60
    assert active_generation(facts.root) == previous
    assert not [path for path in facts.root.iterdir() if path.name.startswith((STAGING_PREFIX, WORK_PREFIX))]


def test_an_offline_install_uses_only_the_wheelhouse(tmp_path):
    """Air-gapped machines: a wheelhouse made with ``pip download`` and no index URL -> pip gets
    --no-index and installs from the folder. Runs the system Python, which lacks the Earth Engine client."""
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if not python.is_file() or subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip(f"no pip in {python}")
    wheelhouse = tmp_path / "wheelhouse"
    downloaded = subprocess.run([str(python), "-m", "pip", "download", "--quiet", "--only-binary=:all:", "-d", str(wheelhouse),
                                 *requirement_lines(["earthengine"])], capture_output=True, text=True, env=pip_environment())
    assert downloaded.returncode == 0, downloaded.stdout + downloaded.stderr
    facts = Facts(profile_dir=str(tmp_path / "profile"), executable="/usr/bin/qgis_process.bin", prefix=sys.base_prefix)
    lines: list[str] = []
    outcome = run(Request(features=("earthengine",), find_links=(str(wheelhouse),)), facts, lines.append)
    assert (outcome.folder / "ee" / "__init__.py").is_file()
    assert outcome.plan.packages and all(package.url.startswith("file:") for package in outcome.plan.packages)
    assert outcome.plan.download_bytes == sum(
        (wheelhouse / package.url.rsplit("/", 1)[1]).stat().st_size for package in outcome.plan.packages)
    assert not [line for line in lines if line.startswith("Looking in indexes")]


def test_a_pip_too_old_for_reports_gets_a_newer_one_beside_it(tmp_path):
    """pip < 22.2 (Ubuntu 22.04's is 22.0) has no --dry-run --report: the installer puts a newer pip in
    the packages folder and leaves the interpreter's own pip as it was."""
    environment = tmp_path / "old-pip-python"
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(environment)], capture_output=True, text=True)
    python = environment / "bin" / "python"
    if made.returncode or not python.exists():
        pytest.skip(f"cannot make a virtual environment: {made.stderr.strip()}")
    system_pip = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    old = subprocess.run([str(system_pip), "-m", "pip", "install", "--quiet", "--target",
                          str(environment / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"),
                          "pip==22.0.4"], capture_output=True, text=True, env=pip_environment())
    assert old.returncode == 0, old.stdout + old.stderr
    own_pip = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, text=True).stdout
    assert own_pip.startswith("pip 22.0.4")
    facts = Facts(profile_dir=str(tmp_path / "profile"), executable=str(python), prefix=str(environment))
    lines: list[str] = []
    outcome = run(Request(features=("earthengine",), mode="plan"), facts, lines.append)
    assert any("putting a newer pip" in line for line in lines)
    assert [package.name for package in outcome.plan.packages if package.name == "earthengine-api"]
    assert subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, text=True).stdout == own_pip
