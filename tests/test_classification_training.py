"""Classification training on CPU with real data files: folders of 8-bit tiles (EuroSAT layout)
and of GeoTIFF chips, the seeded split, two-phase training, resume, the model card with its
rendering, the report, the confusion matrix, ``evaluate --json`` and ``compare``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import RecordingFeedback
from safetensors.torch import load_file
from tests_helpers import COLOURS, write_image_folders

from satvision.core.errors import SatVisionError
from satvision.core.raster import Grid, write_geotiff
from satvision.models.modelfile import read_card
from satvision.training.classification_comparison import compare_classification
from satvision.training.classification_data import split_samples
from satvision.training.classification_evaluation import evaluate_classification
from satvision.training.classification_rendering import EUROSAT_RENDERING_HIGH, EUROSAT_RENDERING_LOW
from satvision.training.classification_settings import ClassificationTrainingSettings
from satvision.training.classification_training import train_classification
from satvision.training.trainer_config import TrainerConfig

ROOT = Path(__file__).resolve().parent.parent


def quick_settings(data: Path, output: Path, architecture: str = "vit-tiny64", **changes) -> ClassificationTrainingSettings:
    trainer = TrainerConfig(epochs=4, batch_size=16, lr=3e-3, weight_decay=0.01, schedule="cosine", warmup_epochs=0.5,
                            monitor="accuracy", device="cpu", quiet=True, seed=0)
    settings = ClassificationTrainingSettings(
        data=data, output=output, architecture=architecture, input_size=16,
        vit_overrides={"patch_size": 4, "dim": 32, "depth": 2, "heads": 2, "drop_path": 0.0, "dropout": 0.0},
        license="CC-BY-4.0", trainer=trainer,
    )
    for key, value in changes.items():
        setattr(settings, key, value)
    return settings


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory) -> Path:
    return write_image_folders(tmp_path_factory.mktemp("tiles") / "data")


def test_split_is_seeded_per_class_and_uses_given_folders(image_folders, tmp_path):
    split = split_samples(image_folders, seed=3)
    again = split_samples(image_folders, seed=3)
    assert [s.path for s in split.train] == [s.path for s in again.train]
    assert (len(split.train), len(split.validation), len(split.test)) == (3 * 17, 3 * 4, 3 * 3)
    assert split.class_names == sorted(COLOURS)
    assert not {s.path for s in split.train} & {s.path for s in split.validation}
    # a folder with train/ and valid/ uses them as they are
    layout = tmp_path / "layout"
    write_image_folders(layout / "train", per_class=6)
    write_image_folders(layout / "valid", per_class=2, seed=1)
    given = split_samples(layout)
    assert (len(given.train), len(given.validation), len(given.test)) == (18, 6, 0)


def test_training_learns_and_writes_a_complete_model(image_folders, tmp_path):
    run = train_classification(quick_settings(image_folders, tmp_path / "run", head_epochs=1))
    rows = [json.loads(json.dumps(row)) for row in run.result.history]
    assert len(rows) == 4 and rows[0]["encoder_frozen"] == 1 and rows[1]["encoder_frozen"] == 0
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert run.validation["accuracy"] >= 0.9  # the colours are easy
    card = read_card(run.model_path)
    assert card.task == "classification" and card.class_names() == sorted(COLOURS)
    assert card.bands == ["B4", "B3", "B2"]  # RGB tiles are Sentinel-2 B4, B3, B2
    rendering = card.normalisation.rendering
    assert rendering.levels == 256
    assert rendering.low == [pytest.approx(EUROSAT_RENDERING_LOW)] * 3 and rendering.high == [EUROSAT_RENDERING_HIGH] * 3
    assert set(card.metrics["per_class"]) == set(COLOURS) and "test" in card.metrics
    for name in ("log.csv", "curves.png", "confusion_matrix.png", "report.txt", "training.json", "checkpoints/best.safetensors"):
        assert (tmp_path / "run" / name).is_file(), name
    assert "precision" in (tmp_path / "run" / "report.txt").read_text()


def test_rendering_maps_reflectance_like_eurosat():
    """EuroSAT: digital numbers 0–2750 → 1–255. Our card rendering reproduces that at both ends."""
    from satvision.models.card import Normalisation, Rendering
    from satvision.models.normalisation import normalise

    norm = Normalisation(10000.0, [0.0] * 3, [1.0] * 3, Rendering([EUROSAT_RENDERING_LOW] * 3, [EUROSAT_RENDERING_HIGH] * 3, 256))
    values = torch.tensor([0.0, 1375.0, 2750.0, 5000.0]).reshape(1, 4, 1).expand(3, 4, 1).clone().reshape(3, 4, 1)
    rendered = normalise(values, norm)[0, :, 0] * 255
    expected = torch.clamp(1 + values[0, :, 0] * 254 / 2750, 1, 255)
    assert torch.allclose(rendered, torch.round(expected), atol=1.0)


def test_resume_continues_from_the_last_epoch(image_folders, tmp_path):
    settings = quick_settings(image_folders, tmp_path / "run")
    settings.trainer.epochs = 2
    train_classification(settings)
    settings.trainer.epochs, settings.trainer.resume = 3, True
    run = train_classification(settings)
    assert [row["epoch"] for row in run.result.history] == [1, 2, 3]
    with pytest.raises(SatVisionError, match="--resume"):
        train_classification(quick_settings(image_folders, tmp_path / "run"))


def write_chip_folders(root: Path, per_class: int = 12, size: int = 16) -> Path:
    """GeoTIFF chips with band descriptions; water dark in B8, forest bright."""
    rng = np.random.default_rng(0)
    grid = Grid(crs=__import__("rasterio").crs.CRS.from_epsg(32618),
                transform=__import__("rasterio").transform.from_origin(400000, 4200000, 10, 10), width=size, height=size)
    levels = {"SeaLake": (900, 700, 500, 200), "Forest": (500, 700, 400, 3500)}
    for name, level in levels.items():
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            values = (np.array(level)[:, None, None] + rng.normal(0, 80, (4, size, size))).clip(1, 10000).astype(np.uint16)
            with write_geotiff(root / name / f"{index}.tif", grid, 4, "uint16", nodata=0, band_names=["B2", "B3", "B4", "B8"]) as out:
                out.write(values)
    return root


def test_geotiff_chips_train_with_named_bands(tmp_path):
    data = write_chip_folders(tmp_path / "chips")
    with pytest.raises(SatVisionError, match="--bands"):
        train_classification(quick_settings(data, tmp_path / "nobands"))
    settings = quick_settings(data, tmp_path / "run", bands=["B8", "B4", "B3"], rendering="none")
    settings.trainer.epochs = 3
    run = train_classification(settings)
    card = read_card(run.model_path)
    assert card.bands == ["B8", "B4", "B3"] and card.normalisation.rendering is None
    assert run.validation["accuracy"] >= 0.9
    evaluation = evaluate_classification(run.model_path, data, device="cpu")
    assert evaluation.metrics["tiles"] == 24 and evaluation.metrics["accuracy"] >= 0.9


def test_evaluate_cli_prints_json_with_per_class_figures(image_folders, tmp_path):
    run = train_classification(quick_settings(image_folders, tmp_path / "run"))
    completed = subprocess.run(
        [sys.executable, "-m", "satvision", "evaluate", "classification", "--data", str(image_folders), "--model",
         str(run.model_path), "--device", "cpu", "--json", "--confusion-matrix", str(tmp_path / "cm.png")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["tiles"] == 72 and 0.0 <= result["accuracy"] <= 1.0
    assert set(result["per_class"]) == set(COLOURS)
    assert sum(map(sum, result["confusion_matrix"])) == 72
    assert (tmp_path / "cm.png").stat().st_size > 1000


def test_evaluate_refuses_mismatched_data_and_segmentation_models(image_folders, tmp_path, saved_model, saved_classifier):
    run = train_classification(quick_settings(image_folders, tmp_path / "run", trainer=TrainerConfig(
        epochs=1, batch_size=16, monitor="accuracy", device="cpu", quiet=True)))
    other = write_image_folders(tmp_path / "other", per_class=2)
    (other / "Glacier").mkdir()
    (other / "SeaLake" / "SeaLake_0.png").rename(other / "Glacier" / "ice.png")
    with pytest.raises(SatVisionError, match="does not know: Glacier"):
        evaluate_classification(run.model_path, other, device="cpu")
    with pytest.raises(SatVisionError, match="needs 4 bands"):
        evaluate_classification(saved_classifier, image_folders, device="cpu")  # 4-band model, RGB tiles
    with pytest.raises(SatVisionError, match="segmentation"):
        evaluate_classification(saved_model, image_folders, device="cpu")


def test_compare_trains_each_architecture_and_prints_the_seed_table(image_folders, tmp_path):
    settings = quick_settings(image_folders, tmp_path / "compare")
    settings.trainer.epochs = 1
    rows = compare_classification(settings, ["vit-tiny64", "resnet18"])
    assert [row["model"] for row in rows] == ["vit-tiny64", "resnet18"]
    table = (tmp_path / "compare" / "comparison.md").read_text()
    assert table.startswith("| Model | Accuracy |") and "resnet18" in table
    assert all(row["parameters"] > 0 for row in rows)


def test_train_cli_runs_one_epoch(image_folders, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "satvision", "train", "classification", "--data", str(image_folders), "--output",
         str(tmp_path / "cli"), "--architecture", "vit-tiny64", "--input-size", "16", "--vit", "patch_size=4,dim=32,depth=2,heads=2",
         "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Wrote" in completed.stdout and (tmp_path / "cli" / "model.safetensors").is_file()


def test_fine_tuning_starts_from_a_model_file(image_folders, tmp_path):
    first = train_classification(quick_settings(image_folders, tmp_path / "first"))
    logged: list[str] = []
    one_epoch = quick_trainer(epochs=1)
    again = train_classification(quick_settings(image_folders, tmp_path / "again", init_from=str(first.model_path),
                                                trainer=one_epoch), feedback=RecordingFeedback(messages=logged))
    assert any("encoder and head loaded" in line for line in logged)
    assert read_card(again.model_path).normalisation.mean == read_card(first.model_path).normalisation.mean
    assert again.validation["accuracy"] >= first.validation["accuracy"] - 0.1  # one epoch keeps what was learned

    two_classes = tmp_path / "two"
    for name in ("Forest", "SeaLake"):
        (two_classes / name).mkdir(parents=True)
        for tile in sorted((image_folders / name).iterdir()):
            (two_classes / name / tile.name).write_bytes(tile.read_bytes())
    logged.clear()
    other = train_classification(quick_settings(two_classes, tmp_path / "other", init_from=str(first.model_path),
                                                trainer=quick_trainer(epochs=1)), feedback=RecordingFeedback(messages=logged))
    assert any("encoder loaded, new head for 2 classes" in line for line in logged)
    assert read_card(other.model_path).class_names() == ["Forest", "SeaLake"]

    with pytest.raises(SatVisionError, match="choose the same --architecture"):
        train_classification(quick_settings(image_folders, tmp_path / "wrong", architecture="resnet18",
                                            init_from=str(first.model_path), trainer=quick_trainer(epochs=1)))


def test_a_cnn_is_fine_tuned_at_a_higher_input_size_and_a_vit_is_not(image_folders, tmp_path):
    cnn = train_classification(quick_settings(image_folders, tmp_path / "cnn", architecture="resnet10t",
                                              trainer=quick_trainer(epochs=1)))
    logged: list[str] = []
    larger = train_classification(quick_settings(image_folders, tmp_path / "larger", architecture="resnet10t", input_size=24,
                                                 init_from=str(cnn.model_path), trainer=quick_trainer(epochs=1, lr=1e-9)),
                                  feedback=RecordingFeedback(messages=logged))
    assert any("encoder and head loaded" in line for line in logged)
    assert read_card(larger.model_path).architecture.params["input_size"] == 24
    before, after = load_file(str(cnn.model_path)), load_file(str(larger.model_path))
    weights = [key for key, value in before.items() if value.is_floating_point() and "running" not in key]
    assert all(torch.allclose(before[key], after[key], atol=1e-5) for key in weights)  # started from those weights

    vit = train_classification(quick_settings(image_folders, tmp_path / "vit", trainer=quick_trainer(epochs=1)))
    with pytest.raises(SatVisionError, match=r"but for a CNN\) --input-size"):
        train_classification(quick_settings(image_folders, tmp_path / "vit24", input_size=24, init_from=str(vit.model_path),
                                            trainer=quick_trainer(epochs=1)))


def quick_trainer(**changes) -> TrainerConfig:
    import dataclasses

    base = TrainerConfig(epochs=4, batch_size=16, lr=3e-3, weight_decay=0.01, schedule="cosine", warmup_epochs=0.5,
                         monitor="accuracy", device="cpu", quiet=True, seed=0)
    return dataclasses.replace(base, **changes)


def test_noise_augmentation_speckles_about_half_of_the_tiles(tmp_path):
    from satvision.training.classification_training import training_augmentation

    settings = quick_settings(tmp_path, tmp_path / "out", noise=0.04, jitter=0.0, crop_scale=1.0)
    augment = training_augmentation(settings, 16, rendered_range=True)
    torch.manual_seed(0)
    spreads = [float(augment(torch.full((3, 16, 16), 0.5), 0).std()) for _ in range(400)]
    noisy = [spread for spread in spreads if spread > 0.001]
    assert 0.4 < len(noisy) / len(spreads) < 0.6
    assert 0.005 < min(noisy) and max(noisy) < 0.04 * 1.2  # sigma between a quarter of the setting and the setting
    clean = training_augmentation(quick_settings(tmp_path, tmp_path / "out", jitter=0.0, crop_scale=1.0), 16, rendered_range=True)
    assert all(float(clean(torch.full((3, 16, 16), 0.5), 0).std()) == 0.0 for _ in range(20))


def test_rough_water_textures_only_the_water_class_tiles(tmp_path):
    from satvision.training.classification_training import training_augmentation

    settings = quick_settings(tmp_path, tmp_path / "out", rough_water=1.0, jitter=0.0, crop_scale=1.0)
    augment = training_augmentation(settings, 32, rendered_range=True, class_names=["Forest", "SeaLake"])
    torch.manual_seed(0)
    calm = torch.full((3, 32, 32), 0.3)
    water = [augment(calm, 1) for _ in range(50)]
    assert all(float(augment(calm, 0).std()) == 0.0 for _ in range(20))  # Forest tiles stay as they are
    assert sum(float(tile.std()) > 0.001 for tile in water) >= 45
    assert all(float((tile[0] - tile[2]).abs().max()) < 1e-6 for tile in water)  # waves and foam are grey
    assert max(float(tile.max()) for tile in water) > 0.4  # some whitecaps
    assert all(float((tile - 0.3).abs().median()) < 0.02 for tile in water)  # most pixels stay near the water's value


def test_weight_average_is_validated_saved_and_resumed(image_folders, tmp_path):
    settings = quick_settings(image_folders, tmp_path / "ema", trainer=quick_trainer(epochs=1, ema_decay=0.9))
    run = train_classification(settings)
    checkpoints = tmp_path / "ema" / "checkpoints"
    raw = load_file(str(checkpoints / "last.safetensors"))
    averaged = torch.load(checkpoints / "last_state.pt", weights_only=True)["ema"]
    saved = load_file(str(run.model_path))
    assert set(saved) == set(averaged) == set(raw)
    # one epoch: the best weights are that epoch's average, not the raw weights the optimiser left
    assert all(torch.equal(saved[name], averaged[name]) for name in saved)
    assert any(not torch.equal(raw[name], averaged[name]) for name in raw if raw[name].is_floating_point())

    settings.trainer.epochs, settings.trainer.resume = 2, True
    resumed = train_classification(settings)
    assert [row["epoch"] for row in resumed.result.history] == [1, 2]
    plain = quick_settings(image_folders, tmp_path / "plain", trainer=quick_trainer(epochs=1))
    train_classification(plain)
    plain.trainer.epochs, plain.trainer.resume, plain.trainer.ema_decay = 2, True, 0.99
    with pytest.raises(SatVisionError, match="without --ema"):
        train_classification(plain)
    with pytest.raises(SatVisionError, match=r"decay must be in \[0, 1\)"):
        quick_trainer(ema_decay=1.0)


def test_test_zoom_classifies_the_magnified_centre_of_each_tile_at_inference(image_folders, tmp_path):
    from satvision.models.augmented_views import averaged_probabilities
    from satvision.models.modelfile import load_model

    run = train_classification(quick_settings(image_folders, tmp_path / "zoom", test_zoom=1.25, trainer=quick_trainer(epochs=1)))
    assert read_card(run.model_path).architecture.params["test_zoom"] == 1.25
    network, _ = load_model(run.model_path, task="classification", device="cpu")
    seen: list[torch.Tensor] = []
    network.encoder.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    tiles = torch.rand(2, 3, 16, 16)
    network.train()(tiles)
    with torch.no_grad():
        network.eval()(tiles)
    assert torch.equal(seen[0], tiles)  # training: the tiles as they are
    magnified = torch.nn.functional.interpolate(tiles, size=(20, 20), mode="bilinear", align_corners=False)
    assert torch.allclose(seen[1], magnified[..., 2:18, 2:18])  # inference: the centre 16 px of the tile magnified to 20 px
    with torch.no_grad():  # the centred crop keeps the averaged classifier exactly invariant under flips and turns
        turned = averaged_probabilities(network, torch.rot90(tiles, 1, (-2, -1)), "d4")
        assert torch.allclose(averaged_probabilities(network, tiles, "d4"), turned, atol=1e-6)

    assert evaluate_classification(run.model_path, image_folders, device="cpu").metrics["test_zoom"] == 1.25
    assert evaluate_classification(run.model_path, image_folders, device="cpu", test_zoom=1.0).metrics["test_zoom"] == 1.0
    with pytest.raises(SatVisionError, match="--test-zoom must be between 1"):
        train_classification(quick_settings(image_folders, tmp_path / "bad", test_zoom=0.8))
