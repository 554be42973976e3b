"""Convert a released DiffusionSat checkpoint folder into one SatVision generation model file.

The released layout is a diffusers pipeline folder (``model_index.json``, ``text_encoder/``,
``tokenizer/``, ``vae/``, ``scheduler/``) whose fine-tuned UNet sits in ``checkpoint-*/unet``
(``config.json`` with ``"_class_name": "SatUNet"`` and a pickled ``diffusion_pytorch_model.bin``).
Pickles are read only with ``torch.load(..., weights_only=True)``; the result is a safetensors
file with a card, loaded afterwards without any pickle. The conversion fails unless every
component loads with zero missing and zero unexpected tensors.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ..core.errors import ModelFileError
from ..core.feedback import Feedback, SilentFeedback
from ..version import __version__
from .card import FORMAT_VERSION, Architecture, ModelCard, Normalisation, Tiling
from .diffusionsat import DiffusionSatModel, from_released_keys, unet_config
from .generation import tokenizer_files
from .modelfile import save_model
from .safe_checkpoints import read_checkpoint_tensors

WEIGHT_NAMES = (
    "diffusion_pytorch_model.safetensors", "model.safetensors",
    "diffusion_pytorch_model.bin", "pytorch_model.bin",
)
#: DiffusionSat's scheduler (DDIM, v-prediction, SD 2.1's betas) when the folder has none
DEFAULT_SCHEDULER = {
    "_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1,
    "prediction_type": "v_prediction",
}
#: where the released weights are published (users download them; SatVision never does)
RELEASES = (
    "DiffusionSat's released weights: Zenodo record 13751498 (512 px, text + metadata) and 13756199 "
    "(256 px), https://zenodo.org/records/13751498"
)
#: metadata ranges of DiffusionSat's training data (fMoW, Satlas, SpaceNet): outside them the
#: model is out of distribution
TRAINING_GSD_RANGE_M = (0.3, 3.0)
TRAINING_DATE_RANGE = ("2002-01-01", "2023-12-31")
#: tensors a checkpoint may hold that recent transformers keep as non-persistent buffers
IGNORABLE = re.compile(r"(^|\.)position_ids$")


def unet_folder(source: Path) -> Path:
    """The fine-tuned UNet: the highest ``checkpoint-N/unet``, else the pipeline's ``unet/``."""
    checkpoints = sorted(
        (folder for folder in source.glob("checkpoint-*/unet") if folder.is_dir()),
        key=lambda folder: int(re.sub(r"\D", "", folder.parent.name) or 0),
    )
    if checkpoints:
        return checkpoints[-1]
    if (source / "unet").is_dir():
        return source / "unet"
    raise ModelFileError(
        f"{source} holds no checkpoint-*/unet or unet/ folder: it is not a DiffusionSat checkpoint folder. "
        f"Unpack the released zip ({RELEASES}) and give its top folder."
    )


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path} is missing: the checkpoint folder is incomplete.") from None
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{path} is not valid JSON ({error}).") from None


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """A component's tensors: safetensors as they are, pickles with ``weights_only=True``."""
    for name in WEIGHT_NAMES:
        path = folder / name
        if path.is_file():
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path), device="cpu")
            return read_checkpoint_tensors(path)
    raise ModelFileError(f"{folder} holds no weights ({' or '.join(WEIGHT_NAMES)}).")


#: attention parameter names of VAEs saved by diffusers before 0.15 → current names
LEGACY_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


