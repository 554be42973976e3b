"""A generic training loop on ``accelerate``: one CPU, one GPU, or DDP across GPUs, same code.

Run a training command as usual for one device, or under ``accelerate launch`` / ``torchrun`` for
several GPUs: the training batches are sharded by accelerate, validation tiles are sharded by
process index and their confusion matrices summed, and only the main process writes files.

Per epoch it trains, validates, appends a row to ``log.csv``, keeps the best weights by a
monitored validation metric (``checkpoints/best.safetensors``) and saves a resumable checkpoint:
``checkpoints/last.safetensors`` (weights) and ``checkpoints/last_state.pt`` (optimizer, scheduler,
epoch, early-stopping state: tensors and plain values only, read back with
``torch.load(weights_only=True)``). Both are written atomically, so an interrupted run (Ctrl-C)
always leaves the last complete epoch resumable.

With ``ema_decay`` the loop also keeps an exponential moving average of the weights (timm's
``ModelEmaV3``, decay warmed up from 0 so short runs are not dominated by the starting weights).
Validation, the best weights and the final model are then the averaged ones; ``last.safetensors``
keeps the raw weights (to resume) and the checkpoint state the average.

The network ends with the best weights, or with ``keep="last"`` the final epoch's (averaged ones
with ``ema_decay``): :attr:`TrainingResult.kept_epoch` says which.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..core.atomic import atomic_path
from ..core.errors import OperationCancelled, SatVisionError
from ..core.feedback import Feedback, SilentFeedback
from .trainer_config import TrainerConfig

CHECKPOINTS = "checkpoints"
LAST_WEIGHTS = "last.safetensors"
LAST_STATE = "last_state.pt"
BEST_WEIGHTS = "best.safetensors"
LOG = "log.csv"

SaveWeights = Callable[[Path, Mapping[str, torch.Tensor]], None]


class Metrics(Protocol):
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None: ...
    def state(self) -> torch.Tensor: ...
    def load_state(self, state: torch.Tensor) -> None: ...
    def compute(self) -> dict[str, float]: ...


class TrainingTask(Protocol):
    """What the loop needs from a task (segmentation now, classification later)."""

    def inputs(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Network input of a batch already on the device (normalisation happens here)."""

    def training_target(self, batch: Mapping[str, torch.Tensor]) -> Any:
        """What the loss of a training step compares the outputs with: ``batch["target"]``, or more
        (a distillation teacher's probability beside the labels)."""

    def loss(self, outputs: Mapping[str, Any], target: Any) -> torch.Tensor:
        """Training loss of :class:`TrainingOutputs` outputs against ``batch["target"]`` (validation) or
        ``training_target(batch)`` (training steps)."""

    def new_metrics(self) -> Metrics:
        """A fresh metric accumulator."""


class TrainingOutputs(nn.Module):
    """Calls ``network.training_outputs(x)`` when the network has it (deep supervision, CGM), else
    ``{"logits": network(x)}``. Wrapping it (not the network) in DDP keeps gradient
    synchronisation on the path the loss actually uses."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        if hasattr(self.network, "training_outputs"):
            return self.network.training_outputs(x)
        return {"logits": self.network(x)}


@dataclass
class EarlyStopping:
    """Best value of the monitored metric, its epoch, and epochs since it improved."""

    patience: int
    mode: str = "max"
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value``; True when it is the best so far (the first epoch always is)."""
        better = self.best is None or (
            not math.isnan(value)
            and (math.isnan(self.best) or (value > self.best if self.mode == "max" else value < self.best))
        )
        if better:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["best"], int(state["best_epoch"]), int(state["bad_epochs"])


@dataclass
class TrainingResult:
    best_epoch: int
    best_value: float | None
    monitor: str
    last_epoch: int
    stopped_early: bool
    history: list[dict[str, Any]]
    seconds: float
    kept_epoch: int = 0
    kept_metrics: dict[str, Any] = field(default_factory=dict)  # the log row of the kept epoch


def learning_rate_factor(step: int, config: TrainerConfig, steps_per_epoch: int) -> float:
    """The learning rate at optimizer step ``step`` as a fraction of ``config.lr``.

    ``cosine_restarts`` is Keras' ``CosineDecayRestarts`` that the origin notebook used (first cycle,
    ``t_mul``, ``m_mul``, ``alpha``): cosine decay from the peak to ``alpha * peak`` over a cycle,
    then a restart at ``m_mul`` times the previous peak in a cycle ``t_mul`` times longer.
    ``cosine`` warms up linearly, then decays once to ``alpha``.
    """
    alpha = config.min_lr_fraction
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "cosine":
        warmup = int(config.warmup_epochs * steps_per_epoch)
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * progress))
    first = config.restart_epochs if config.restart_epochs else config.epochs / 3
    length = max(1.0, first * steps_per_epoch)
    position, peak = float(step), 1.0
    while position >= length:
        position -= length
        length *= config.restart_mult
        peak *= config.restart_decay
    return peak * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * position / length)))


