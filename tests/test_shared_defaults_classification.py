"""Classification training options are declared once (issue 16): ``satvision train|compare classification``
show the defaults of the Python API (ClassificationTrainingSettings and its trainer, whose defaults
are classification's own), option by option, and building that parser needs no torch."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from satvision.cli import classification_task
from satvision.cli.classification_task import settings_from_arguments
from satvision.cli.main import build_parser
from satvision.core.options import declared
from satvision.training.classification_settings import ClassificationTrainingSettings
from satvision.training.trainer_config import TrainerConfig

REQUIRED = ["--data", "tiles", "--output", "run"]
#: declared trainer options the classification commands do not show, and why
NOT_FLAGS = {
    "restart_epochs": "classification trains with the cosine schedule by default; the restarts' cycle stays the trainer's",
    "freeze_encoder_epochs": "--head-epochs (a classification setting) sets it",
}


def parsed(command: str, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args([command, "classification", *REQUIRED, *extra])


def flags(command: str) -> set[str]:
    """Destinations of every option of the command's parser."""
    parser = argparse.ArgumentParser()
    getattr(classification_task, f"add_{command}_arguments")(parser)
    return {action.dest for action in parser._actions if action.option_strings and action.dest != "help"}


def python_default() -> ClassificationTrainingSettings:
    """What the Python API builds with nothing but the required values."""
    return ClassificationTrainingSettings(data=Path("tiles"), output=Path("run"))


@pytest.mark.parametrize("command", ["train", "compare"])
def test_every_declared_option_is_an_argument_with_the_python_default(command):
    arguments = parsed(command)
    settings = python_default()
    checked = {"data", "output"} | ({"architectures"} if command == "compare" else set())
    for settings_class, instance in ((ClassificationTrainingSettings, settings), (TrainerConfig, settings.trainer)):
        for name, item in declared(settings_class).items():
            if name in ("data", "output"):
                continue
            if settings_class is TrainerConfig and name in NOT_FLAGS:
                assert not hasattr(arguments, name)
                continue
            if command == "compare" and name == "architecture":  # compare trains the architectures it is given
                assert not hasattr(arguments, name)
                continue
            api_default = getattr(instance, name)
            if settings_class is ClassificationTrainingSettings:
                assert item.default == api_default, f"{name}: declaration vs Python API"
            assert getattr(arguments, name) == api_default, f"{item.flag} of {command} classification"
            checked.add(name)
    assert checked == flags(command)  # every flag of the command is a declared option


def test_classification_keeps_its_own_trainer_defaults():
    """Where classification's trainer defaults differ from TrainerConfig's, the settings hold them and the CLI shows them."""
    trainer = python_default().trainer
    differing = {field.name for field in dataclasses.fields(TrainerConfig) if getattr(trainer, field.name) != getattr(TrainerConfig(), field.name)}
    assert differing == {"monitor", "schedule", "batch_size", "weight_decay"}
    arguments = parsed("train")
    assert {name: getattr(arguments, name) for name in differing} == {name: getattr(trainer, name) for name in differing}


@pytest.mark.parametrize("command", ["train", "compare"])
def test_the_settings_the_cli_builds_by_default_are_the_python_api_defaults(command):
    assert settings_from_arguments(parsed(command)) == python_default()


def test_options_reach_their_settings():
    settings = settings_from_arguments(parsed(
        "train", "--valid", "v", "--vit", "pooling=mean,depth=4", "--gsd", "20", "--no-augment", "--tta", "d4",
        "--rough-water-classes", "River,SeaLake", "--epochs", "3", "--ema", "0.99", "--head-epochs", "2"))
    assert settings.validation == Path("v") and settings.vit_overrides == {"pooling": "mean", "depth": 4}
    assert (settings.gsd_m, settings.augment, settings.test_time_augmentation) == (20.0, False, "d4")
    assert settings.rough_water_classes == ("River", "SeaLake")
    assert (settings.trainer.epochs, settings.trainer.ema_decay, settings.head_epochs) == (3, 0.99, 2)
    assert settings.trainer.batch_size == 64  # classification's default stays where not given


def test_the_settings_and_the_parser_need_no_torch():
    code = ("import sys\n"
            "import satvision.training.classification_settings\n"
            "from satvision.cli.main import build_parser\n"
            "build_parser().parse_args(['train', 'classification', '--data', 'd', '--output', 'o'])\n"
            "build_parser().parse_args(['compare', 'classification', '--data', 'd', '--output', 'o'])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
