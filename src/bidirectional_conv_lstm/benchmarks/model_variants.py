"""What is timed for configuration (e): ``ConvLSTMForFramePrediction`` in the OpenSTL ConvLSTM-S shape (fp32 and
bf16 autocast), against the limit of one convolution of its widest recurrent shape."""

from __future__ import annotations

import torch

from ..models.convlstm.configuration_convlstm import ConvLSTMConfig
from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction
from .layer_variants import LIMITS, limit_variant
from .measurement import Variant, peak_allocated_mib, run_rounds
from .shapes import LayerConfig, model_forward_flops
from .summary import add_sequence_rates, summarize

MODEL_TITLE = "ConvLSTMForFramePrediction, OpenSTL ConvLSTM-S shape"


def benchmark_model_config(quick: bool) -> tuple[ConvLSTMConfig, tuple[int, int], int]:
    """``(config, (observed frames, predicted frames), frame size)`` of model (e), or of a tiny one."""
    if quick:
        config = ConvLSTMConfig(
            hidden_sizes=[4], patch_size=4, kernel_size=3, num_input_frames=3, num_output_frames=2
        )
        return config, (3, 2), 16
    # OpenSTL ConvLSTM-S on Moving MNIST: 4 x 128 hidden, kernel 5, patch 4, 10 -> 10 frames of 64x64
    config = ConvLSTMConfig(
        hidden_sizes=[128, 128, 128, 128],
        patch_size=4,
        kernel_size=5,
        num_input_frames=10,
        num_output_frames=10,
    )
    return config, (10, 10), 64


def _model_variant(name, dtype, model, pixels, labels, device, flops) -> Variant:
    """A variant timing a training step (loss, backward; no optimizer) and a prediction, under bf16 autocast
    when ``dtype``."""

    def train():
        model.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = model(pixels, labels=labels).loss
        loss.backward()

    def infer():
        with (
            torch.no_grad(),
            torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None),
        ):
            model(pixels, num_output_frames=labels.shape[1])

    return Variant(name, train, infer, flops, "ConvLSTMForFramePrediction", device=device)


def build_model_variants(device: str, batch: int, quick: bool, names: set[str] | None) -> list[Variant]:
    """The wanted variants of model (e) at ``batch`` (``names``; None: all): ``ours``, ``ours+bf16``, and the
    limit, one convolution of the model's widest recurrent shape over all ``B * (T_in + T_out)`` frames."""
    torch.manual_seed(0)
    config, frames, size = benchmark_model_config(quick)
    model = ConvLSTMForFramePrediction(config).to(device)
    pixels = torch.rand(batch, frames[0], 1, size, size, device=device)
    labels = torch.rand(batch, frames[1], 1, size, size, device=device)
    flops = model_forward_flops(config, batch, size)
    variants = [
        _model_variant(name, dtype, model, pixels, labels, device, flops)
        for name, dtype in (("ours", None), ("ours+bf16", torch.bfloat16))
        if names is None or name in names
    ]
    widest = max(config.hidden_sizes)
    shape = LayerConfig(
        "e", "model limit", batch, sum(frames), widest, size // config.patch_size, widest, config.kernel_size
    )
    for dtype, label, layout in LIMITS:
        if names is None or label in names:
            variants.append(limit_variant(label, shape, device, dtype, layout))
    return variants


def model_section(device: str, batch: int, quick: bool, names: set[str] | None, repeats: int) -> dict:
    """Time model (e) round-robin over ``repeats`` rounds and measure each variant's peak memory; returns the
    report's section: ``title``, ``shape`` and ``rows`` (with sequences per second)."""
    variants = build_model_variants(device, batch, quick, names)
    run_rounds(variants, repeats)
    for variant in variants:
        variant.peak_mib = peak_allocated_mib(variant.train, device)
    rows = summarize(variants, baseline="none")
    add_sequence_rates(rows, batch)
    return dict(
        title=MODEL_TITLE,
        shape=(
            f"batch {batch}; 4 x 128 hidden, kernel 5, patch 4, 10 -> 10 frames of 64x64 (bidirectional encoder)"
            if not quick
            else f"batch {batch}; tiny"
        ),
        rows=rows,
    )
