"""Segmentation training: data, split and patches, augmentation, losses, metrics, the trainer on
every UNet-family architecture, and the ``train`` / ``evaluate`` / ``compare`` commands, on tiny
synthetic Sentinel-2-like image/label GeoTIFF pairs."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import RecordingFeedback
from rasterio.crs import CRS
from rasterio.transform import from_origin

from satvision.cli.main import main as satvision_main
from satvision.core.errors import SatVisionError
from satvision.models.modelfile import load_model, read_card, save_model
from satvision.training.augment import PatchAugmentation
from satvision.training.augment_settings import AugmentSettings
from satvision.training.losses import DiceCrossEntropyLoss, SegmentationObjective, build_loss
from satvision.training.metrics import SegmentationMetrics
from satvision.training.segmentation_datasets import TileSet, TrainPatches
from satvision.training.segmentation_pairs import IGNORE_INDEX, find_pairs, split_pairs
from satvision.training.segmentation_sampling import PatchSettings, PatchSource

ROOT = Path(__file__).resolve().parent.parent
BANDS = ["B2", "B3", "B4", "B8"]
SIZE = 192
NODATA = 0
# Reflectance of water and land per band (B2, B3, B4, B8): water is dark in NIR, brighter in green.
WATER = np.array([0.07, 0.08, 0.05, 0.02])
LAND = np.array([0.05, 0.07, 0.08, 0.30])
TINY = ["--encoder", "resnet18", "--encoder-depth", "3", "--decoder-channels", "16,8,8", "--cat-channels", "8",
        "--patch-size", "64", "--batch-size", "4", "--seed", "0", "--device", "cpu", "--quiet"]


def write_pair(folder: Path, name: str, seed: int, size: int = SIZE) -> None:
    """A 4-band uint16 image (reflectance × 10000, nodata 0 in one corner) and its water label
    (1 water, 0 land, 255 in a few unlabelled strips; label nodata 255)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    field = (np.sin(2 * np.pi * x / rng.uniform(70, 110) + rng.uniform(0, 6))
             + np.sin(2 * np.pi * y / rng.uniform(70, 110) + rng.uniform(0, 6)))
    water = field > 0.3
    reflectance = np.where(water[None], WATER[:, None, None], LAND[:, None, None])
    reflectance = reflectance + rng.normal(0, 0.006, reflectance.shape)
    image = np.clip(reflectance * 10000, 1, 65535).astype(np.uint16)
    image[:, :12, :12] = NODATA
    label = water.astype(np.uint8)
    label[100:103, :] = 255
    profile = {"driver": "GTiff", "width": size, "height": size, "crs": CRS.from_epsg(32618),
               "transform": from_origin(400000 + 5000 * seed, 4200000, 10, 10)}
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    with rasterio.open(folder / "images" / name, "w", count=4, dtype="uint16", nodata=NODATA, **profile) as out:
        out.write(image)
        for index, band in enumerate(BANDS, start=1):
            out.set_band_description(index, band)
    with rasterio.open(folder / "labels" / name, "w", count=1, dtype="uint8", nodata=255, **profile) as out:
        out.write(label[None])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("water-data")
    for seed in range(3):
        write_pair(folder, f"scene{seed}.tif", seed)
    return folder


@pytest.fixture
def source():
    """A patch source on the test bands, closed afterwards (open rasters must not outlive GDAL)."""
    patches = PatchSource(BANDS)
    yield patches
    patches.close()


def run_cli(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "satvision", *arguments], capture_output=True, text=True, cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    """`satvision train segmentation` for 2 epochs of a tiny UNet on CPU (a real subprocess)."""
    output = tmp_path_factory.mktemp("trained")
    completed = run_cli("train", "segmentation", "--data", str(dataset), "--output", str(output), *TINY,
                        "--epochs", "2", "--patches-per-epoch", "8", "--license", "CC0-1.0",
                        "--processing-levels", "L1C,L2A", "--simulate-l2a", "0.5", "--lr", "3e-3")
    assert completed.returncode == 0, completed.stderr
    assert "model.safetensors" in completed.stdout
    return output


# --------------------------------------------------------------------------- data


def test_pairs_from_folder_and_manifests(dataset, tmp_path):
    pairs = find_pairs(dataset)
    assert [pair.name for pair in pairs] == ["scene0", "scene1", "scene2"]
    assert all(pair.label == dataset / "labels" / pair.image.name for pair in pairs)
    (tmp_path / "m.csv").write_text("image,label\n" + "".join(
        f"{dataset}/images/scene{i}.tif,{dataset}/labels/scene{i}.tif\n" for i in range(3)))
    assert find_pairs(tmp_path / "m.csv") == pairs
    manifest = dataset / "manifest.json"  # relative paths, resolved against the manifest's folder
    manifest.write_text(json.dumps([{"image": f"images/scene{i}.tif", "label": f"labels/scene{i}.tif"} for i in range(3)]))
    try:
        assert [(p.image.resolve(), p.label.resolve()) for p in find_pairs(manifest)] == [
            (p.image.resolve(), p.label.resolve()) for p in pairs]
    finally:
        manifest.unlink()
    (tmp_path / "bad.json").write_text(json.dumps([{"image": "missing.tif", "label": "x.tif"}]))
    with pytest.raises(SatVisionError, match="missing.tif"):
        find_pairs(tmp_path / "bad.json")


