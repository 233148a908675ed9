"""bf16 against fp32: the frame-prediction model trained twice from the same weights on the same Moving MNIST
batches, once in fp32 and once under bf16 autocast, and the losses compared."""

from __future__ import annotations

import statistics

import torch

from ..data import generate_moving_mnist, load_bundled_digits
from ..models.convlstm.configuration_convlstm import ConvLSTMConfig
from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction
from ..utils.hardware import resolve_mixed_precision


def _moving_mnist_batches(steps: int, batch: int) -> torch.Tensor:
    """``steps`` batches of ``batch`` Moving MNIST sequences: float32 (steps, batch, 20, 1, 64, 64) in [0, 1]."""
    digits, _ = load_bundled_digits()
    data = generate_moving_mnist(steps * batch, digits, num_frames=20, seed=0)
    return torch.from_numpy(data).float().div(255).reshape(steps, batch, 20, 1, 64, 64)


def _loss_curve(config, initial: dict, data: torch.Tensor, device: str, dtype) -> list[float]:
    """The training losses of Adam (lr 1e-3) from weights ``initial``, one step per batch of ``data`` (10 frames
    observed, 10 predicted), under bf16 autocast when ``dtype``."""
    model = ConvLSTMForFramePrediction(config).to(device)
    model.load_state_dict(initial)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(data.shape[0]):
        frames = data[step].to(device)
        with torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = model(frames[:, :10], labels=frames[:, 10:]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def loss_check(steps: int, device: str, quick: bool) -> dict:
    """Train the frame-prediction model twice from the same weights on the same Moving MNIST batches,
    fp32 and bf16 autocast; compare the losses.

    Returns:
        a JSON-able dict: the setting, the mean loss of the last fifth of the steps in each precision
        (``final_fp32``, ``final_bf16``), their relative difference, the largest per-step relative difference,
        what ``mixed_precision: auto`` picks on ``device``, and both loss ``curves``.
    """
    batch = 2 if quick else 8
    data = _moving_mnist_batches(steps, batch)
    config = ConvLSTMConfig(hidden_sizes=[8] if quick else [64, 64], patch_size=4, kernel_size=3)
    torch.manual_seed(0)
    initial = ConvLSTMForFramePrediction(config).state_dict()
    curves = {
        name: _loss_curve(config, initial, data, device, dtype)
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16))
    }
    window = max(1, steps // 5)
    final = {name: statistics.mean(losses[-window:]) for name, losses in curves.items()}
    per_step = max(abs(b - a) / a for a, b in zip(curves["fp32"], curves["bf16"]))
    return dict(
        device=device,
        auto_precision=list(resolve_mixed_precision("auto", device)),
        steps=steps,
        batch=batch,
        config=dict(hidden_sizes=config.hidden_sizes, patch_size=4, kernel_size=3),
        final_fp32=final["fp32"],
        final_bf16=final["bf16"],
        final_relative_difference=abs(final["bf16"] - final["fp32"]) / final["fp32"],
        max_per_step_relative_difference=per_step,
        curves=curves,
    )
