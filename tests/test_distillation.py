"""Distillation from a teacher model that reads more bands (``--teacher``, issue 15).

Real parts: the tiny GeoTIFF pairs of the segmentation tests (B2, B3, B4, B8), a real smp UNet saved
as a SatVision model file as the teacher, and ``satvision train segmentation`` itself. A student on
B3 and B8 (and NDWI) learns from a 4-band teacher whose head is set to one answer (weights zero, a large
bias), so what the teacher says is known.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import tiny_classifier_card, tiny_unet_card
from test_segmentation_training import TINY, write_pair

from satvision.cli.main import main as satvision_main
from satvision.core.errors import SatVisionError
from satvision.models.architectures import build_network
from satvision.models.modelfile import load_model, read_card, save_model
from satvision.training.distillation import Teacher, distillation_loss, patch_bands

#: a student on two of the teacher's four bands, in another order, with an index: its patches carry B3, B8, B2, B4
STUDENT = ["--bands", "B3,B8", "--index-inputs", "NDWI", "--patches-per-epoch", "8", "--lr", "3e-3"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("distil-data")
    for seed in range(3):
        write_pair(folder, f"scene{seed}.tif", seed)
    return folder


def teacher_file(folder: Path, water_bias: float | None = None, **changes) -> Path:
    """A tiny 4-band UNet model file; with ``water_bias`` its head ignores the image and calls every
    pixel water with probability sigmoid(water_bias)."""
    torch.manual_seed(1)
    card = tiny_unet_card(name="tiny-teacher", **changes)
    state = build_network(card).state_dict()
    if water_bias is not None:
        state["segmentation_head.0.weight"].zero_()
        state["segmentation_head.0.bias"].copy_(torch.tensor([0.0, water_bias]))
    return save_model(folder / f"teacher{water_bias}.safetensors", state, card)


def water_share_on_land(model: Path, dataset: Path) -> float:
    """The student's mean water probability over the land pixels of one training image."""
    network, card = load_model(model, task="segmentation")
    with rasterio.open(dataset / "images" / "scene0.tif") as source:
        values = torch.from_numpy(source.read([2, 4]).astype(np.float32))[None]  # B3, B8
    with rasterio.open(dataset / "labels" / "scene0.tif") as source:
        land = torch.from_numpy(source.read(1) == 0)
    from satvision.models.normalisation import normalise

    with torch.no_grad():
        probability = torch.softmax(network(normalise(values, card.normalisation, card.bands)), dim=1)[0, 1]
    return float(probability[land].mean())


def test_patches_carry_the_students_bands_first_then_the_teachers_others():
    assert patch_bands(["B2", "B3", "B4", "B8"], ["B2", "B3", "B4", "B8", "B11", "B12"]) == ["B2", "B3", "B4", "B8", "B11", "B12"]
    assert patch_bands(["B8", "B3"], ["B2", "B3", "B8"]) == ["B8", "B3", "B2"]
    assert patch_bands(["B2", "B3"], ["B2"]) == ["B2", "B3"]


def test_divergence_is_zero_where_student_and_teacher_agree_and_ignores_pixels_without_data():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    agreeing = torch.softmax(logits, dim=1)[:, 1].detach()
    valid = torch.ones(2, 8, 8, dtype=torch.bool)
    valid[:, :4] = False
    assert float(distillation_loss(logits, agreeing, valid)) == pytest.approx(0.0, abs=1e-5)

    teacher = torch.rand(2, 8, 8)
    loss = distillation_loss(logits, teacher, valid)
    student = torch.softmax(logits, dim=1)[:, 1].detach()
    expected = teacher * torch.log(teacher / student) + (1 - teacher) * torch.log((1 - teacher) / (1 - student))
    assert float(loss) == pytest.approx(float(expected[valid].mean()), rel=1e-4)
    loss.backward()
    assert logits.grad[:, :, :4].abs().max() == 0 and logits.grad[:, :, 4:].abs().max() > 0  # no pull where there is no data

    changed = logits.detach().clone()
    changed[:, :, :4] = 50.0
    assert float(distillation_loss(changed, teacher, valid)) == pytest.approx(float(loss), rel=1e-6)
    assert float(distillation_loss(logits, teacher, torch.zeros_like(valid))) == 0.0


