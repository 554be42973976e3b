"""Tile classifiers: the ViT from scratch (seed preset, poolings), timm backbones with any band
count, local pretrained weights adapted by timm, and the model-file round trip."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import tiny_classifier_card

from satvision.core.errors import SatVisionError
from satvision.models.architectures import build_network
from satvision.models.card import Architecture
from satvision.models.classification import timm_encoder
from satvision.models.modelfile import load_model, save_model
from satvision.models.vit import (
    SEED_KERAS_TRAINABLE,
    SEED_POSITION_EMBEDDING,
    SEED_PRESET,
    VisionTransformer,
    ViTConfig,
    vit_head,
)


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_seed_preset_matches_the_seed_keras_summary():
    """The origin notebook's ViT with its one-unit output: Keras listed 57,455,149 trainable parameters
    and no weights for the positional Embedding (256 × 100); ours counts those too."""
    encoder = VisionTransformer(3, SEED_PRESET)
    head = vit_head(SEED_PRESET, encoder.num_features, 1)
    assert parameters(encoder) + parameters(head) == SEED_KERAS_TRAINABLE + SEED_POSITION_EMBEDDING
    # layer by layer as in the summary: attention 322,500 (8 heads × key_dim 100), MLP 20,200 + 20,100
    block = encoder.blocks[0]
    assert parameters(block.attention) == 322_500
    assert parameters(block.mlp) == 20_200 + 20_100
    assert encoder.num_features == 256 * 100  # flatten of 256 patch tokens
    assert encoder.class_token is None


def test_seed_preset_parameter_summary_states_the_check():
    from satvision.models.vit import parameter_summary

    card = tiny_classifier_card(architecture={"id": "vit", "params": SEED_PRESET.params()}, bands=["B4", "B3", "B2"],
                                normalisation={"reflectance_scale": 10000.0, "mean": [0.5] * 3, "std": [0.2] * 3})
    text = parameter_summary(build_network(card), len(card.classes))
    assert "57,480,749 = the origin notebook's Keras summary (57,455,149 trainable) + the 25,600" in text


@pytest.mark.parametrize("pooling", ["cls", "mean", "flatten"])
def test_vit_poolings_give_class_logits(pooling):
    config = ViTConfig(image_size=32, patch_size=8, dim=24, depth=2, heads=4, pooling=pooling)
    card = tiny_classifier_card(architecture={"id": "vit", "params": config.params()})
    network = build_network(card).eval()
    logits = network(torch.rand(3, 4, 32, 32))
    assert logits.shape == (3, 4)
    tokens = 16 + (1 if pooling == "cls" else 0)
    assert network.encoder.position_embedding.shape == (1, tokens, 24)


def test_classifier_resizes_tiles_of_another_size():
    network = build_network(tiny_classifier_card()).eval()  # input 16 px
    with torch.no_grad():
        assert network(torch.rand(2, 4, 64, 64)).shape == (2, 4)
        assert network(torch.rand(2, 4, 8, 8)).shape == (2, 4)


def test_invalid_vit_configuration_is_a_clear_card_error():
    params = {**tiny_classifier_card().architecture.params, "image_size": 18}
    with pytest.raises(Exception, match="multiple of patch_size"):
        build_network(tiny_classifier_card(architecture={"id": "vit", "params": params}))


def timm_card(name: str = "resnet18", bands: int = 4, size: int = 32):
    names = ["B2", "B3", "B4", "B8", "B11", "B12"][:bands]
    card = tiny_classifier_card(
        architecture={"id": "timm", "params": {"model_name": name, "input_size": size, "drop_rate": 0.0, "model_kwargs": {}}},
        bands=names,
        normalisation={"reflectance_scale": 10000.0, "mean": [0.1] * bands, "std": [0.05] * bands},
    )
    return card


@pytest.mark.parametrize("bands", [3, 6])
def test_timm_backbone_takes_any_band_count(bands):
    network = build_network(timm_card("resnet18", bands)).eval()
    assert network.encoder.conv1.in_channels == bands
    with torch.no_grad():
        assert network(torch.rand(2, bands, 32, 32)).shape == (2, 4)


def test_timm_vit_tiny_is_built_for_the_tile_size():
    card = timm_card("vit_tiny_patch16_224")
    params = {**card.architecture.params, "model_kwargs": {"img_size": 32}}
    card = dataclasses.replace(card, architecture=Architecture("timm", params))
    network = build_network(card).eval()
    assert network.encoder.patch_embed.num_patches == 4
    with torch.no_grad():
        assert network(torch.rand(1, 4, 32, 32)).shape == (1, 4)


def test_local_pretrained_weights_are_adapted_to_the_bands(tmp_path):
    """An RGB state dict saved with torch.save loads (weights_only) into a 4-band backbone:
    timm adapts the first convolution; every other layer is copied exactly."""
    import timm

    torch.manual_seed(1)
    rgb = timm.create_model("resnet18", pretrained=False, num_classes=0)
    path = tmp_path / "resnet18-rgb.pth"
    torch.save(rgb.state_dict(), path)
    encoder = timm_encoder("resnet18", 4, weights_file=path)
    assert encoder.conv1.weight.shape[1] == 4
    assert torch.equal(encoder.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)
    assert not torch.equal(encoder.conv1.weight[:, :3], torch.zeros_like(encoder.conv1.weight[:, :3]))


def test_pretrained_weights_never_unpickle_objects(tmp_path):
    import pickle

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"conv1.weight": Exploit()}))
    with pytest.raises(SatVisionError):
        timm_encoder("resnet18", 3, weights_file=path)


def test_missing_weights_file_and_unknown_timm_model_are_clear(tmp_path):
    with pytest.raises(SatVisionError, match="never downloads"):
        timm_encoder("resnet18", 3, weights_file=tmp_path / "nope.safetensors")
    with pytest.raises(SatVisionError, match="timm has no model"):
        timm_encoder("resnet_does_not_exist", 3)


def test_classifier_model_file_round_trip(tmp_path):
    torch.manual_seed(0)
    card = tiny_classifier_card()
    network = build_network(card).eval()
    path = save_model(tmp_path / "classifier.safetensors", network.state_dict(), card)
    umask = __import__("os").umask(0)
    __import__("os").umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # shareable like any file the user writes, not owner-only
    loaded, loaded_card = load_model(path, task="classification")
    x = torch.rand(2, 4, 16, 16)
    with torch.no_grad():
        assert torch.allclose(network(x), loaded(x))
    assert loaded_card.class_names() == card.class_names()
    with pytest.raises(SatVisionError):
        load_model(path, task="segmentation")


def test_compact_model_halves_the_file_and_keeps_predictions(tmp_path, saved_model):
    """float16 storage (how the bundled models fit the plugin zip): same outputs to fp16 precision."""
    from satvision.models.modelfile import compact_model, read_card

    torch.manual_seed(0)
    card = tiny_classifier_card()
    network = build_network(card).eval()
    source = save_model(tmp_path / "full.safetensors", network.state_dict(), card)
    compacted = compact_model(source, tmp_path / "half.safetensors")
    assert compacted.stat().st_size < 0.6 * source.stat().st_size
    assert "float16" in read_card(compacted).extra["weights_storage"]
    loaded, _ = load_model(compacted, task="classification")
    x = torch.rand(4, 4, 16, 16)
    with torch.no_grad():
        assert torch.allclose(torch.softmax(network(x), 1), torch.softmax(loaded(x), 1), atol=2e-3)
    assert next(loaded.parameters()).dtype == torch.float32
    segmentation = compact_model(saved_model, tmp_path / "unet-half.safetensors")  # BN buffers, int counters
    assert load_model(segmentation, task="segmentation")[1].task == "segmentation"


def test_compact_model_refuses_weights_beyond_float16(tmp_path):
    from satvision.models.modelfile import compact_model

    card = tiny_classifier_card()
    state = build_network(card).state_dict()
    state["head.0.weight"] = state["head.0.weight"] * 0 + 1e6
    source = save_model(tmp_path / "big.safetensors", state, card)
    with pytest.raises(SatVisionError, match="float16"):
        compact_model(source, tmp_path / "half.safetensors")
