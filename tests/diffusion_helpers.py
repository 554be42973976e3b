"""Tiny random-weight DiffusionSat components in the released checkpoint layout, built in code."""

from __future__ import annotations

import json
from pathlib import Path

import torch

#: A tiny SatUNet config.json as released (SD 2.1 layout, tiny sizes): 8 x 8 latents.
TINY_SATUNET = {
    "_class_name": "SatUNet", "_diffusers_version": "0.17.0", "use_metadata": True, "num_metadata": 7,
    "sample_size": 8, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
    "block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "cross_attention_dim": 32,
    "attention_head_dim": 4, "norm_num_groups": 8, "class_embed_type": None, "use_linear_projection": True,
}
TINY_VAE = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "block_out_channels": [16, 32],
    "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 8, "sample_size": 16,
}
SCHEDULER = {
    "_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1,
    "prediction_type": "v_prediction",
}
IMAGE_SIZE = 16  # 8 x 8 latents, VAE scale 2


def bytes_to_unicode() -> list[str]:
    """CLIP's byte-to-character table (GPT-2 byte-level BPE)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def write_tokenizer(folder: Path, max_length: int = 16) -> int:
    """A tiny CLIP BPE tokenizer (bytes, end-of-word bytes, two merges); returns its vocabulary size."""
    folder.mkdir(parents=True, exist_ok=True)
    characters = bytes_to_unicode()
    vocab = {character: index for index, character in enumerate(characters)}
    vocab.update({character + "</w>": len(characters) + index for index, character in enumerate(characters)})
    for token in ("sa", "sat", "<|startoftext|>", "<|endoftext|>"):
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\ns a\nsa t\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": max_length, "pad_token": "!", "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "tokenizer_class": "CLIPTokenizer",
    }), encoding="utf-8")
    return len(vocab)


def make_released_checkpoint(folder: Path, seed: int = 0, step: int = 150000) -> Path:
    """A DiffusionSat checkpoint folder in the released layout, with tiny random weights:
    pipeline components at the top, the UNet as a pickled .bin with SatUNet key names."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    from satvision.models.diffusionsat import build_unet, to_released_keys, unet_config

    torch.manual_seed(seed)
    vocab_size = write_tokenizer(folder / "tokenizer")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}), encoding="utf-8")
    scheduler = folder / "scheduler"
    scheduler.mkdir()
    (scheduler / "scheduler_config.json").write_text(json.dumps(SCHEDULER), encoding="utf-8")

    unet_folder = folder / f"checkpoint-{step}" / "unet"
    unet_folder.mkdir(parents=True)
    (unet_folder / "config.json").write_text(json.dumps(TINY_SATUNET), encoding="utf-8")
    config, fields = unet_config(TINY_SATUNET)
    unet = build_unet(config, fields)
    torch.save(to_released_keys(unet.state_dict()), unet_folder / "diffusion_pytorch_model.bin")

    vae = AutoencoderKL(**TINY_VAE)
    (folder / "vae").mkdir()
    (folder / "vae" / "config.json").write_text(json.dumps(dict(vae.config)), encoding="utf-8")
    from safetensors.torch import save_file

    save_file({key: value.contiguous() for key, value in vae.state_dict().items()},
              str(folder / "vae" / "diffusion_pytorch_model.safetensors"))

    text_config = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=16, projection_dim=32, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
        pad_token_id=0,
    )
    text_encoder = CLIPTextModel(text_config)
    (folder / "text_encoder").mkdir()
    (folder / "text_encoder" / "config.json").write_text(text_config.to_json_string(), encoding="utf-8")
    state = dict(text_encoder.state_dict())
    state["text_model.embeddings.position_ids"] = torch.arange(16)[None]  # as older transformers saved it
    torch.save(state, folder / "text_encoder" / "pytorch_model.bin")
    return folder
