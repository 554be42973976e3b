"""Earth Engine options are declared once (issue 16): ``satvision fetch``, the Processing algorithms and
the Python API (Sentinel2Query, FetchSettings, ConnectionSettings) show the same defaults and bounds."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingParameterEnum, QgsProcessingParameterNumber

from satvision.cli.fetch_command import _connection, _query, _settings
from satvision.cli.main import build_parser
from satvision.core.options import declared
from satvision.earthengine.connection import ConnectionSettings
from satvision.earthengine.download import download
from satvision.earthengine.fetch import FetchSettings
from satvision.earthengine.sentinel2 import TRAINING_WATER_LABEL, WATER_LABELS, Sentinel2Query

SETTINGS = (Sentinel2Query, FetchSettings, ConnectionSettings)
DATES = ["--start", "2024-06-01", "--end", "2024-06-30"]
BOUNDS = (-75.9, 37.2, -75.86, 37.23)


def parsed(what: str) -> argparse.Namespace:
    extra = [f"--bounds={','.join(map(str, BOUNDS))}"] if what == "sentinel2" else ["--output", "pairs"]
    return build_parser().parse_args(["fetch", what, *extra, *DATES])


def declared_options() -> list[tuple[type, str, object]]:
    return [(settings, name, item.default) for settings in SETTINGS for name, item in declared(settings).items()]


def api_default(settings: type, name: str) -> object:
    """The default the Python API applies (the dataclass signature's), not the declaration's record of it."""
    return inspect.signature(settings).parameters[name].default


@pytest.mark.parametrize("what", ["sentinel2", "pairs"])
def test_every_declared_option_is_a_fetch_argument_with_the_python_default(what):
    arguments = parsed(what)
    built = {Sentinel2Query: _query(arguments), FetchSettings: _settings(arguments, BOUNDS), ConnectionSettings: _connection(arguments)}
    for settings, name, default in declared_options():
        expected = TRAINING_WATER_LABEL if (what, name) == ("pairs", "water_label") else api_default(settings, name)
        assert default == api_default(settings, name), f"{settings.__name__}.{name}"
        assert name in vars(arguments), f"fetch {what} has no option for {settings.__name__}.{name}"
        assert getattr(built[settings], name) == expected, f"--{name} of fetch {what}"


def test_the_settings_the_cli_builds_by_default_are_the_python_api_defaults():
    arguments = parsed("sentinel2")
    assert _query(arguments) == Sentinel2Query("2024-06-01", "2024-06-30")
    assert _settings(arguments, BOUNDS) == FetchSettings(bounds=BOUNDS)
    assert _connection(arguments) == ConnectionSettings()


def test_fetch_pairs_labels_its_pairs_by_default():
    assert parsed("sentinel2").water_label == "none"
    assert parsed("pairs").water_label == TRAINING_WATER_LABEL == "jrc"
    assert TRAINING_WATER_LABEL in WATER_LABELS


def test_one_parallel_default_for_the_pool_and_the_download():
    assert ConnectionSettings().max_parallel_requests == FetchSettings(bounds=BOUNDS).max_parallel
    assert inspect.signature(download).parameters["max_parallel"].default is inspect.Parameter.empty


def algorithm(algorithm_id: str):
    found = QgsApplication.processingRegistry().createAlgorithmById(f"satvision:{algorithm_id}")
    assert found is not None, algorithm_id
    return found


@pytest.mark.parametrize("algorithm_id", ["fetchsentinel2", "exporttrainingpairs"])
def test_processing_parameters_show_the_declared_defaults_bounds_and_labels(plugin, algorithm_id):
    from satvision.algorithms import earthengine_parameters as ee

    alg = algorithm(algorithm_id)
    for name, (settings, field_name) in ee.DECLARED.items():
        item = declared(settings, [field_name])[field_name]
        parameter = alg.parameterDefinition(name)
        assert parameter is not None, name
        assert parameter.description() == item.option.label, name
        value = parameter.defaultValue()
        if isinstance(parameter, QgsProcessingParameterNumber):
            assert value == item.default, name
            assert (parameter.minimum(), parameter.maximum()) == (
                item.option.minimum if item.option.minimum is not None else parameter.minimum(),
                item.option.maximum if item.option.maximum is not None else parameter.maximum()), name
        elif name == ee.BANDS:
            assert tuple(ee.BAND_OPTIONS[index] for index in value) == item.default
        elif name == ee.WATER_LABEL:
            choices = alg._water_label_choices
            assert len(parameter.options()) == len(choices)
            expected = TRAINING_WATER_LABEL if algorithm_id == "exporttrainingpairs" else item.default
            assert choices[value] == expected
        elif isinstance(parameter, QgsProcessingParameterEnum):
            assert len(parameter.options()) == len(item.option.choices), name
            assert item.option.choices[value] == item.default, name
        else:  # CRS, project, key file: nothing unless chosen
            assert value in (None, "") and item.default is None, name


def test_processing_defaults_read_into_the_python_api_defaults(plugin):
    """Run nothing: read an algorithm's defaults into the core settings as execute() does."""
    from satvision.algorithms import earthengine_parameters as ee

    alg, context = algorithm("fetchsentinel2"), QgsProcessingContext()
    query = ee.read_query(alg, {}, context)
    assert query == Sentinel2Query(query.start, query.end)
    assert ee.read_fetch_settings(alg, {}, context, BOUNDS, "EPSG:4326") == FetchSettings(bounds=BOUNDS)
    connection = ee.read_connection(alg, {}, context)
    assert dataclasses.replace(connection, project=None) == ConnectionSettings()
    pairs = ee.read_query(algorithm("exporttrainingpairs"), {}, context)
    assert pairs == dataclasses.replace(query, water_label=TRAINING_WATER_LABEL)
