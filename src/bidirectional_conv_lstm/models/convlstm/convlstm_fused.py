"""The fused ConvLSTM sequence of :mod:`.convlstm`: one layer, one direction, a whole sequence in one autograd
``Function`` with a hand-written backward through time (what :class:`~.convlstm.ConvLSTM` runs for the common
layer: no norm, no peepholes, no padding mask).

Like :mod:`.convlstm` it imports nothing but torch, so it travels with ``push_to_hub`` remote code
(``convlstm.py`` imports it relatively).
"""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from .convlstm_pointwise import POINTWISE_MODES, pointwise_steps

__all__ = [
    "MEASURED_MIN_GFLOP",
    "MEMORY_FORMATS",
    "MEMORY_FORMAT_CHOICES",
    "fused_applies",
    "resolve_memory_format",
    "run_fused",
]


def fused_applies(gate: nn.Module, valid) -> bool:
    """Whether :class:`_FusedConvLSTMSequence` computes a chunk of the cell whose
    :class:`~.convlstm.ConvGate` is `gate` (else the plain per-step loop).

    The fused path covers the common layer (no norm, no peepholes, no padding mask); under
    ``torch.compile`` the plain loop is traced instead, since Inductor fuses its pointwise ops itself.
    """
    return (
        valid is None
        and gate.norm is None
        and gate.peephole_weight is None
        and not torch.compiler.is_compiling()
        and not isinstance(gate.input_conv.padding, str)
        and not isinstance(gate.hidden_conv.padding, str)
    )


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The convolutions' dtype: the autocast dtype for float32 input under autocast, else x's."""
    device = x.device.type
    if x.dtype == torch.float32 and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


class _FusedConvLSTMSequence(torch.autograd.Function):
    r"""One layer, one direction, whole sequence, with a hand-written backward through time.

    Same function as the plain loop (:meth:`ConvLSTMCell.step` per time step, input convolution over
    all ``T * B`` frames first) but it keeps, for backward, only

    * the input frames ``x`` (which the input convolution needs anyway),
    * the activated gates ``sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)``, written in place into the
      buffer the input convolution produced (``4 C_h`` per step, in the convolutions' dtype),
    * the cell states ``c_t`` (``C_h`` per step, float32 under autocast),
    * the outputs ``h_t``, which are returned anyway and double as the recurrent convolution's input,

    where autograd over the plain loop also keeps each step's ``h_{t-1}`` copy, ``c_{t-1}`` and
    ``tanh(c_t)`` separately and allocates a fresh gate tensor per step. Backward writes the gate
    gradients in place over the activations, then runs one input-convolution backward over all frames.
    A zero initial state skips the first step's recurrent convolution (its output is zero).

    Under autocast the convolutions run in the autocast dtype and the pointwise update in the cell
    state's dtype (float32), as on the plain path. Each step's pointwise work (the update, and in backward the
    gate gradients) is :func:`~.convlstm_pointwise.pointwise_steps`'s, eager or compiled as the last of
    ``options`` says.
    """

    @staticmethod
    def forward(ctx, x, input_weight, input_bias, hidden_weight, hidden, cell_state, zero_state, options):
        stride, padding, dilation, hidden_padding, reverse, layout, pointwise = options
        steps, batch = x.shape[:2]
        dtype = _compute_dtype(x)
        state_dtype = cell_state.dtype
        with torch.autocast(x.device.type, enabled=False):
            # Every tensor of the layer is in one memory format, `layout` (see
            # `resolve_memory_format`): mixed layouts would cost oneDNN a reorder copy of each input,
            # output and gradient (for the input convolution a second (T * B, 4C) buffer).
            frames = _to_layout(x.flatten(0, 1).to(dtype), layout)
            input_weight_c = _to_layout(input_weight.to(dtype), layout)
            hidden_weight_c = _to_layout(hidden_weight.to(dtype), layout)
            bias_c = None if input_bias is None else input_bias.to(dtype)
            gates = F.conv2d(frames, input_weight_c, bias_c, stride, padding, dilation)
            size = gates.shape[-2:]
            channels = hidden_weight.shape[1]
            output = torch.empty(
                (steps * batch, channels, *size),
                dtype=state_dtype,
                device=x.device,
                memory_format=layout,
            ).unflatten(0, (steps, batch))
            cells = torch.empty_like(output)
            gates = gates.unflatten(0, (steps, batch))
            order = range(steps - 1, -1, -1) if reverse else range(steps)
            update, _ = pointwise_steps(pointwise)
            # the recurrent convolution's input: `hidden`, then each step's h in the convolutions' dtype
            h_prev = _to_layout(hidden.to(dtype), layout)
            h_low = None if dtype == state_dtype else torch.empty_like(h_prev)
            c_prev = cell_state
            for index, t in enumerate(order):
                recurrent = None
                if index > 0 or not zero_state:
                    recurrent = F.conv2d(h_prev, hidden_weight_c, None, 1, hidden_padding)
                update(gates[t], recurrent, c_prev, cells[t], output[t], h_low)
                h_prev = output[t] if h_low is None else h_low
                c_prev = cells[t]
            last = order[-1]
        ctx.options = options
        ctx.zero_state = zero_state
        ctx.dtype = dtype
        ctx.meta = (x.dtype, input_bias is not None, input_weight.dtype, hidden_weight.dtype)
        # the weights as given (casts and layouts are redone in backward: small, and no extra copies held)
        if zero_state:  # known zeros: nothing to keep
            hidden = cell_state = None
        ctx.save_for_backward(x, input_weight, hidden_weight, hidden, cell_state, gates, cells, output)
        return output, output[last].clone(), cells[last].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output, grad_hidden, grad_cell):
        x, input_weight, hidden_weight, hidden, cell_state, gates, cells, output = ctx.saved_tensors
        stride, padding, dilation, hidden_padding, reverse, layout, pointwise = ctx.options
        dtype = ctx.dtype
        input_weight_c = _to_layout(input_weight.to(dtype), layout)
        hidden_weight_c = _to_layout(hidden_weight.to(dtype), layout)
        x_dtype, has_bias, input_weight_dtype, weight_dtype = ctx.meta
        bias_sizes = [input_weight_c.shape[0]] if has_bias else None
        input_conv = (input_weight_c, bias_sizes, list(stride), list(padding), list(dilation), layout)
        hidden_conv = (hidden_weight_c, list(hidden_padding))
        steps = x.shape[0]
        state_dtype = cells.dtype
        needs = ctx.needs_input_grad
        input_mask = [needs[0], needs[1], has_bias and needs[2]]
        order = list(range(steps - 1, -1, -1)) if reverse else list(range(steps))
        grad_h, grad_c = _writable(grad_hidden, output[0]), _writable(grad_cell, cells[0])
        _, gradients = pointwise_steps(pointwise)
        grad_hidden_weight = grad_input_weight = grad_bias = grad_x = None
        for index in range(steps - 1, -1, -1):
            t = order[index]
            c_prev = cell_state if index == 0 else cells[order[index - 1]]
            grad_step = None if grad_output is None else grad_output[t]
            grad_gates = torch.empty(gates[t].shape, dtype=dtype, device=x.device, memory_format=layout)
            gradients(gates[t], cells[t], c_prev, grad_h, grad_step, grad_c, grad_gates)
            grad_frame, grad_weight, grad_b = _input_conv_backward(
                grad_gates, x[t].to(dtype), input_conv, input_mask
            )
            if grad_frame is not None:
                if grad_x is None:
                    grad_x = torch.empty_like(x)
                grad_x[t] = grad_frame
            grad_input_weight = _accumulate(grad_input_weight, grad_weight, input_weight_dtype)
            grad_bias = _accumulate(grad_bias, grad_b, input_weight_dtype)
            first = index == 0
            if first and ctx.zero_state:
                grad_h = None
                continue
            h_prev = _to_layout((hidden if first else output[order[index - 1]]).to(dtype), layout)
            # Weight and input gradients in two calls: each holds its own weight-sized reorder
            # buffers, and one call would hold both sets at once (the backward's peak).
            grad_weight = _hidden_conv_backward(grad_gates, h_prev, hidden_conv, weight=True)
            # accumulated over time in the parameter's dtype
            grad_hidden_weight = _accumulate(grad_hidden_weight, grad_weight, weight_dtype)
            del grad_weight
            grad_h = None
            if not first or needs[4]:
                grad_h = _hidden_conv_backward(grad_gates, h_prev, hidden_conv, weight=False)
        if grad_hidden_weight is None:
            grad_hidden_weight = torch.zeros_like(hidden_weight_c, dtype=weight_dtype)
        return (
            grad_x,
            grad_input_weight,
            grad_bias,
            grad_hidden_weight,
            grad_h.to(state_dtype) if needs[4] else None,
            grad_c if needs[5] else None,
            None,
            None,
        )


def _writable(gradient, like: torch.Tensor) -> torch.Tensor:
    """An own, writable copy of a final state's `gradient` in `like`'s dtype and memory format (zeros like `like`
    for None): the backward loop updates it in place."""
    return torch.zeros_like(like) if gradient is None else torch.empty_like(like).copy_(gradient)


def _input_conv_backward(grad_gates, frame, input_conv, output_mask):
    """``(grad_frame, grad_weight, grad_bias)`` of one step's input convolution (None where `output_mask` says
    not needed); `input_conv` is ``(weight in `layout`, bias sizes or None, stride, padding, dilation, layout)``.

    It runs per step: batching it over all frames would need a (T, B, 4C) gradient buffer, the largest tensor of
    the layer, and overwriting the saved activations instead would make backward single-use (no retain_graph,
    gradcheck).
    """
    weight, bias_sizes, stride, padding, dilation, layout = input_conv
    return torch.ops.aten.convolution_backward(
        grad_gates, _to_layout(frame, layout), weight, bias_sizes, stride, padding, dilation,
        False, [0, 0], 1, output_mask,
    )  # fmt: skip


def _hidden_conv_backward(grad_gates, h_prev, hidden_conv, *, weight: bool) -> torch.Tensor:
    """The recurrent convolution's weight gradient (`weight`) or its input gradient (the gradient of ``h_prev``);
    `hidden_conv` is ``(weight in the layer's layout, padding)``."""
    hidden_weight, padding = hidden_conv
    mask = [not weight, weight, False]
    grads = torch.ops.aten.convolution_backward(
        grad_gates, h_prev, hidden_weight, None, [1, 1], padding, [1, 1], False, [0, 0], 1, mask
    )
    return grads[1] if weight else grads[0]


def _accumulate(total, gradient, dtype):
    """``total + gradient`` in `dtype`, in place into `total` (`gradient` in `dtype` when `total` is None; `total`
    when `gradient` is None). The add reads a bf16 `gradient` as it is: no float32 copy of it per step."""
    if gradient is None:
        return total
    return gradient.to(dtype) if total is None else total.add_(gradient)


def _channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` with channels_last strides, also where the layout is ambiguous (one channel or
    1x1 frames), where ``.contiguous(memory_format=...)`` keeps NCHW strides and oneDNN then picks
    NCHW, mixing layouts within the layer."""
    if tensor.stride(1) == 1 and tensor.is_contiguous(memory_format=torch.channels_last):
        return tensor
    return torch.empty(
        tensor.shape, dtype=tensor.dtype, device=tensor.device, memory_format=torch.channels_last
    ).copy_(tensor)


def _to_layout(tensor: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """``tensor`` in memory format `layout` (``torch.channels_last`` or ``torch.contiguous_format``)."""
    return _channels_last(tensor) if layout is torch.channels_last else tensor.contiguous()


# What `memory_format="auto"` chose, per convolution shape: {key: (layout name, channels_last s, contiguous s)}.
MEMORY_FORMAT_CHOICES: dict[tuple, tuple[str, float, float]] = {}
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
# contiguous is chosen only when measured at least this much faster: channels_last is the layout that needs no
# reorder on most oneDNN kernels, and one short measurement on a busy machine is noisy.
_CONTIGUOUS_MIN_GAIN = 1.03
# Recurrent convolutions of less work than this (GFLOP per step, forward) are not measured and run channels_last:
# their timings are mostly noise, which would make the layout (and the last bits of the results) differ from one
# process to the next, and their speed hardly matters.
MEASURED_MIN_GFLOP = 1.0


def _time_layout(layout, shape, padding, dtype, device, backward: bool) -> float:
    """Seconds of one recurrent convolution of `shape` ``(B, C_h, 4 C_h, kh, kw, H', W')`` in `layout` (forward,
    and with `backward` both gradients)."""
    batch, channels, out_channels, kh, kw, height, width = shape
    generator = torch.Generator(device=device).manual_seed(0)
    h = torch.randn(batch, channels, height, width, generator=generator, device=device).to(dtype)
    w = (torch.randn(out_channels, channels, kh, kw, generator=generator, device=device) * 0.01).to(dtype)
    h, w = _to_layout(h, layout), _to_layout(w, layout)
    started = time.perf_counter()
    out = F.conv2d(h, w, None, 1, padding)
    if backward:
        mask = [True, True, False]
        torch.ops.aten.convolution_backward(out, h, w, None, [1, 1], padding, [1, 1], False, [0, 0], 1, mask)
    return time.perf_counter() - started


def _measured_layout(key: tuple) -> torch.memory_format:
    """The faster layout for the recurrent convolution `key` describes, timed once per process: 1 warm-up and 3
    passes of each layout, alternating, medians compared (about 8 convolutions; recorded in
    :data:`MEMORY_FORMAT_CHOICES`)."""
    if key not in MEMORY_FORMAT_CHOICES:
        shape, padding, dtype, device, backward, _threads = key
        layouts = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
        times: dict[str, list[float]] = {name: [] for name in layouts}
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            for round_index in range(4):
                for name, layout in layouts.items():
                    seconds = _time_layout(layout, shape, list(padding), dtype, device, backward)
                    if round_index:  # the first pass warms oneDNN's kernel cache up
                        times[name].append(seconds)
        last, contiguous = (statistics.median(times[name]) for name in layouts)
        choice = "contiguous" if last > _CONTIGUOUS_MIN_GAIN * contiguous else "channels_last"
        MEMORY_FORMAT_CHOICES[key] = (choice, last, contiguous)
    choice = MEMORY_FORMAT_CHOICES[key][0]
    return torch.channels_last if choice == "channels_last" else torch.contiguous_format


def resolve_memory_format(memory_format: str, gate: nn.Module, x: torch.Tensor, hidden: torch.Tensor):
    """The memory format the fused sequence of `gate` runs `x` (T, B, C, H, W) in: ``torch.channels_last`` or
    ``torch.contiguous_format``.

    ``"channels_last"`` / ``"contiguous"`` force one. ``"auto"``: channels_last off the CPU (cuDNN's tensor-core
    kernels want it); on the CPU the faster of the two for this layer's recurrent convolution, measured once per
    process for each shape, dtype, thread count and whether gradients are wanted (:func:`_measured_layout`);
    convolutions under :data:`MEASURED_MIN_GFLOP` per step run channels_last unmeasured. Where the two layouts
    are within the measurement's noise, two processes may choose differently, and their results then differ in the
    last bits (about 1e-7 in fp32): force a layout for results identical across processes.
    Which is faster depends on the CPU and the shape: on an Intel Xeon with AMX, channels_last is 1.2-2.6x
    faster in bf16, and in fp32 it is 1.1-1.5x faster for 3 x 3 kernels but 7-11 % slower for 5 x 5 kernels
    over 128 channels (docs/benchmarks.md).
    """
    if memory_format == "channels_last" or (memory_format == "auto" and x.device.type != "cpu"):
        return torch.channels_last
    if memory_format == "contiguous":
        return torch.contiguous_format
    if memory_format != "auto":
        raise ValueError(f"memory_format must be one of {MEMORY_FORMATS}, got {memory_format!r}")
    weight = gate.hidden_conv.weight
    height, width = hidden.shape[-2:]
    backward = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    shape = (x.shape[1], weight.shape[1], weight.shape[0], *weight.shape[-2:], height, width)
    if 2 * math.prod(shape) < MEASURED_MIN_GFLOP * 1e9:  # B H' W' kh kw C 4C multiply-adds
        return torch.channels_last
    padding = tuple(gate.hidden_conv.padding)
    key = (shape, padding, _compute_dtype(x), x.device, backward, torch.get_num_threads())
    return _measured_layout(key)


def run_fused(
    gate: nn.Module,
    x,
    hidden,
    cell_state,
    reverse: bool,
    zero_state: bool,
    memory_format: str = "auto",
    pointwise: str = "eager",
):
    """The chunk ``x`` (T, B, C, H, W) through the cell whose :class:`~.convlstm.ConvGate` is `gate`, as
    :func:`~.convlstm._run_chunk` computes it: ``(outputs (T, B, C_h, H', W'), h, c)``, every tensor in the
    memory format :func:`resolve_memory_format` gives for `memory_format`, each step's pointwise work eager or
    compiled as `pointwise` says (:func:`~.convlstm_pointwise.pointwise_steps`)."""
    if pointwise not in POINTWISE_MODES:
        raise ValueError(f"pointwise must be one of {POINTWISE_MODES}, got {pointwise!r}")
    layout = resolve_memory_format(memory_format, gate, x, hidden)
    options = (gate.stride, gate.padding, gate.dilation, gate.hidden_conv.padding, reverse, layout, pointwise)
    return _FusedConvLSTMSequence.apply(
        x,
        gate.input_conv.weight,
        gate.input_conv.bias,
        gate.hidden_conv.weight,
        hidden,
        cell_state,
        zero_state,
        options,
    )
