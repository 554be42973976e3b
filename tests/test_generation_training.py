"""Fine-tuning the generation model: captioned GeoTIFFs with metadata from the files, min-SNR,
metadata dropout, EMA, gradient accumulation; the result is a model file the plugin loads."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin
from test_generation import generation_model, released  # noqa: F401 - session fixtures

from satvision.core.errors import SatVisionError
from satvision.core.raster import Grid, write_geotiff
from satvision.inference.generate_engine import GenerationSettings
from satvision.inference.generate_job import MapPoint, generate_imagery
from satvision.models.diffusionsat_metadata import Metadata, normalise_values
from satvision.models.modelfile import load_model
from satvision.training.diffusion import DiffusionTrainingConfig, drop_metadata, loss_weights, train_generation
from satvision.training.diffusion_data import CaptionedImages, find_images


def captioned_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index, (x, date) in enumerate([(420000.0, "2019-07-04"), (500000.0, "2021-01-15"), (600000.0, None)]):
        grid = Grid(CRS.from_epsg(32618), from_origin(x, 4120000.0, 0.5, 0.5), 24, 20)
        tags = {"date": date, "cloud_cover": "12"} if date else {}
        with write_geotiff(folder / f"scene{index}.tif", grid, 3, "uint8", band_names=["red", "green", "blue"], tags=tags) as writer:
            writer.write(rng.integers(0, 255, (3, 20, 24), dtype=np.uint8))
    (folder / "scene0.txt").write_text("a satellite image of a harbour")
    with (folder / "captions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "caption"])
        writer.writerows([["scene1.tif", "a satellite image of farmland"], ["scene2.tif", "a satellite image of a forest"]])
    return folder


def test_metadata_and_captions_come_from_the_files(tmp_path):
    items = find_images(captioned_folder(tmp_path / "data"))
    assert [item.caption for item in items] == ["a satellite image of a harbour", "a satellite image of farmland",
                                                "a satellite image of a forest"]
    first = items[0].metadata
    assert first.gsd == pytest.approx(0.5) and first.date == dt.date(2019, 7, 4) and first.cloud_cover == pytest.approx(0.12)
    assert first.lon == pytest.approx(-75.91, abs=0.01) and first.lat == pytest.approx(37.23, abs=0.01)
    assert items[2].metadata.date is None and items[2].metadata.cloud_cover is None
    sample = CaptionedImages(items, 16)[2]
    assert sample["pixels"].shape == (3, 16, 16) and -1 <= sample["pixels"].min() and sample["pixels"].max() <= 1
    expected = normalise_values([items[2].metadata.lon, items[2].metadata.lat, 0.5, None, None, None, None])
    assert sample["metadata"].tolist() == pytest.approx(expected, rel=1e-5)
    upsampled = CaptionedImages(items, 32)[0]  # 20 px high → upsampled by 1.6: pixels of 0.3125 m
    assert upsampled["metadata"][2].item() == pytest.approx(312.5, rel=1e-5)


def test_a_missing_caption_is_named(tmp_path):
    folder = captioned_folder(tmp_path / "data")
    (folder / "scene0.txt").unlink()
    with pytest.raises(SatVisionError, match="scene0.tif has no caption"):
        find_images(folder)


def test_min_snr_weights_and_metadata_dropout():
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    timesteps = torch.tensor([0, 500, 999])
    snr = scheduler.alphas_cumprod[timesteps] / (1 - scheduler.alphas_cumprod[timesteps])
    v = loss_weights(scheduler, timesteps, "v_prediction", 5.0)
    assert torch.allclose(v, torch.minimum(snr, torch.tensor(5.0)) / (snr + 1), rtol=1e-4)
    assert loss_weights(scheduler, timesteps, "epsilon", 5.0)[0] < 1 and loss_weights(scheduler, timesteps, "epsilon", 5.0)[-1] == 1
    metadata = torch.ones(4000, 7)
    dropped = drop_metadata(metadata, 0.1, torch.Generator().manual_seed(0))
    assert 0.08 < (dropped == 0).float().mean().item() < 0.12


def test_fine_tuning_writes_a_model_that_generates(generation_model, tmp_path):  # noqa: F811
    data = captioned_folder(tmp_path / "data")
    config = DiffusionTrainingConfig(steps=4, batch_size=2, gradient_accumulation=2, lr=1e-3, ema_decay=0.9,
                                     checkpoint_every=2, image_size=16)
    final = train_generation(data, generation_model, tmp_path / "run", config, show_progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4] and all(np.isfinite(float(row["loss"])) for row in rows)
    assert (tmp_path / "run" / "loss.png").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step-2.safetensors").is_file()
    tuned, card = load_model(final, task="generation")
    original, _ = load_model(generation_model, task="generation")
    assert card.metrics["steps"] == 4 and card.extra["fine_tuning"]["gradient_accumulation"] == 2
    changed = [name for name, value in tuned.unet.state_dict().items()
               if not torch.allclose(value.float(), original.unet.state_dict()[name].float())]
    assert any("metadata_embedding" in name for name in changed)  # the embedders are trained too
    assert torch.equal(tuned.vae.state_dict()["decoder.conv_out.weight"].float(),
                       original.vae.state_dict()["decoder.conv_out.weight"].float())  # the VAE is frozen
    result = generate_imagery(MapPoint(-75.9, 37.25), GenerationSettings("a satellite image of farmland", steps=2,
                              metadata=Metadata(gsd=0.5, date=dt.date(2020, 1, 1))), tmp_path / "tuned.tif",
                              model=str(final), device="cpu")
    with rasterio.open(result.paths[0]) as dataset:
        assert dataset.tags()["model"] == card.name
