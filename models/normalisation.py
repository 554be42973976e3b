"""From raster values to network input, exactly as a model card says (training and inference alike)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .card import Normalisation

if TYPE_CHECKING:
    import torch


def normalise(values: "torch.Tensor", normalisation: Normalisation) -> "torch.Tensor":
    """Normalise raw raster values of shape ``(N, C, H, W)`` or ``(C, H, W)`` (any float dtype).

    ``reflectance = values / reflectance_scale``; then the optional rendering stretch
    ``clip((reflectance - low) / (high - low), 0, 1)`` (quantised to ``levels`` steps when set);
    then ``(x - mean) / std`` per band. Computed in float32 on the tensor's device.
    """
    import torch

    channel_axis = values.dim() - 3
    shape = [1] * values.dim()
    shape[channel_axis] = -1

    def per_band(numbers: list[float]) -> "torch.Tensor":
        return torch.tensor(numbers, dtype=torch.float32, device=values.device).reshape(shape)

    x = values.float() / float(normalisation.reflectance_scale)
    rendering = normalisation.rendering
    if rendering is not None:
        low, high = per_band(rendering.low), per_band(rendering.high)
        x = ((x - low) / (high - low)).clamp_(0.0, 1.0)
        if rendering.levels:
            steps = rendering.levels - 1
            x = torch.round(x * steps) / steps
    return (x - per_band(normalisation.mean)) / per_band(normalisation.std)
