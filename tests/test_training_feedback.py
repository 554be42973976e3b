"""Training reports to one feedback object; the command line prints the lines it always printed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import RecordingFeedback
from tests_helpers import write_image_folders

from satvision.cli.main import main as satvision_main
from satvision.cli.printed_lines import PrintedLines
from satvision.core.errors import OperationCancelled
from satvision.training.classification_settings import ClassificationTrainingSettings
from satvision.training.classification_training import train_classification
from satvision.training.trainer_config import TrainerConfig

TINY_VIT = {"patch_size": 4, "dim": 32, "depth": 2, "heads": 2, "drop_path": 0.0, "dropout": 0.0}


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory) -> Path:
    return write_image_folders(tmp_path_factory.mktemp("tiles") / "data", per_class=8)


def one_epoch(data: Path, output: Path, quiet: bool = False) -> ClassificationTrainingSettings:
    trainer = TrainerConfig(epochs=1, batch_size=16, device="cpu", quiet=quiet, monitor="accuracy")
    return ClassificationTrainingSettings(data=data, output=output, architecture="vit-tiny64", input_size=16,
                                          vit_overrides=TINY_VIT, license="CC-BY-4.0", trainer=trainer)


def test_printed_lines_print_lines_and_warnings_on_stderr_unless_quiet(capsys):
    lines = PrintedLines()
    lines.info("epoch 1: train_loss 0.5")
    lines.warning("look")
    lines.progress(0.5)
    PrintedLines(quiet=True).info("hidden")
    PrintedLines(quiet=True).warning("hidden")
    printed = capsys.readouterr()
    assert (printed.out, printed.err) == ("", "epoch 1: train_loss 0.5\nWarning: look\n")
    assert lines.cancelled() is False
    PrintedLines(file=sys.stdout).info("on stdout")
    assert capsys.readouterr() == ("on stdout\n", "")


def test_training_reports_its_lines_to_the_feedback_and_stops_when_it_asks_to(image_folders, tmp_path):
    feedback = RecordingFeedback()
    train_classification(one_epoch(image_folders, tmp_path / "run"), feedback)
    assert feedback.messages[0].startswith("Reading "), feedback.messages
    assert any(line.startswith("epoch 1: train_loss ") for line in feedback.messages), feedback.messages

    quiet = RecordingFeedback()
    train_classification(one_epoch(image_folders, tmp_path / "quiet", quiet=True), quiet)
    assert not any(line.startswith("epoch ") for line in quiet.messages), quiet.messages

    with pytest.raises(OperationCancelled, match="Training cancelled"):
        train_classification(one_epoch(image_folders, tmp_path / "cancelled"), RecordingFeedback(cancel_when=lambda: True))


def test_the_train_command_prints_the_run_and_epoch_lines_on_stderr(image_folders, tmp_path, capsys):
    arguments = ["train", "classification", "--data", str(image_folders), "--architecture", "vit-tiny64", "--input-size", "16",
                 "--vit", "patch_size=4,dim=32,depth=2,heads=2", "--epochs", "1", "--batch-size", "16", "--device", "cpu"]
    assert satvision_main([*arguments, "--output", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr()
    assert "Reading " in printed.err and "on cpu" in printed.err, printed.err
    assert "\nepoch 1: train_loss " in printed.err and "epoch 1:" not in printed.out
    assert printed.out.startswith("Wrote ")

    assert satvision_main([*arguments, "--output", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
