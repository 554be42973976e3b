"""``satvision:installdependencies`` for real: pip from the package registry (this machine's pip
configuration, which may add a local mirror) into a fresh QGIS profile, through ``qgis_process``
with SatVision's development environment hidden (no PYTHONPATH), so what the plugin sees afterwards
comes from its own packages folder. The light Earth Engine set keeps it fast (~20 MB)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from tests_helpers import qgis_process_json

from satvision.installer.features import requirement_lines
from satvision.installer.locations import STAGING_PREFIX, WORK_PREFIX, active_generation

ROOT = Path(__file__).resolve().parent.parent
QGIS_PROCESS = ROOT / "scripts" / "qgis-process"
EARTHENGINE = 1  # the FEATURES index of the Earth Engine set


class Profile:
    """A fresh QGIS profile folder with the plugin enabled and no development environment."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        self.environment.update({"QGIS_CUSTOM_CONFIG_PATH": str(folder), "SATVISION_VENV": str(folder / "no-venv")})

    def run(self, *arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(QGIS_PROCESS), *arguments], capture_output=True, text=True, env=self.environment, timeout=600)

    def results(self, *arguments: str) -> dict:
        return qgis_process_json(self.run("run", *arguments, "--json"))["results"]

    def diagnose(self) -> dict:
        return self.results("satvision:diagnose")

    @property
    def packages_root(self) -> Path:
        python = next((self.folder / "profiles" / "default" / "python" / "satvision-packages").iterdir())
        return python


def _file_facts(python: str) -> dict:
    """numpy's version, file and content hash as QGIS's Python imports it."""
    out = subprocess.run([python, "-c", "import numpy, sys; print(numpy.__version__); print(numpy.__file__)"],
                         capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, check=True)
    version, location = out.stdout.split()
    return {"version": version, "file": location, "sha256": hashlib.sha256(Path(location).read_bytes()).hexdigest()}


@pytest.fixture(scope="module")
def own_folder():
    """A temporary folder outside pytest's basetemp, which other pytest runs on this machine rotate
    away (deleting a profile in the middle of these minutes-long tests)."""
    with tempfile.TemporaryDirectory(prefix="satvision-installer-test-") as folder:
        yield Path(folder)


@pytest.fixture(scope="module")
def installed(own_folder):
    profile = Profile(own_folder / "install-profile")
    enabled = profile.run("plugins", "enable", "satvision")
    assert enabled.returncode == 0, enabled.stderr
    before = profile.diagnose()
    assert before["packages"]["earthengine_api"] is None, "the Earth Engine client must be hidden before the install"
    numpy_before = _file_facts(before["python_executable"])
    results = profile.results("satvision:installdependencies", f"--FEATURES={EARTHENGINE}")
    return profile, before, numpy_before, results


def test_install_puts_the_packages_in_the_plugins_folder(installed):
    profile, before, numpy_before, results = installed
    folder = Path(results["FOLDER"])
    assert folder.parent == profile.packages_root and active_generation(profile.packages_root) == folder
    assert profile.packages_root.name == "py" + ".".join(before["python"].split(".")[:2])
    (pinned,) = [line for line in requirement_lines(["earthengine"]) if line.startswith("earthengine-api")]
    versions = json.loads(results["VERSIONS"])
    assert versions["earthengine-api"] == pinned.split("==")[1]
    assert (folder / "ee" / "__init__.py").is_file()
    assert results["DOWNLOAD_BYTES"] > 0
    # never numpy (nor anything else QGIS ships) in the folder
    assert not list(folder.glob("numpy*")) and not list(folder.glob("osgeo*")) and not list(folder.glob("PyQt*"))

    # a new qgis_process, no PYTHONPATH: the provider puts the folder on sys.path at load
    after = profile.diagnose()
    assert after["packages"]["earthengine_api"] == versions["earthengine-api"]
    assert after["packages"]["numpy"] == before["packages"]["numpy"]
    assert _file_facts(after["python_executable"]) == numpy_before
    assert after["installed_packages"]["folder"] == results["FOLDER"]
    assert after["installed_packages"]["versions"] == versions and after["installed_packages"]["features"] == ["earthengine"]


def test_plan_only_lists_and_changes_nothing(installed):
    profile, _, _, results = installed
    planned = profile.run("run", "satvision:installdependencies", f"--FEATURES={EARTHENGINE}", "--MODE=1", "--json")
    answer = qgis_process_json(planned)["results"]
    assert answer["DOWNLOAD_BYTES"] > 0 and answer["FOLDER"] == results["FOLDER"]
    assert "earthengine-api==" in planned.stdout + planned.stderr
    assert active_generation(profile.packages_root) == Path(results["FOLDER"])
    assert len([path for path in profile.packages_root.iterdir() if path.name.startswith("g-")]) == 1


