"""``satvision train generation``: fine-tune a DiffusionSat-compatible model on captioned GeoTIFFs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .printed_lines import PrintedLines

HELP = {"train": "fine-tune a generation model (DiffusionSat-compatible) on GeoTIFFs with captions"}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path,
                        help="folder of GeoTIFFs; captions in NAME.txt or captions.csv; metadata read from the files")
    parser.add_argument("--model", required=True, type=Path, help="starting model (a converted DiffusionSat file)")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--gradient-accumulation", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-6, help="constant learning rate (default 2e-6, as released)")
    parser.add_argument("--min-snr-gamma", type=float, default=5.0, help="0: plain MSE")
    parser.add_argument("--metadata-dropout", type=float, default=0.1, help="per field (default 0.1)")
    parser.add_argument("--caption-dropout", type=float, default=0.0)
    parser.add_argument("--ema-decay", type=float, default=0.9999, help="0: no EMA")
    parser.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no", help="on GPU")
    parser.add_argument("--image-size", type=int, help="training crop side (default: the model's)")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="write a model file every N steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")


def train(arguments: argparse.Namespace) -> int:
    from ..training.diffusion import DiffusionTrainingConfig, train_generation

    config = DiffusionTrainingConfig(
        steps=arguments.steps, batch_size=arguments.batch_size, gradient_accumulation=arguments.gradient_accumulation,
        lr=arguments.lr, min_snr_gamma=arguments.min_snr_gamma or None, metadata_dropout=arguments.metadata_dropout,
        caption_dropout=arguments.caption_dropout, ema_decay=arguments.ema_decay or None,
        mixed_precision=arguments.mixed_precision, image_size=arguments.image_size,
        checkpoint_every=arguments.checkpoint_every, seed=arguments.seed, workers=arguments.workers,
    )
    train_generation(arguments.data, arguments.model, arguments.output, config,
                     feedback=PrintedLines(arguments.quiet, file=sys.stdout), show_progress=not arguments.quiet)
    return 0
