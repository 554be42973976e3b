"""DiffusionSat's metadata conditioning: normalisation against the reference table, and the UNet
with our embedding against the original formulation (each field's embedding added in turn)."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusion_helpers import TINY_SATUNET

from satvision.models.diffusionsat import build_unet, from_released_keys, to_released_keys, unet_config
from satvision.models.diffusionsat_metadata import Metadata, MetadataEmbedding, normalise, normalise_values, timestep_sinusoid

#: raw [lon, lat, gsd, cloud fraction, year, month, day] → normalised, from the notes on DiffusionSat
REFERENCE = [
    ([76.5712666476, 28.6965307997, 0.929417550564, 0.0765712666476, 2015, 2, 27],
     [712.6980, 659.4252, 929.4176, 76.5713, 291.6667, 166.6667, 870.9677]),
    ([0, 0, 1.0, 0.0, 2020, 1, 1], [500, 500, 1000, 0, 333.3333, 83.3333, 32.2581]),
    ([-122.4194, 37.7749, 0.3, 0.1, 2018, 6, 15], [159.9461, 709.8606, 300, 100, 316.6667, 500, 483.8710]),
    ([180, 90, 0.5, 1.0, 2100, 12, 31], [1000, 1000, 500, 1000, 1000, 1000, 1000]),
]


@pytest.mark.parametrize(("raw", "expected"), REFERENCE)
def test_normalisation_matches_the_reference_table(raw, expected):
    assert normalise_values(raw) == pytest.approx(expected, abs=1e-4)
    lon, lat, gsd, cloud, year, month, day = raw
    tensor = normalise([Metadata(lon, lat, gsd, cloud, dt.date(year, month, day))])
    assert tensor.dtype == torch.float32
    assert tensor[0].tolist() == pytest.approx(expected, abs=1e-3)


def test_unknown_fields_are_zero_and_metadata_stays_float32():
    assert normalise_values([None, 0.0, None, None, None, None, None]) == [0, 500.0, 0, 0, 0, 0, 0]
    value = normalise([Metadata(lon=76.5712666476)])[0, 0].item()
    assert value == pytest.approx(712.698, abs=1e-3)  # fp16 would give 712.5
    assert torch.tensor(712.698).half().item() == 712.5


def test_the_sinusoid_is_the_timestep_projection_of_diffusers():
    values = normalise([Metadata(*raw[:4], dt.date(*raw[4:])) for raw, _ in REFERENCE]).flatten()
    expected = Timesteps(320, flip_sin_to_cos=True, downscale_freq_shift=0)(values)
    assert torch.allclose(timestep_sinusoid(values, 320), expected, atol=1e-6)


def reference_forward(unet, released_state, sample, timestep, text, metadata):
    """The original formulation: each field through diffusers' Timesteps + its TimestepEmbedding,
    added one at a time to the timestep embedding; built only from the released key names."""
    channels = unet.config.block_out_channels[0]
    embed_dim = unet.time_embedding.linear_2.out_features
    # SatUNet projects the metadata with its own time_proj: the config's flip_sin_to_cos and freq_shift
    projection = Timesteps(channels, flip_sin_to_cos=unet.config.flip_sin_to_cos, downscale_freq_shift=unet.config.freq_shift)
    embedders = []
    for index in range(7):
        embedder = TimestepEmbedding(channels, embed_dim)
        prefix = f"metadata_embedding.{index}."
        embedder.load_state_dict({key[len(prefix):]: value for key, value in released_state.items() if key.startswith(prefix)})
        embedders.append(embedder)
    reference = copy.deepcopy(unet)
    reference.class_embedding = None
    time_embedding = reference.time_embedding

    class SequentialMetadata(torch.nn.Module):
        def forward(self, projected, condition=None):
            embedding = time_embedding(projected, condition)
            for index, embedder in enumerate(embedders):
                embedding = embedding + embedder(projection(metadata[:, index]))
            return embedding

    reference.time_embedding = SequentialMetadata()
    return reference(sample, timestep, encoder_hidden_states=text).sample


def test_a_released_state_dict_loads_exactly_and_matches_the_original_formulation():
    config, fields = unet_config(TINY_SATUNET)
    assert fields == 7 and "use_metadata" not in config and "_class_name" not in config
    torch.manual_seed(0)
    released = to_released_keys(build_unet(config, fields).state_dict())  # as a SatUNet checkpoint names them
    assert sum(key.startswith("metadata_embedding.") for key in released) == 28
    unet = build_unet(config, fields)
    result = unet.load_state_dict(from_released_keys(released), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    unet.eval()
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(2, 4, 8, 8, generator=generator)
    text = torch.randn(2, 5, 32, generator=generator)
    timestep = torch.tensor([999, 10])
    metadata = normalise([Metadata(76.57, 28.70, 0.93, 0.08, dt.date(2015, 2, 27)), Metadata(-122.4, 37.8, 0.3, 0.1, dt.date(2018, 6, 15))])
    with torch.no_grad():
        ours = unet(sample, timestep, encoder_hidden_states=text, class_labels=metadata).sample
        original = reference_forward(unet, released, sample, timestep, text, metadata)
        without = unet(sample, timestep, encoder_hidden_states=text, class_labels=torch.zeros_like(metadata)).sample
    assert (ours - original).abs().max().item() < 1e-5
    assert (ours - without).abs().max().item() > 1e-3  # the metadata does change the output


def test_the_embedding_refuses_metadata_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"metadata must be \(batch, 7\)"):
        MetadataEmbedding(32, 128)(torch.zeros(2, 6))


@pytest.mark.parametrize(("flip_sin_to_cos", "freq_shift"), [(True, 0), (False, 0), (True, 1), (False, 1)])
def test_the_sinusoid_follows_flip_sin_to_cos_and_freq_shift_as_diffusers_does(flip_sin_to_cos, freq_shift):
    values = normalise([Metadata(*raw[:4], dt.date(*raw[4:])) for raw, _ in REFERENCE]).flatten()
    expected = Timesteps(320, flip_sin_to_cos=flip_sin_to_cos, downscale_freq_shift=freq_shift)(values)
    assert torch.allclose(timestep_sinusoid(values, 320, flip_sin_to_cos, freq_shift), expected, atol=1e-6)


@pytest.mark.parametrize(("flip_sin_to_cos", "freq_shift"), [(False, 0), (True, 1), (False, 1)])
def test_a_unet_config_with_other_projection_settings_embeds_metadata_as_diffusionsat_does(flip_sin_to_cos, freq_shift):
    """SatUNet applies its time_proj, built from the config's flip_sin_to_cos / freq_shift, to the
    metadata too: the embedding must follow those settings, not SD 2.1's (true, 0)."""
    config, fields = unet_config({**TINY_SATUNET, "flip_sin_to_cos": flip_sin_to_cos, "freq_shift": freq_shift})
    torch.manual_seed(0)
    unet = build_unet(config, fields).eval()
    metadata = normalise([Metadata(76.57, 28.70, 0.93, 0.08, dt.date(2015, 2, 27))])
    with torch.no_grad():
        ours = unet.class_embedding(metadata)
        expected = sum(embedder(unet.time_proj(metadata[:, index]))
                       for index, embedder in enumerate(unet.class_embedding.metadata_embedding))
        assert torch.allclose(ours, expected, atol=1e-5)
        generator = torch.Generator().manual_seed(1)
        sample, text = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 5, 32, generator=generator)
        released = to_released_keys(unet.state_dict())
        whole = unet(sample, torch.tensor([500]), encoder_hidden_states=text, class_labels=metadata).sample
        original = reference_forward(unet, released, sample, torch.tensor([500]), text, metadata)
    assert (whole - original).abs().max().item() < 1e-5
