"""One default per option: for each inference job, the Processing algorithm's parameters (real QGIS),
the command line's parser and the Python API (settings dataclasses and public function signatures)
start from the same values, option by option (issue 16, item 1).

Processing values are turned into the core's values the way the algorithms read them: an enum index
through the algorithm's own list of values, the number that stands for "the model's" (0 or -1)
into ``None``, a date into ``datetime.date``.
"""

from __future__ import annotations

import datetime as dt
import inspect

import pytest
from qgis.core import QgsApplication

from satvision.cli.main import build_parser
from satvision.core.options import declared
from satvision.inference.classify_engine import MODES, ClassificationSettings
from satvision.inference.generation_settings import SCHEDULERS, SWEEP_FIELDS, GenerationSettings, ImageryOptions
from satvision.inference.segment_engine import SegmentationSettings
from satvision.models.augmented_views import TTA_MODES


def parameter(algorithm_id: str, name: str):
    algorithm = QgsApplication.processingRegistry().algorithmById(f"satvision:{algorithm_id}")
    assert algorithm is not None, algorithm_id
    definition = algorithm.parameterDefinition(name)
    assert definition is not None, (algorithm_id, name)
    return definition


def number(algorithm_id: str, name: str, settings_class: type, field: str):
    """The parameter's default as the core reads it (the declared ``unset`` number: None)."""
    value = parameter(algorithm_id, name).defaultValue()
    unset = declared(settings_class, [field])[field].option.unset
    return None if unset is not None and value == unset else value


def device(algorithm_id: str) -> str:
    from satvision.algorithms.device_choices import device_value

    return device_value(parameter(algorithm_id, "DEVICE").defaultValue())


def augmentation(algorithm_id: str) -> str | None:
    index = parameter(algorithm_id, "TEST_TIME_AUGMENTATION").defaultValue()
    return TTA_MODES[index - 1] if index > 0 else None


def python_defaults(function, *names: str) -> dict:
    signature = inspect.signature(function)
    return {name: signature.parameters[name].default for name in names}


def cli_defaults(*command: str) -> dict:
    return vars(build_parser().parse_args(list(command)))


def test_segment_water_defaults_agree(plugin):
    from satvision.inference.segment_job import segment_water

    algorithm = "segmentwater"
    processing = {
        "tile_size": number(algorithm, "TILE_SIZE", SegmentationSettings, "tile_size"),
        "overlap": number(algorithm, "OVERLAP", SegmentationSettings, "overlap"),
        "batch_size": parameter(algorithm, "BATCH_SIZE").defaultValue(),
        "device": device(algorithm),
        "test_time_augmentation": augmentation(algorithm),
        "threshold": parameter(algorithm, "THRESHOLD").defaultValue(),
        "reflectance_offset": parameter(algorithm, "REFLECTANCE_OFFSET").defaultValue(),
        "band_positions": parameter(algorithm, "BANDS").defaultValue(),
        "bounds": parameter(algorithm, "EXTENT").defaultValue(),
        "min_area_m2": parameter(algorithm, "MIN_AREA").defaultValue(),
        "simplify_m": parameter(algorithm, "SIMPLIFY").defaultValue(),
    }
    settings = SegmentationSettings()
    python = {name: getattr(settings, name) for name in processing if hasattr(settings, name)}
    python.update(python_defaults(segment_water, "min_area_m2", "simplify_m"))
    assert python_defaults(segment_water, "settings")["settings"] == settings
    assert processing == python
    # what QGIS has always used for the polygons, now the Python API's too
    assert (python["min_area_m2"], python["simplify_m"]) == (300.0, 5.0)

    cli = cli_defaults("evaluate", "segmentation", "--data", "pairs")
    mirrored = ["tile_size", "batch_size", "device", "threshold", "reflectance_offset"]
    assert {name: cli[name] for name in mirrored} == {name: processing[name] for name in mirrored}