def test_split_keeps_pairs_together_and_repeats_by_seed(tmp_path):
    for seed in range(7):
        write_pair(tmp_path, f"s{seed}.tif", seed, size=64)
    pairs = find_pairs(tmp_path)
    split = split_pairs(pairs, seed=3)
    parts = [split.train, split.validation, split.test]
    assert [len(part) for part in parts] == [5, 1, 1] and split.by_image
    names = [[region.pair.name for region in part] for part in parts]
    assert sorted(sum(names, [])) == sorted(pair.name for pair in pairs)  # each pair in exactly one part
    assert all(region.pair.label.name == region.pair.image.name and region.rows == 64 for part in parts for region in part)
    again = split_pairs(list(reversed(pairs)), seed=3)
    assert [[r.pair.name for r in part] for part in (again.train, again.validation, again.test)] == names
    others = {tuple(r.pair.name for r in split_pairs(pairs, seed=s).validation) for s in range(8)}
    assert len(others) > 1  # the seed matters


def test_split_by_place_keeps_one_grid_together_and_never_moves_a_place_when_images_are_added(tmp_path):
    def places_by_part(split) -> list[set[str]]:
        parts = [{region.pair.name for region in split.part(part)} for part in ("train", "validation", "test")]
        places = [{name.split("_")[0] for name in names} for names in parts]
        for names, where in zip(parts, places):  # both levels of each place in the same part
            assert names == {f"{place}_{level}" for place in where for level in ("L1C", "L2A")}
        return places

    for seed in range(8):  # the same place (grid) at two processing levels
        for level in ("L1C", "L2A"):
            write_pair(tmp_path, f"p{seed}_{level}.tif", seed, size=64)
    split = split_pairs(find_pairs(tmp_path), seed=0, mode="place")
    before = places_by_part(split)
    assert split.by_place and all(before) and sorted(set().union(*before)) == [f"p{seed}" for seed in range(8)]
    assert "split by place" in split.describe()
    two_places = split_pairs([pair for pair in find_pairs(tmp_path) if pair.name[:2] in ("p0", "p1")], seed=0, mode="place")
    assert not two_places.by_image and two_places.describe().endswith("because fewer than 3 places (grids) were given")
    for seed in range(8, 14):
        for level in ("L1C", "L2A"):
            write_pair(tmp_path, f"p{seed}_{level}.tif", seed, size=64)
    after = places_by_part(split_pairs(find_pairs(tmp_path), seed=0, mode="place"))
    assert [places & {f"p{seed}" for seed in range(8)} for places in after] == before  # the first eight stay put
    assert len({frozenset(places_by_part(split_pairs(find_pairs(tmp_path), seed=s, mode="place"))[2]) for s in range(6)}) > 1
    # what it prevents: the split by image parts the two levels of some place
    by_image = split_pairs(find_pairs(tmp_path), seed=0)
    image_places = [{region.pair.name.split("_")[0] for region in part} for part in (by_image.train, by_image.validation, by_image.test)]
    assert sum(len(places) for places in image_places) > 14


def test_fewer_than_three_images_split_into_disjoint_row_bands(dataset, source):
    pairs = find_pairs(dataset)[:2]
    split = split_pairs(pairs, seed=0)
    assert not split.by_image
    for train, validation, test in zip(split.train, split.validation, split.test):
        assert train.pair == validation.pair == test.pair
        assert (train.row_start, train.row_stop, validation.row_stop, test.row_stop) == (0, 134, 163, SIZE)
        assert validation.row_start == train.row_stop and test.row_start == validation.row_stop
    # validation tiles never see training rows: rows outside the band are ignored and invalid
    tiles = TileSet(source, split.validation, 64)
    for index in range(len(tiles)):
        sample = tiles.sample(index)
        region_index, y, _ = tiles.tiles[index]
        region = split.validation[region_index]
        rows = np.arange(y, y + 64)
        outside = (rows < region.row_start) | (rows >= region.row_stop)
        assert (sample.label[outside] == IGNORE_INDEX).all() and not sample.valid[outside].any()


