"""Normalisation from raster values to network input, as the card describes it."""

from __future__ import annotations

import torch

from satvision.models.card import Normalisation, Rendering
from satvision.models.normalisation import normalise


def test_scale_then_mean_std_per_band():
    values = torch.tensor([[[1000.0]], [[3000.0]]])
    result = normalise(values, Normalisation(10000.0, mean=[0.1, 0.2], std=[0.1, 0.5]))
    torch.testing.assert_close(result, torch.tensor([[[0.0]], [[0.2]]]))


def test_rendering_stretches_clips_and_quantises_like_an_8bit_image():
    rendering = Rendering(low=[0.0], high=[0.3], levels=256)
    values = torch.tensor([[[[0.0, 1500.0, 3000.0, 9000.0, 1001.0]]]])
    result = normalise(values, Normalisation(10000.0, mean=[0.0], std=[1.0], rendering=rendering))
    expected = torch.tensor([0.0, 128 / 255, 1.0, 1.0, round(0.1001 / 0.3 * 255) / 255])
    torch.testing.assert_close(result.flatten(), expected)
    assert result.shape == values.shape
