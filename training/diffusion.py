"""Fine-tuning a DiffusionSat-compatible generation model on captioned GeoTIFFs.

Starts from a SatVision generation model file (a converted DiffusionSat release, or any model
in that format) and trains its UNet, metadata embedders included; the VAE and text encoder stay
frozen. The recipe of the released models: v-prediction or epsilon as the model's scheduler
says, min-SNR loss weighting (gamma 5), metadata dropout per field (each field zeroed, the
learned "unknown", with probability 0.1), EMA of the UNet weights, mixed precision and gradient
accumulation through ``accelerate`` (the engine diffusers uses): the same command runs on one
CPU and, under ``accelerate launch``, on several GPUs.

Writes ``model.safetensors`` (EMA weights, card with the training figures), checkpoints every
``--checkpoint-every`` steps (same format, so any can be used or fine-tuned further),
``log.csv`` and ``loss.png``.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import datetime as dt
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..core.atomic import atomic_path
from ..core.errors import OperationCancelled, SatVisionError
from ..core.feedback import Feedback, SilentFeedback
from ..models.generation import load_tokenizer, scheduler_config
from ..models.modelfile import load_model, read_files, save_model
from ..version import __version__
from .diffusion_data import CaptionedImages, find_images


@dataclass
class DiffusionTrainingConfig:
    steps: int = 1000
    batch_size: int = 4
    gradient_accumulation: int = 1
    lr: float = 2e-6
    weight_decay: float = 1e-2
    min_snr_gamma: float | None = 5.0
    metadata_dropout: float = 0.1
    caption_dropout: float = 0.0
    ema_decay: float | None = 0.9999
    mixed_precision: str = "no"
    image_size: int | None = None
    checkpoint_every: int = 0
    seed: int = 0
    workers: int = 0
    max_grad_norm: float = 1.0


def loss_weights(scheduler: Any, timesteps: torch.Tensor, prediction_type: str, gamma: float | None) -> torch.Tensor:
    """Min-SNR-γ weights (Hang et al. 2023): min(SNR, γ)/SNR for ε, min(SNR, γ)/(SNR + 1) for v."""
    if not gamma:
        return torch.ones_like(timesteps, dtype=torch.float32)
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    clipped = torch.minimum(snr, torch.full_like(snr, gamma))
    return clipped / (snr + 1.0) if prediction_type == "v_prediction" else clipped / snr


def drop_metadata(metadata: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Each field of each sample set to 0 (DiffusionSat's "unknown") with ``probability``."""
    if probability <= 0:
        return metadata
    keep = torch.rand(metadata.shape, generator=generator) >= probability
    return metadata * keep.to(metadata.device)


