"""The pointwise work of a ConvLSTM time step: the gate activations, the cell update and their backward.

The fused sequence (:mod:`.convlstm_fused`) runs them eagerly with in-place torch ops (``ConvLSTM.pointwise =
"eager"``, the default) or compiled by ``torch.compile`` into a few fused kernels per step (``"compiled"``).
Eagerly, each step's update and backward are about twenty passes over the gate and state tensors, each a kernel
launch, and under autocast two more for casting the gates to the cell state's dtype and back. Compiled, each is
one or two loops that read every input once. On an Intel Xeon with AMX (2 vCPUs) that makes a bf16 training step
of the benchmark's layer (a) about 10 % faster, fp32 no faster (docs/benchmarks.md). The price is the compilation:
a few seconds per process and shape (Inductor caches its kernels on disk), and a C++ compiler on the CPU, as for
any ``torch.compile``.

A single step (:meth:`~.convlstm.ConvLSTMCell.step`, which the frame-prediction model's forecaster takes one
frame at a time) runs the same eager functions as one autograd ``Function`` (:func:`fused_cell_step`) instead of
about ten autograd nodes with their saved tensors and casts.

Like :mod:`.convlstm` it imports nothing but torch, so it travels with ``push_to_hub`` remote code.
"""

from __future__ import annotations

import types

import torch

__all__ = ["POINTWISE_MODES", "fused_cell_step", "fused_cell_step_applies", "pointwise_steps"]

POINTWISE_MODES = ("eager", "compiled")


def cell_update(gate, recurrent, c_prev, c_out, h_out, h_low) -> None:
    """One step's update, eagerly and in place: `gate` (``(B, 4 C_h, H', W')``, the input convolution's
    pre-activations, in the convolutions' dtype) gets `recurrent` (the recurrent convolution's output, None for a
    zero state) added and then holds the activations ``sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)``;
    ``c_out = f * c_prev + i * g`` and ``h_out = o * tanh(c_out)`` in the cell state's dtype; `h_low` (None when
    the dtypes agree) gets ``h_out`` in the convolutions' dtype, for the next step's recurrent convolution."""
    if recurrent is not None:
        gate += recurrent
    channels = c_out.shape[1]
    act = gate if gate.dtype == c_out.dtype else gate.to(c_out.dtype)
    act[:, : 2 * channels].sigmoid_()
    act[:, 2 * channels : 3 * channels].tanh_()
    act[:, 3 * channels :].sigmoid_()
    i, f, g, o = act.chunk(4, dim=1)
    torch.mul(f, c_prev, out=c_out)
    c_out.addcmul_(i, g)
    torch.tanh(c_out, out=h_out)
    h_out.mul_(o)
    if act is not gate:
        gate.copy_(act)
    if h_low is not None:
        h_low.copy_(h_out)


def gate_gradients(act, cell, c_prev, grad_h, grad_out, grad_c, out) -> None:
    """One step of the backward, eagerly: the gradients of the four gate pre-activations into `out`
    (``(B, 4 C_h, H', W')``, the convolutions' dtype), from the saved activations `act`, the step's cell state
    `cell`, the previous one `c_prev` (None: a zero initial state), the gradient of ``h`` from the later steps
    `grad_h` (owned: it is written) plus `grad_out` (the gradient of this step's output, or None), and `grad_c`,
    updated in place to the gradient of ``c_prev``. Two temporaries of ``C_h`` per step, no more."""
    if grad_h.dtype != grad_c.dtype:
        grad_h = grad_h.to(grad_c.dtype)
    if grad_out is not None:
        grad_h.add_(grad_out)
    act = act if act.dtype == grad_c.dtype else act.to(grad_c.dtype)
    i, f, g, o = act.chunk(4, dim=1)
    grad_gates = out if out.dtype == grad_c.dtype else torch.empty_like(act)
    grad_i, grad_f, grad_g, grad_o = grad_gates.chunk(4, dim=1)
    scratch = torch.tanh(cell)
    torch.mul(grad_h, scratch, out=grad_o)  # d o = dh * tanh(c)
    scratch.square_().neg_().add_(1).mul_(o).mul_(grad_h)
    grad_c.add_(scratch)  # dc += dh * o * (1 - tanh(c)^2)
    torch.addcmul(o, o, o, value=-1, out=scratch)
    grad_o.mul_(scratch)  # * sigmoid'(o)
    torch.addcmul(i, i, i, value=-1, out=grad_i)
    grad_i.mul_(g).mul_(grad_c)  # dc * g * sigmoid'(i)
    if c_prev is None:  # zero initial state
        grad_f.zero_()
    else:
        torch.addcmul(f, f, f, value=-1, out=grad_f)
        grad_f.mul_(c_prev).mul_(grad_c)  # dc * c_prev * sigmoid'(f)
    torch.mul(g, g, out=grad_g)
    grad_g.neg_().add_(1).mul_(i).mul_(grad_c)  # dc * i * tanh'(g)
    grad_c.mul_(f)
    if grad_gates is not out:
        out.copy_(grad_gates)


