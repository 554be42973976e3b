"""The generation model: a DiffusionSat-compatible latent diffusion model in one SatVision file.

One ``.safetensors`` file holds the three networks under ``unet.``, ``vae.`` and
``text_encoder.``; the card's ``architecture.params`` holds their configurations (diffusers /
transformers config dictionaries), the scheduler's and the image size; the CLIP tokenizer's
vocabulary and merges travel in the same file (:func:`.modelfile.read_files`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .card import ModelCard

if TYPE_CHECKING:
    from torch import nn

#: names of the tokenizer files stored with a generation model
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


def build_diffusionsat(card: ModelCard) -> "nn.Module":
    from .diffusionsat import DiffusionSatModel

    return DiffusionSatModel(card.architecture.params)


def load_tokenizer(files: Mapping[str, str]) -> Any:
    """The CLIP tokenizer from the files stored with the model."""
    from transformers import CLIPTokenizer

    from ..core.errors import ModelFileError

    missing = [name for name in ("vocab.json", "merges.txt") if name not in files]
    if missing:
        raise ModelFileError(f"The generation model lacks its tokenizer ({', '.join(missing)}); convert it again.")
    with tempfile.TemporaryDirectory(prefix="satvision-tokenizer-") as folder:
        for name in TOKENIZER_FILES:
            if name in files:
                Path(folder, name).write_text(files[name], encoding="utf-8")
        return CLIPTokenizer.from_pretrained(folder, local_files_only=True)  # nosec B615 - a local folder, never the Hub


def tokenizer_files(folder: str | os.PathLike[str]) -> dict[str, str]:
    """The tokenizer files of a diffusers pipeline's ``tokenizer/`` folder, as text."""
    return {name: Path(folder, name).read_text(encoding="utf-8") for name in TOKENIZER_FILES if Path(folder, name).is_file()}


def scheduler_config(card: ModelCard) -> dict[str, Any]:
    return dict(card.architecture.params.get("scheduler") or {})


def describe(card: ModelCard) -> str:
    params = card.architecture.params
    return (f"{card.name}: {params.get('image_size')} px, {params.get('num_metadata', 7)} metadata fields, "
            f"{json.dumps(scheduler_config(card).get('prediction_type', 'epsilon'))} prediction")