def save_safetensors(path: Path, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Plain weights (no card): the default when the caller gives no ``save_weights``."""
    from safetensors.torch import save_file

    save_file({name: tensor.detach().contiguous().cpu() for name, tensor in state_dict.items()}, str(path))


class Trainer:
    """Trains ``network`` for ``task``; writes ``log.csv`` and ``checkpoints/`` in ``output``.

    ``save_weights(path, state_dict)`` writes a weight file (the segmentation trainer passes one
    that stores the model card too, so every checkpoint is a loadable model file).
    ``feedback.cancelled()`` is polled every step (for QGIS); Ctrl-C works anyway. The run's lines
    (epoch summaries, where it trains) go to ``feedback.info`` from the main process unless
    ``config.quiet``; the tqdm bars of the epochs are the trainer's own (stderr, on a terminal).
    """

    def __init__(self, network: nn.Module, task: TrainingTask, config: TrainerConfig, output: Path,
                 save_weights: SaveWeights = save_safetensors, feedback: Feedback | None = None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.network = network
        self.task = task
        self.config = config
        self.output = Path(output)
        self.checkpoints = self.output / CHECKPOINTS
        self.save_weights = save_weights
        self.feedback = feedback or SilentFeedback()
        self.ema = None  # timm ModelEmaV3 during fit() when config.ema_decay
        device = (config.device or "auto").lower()
        mixed_precision = config.mixed_precision
        if mixed_precision != "no" and (device == "cpu" or (device == "auto" and not torch.cuda.is_available())):
            mixed_precision = "no"  # autocast on CPU is slower than float32
        if device.startswith("cuda") and not torch.cuda.is_available():
            from ..core.devices import resolve_device

            resolve_device(device)  # raises the clear "no CUDA" message
        self.accelerator = Accelerator(cpu=device == "cpu", mixed_precision=mixed_precision)
        if mixed_precision != config.mixed_precision:
            self.say(f"Mixed precision {config.mixed_precision} is for GPUs; training in float32 on the CPU.")
        set_seed(config.seed)

    # ------------------------------------------------------------------ public

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def placement(self) -> str:
        """Where the run trains, for its log: the device, and the process count under DDP."""
        processes = self.accelerator.num_processes
        return str(self.device) if processes == 1 else f"{processes} data-parallel processes ({self.device.type})"

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def has_checkpoint(self) -> bool:
        return (self.checkpoints / LAST_STATE).is_file() and (self.checkpoints / LAST_WEIGHTS).is_file()

    def fit(self, train_data: Dataset, val_data: Dataset) -> TrainingResult:
        started = time.perf_counter()
        config, accelerator = self.config, self.accelerator
        stopper = EarlyStopping(config.early_stopping_patience, config.monitor_mode)
        monitored = ["val_loss", *(name for name in self.task.new_metrics().compute() if name != "pixels")]
        if config.monitor not in monitored:
            raise SatVisionError(f"Unknown metric to monitor {config.monitor!r}; choose one of {', '.join(monitored)}.")
        history: list[dict[str, Any]] = []
        first_epoch = 1
        state: dict[str, Any] | None = None
        if config.resume and self.has_checkpoint():
            state = torch.load(self.checkpoints / LAST_STATE, map_location="cpu", weights_only=True)
            self._load_weights(self.checkpoints / LAST_WEIGHTS)
            stopper.load_state_dict(state["early_stopping"])
            first_epoch = int(state["epoch"]) + 1
            history = [row for row in read_log(self.output / LOG) if row.get("epoch", math.inf) <= int(state["epoch"])]
            self.say(f"Resuming after epoch {state['epoch']} from {self.checkpoints / LAST_STATE}")
        elif config.resume:
            self.say(f"Nothing to resume in {self.checkpoints}: starting a new training.")
        else:
            check_new_run(self.output)

        self.ema = self._new_ema(state)
        module = TrainingOutputs(self.network)
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        loader = DataLoader(
            train_data,
            batch_size=config.batch_size,
            shuffle=False,  # items are already random draws, seeded by (seed, epoch, index)
            num_workers=config.workers,
            drop_last=len(train_data) >= config.batch_size * accelerator.num_processes,
            pin_memory=self.device.type == "cuda",
        )
        module, prepared_optimizer, loader = accelerator.prepare(module, optimizer, loader)
        steps_per_epoch = max(1, len(loader))
        # A plain function (not a callable object) keeps the scheduler's state free of pickled objects.
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, config, steps_per_epoch))
        if state is not None:
            prepared_optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        encoder = getattr(self.network, "encoder", None)
        if config.freeze_encoder_epochs and encoder is None:
            raise SatVisionError("--freeze-encoder-epochs needs a network with an `encoder`; this one has none.")

        last_epoch = first_epoch - 1
        for epoch in range(first_epoch, config.epochs + 1):
            if stopper.should_stop:
                break
            epoch_started = time.perf_counter()
            # accelerate's loader passes its own epoch counter to ``dataset.set_epoch`` on every
            # iteration (0, 1, … from this process start); setting it keeps resumed runs identical.
            loader.set_epoch(epoch)
            frozen = epoch <= config.freeze_encoder_epochs
            train_loss = self._train_epoch(module, prepared_optimizer, scheduler, loader, epoch, encoder if frozen else None)
            val_loss, metrics = self.evaluate(val_data, description=f"epoch {epoch} validation", network=self.evaluated_network)
            row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss, "val_loss": val_loss,
                   **{name: value for name, value in metrics.items() if name != "pixels"},
                   "encoder_frozen": int(frozen), "seconds": round(time.perf_counter() - epoch_started, 3)}
            improved = stopper.update(float(row[config.monitor]), epoch)
            history.append(row)
            if self.is_main:
                write_log(self.output / LOG, history)
                if improved:
                    with atomic_path(self.checkpoints / BEST_WEIGHTS) as temporary:
                        self.save_weights(temporary, self.evaluated_network.state_dict())
                self._save_checkpoint(epoch, prepared_optimizer, scheduler, stopper)
            accelerator.wait_for_everyone()
            last_epoch = epoch
            self.say(_summary(row, config.monitor, improved))

        kept_epoch = self._keep_final_weights(stopper.best_epoch, last_epoch)
        kept_row = next((row for row in history if int(row["epoch"]) == kept_epoch), {})
        return TrainingResult(
            best_epoch=stopper.best_epoch,
            best_value=stopper.best,
            monitor=config.monitor,
            last_epoch=last_epoch,
            stopped_early=stopper.should_stop and last_epoch < config.epochs,
            history=history,
            seconds=time.perf_counter() - started,
            kept_epoch=kept_epoch,
            kept_metrics=kept_row,
        )

    def _keep_final_weights(self, best_epoch: int, last_epoch: int) -> int:
        """Leave the network with the weights the model file keeps; returns their epoch."""
        if self.config.keep == "last":
            if self.ema is not None:
                self.network.load_state_dict(self.ema.module.state_dict())
            return last_epoch
        if (self.checkpoints / BEST_WEIGHTS).is_file():
            self._load_weights(self.checkpoints / BEST_WEIGHTS)
        return best_epoch

    @property
    def evaluated_network(self) -> nn.Module:
        """What validation measures and the best weights hold: the weight average when there is one."""
        return self.ema.module if self.ema is not None else self.network

    def evaluate(self, data: Dataset, description: str = "evaluation", network: nn.Module | None = None) -> tuple[float, dict[str, float]]:
        """Mean loss and metrics of ``network`` (default the trained one; inference mode) on
        ``data``, over all processes."""
        accelerator = self.accelerator
        network = (self.network if network is None else network).to(self.device)
        shard = Subset(data, range(accelerator.process_index, len(data), accelerator.num_processes))
        loader = DataLoader(shard, batch_size=self.config.batch_size, num_workers=self.config.workers,
                            pin_memory=self.device.type == "cuda")
        metrics = self.task.new_metrics()
        loss_sum = torch.zeros(2, dtype=torch.float64)
        was_training = network.training
        network.eval()
        with torch.no_grad():
            for batch in self._progress(loader, description):
                self._check_cancelled()
                batch = {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}
                inputs = self.task.inputs(batch)
                with accelerator.autocast():
                    logits = network(inputs)
                    outputs = network.training_outputs(inputs) if hasattr(network, "training_outputs") else {"logits": logits}
                loss = self.task.loss(outputs, batch["target"])
                loss_sum += torch.tensor([float(loss) * len(inputs), len(inputs)], dtype=torch.float64)
                metrics.update(logits.float(), batch["target"])
        network.train(was_training)
        state = torch.cat([metrics.state(), loss_sum])
        if accelerator.num_processes > 1:
            state = accelerator.reduce(state.to(self.device), reduction="sum").cpu()
        metrics.load_state(state[:-2])
        loss = float(state[-2] / state[-1]) if state[-1] > 0 else math.nan
        return loss, metrics.compute()

    # ------------------------------------------------------------------ internals

    def _train_epoch(self, module, optimizer, scheduler, loader, epoch: int, frozen_encoder: nn.Module | None) -> float:
        accelerator = self.accelerator
        module.train()
        if frozen_encoder is not None:
            frozen_encoder.eval()  # frozen batch-norm statistics too, as the origin notebook's freeze_batch_norm
        loss_total, samples = 0.0, 0
        bar = self._progress(loader, f"epoch {epoch}/{self.config.epochs}")
        for batch in bar:
            self._check_cancelled()
            inputs = self.task.inputs(batch)
            target = self.task.training_target(batch)
            with accelerator.autocast():
                outputs = module(inputs)
            loss = self.task.loss(outputs, target)
            accelerator.backward(loss)
            if frozen_encoder is not None:
                # Dropping the gradients (rather than requires_grad=False) keeps DDP's gradient
                # buckets unchanged when the encoder is unfrozen; AdamW skips parameters without one.
                for parameter in frozen_encoder.parameters():
                    parameter.grad = None
            if self.config.grad_clip > 0 and accelerator.sync_gradients:
                accelerator.clip_grad_norm_([p for p in module.parameters() if p.grad is not None], self.config.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update(self.network, step=scheduler.last_epoch)  # the scheduler counts optimiser steps
            value = float(loss.detach())
            loss_total, samples = loss_total + value * len(inputs), samples + len(inputs)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        totals = torch.tensor([loss_total, samples], dtype=torch.float64)
        if accelerator.num_processes > 1:
            totals = accelerator.reduce(totals.to(self.device), reduction="sum").cpu()
        return float(totals[0] / totals[1]) if totals[1] > 0 else math.nan

    def _save_checkpoint(self, epoch: int, optimizer, scheduler, stopper: EarlyStopping) -> None:
        state = {
            "epoch": epoch,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "early_stopping": stopper.state_dict(),
        }
        if self.ema is not None:
            state["ema"] = {name: tensor.detach().cpu() for name, tensor in self.ema.module.state_dict().items()}
        # Both files are complete before either is renamed into place (the state first, the
        # weights a moment later), so a cancellation never pairs new weights with an old state.
        with atomic_path(self.checkpoints / LAST_WEIGHTS) as weights, atomic_path(self.checkpoints / LAST_STATE) as state_file:
            self.save_weights(weights, self.network.state_dict())
            torch.save(state, state_file)

    def _new_ema(self, state: Mapping[str, Any] | None):
        """timm's weight average of the network (from the resumed checkpoint's), or None when off."""
        if not self.config.ema_decay:
            return None
        from timm.utils import ModelEmaV3

        self.network.to(self.device)
        ema = ModelEmaV3(self.network, decay=self.config.ema_decay, use_warmup=True, device=self.device)
        if state is not None:
            if "ema" not in state:
                raise SatVisionError(f"The checkpoint in {self.checkpoints} was trained without --ema; resume it without.")
            ema.module.load_state_dict(state["ema"])
        return ema

    def _load_weights(self, path: Path) -> None:
        from safetensors.torch import load_file

        from ..models.modelfile import check_weights_match

        weights = load_file(str(path), device="cpu")
        check_weights_match(self.network, weights, str(path))
        self.network.load_state_dict(weights, strict=True)

    def _progress(self, iterable, description: str):
        from tqdm.auto import tqdm

        disable = self.config.quiet or not self.is_main or not sys.stderr.isatty()
        return tqdm(iterable, desc=description, leave=False, disable=disable, dynamic_ncols=True)

    def _check_cancelled(self) -> None:
        if self.feedback.cancelled():
            raise OperationCancelled("Training cancelled; the last completed epoch is saved in checkpoints/ (resume it).")

    def say(self, message: str) -> None:
        if not self.config.quiet and self.is_main:
            self.feedback.info(message)


def _summary(row: Mapping[str, Any], monitor: str, improved: bool) -> str:
    shown = ", ".join(
        f"{name} {row[name]:.4f}" for name in ("train_loss", "val_loss", "accuracy", "iou_water", "dice") if name in row
    )
    mark = f"  ← best {monitor}" if improved else ""
    return f"epoch {row['epoch']}: {shown}, lr {row['lr']:.2e}, {row['seconds']:.1f} s{mark}"


def check_new_run(output: Path) -> None:
    """Refuse to start a new training over the checkpoints of another one."""
    if (Path(output) / CHECKPOINTS / LAST_STATE).is_file():
        raise SatVisionError(
            f"{output} already holds a training run ({CHECKPOINTS}/{LAST_STATE}). Continue it with --resume, "
            "or choose another output folder."
        )


def write_log(path: Path, rows: list[Mapping[str, Any]]) -> None:
    """Write the whole CSV log atomically (it is small; a crash never leaves half a row)."""
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as temporary:
        temporary.write_text(buffer.getvalue(), encoding="utf-8")


def read_log(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV log, numbers as int or float as written; [] when there is none."""
    if not Path(path).is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            parsed: dict[str, Any] = {}
            for key, value in row.items():
                for kind in (int, float):
                    try:
                        parsed[key] = kind(value)
                        break
                    except (TypeError, ValueError):
                        parsed[key] = value
            rows.append(parsed)
    return rows