def _fusible_cell_update(gate, recurrent, c_prev, c_out, h_out, h_low) -> None:
    """:func:`cell_update` written for Inductor: one sigmoid over all four gates (``tanh(x) = 2 sigmoid(2x) - 1``
    on the third quarter, so no per-gate slices, which would split the loop) and the results copied into the
    given buffers, which Inductor writes in place."""
    z = gate.to(c_out.dtype)
    if recurrent is not None:
        z = z + recurrent.to(c_out.dtype)
    channels = c_out.shape[1]
    scale = torch.ones(4 * channels, 1, 1, dtype=z.dtype, device=z.device)
    scale[2 * channels : 3 * channels] = 2
    act = torch.sigmoid(z * scale) * scale - (scale - 1)
    i, f, g, o = act.chunk(4, dim=1)
    c = f * c_prev + i * g
    h = o * torch.tanh(c)
    gate.copy_(act)
    c_out.copy_(c)
    h_out.copy_(h)
    if h_low is not None:
        h_low.copy_(h)


def _fusible_gate_gradients(act, cell, c_prev, grad_h, grad_out, grad_c, out) -> None:
    """:func:`gate_gradients` written for Inductor (`c_prev` a tensor: zeros for a zero initial state)."""
    act = act.to(grad_c.dtype)
    i, f, g, o = act.chunk(4, dim=1)
    grad_h = grad_h.to(grad_c.dtype)
    if grad_out is not None:
        grad_h = grad_h + grad_out
    tanh_c = torch.tanh(cell)
    grad_cell = grad_c + grad_h * o * (1 - tanh_c * tanh_c)
    gradients = (
        grad_cell * g * i * (1 - i),
        grad_cell * c_prev * f * (1 - f),
        grad_cell * i * (1 - g * g),
        grad_h * tanh_c * o * (1 - o),
    )
    out.copy_(torch.cat(gradients, dim=1))
    grad_c.copy_(grad_cell * f)


# One compiled function per distinct call (shapes, strides, dtypes, devices; see `_signature`). Dynamo keeps its
# compiled graphs per code object and raises past `recompile_limit` (8) graphs, which the shapes, layouts, dtypes
# and None arguments of a model's layers would soon pass: each entry here compiles a fresh copy of the function's
# code, once, for its one signature (`dynamic=False`: kernels specialised to the shape).
_COMPILED: dict[tuple, object] = {}


def _signature(arguments) -> tuple:
    return tuple(
        None if value is None else (tuple(value.shape), value.stride(), value.dtype, value.device)
        for value in arguments
    )


def _compiled(function, arguments):
    """`function` compiled for the signature of `arguments` (made at the first call with it)."""
    key = (function.__name__, _signature(arguments))
    if key not in _COMPILED:
        fresh = types.FunctionType(
            function.__code__.replace(), function.__globals__, function.__name__, function.__defaults__
        )
        _COMPILED[key] = torch.compile(fresh, dynamic=False, fullgraph=True)
    return _COMPILED[key]


def _in_layout_of(tensor, reference):
    """`tensor` with `reference`'s strides (a copy only where they differ, e.g. a contiguous initial state or output
    gradient beside channels_last gates): one layout keeps Inductor's loops dense (mixed, they are strided and
    slower; an earlier form of these functions even gave NaN with them in torch 2.13)."""
    if tensor is None or tensor.stride() == reference.stride():
        return tensor
    return torch.empty_like(reference, dtype=tensor.dtype).copy_(tensor)


