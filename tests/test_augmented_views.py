"""Test-time augmentation with real networks: the averaged classifier is invariant and the averaged
segmenter equivariant under the views it averages over; the card sets the default, settings and
the CLI override it, and every view is one forward pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from satvision.core.errors import ModelCardError
from satvision.inference.predictor import Predictor
from satvision.models.architectures import build_network
from satvision.models.augmented_views import averaged_probabilities, pass_count, views
from satvision.models.modelfile import save_model

ROOT = Path(__file__).resolve().parent.parent


def rotate(x: torch.Tensor, turns: int) -> torch.Tensor:
    return torch.rot90(x, turns, dims=(-2, -1))


def mirror(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def upside_down(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-2)


@pytest.fixture(scope="module")
def classifier():
    from conftest import tiny_classifier_card

    torch.manual_seed(0)
    return build_network(tiny_classifier_card()).eval()


@pytest.fixture(scope="module")
def segmenter():
    from conftest import tiny_unet_card

    torch.manual_seed(0)
    return build_network(tiny_unet_card()).eval()


def test_views_start_with_the_input_and_are_distinct():
    for mode, count in (("none", 1), ("flips", 4), ("d4", 8)):
        chosen = list(views(mode))
        assert chosen[0] == (0, False) and len(set(chosen)) == count == pass_count(mode)
    with pytest.raises(ValueError, match="choose one of none, flips, d4"):
        views("rot45")


def test_d4_average_of_a_classifier_is_invariant_to_rotations_and_mirroring(classifier):
    x = torch.randn(3, 4, 16, 16)
    with torch.no_grad():
        plain = averaged_probabilities(classifier, x, "none")
        base = averaged_probabilities(classifier, x, "d4")
        assert not torch.allclose(plain, classifier(rotate(x, 1)).softmax(1), atol=1e-4)  # the network alone is not invariant
        for transformed in (rotate(x, 1), rotate(x, 2), rotate(x, 3), mirror(x), upside_down(rotate(x, 1))):
            assert torch.allclose(averaged_probabilities(classifier, transformed, "d4"), base, atol=1e-5)
    assert torch.allclose(base.sum(1), torch.ones(3))


def test_flips_average_is_invariant_to_flips_only(classifier):
    x = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        base = averaged_probabilities(classifier, x, "flips")
        for transformed in (mirror(x), upside_down(x), rotate(x, 2)):
            assert torch.allclose(averaged_probabilities(classifier, transformed, "flips"), base, atol=1e-5)
        assert not torch.allclose(averaged_probabilities(classifier, rotate(x, 1), "flips"), base, atol=1e-4)


def test_d4_average_of_a_segmenter_turns_with_the_input(segmenter):
    """Outputs are turned back before averaging: the averaged map of a turned tile is the turned map."""
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        base = averaged_probabilities(segmenter, x, "d4")
        assert base.shape == (1, 2, 32, 32)
        plain = averaged_probabilities(segmenter, x, "none")
        assert not torch.allclose(averaged_probabilities(segmenter, rotate(x, 1), "none"), rotate(plain, 1), atol=1e-4)
        for transform in (lambda t: rotate(t, 1), lambda t: rotate(t, 3), mirror, upside_down):
            assert torch.allclose(averaged_probabilities(segmenter, transform(x), "d4"), transform(base), atol=1e-5)


def count_forward_passes(network: torch.nn.Module) -> list[int]:
    calls = [0]
    network.register_forward_hook(lambda module, inputs, output: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_predictor_uses_the_card_default_and_an_explicit_choice():
    from conftest import tiny_classifier_card

    values = np.random.default_rng(0).integers(300, 3000, (2, 4, 16, 16)).astype(np.float32)
    valid = np.ones((2, 16, 16), dtype=bool)
    card = tiny_classifier_card(tiling={"tile_size": 16, "overlap": 0, "test_time_augmentation": "d4"})
    network = build_network(card)
    calls = count_forward_passes(network)
    default = Predictor(network, card, "cpu")
    assert default.test_time_augmentation == "d4"
    default_probabilities = default.class_probabilities(values, valid)
    assert calls[0] == 8
    single = Predictor(network, card, "cpu", test_time_augmentation="none")
    single_probabilities = single.class_probabilities(values, valid)
    assert calls[0] == 9
    turned = default.class_probabilities(np.ascontiguousarray(np.rot90(values, 1, axes=(2, 3))), valid)
    assert torch.allclose(turned, default_probabilities, atol=1e-5)
    assert not torch.allclose(single_probabilities, default_probabilities, atol=1e-5)


def test_cards_without_the_field_default_to_none_and_unknown_modes_are_refused():
    from conftest import tiny_classifier_card

    assert tiny_classifier_card().tiling.test_time_augmentation == "none"
    with pytest.raises(ModelCardError, match="tiling.test_time_augmentation must be one of none, flips, d4"):
        tiny_classifier_card(tiling={"tile_size": 16, "overlap": 0, "test_time_augmentation": "all"})


def write_tiles(root: Path, size: int = 16, per_class: int = 3) -> Path:
    from PIL import Image

    rng = np.random.default_rng(1)
    for name in ("AnnualCrop", "Forest", "River", "SeaLake"):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name / f"{index}.png")
    return root


def test_evaluate_cli_takes_the_card_default_or_the_tta_option(tmp_path):
    from conftest import tiny_classifier_card

    torch.manual_seed(0)
    card = tiny_classifier_card(bands=["B4", "B3", "B2"],
                                normalisation={"reflectance_scale": 10000.0, "mean": [0.4] * 3, "std": [0.2] * 3},
                                tiling={"tile_size": 16, "overlap": 0, "test_time_augmentation": "flips"})
    model = save_model(tmp_path / "rgb.safetensors", build_network(card).state_dict(), card)
    data = write_tiles(tmp_path / "tiles")

    def evaluate(*extra: str) -> dict:
        completed = subprocess.run(
            [sys.executable, "-m", "satvision", "evaluate", "classification", "--data", str(data), "--model", str(model),
             "--device", "cpu", "--json", *extra], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert completed.returncode == 0, completed.stderr
        return json.loads(completed.stdout)

    assert evaluate()["test_time_augmentation"] == "flips"
    chosen = evaluate("--tta", "d4")
    assert chosen["test_time_augmentation"] == "d4" and chosen["tiles"] == 12
