"""The installer's platform facts and decisions as tables (installer/): the packages folder, the
Python that runs pip, the torch build for a driver, the requirement lines, pip's report, the
constraints and where the folder goes on sys.path. Pure functions: no QGIS, no network."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from satvision.core import dependencies
from satvision.core.errors import SatVisionError
from satvision.installer import features
from satvision.installer.activate import activate, insert_position
from satvision.installer.interpreter import interpreter_for_pip
from satvision.installer.locations import active_generation, packages_root, set_active
from satvision.installer.pip_runner import pip_environment
from satvision.installer.pip_steps import Sources
from satvision.installer.plan import format_size, parse_report
from satvision.installer.protected import constraints_text, is_protected
from satvision.installer.report import active_folder, folder_report, torch_build_check
from satvision.installer.torch_builds import GpuFacts, choose_torch_build, parse_nvidia_smi

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("profile, version, expected", [
    ("/home/ana/.local/share/QGIS/QGIS3/profiles/default", (3, 11),
     "/home/ana/.local/share/QGIS/QGIS3/profiles/default/python/satvision-packages/py3.11"),
    ("/Users/bo/Library/Application Support/QGIS/QGIS3/profiles/work", (3, 9),
     "/Users/bo/Library/Application Support/QGIS/QGIS3/profiles/work/python/satvision-packages/py3.9"),
])
def test_the_packages_folder_is_per_profile_and_python(profile, version, expected):
    assert packages_root(profile, version).as_posix() == expected


W = PureWindowsPath
P = PurePosixPath


@pytest.mark.parametrize("system, executable, prefix, present, expected", [
    # OSGeo4W: qgis-bin.exe in bin/, python3.exe beside it
    ("Windows", r"C:\OSGeo4W\bin\qgis-bin.exe", r"C:\OSGeo4W\apps\Python312",
     {W(r"C:\OSGeo4W\bin\python3.exe"), W(r"C:\OSGeo4W\apps\Python312\python.exe")}, W(r"C:\OSGeo4W\bin\python3.exe")),
    # standalone installer with only python.exe beside qgis-bin.exe
    ("Windows", r"C:\Program Files\QGIS 3.40.1\bin\qgis-bin.exe", r"C:\Program Files\QGIS 3.40.1\apps\Python312",
     {W(r"C:\Program Files\QGIS 3.40.1\bin\python.exe")}, W(r"C:\Program Files\QGIS 3.40.1\bin\python.exe")),
    # nothing beside the binary: the prefix's python.exe
    ("Windows", r"D:\QGIS\bin\qgis-ltr-bin.exe", r"D:\QGIS\apps\Python39", {W(r"D:\QGIS\apps\Python39\python.exe")},
     W(r"D:\QGIS\apps\Python39\python.exe")),
    # QGIS.app: the bundled python3 in Contents/MacOS/bin
    ("Darwin", "/Applications/QGIS.app/Contents/MacOS/QGIS", "/Applications/QGIS.app/Contents/Frameworks/Python.framework/Versions/3.12",
     {P("/Applications/QGIS.app/Contents/MacOS/bin/python3")}, P("/Applications/QGIS.app/Contents/MacOS/bin/python3")),
    ("Darwin", "/Applications/QGIS.app/Contents/MacOS/QGIS", "/Applications/QGIS.app/Contents/Frameworks/Python.framework/Versions/3.12",
     {P("/Applications/QGIS.app/Contents/Frameworks/Python.framework/Versions/3.12/bin/python3.12")},
     P("/Applications/QGIS.app/Contents/Frameworks/Python.framework/Versions/3.12/bin/python3.12")),
    # Linux: qgis_process.bin is not Python; the prefix's versioned python
    ("Linux", "/usr/bin/qgis_process.bin", "/usr", {P("/usr/bin/python3.12"), P("/usr/bin/python3")}, P("/usr/bin/python3.12")),
    # a Python running SatVision (the command line): itself
    ("Linux", "/opt/env/bin/python", "/opt/env", {P("/opt/env/bin/python")}, P("/opt/env/bin/python")),
    # inside QGIS sys.executable can be another python3 on PATH (pyenv here): never that one
    ("Linux", "/root/.pyenv/versions/3.12.7/bin/python3", "/usr",
     {P("/root/.pyenv/versions/3.12.7/bin/python3"), P("/usr/bin/python3.12")}, P("/usr/bin/python3.12")),
    ("Linux", "/root/.pyenv/versions/3.12.7/bin/python3", "/usr", {P("/root/.pyenv/versions/3.12.7/bin/python3")}, None),
    ("Linux", "/usr/bin/qgis", "/usr", set(), None),
])
def test_the_python_that_runs_pip(system, executable, prefix, present, expected):
    version = (3, 12) if "3.12" in prefix or "QGIS 3.40" in prefix or prefix == "/usr" else (3, 9)
    assert interpreter_for_pip(system, executable, prefix, version, lambda path: path in present) == expected


@pytest.mark.parametrize("output, driver, capability", [
    ("550.54.14, NVIDIA GeForce RTX 3080, 8.6\n", "550.54.14", 8.6),
    ("470.82.01, Tesla K80, [N/A]\n", "470.82.01", None),
    ("535.104.05, NVIDIA A100-SXM4-40GB\n535.104.05, NVIDIA A100-SXM4-40GB\n", "535.104.05", None),
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", None, None),
])
def test_nvidia_smi_output_is_read(output, driver, capability):
    gpu = parse_nvidia_smi(output)
    assert (gpu.driver if gpu else None) == driver
    assert (gpu.capability if gpu else None) == capability


@pytest.mark.parametrize("system, machine, gpu, override, tag, index", [
    ("Linux", "x86_64", GpuFacts("580.95.05", "RTX 4090", 8.9), "auto", "cu130", "https://download.pytorch.org/whl/cu130"),
    ("Linux", "x86_64", GpuFacts("570.26"), "auto", "cu128", "https://download.pytorch.org/whl/cu128"),
    ("Linux", "x86_64", GpuFacts("565.57.01"), "auto", "cu126", "https://download.pytorch.org/whl/cu126"),
    ("Linux", "x86_64", GpuFacts("560.28.02"), "auto", "cu124", "https://download.pytorch.org/whl/cu124"),
    ("Linux", "x86_64", GpuFacts("535.104.05"), "auto", "cu121", "https://download.pytorch.org/whl/cu121"),
    ("Linux", "x86_64", GpuFacts("525.60.13"), "auto", "cu118", "https://download.pytorch.org/whl/cu118"),
    ("Linux", "x86_64", GpuFacts("470.82.01"), "auto", "cpu", "https://download.pytorch.org/whl/cpu"),
    # Windows drivers have their own numbers: 560.70 is below CUDA 12.6's 560.76
    ("Windows", "AMD64", GpuFacts("560.70"), "auto", "cu124", "https://download.pytorch.org/whl/cu124"),
    ("Windows", "AMD64", GpuFacts("572.16"), "auto", "cu128", "https://download.pytorch.org/whl/cu128"),
    # the GPU's architecture narrows it: Pascal (6.1) has no CUDA 12.8/13 kernels, Blackwell (12.0) needs 12.8+
    ("Linux", "x86_64", GpuFacts("580.95.05", "GTX 1080", 6.1), "auto", "cu126", "https://download.pytorch.org/whl/cu126"),
    ("Linux", "x86_64", GpuFacts("575.51.03", "RTX 5090", 12.0), "auto", "cu128", "https://download.pytorch.org/whl/cu128"),
    ("Linux", "x86_64", GpuFacts("565.57.01", "RTX 5090", 12.0), "auto", "cpu", "https://download.pytorch.org/whl/cpu"),
    ("Linux", "x86_64", None, "auto", "cpu", "https://download.pytorch.org/whl/cpu"),
    ("Windows", "AMD64", None, "auto", "cpu", "https://download.pytorch.org/whl/cpu"),
    ("Darwin", "arm64", None, "auto", "default", None),
    ("Darwin", "x86_64", None, "auto", "default", None),
    ("Linux", "aarch64", GpuFacts("550.54.14"), "auto", "cpu", "https://download.pytorch.org/whl/cpu"),
    # overrides win over the machine
    ("Linux", "x86_64", GpuFacts("580.95.05"), "cpu", "cpu", "https://download.pytorch.org/whl/cpu"),
    ("Linux", "x86_64", None, "cu118", "cu118", "https://download.pytorch.org/whl/cu118"),
    ("Windows", "AMD64", None, "default", "default", None),
])
def test_the_torch_build_for_the_machine(system, machine, gpu, override, tag, index):
    choice = choose_torch_build(system, machine, gpu, override)
    assert (choice.tag, choice.index_url) == (tag, index)
    assert choice.reason


def test_the_torch_choice_says_why():
    assert "driver 470.82.01" in choose_torch_build("Linux", "x86_64", GpuFacts("470.82.01"), "auto").reason
    assert "MPS" in choose_torch_build("Darwin", "arm64", None).reason
    assert "CUDA 12.6" in choose_torch_build("Linux", "x86_64", GpuFacts("560.35.05", "RTX 3060"), "auto").reason
    with pytest.raises(SatVisionError, match="cu999.*choose among"):
        choose_torch_build("Linux", "x86_64", None, "cu999")


def test_feature_sets_read_the_requirement_files():
    """One list of packages: the installer's lines are the lines of requirements/*.txt (-r followed)."""
    def lines_of(name):
        text = (ROOT / "requirements" / name).read_text()
        return [line.split(" #")[0].strip() for line in text.splitlines() if line.strip() and not line.startswith(("#", "-r"))]

    assert features.requirement_lines(["segmentation"]) == lines_of("ml.txt")
    assert features.requirement_lines(["earthengine"]) == lines_of("earthengine.txt")
    training = features.requirement_lines(["training"])
    assert training == lines_of("ml.txt") + lines_of("train.txt")
    both = features.requirement_lines(["segmentation", "training"])
    assert both == training  # each line once
    assert not any(is_protected(line.split("=")[0].split(">")[0].split("<")[0]) for line in both)
    with pytest.raises(SatVisionError, match="at least one"):
        features.requirement_lines([])


