"""Reading pickled PyTorch checkpoints (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) safely (converting
one into a model file: :func:`.modelfile.convert_checkpoint`).

Pickles can run arbitrary code when loaded. They are read only with
``torch.load(..., weights_only=True)``, whose restricted unpickler accepts tensors and plain
containers and refuses everything else; a refused file gets a clear error and nothing runs.
"""

from __future__ import annotations

import os
import pickle  # nosec B403 - only for pickle.UnpicklingError; checkpoints are read with weights_only=True
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.dependencies import require
from ..core.errors import ModelFileError

if TYPE_CHECKING:
    import torch

#: Keys under which trainers commonly nest the state dict.
_NESTED_STATE_KEYS = ("state_dict", "model_state_dict", "model", "module", "ema", "net")


def read_checkpoint_tensors(path: str | os.PathLike[str]) -> dict[str, "torch.Tensor"]:
    """The tensors of a pickled checkpoint, loaded with ``weights_only=True``.

    Nested state dicts (Lightning's ``state_dict``, ``model``…) are unwrapped and a leading
    ``module.`` (DataParallel) is stripped.
    """
    require("torch")
    import torch

    file = Path(path)
    if not file.is_file():
        raise ModelFileError(f"The checkpoint {file} does not exist.")
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelFileError(
            f"Refused to load {file.name}: its pickle holds more than tensors (objects or code "
            "that would run when unpickled), which SatVision never loads. If you trust its "
            "origin, re-save only its state dict (torch.save(model.state_dict(), PATH)) and "
            f"convert that. Detail: {str(error).splitlines()[0]}"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise ModelFileError(f"{file.name} is not a readable PyTorch checkpoint (damaged or truncated): {error}") from error
    return _tensors_of(loaded, file.name)


def _tensors_of(loaded: Any, source: str) -> dict[str, "torch.Tensor"]:
    import torch

    state = loaded
    while isinstance(state, dict) and not _is_tensor_dict(state):
        nested = next((state[key] for key in _NESTED_STATE_KEYS if isinstance(state.get(key), dict)), None)
        if nested is None:
            break
        state = nested
    if not isinstance(state, dict) or not _is_tensor_dict(state):
        raise ModelFileError(f"{source} holds no state dict of tensors; nothing to convert.")
    tensors = {name: value for name, value in state.items() if isinstance(value, torch.Tensor)}
    if all(name.startswith("module.") for name in tensors):
        tensors = {name[len("module.") :]: value for name, value in tensors.items()}
    return tensors


def _is_tensor_dict(value: dict) -> bool:
    import torch

    return bool(value) and all(isinstance(item, torch.Tensor) for item in value.values())
