"""Benchmark: denoising steps per second of an SD-2.1-sized DiffusionSat UNet at 512 px.

The UNet has Stable Diffusion 2.1's configuration (865 M parameters, 64 x 64 latents for 512 px)
plus the seven metadata embedders, with random weights: the same compute as the released model.
Classifier-free guidance doubles the batch, as in real use. The VAE and text encoder are tiny
(they run once per image, not per step). Goal on an H100: 50 steps in at most 2 s.

    .venv/bin/python benchmarks/generate.py [--device cpu|cuda] [--steps 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from diffusion_helpers import SCHEDULER, write_tokenizer  # noqa: E402

from satvision.core.devices import device_label, resolve_device  # noqa: E402
from satvision.core.feedback import CallbackFeedback  # noqa: E402
from satvision.inference.generate_engine import GenerationSettings, Generator  # noqa: E402
from satvision.models.diffusionsat import DiffusionSatModel  # noqa: E402
from satvision.models.diffusionsat_metadata import Metadata  # noqa: E402

SD21_UNET = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "use_linear_projection": True,
    "norm_num_groups": 32,
}
TINY_VAE_SCALE_8 = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 8,
    "block_out_channels": [8, 8, 8, 8], "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4, "sample_size": 512,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=3, help="denoising steps to time (default 3; 50 on a GPU)")
    arguments = parser.parse_args()
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as folder:
        vocab_size = write_tokenizer(Path(folder), max_length=77)
        tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    text_encoder = {"vocab_size": vocab_size, "hidden_size": 1024, "intermediate_size": 1024, "num_hidden_layers": 1,
                    "num_attention_heads": 16, "max_position_embeddings": 77, "projection_dim": 1024,
                    "bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1, "pad_token_id": 0}
    started = time.perf_counter()
    model = DiffusionSatModel({"unet": SD21_UNET, "num_metadata": 7, "vae": TINY_VAE_SCALE_8,
                               "text_encoder": text_encoder, "image_size": 512})
    parameters = sum(p.numel() for p in model.unet.parameters())
    device = resolve_device(arguments.device)
    generator = Generator(model, tokenizer, SCHEDULER, device)
    built = time.perf_counter() - started
    stamps: list[float] = []
    settings = GenerationSettings("a satellite image of farmland", metadata=Metadata(gsd=1.0, date=None), steps=arguments.steps)
    stamp = CallbackFeedback(progress=lambda fraction: stamps.append(time.perf_counter()))
    generator.generate(settings, feedback=stamp)  # warm-up included
    stamps = []
    begin = time.perf_counter()
    generator.generate(settings, feedback=stamp)
    step_times = [stamps[0] - begin] + [b - a for a, b in zip(stamps[:-2], stamps[1:-1])]
    per_step = sum(step_times) / len(step_times)
    label = device_label(device)
    print(f"generateimagery SD-2.1-sized UNet ({parameters / 1e6:.0f} M parameters + metadata), 512 px, CFG batch 2, "
          f"{generator.dtype} on {label}: {1 / per_step:.3f} steps/s ({per_step:.2f} s per step; 50 steps ≈ "
          f"{50 * per_step:.1f} s); model built in {built:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