def test_patches_respect_the_water_fraction_and_ignore_nodata(dataset, source):
    split = split_pairs(find_pairs(dataset), seed=0)
    patches = TrainPatches(source, split.train, PatchSettings(64, 0.3, 0.5, max_tries=50), length=24, seed=1)
    fractions = [patches.sample(index)[1] for index in range(24)]
    assert all(0.3 <= fraction <= 0.5 for fraction in fractions)
    first = patches[0]
    assert first["values"].shape == (4, 64, 64) and first["target"].shape == (64, 64)
    assert torch.equal(patches[5]["values"], patches[5]["values"])  # item i is a pure function of (seed, epoch, i)
    # impossible bounds: the closest candidate is taken
    strict = TrainPatches(source, split.train, PatchSettings(64, 0.99, 1.0, max_tries=5), length=4, seed=1)
    assert all(strict.sample(i)[1] < 0.99 for i in range(4))
    # image nodata (top-left corner) and unlabelled rows are ignored
    region = split.train[0]
    sample = source.reader(region.pair).read(region, 0, 0, 64)
    assert not sample.valid[:12, :12].any() and (sample.label[:12, :12] == IGNORE_INDEX).all()
    assert (sample.values[:, :12, :12] == 0).all()
    below = source.reader(region.pair).read(region, 96, 0, 64)
    assert (below.label[4:7] == IGNORE_INDEX).all() and below.valid[4:7].all()
    # windowed reads (no cache) give exactly what the in-memory cache gives, past the edges too
    windowed = PatchSource(BANDS, cache_bytes=0)
    try:
        for y, x in ((0, 0), (96, 150), (-10, 170)):
            cached, read = source.reader(region.pair).read(region, y, x, 64), windowed.reader(region.pair).read(region, y, x, 64)
            assert windowed.reader(region.pair)._cached is None
            for name in ("values", "valid", "label"):
                assert np.array_equal(getattr(cached, name), getattr(read, name)), (y, x, name)
    finally:
        windowed.close()


# --------------------------------------------------------------------------- augmentation


def test_augmentation_keeps_image_and_mask_aligned():
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.random((1, 4, 4, 4)).astype(np.float32))
    values = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)[0].numpy() * 3000
    valid = np.ones((64, 64), bool)
    valid[:, :6] = False
    label = (values[3] > 1500).astype(np.uint8)
    label[~valid] = IGNORE_INDEX
    geometric = PatchAugmentation(AugmentSettings(elastic_p=0.0, jitter_p=0.0), 10000)
    elastic = PatchAugmentation(AugmentSettings(elastic_p=1.0, elastic_alpha=150.0, jitter_p=0.0), 10000)
    moved = 0
    for seed in range(8):
        torch.manual_seed(seed)
        out_values, out_valid, out_label = geometric(values, valid, label)
        labelled = out_label != IGNORE_INDEX
        assert torch.equal((out_values[3] > 1500).long()[labelled], out_label[labelled])  # exact for flips/rotations
        assert torch.equal(labelled, out_valid) and int(out_valid.sum()) == int(valid.sum())
        moved += int(not torch.equal(out_valid, torch.from_numpy(valid)))
        out_values, out_valid, out_label = elastic(values, valid, label)
        labelled = out_label != IGNORE_INDEX
        agreement = ((out_values[3] > 1500).long()[labelled] == out_label[labelled]).float().mean()
        assert agreement > 0.975  # bilinear image vs nearest mask differ only on boundaries (unaligned: < 0.93)
        assert (out_values[:, ~out_valid] == 0).all()
    assert moved > 0


def test_jitter_and_l2a_simulation_change_bands_not_labels():
    values = np.stack([np.full((32, 32), 1000.0 + 500 * band) for band in range(4)]).astype(np.float32)
    values[:, :4] += 300
    valid, label = np.ones((32, 32), bool), np.zeros((32, 32), np.uint8)
    torch.manual_seed(0)
    l2a = PatchAugmentation(AugmentSettings(flips=False, rotations=False, elastic_p=0, jitter_p=0, simulate_l2a_p=1.0), 10000)
    out, out_valid, out_label = l2a(values, valid, label)
    darker = torch.from_numpy(values) - out
    assert (darker > 0).all() and torch.equal(out_label, torch.zeros(32, 32, dtype=torch.long))
    assert (darker[:, 0, 0] <= torch.tensor([1000.0, 1500, 2000, 2500])).all()  # at most each band's dark value
    jitter = PatchAugmentation(AugmentSettings(flips=False, rotations=False, elastic_p=0, jitter_p=1.0, gain=0.1, offset=0.01), 10000)
    out, _, _ = jitter(values, valid, label)
    ratio = out[:, 10, 10] / torch.from_numpy(values[:, 10, 10])
    assert ((ratio > 0.85) & (ratio < 1.15)).all() and not torch.allclose(ratio, ratio[0])  # per band


# --------------------------------------------------------------------------- metrics and losses


def test_metrics_on_a_hand_made_confusion():
    target = torch.tensor([[[0, 0, 0, 1, 1, 1, 255, 255]]])
    predicted = torch.tensor([[[0, 0, 1, 1, 1, 0, 1, 0]]])
    logits = torch.stack([(predicted == 0).float(), (predicted == 1).float()], dim=1) * 2.0  # p(predicted) = e²/(1+e²)
    metrics = SegmentationMetrics(["background", "water"])
    metrics.update(logits, target)
    result = metrics.compute()
    # confusion [[2, 1], [1, 2]]; the two ignored pixels do not count
    assert result["pixels"] == 6
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["iou_water"] == pytest.approx(2 / 4) and result["iou_background"] == pytest.approx(2 / 4)
    assert result["mean_iou"] == pytest.approx(0.5)
    assert result["dice"] == pytest.approx(2 * 2 / (3 + 3))
    right, wrong = -math.log(math.exp(2) / (1 + math.exp(2))), -math.log(1 / (1 + math.exp(2)))
    assert result["cross_entropy"] == pytest.approx((4 * right + 2 * wrong) / 6)
    # the same from a probability and a mask (the inference engine's outputs); merging adds up
    probability = torch.where(predicted == 1, 0.9, 0.1)
    other = SegmentationMetrics(["background", "water"])
    other.update_from_probability(predicted.numpy(), probability.numpy(), target.numpy())
    assert other.compute()["iou_water"] == pytest.approx(0.5)
    assert other.compute()["cross_entropy"] == pytest.approx((4 * -math.log(0.9) + 2 * -math.log(0.1)) / 6)
    other.merge(metrics)
    assert other.compute()["pixels"] == 12 and other.compute()["accuracy"] == pytest.approx(4 / 6)


