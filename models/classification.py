"""Tile classification architectures for the architecture factory (builders named in
:data:`.architectures.ARCHITECTURES`). This module imports torch; what the inference needs to
know about a classifier without torch (its input size, the smallest tile) is in
:mod:`.classifier_input`.

Every classifier is a :class:`Classifier`: an ``encoder`` (image → feature vector) and a ``head``
(features → class logits), so the trainer can freeze the encoder and train the head first (the
origin notebook's linear probe), and a tile of another size is resized to the network's ``input_size``.

At inference a classifier may also zoom into the tile (``test_zoom`` > 1, the ``crop_pct`` of
timm's evaluation transform, and FixRes, Touvron et al. 2019): the tile is magnified by that
factor (bilinear) and its central ``input_size`` square classified. Trained on random resized
crops, the network saw tiles magnified and smoothed by the crop's upsampling; whole raw tiles
are sharper and smaller than that. What the zoom did to the bundled classifier (and why it does
not use it) is in the README's section on it.

- ``vit``: our Vision Transformer from scratch (:mod:`models.vit`), params = :class:`ViTConfig`.
- ``timm``: any timm model by name (ViT-Tiny/16, MobileNetV2, ResNet50, …) built without its
  classifier and with ``in_chans`` = the card's band count; params ``model_name``,
  ``input_size``, ``drop_rate``, ``model_kwargs`` (passed to ``timm.create_model``) and
  ``test_zoom`` (optional; the ViT takes it among its params too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .card import ModelCard


class Classifier(nn.Module):
    """``head(encoder(resize(x)))``: ``x`` resized to ``input_size`` when it differs; in
    evaluation mode resized to the zoomed size and centre-cropped to ``input_size``."""

    def __init__(self, encoder: nn.Module, head: nn.Module, input_size: int, test_zoom: float = 1.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.input_size = int(input_size)
        self.test_zoom = float(test_zoom)

    @property
    def zoomed_size(self) -> int:
        """The side the tile is resized to before the centre crop at inference; the margin is
        even, so the crop is centred exactly and commutes with flips and 90° turns."""
        return self.input_size + 2 * round(self.input_size * (self.test_zoom - 1) / 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.input_size if self.training else self.zoomed_size
        if tuple(images.shape[-2:]) != (size, size):
            shrinking = images.shape[-1] > size
            images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
        margin = (size - self.input_size) // 2
        if margin:
            images = images[..., margin:margin + self.input_size, margin:margin + self.input_size]
        return self.head(self.encoder(images))


def build_vit(card: ModelCard) -> Classifier:
    from .vit import VisionTransformer, ViTConfig, vit_head

    params = dict(card.architecture.params)
    test_zoom = params.pop("test_zoom", 1.0)
    config = ViTConfig(**params)
    encoder = VisionTransformer(len(card.bands), config)
    return Classifier(encoder, vit_head(config, encoder.num_features, len(card.classes)), config.image_size, test_zoom)


def build_timm(card: ModelCard) -> Classifier:
    params = dict(card.architecture.params)
    model_name = params.pop("model_name")
    input_size = params.pop("input_size")
    test_zoom = params.pop("test_zoom", 1.0)
    drop_rate = params.pop("drop_rate", 0.0)
    model_kwargs = params.pop("model_kwargs", {})
    if params:
        raise TypeError(f"unexpected parameter(s) {', '.join(params)}")
    encoder = timm_encoder(model_name, len(card.bands), model_kwargs)
    head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(encoder.num_features, len(card.classes)))
    return Classifier(encoder, head, input_size, test_zoom)


def timm_encoder(model_name: str, bands: int, model_kwargs: dict[str, Any] | None = None,
                 weights_file: str | Path | None = None) -> nn.Module:
    """A timm model without its classifier (``num_classes=0``: it returns pooled features).

    With ``weights_file`` (a local safetensors file or a legacy checkpoint), timm's own loader
    adapts the weights: the first convolution to ``bands`` input bands, the positional embedding
    of a ViT to another image size, and drops the classifier. Legacy pickles are read here with
    ``weights_only=True`` and handed to timm as safetensors, since timm's loader unpickles freely.
    """
    import timm

    from ..core.errors import SatVisionError

    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name.split('_')[0]}*")[:8]
        raise SatVisionError(f"timm has no model {model_name!r}" + (f" (similar: {', '.join(close)})" if close else "") + ".")
    kwargs = dict(model_kwargs or {})
    if weights_file is None:
        return timm.create_model(model_name, pretrained=False, num_classes=0, in_chans=bands, **kwargs)
    import tempfile

    from safetensors.torch import save_file

    tensors = read_weight_tensors(Path(weights_file))
    with tempfile.TemporaryDirectory(prefix="satvision-weights-") as folder:
        safe_copy = Path(folder) / "weights.safetensors"
        save_file({key: value.contiguous() for key, value in tensors.items()}, str(safe_copy))
        return timm.create_model(
            model_name, pretrained=True, pretrained_cfg_overlay={"file": str(safe_copy)},
            num_classes=0, in_chans=bands, **kwargs,
        )


def read_weight_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a local weights file: safetensors, or a pickle read with ``weights_only=True``."""
    from ..core.errors import SatVisionError
    from .safe_checkpoints import read_checkpoint_tensors

    if not path.is_file():
        raise SatVisionError(
            f"The weights file {path} does not exist. SatVision never downloads weights: save the "
            "backbone's state dict on a machine with access and pass its path."
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    tensors = read_checkpoint_tensors(path)
    for prefix in ("module.", "model."):
        if tensors and all(key.startswith(prefix) for key in tensors):
            tensors = {key[len(prefix):]: value for key, value in tensors.items()}
    return tensors
