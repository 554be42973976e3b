"""Text + metadata conditioned sampling for DiffusionSat-compatible models.

The stock diffusers pipeline cannot pass metadata to the UNet, so this is a short denoising loop
of our own: classifier-free guidance joint over text and metadata (the unconditional half gets
the negative (or empty) prompt and all-zero metadata, DiffusionSat's learned "unknown"), DDIM or
DPM-Solver++ from the model's scheduler configuration (v-prediction or epsilon as trained),
seeded CPU noise (the same seed, settings, device and dtype give the same image; float32 on the CPU
versus fp16/bf16 on a GPU give slightly different images), fp16/bf16 on GPU with PyTorch's
scaled-dot-product attention (or a chosen precision), progress and cancellation at every
step. Non-finite values (float16 overflow on a GPU, a broken model file) stop the run with a clear
error instead of being written as a black image.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np
import torch

from ..core.errors import OperationCancelled, SatVisionError
from ..core.feedback import Feedback, SilentFeedback
from ..models.diffusionsat_metadata import normalise
from .generation_settings import PRECISIONS, SCHEDULERS, GenerationSettings  # noqa: F401 - declared torch-free, kept importable from here

#: DPM-Solver++ as DiffusionSat ran it (diffusers 0.17): timesteps evenly spaced over the whole
#: schedule and a last step that ends at the schedule's smallest noise level (sigma at t = 0), not
#: at zero noise (which current diffusers defaults to and which also forces a first-order last step).
DPM_SOLVER = {"algorithm_type": "dpmsolver++", "solver_order": 2, "final_sigmas_type": "sigma_min",
              "timestep_spacing": "linspace"}
#: below this fraction of the noise schedule a first timestep is far from pure noise (warned about)
LATE_START = 0.9


def make_scheduler(config: dict[str, Any], kind: str, steps: int, device: torch.device | str | None = None) -> Any:
    """DDIM or DPM-Solver++ (multistep) with the model's training noise schedule and prediction
    type, its timesteps set for ``steps`` inference steps.

    The timesteps are DiffusionSat's (DDIM: the model's "leading" spacing, ``steps_offset`` 1;
    DPM-Solver++: "linspace") except where those break at the largest step count:
    DDIM at ``steps == num_train_timesteps`` (1000) would ask for timestep 1000, one past the
    schedule (diffusers then fails with an IndexError), so it runs every timestep 999..0 (no
    offset; DDIM's update needs the uniform stride ``1000 // steps`` that this keeps);
    DPM-Solver++ at 1000 steps would repeat a timestep (rounded linspace), a zero-length step
    that turns the image into NaN, so it runs 999..0 too.
    """
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    base = {key: value for key, value in config.items() if not key.startswith("_")}
    total = int(base.get("num_train_timesteps", 1000))
    if steps > total:
        raise SatVisionError(f"This model was trained with {total} noise levels: choose at most {total} steps "
                             f"(got {steps}); 20-50 is usual.")
    if kind == "ddim":
        scheduler = DDIMScheduler.from_config(base)
        scheduler.set_timesteps(steps, device=device)
        if int(scheduler.timesteps.max()) > total - 1:
            scheduler = DDIMScheduler.from_config(base, steps_offset=0)
            scheduler.set_timesteps(steps, device=device)
    else:
        scheduler = DPMSolverMultistepScheduler.from_config(base, **DPM_SOLVER)
        scheduler.set_timesteps(steps, device=device)
        if not _distinct_decreasing(scheduler.timesteps):
            evenly = np.linspace(total - 1, 0, steps).round().astype(np.int64).tolist()
            scheduler.set_timesteps(timesteps=evenly, device=device)
    timesteps = scheduler.timesteps
    inside = 0 <= int(timesteps.min()) and int(timesteps.max()) < total
    if len(timesteps) != steps or not _distinct_decreasing(timesteps) or not inside:
        raise SatVisionError(f"The model's scheduler settings give no valid {kind.upper()} timesteps for {steps} steps "
                             f"({timesteps.tolist()[:5]}...); choose another step count or scheduler.")
    return scheduler


def _distinct_decreasing(timesteps: torch.Tensor) -> bool:
    return bool((timesteps[1:] < timesteps[:-1]).all())


def late_start_warning(config: dict[str, Any], kind: str, steps: int) -> str | None:
    """A warning when sampling would start far below pure noise.

    DDIM's "leading" timesteps are ``k * (1000 // steps) + 1``: when the integer division rounds
    down a lot (1-9 steps, 112, 150, 300, 600 ...) the first is far below 999 and the image starts
    from pure noise at a timestep the model treats as partly denoised: noisier, less faithful
    images. DiffusionSat and diffusers sample the same way; the user should know and can pick a
    step count that divides 1000 or DPM-Solver++ (whose timesteps always start at 999).
    """
    total = int(config.get("num_train_timesteps", 1000))
    first = int(make_scheduler(config, kind, steps).timesteps[0])
    if first >= LATE_START * total:
        return None
    return (f"{kind.upper()} with {steps} steps starts at timestep {first} of {total}, far from pure noise: expect a "
            f"noisier, less faithful image. Choose a step count that divides {total} (e.g. 20, 25, 50, 100, 200, 250) "
            "or the DPM-Solver++ scheduler.")


def encode_prompts(tokenizer: Any, text_encoder: Any, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    tokens = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                       truncation=True, return_tensors="pt")
    with torch.no_grad():
        return text_encoder(tokens.input_ids.to(device))[0]


class Generator:
    """A loaded generation model ready to sample; the networks stay on ``device`` between calls."""

    def __init__(self, model: Any, tokenizer: Any, scheduler_config: dict[str, Any], device: str = "cpu",
                 precision: str = "auto") -> None:
        from ..core.devices import resolve_device

        if precision not in PRECISIONS:
            raise SatVisionError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.dtype = torch.float32 if precision == "auto" else getattr(torch, precision)
        if self.device.type == "cuda" and precision == "auto":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.model = model.to(self.device, self.dtype).eval()
        if self.device.type == "cuda":
            with contextlib.suppress(Exception):  # PyTorch SDPA kernels (flash / memory-efficient)
                from diffusers.models.attention_processor import AttnProcessor2_0

                self.model.unet.set_attn_processor(AttnProcessor2_0())
        self.tokenizer = tokenizer
        self.scheduler_config = dict(scheduler_config)

    @property
    def prediction_type(self) -> str:
        return self.scheduler_config.get("prediction_type", "epsilon")

    def generate(
        self,
        settings: GenerationSettings,
        *,
        feedback: Feedback | None = None,
    ) -> np.ndarray:
        """``num_images`` RGB images as uint8 (n, H, W, 3)."""
        feedback = feedback or SilentFeedback()
        model, device, count = self.model, self.device, settings.num_images
        size = settings.image_size or model.image_size
        scale = model.vae_scale
        if size % (scale * 8):
            raise SatVisionError(f"The image size must be a multiple of {scale * 8} px (got {size}).")
        scheduler = make_scheduler(self.scheduler_config, settings.scheduler, settings.steps, device)
        guided = settings.guidance_scale > 1.0
        text = encode_prompts(self.tokenizer, model.text_encoder, [settings.prompt] * count, device)
        metadata = normalise([settings.metadata] * count, device=device)
        if guided:
            negative = encode_prompts(self.tokenizer, model.text_encoder, [settings.negative_prompt] * count, device)
            text = torch.cat([negative, text])
            metadata = torch.cat([torch.zeros_like(metadata), metadata])
        text = text.to(self.dtype)
        shape = (count, model.unet.config.in_channels, size // scale, size // scale)
        generator = torch.Generator(device="cpu").manual_seed(int(settings.seed))
        latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
        latents = latents * scheduler.init_noise_sigma
        total = len(scheduler.timesteps)
        for index, timestep in enumerate(scheduler.timesteps):
            if feedback.cancelled():
                raise OperationCancelled("Generation cancelled; no image was written.")
            batch = torch.cat([latents] * 2) if guided else latents
            batch = scheduler.scale_model_input(batch, timestep).to(self.dtype)
            with torch.no_grad():
                # metadata stays float32 up to the sinusoid (fp16 would round it)
                prediction = model.unet(batch, timestep, encoder_hidden_states=text, class_labels=metadata).sample.float()
            if guided:
                unconditional, conditional = prediction.chunk(2)
                prediction = unconditional + settings.guidance_scale * (conditional - unconditional)
            latents = scheduler.step(prediction, timestep, latents).prev_sample
            self._require_finite(latents, f"at denoising step {index + 1} of {total}")  # NaN stays NaN: stop now
            feedback.progress((index + 1) / (total + 1))
        if feedback.cancelled():
            raise OperationCancelled("Generation cancelled; no image was written.")
        with torch.no_grad():
            scaling = getattr(model.vae.config, "scaling_factor", 0.18215)
            images = model.vae.decode((latents / scaling).to(self.dtype)).sample.float()
        self._require_finite(images, "in the decoded image")  # clamp keeps NaN and uint8 turns it into black
        feedback.progress(1.0)
        images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return images.permute(0, 2, 3, 1).cpu().numpy()

    def _require_finite(self, values: torch.Tensor, where: str) -> None:
        if bool(torch.isfinite(values).all()):
            return
        if self.dtype != torch.float32:
            cause = (f"This is usually {str(self.dtype).removeprefix('torch.')} overflow (half precision, as on a "
                     "GPU): sample in float32 (on the command line add --precision float32; or choose the CPU as "
                     "device, slower)")
        else:
            cause = ("The model gives non-finite values even in float32: check the model file (convert or download "
                     "it again)")
        raise SatVisionError(
            f"The model produced NaN or infinite values {where} ({str(self.dtype).removeprefix('torch.')}), which would "
            f"be written as a black image, so no image was written. {cause}, or use fewer steps or a lower guidance scale."
        )
