"""What a tile classifier reads, without torch: the side every tile is resized to and the smallest
tile worth classifying (the inference checks tiles with these before any network is built)."""

from __future__ import annotations

import math

from .card import ModelCard

#: Largest magnification of a tile up to the network's input size that still makes sense.
MAX_TILE_MAGNIFICATION = 4


def network_input_size(card: ModelCard) -> int:
    """The side every tile is resized to before the network (``image_size`` of our ViT,
    ``input_size`` of a timm model)."""
    params = card.architecture.params
    if card.architecture.id == "vit":
        from .vit import ViTConfig

        return int(params.get("image_size", ViTConfig.image_size))
    return int(params.get("input_size", card.tiling.tile_size))


def min_tile_size(card: ModelCard) -> int:
    """The smallest tile worth classifying: a quarter of the network's input side.

    A classifier reads any tile resized to its input size, so no tile fails outright; but a tile
    magnified more than :data:`MAX_TILE_MAGNIFICATION` times shows the network a few blurred
    blocks (a 1 px tile becomes a flat square), and the tile count grows with the inverse square.
    """
    return max(1, math.ceil(network_input_size(card) / MAX_TILE_MAGNIFICATION))