def test_the_missing_package_message_and_the_installer_agree():
    """core/dependencies.py names the feature set and its index in the algorithm's enum."""
    assert dependencies.FEATURE_ORDER == features.FEATURE_KEYS
    for module, key in dependencies.FEATURE_OF.items():
        assert module in features.feature_set(key).modules
    hint = dependencies.install_hint(["segmentation_models_pytorch"])
    assert "qgis_process run satvision:installdependencies --FEATURES=0" in hint
    assert "Processing Toolbox > SatVision > Tools > Install dependencies" in hint


def test_pip_report_becomes_the_plan_without_what_qgis_ships():
    report = {"version": "1", "install": [
        {"metadata": {"name": "timm", "version": "1.0.15"}, "requested": True,
         "download_info": {"url": "https://files.example/timm-1.0.15-py3-none-any.whl"}},
        {"metadata": {"name": "numpy", "version": "2.3.0"}, "requested": False, "download_info": {"url": "https://x/numpy.whl"}},
        {"metadata": {"name": "PyQt5_sip", "version": "12.15"}, "requested": False, "download_info": {"url": "https://x/sip.whl"}},
    ]}
    plan = parse_report(json.loads(json.dumps(report)))
    assert [package.pin for package in plan.packages] == ["timm==1.0.15"]
    assert [name.split()[0] for name in plan.kept_from_qgis] == ["numpy", "PyQt5_sip"]
    with pytest.raises(SatVisionError, match="unknown format"):
        parse_report({"version": "2", "install": []})
    assert (format_size(None), format_size(512), format_size(3 * 1024**3)) == ("size unknown", "512 B", "3.0 GB")


