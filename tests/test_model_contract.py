"""The model-file contract: safetensors + card round trip, and every way a model file is refused."""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch

from satvision.core.errors import BandMismatchError, ModelCardError, ModelFileError, TaskMismatchError
from satvision.core.raster import open_raster, select_bands
from satvision.models.architectures import build_network
from satvision.models.card import ModelCard, load_card_json
from satvision.models.modelfile import convert_checkpoint, load_model, read_card, save_model
from satvision.models.safe_checkpoints import read_checkpoint_tensors


def test_card_and_weights_round_trip(saved_model, make_card):
    card = read_card(saved_model)
    assert card == make_card()
    network, loaded_card = load_model(saved_model, task="segmentation")
    assert loaded_card == card and not network.training
    reference = build_network(card)
    from safetensors.torch import load_file

    reference.load_state_dict(load_file(str(saved_model)))
    reference.eval()
    batch = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(network(batch), reference(batch), rtol=0, atol=0)
    assert network(batch).shape == (2, 2, 64, 64)


def test_card_json_round_trip_keeps_every_field(make_card):
    card = make_card(description="test", extra={"note": [1, 2]}, created="2026-11-23")
    assert load_card_json(card.to_json()) == card
    assert set(json.loads(card.to_json())) == {field.name for field in dataclasses.fields(ModelCard)}


def _card_dict(make_card) -> dict:
    return make_card().to_dict()


def test_missing_fields_are_named(make_card):
    data = _card_dict(make_card)
    del data["bands"], data["license"]
    with pytest.raises(ModelCardError, match="missing field\\(s\\): bands, license"):
        ModelCard.from_dict(data)


def test_unknown_fields_are_named_even_when_nested(make_card):
    data = _card_dict(make_card)
    data["tile_size"] = 256
    with pytest.raises(ModelCardError, match="unknown field\\(s\\): tile_size"):
        ModelCard.from_dict(data)
    data = _card_dict(make_card)
    data["normalisation"]["means"] = [0, 0, 0, 0]
    with pytest.raises(ModelCardError, match="normalisation.*unknown field\\(s\\): means"):
        ModelCard.from_dict(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "detection"}, "task must be one of"),
        ({"gsd_m": 0}, "gsd_m must be a positive"),
        ({"bands": []}, "bands must be a non-empty list"),
        ({"tiling": {"tile_size": 256, "overlap": 128}}, "overlap must be"),
        ({"classes": [{"index": 0, "name": "water", "colour": "blue"}, {"index": 1, "name": "x", "colour": "#000000"}]}, "colour must look like"),
        ({"classes": [{"index": 0, "name": "water", "colour": "#0000ff"}]}, "at least two classes"),
        ({"processing_levels": ["L3"]}, "processing_levels"),
        ({"architecture": {"id": "timm", "params": {"model_name": "resnet10t", "input_size": 64, "test_zoom": 0.5}}},
         "test_zoom must be a number from 1"),
    ],
)
def test_invalid_values_are_explained(make_card, change, message):
    data = _card_dict(make_card)
    data.update(change)
    with pytest.raises(ModelCardError, match=message):
        ModelCard.from_dict(data)


def test_normalisation_must_match_the_band_count(make_card):
    data = _card_dict(make_card)
    data["normalisation"]["mean"] = [0.1, 0.1, 0.1]
    with pytest.raises(ModelCardError, match="normalisation.mean must list one number per band \\(4\\)"):
        ModelCard.from_dict(data)


def test_a_card_from_a_newer_format_asks_for_an_update(make_card):
    data = _card_dict(make_card)
    data["format_version"] = 99
    with pytest.raises(ModelCardError, match="Update SatVision"):
        ModelCard.from_dict(data)


def test_unknown_architecture_lists_the_known_ones(tmp_path, make_card):
    card = make_card(architecture={"id": "unet9000", "params": {}})
    path = save_model(tmp_path / "odd.safetensors", {"x": torch.zeros(1)}, card)
    with pytest.raises(ModelCardError, match="unet9000.*known: .*unet"):
        load_model(path)


def test_task_mismatch_names_both_tasks(saved_model):
    with pytest.raises(TaskMismatchError, match="is a segmentation model.*needs a classification model"):
        load_model(saved_model, task="classification")