def test_classify_tiles_defaults_agree(plugin):
    from satvision.inference.classify_job import classify_tiles

    algorithm = "classifytiles"
    processing = {
        "mode": MODES[parameter(algorithm, "MODE").defaultValue()],
        "tile_size": number(algorithm, "TILE_SIZE", ClassificationSettings, "tile_size"),
        "stride": number(algorithm, "STRIDE", ClassificationSettings, "stride"),
        "batch_size": parameter(algorithm, "BATCH_SIZE").defaultValue(),
        "device": device(algorithm),
        "test_time_augmentation": augmentation(algorithm),
        "min_valid_fraction": parameter(algorithm, "MIN_VALID_SHARE").defaultValue(),
        "reflectance_offset": parameter(algorithm, "REFLECTANCE_OFFSET").defaultValue(),
        "band_positions": parameter(algorithm, "BANDS").defaultValue(),
        "bounds": parameter(algorithm, "EXTENT").defaultValue(),
    }
    settings = ClassificationSettings()
    assert python_defaults(classify_tiles, "settings")["settings"] == settings
    assert processing == {name: getattr(settings, name) for name in processing}

    cli = cli_defaults("evaluate", "classification", "--data", "tiles")
    # the evaluation's batch size is its own (whole small tiles, 64 by default), declared as an override
    mirrored = ["device", "test_time_augmentation"]
    assert {name: cli[name] for name in mirrored} == {name: processing[name] for name in mirrored}


def test_generate_imagery_defaults_agree(plugin):
    from satvision.algorithms.generate_imagery import SIZES
    from satvision.inference.generate_job import generate_imagery

    algorithm = "generateimagery"
    date = parameter(algorithm, "DATE").defaultValue()
    processing = {
        "negative_prompt": parameter(algorithm, "NEGATIVE_PROMPT").defaultValue(),
        "date": dt.date(date.year(), date.month(), date.day()),
        "gsd": parameter(algorithm, "GSD").defaultValue(),
        "cloud_cover": parameter(algorithm, "CLOUD_COVER").defaultValue(),
        "image_size": SIZES[parameter(algorithm, "IMAGE_SIZE").defaultValue()],
        "steps": parameter(algorithm, "STEPS").defaultValue(),
        "guidance_scale": parameter(algorithm, "GUIDANCE_SCALE").defaultValue(),
        "seed": parameter(algorithm, "SEED").defaultValue(),
        "num_images": parameter(algorithm, "NUM_IMAGES").defaultValue(),
        "scheduler": SCHEDULERS[parameter(algorithm, "SCHEDULER").defaultValue()],
        "device": device(algorithm),
        "sweep_field": SWEEP_FIELDS[parameter(algorithm, "SWEEP").defaultValue()],
    }
    settings, options = GenerationSettings(prompt="a harbour"), ImageryOptions()
    python = {name: getattr(settings if hasattr(settings, name) else options, name) for name in processing}
    signature = python_defaults(generate_imagery, "device", "precision", "sweep_field")
    assert {"device": python["device"], "sweep_field": python["sweep_field"]} == {
        name: signature[name] for name in ("device", "sweep_field")}
    assert signature["precision"] == options.precision
    assert processing == python

    cli = cli_defaults("generate", "--lon", "10", "--lat", "50", "--prompt", "a harbour", "--output", "out.tif")
    assert {name: cli[name] for name in processing} == processing
    assert cli["precision"] == options.precision


@pytest.mark.parametrize("algorithm_id, settings_class", [("segmentwater", SegmentationSettings),
                                                           ("classifytiles", ClassificationSettings)])
def test_processing_bounds_are_the_declared_ones(plugin, algorithm_id, settings_class):
    """Minimum and maximum too: the dialog refuses what the command line refuses (the "model's" number aside)."""
    names = {"TILE_SIZE": "tile_size", "BATCH_SIZE": "batch_size"}
    for name, field in names.items():
        definition, option = parameter(algorithm_id, name), declared(settings_class, [field])[field].option
        assert definition.minimum() == min(option.minimum, option.unset if option.unset is not None else option.minimum)


def test_the_generate_command_reads_declared_dates_and_bounds(capsys):
    """The declared types reach the command line: a date is a date, a bound is enforced before any work."""
    arguments = ["generate", "--lon", "10", "--lat", "50", "--prompt", "a harbour", "--output", "out.tif"]
    assert cli_defaults(*arguments, "--date", "2019-04-01")["date"] == dt.date(2019, 4, 1)
    for wrong, message in ((["--date", "1 April 2019"], "expected a date YYYY-MM-DD"),
                           (["--cloud-cover", "120"], "expected a value from 0 to 100"),
                           (["--steps", "0"], "expected a value from 1 to 1000")):
        with pytest.raises(SystemExit):
            cli_defaults(*arguments, *wrong)
        assert message in capsys.readouterr().err
