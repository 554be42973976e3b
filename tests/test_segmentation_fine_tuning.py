"""Fine-tuning a SatVision water model on one's own labelled scenes (``satvision train segmentation --init-from``).

Real parts: the tiny GeoTIFF pairs of the segmentation tests, real smp / UNet3+ networks, the bundled
4-band model file and ``satvision train segmentation`` itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_classifier_card
from safetensors.torch import load_file
from test_segmentation_training import TINY, write_pair

from satvision.cli.main import main as satvision_main
from satvision.models.architectures import build_network
from satvision.models.modelfile import read_card, save_model

BUNDLED_4BAND = Path(__file__).resolve().parents[1] / "resources" / "models" / "water-default.safetensors"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fine-tune-data")
    for seed in range(3):
        write_pair(folder, f"scene{seed}.tif", seed)
    return folder


@pytest.fixture(scope="module")
def start_model(dataset, tmp_path_factory) -> Path:
    """A tiny UNet trained from scratch for one epoch: the model to fine-tune."""
    output = tmp_path_factory.mktemp("start") / "run"
    assert satvision_main(["train", "segmentation", "--data", str(dataset), "--output", str(output), *TINY,
                           "--patches-per-epoch", "8", "--epochs", "1", "--license", "CC-BY-4.0", "--name", "start-water"]) == 0
    return output / "model.safetensors"


def test_fine_tuning_starts_from_the_models_weights_and_keeps_its_normalisation(dataset, start_model, tmp_path):
    output = tmp_path / "tuned"
    # a learning rate so small the weights cannot move: what the run ends with is what it started from
    assert satvision_main(["train", "segmentation", "--data", str(dataset), "--output", str(output), *TINY,
                           "--patches-per-epoch", "8", "--epochs", "1", "--lr", "1e-12", "--init-from", str(start_model)]) == 0
    start, tuned = load_file(str(start_model)), load_file(str(output / "model.safetensors"))
    parameters = dict(build_network(read_card(start_model)).named_parameters())  # BatchNorm statistics move in any training step
    assert set(parameters) <= set(start)
    for name in parameters:
        assert torch.allclose(tuned[name].float(), start[name].float(), atol=1e-6), name

    start_card, card = read_card(start_model), read_card(output / "model.safetensors")
    assert card.normalisation == start_card.normalisation  # the weights learnt with that normalisation, not one measured anew
    assert card.extra["init_from"] == {"name": "start-water", "file": "model.safetensors", "license": "CC-BY-4.0"}
    assert card.license == "CC-BY-4.0"  # derived weights keep their start's licence unless one is named
    assert "fine-tuned from start-water" in card.training_data


def test_the_bundled_4band_model_fine_tunes_on_ones_own_scenes(dataset, tmp_path):
    output = tmp_path / "bundled"
    bundled = read_card(BUNDLED_4BAND)
    params = bundled.architecture.params
    assert satvision_main(["train", "segmentation", "--data", str(dataset), "--output", str(output), "--architecture", "unet3plus",
                           "--encoder", params["encoder_name"], "--encoder-depth", str(params["encoder_depth"]),
                           "--cat-channels", str(params["cat_channels"]), "--bands", ",".join(bundled.bands),
                           "--index-inputs", ",".join(index.name for index in bundled.normalisation.indices),
                           "--patch-size", "64", "--batch-size", "2", "--patches-per-epoch", "2", "--epochs", "1",
                           "--device", "cpu", "--quiet", "--init-from", str(BUNDLED_4BAND)]) == 0
    card = read_card(output / "model.safetensors")
    assert card.architecture == bundled.architecture and card.normalisation == bundled.normalisation
    assert card.license == bundled.license == "CC-BY-SA-4.0"  # share-alike weights stay share-alike
    assert card.extra["init_from"]["name"] == bundled.name


def test_a_model_that_does_not_fit_the_run_is_refused_with_the_fix(dataset, start_model, tmp_path, capsys):
    common = ["train", "segmentation", "--data", str(dataset), *TINY, "--patches-per-epoch", "8", "--epochs", "1"]
    assert satvision_main([*common, "--output", str(tmp_path / "a"), "--bands", "B3,B8", "--init-from", str(start_model)]) != 0
    error = capsys.readouterr().err
    assert "B2,B3,B4,B8" in error and "give the options that model was trained with" in error
    assert not (tmp_path / "a" / "model.safetensors").exists()

    classifier = save_model(tmp_path / "classifier.safetensors", build_network(tiny_classifier_card()).state_dict(), tiny_classifier_card())
    assert satvision_main([*common, "--output", str(tmp_path / "b"), "--init-from", str(classifier)]) != 0
    assert "fine-tuning needs a segmentation model" in capsys.readouterr().err

    weights = tmp_path / "encoder.safetensors"
    assert satvision_main([*common, "--output", str(tmp_path / "d"), "--init-from", str(start_model), "--encoder-weights", str(weights)]) != 0
    assert "give one of them" in capsys.readouterr().err

    missing = tmp_path / "nowhere.safetensors"
    assert satvision_main([*common, "--output", str(tmp_path / "c"), "--init-from", str(missing)]) != 0
    assert "nowhere.safetensors" in capsys.readouterr().err