def test_losses_ignore_unlabelled_pixels_and_add_deep_supervision():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 8, 8)
    target = torch.randint(0, 2, (2, 8, 8))
    ignored = target.clone()
    ignored[:, :4] = IGNORE_INDEX
    changed = logits.clone()
    changed[:, :, :4] = torch.randn(2, 2, 4, 8) * 10  # only where ignored
    for name in ("dice_ce", "ce", "dice", "focal", "lovasz", "jaccard", "tversky"):
        loss = build_loss(name)
        assert torch.isfinite(loss(logits, ignored)), name
        assert loss(logits, ignored).item() == pytest.approx(loss(changed, ignored).item(), abs=1e-5), name
    perfect = torch.stack([(target == 0).float(), (target == 1).float()], dim=1) * 20
    assert DiceCrossEntropyLoss()(perfect, target) < 1e-3 < DiceCrossEntropyLoss()(-perfect, target)
    objective = SegmentationObjective(build_loss("ce"), aux_weight=0.5, cgm_weight=2.0)
    main = objective({"logits": logits}, target)
    aux = [torch.randn(2, 2, 8, 8), torch.randn(2, 2, 8, 8)]
    has_foreground = torch.tensor([[0.0, 3.0], [1.0, -1.0]])
    ce = torch.nn.functional.cross_entropy
    expected = (main + 0.5 * (ce(aux[0], target) + ce(aux[1], target)) / 2
                + 2.0 * ce(has_foreground, torch.tensor([1, 1])))
    total = objective({"logits": logits, "aux": aux, "has_foreground": has_foreground}, target)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)


# --------------------------------------------------------------------------- trainer


def test_schedules_and_early_stopping():
    from satvision.training.trainer import EarlyStopping, learning_rate_factor
    from satvision.training.trainer_config import TrainerConfig

    # the origin notebook's Keras CosineDecayRestarts(first 10 steps, t_mul 2, m_mul 0.9, alpha 0.1)
    restarts = TrainerConfig(epochs=3, restart_epochs=1)  # 10 steps per epoch: cycles of 10, 20 steps
    factor = [learning_rate_factor(step, restarts, 10) for step in range(31)]
    assert factor[0] == pytest.approx(1.0) and factor[5] == pytest.approx(0.55)
    assert factor[10] == pytest.approx(0.9) and factor[20] == pytest.approx(0.9 * 0.55)
    assert factor[30] == pytest.approx(0.81) and min(factor) >= 0.1 * 0.9 - 1e-9
    warmup = TrainerConfig(epochs=10, schedule="cosine", warmup_epochs=1)
    assert [learning_rate_factor(s, warmup, 4) for s in (0, 3)] == pytest.approx([0.25, 1.0])
    assert learning_rate_factor(40, warmup, 4) == pytest.approx(0.1)
    assert learning_rate_factor(17, TrainerConfig(schedule="constant"), 4) == 1.0
    stopper = EarlyStopping(patience=2, mode="max")
    assert [stopper.update(value, epoch) for epoch, value in enumerate([0.5, 0.6, 0.55, 0.6, 0.59], 1)] == [
        True, True, False, False, False]
    assert stopper.should_stop and stopper.best_epoch == 2 and stopper.best == 0.6
    losses = EarlyStopping(patience=0, mode=TrainerConfig(monitor="val_loss").monitor_mode)
    assert [losses.update(value, epoch) for epoch, value in enumerate([1.0, 0.8, 0.9, 0.7], 1)] == [True, True, False, True]
    assert not losses.should_stop  # patience 0: never stops early



def tiny_setup(dataset: Path, output: Path, architecture: str = "unet"):
    """A tiny network of ``architecture`` with its card and the split."""
    from satvision.models.architectures import build_network
    from satvision.training.segmentation import _new_card
    from satvision.training.segmentation_settings import SegmentationTrainingSettings

    settings = SegmentationTrainingSettings(dataset, output, architecture=architecture, encoder="resnet18",
                                            encoder_depth=3, decoder_channels=[16, 8, 8], cat_channels=8, patch_size=64)
    pairs = find_pairs(dataset)
    split = split_pairs(pairs, 0)
    card = _new_card(settings, settings.architecture_params(), pairs, split, [0.06, 0.075, 0.065, 0.2], [0.01, 0.01, 0.015, 0.12])
    torch.manual_seed(0)
    return build_network(card), card, split