def modern_names(weights: Mapping[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Rename legacy attention tensors (``query``/``key``/``value``/``proj_attn``) that the current
    module calls ``to_q``/``to_k``/``to_v``/``to_out.0``; everything else unchanged."""
    renamed = {}
    for key, value in weights.items():
        if key not in expected:
            for old, new in LEGACY_ATTENTION.items():
                candidate = key.replace(old, new)
                if candidate in expected:
                    key = candidate
                    if value.ndim == 4 and expected_shape_is_linear(candidate):
                        value = value[:, :, 0, 0]
                    break
        renamed[key] = value
    return renamed


def expected_shape_is_linear(name: str) -> bool:
    return name.endswith(".weight") and any(part in name for part in (".to_q.", ".to_k.", ".to_v.", ".to_out.0."))


def load_component(module: torch.nn.Module, weights: Mapping[str, torch.Tensor], label: str) -> str:
    """Load strictly (only ignorable buffers may be extra); a one-line report."""
    expected = set(module.state_dict())
    weights = modern_names(weights, expected)
    ignored = sorted(key for key in weights if key not in expected and IGNORABLE.search(key))
    kept = {key: value for key, value in weights.items() if key not in ignored}
    missing = sorted(expected - set(kept))
    unexpected = sorted(set(kept) - expected)
    if missing or unexpected:
        raise ModelFileError(
            f"The {label} weights do not fit its configuration: {len(missing)} missing "
            f"({', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}), {len(unexpected)} unexpected "
            f"({', '.join(unexpected[:4])}{' …' if len(unexpected) > 4 else ''})."
        )
    module.load_state_dict(kept, strict=True)
    extra = f", {len(ignored)} non-persistent buffer(s) skipped" if ignored else ""
    return f"{label}: {len(kept)} tensors, 0 missing, 0 unexpected{extra}"


def convert_diffusionsat(
    source: str | Path,
    output: str | Path,
    *,
    name: str | None = None,
    image_size: int | None = None,
    license: str = "see the DiffusionSat release (Zenodo record) for the weights' terms",
    half: bool = True,
    feedback: Feedback | None = None,
) -> Path:
    """Convert ``source`` (a released checkpoint folder) into the model file ``output``; ``feedback.info``
    says what was loaded from where."""
    feedback = feedback or SilentFeedback()
    source = Path(source)
    if not source.is_dir():
        raise ModelFileError(f"{source} is not a folder. Give the unpacked DiffusionSat checkpoint folder ({RELEASES}).")
    unet_dir = unet_folder(source)
    released_config = read_json(unet_dir / "config.json")
    config, fields = unet_config(released_config)
    if fields == 0:
        raise ModelFileError(f"{unet_dir} is a UNet without metadata conditioning (use_metadata false): not DiffusionSat.")
    vae_config = read_json(source / "vae" / "config.json")
    text_config = read_json(source / "text_encoder" / "config.json")
    scheduler_path = source / "scheduler" / "scheduler_config.json"
    scheduler = read_json(scheduler_path) if scheduler_path.is_file() else dict(DEFAULT_SCHEDULER)
    tokenizer = tokenizer_files(source / "tokenizer")
    if not {"vocab.json", "merges.txt"} <= set(tokenizer):
        raise ModelFileError(f"{source / 'tokenizer'} lacks vocab.json or merges.txt.")
    vae_scale = 2 ** (len(vae_config.get("block_out_channels", [0, 0, 0, 0])) - 1)
    size = int(image_size or config.get("sample_size", 64) * vae_scale)
    params = {
        "unet": config, "num_metadata": fields, "vae": vae_config, "text_encoder": text_config,
        "scheduler": scheduler, "image_size": size,
    }
    model = DiffusionSatModel(params)
    feedback.info(f"UNet from {unet_dir.relative_to(source)} ({released_config.get('_class_name', 'UNet')}, {fields} metadata fields); "
        f"image size {size} px{' (from the UNet sample size; --image-size overrides)' if not image_size else ''}")
    reports = [
        load_component(model.unet, from_released_keys(read_weights(unet_dir)), "UNet"),
        load_component(model.vae, read_weights(source / "vae"), "VAE"),
        load_component(model.text_encoder, read_weights(source / "text_encoder"), "text encoder"),
    ]
    for line in reports:
        feedback.info(line)
    state = model.state_dict()
    if half:
        state = {key: value.half() if value.is_floating_point() else value for key, value in state.items()}
    card = ModelCard(
        format_version=FORMAT_VERSION,
        name=name or f"diffusionsat-{source.name}",
        task="generation",
        architecture=Architecture("diffusionsat", params),
        bands=["red", "green", "blue"],
        gsd_m=1.0,
        normalisation=Normalisation(reflectance_scale=255.0, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
        classes=[],
        tiling=Tiling(tile_size=size, overlap=0),
        training_data="DiffusionSat (Khanna et al., ICLR 2024): fMoW, Satlas and SpaceNet images with captions and metadata",
        metrics={},
        license=license,
        description=(
            "DiffusionSat-compatible text + metadata conditioned latent diffusion, converted by SatVision from "
            f"{source.name}. Generated images are synthetic."
        ),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        software_version=__version__,
        extra={
            "converted_from": source.name,
            "unet_checkpoint": str(unet_dir.relative_to(source)),
            "training_gsd_range_m": list(TRAINING_GSD_RANGE_M),
            "training_date_range": list(TRAINING_DATE_RANGE),
            "weights_storage": "float16" if half else "float32",
            "conversion": reports,
        },
    )
    return save_model(output, state, card, files=tokenizer)