def train_generation(
    data: str | Path,
    model_path: str | Path,
    output: str | Path,
    config: DiffusionTrainingConfig,
    *,
    feedback: Feedback | None = None,
    show_progress: bool = True,
) -> Path:
    """Fine-tune the model in ``model_path`` on ``data``; returns the written ``model.safetensors``.

    The UNet (metadata embedders included) is trained with the released models' recipe (see the
    module); the VAE and text encoder stay frozen. Writes ``model.safetensors`` (EMA weights),
    checkpoints, ``log.csv`` and ``loss.png`` in ``output``. Under ``accelerate launch`` the same
    call trains on several GPUs.

    Args:
        data (str | Path): A folder of GeoTIFFs (any depth), each with a caption in ``NAME.txt``
            beside it or in the folder's ``captions.csv`` / ``captions.json``; the metadata (centre,
            GSD, date, cloud cover) are read from the files (see :mod:`training.diffusion_data`).
        model_path (str | Path): The SatVision generation model file to start from (a converted
            DiffusionSat release, or an earlier fine-tune).
        output (str | Path): The folder to write in (created if missing).
        config (DiffusionTrainingConfig): Steps, batch size, gradient accumulation, learning rate,
            weight decay, min-SNR gamma (None: off), metadata and caption dropout, EMA decay (None:
            off), mixed precision (``no``, ``fp16``, ``bf16``), crop size (None: the model's),
            checkpoint interval in steps (0: none), seed, loader workers and gradient clipping.
        feedback (Feedback | None): Gets the run's lines and is asked every step whether to stop:
            any object with ``progress``, ``cancelled``, ``info`` and ``warning``
            (:class:`core.feedback.Feedback`). None (default): silent, never cancelled.
        show_progress (bool): Draw the tqdm bar of the steps (the command's own, on the main
            process). Default True.

    Returns:
        Path: The ``model.safetensors`` written in ``output``.

    Raises:
        SatVisionError: ``data`` is not a folder, holds no images or an image without a caption;
            the loss became NaN or infinite (lower the learning rate or change mixed precision).
        ModelFileError: ``model_path`` is unreadable or unsafe, or not a generation model.
        MissingDependencyError: accelerate, diffusers or transformers is not installed.
        OperationCancelled: ``feedback.cancelled()`` became true; checkpoints already written are kept.

    Example:
        >>> from satvision.training.diffusion import DiffusionTrainingConfig, train_generation
        >>> config = DiffusionTrainingConfig(steps=2000, batch_size=4, lr=2e-6, mixed_precision="bf16")
        >>> model = train_generation("captioned_tiles", "diffusionsat.safetensors", "runs/finetune", config)
        >>> print(model)
    """
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel

    feedback = feedback or SilentFeedback()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.gradient_accumulation,
                              cpu=not torch.cuda.is_available())
    torch.manual_seed(config.seed)
    network, card = load_model(model_path, task="generation")
    tokenizer = load_tokenizer(read_files(model_path))
    schedule = scheduler_config(card)
    prediction_type = schedule.get("prediction_type", "epsilon")
    noise_scheduler = DDPMScheduler.from_config({key: value for key, value in schedule.items() if not key.startswith("_")})
    size = config.image_size or int(card.architecture.params.get("image_size") or card.tiling.tile_size)
    items = find_images(data)
    dataset = CaptionedImages(items, size, seed=config.seed)
    feedback.info(f"{len(items)} captioned images from {data}; {size} px crops; {prediction_type} prediction; "
        f"{config.steps} steps of batch {config.batch_size} x {config.gradient_accumulation} accumulation x "
        f"{accelerator.num_processes} process(es) on {accelerator.device}")

    unet, vae, text_encoder = network.unet, network.vae, network.text_encoder
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    unet.train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, num_workers=config.workers, drop_last=False,
                        generator=torch.Generator().manual_seed(config.seed))
    unet, optimizer, loader = accelerator.prepare(unet, optimizer, loader)
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    vae.to(accelerator.device, weight_dtype)
    text_encoder.to(accelerator.device, weight_dtype)
    ema = EMAModel(accelerator.unwrap_model(unet).parameters(), decay=config.ema_decay) if config.ema_decay else None
    if ema is not None:
        ema.to(accelerator.device)
    noise_generator = torch.Generator().manual_seed(config.seed + 1)
    scaling = getattr(vae.config, "scaling_factor", 0.18215)
    rows: list[dict[str, Any]] = []
    step, epoch, started = 0, 0, time.time()
    progress = None
    if show_progress and accelerator.is_main_process:
        from tqdm import tqdm

        progress = tqdm(total=config.steps, unit="step", desc="fine-tuning")
    while step < config.steps:
        dataset.set_epoch(epoch)
        for batch in loader:
            if feedback.cancelled():
                raise OperationCancelled("Training cancelled; the last checkpoint (if any) is kept.")
            with accelerator.accumulate(unet):
                pixels = batch["pixels"].to(accelerator.device, weight_dtype)
                with torch.no_grad():
                    latents = vae.encode(pixels).latent_dist.sample() * scaling
                    captions = [("" if config.caption_dropout and torch.rand(1, generator=noise_generator).item() < config.caption_dropout else c)
                                for c in batch["caption"]]
                    tokens = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                                       truncation=True, return_tensors="pt").input_ids.to(accelerator.device)
                    text = text_encoder(tokens)[0]
                latents = latents.float()
                noise = torch.randn(latents.shape, generator=noise_generator).to(latents.device)
                timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],),
                                          generator=noise_generator).to(latents.device)
                noisy = noise_scheduler.add_noise(latents, noise, timesteps)
                target = noise_scheduler.get_velocity(latents, noise, timesteps) if prediction_type == "v_prediction" else noise
                metadata = drop_metadata(batch["metadata"], config.metadata_dropout, noise_generator).to(latents.device)
                prediction = unet(noisy.to(weight_dtype), timesteps, encoder_hidden_states=text.to(weight_dtype),
                                  class_labels=metadata).sample.float()
                per_sample = torch.nn.functional.mse_loss(prediction, target.float(), reduction="none").mean(dim=(1, 2, 3))
                weights = loss_weights(noise_scheduler, timesteps.cpu(), prediction_type, config.min_snr_gamma).to(per_sample.device)
                loss = (per_sample * weights).mean()
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(unet.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            step += 1
            if ema is not None:
                ema.step(accelerator.unwrap_model(unet).parameters())
            value = accelerator.gather(loss.detach()[None]).mean().item()
            if not math.isfinite(value):
                raise SatVisionError(f"The loss became {value} at step {step}; lower --lr or use --mixed-precision bf16/no.")
            rows.append({"step": step, "epoch": epoch, "loss": value, "lr": optimizer.param_groups[0]["lr"],
                         "seconds": round(time.time() - started, 3)})
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{value:.4f}")
            if config.checkpoint_every and step % config.checkpoint_every == 0 and accelerator.is_main_process:
                write_model(output / "checkpoints" / f"step-{step}.safetensors", network, accelerator.unwrap_model(unet),
                            ema, card, model_path, rows, config, items)
            if step >= config.steps:
                break
        epoch += 1
    if progress is not None:
        progress.close()
    accelerator.wait_for_everyone()
    final = output / "model.safetensors"
    if accelerator.is_main_process:
        write_model(final, network, accelerator.unwrap_model(unet), ema, card, model_path, rows, config, items)
        write_log(output / "log.csv", rows)
        plot_loss(output / "loss.png", rows)
        feedback.info(f"Wrote {final} after {step} steps (last loss {rows[-1]['loss']:.4f}), log.csv and loss.png")
    return final


def write_model(path: Path, network: Any, unet: Any, ema: Any, card: Any, source: Path, rows: list[dict[str, Any]],
                config: DiffusionTrainingConfig, items: list) -> None:
    """The whole generation model with the (EMA) UNet weights, in the SatVision format."""
    trained = copy.deepcopy(unet).float()
    if ema is not None:
        ema.copy_to(trained.parameters())
    state = {f"unet.{key}": value.detach().cpu() for key, value in trained.state_dict().items()}
    state.update({key: value.detach().cpu().float() for key, value in network.state_dict().items() if not key.startswith("unet.")})
    recent = [row["loss"] for row in rows[-20:]]
    metrics = {"steps": len(rows), "final_loss_mean_last_20": sum(recent) / len(recent) if recent else None}
    new_card = dataclasses.replace(
        card,
        name=f"{card.name}-finetuned",
        metrics=metrics,
        training_data=f"fine-tuned on {len(items)} captioned GeoTIFFs ({Path(items[0].path).parent}) from {card.name}",
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        software_version=__version__,
        extra={**card.extra, "fine_tuning": {key: value for key, value in dataclasses.asdict(config).items()},
               "weights_storage": "float32"},
    )
    save_model(path, state, new_card, files=read_files(source))


def write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as temporary:
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def plot_loss(path: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot([row["step"] for row in rows], [row["loss"] for row in rows], linewidth=0.8)
    axis.set_xlabel("step")
    axis.set_ylabel("min-SNR weighted loss")
    axis.set_title("Generation fine-tuning")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)
    plt.close(figure)
