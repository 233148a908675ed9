"""Streaming latency, configuration (d): batch 1, one step at a time through the cell API with its carried state,
our cell against the reference's per-step convolution over ``cat([x_t, h])``."""

from __future__ import annotations

import copy

import torch

from ..models.convlstm.convlstm import ConvLSTM
from .measurement import Variant, timed
from .references import ConcatConvLSTM
from .shapes import LayerConfig

STREAMING_TITLE = "streaming latency, B=1, one step at a time"


def _concat_step(config: LayerConfig, device: str, ours: ConvLSTM):
    """The reference's step ``(x, (h, c)) -> (h, c)`` with our first cell's weights."""
    concat = (
        ConcatConvLSTM(config.in_channels, config.hidden, config.kernel).to(device).load_from(ours).convs[0]
    )

    def concat_step(x, state):
        h, c = state
        i, f, g, o = concat(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    return concat_step


def _step_variant(name, step, dtype, note, x, state, device, flops) -> Variant:
    """A variant timing one step ``step(x, state)`` under ``no_grad`` (and bf16 autocast when ``dtype``); its
    training and inference calls are the same step."""

    def infer():
        with (
            torch.no_grad(),
            torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None),
        ):
            step(x, state)

    variant = Variant(name, infer, infer, flops, note, device=device)
    if name == "ours+compile":
        variant.setup_s = timed(infer, device)
    return variant


def build_streaming_variants(
    config: LayerConfig, device: str, names: set[str] | None, exclude: set[str] = frozenset()
) -> list[Variant]:
    """B=1, one step at a time: the cell API with its carried state; latency per step."""
    torch.manual_seed(0)
    ours = ConvLSTM(config.in_channels, config.hidden, config.kernel, config.kernel // 2).to(device)
    cell = ours.cells[0]
    x = torch.randn(1, config.in_channels, config.size, config.size, device=device)
    state = cell.zero_state(x)
    state = (torch.randn_like(state[0]), torch.randn_like(state[1]))
    concat_step = _concat_step(config, device, ours)
    flops = 2 * config.size**2 * config.kernel**2 * (config.in_channels + config.hidden) * 4 * config.hidden
    candidates = {
        "ours": (cell, None, "ConvLSTMCell(x, state)"),
        "ours+bf16": (cell, torch.bfloat16, "bf16 autocast"),
        "ours+channels_last": (
            copy.deepcopy(cell).to(memory_format=torch.channels_last),
            None,
            "channels_last",
        ),
        "ours+compile": (torch.compile(copy.deepcopy(cell)), None, "torch.compile(cell)"),
        "concat": (concat_step, None, "reference"),
    }
    return [
        _step_variant(name, step, dtype, note, x, state, device, flops)
        for name, (step, dtype, note) in candidates.items()
        if (names is None or name in names) and name not in exclude
    ]


def streaming_section(config: LayerConfig, rows: list[dict]) -> dict:
    """The report's section (d) for layer shape ``config`` (layer (a)'s) and its summarized ``rows``."""
    return dict(
        title=STREAMING_TITLE,
        shape=f"layer (a): {config.in_channels} ch at {config.size}x{config.size}, {config.hidden} hidden, "
        f"kernel {config.kernel}; state carried between calls",
        rows=rows,
    )
