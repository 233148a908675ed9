"""What is timed for configuration (e): ``ConvLSTMForFramePrediction`` in the OpenSTL ConvLSTM-S shape (fp32 and
bf16 autocast), against the limit of one convolution of its widest recurrent shape."""

from __future__ import annotations

import copy
import os

import torch

from ..models.convlstm.configuration_convlstm import ConvLSTMConfig
from ..models.convlstm.convlstm import ConvLSTMCell
from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction
from ..training.arguments import load_training_arguments
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


def recipe_model_config(recipe: str | os.PathLike) -> tuple[ConvLSTMConfig, tuple[int, int], int, int]:
    """``(config, (observed frames, predicted frames), frame size, batch)`` of the model a training config file
    (`recipe`, e.g. the CPU recipe's) trains on Moving MNIST's 64 x 64 frames."""
    args = load_training_arguments(recipe)
    frames = (args.num_input_frames, args.num_output_frames)
    return args.model_config(), frames, 64, args.per_device_train_batch_size


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


def build_model_variants(
    device: str, batch: int | None, quick: bool, names: set[str] | None, recipe=None
) -> tuple[list[Variant], int, str]:
    """The wanted variants of model (e) (``names``; None: all), its batch and its shape in words: ``ours``, ``ours+bf16``, the
    same with the forecaster's steps unfused (``ConvLSTMCell.fused = False``: ``ours+plain-steps``,
    ``ours+bf16+plain-steps``), and the limit, one convolution of the model's widest recurrent shape over all
    ``B * (T_in + T_out)`` frames. The model is the OpenSTL ConvLSTM-S shape, or with `recipe` (a training config
    file) that recipe's, at its training batch unless `batch` says otherwise."""
    torch.manual_seed(0)
    if recipe is None or quick:
        config, frames, size = benchmark_model_config(quick)
        batch = batch or 1
    else:
        config, frames, size, recipe_batch = recipe_model_config(recipe)
        batch = batch or recipe_batch
    model = ConvLSTMForFramePrediction(config).to(device)
    pixels = torch.rand(batch, frames[0], 1, size, size, device=device)
    labels = torch.rand(batch, frames[1], 1, size, size, device=device)
    flops = model_forward_flops(config, batch, size)
    plain_steps = copy.deepcopy(model)
    for module in plain_steps.modules():
        if isinstance(module, ConvLSTMCell):
            module.fused = False  # the forecaster's steps as autograd over plain ops
    choices = (
        ("ours", None, model),
        ("ours+bf16", torch.bfloat16, model),
        ("ours+plain-steps", None, plain_steps),
        ("ours+bf16+plain-steps", torch.bfloat16, plain_steps),
    )
    variants = [
        _model_variant(name, dtype, module, pixels, labels, device, flops)
        for name, dtype, module in choices
        if names is None or name in names
    ]
    widest = max(config.hidden_sizes)
    shape = LayerConfig(
        "e", "model limit", batch, sum(frames), widest, size // config.patch_size, widest, config.kernel_size
    )
    for dtype, label, layout in LIMITS:
        if names is None or label in names:
            variants.append(limit_variant(label, shape, device, dtype, layout))
    directions = "bidirectional" if config.bidirectional else "unidirectional"
    description = (
        f"batch {batch}; {len(config.hidden_sizes)} x {widest} hidden, kernel {config.kernel_size}, patch "
        f"{config.patch_size}, {frames[0]} -> {frames[1]} frames of {size}x{size} ({directions} encoder)"
    )
    return variants, batch, description


def model_section(
    device: str, batch: int | None, quick: bool, names: set[str] | None, repeats: int, recipe=None
) -> dict:
    """Time model (e) (with `recipe`, that training config's model) round-robin over ``repeats`` rounds and measure
    each variant's peak memory; returns the report's section: ``title``, ``shape`` and ``rows`` (with sequences per
    second)."""
    variants, batch, description = build_model_variants(device, batch, quick, names, recipe)
    run_rounds(variants, repeats)
    for variant in variants:
        variant.peak_mib = peak_allocated_mib(variant.train, device)
    rows = summarize(variants, baseline="none")
    add_sequence_rates(rows, batch)
    title = (
        MODEL_TITLE
        if recipe is None or quick
        else f"ConvLSTMForFramePrediction, the model of {os.path.relpath(recipe)}"
    )
    return dict(title=title, shape=description, rows=rows)