def test_a_failing_install_keeps_the_previous_folder_and_says_what_failed(installed):
    profile, _, _, results = installed
    failed = profile.run("run", "satvision:installdependencies", f"--FEATURES={EARTHENGINE}",
                         "--EXTRA_REQUIREMENTS=uritemplate==0.0.1", "--json")
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "uritemplate==0.0.1" in output and "previous packages stay in use" in output
    assert active_generation(profile.packages_root) == Path(results["FOLDER"])
    assert (Path(results["FOLDER"]) / "ee" / "__init__.py").is_file()
    assert not [path for path in profile.packages_root.iterdir() if path.name.startswith((STAGING_PREFIX, WORK_PREFIX))]


def test_repair_reinstalls_what_is_installed_into_a_new_folder(installed):
    """Repair takes the installed feature sets (Earth Engine), not the FEATURES default (segmentation,
    which would download PyTorch), and keeps the previous folder beside the new one."""
    profile, _, _, results = installed
    repaired = profile.results("satvision:installdependencies", "--MODE=2")
    assert repaired["FOLDER"] != results["FOLDER"] and active_generation(profile.packages_root) == Path(repaired["FOLDER"])
    assert json.loads(repaired["VERSIONS"]) == json.loads(results["VERSIONS"])
    assert Path(results["FOLDER"]).is_dir()


def test_remove_stops_using_the_folder(installed):
    profile, _, _, results = installed
    removed = profile.results("satvision:installdependencies", "--MODE=3")
    assert removed["FOLDER"] == "" and active_generation(profile.packages_root) is None
    assert not Path(results["FOLDER"]).exists()
    assert not [path for path in profile.packages_root.iterdir() if path.name.startswith("g-")]
    assert profile.diagnose()["packages"]["earthengine_api"] is None


def test_install_then_segment_water_in_a_new_qgis_process(first_run_in_the_desktop, own_folder):
    """The first-run path: torch hidden -> Install dependencies -> Segment water works in a new
    qgis_process without PYTHONPATH, and QGIS's numpy is the same file.

    The install is the one of the desktop's first-run path (the session fixture
    ``first_run_in_the_desktop``, tests/desktop_first_run.py: same algorithm, run from its dialog in a
    fresh profile with torch hidden), so PyTorch is installed once per test session: about 2.8 GB
    from PyPI and 5.4 GB on disk, minutes, removed with its temporary folder. The Earth Engine tests
    above run the installer itself through ``qgis_process``. SATVISION_TEST_TORCH_BUILD picks the build
    (default ``default``: PyPI's wheels, the only index reachable here; ``auto`` where
    download.pytorch.org is reachable)."""
    first_run = first_run_in_the_desktop
    report = first_run.report
    assert report.get("torch_before", "missing") is None, "torch must be hidden before the install"
    install = report["runs"]["install"]
    assert install["successful"], install["log"][-5000:]
    versions = json.loads(install["results"]["VERSIONS"])
    assert "torch" in versions

    profile, output = Profile(first_run.profiles), own_folder / "water.gpkg"  # the plugin is enabled there
    profile.results("satvision:segmentwater", f"--INPUT={first_run.raster}", f"--OUTPUT={output}")
    assert output.is_file() and output.stat().st_size > 0
    after = profile.diagnose()
    assert after["packages"]["torch"] == versions["torch"]
    assert after["installed_packages"]["folder"] == install["results"]["FOLDER"]
    assert _file_facts(after["python_executable"]) == report["numpy_before"]


def test_the_plugin_zip_installs_its_dependencies(own_folder):
    """``make package``'s zip unzipped into a fresh profile (QGIS's "Install from ZIP"): it ships the
    requirement lists, so Install dependencies works from it, and its packages load in a new process."""
    import sys
    import zipfile

    from satvision import __version__

    built = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_plugin_zip.py"), "--output", str(own_folder / "dist")],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    plugins = own_folder / "zip-plugins"
    with zipfile.ZipFile(own_folder / "dist" / f"satvision-{__version__}.zip") as archive:
        archive.extractall(plugins)
    profile = Profile(own_folder / "zip-profile")
    binary = "/usr/bin/qgis_process.bin" if Path("/usr/bin/qgis_process.bin").exists() else "qgis_process"
    profile.environment.update({"QGIS_PLUGINPATH": str(plugins), "QT_QPA_PLATFORM": "offscreen"})

    def run(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *arguments], capture_output=True, text=True, env=profile.environment, timeout=600)

    assert run("plugins", "enable", "satvision").returncode == 0
    installed = qgis_process_json(run("run", "satvision:installdependencies", f"--FEATURES={EARTHENGINE}", "--json"))["results"]
    assert Path(installed["FOLDER"]).parent == profile.packages_root
    report = qgis_process_json(run("run", "satvision:diagnose", "--json"))["results"]
    assert report["model_folders"]["bundled"].startswith(str(plugins))
    assert report["packages"]["earthengine_api"] == json.loads(installed["VERSIONS"])["earthengine-api"]
