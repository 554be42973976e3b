"""Synthetic imagery: conversion of a released-layout checkpoint, sampling, georeferenced output,
the algorithm in QGIS and qgis_process. Tiny random-weight components built in code."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import RecordingFeedback
from diffusion_helpers import IMAGE_SIZE, make_released_checkpoint
from qgis.core import QgsProcessingException, QgsProcessingFeedback
from rasterio.warp import transform as transform_points
from test_diffusionsat_model import reference_forward
from tests_helpers import qgis_process_json

from satvision.core.errors import ModelFileError, OperationCancelled, SatVisionError
from satvision.inference.generate_engine import GenerationSettings, Generator
from satvision.inference.generate_job import MapPoint, generate_imagery
from satvision.models.diffusionsat_convert import convert_diffusionsat
from satvision.models.diffusionsat_metadata import Metadata, normalise
from satvision.models.generation import load_tokenizer, scheduler_config
from satvision.models.modelfile import load_model, read_files

POINT = MapPoint(-75.9, 37.25)
METADATA = Metadata(gsd=1.0, cloud_cover=0.1, date=dt.date(2020, 5, 1))


@pytest.fixture(scope="session")
def released(tmp_path_factory) -> Path:
    return make_released_checkpoint(tmp_path_factory.mktemp("diffusionsat-release"))


@pytest.fixture(scope="session")
def generation_model(released, tmp_path_factory) -> Path:
    lines: list[str] = []
    path = convert_diffusionsat(released, tmp_path_factory.mktemp("models") / "tiny-diffusionsat.safetensors",
                                feedback=RecordingFeedback(messages=lines))
    assert "UNet: 236 tensors, 0 missing, 0 unexpected" in lines
    assert any(line.startswith("VAE:") and "0 missing, 0 unexpected" in line for line in lines)
    assert any(line.startswith("text encoder:") and "1 non-persistent buffer(s) skipped" in line for line in lines)
    return path


def loaded_generator(path: Path, **scheduler_changes) -> Generator:
    network, card = load_model(path, task="generation")
    return Generator(network, load_tokenizer(read_files(path)), {**scheduler_config(card), **scheduler_changes}, "cpu")


def settings(**changes) -> GenerationSettings:
    return GenerationSettings(**{"prompt": "a satellite image of a farm", "metadata": METADATA, "steps": 4, "seed": 7, **changes})


def test_the_converted_file_is_one_safetensors_with_card_and_tokenizer(generation_model):
    network, card = load_model(generation_model, task="generation")  # strict: zero missing / unexpected
    assert card.task == "generation" and card.architecture.id == "diffusionsat"
    assert card.architecture.params["scheduler"]["prediction_type"] == "v_prediction"
    assert card.tiling.tile_size == IMAGE_SIZE and card.extra["unet_checkpoint"] == "checkpoint-150000/unet"
    assert {"vocab.json", "merges.txt", "tokenizer_config.json"} <= set(read_files(generation_model))
    from safetensors import safe_open

    with safe_open(str(generation_model), framework="pt") as handle:
        assert handle.get_tensor("unet.class_embedding.metadata_embedding.6.linear_2.bias").dtype == torch.float16
    assert network.num_metadata == 7


def test_the_converted_unet_reproduces_the_original_formulation(released, tmp_path):
    from satvision.models.diffusionsat_convert import read_weights, unet_folder

    path = convert_diffusionsat(released, tmp_path / "fp32.safetensors", half=False)
    network, _ = load_model(path, task="generation")
    released_state = read_weights(unet_folder(released))
    generator = torch.Generator().manual_seed(3)
    sample = torch.randn(2, 4, 8, 8, generator=generator)
    text = torch.randn(2, 16, 32, generator=generator)
    timestep = torch.tensor([981, 21])
    metadata = normalise([METADATA, Metadata(76.57, 28.70, 0.93, 0.08, dt.date(2015, 2, 27))])
    with torch.no_grad():
        ours = network.unet(sample, timestep, encoder_hidden_states=text, class_labels=metadata).sample
        original = reference_forward(network.unet, released_state, sample, timestep, text, metadata)
    assert (ours - original).abs().max().item() < 1e-5


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_and_runs_nothing(released, tmp_path):
    import shutil

    copy = Path(shutil.copytree(released, tmp_path / "release"))
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    with open(copy / "checkpoint-150000" / "unet" / "diffusion_pytorch_model.bin", "wb") as handle:
        pickle.dump({"conv_in.weight": exploit}, handle)
    with pytest.raises(ModelFileError, match="Refused to load diffusion_pytorch_model.bin"):
        convert_diffusionsat(copy, tmp_path / "evil.safetensors")
    assert not marker.exists() and not (tmp_path / "evil.safetensors").exists()


def test_an_incomplete_folder_names_what_is_missing(tmp_path):
    with pytest.raises(ModelFileError, match="not a DiffusionSat checkpoint folder.*Zenodo record 13751498"):
        convert_diffusionsat(tmp_path, tmp_path / "x.safetensors")


def test_same_seed_same_images_and_both_schedulers(generation_model):
    generator = loaded_generator(generation_model)
    first = generator.generate(settings(num_images=2))
    again = generator.generate(settings(num_images=2))
    other = generator.generate(settings(num_images=2, seed=8))
    assert first.shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert not np.array_equal(first[0], first[1])  # each image of a batch has its own noise
    dpm = generator.generate(settings(scheduler="dpm"))
    assert dpm.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3) and not np.array_equal(dpm[0], first[0])
    changed = generator.generate(settings(metadata=Metadata(gsd=3.0, cloud_cover=0.9, date=dt.date(2005, 1, 1))))
    assert not np.array_equal(changed[0], first[0])  # metadata conditions the image
    epsilon = loaded_generator(generation_model, prediction_type="epsilon").generate(settings())
    assert epsilon.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)


def test_the_geotiff_is_centred_on_the_point_with_gsd_pixels_and_marked_synthetic(generation_model, tmp_path):
    output = tmp_path / "synthetic.tif"
    result = generate_imagery(POINT, settings(num_images=2, metadata=Metadata(gsd=2.5, cloud_cover=0.0, date=dt.date(2020, 5, 1))),
                              output, model=str(generation_model), device="cpu", footprint_path=tmp_path / "footprint.gpkg",
                              sweep_field="gsd", sweep_path=tmp_path / "sweep.png")
    assert result.paths == [output, tmp_path / "synthetic_2.tif"]
    (x,), (y,) = transform_points("EPSG:4326", "EPSG:32618", [POINT.x], [POINT.y])
    for path in result.paths:
        with rasterio.open(path) as dataset:
            assert dataset.crs.to_epsg() == 32618 and dataset.res == (2.5, 2.5)
            assert (dataset.width, dataset.height) == (IMAGE_SIZE, IMAGE_SIZE) and dataset.count == 3
            centre_x, centre_y = dataset.transform * (IMAGE_SIZE / 2, IMAGE_SIZE / 2)
            assert centre_x == pytest.approx(x, abs=1e-6) and centre_y == pytest.approx(y, abs=1e-6)
            tags = dataset.tags()
            assert tags["SYNTHETIC"] == "yes" and "SYNTHETIC IMAGE" in tags["DESCRIPTION"]
            assert tags["prompt"] == "a satellite image of a farm" and tags["seed"] == "7" and tags["date"] == "2020-05-01"
            assert float(tags["latitude"]) == pytest.approx(POINT.y) and tags["gsd_m"] == "2.5"
    from osgeo import ogr

    footprints = ogr.Open(str(tmp_path / "footprint.gpkg"))
    assert footprints.GetLayer(0).GetFeatureCount() == 2
    from PIL import Image

    assert Image.open(tmp_path / "sweep.png").size[0] > 5 * 128


def test_out_of_distribution_requests_are_warned(generation_model, tmp_path):
    warnings: list[str] = []
    generate_imagery(POINT, settings(metadata=Metadata(gsd=10.0, cloud_cover=0.0, date=dt.date(2030, 1, 1))),
                     tmp_path / "ood.tif", model=str(generation_model), device="cpu",
                     feedback=RecordingFeedback(warnings=warnings))
    assert any("GSD 10 m is outside the model's training range" in message for message in warnings)
    assert any("2030-01-01 is outside the training dates" in message for message in warnings)


def test_cancellation_writes_nothing_and_a_missing_model_says_where_to_get_one(generation_model, tmp_path, monkeypatch):
    with pytest.raises(OperationCancelled):
        generate_imagery(POINT, settings(), tmp_path / "cancelled.tif", model=str(generation_model), device="cpu",
                         footprint_path=tmp_path / "f.gpkg", feedback=RecordingFeedback(cancel_when=lambda: True))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("SATVISION_MODELS_DIR", str(tmp_path))
    with pytest.raises(SatVisionError, match=r"No generation model is configured.*Zenodo record 13751498.*convert-diffusionsat"):
        generate_imagery(POINT, settings(), tmp_path / "none.tif")


PARAMETERS = {
    "POINT": "-75.9,37.25 [EPSG:4326]", "PROMPT": "a satellite image of a farm", "DATE": "2020-05-01",
    "GSD": 1.0, "CLOUD_COVER": 10, "STEPS": 3, "SEED": 5,
}


def test_generateimagery_in_qgis(plugin, generation_model, tmp_path):
    import processing

    feedback = QgsProcessingFeedback()
    result = processing.run("satvision:generateimagery", {
        **PARAMETERS, "MODEL": str(generation_model), "NUM_IMAGES": 2, "SWEEP": 1,
        "OUTPUT_SWEEP": str(tmp_path / "sweep.png"), "OUTPUT": str(tmp_path / "qgis.tif"),
        "OUTPUT_FOOTPRINT": str(tmp_path / "footprint.gpkg"),
    }, feedback=feedback)
    assert json.loads(result["IMAGES"]) == [str(tmp_path / "qgis.tif"), str(tmp_path / "qgis_2.tif")]
    assert Path(result["OUTPUT_SWEEP"]).is_file() and Path(result["OUTPUT_FOOTPRINT"]).is_file()
    with rasterio.open(tmp_path / "qgis.tif") as dataset:
        assert dataset.tags()["SYNTHETIC"] == "yes" and dataset.crs.to_epsg() == 32618
    with pytest.raises(QgsProcessingException, match="No generation model is configured"):
        os.environ["SATVISION_MODELS_DIR"] = str(tmp_path / "empty")
        try:
            processing.run("satvision:generateimagery", {**PARAMETERS, "OUTPUT": str(tmp_path / "no-model.tif")})
        finally:
            del os.environ["SATVISION_MODELS_DIR"]


def test_generateimagery_through_qgis_process(qgis_process, generation_model, tmp_path):
    output = tmp_path / "server.tif"
    arguments = [f"{key}={value}" for key, value in PARAMETERS.items()]
    answer = qgis_process_json(qgis_process(
        "run", "satvision:generateimagery", "--json", "--", *arguments, f"MODEL={generation_model}", f"OUTPUT={output}"))
    assert json.loads(answer["results"]["IMAGES"]) == [str(output)]
    with rasterio.open(output) as dataset:
        assert dataset.res == (1.0, 1.0) and dataset.tags()["model"] == "diffusionsat-diffusionsat-release0"


def test_a_vae_with_legacy_attention_names_converts(released, tmp_path):
    """VAEs saved by diffusers before 0.15 name attention query/key/value/proj_attn (1x1 convs)."""
    import shutil

    from safetensors.torch import load_file, save_file

    copy = Path(shutil.copytree(released, tmp_path / "release"))
    weights_file = copy / "vae" / "diffusion_pytorch_model.safetensors"
    modern = load_file(str(weights_file))
    legacy = {}
    for key, value in modern.items():
        for new, old in ((".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")):
            if new in key:
                key = key.replace(new, old)
                value = value[:, :, None, None] if value.ndim == 2 else value
                break
        legacy[key] = value.contiguous()
    assert any(".query." in key for key in legacy)
    save_file(legacy, str(weights_file))
    path = convert_diffusionsat(copy, tmp_path / "legacy.safetensors", half=False)
    network, _ = load_model(path, task="generation")
    for key, value in modern.items():
        assert torch.equal(network.vae.state_dict()[key], value)
