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
        unet.class_embedding = MetadataEmbedding(channels, embed_dim, num_metadata)
    return unet


def from_released_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A released SatUNet state dict with the embedders renamed to this module's names."""
    return {(OUR_PREFIX + key[len(RELEASED_PREFIX):] if key.startswith(RELEASED_PREFIX) else key): value
            for key, value in state.items()}


def to_released_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {(RELEASED_PREFIX + key[len(OUR_PREFIX):] if key.startswith(OUR_PREFIX) else key): value
            for key, value in state.items()}