def test_teacher_probability_is_its_own_networks_on_its_own_bands(tmp_path):
    path = teacher_file(tmp_path)
    student_card = tiny_unet_card(bands=["B3", "B8"], normalisation={"reflectance_scale": 10000.0, "mean": [0.1, 0.2], "std": [0.05, 0.1]})
    teacher = Teacher(path, student_card)
    rng = np.random.default_rng(0)
    patch = torch.from_numpy(rng.integers(100, 4000, size=(2, 4, 64, 64)).astype(np.float32))  # B3, B8, B2, B4
    valid = torch.ones(2, 64, 64, dtype=torch.bool)
    network, card = load_model(path)
    own_order = patch[:, [2, 0, 3, 1]]  # the teacher's B2, B3, B4, B8
    from satvision.models.normalisation import normalise

    with torch.no_grad():
        expected = torch.softmax(network(normalise(own_order, card.normalisation, card.bands)), dim=1)[:, 1]
    assert torch.allclose(teacher.probability(patch, valid), expected, atol=1e-6)


def test_a_student_on_fewer_bands_learns_what_its_teacher_says_and_its_card_names_the_teacher(dataset, tmp_path):
    says_water = teacher_file(tmp_path, water_bias=8.0)
    alone, taught, unheeded = tmp_path / "alone", tmp_path / "taught", tmp_path / "unheeded"
    common = ["train", "segmentation", "--data", str(dataset), *TINY, *STUDENT, "--epochs", "2"]
    assert satvision_main([*common, "--output", str(alone)]) == 0
    assert satvision_main([*common, "--output", str(taught), "--teacher", str(says_water), "--teacher-weight", "20"]) == 0
    # the same patches and random stream as the taught run, the teacher's term weighted 0: only the loss differs
    assert satvision_main([*common, "--output", str(unheeded), "--teacher", str(says_water), "--teacher-weight", "0"]) == 0

    card, alone_card = read_card(taught / "model.safetensors"), read_card(alone / "model.safetensors")
    assert card.bands == ["B3", "B8"] and card.input_channels == 3 and len(card.normalisation.mean) == 3
    # the normalisation is measured on the student's bands and index of the same patches, as without a teacher
    assert card.normalisation.mean == alone_card.normalisation.mean and card.normalisation.std == alone_card.normalisation.std
    assert card.extra["teacher"]["name"] == "tiny-teacher" and card.extra["teacher"]["bands"] == ["B2", "B3", "B4", "B8"]
    assert card.extra["teacher"]["weight"] == 20 and "teacher" not in alone_card.extra
    # the teacher calls the land water: the student that heeds it leans that way on land, the same run without its term does not
    taught_share, unheeded_share = (water_share_on_land(folder / "model.safetensors", dataset) for folder in (taught, unheeded))
    assert taught_share > unheeded_share + 0.2, (taught_share, unheeded_share)  # 0.98 against 0.69 here
    assert math.isfinite(card.metrics["test"]["loss"])


def test_a_teacher_that_cannot_teach_is_refused_with_the_reason(dataset, tmp_path, capsys):
    common = ["train", "segmentation", "--data", str(dataset), *TINY, *STUDENT, "--epochs", "1"]
    classifier = save_model(tmp_path / "classifier.safetensors", build_network(tiny_classifier_card()).state_dict(), tiny_classifier_card())
    assert satvision_main([*common, "--output", str(tmp_path / "a"), "--teacher", str(classifier)]) != 0
    assert "must be a two-class segmentation model" in capsys.readouterr().err
    scaled = teacher_file(tmp_path, normalisation={"reflectance_scale": 1.0, "mean": [0.1] * 3 + [0.2], "std": [0.05] * 3 + [0.1]})
    assert satvision_main([*common, "--output", str(tmp_path / "b"), "--teacher", str(scaled)]) != 0
    assert "give both the same --reflectance-scale" in capsys.readouterr().err
    with pytest.raises(SatVisionError, match="reads reflectance"):
        Teacher(scaled, tiny_unet_card())
    missing = tmp_path / "nowhere.safetensors"
    assert satvision_main([*common, "--output", str(tmp_path / "c"), "--teacher", str(missing)]) != 0
    assert "nowhere.safetensors" in capsys.readouterr().err
