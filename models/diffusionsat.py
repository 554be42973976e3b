"""A DiffusionSat-compatible UNet: the stock diffusers ``UNet2DConditionModel`` plus metadata.

DiffusionSat's ``SatUNet`` is Stable Diffusion 2.1's UNet with seven metadata embedders whose
outputs join the timestep embedding. Here the stock UNet gets a :class:`MetadataEmbedding` as its
``class_embedding`` (``class_embed_type`` stays ``None``, so the UNet adds its output to the
timestep embedding) and the normalised metadata is passed as ``class_labels``. Summing the seven
embeddings first and then adding them is the only difference to the original (which adds them
one at a time): equal up to float rounding.

Key names: the released checkpoints hold the embedders at the top level
(``metadata_embedding.{i}.*``); in this module they sit under ``class_embedding.``.
:func:`from_released_keys` and :func:`to_released_keys` translate.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .diffusionsat_metadata import NUM_FIELDS, MetadataEmbedding

RELEASED_PREFIX = "metadata_embedding."
OUR_PREFIX = "class_embedding.metadata_embedding."
#: keys of a SatUNet config.json that the stock UNet2DConditionModel does not take
SATUNET_CONFIG_KEYS = ("use_metadata", "num_metadata", "use_metadata_cat", "metadata_dim")


def unet_config(released: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """The stock UNet config of a SatUNet ``config.json`` and its number of metadata fields."""
    config = {key: value for key, value in released.items() if not key.startswith("_") and key not in SATUNET_CONFIG_KEYS}
    if config.get("class_embed_type") not in (None, "none"):
        raise ValueError(f"a DiffusionSat UNet has no class_embed_type; this config has {config['class_embed_type']!r}")
    config["class_embed_type"] = None
    config["num_class_embeds"] = None
    use_metadata = released.get("use_metadata", True)
    fields = int(released.get("num_metadata", NUM_FIELDS)) if use_metadata else 0
    return config, fields


def build_unet(config: Mapping[str, Any], num_metadata: int = NUM_FIELDS) -> torch.nn.Module:
    """A randomly initialised UNet2DConditionModel with the metadata embedding attached."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(dict(config))
    if num_metadata:
        channels = unet.config.block_out_channels[0]
        embed_dim = unet.time_embedding.linear_2.out_features
        # DiffusionSat projects the metadata with the UNet's own timestep projection (its time_proj)
        unet.class_embedding = MetadataEmbedding(channels, embed_dim, num_metadata,
                                                 flip_sin_to_cos=unet.config.flip_sin_to_cos,
                                                 freq_shift=unet.config.freq_shift)
    return unet


def from_released_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A released SatUNet state dict with the embedders renamed to this module's names."""
    return {(OUR_PREFIX + key[len(RELEASED_PREFIX):] if key.startswith(RELEASED_PREFIX) else key): value
            for key, value in state.items()}


def to_released_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {(RELEASED_PREFIX + key[len(OUR_PREFIX):] if key.startswith(OUR_PREFIX) else key): value
            for key, value in state.items()}


def _plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A transformers config dictionary without the bookkeeping keys a saved config.json has."""
    skip = {"architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype", "model_type"}
    return {key: value for key, value in config.items() if key not in skip}


class DiffusionSatModel(nn.Module):
    """The UNet (with metadata embedding), the VAE and the CLIP text encoder, as one module."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__()
        from diffusers import AutoencoderKL
        from transformers import CLIPTextConfig, CLIPTextModel

        self.params = dict(params)
        self.unet = build_unet(params["unet"], int(params.get("num_metadata", 7)))
        self.vae = AutoencoderKL.from_config(dict(params["vae"]))
        self.text_encoder = CLIPTextModel(CLIPTextConfig(**_plain_config(params["text_encoder"])))

    @property
    def image_size(self) -> int:
        return int(self.params.get("image_size") or self.unet.config.sample_size * self.vae_scale)

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def num_metadata(self) -> int:
        embedding = self.unet.class_embedding
        return len(embedding.metadata_embedding) if embedding is not None else 0

