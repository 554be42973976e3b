"""SatVision model files: safetensors weights with the JSON model card inside the header.

A model is one ``.safetensors`` file. Its header metadata holds the card as JSON under
``satvision.card``, so weights and their description can never be separated or mismatched;
``satvision models show FILE`` prints it. Nothing is ever unpickled: safetensors stores raw
tensors only, and :func:`convert_checkpoint` turns a pickled checkpoint into a model file once,
reading it with ``weights_only=True`` (:mod:`.safe_checkpoints`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..core.dependencies import require
from ..core.errors import ModelCardError, ModelFileError, TaskMismatchError
from .card import ModelCard, load_card_json

if TYPE_CHECKING:  # torch stays optional until a network is built
    import torch

CARD_KEY = "satvision.card"
FILE_PREFIX = "satvision.file."
MODEL_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read and validate the card of a model file without loading its weights (no torch)."""
    require("safetensors")
    from safetensors import SafetensorError, safe_open

    file = _existing_model_file(path)
    try:
        with safe_open(str(file), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            keys = list(handle.keys())
    except (SafetensorError, OSError, ValueError) as error:
        raise _damaged(file, error) from error
    if CARD_KEY not in metadata:
        raise ModelCardError(
            f"{file.name} is a safetensors file without a SatVision model card "
            f"({len(keys)} tensors, no '{CARD_KEY}' entry). Convert it with "
            "`satvision models convert WEIGHTS --card CARD.json OUTPUT.safetensors`."
        )
    return load_card_json(metadata[CARD_KEY], source=f"model card of {file.name}")


def read_files(path: str | os.PathLike[str]) -> dict[str, str]:
    """The text files stored with the model (see :func:`save_model`), by name."""
    require("safetensors")
    from safetensors import SafetensorError, safe_open

    file = _existing_model_file(path)
    try:
        with safe_open(str(file), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise _damaged(file, error) from error
    return {key[len(FILE_PREFIX):]: value for key, value in metadata.items() if key.startswith(FILE_PREFIX)}


def save_model(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, "torch.Tensor"],
    card: ModelCard,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write ``state_dict`` and ``card`` to ``path`` atomically (temporary file, then rename).

    ``files``: small text files that belong to the model (a tokenizer's vocabulary), stored in
    the header under ``satvision.file.NAME`` and read back with :func:`read_files`.
    """
    require("torch", "safetensors")
    from safetensors.torch import save_file

    from ..core.atomic import atomic_path

    target = Path(path)
    if target.suffix != MODEL_SUFFIX:
        raise ModelFileError(f"Model files end in {MODEL_SUFFIX}; got {target.name}.")
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in state_dict.items()}
    with atomic_path(target) as temporary:
        metadata = {CARD_KEY: card.to_json(indent=None)}
        metadata.update({FILE_PREFIX + name: text for name, text in (files or {}).items()})
        save_file(tensors, str(temporary), metadata=metadata)
        # safetensors creates files readable by the owner only; a model file is meant to be shared
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
    return target


#: Largest magnitude float16 holds; weights beyond it cannot be compacted.
FLOAT16_MAX = 65504.0


def compact_model(source: str | os.PathLike[str], target: str | os.PathLike[str], card: ModelCard | None = None) -> Path:
    """Write a copy of a model file with its floating-point weights stored as float16 (with ``card``
    in place of the source's card when given, e.g. one that adds the bundled model's figures).

    Half the size (what lets the bundled models fit the plugin repository's 25 MB zip limit);
    the network still runs in float32 (weights are cast back when loaded), and the card says how
    the weights are stored. Refused when a weight exceeds float16's range.
    """
    import dataclasses

    require("torch", "safetensors")
    import torch
    from safetensors.torch import load_file

    card = card or read_card(source)
    tensors = load_file(str(source), device="cpu")
    compacted = {}
    for name, tensor in tensors.items():
        if tensor.is_floating_point():
            if tensor.numel() and float(tensor.abs().max()) > FLOAT16_MAX:
                raise ModelFileError(f"{name} holds values beyond float16's range; {Path(source).name} cannot be compacted.")
            tensor = tensor.to(torch.float16)
        compacted[name] = tensor
    note = "float16 (cast from the float32 training weights; the network runs in float32)"
    return save_model(target, compacted, dataclasses.replace(card, extra={**card.extra, "weights_storage": note}),
                      files=read_files(source))


def load_model(
    path: str | os.PathLike[str],
    *,
    task: str | None = None,
    device: "torch.device | str" = "cpu",
) -> tuple["torch.nn.Module", ModelCard]:
    """Load a model file into its network, in eval mode, on ``device``.

    Checks, each with its own message: the file exists and is not a pickle, the header and
    card are valid, the card's task is ``task`` (when given), the architecture is known, and
    the weights match the architecture exactly (no missing, unexpected or reshaped tensors).
    """
    require("torch", "safetensors")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .architectures import build_network

    file = Path(path)
    card = read_card(file)
    if task is not None and card.task != task:
        raise TaskMismatchError(
            f"{file.name} is a {card.task} model ({card.name}), but this tool needs a {task} "
            f"model. Choose a {task} model (see `satvision models list`)."
        )
    network = build_network(card)
    try:
        weights = load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise _damaged(file, error) from error
    check_weights_match(network, weights, file.name)
    network.load_state_dict(weights, strict=True)
    return network.to(device).eval(), card


def check_weights_match(network: "torch.nn.Module", weights: Mapping[str, Any], source: str) -> None:
    """Fail with a readable summary when ``weights`` do not fit ``network`` exactly."""
    expected = network.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    reshaped = sorted(
        f"{name} {tuple(weights[name].shape)} ≠ {tuple(expected[name].shape)}"
        for name in set(expected) & set(weights)
        if tuple(weights[name].shape) != tuple(expected[name].shape)
    )
    if not (missing or unexpected or reshaped):
        return
    parts = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", reshaped)):
        if names:
            shown = ", ".join(names[:5]) + (f" … (+{len(names) - 5} more)" if len(names) > 5 else "")
            parts.append(f"{len(names)} {label}: {shown}")
    raise ModelFileError(
        f"The weights in {source} do not match the architecture its card describes "
        f"({'; '.join(parts)}). The file was written for another network or its card was "
        "edited; re-export it from training."
    )


def convert_checkpoint(
    checkpoint: str | os.PathLike[str],
    card: ModelCard,
    output: str | os.PathLike[str],
) -> Path:
    """Convert a pickled checkpoint into a SatVision model file described by ``card``.

    The tensors must fit the card's architecture exactly; the result loads with
    :func:`load_model`.
    """
    from .architectures import build_network
    from .safe_checkpoints import read_checkpoint_tensors

    tensors = read_checkpoint_tensors(checkpoint)
    network = build_network(card)
    check_weights_match(network, tensors, Path(checkpoint).name)
    return save_model(output, tensors, card)


def _existing_model_file(path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    if file.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelFileError(
            f"{file.name} is a pickled PyTorch checkpoint. SatVision never loads pickles as "
            "models; convert it once with `satvision models convert "
            f"{file.name} --card CARD.json OUTPUT.safetensors` (tensors only, no code is run)."
        )
    if not file.is_file():
        raise ModelFileError(f"The model file {file} does not exist. Check the path or choose a model from the list.")
    if not os.access(file, os.R_OK):
        raise ModelFileError(f"The model file {file} is not readable (permissions). Fix its permissions.")
    return file


def _damaged(file: Path, error: Exception) -> ModelFileError:
    return ModelFileError(
        f"{file.name} is not a readable safetensors model file: it is damaged or truncated "
        f"({file.stat().st_size} bytes; {error}). Copy or download it again, or re-export it."
    )