@pytest.mark.parametrize("architecture", ["unet", "attention_unet", "unet3plus"])
def test_every_architecture_trains_and_its_loss_falls(dataset, source, tmp_path, architecture):
    from satvision.training.segmentation import SegmentationTask
    from satvision.training.trainer import Trainer
    from satvision.training.trainer_config import TrainerConfig

    network, card, split = tiny_setup(dataset, tmp_path, architecture)
    # the same 8 patches every epoch (set_epoch is a no-op on a fixed dataset): the loss must fall
    fixed = TrainPatches(source, split.train, PatchSettings(64), length=8, seed=0)
    fixed.set_epoch = lambda epoch: None
    config = TrainerConfig(epochs=4, batch_size=4, lr=3e-3, schedule="constant", device="cpu", quiet=True, monitor="val_loss")
    result = Trainer(network, SegmentationTask(card), config, tmp_path).fit(fixed, TileSet(source, split.validation[:1], 64, max_tiles=2))
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.8, losses
    assert hasattr(network, "training_outputs") == (architecture == "unet3plus")


@pytest.mark.parametrize("ema_decay", [0.0, 0.9], ids=["raw-weights", "weight-average"])
def test_keep_last_ends_with_the_final_epochs_weights_and_best_with_the_best(dataset, source, tmp_path, ema_decay):
    from safetensors.torch import load_file

    from satvision.training.segmentation import SegmentationTask
    from satvision.training.trainer import Trainer
    from satvision.training.trainer_config import TrainerConfig

    split = split_pairs(find_pairs(dataset), 0)
    train = TrainPatches(source, split.train, PatchSettings(64), length=8, seed=0)
    validation = TileSet(source, split.validation[:1], 64, max_tiles=2)
    kept = {}
    for keep in ("best", "last"):
        network, card, _ = tiny_setup(dataset, tmp_path / keep)
        config = TrainerConfig(epochs=3, batch_size=4, lr=3e-3, device="cpu", quiet=True, ema_decay=ema_decay, keep=keep)
        trainer = Trainer(network, SegmentationTask(card), config, tmp_path / keep,
                          save_weights=lambda path, weights, card=card: save_model(path, weights, card))
        result = trainer.fit(train, validation)
        kept[keep] = (result, {name: value.clone() for name, value in network.state_dict().items()})
    best, best_weights = kept["best"]
    last, last_weights = kept["last"]
    assert best.kept_epoch == best.best_epoch and last.kept_epoch == last.last_epoch == 3
    assert best.kept_metrics["epoch"] == best.best_epoch and last.kept_metrics == last.history[-1]
    expected_best = load_file(str(tmp_path / "best" / "checkpoints" / "best.safetensors"))
    checkpoints = tmp_path / "last" / "checkpoints"
    expected_last = (torch.load(checkpoints / "last_state.pt", weights_only=True)["ema"] if ema_decay
                     else load_file(str(checkpoints / "last.safetensors")))  # with an average: the average
    assert all(torch.equal(best_weights[name], expected_best[name].to(best_weights[name].dtype)) for name in expected_best)
    assert all(torch.equal(last_weights[name], expected_last[name].to(last_weights[name].dtype)) for name in expected_last)
    with pytest.raises(SatVisionError, match="weights to keep"):
        TrainerConfig(keep="first")


@pytest.mark.parametrize("ema_decay", [0.0, 0.9], ids=["raw-weights", "weight-average"])
def test_an_interrupted_training_resumes_exactly_where_it_stopped(dataset, source, tmp_path, ema_decay):
    """With a weight average, validation measures the average: equal figures after the resume
    mean the average was saved and restored too."""
    from satvision.training.segmentation import SegmentationTask
    from satvision.training.trainer import Trainer
    from satvision.training.trainer_config import TrainerConfig

    config = TrainerConfig(epochs=3, batch_size=4, device="cpu", quiet=True, freeze_encoder_epochs=1, ema_decay=ema_decay)
    split = split_pairs(find_pairs(dataset), 0)
    augment = PatchAugmentation(AugmentSettings(elastic_p=0.5), 10000)
    train = TrainPatches(source, split.train, PatchSettings(64), length=8, seed=0, augment=augment)
    validation = TileSet(source, split.validation[:1], 64, max_tiles=2)

    def trainer(output: Path, resume: bool = False, feedback=None) -> tuple[Trainer, torch.nn.Module]:
        network, card, _ = tiny_setup(dataset, output)  # a fresh network, as in a new process
        save = lambda path, weights: save_model(path, weights, card)  # noqa: E731
        run_config = TrainerConfig(**{**config.__dict__, "resume": resume})
        return Trainer(network, SegmentationTask(card), run_config, output, save_weights=save, feedback=feedback), network

    straight, _ = trainer(tmp_path / "straight")
    expected = straight.fit(train, validation).history
    polls = 0

    def ctrl_c() -> bool:  # polled before every batch: epoch 1 has 2 training and 1 validation batch
        nonlocal polls
        polls += 1
        if polls == 5:  # the second training step of epoch 2
            raise KeyboardInterrupt
        return False

    interrupted, network = trainer(tmp_path / "run", feedback=RecordingFeedback(cancel_when=ctrl_c))
    encoder_before = {name: value.clone() for name, value in network.encoder.state_dict().items()}
    decoder_before = {name: value.clone() for name, value in network.decoder.state_dict().items()}
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(train, validation)
    assert torch.load(tmp_path / "run" / "checkpoints" / "last_state.pt", weights_only=True)["epoch"] == 1
    saved, _ = load_model(tmp_path / "run" / "checkpoints" / "last.safetensors", task="segmentation")
    # epoch 1 froze the encoder (weights and batch-norm statistics) while the decoder learnt
    assert all(torch.equal(value, encoder_before[name]) for name, value in saved.encoder.state_dict().items())
    assert not all(torch.equal(value, decoder_before[name]) for name, value in saved.decoder.state_dict().items())

    resumed, _ = trainer(tmp_path / "run", resume=True)
    history = resumed.fit(train, validation).history
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert [row["encoder_frozen"] for row in history] == [1, 0, 0]
    for row, reference in zip(history, expected):  # same patches, weights, optimizer and schedule
        for name in ("lr", "train_loss", "val_loss", "iou_water"):
            assert row[name] == pytest.approx(reference[name], rel=1e-4), (row["epoch"], name)


