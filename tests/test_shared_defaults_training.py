"""Segmentation training options are declared once (issue 16): ``satvision train|compare segmentation``
show the defaults of the Python API (SegmentationTrainingSettings, AugmentSettings,
WaterAugmentSettings, TrainerConfig), option by option, and building that parser needs no torch."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from satvision.cli import segmentation_task
from satvision.cli.main import build_parser
from satvision.cli.segmentation_task import settings_from_arguments
from satvision.core.options import declared
from satvision.training.augment_settings import AugmentSettings, WaterAugmentSettings
from satvision.training.segmentation_settings import SegmentationTrainingSettings
from satvision.training.trainer_config import TrainerConfig

REQUIRED = ["--data", "pairs", "--output", "run"]
#: declared options the parser does not show as their own flag, and why
NOT_FLAGS = {
    (AugmentSettings, "rotations"): "--no-flips turns off the flips and the rotations together",
}


def parsed(command: str, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args([command, "segmentation", *REQUIRED, *extra])


def flags(command: str) -> set[str]:
    """Destinations of every option of the command's parser."""
    parser = argparse.ArgumentParser()
    getattr(segmentation_task, f"add_{command}_arguments")(parser)
    return {action.dest for action in parser._actions if action.option_strings and action.dest != "help"}


def python_defaults() -> dict[type, object]:
    """Instances built by the Python API with nothing but the required values."""
    return {
        SegmentationTrainingSettings: SegmentationTrainingSettings(data=Path("pairs"), output=Path("run")),
        AugmentSettings: AugmentSettings(),
        WaterAugmentSettings: WaterAugmentSettings(),
        TrainerConfig: TrainerConfig(),
    }


@pytest.mark.parametrize("command", ["train", "compare"])
def test_every_declared_option_is_an_argument_with_the_python_default(command):
    arguments = parsed(command)
    checked = {"data", "output"} | ({"architectures"} if command == "compare" else set())
    for settings_class, instance in python_defaults().items():
        for name, item in declared(settings_class).items():
            if name in ("data", "output") or (settings_class, name) in NOT_FLAGS:
                continue
            if command == "compare" and name in ("architecture", "init_from"):  # compare trains the architectures it is given, from scratch
                assert not hasattr(arguments, name)
                continue
            api_default = getattr(instance, name)
            assert item.default == api_default, f"{settings_class.__name__}.{name}: declaration vs Python API"
            assert getattr(arguments, name) == api_default, f"{item.flag} of {command} segmentation"
            checked.add(name)
    assert checked == flags(command)  # every flag of the command is a declared option


@pytest.mark.parametrize("command", ["train", "compare"])
def test_the_settings_the_cli_builds_by_default_are_the_python_api_defaults(command):
    assert settings_from_arguments(parsed(command)) == python_defaults()[SegmentationTrainingSettings]


def test_no_flips_turns_off_flips_and_rotations_and_nothing_else():
    settings = settings_from_arguments(parsed("train", "--no-flips"))
    assert (settings.augment.flips, settings.augment.rotations) == (False, False)
    assert settings.augment == AugmentSettings(flips=False, rotations=False)


def test_options_reach_their_settings():
    settings = settings_from_arguments(parsed(
        "train", "--architecture", "unet3plus", "--gsd", "20", "--ema", "0.99", "--decoder-channels", "32,16",
        "--bands", "B3, B8", "--turbid", "0.4", "--noise", "0.005", "--elastic", "0", "--split", "rows", "--epochs", "3"))
    assert (settings.architecture, settings.gsd_m, settings.decoder_channels, settings.bands) == ("unet3plus", 20.0, [32, 16], ["B3", "B8"])
    assert (settings.trainer.ema_decay, settings.trainer.epochs, settings.split) == (0.99, 3, "rows")
    assert (settings.augment.water.turbid_p, settings.augment.water.noise_sigma, settings.augment.elastic_p) == (0.4, 0.005, 0.0)


@pytest.mark.parametrize("arguments", [["--min-water", "1.5"], ["--turbid", "-0.1"], ["--schedule", "linear"], ["--loss", "mse"]])
def test_the_parser_refuses_values_outside_the_declaration(arguments, capsys):
    with pytest.raises(SystemExit):
        parsed("train", *arguments)
    assert arguments[0] in capsys.readouterr().err


def test_data_and_output_are_required(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "segmentation", "--output", "run"])
    assert "--data" in capsys.readouterr().err


def test_renamed_flags_show_their_own_names():
    parser = argparse.ArgumentParser()
    segmentation_task.add_train_arguments(parser)
    text = " ".join(parser.format_help().split())
    for shown in ("--gsd GSD ", "--elastic ELASTIC ", "--jitter-gain JITTER_GAIN ", "--ema DECAY ", "--turbid P ", "--data DATA "):
        assert shown in text


def test_the_settings_modules_and_the_parser_need_no_torch():
    code = (
        "import sys\n"
        "import satvision.training.segmentation_settings, satvision.training.augment_settings\n"
        "import satvision.training.trainer_config\n"
        "from satvision.cli.main import build_parser\n"
        "build_parser().parse_args(['train', 'segmentation', '--data', 'pairs', '--output', 'run'])\n"
        "build_parser().parse_args(['compare', 'segmentation', '--data', 'pairs', '--output', 'run'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
