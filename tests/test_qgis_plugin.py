"""The plugin in real QGIS (pytest-qgis, offscreen): provider, algorithms, diagnose via processing.run."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
)

import satvision
from satvision.algorithms import all_algorithms
from satvision.algorithms.base import SatVisionAlgorithm

ROOT = Path(__file__).resolve().parent.parent


def test_metadata_declares_a_processing_provider_and_the_package_version():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    assert general["version"] == satvision.__version__
    assert general["hasProcessingProvider"] == "yes"
    assert general["qgisMinimumVersion"] == "3.22"
    assert (ROOT / general["icon"]).is_file()


def test_the_provider_registers_and_unregisters(qgis_processing, qgis_iface):
    registry = QgsApplication.processingRegistry()
    instance = satvision.classFactory(qgis_iface)
    instance.initGui()
    provider = registry.providerById("satvision")
    assert provider is not None and provider.name() == "SatVision"
    assert sorted(algorithm.id() for algorithm in provider.algorithms()) == [
        "satvision:classifytiles", "satvision:diagnose", "satvision:exporttrainingpairs", "satvision:fetchsentinel2",
        "satvision:generateimagery", "satvision:installdependencies", "satvision:segmentwater",
    ]
    instance.unload()
    assert registry.providerById("satvision") is None


def test_init_processing_alone_needs_no_iface(qgis_processing):
    """What qgis_process does: no iface, no initGui."""
    instance = satvision.classFactory(None)
    instance.initProcessing()
    try:
        assert QgsApplication.processingRegistry().algorithmById("satvision:diagnose") is not None
    finally:
        instance.unload()


def test_every_algorithm_has_help_a_group_and_an_icon(plugin):
    provider = QgsApplication.processingRegistry().providerById("satvision")
    algorithms = provider.algorithms()
    assert len(algorithms) == len(all_algorithms()) >= 1
    for algorithm in algorithms:
        assert len(algorithm.shortHelpString()) > 80, algorithm.id()
        assert algorithm.displayName() and algorithm.group() and algorithm.groupId()
        assert not algorithm.icon().isNull()
        assert algorithm.name() == algorithm.name().lower()


def test_diagnose_through_processing_run(plugin, tmp_path):
    import processing

    report_file = tmp_path / "report.json"
    results = processing.run("satvision:diagnose", {"OUTPUT": str(report_file)})
    assert results["QGIS_VERSION"] == __import__("qgis.core").core.Qgis.QGIS_VERSION
    report = json.loads(results["REPORT"])
    assert report["qgis"] == results["QGIS_VERSION"]
    assert json.loads(report_file.read_text()) == report
    assert results["MODEL_COUNT"] == len(report["models"])
    assert results["packages"]["torch"] == results["TORCH_VERSION"]


def test_the_models_folder_option_is_read_by_diagnose(plugin, saved_model):
    import processing
    from processing.core.ProcessingConfig import ProcessingConfig

    from satvision.provider.settings import MODELS_FOLDER

    ProcessingConfig.setSettingValue(MODELS_FOLDER, str(saved_model.parent))
    try:
        results = processing.run("satvision:diagnose", {})
    finally:
        ProcessingConfig.setSettingValue(MODELS_FOLDER, "")
    assert str(saved_model.parent) in results["model_folders"]["user"]
    assert [model["name"] for model in results["models"] if model["source"] == "user"] == ["tiny-water-unet"]


class _NeedsAnAbsentPackage(SatVisionAlgorithm):
    algorithm_id = "needsabsent"
    display_name = "Needs an absent package"
    requires = ("torch", "satvision_absent_package")

    def initAlgorithm(self, config=None):  # noqa: N802
        pass

    def execute(self, parameters, context, feedback):
        raise AssertionError("must not run without its packages")


def test_an_algorithm_whose_packages_are_missing_fails_with_install_instructions(qgis_app):
    algorithm = _NeedsAnAbsentPackage()
    algorithm.initAlgorithm()
    with pytest.raises(QgsProcessingException, match="satvision_absent_package, which is not installed. Install into .* -m pip install"):
        algorithm.processAlgorithm({}, QgsProcessingContext(), QgsProcessingFeedback())


def test_processing_enums_resolve_on_this_qgis(qgis_app):
    from qgis.core import QgsProcessingParameterNumber

    from satvision.algorithms.qgis_enums import ADVANCED, DATE, DOUBLE, INTEGER, VECTOR_POLYGON, mark_advanced

    assert None not in (ADVANCED, DATE, DOUBLE, INTEGER, VECTOR_POLYGON)
    parameter = mark_advanced(QgsProcessingParameterNumber("N", "n", INTEGER, 1))
    assert parameter.flags() & ADVANCED and parameter.dataType() == INTEGER