def test_band_mismatch_with_the_input_raster(saved_model, scene, tmp_path):
    card = read_card(saved_model)
    from satvision.core.raster import Grid, write_geotiff

    three_bands = tmp_path / "rgb.tif"
    with open_raster(scene) as source:
        grid = Grid(source.crs, source.transform, 300, 300)
        with write_geotiff(three_bands, grid, 3, "uint16", band_names=["B4", "B3", "B2"]) as writer:
            writer.write(source.read([3, 2, 1], window=((0, 300), (0, 300))))
    with open_raster(scene) as dataset:
        assert select_bands(dataset, card.bands) == [1, 2, 3, 4]
    with open_raster(three_bands) as dataset, pytest.raises(BandMismatchError, match="lacks band\\(s\\) B8"):
        select_bands(dataset, card.bands)


def test_weights_that_do_not_match_the_architecture_are_refused(tmp_path, make_card):
    four_band = make_card()
    weights = build_network(four_band).state_dict()
    three_band_card = make_card(
        bands=["B2", "B3", "B4"],
        normalisation={"reflectance_scale": 10000.0, "mean": [0.1] * 3, "std": [0.1] * 3},
    )
    path = save_model(tmp_path / "mismatch.safetensors", weights, three_band_card)
    with pytest.raises(ModelFileError, match="do not match the architecture.*wrong shape: encoder.conv1.weight \\(64, 4, 7, 7\\)"):
        load_model(path)
    del weights["segmentation_head.0.bias"]
    weights["extra.weight"] = torch.zeros(3)
    path = save_model(tmp_path / "renamed.safetensors", weights, four_band)
    with pytest.raises(ModelFileError, match="1 missing: segmentation_head.0.bias; 1 unexpected: extra.weight"):
        load_model(path)


@pytest.mark.parametrize("keep", [0.5, 0.999, 12])
def test_truncated_files_are_reported_as_damaged(saved_model, keep):
    size = saved_model.stat().st_size
    content = saved_model.read_bytes()
    saved_model.write_bytes(content[: int(size * keep) if keep < 1 else keep])
    with pytest.raises(ModelFileError, match="damaged or truncated"):
        load_model(saved_model)


def test_a_safetensors_file_without_card_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(ModelCardError, match="without a SatVision model card"):
        read_card(path)


def test_missing_and_pickled_model_files_get_their_own_message(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "absent.safetensors")
    with pytest.raises(ModelFileError, match="pickled PyTorch checkpoint.*satvision models convert"):
        load_model(tmp_path / "model.pt")


def test_saving_needs_the_safetensors_suffix(tmp_path, make_card):
    with pytest.raises(ModelFileError, match="end in .safetensors"):
        save_model(tmp_path / "model.bin", {}, make_card())
    assert list(tmp_path.iterdir()) == []


class _RunsCode:
    """Pickles into a call of os.system: what a malicious checkpoint carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_carries_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "code-ran"
    checkpoint = tmp_path / "malicious.pt"
    torch.save({"weight": torch.zeros(2), "payload": _RunsCode(marker)}, checkpoint)
    with zipfile.ZipFile(checkpoint) as archive:
        pickled = archive.read(next(name for name in archive.namelist() if name.endswith("data.pkl")))
    assert b"system" in pickled  # the file really holds a call of os.system

    with pytest.raises(ModelFileError, match="Refused to load malicious.pt: its pickle holds more than tensors"):
        read_checkpoint_tensors(checkpoint)
    assert not marker.exists()


def test_plain_checkpoints_convert_and_load(tmp_path, make_card):
    card = make_card()
    network = build_network(card)
    checkpoint = tmp_path / "lightning.ckpt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in network.state_dict().items()}}, checkpoint)
    output = convert_checkpoint(checkpoint, card, tmp_path / "converted.safetensors")
    loaded, _ = load_model(output, task="segmentation")
    for name, tensor in network.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)


def test_a_damaged_checkpoint_is_reported(tmp_path):
    checkpoint = tmp_path / "cut.pt"
    torch.save({"weight": torch.zeros(1000)}, checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])
    with pytest.raises(ModelFileError, match="not a readable PyTorch checkpoint"):
        read_checkpoint_tensors(checkpoint)
