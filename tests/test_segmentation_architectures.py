"""The segmentation architectures (unet, attention_unet, unet3plus): built from cards, shapes,
that they learn, their special parts (attention gates, deep supervision, CGM gate), model files."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from satvision.models.architectures import architectures, build_network
from satvision.models.attention_unet import AttentionGate, AttentionUnet
from satvision.models.modelfile import load_model, save_model
from satvision.models.unet3plus import UNet3Plus

SMALL = {
    "unet": {"encoder_name": "resnet18", "encoder_depth": 4, "decoder_channels": [64, 32, 16, 8]},
    "attention_unet": {"encoder_name": "resnet18", "encoder_depth": 4, "decoder_channels": [64, 32, 16, 8]},
    "unet3plus": {"encoder_name": "resnet18", "encoder_depth": 4, "cat_channels": 16},
}


def small_network(make_card, architecture: str, **params) -> torch.nn.Module:
    card = make_card(architecture={"id": architecture, "params": {**SMALL[architecture], **params}})
    return build_network(card)


def test_new_architectures_are_registered_for_segmentation():
    known = architectures()
    for name in ("unet", "attention_unet", "unet3plus"):
        assert known[name].task == "segmentation"
        assert "segmentation_models_pytorch" in known[name].requires


@pytest.mark.parametrize("architecture", ["unet", "attention_unet", "unet3plus"])
@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_builds_from_card_and_outputs_class_logits_at_input_size(make_card, architecture, size):
    torch.manual_seed(0)
    network = small_network(make_card, architecture).eval()
    with torch.no_grad():
        logits = network(torch.randn(2, 4, *size))
    assert logits.shape == (2, 2, *size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("network_class", [AttentionUnet, UNet3Plus])
def test_works_on_other_smp_encoders(network_class):
    network = network_class("mobilenet_v2", encoder_depth=5, in_channels=4, classes=3).eval()
    with torch.no_grad():
        assert network(torch.randn(1, 4, 64, 96)).shape == (1, 3, 64, 96)


def test_only_unet3plus_has_training_outputs(make_card):
    assert not hasattr(small_network(make_card, "unet"), "training_outputs")
    assert not hasattr(small_network(make_card, "attention_unet"), "training_outputs")
    assert callable(small_network(make_card, "unet3plus").training_outputs)


def synthetic_batch(generator: torch.Generator, batch: int = 4, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random 4-band images; 'water' where band 4 (NIR) is low, as for real water."""
    coarse = torch.randn(batch, 4, size // 8, size // 8, generator=generator)
    images = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    images = images + 0.1 * torch.randn(images.shape, generator=generator)
    return images, (images[:, 3] < 0).long()


def training_loss(network: torch.nn.Module, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Total loss to optimise, and the main segmentation loss to watch."""
    if not hasattr(network, "training_outputs"):
        loss = F.cross_entropy(network(images), mask)
        return loss, loss.item()
    outputs = network.training_outputs(images)
    main = F.cross_entropy(outputs["logits"], mask)
    loss = main + sum(F.cross_entropy(aux, mask) for aux in outputs["aux"]) / max(len(outputs["aux"]), 1)
    if outputs["has_foreground"] is not None:
        loss = loss + F.cross_entropy(outputs["has_foreground"], mask.flatten(1).amax(dim=1))
    return loss, main.item()


@pytest.mark.parametrize("architecture", ["unet", "attention_unet", "unet3plus"])
def test_learns_a_tiny_synthetic_task(make_card, architecture):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    network = small_network(make_card, architecture).train()
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        images, mask = synthetic_batch(generator)
        loss, main = training_loss(network, images, mask)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(main)
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.6 * first, losses


def test_unet3plus_training_outputs(make_card):
    network = small_network(make_card, "unet3plus").train()
    outputs = network.training_outputs(torch.randn(2, 4, 64, 96))
    assert outputs["logits"].shape == (2, 2, 64, 96)
    assert len(outputs["aux"]) == 4  # deepest encoder level + decoder levels 3, 2, 1
    assert all(aux.shape == (2, 2, 64, 96) for aux in outputs["aux"])
    assert outputs["has_foreground"].shape == (2, 2)

    plain = small_network(make_card, "unet3plus", deep_supervision=False, classification_guided=False).train()
    outputs = plain.training_outputs(torch.randn(2, 4, 64, 64))
    assert outputs["aux"] == [] and outputs["has_foreground"] is None
    assert not any(name.startswith(("aux_heads", "cgm")) for name in plain.state_dict())


def test_unet3plus_deep_supervision_heads_see_their_own_levels(make_card):
    """Each aux output must depend on its level: they differ from each other and from the main logits."""
    torch.manual_seed(0)
    network = small_network(make_card, "unet3plus").eval()
    with torch.no_grad():
        outputs = network.training_outputs(torch.randn(1, 4, 64, 64))
    maps = [outputs["logits"], *outputs["aux"]]
    for i in range(len(maps)):
        for j in range(i + 1, len(maps)):
            assert not torch.allclose(maps[i], maps[j])


def _force_cgm(network: UNet3Plus, has_foreground: bool) -> None:
    conv = network.cgm[1]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.tensor([-10.0, 10.0] if has_foreground else [10.0, -10.0]))


def test_unet3plus_cgm_gate_suppresses_foreground_on_empty_tiles_in_eval_only(make_card):
    torch.manual_seed(0)
    network = small_network(make_card, "unet3plus", gate_penalty=10.0)
    images = torch.randn(2, 4, 64, 64)

    network.eval()
    _force_cgm(network, has_foreground=False)
    with torch.no_grad():
        raw = network.training_outputs(images)["logits"]
        gated = network(images)
    torch.testing.assert_close(gated[:, 0], raw[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(gated[:, 1], raw[:, 1] - 10.0, rtol=0, atol=1e-4)
    assert (gated.argmax(dim=1) == 0).float().mean() > (raw.argmax(dim=1) == 0).float().mean()

    _force_cgm(network, has_foreground=True)
    with torch.no_grad():
        torch.testing.assert_close(network(images), raw, rtol=0, atol=1e-5)

    _force_cgm(network, has_foreground=False)
    network.train()  # training forward is never gated; the CGM has its own loss
    torch.testing.assert_close(network(images), network.training_outputs(images)["logits"])


def test_attention_gates_give_coefficients_in_0_1_at_the_skip_size(make_card):
    torch.manual_seed(0)
    network = small_network(make_card, "attention_unet").eval()
    gates = [module for module in network.modules() if isinstance(module, AttentionGate)]
    assert len(gates) == 3  # skips at 1/8, 1/4, 1/2; the full-resolution block has none
    coefficients: list[torch.Tensor] = []
    hooks = [gate.psi.register_forward_hook(lambda _m, _i, out: coefficients.append(out)) for gate in gates]
    images = torch.randn(2, 4, 64, 96)
    with torch.no_grad():
        network(images)
        skips = network.encoder(images)[1:-1][::-1]  # deepest skip first, as the decoder uses them
    for hook in hooks:
        hook.remove()
    assert [tuple(psi.shape) for psi in coefficients] == [(2, 1, *skip.shape[-2:]) for skip in skips]
    for psi in coefficients:
        assert psi.min() > 0 and psi.max() < 1
        assert psi.std() > 0  # a real per-pixel gate, not a constant


def test_attention_unet_rejects_mismatched_decoder_channels():
    with pytest.raises(ValueError, match="decoder_channels"):
        AttentionUnet("resnet18", encoder_depth=4, decoder_channels=(32, 16, 8), in_channels=4, classes=2)


@pytest.mark.parametrize("architecture", ["attention_unet", "unet3plus"])
def test_model_file_round_trip(make_card, tmp_path, architecture):
    torch.manual_seed(0)
    card = make_card(architecture={"id": architecture, "params": SMALL[architecture]})
    network = build_network(card)
    # One training step so BatchNorm running statistics differ from their initial values.
    network.train()(torch.randn(4, 4, 64, 64))
    path = save_model(tmp_path / f"{architecture}.safetensors", network.state_dict(), card)
    loaded, loaded_card = load_model(path, task="segmentation")
    assert loaded_card == card and not loaded.training
    assert type(loaded) is type(network)
    network.eval()
    images = torch.randn(2, 4, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), network(images), rtol=0, atol=0)


@pytest.mark.parametrize("architecture", ["unet", "attention_unet", "unet3plus"])
def test_encoder_stages_beyond_the_depth_are_not_stored(make_card, architecture):
    """smp builds all five encoder stages; unused ones must not fill the model file."""
    params = {"encoder_name": "resnet18", "encoder_depth": 3}
    if architecture != "unet3plus":
        params["decoder_channels"] = [32, 16, 8]
    card = make_card(architecture={"id": architecture, "params": params})
    network = build_network(card).eval()
    keys = list(network.state_dict())
    assert not [key for key in keys if key.startswith(("encoder.layer3", "encoder.layer4"))]
    assert any(key.startswith("encoder.layer2") for key in keys)
    with torch.no_grad():
        assert network(torch.randn(1, 4, 64, 64)).shape == (1, 2, 64, 64)