# --------------------------------------------------------------------------- commands


def test_train_command_writes_a_complete_model_folder(trained, dataset):
    network, card = load_model(trained / "model.safetensors", task="segmentation")
    assert card.architecture.id == "unet" and card.architecture.params["encoder_depth"] == 3
    assert card.bands == BANDS and card.gsd_m == 10.0 and card.license == "CC0-1.0"
    assert card.processing_levels == ["L1C", "L2A"]
    assert card.tiling.tile_size == 64 and card.tiling.overlap == 8
    assert [(c.name, c.colour) for c in card.classes] == [("background", "#000000"), ("water", "#1f78b4")]
    # normalisation from the training patches' reflectance: close to the synthetic bands' values
    assert card.normalisation.reflectance_scale == 10000.0
    assert 0.04 < card.normalisation.mean[0] < 0.08 and 0.1 < card.normalisation.mean[3] < 0.3
    assert card.normalisation.std[3] > 0.05
    for name in ("accuracy", "iou_water", "mean_iou", "dice", "cross_entropy"):
        assert 0 <= card.metrics[name] <= (1 if name != "cross_entropy" else 10), name
        assert name in card.metrics["test"]
    assert card.metrics["best_epoch"] in (1, 2) and card.metrics["epochs_trained"] == 2
    assert card.metrics["kept_epoch"] == card.metrics["best_epoch"]  # --keep best, the default
    assert "3 image/label pairs" in card.training_data
    rows = list(csv.DictReader((trained / "log.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert {"lr", "train_loss", "val_loss", "iou_water", "dice", "accuracy", "cross_entropy", "seconds"} <= set(rows[0])
    assert (trained / "curves.png").stat().st_size > 1000
    triptychs = sorted((trained / "triptychs").glob("*.png"))
    assert 1 <= len(triptychs) <= 4
    assert {p.name for p in (trained / "checkpoints").iterdir()} >= {"last.safetensors", "last_state.pt", "best.safetensors"}
    assert read_card(trained / "checkpoints" / "best.safetensors").bands == BANDS  # checkpoints are model files too
    state = torch.load(trained / "checkpoints" / "last_state.pt", weights_only=True)
    assert state["epoch"] == 2 and "optimizer" in state and "scheduler" in state
    summary = json.loads((trained / "training.json").read_text())
    assert summary["split"]["description"].startswith("split by image")


def test_train_refuses_an_existing_run_and_resume_continues_it(trained, dataset, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    arguments = ["train", "segmentation", "--data", str(dataset), "--output", str(copy), *TINY, "--patches-per-epoch", "8",
                 "--lr", "3e-3"]
    assert satvision_main([*arguments, "--epochs", "3"]) == 2  # existing checkpoint without --resume
    assert satvision_main([*arguments, "--epochs", "3", "--resume", "--keep", "last"]) == 0
    rows = list(csv.DictReader((copy / "log.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert rows[:2] == list(csv.DictReader((trained / "log.csv").open()))  # earlier rows kept as they were
    assert torch.load(copy / "checkpoints" / "last_state.pt", weights_only=True)["epoch"] == 3
    card = read_card(copy / "model.safetensors")
    assert card.metrics["epochs_trained"] == card.metrics["kept_epoch"] == 3
    assert card.metrics["iou_water"] == pytest.approx(float(rows[2]["iou_water"]))  # the kept (last) epoch's validation
    assert card.normalisation == read_card(trained / "model.safetensors").normalisation  # kept from the checkpoint


def test_index_inputs_train_into_the_card_and_run_through_the_engine(dataset, tmp_path, capsys):
    output = tmp_path / "ndwi"
    arguments = ["train", "segmentation", "--data", str(dataset), "--output", str(output), *TINY, "--patches-per-epoch", "8",
                 "--index-inputs", "NDWI"]
    assert satvision_main([*arguments, "--epochs", "1"]) == 0
    network, card = load_model(output / "model.safetensors", task="segmentation")
    assert [(i.name, i.plus, i.minus) for i in card.normalisation.indices] == [("NDWI", "B3", "B8")]
    assert len(card.normalisation.mean) == len(card.normalisation.std) == card.input_channels == 5
    assert -1 < card.normalisation.mean[4] < 1 and 0 < card.normalisation.std[4] < 1  # measured on the patches' NDWI
    assert next(network.encoder.parameters()).shape[1] == 5
    capsys.readouterr()
    assert satvision_main(["evaluate", "segmentation", "--data", str(dataset), "--model", str(output / "model.safetensors"),
                           "--device", "cpu", "--json"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["iou_water"] <= 1
    # a resume must keep the inputs the run started with
    assert satvision_main([*arguments[:-1], "NDVI", "--epochs", "2", "--resume"]) == 2
    assert "on inputs B2,B3,B4,B8,NDWI, not the requested" in capsys.readouterr().err


def test_evaluate_command_prints_json_from_the_inference_engine(trained, dataset, tmp_path, capsys):
    code = satvision_main(["evaluate", "segmentation", "--data", str(dataset), "--model", str(trained / "model.safetensors"),
                           "--device", "cpu", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    for name in ("accuracy", "iou_water", "mean_iou", "dice", "cross_entropy"):
        assert result[name] is not None and 0 <= result[name] <= (1 if name != "cross_entropy" else 20)
    assert len(result["per_image"]) == 3
    # every labelled pixel with image data counts: 3 images minus the ignored rows and the nodata corner
    labelled = 3 * (SIZE * SIZE - 3 * SIZE - 12 * 12)
    assert result["pixels"] == labelled == sum(item["pixels"] for item in result["per_image"])
    code = satvision_main(["evaluate", "segmentation", "--data", str(dataset), "--model", str(trained / "model.safetensors"),
                           "--device", "cpu", "--json", "--split", "test"])
    single = json.loads(capsys.readouterr().out)
    assert code == 0 and len(single["per_image"]) == 1
    # two images: the split is by row bands, and only the validation band (rows 134-163) is compared
    two = tmp_path / "two"
    for folder in ("images", "labels"):
        (two / folder).mkdir(parents=True)
        for name in ("scene0.tif", "scene1.tif"):
            (two / folder / name).symlink_to(dataset / folder / name)
    code = satvision_main(["evaluate", "segmentation", "--data", str(two), "--model", str(trained / "model.safetensors"),
                           "--device", "cpu", "--json", "--split", "validation"])
    bands = json.loads(capsys.readouterr().out)
    assert code == 0 and [item["rows"] for item in bands["per_image"]] == [[134, 163], [134, 163]]
    assert bands["pixels"] == 2 * (163 - 134) * SIZE


def test_evaluate_repeats_the_split_the_model_card_records(dataset, tmp_path, capsys):
    """A model trained on row bands is measured on its test rows, not on an image split whose test image it trained on."""
    from satvision.training.segmentation_evaluate import evaluate_segmentation

    output = tmp_path / "rows"
    assert satvision_main(["train", "segmentation", "--data", str(dataset), "--output", str(output), *TINY,
                           "--patches-per-epoch", "8", "--split", "rows", "--seed", "4", "--epochs", "1"]) == 0
    model = output / "model.safetensors"
    assert read_card(model).extra["split"] == {"mode": "rows", "seed": 4}
    capsys.readouterr()
    evaluate = ["evaluate", "segmentation", "--data", str(dataset), "--model", str(model), "--device", "cpu", "--json", "--split", "test"]
    assert satvision_main(evaluate) == 0
    assert [item["rows"] for item in json.loads(capsys.readouterr().out)["per_image"]] == [[163, 192]] * 3  # each image's test band
    assert satvision_main([*evaluate, "--split-mode", "image"]) == 0
    whole = json.loads(capsys.readouterr().out)["per_image"]
    assert len(whole) == 1 and whole[0]["rows"] == [0, SIZE]
    lines: list[str] = []
    evaluate_segmentation(model, dataset, split="validation", device="cpu", feedback=RecordingFeedback(messages=lines))
    assert any("split training made: 3 image(s) each split into horizontal row bands" in line
               and "seed 4 (split the model card's, seed the model card's)" in line for line in lines)
    # a card from before the split was recorded: by image, seed 0, and the log says these are the defaults
    lines.clear()
    older = tmp_path / "older.safetensors"
    network, card = load_model(model, task="segmentation")
    card.extra.pop("split")
    save_model(older, network.state_dict(), card)
    evaluate_segmentation(older, dataset, split="test", device="cpu", feedback=RecordingFeedback(messages=lines))
    assert any("split by image" in line and "seed 0 (split the default, seed the default)" in line for line in lines)


def test_evaluate_without_model_or_bundled_default_fails_clearly(dataset, tmp_path, monkeypatch, capsys):
    import satvision.models.catalog as catalog

    monkeypatch.setattr(catalog, "BUNDLED_MODELS_DIR", tmp_path / "empty")
    assert satvision_main(["evaluate", "segmentation", "--data", str(dataset), "--json"]) == 2
    error = capsys.readouterr().err
    assert "water-default.safetensors" in error and "satvision train segmentation" in error
    assert error.count("\n") == 1


def test_compare_command_trains_all_three_and_writes_the_table(dataset, tmp_path, capsys):
    output = tmp_path / "compare"
    code = satvision_main(["compare", "segmentation", "--data", str(dataset), "--output", str(output), *TINY,
                           "--epochs", "1", "--patches-per-epoch", "4", "--max-validation-tiles", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| Model | Accuracy | IoU | Dice | CE |" in printed
    for title in ("| UNET |", "| Attention UNET |", "| UNET3+ |"):
        assert title in printed
    rows = list(csv.DictReader((output / "comparison.csv").open()))
    assert [row["model"] for row in rows] == ["unet", "attention_unet", "unet3plus"]
    assert all(int(row["parameters"]) > 0 for row in rows)
    assert (output / "comparison.md").read_text().startswith("| Model |")
    for architecture in ("unet", "attention_unet", "unet3plus"):
        assert read_card(output / architecture / "model.safetensors").architecture.id == architecture


def test_encoder_weights_come_from_a_local_file_and_adapt_the_band_count(tmp_path):
    """Pretrained encoders load from a local state dict (3-band RGB) into a 4-band network."""
    import segmentation_models_pytorch as smp
    import torch as _torch

    from satvision.core.errors import SatVisionError
    from satvision.training.segmentation import _load_pretrained_encoder
    from satvision.training.segmentation_settings import SegmentationTrainingSettings

    rgb = smp.encoders.get_encoder("resnet18", in_channels=3, depth=3, weights=None)
    _torch.save(rgb.state_dict(), tmp_path / "rgb.pth")
    settings = SegmentationTrainingSettings(data=tmp_path, output=tmp_path / "o", encoder="resnet18", encoder_depth=3,
                                            encoder_weights=str(tmp_path / "rgb.pth"))
    network = smp.Unet("resnet18", encoder_depth=3, decoder_channels=(32, 16, 8), in_channels=4, classes=2, encoder_weights=None)
    _load_pretrained_encoder(network, settings)
    _torch.testing.assert_close(network.encoder.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)
    _torch.testing.assert_close(network.encoder.conv1.weight[:, 3], rgb.conv1.weight[:, 0] * 0.75)
    settings = SegmentationTrainingSettings(data=tmp_path, output=tmp_path / "o", encoder_weights="imagenet")
    with pytest.raises(SatVisionError, match="never\\s+downloads"):
        _load_pretrained_encoder(network, settings)


# --------------------------------------------------------------------------- sampling rare scenes


def test_split_by_rows_trains_on_every_image(dataset):
    pairs = find_pairs(dataset)
    by_image = split_pairs(pairs, seed=0)
    by_rows = split_pairs(pairs, seed=0, mode="rows")
    assert len(by_image.train) == 1 and by_image.by_image  # three images: one each for train, validation, test
    assert sorted(region.pair.name for region in by_rows.train) == ["scene0", "scene1", "scene2"]
    assert not by_rows.by_image
    for part in (by_rows.train, by_rows.validation, by_rows.test):
        assert {region.pair for region in part} == set(pairs)
    with pytest.raises(SatVisionError, match="Unknown split 'pixels'"):
        split_pairs(pairs, mode="pixels")


def test_scene_weighting_gives_a_small_image_as_many_patches_as_a_large_one(tmp_path, source):
    write_pair(tmp_path, "large.tif", 0, size=320)
    write_pair(tmp_path, "small.tif", 1, size=64)
    regions = split_pairs(find_pairs(tmp_path), mode="rows").train
    count = 200

    def share_of_small(weighting: str) -> float:
        patches = TrainPatches(source, regions, PatchSettings(64, 0.0, 1.0, weighting=weighting), length=count, seed=2)
        picks = 0
        for index in range(count):
            sample, _ = patches.sample(index)
            # the small image's patches are padded with ignore beyond its 45 training rows
            picks += int((sample.label == IGNORE_INDEX).mean() > 0.25)
        return picks / count

    by_area, by_scene = share_of_small("area"), share_of_small("scene")
    assert by_area < 0.15  # 64 × 45 of 64 × 45 + 320 × 224 training pixels: about 4 %
    assert 0.35 < by_scene < 0.65
    with pytest.raises(SatVisionError, match="Unknown patch weighting"):
        PatchSettings(64, weighting="pixels")


def test_scene_weighting_draws_every_candidate_from_one_image(tmp_path, source):
    """A land-only image must still supply patches: its candidates are not swapped for a watery image."""
    write_pair(tmp_path, "water.tif", 0, size=128)
    write_pair(tmp_path, "land.tif", 1, size=128)
    with rasterio.open(tmp_path / "labels" / "land.tif", "r+") as labels:
        labels.write(np.zeros((1, 128, 128), np.uint8))
    regions = split_pairs(find_pairs(tmp_path), mode="rows").train
    patches = TrainPatches(source, regions, PatchSettings(32, 0.3, 0.7, max_tries=20, weighting="scene"), length=60, seed=0)
    fractions = [patches.sample(index)[1] for index in range(60)]
    assert 15 < sum(fraction == 0.0 for fraction in fractions) < 45