def _compiled_cell_update(gate, recurrent, c_prev, c_out, h_out, h_low) -> None:
    if recurrent is None:  # a zero initial state: zeros, for one signature fewer to compile
        recurrent = torch.zeros_like(gate)
    arguments = (gate, recurrent, _in_layout_of(c_prev, c_out), c_out, h_out, h_low)
    _compiled(_fusible_cell_update, arguments)(*arguments)


def _compiled_gate_gradients(act, cell, c_prev, grad_h, grad_out, grad_c, out) -> None:
    c_prev = torch.zeros_like(cell) if c_prev is None else _in_layout_of(c_prev, cell)
    grad_h, grad_out = _in_layout_of(grad_h, cell), _in_layout_of(grad_out, cell)
    arguments = (act, cell, c_prev, grad_h, grad_out, _in_layout_of(grad_c, cell), out)
    _compiled(_fusible_gate_gradients, arguments)(*arguments)


def pointwise_steps(mode: str):
    """``(cell_update, gate_gradients)`` for `mode` (one of :data:`POINTWISE_MODES`), with the signatures of
    :func:`cell_update` and :func:`gate_gradients`. Compiled, the state and gradient tensors are brought into the
    cell state's memory format first where theirs differs (:func:`_in_layout_of`); eagerly, torch ops mix layouts."""
    if mode == "eager":
        return cell_update, gate_gradients
    if mode == "compiled":
        return _compiled_cell_update, _compiled_gate_gradients
    raise ValueError(f"pointwise must be one of {POINTWISE_MODES}, got {mode!r}")


class _FusedCellStep(torch.autograd.Function):
    """One step's pointwise work, ``(gates, c_prev) -> (h, c)``, with :func:`cell_update` as its forward and
    :func:`gate_gradients` as its backward. It saves the activations (in the cell state's dtype), ``c`` and
    ``c_prev``; autograd over :func:`~.convlstm.lstm_pointwise` saves about twice as much and runs about ten
    nodes."""

    @staticmethod
    def forward(ctx, gates, cell_state):
        activations = gates.to(cell_state.dtype, copy=True)  # our own: the activations are written into it
        new_cell, hidden = torch.empty_like(cell_state), torch.empty_like(cell_state)
        cell_update(activations, None, cell_state, new_cell, hidden, None)
        ctx.save_for_backward(activations, new_cell, cell_state)
        ctx.gates_dtype = gates.dtype
        return hidden, new_cell

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_hidden, grad_cell):
        activations, new_cell, cell_state = ctx.saved_tensors
        grad_hidden = _owned(grad_hidden, new_cell)
        grad_cell = _owned(grad_cell, new_cell)
        grad_gates = torch.empty_like(activations, dtype=ctx.gates_dtype)
        gate_gradients(activations, new_cell, cell_state, grad_hidden, None, grad_cell, grad_gates)
        return grad_gates, grad_cell


def _owned(gradient, like: torch.Tensor) -> torch.Tensor:
    """A copy of `gradient` in `like`'s dtype that the backward may write (zeros like `like` for None)."""
    return torch.zeros_like(like) if gradient is None else gradient.to(like.dtype, copy=True)


def fused_cell_step_applies(gates: torch.Tensor, cell_state: torch.Tensor) -> bool:
    """Whether :func:`fused_cell_step` runs a step (else autograd over the plain ops): when gradients are
    recorded, and not while ``torch.compile``, ``torch.jit`` or ONNX export trace the step (they want plain ops;
    Inductor fuses them itself). Without gradients the plain ops are as fast."""
    return (
        torch.is_grad_enabled()
        and (gates.requires_grad or cell_state.requires_grad)
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and not torch.onnx.is_in_onnx_export()
    )


def fused_cell_step(gates: torch.Tensor, cell_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h, c)`` from the gate pre-activations `gates` ``(B, 4 C_h, H', W')`` (order i, f, g, o; any floating
    dtype) and the previous cell state ``(B, C_h, H', W')``, in the cell state's dtype, as
    :func:`~.convlstm.lstm_pointwise` computes them without peepholes, as one autograd node (first derivatives
    only: a second backward through it raises)."""
    return _FusedCellStep.apply(gates, cell_state)
