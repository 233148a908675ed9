"""A small rain-rate model with trained-looking weights, for the tests of forecasting and of ensembles."""

from __future__ import annotations

import torch

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.models.convlstm.rain_rate import RainRateTransform


def small_rain_model(*, noise_scale: float = 0.1, **overrides) -> ConvLSTMForFramePrediction:
    """3 -> 2 frames, 6 hidden channels, patch 4, log(1 + R); every weight moved by 0.1 x standard normal noise
    (an ensemble's noise injection by `noise_scale`), so the forecast depends on the input (and the members on the
    noise). Seeded: the same call gives the same model."""
    torch.manual_seed(0)
    options = dict(
        hidden_sizes=[6],
        patch_size=4,
        num_input_frames=3,
        num_output_frames=2,
        rain_rate_transform=RainRateTransform("log1p").to_dict(),
    )
    model = ConvLSTMForFramePrediction(ConvLSTMConfig(**{**options, **overrides})).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            scale = noise_scale if "noise_injection" in name else 0.1
            parameter.add_(scale * torch.randn_like(parameter))
    return model
