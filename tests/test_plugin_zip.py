"""`make package`: the plugin zip passes the plugin repository's checks and loads in QGIS once unzipped."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from tests_helpers import qgis_process_json

from satvision import __version__

ROOT = Path(__file__).resolve().parent.parent


def _builder():
    spec = importlib.util.spec_from_file_location("build_plugin_zip", ROOT / "scripts" / "build_plugin_zip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("dist")
    completed = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_plugin_zip.py"), "--output", str(output)],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert "passes the plugin repository's checks" in completed.stdout
    return output / f"satvision-{__version__}.zip"


def test_the_zip_holds_the_runtime_plugin_only(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as archive:
        names = archive.namelist()
    assert {"satvision/__init__.py", "satvision/metadata.txt", "satvision/LICENSE", "satvision/provider/provider.py",
            "satvision/models/card.py"} <= set(names)
    assert not [name for name in names if name.startswith(("satvision/tests/", "satvision/.", "satvision/scripts/")) or name.endswith(".pyc")]
    assert _builder().validate(plugin_zip) == []


def test_the_validator_rejects_what_the_repository_rejects(tmp_path, plugin_zip):
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(plugin_zip) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            if not item.filename.endswith("LICENSE"):
                target.writestr(item, source.read(item))
        target.writestr("satvision/__pycache__/x.cpython-311.pyc", b"")
        target.writestr("other/readme.txt", "second top-level folder")
    problems = "\n".join(_builder().validate(broken))
    assert "missing LICENSE" in problems and "forbidden entry" in problems and "exactly one folder" in problems


def test_the_security_scan_blocks_what_the_repository_blocks(tmp_path, plugin_zip):
    """Bandit findings and secrets in any shipped file fail the check, as they block an upload."""
    risky = tmp_path / "risky.zip"
    with zipfile.ZipFile(plugin_zip) as source, zipfile.ZipFile(risky, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr("satvision/core/risky.py", "import subprocess\n\ndef run(text):\n"
                                                   "    return subprocess.call(text, shell=True)\n")
        target.writestr("satvision/core/keys.py", 'AWS_KEY = "AKIAIOSFODNN7EXAMPLE"\n')
    problems = _builder().validate(risky)
    assert any(problem.startswith("bandit B602") and "satvision/core/risky.py:4" in problem for problem in problems)
    assert any(problem.startswith("detect-secrets AWS Access Key") and "keys.py:1" in problem for problem in problems)
    assert not [problem for problem in problems if "risky.py" not in problem and "keys.py" not in problem]


def test_the_unzipped_plugin_loads_in_qgis_process(plugin_zip, tmp_path):
    """What QGIS's "Install from ZIP" does: unzip into a plugins folder, enable, use."""
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(plugin_zip) as archive:
        archive.extractall(plugins)
    environment = {
        **os.environ,
        "QGIS_PLUGINPATH": str(plugins),
        "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "profile"),
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
        "QT_QPA_PLATFORM": "offscreen",
    }
    binary = "/usr/bin/qgis_process.bin" if Path("/usr/bin/qgis_process.bin").exists() else "qgis_process"
    enabled = subprocess.run([binary, "plugins", "enable", "satvision"], capture_output=True, text=True, env=environment)
    assert enabled.returncode == 0, enabled.stderr
    answer = qgis_process_json(subprocess.run([binary, "run", "satvision:diagnose", "--json"], capture_output=True, text=True, env=environment))
    assert answer["results"]["satvision"] == __version__
    assert answer["results"]["model_folders"]["bundled"] == str(plugins / "satvision" / "resources" / "models")
