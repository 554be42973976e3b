"""A network on a device: normalises raw raster batches and runs them, fast and measured.

On CUDA it uses channels-last memory and fp16 autocast; everywhere it runs under
``torch.inference_mode``. Probabilities are averaged over the test-time augmentation views (the
card's default unless one is given). It keeps the time spent in the forward passes, which
benchmarks compare with the end-to-end time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from ..core.devices import device_label, resolve_device
from ..models.augmented_views import averaged_probabilities, check_mode, pass_count
from ..models.card import ModelCard
from ..models.normalisation import normalise, subtract_offset

if TYPE_CHECKING:
    import torch


def augmentation_note(mode: str) -> str:
    """``", test-time augmentation d4 (8 passes)"`` for log lines; empty for ``none``."""
    return "" if mode == "none" else f", test-time augmentation {mode} ({pass_count(mode)} passes)"


class Predictor:
    def __init__(self, network: "torch.nn.Module", card: ModelCard, device: str = "auto",
                 test_time_augmentation: str | None = None) -> None:
        import torch

        self.card = card
        self.test_time_augmentation = check_mode(test_time_augmentation or card.tiling.test_time_augmentation)
        self.device = resolve_device(device)
        self.on_gpu = self.device.type == "cuda"
        network = network.to(self.device).eval()
        if self.on_gpu:
            network = network.to(memory_format=torch.channels_last)
        self.network = network
        self.forward_seconds = 0.0
        self.label = device_label(self.device)

    def class_probabilities(self, values: np.ndarray, valid: np.ndarray, offset: float = 0.0) -> "torch.Tensor":
        """Softmax class probabilities ``(B, classes, H, W)`` on the device, for raw values
        ``(B, bands, H, W)`` and validity ``(B, H, W)``; invalid pixels enter as the band mean.
        ``offset`` (the reflectance offset of the raster, see :func:`models.normalisation.inspect_raster_input`)
        is subtracted from the values first, clamped at 0."""
        import torch

        batch = torch.from_numpy(values)
        mask = torch.from_numpy(valid)
        if self.on_gpu:
            batch, mask = batch.pin_memory().to(self.device, non_blocking=True), mask.pin_memory().to(self.device, non_blocking=True)
        with torch.inference_mode():
            inputs = normalise(subtract_offset(batch, offset), self.card.normalisation, self.card.bands) * mask.unsqueeze(1)
            if self.on_gpu:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            started = time.perf_counter()
            with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.on_gpu):
                probabilities = averaged_probabilities(self.network, inputs, self.test_time_augmentation)
            if self.on_gpu:
                torch.cuda.synchronize(self.device)
            self.forward_seconds += time.perf_counter() - started
            return probabilities

    def class_probability(self, values: np.ndarray, valid: np.ndarray, class_index: int, offset: float = 0.0) -> np.ndarray:
        """Probability of one class, ``(B, H, W)`` float32 on the CPU."""
        return self.class_probabilities(values, valid, offset)[:, class_index].cpu().numpy()