def test_constraints_pin_qgis_packages():
    text = constraints_text({"numpy": "1.24.2", "gdal": "3.6.2"})
    assert text.splitlines()[1:] == ["gdal==3.6.2", "numpy==1.24.2"]


def test_the_active_folder_goes_before_site_packages(tmp_path):
    root = packages_root(tmp_path, (3, 11))
    old, new = root / "g-1", root / "g-2"
    old.mkdir(parents=True)
    new.mkdir()
    path = ["/usr/share/qgis/python", "/home/a/.local/share/QGIS/QGIS3/profiles/default/python/plugins",
            "/usr/lib/python311.zip", "/usr/lib/python3/dist-packages", str(old)]
    assert insert_position(path) == 3
    assert activate(tmp_path, (3, 11), path) is None  # nothing active: stale entries go
    assert str(old) not in path
    set_active(root, new)
    assert active_generation(root) == new
    assert activate(tmp_path, (3, 11), path) == new
    assert path.index(str(new)) == 3 and path[4] == "/usr/lib/python3/dist-packages"
    assert activate(tmp_path, (3, 11), path) == new and path.count(str(new)) == 1
    (root / "active").write_text("../../elsewhere\n")
    assert active_generation(root) is None


def test_the_plugin_zip_ships_the_requirement_lists():
    """Installed from the zip, the installer reads requirements/*.txt from the plugin folder."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_plugin_zip", ROOT / "scripts" / "build_plugin_zip.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    shipped = set(builder.plugin_files())
    needed = {f"requirements/{name}" for feature in features.FEATURE_SETS for name in feature.files}
    included = {f"requirements/{line.split()[1]}" for name in needed for line in (ROOT / name).read_text().splitlines()
                if line.startswith("-r ")}
    assert needed | included <= shipped
    assert "requirements/test.txt" not in shipped  # development tools stay out


@pytest.mark.parametrize("version, cuda, gpu, system, matches, advice", [
    # the classic: a CPU build on a machine with an NVIDIA GPU
    ("2.9.1+cpu", None, GpuFacts("550.54.14", "RTX 3080"), "Linux", False, "CPU build but an NVIDIA GPU is present"),
    ("2.9.1+cu126", "12.6", GpuFacts("560.35.05", "RTX 3080"), "Linux", True, ""),
    ("2.9.1+cu128", "12.8", GpuFacts("550.54.14"), "Linux", False, "CUDA 12.8 needs driver >= 570.26"),
    ("2.9.1+cu126", "12.6", GpuFacts("560.70"), "Windows", False, "needs driver >= 560.76"),
    ("2.9.1+cu126", "12.6", None, "Linux", True, "CPU build is a much smaller download"),
    ("2.9.1", None, None, "Darwin", True, ""),
    (None, None, GpuFacts("550.54.14"), "Linux", None, "PyTorch is not installed"),
])
def test_diagnose_tells_a_torch_build_that_does_not_fit_the_gpu(version, cuda, gpu, system, matches, advice):
    check = torch_build_check(version, cuda, gpu, system)
    assert check["matches"] is matches
    assert advice in check["advice"]
    if matches is False:
        assert "Install dependencies" in check["advice"]


def test_the_folder_report_reads_the_active_folder(tmp_path):
    root = packages_root(tmp_path, (3, 11))
    generation = root / "g-20261130T000000-abcd"
    (generation / "demo_pkg-1.2.3.dist-info").mkdir(parents=True)
    (generation / "demo_pkg-1.2.3.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.2.3\n")
    (generation / "satvision-install.json").write_text(json.dumps({"features": ["earthengine"], "torch": None}))
    path = ["/usr/lib/python3/dist-packages", str(generation)]
    assert active_folder(path) == generation and active_folder(path[:1]) is None
    report = folder_report(generation)
    assert report["versions"] == {"demo-pkg": "1.2.3"} and report["features"] == ["earthengine"]
    assert folder_report(None)["folder"] is None


def test_pip_runs_with_qgis_python_as_it_starts_on_its_own():
    """No caller PYTHONPATH or virtual environment (they would make pip plan against other packages),
    no prompts, no --user; everything else (proxies, PYTHONHOME on Windows, pip's own config) stays."""
    environment = pip_environment({"PYTHONPATH": "/work/.venv/lib", "VIRTUAL_ENV": "/work/.venv", "PYTHONHOME": r"C:\OSGeo4W\apps\Python312",
                                   "HTTPS_PROXY": "http://proxy:3128", "PIP_INDEX_URL": "https://mirror/simple"})
    assert "PYTHONPATH" not in environment and "VIRTUAL_ENV" not in environment
    assert environment["PYTHONHOME"] == r"C:\OSGeo4W\apps\Python312" and environment["HTTPS_PROXY"] == "http://proxy:3128"
    assert environment["PIP_INDEX_URL"] == "https://mirror/simple"
    assert (environment["PIP_NO_INPUT"], environment["PIP_USER"], environment["PYTHONNOUSERSITE"]) == ("1", "0", "1")


def test_diagnose_reports_the_packages_folder_and_the_torch_build():
    import shutil

    import torch

    from satvision.diagnostics import collect_report, format_report

    report = collect_report()
    installed = report["installed_packages"]
    assert {"folder", "features", "torch_build", "versions", "torch_check"} <= set(installed)
    check = installed["torch_check"]
    assert check["torch"] == torch.__version__
    assert check["built_for"] == (f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU (or Apple MPS)")
    if shutil.which("nvidia-smi") is None:
        assert check["gpu"] == "no NVIDIA GPU" and check["matches"] is True
    assert "torch_check:" in format_report(report)


@pytest.mark.parametrize("sources, arguments, torch_only", [
    (Sources(), ["--index-url", "https://pypi.org/simple"], None),
    (Sources(torch_index="https://download.pytorch.org/whl/cu126"),
     ["--index-url", "https://pypi.org/simple", "--extra-index-url", "https://download.pytorch.org/whl/cu126"],
     ["--index-url", "https://download.pytorch.org/whl/cu126"]),
    # a company mirror replaces PyPI and the torch index (it must hold the wanted torch build)
    (Sources(index_url="https://mirror/simple", torch_index="https://download.pytorch.org/whl/cpu"),
     ["--index-url", "https://mirror/simple"], None),
    # a wheelhouse and no index: air-gapped, nothing else is asked
    (Sources(find_links=("/media/wheels",), torch_index="https://download.pytorch.org/whl/cpu"),
     ["--no-index", "--find-links", "/media/wheels"], None),
    (Sources(index_url="https://mirror/simple", find_links=("/media/wheels",)),
     ["--index-url", "https://mirror/simple", "--find-links", "/media/wheels"], None),
])
def test_where_pip_looks(sources, arguments, torch_only):
    assert sources.arguments() == arguments
    assert sources.torch_only() == torch_only
