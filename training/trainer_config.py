"""The training loop's settings (:class:`TrainerConfig`), each user-facing option declared once.

Torch-free on purpose: the command line builds every parser (``satvision --help``) from these
declarations without importing torch; :mod:`training.trainer` runs the loop they configure.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import SatVisionError
from ..core.options import option

SCHEDULES = ("cosine_restarts", "cosine", "constant")
MIXED_PRECISION = ("no", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")
KEEP = ("best", "last")


@dataclass
class TrainerConfig:
    """Optimisation, schedule, early stopping, precision, devices and output behaviour.

    The ``trainer`` of :class:`training.segmentation_settings.SegmentationTrainingSettings` and
    :class:`training.classification_settings.ClassificationTrainingSettings`, run by
    :class:`training.trainer.Trainer`. Each field's help is declared with the field (see
    core/options.py); ``satvision train segmentation --help`` (or ``classification``) lists them.
    Fields that are not user options (the origin notebook's ``cosine_restarts`` shape):
    ``restart_mult`` (each cycle this many times longer, t_mul), ``restart_decay`` (each restart's
    peak this fraction of the previous one, m_mul) and ``min_lr_fraction`` (the floor as a fraction
    of the peak, alpha).
    """

    epochs: int = option(30, help="training epochs", label="Epochs")
    batch_size: int = option(16, help="samples per training batch", label="Batch size")
    lr: float = option(1e-3, help="peak learning rate of AdamW", label="Peak learning rate")
    weight_decay: float = option(1e-4, help="AdamW weight decay", label="Weight decay")
    schedule: str = option("cosine_restarts", choices=SCHEDULES, label="Learning-rate schedule",
                           help="cosine_restarts: the origin notebook's Keras CosineDecayRestarts (t_mul 2, m_mul 0.9, alpha 0.1); "
                                "cosine: linear warm-up then cosine decay to 0.1×; constant")
    warmup_epochs: float = option(1.0, help="warm-up of the cosine schedule", label="Warm-up epochs")  # "cosine": linear from 0
    restart_epochs: float | None = option(None, help="first cosine_restarts cycle (default epochs/3)",
                                          label="First restart cycle (epochs)")  # cycles of 1/3 and 2/3 of the epochs
    restart_mult: float = 2.0  # each cycle this many times longer (the origin notebook's t_mul)
    restart_decay: float = 0.9  # each restart's peak this fraction of the previous one (m_mul)
    min_lr_fraction: float = 0.1  # the floor, as a fraction of the peak (alpha)
    freeze_encoder_epochs: int = option(0, label="Frozen-encoder epochs",
                                        help="train only the decoder for the first N epochs, encoder frozen (as the origin notebook "
                                             "notebook; useful with --encoder-weights)")
    early_stopping_patience: int = option(0, help="stop after N epochs without improvement, 0 = off",
                                          label="Early-stopping patience")
    monitor: str = option("iou_water", help="validation metric for best model / early stopping", label="Monitored metric")
    keep: str = option("best", choices=KEEP, label="Weights kept",
                       help="which weights the model file holds: best (by the monitored validation metric) or last "
                            "(the final epoch's, for when the validation images are too few to choose by)")
    grad_clip: float = option(1.0, help="max gradient norm, 0 = off", label="Gradient clipping")
    ema_decay: float = option(0.0, flag="--ema", metavar="DECAY", label="Weight-average decay",
                              help="validate and keep an exponential moving average of the weights (e.g. 0.999; 0 = off)")
    mixed_precision: str = option("no", choices=MIXED_PRECISION, help="on GPU (ignored on CPU)", label="Mixed precision")
    device: str = option("auto", choices=DEVICES, help="compute device", label="Device")
    workers: int = option(0, help="DataLoader worker processes", label="Data loader workers")
    seed: int = option(0, help="seeds the split, patches, augmentation and weights", label="Random seed")
    quiet: bool = option(False, help="no progress bars or epoch lines", label="Quiet")
    resume: bool = option(False, help="continue from OUTPUT/checkpoints", label="Resume")

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise SatVisionError(f"Unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}.")
        if self.keep not in KEEP:
            raise SatVisionError(f"Unknown weights to keep {self.keep!r}; choose one of {', '.join(KEEP)}.")
        if self.mixed_precision not in MIXED_PRECISION:
            raise SatVisionError(f"Unknown mixed precision {self.mixed_precision!r}; choose one of {', '.join(MIXED_PRECISION)}.")
        if self.epochs < 1 or self.batch_size < 1:
            raise SatVisionError("epochs and batch size must be at least 1.")
        if self.lr <= 0:
            raise SatVisionError("The learning rate must be positive.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise SatVisionError(f"The weight-average decay must be in [0, 1) (e.g. 0.999; 0 = off), not {self.ema_decay}.")

    @property
    def monitor_mode(self) -> str:
        """``min`` for losses and cross-entropy, ``max`` for scores."""
        return "min" if "loss" in self.monitor or "entropy" in self.monitor else "max"
