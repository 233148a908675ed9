"""Convolutional LSTM layers (Shi et al. 2015, arXiv:1506.04214), torch only.

Three tiers, each usable alone:

* :class:`ConvGate` turns an input frame and the previous hidden state into the four gate
  pre-activations ``i, f, g, o`` with one convolution per input;
* :class:`ConvLSTMCell` runs one time step (streaming inference carries its state);
* :class:`ConvLSTM` runs whole sequences like :class:`torch.nn.LSTM`: multi-layer, bidirectional,
  variable lengths, ``PackedSequence`` in and out, initial states.

This module imports nothing but torch, so it travels with ``push_to_hub`` remote code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from torch.utils.checkpoint import checkpoint

from .argument_checks import check_int
from .convlstm_fused import fused_applies, run_fused
from .convlstm_pointwise import fused_cell_step, fused_cell_step_applies

__all__ = ["ConvGate", "ConvLSTMCell", "ConvLSTM"]

_NORMS = (None, "group", "layer")
State = tuple[torch.Tensor, torch.Tensor]


# --------------------------------------------------------------------------- argument checks
def _pair(value, name: str, *, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints >= ``minimum`` as a pair; a clear error otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        value = (value, value)
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return (int(value[0]), int(value[1]))


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")
    return value


def _padding(value, kernel_size, stride, dilation) -> str | tuple[int, int]:
    """Normalise ``padding``: "same", "valid", an int or a pair of ints >= 0."""
    if isinstance(value, str):
        if value not in ("same", "valid"):
            raise ValueError(f"padding must be 'same', 'valid', an int or a pair of ints, got {value!r}")
        if value == "same" and stride != (1, 1):
            raise ValueError(f"padding='same' needs stride=1, got stride={stride}; give padding as ints")
        if value == "valid":
            return (0, 0)
        if all(d * (k - 1) % 2 == 0 for k, d in zip(kernel_size, dilation)):
            return tuple(d * (k - 1) // 2 for k, d in zip(kernel_size, dilation))
        return "same"
    return _pair(value, "padding", minimum=0)


def _conv_out(size: int, kernel: int, stride: int, padding, dilation: int, axis: int) -> int:
    if padding == "same":
        return size
    return (size + 2 * padding[axis] - dilation * (kernel - 1) - 1) // stride + 1


# --------------------------------------------------------------------------- gates
class ConvGate(nn.Module):
    r"""The four gate pre-activations of a ConvLSTM step, one convolution per input.

    .. math::
        [\tilde i, \tilde f, \tilde g, \tilde o] = N_x(W_x * x_t) + N_h(W_h * h_{t-1}) + b

    ``W_x`` (``input_conv``) carries ``stride``, ``padding`` and ``dilation``; ``W_h``
    (``hidden_conv``) is stride 1 with "same" padding, so the hidden state keeps the size of
    ``W_x * x``. ``N_x`` and ``N_h`` are group normalisations over each gate's channels
    (``norm="layer"``: one group per gate; ``norm="group"``: ``norm_groups`` groups per gate), or
    identities when ``norm`` is ``None``. With peepholes, the paper's Hadamard terms
    ``W_ci * c_{t-1}``, ``W_cf * c_{t-1}`` and ``W_co * c_t`` use one weight per channel
    (``peephole_weight``, shape ``(3, hidden_channels, 1, 1)``), so any frame size works.

    Because ``W_x * x`` does not depend on the recurrence, :meth:`input_gates` runs once over all
    ``B * T`` frames of a sequence, outside the time loop; :meth:`hidden_gates` runs per step.

    Args:
        in_channels: channels of ``x``.
        hidden_channels: channels of ``h`` and ``c``.
        kernel_size: int or pair, both convolutions.
        stride, padding, dilation: of the input convolution (padding: int, pair, ``"same"``,
            ``"valid"``).
        bias: learn a gate bias ``b`` (in ``input_conv``, or in ``input_norm`` when normalised).
        peephole: add the peephole terms.
        norm: ``None``, ``"group"`` or ``"layer"``.
        norm_groups: groups per gate for ``norm="group"``; must divide ``hidden_channels``.
        forget_bias: initial value of the forget gate's bias.

    Shapes:
        ``input_gates``: ``(N, in_channels, H, W) -> (N, 4 * hidden_channels, H', W')``;
        ``hidden_gates``: ``(N, hidden_channels, H', W') -> (N, 4 * hidden_channels, H', W')``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size=3,
        stride=1,
        padding="same",
        dilation=1,
        bias: bool = True,
        *,
        peephole: bool = False,
        norm: str | None = None,
        norm_groups: int = 8,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.hidden_channels = check_int("hidden_channels", hidden_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", minimum=1)
        self.stride = _pair(stride, "stride", minimum=1)
        self.dilation = _pair(dilation, "dilation", minimum=1)
        self.padding = _padding(padding, self.kernel_size, self.stride, self.dilation)
        self.bias = _check_bool(bias, "bias")
        self.peephole = _check_bool(peephole, "peephole")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        self.norm = norm
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float)):
            raise TypeError(f"forget_bias must be a float, got {forget_bias!r}")
        self.forget_bias = float(forget_bias)
        self._build_convolutions()
        self._build_norms(norm_groups)
        if peephole:
            self.peephole_weight = nn.Parameter(torch.empty(3, hidden_channels, 1, 1))
        else:
            self.register_parameter("peephole_weight", None)
        self.reset_parameters()

    def _build_convolutions(self) -> None:
        """``input_conv`` (stride, padding, dilation as given; the bias unless normalised) and ``hidden_conv``."""
        gate_channels = 4 * self.hidden_channels
        self.input_conv = nn.Conv2d(
            self.in_channels,
            gate_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=self.bias and self.norm is None,
        )
        # The recurrent convolution is always stride 1, "same": the state keeps its size.
        hidden_padding = _padding("same", self.kernel_size, (1, 1), (1, 1))
        self.hidden_conv = nn.Conv2d(
            self.hidden_channels, gate_channels, self.kernel_size, padding=hidden_padding, bias=False
        )

    def _build_norms(self, norm_groups) -> None:
        """``input_norm`` and ``hidden_norm``: group norms over each gate's channels, or None without ``norm``."""
        if self.norm is None:
            self.input_norm = self.hidden_norm = None
            return
        hidden_channels, gate_channels = self.hidden_channels, 4 * self.hidden_channels
        groups_per_gate = 1 if self.norm == "layer" else check_int("norm_groups", norm_groups)
        if hidden_channels % groups_per_gate:
            raise ValueError(
                f"norm_groups={norm_groups} must divide hidden_channels={hidden_channels} for norm='group'"
            )
        self.norm_groups = groups_per_gate
        self.input_norm = nn.GroupNorm(4 * groups_per_gate, gate_channels, affine=self.bias)
        self.hidden_norm = nn.GroupNorm(4 * groups_per_gate, gate_channels)

    @property
    def gate_bias(self) -> torch.Tensor | None:
        """The learnt gate bias ``b`` (``4 * hidden_channels``, order i, f, g, o), or ``None``."""
        if self.input_norm is not None:
            return self.input_norm.bias
        return self.input_conv.bias

    def reset_parameters(self) -> None:
        """PyTorch's default convolution initialisation; forget bias to ``forget_bias``; peepholes 0."""
        self.input_conv.reset_parameters()
        self.hidden_conv.reset_parameters()
        for norm in (self.input_norm, self.hidden_norm):
            if norm is not None:
                norm.reset_parameters()
        bias = self.gate_bias
        if bias is not None:
            with torch.no_grad():
                hidden = self.hidden_channels
                bias.zero_()
                bias[hidden : 2 * hidden].fill_(self.forget_bias)
        if self.peephole_weight is not None:
            nn.init.zeros_(self.peephole_weight)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(H', W')``: the size of the state for input frames of ``height x width``."""
        return (
            _conv_out(height, self.kernel_size[0], self.stride[0], self.padding, self.dilation[0], 0),
            _conv_out(width, self.kernel_size[1], self.stride[1], self.padding, self.dilation[1], 1),
        )

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """``N_x(W_x * x) + b`` for any number of frames: ``(N, C_in, H, W) -> (N, 4C, H', W')``."""
        # The state (and so a deeper layer's input) is float32 even when the weights are half precision.
        gates = self.input_conv(x.to(self.input_conv.weight.dtype))
        return gates if self.input_norm is None else self.input_norm(gates)

    def hidden_gates(self, hidden: torch.Tensor) -> torch.Tensor:
        """``N_h(W_h * h)``: ``(N, C, H', W') -> (N, 4C, H', W')``."""
        gates = self.hidden_conv(hidden.to(self.hidden_conv.weight.dtype))
        return gates if self.hidden_norm is None else self.hidden_norm(gates)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """All four gate pre-activations (without peephole terms) for one step."""
        return self.input_gates(x) + self.hidden_gates(hidden)

    def extra_repr(self) -> str:
        text = f"peephole={self.peephole}, norm={self.norm!r}, forget_bias={self.forget_bias}"
        return text


def lstm_pointwise(gates: torch.Tensor, cell: torch.Tensor, peephole_weight: torch.Tensor | None) -> State:
    """The LSTM update from gate pre-activations (order i, f, g, o) and the previous cell state.

    Runs in the cell state's dtype (float32 under autocast), so the cell state never loses precision.
    Returns ``(h_t, c_t)``, both shaped like ``cell``.
    """
    gates = gates.to(cell.dtype)
    i, f, g, o = gates.chunk(4, dim=1)
    if peephole_weight is not None:
        w_ci, w_cf, w_co = peephole_weight.to(cell.dtype).unbind(0)
        i = i + w_ci * cell
        f = f + w_cf * cell
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    if peephole_weight is not None:
        o = o + w_co * cell
    hidden = torch.sigmoid(o) * torch.tanh(cell)
    return hidden, cell


# --------------------------------------------------------------------------- one step
class ConvLSTMCell(nn.Module):
    r"""One ConvLSTM time step; carry the returned state to stream frames one at a time.

    .. math::
        \begin{array}{ll}
        i_t = \sigma(W_{xi} * x_t + W_{hi} * h_{t-1} + W_{ci} \circ c_{t-1} + b_i) \\
        f_t = \sigma(W_{xf} * x_t + W_{hf} * h_{t-1} + W_{cf} \circ c_{t-1} + b_f) \\
        g_t = \tanh(W_{xg} * x_t + W_{hg} * h_{t-1} + b_g) \\
        c_t = f_t \circ c_{t-1} + i_t \circ g_t \\
        o_t = \sigma(W_{xo} * x_t + W_{ho} * h_{t-1} + W_{co} \circ c_t + b_o) \\
        h_t = o_t \circ \tanh(c_t)
        \end{array}

    ``*`` is convolution and ``\circ`` the Hadamard product; the peephole terms ``W_c\cdot`` are
    present only with ``peephole=True``. Arguments are those of :class:`ConvGate`.

    Inputs: ``x, state``
        * **x**: ``(B, in_channels, H, W)``.
        * **state**: optional ``(h, c)``, each ``(B, hidden_channels, H', W')``; zeros when absent.

    Outputs: ``(h, c)``, each ``(B, hidden_channels, H', W')``. Under bf16/fp16 autocast the cell
    state (and ``h``) are float32.

    Attributes:
        fused: when gradients are recorded, run the step's pointwise work (activations, cell update) as one
            autograd function with a hand-written backward (default ``True``; without peepholes; see
            :func:`~.convlstm_pointwise.fused_cell_step`): same results to rounding, fewer saved tensors, faster
            (a bf16 training step of the CPU recipe's model ~14 % faster on an Intel Xeon with AMX). It gives
            first derivatives only; ``fused = False`` takes autograd over plain ops, which double backward needs.
    """

    fused: bool = True

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size=3,
        stride=1,
        padding="same",
        dilation=1,
        bias: bool = True,
        **gate_options,
    ) -> None:
        super().__init__()
        self.gate = ConvGate(
            in_channels, hidden_channels, kernel_size, stride, padding, dilation, bias, **gate_options
        )

    @property
    def in_channels(self) -> int:
        return self.gate.in_channels

    @property
    def hidden_channels(self) -> int:
        return self.gate.hidden_channels

    def zero_state(self, x: torch.Tensor) -> State:
        """Zero ``(h, c)`` for a batch of frames ``x`` ``(B, C, H, W)``; the cell state in float32
        when ``x`` is half precision."""
        size = self.gate.output_size(x.shape[-2], x.shape[-1])
        dtype = state_dtype(x.dtype)
        zeros = x.new_zeros((x.shape[0], self.hidden_channels, *size), dtype=dtype)
        return zeros, zeros

    def step(self, input_gates: torch.Tensor, state: State) -> State:
        """One step from precomputed ``gate.input_gates(x_t)``: returns the new ``(h, c)``."""
        hidden, cell = state
        gates = input_gates + self.gate.hidden_gates(hidden)
        if self.fused and self.gate.peephole_weight is None and fused_cell_step_applies(gates, cell):
            return fused_cell_step(gates, cell)
        return lstm_pointwise(gates, cell, self.gate.peephole_weight)

    def forward(self, x: torch.Tensor, state: State | None = None) -> State:
        _check_frames(x, self.in_channels, "x", ndim=4)
        if state is None:
            state = self.zero_state(x)
        else:
            size = self.gate.output_size(x.shape[-2], x.shape[-1])
            _check_state(state, (x.shape[0], self.hidden_channels, *size), "state")
        return self.step(self.gate.input_gates(x), state)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.hidden_channels}"


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The cell state's dtype for inputs of `dtype`: float32 under fp16 / bf16 (the state sums many small steps)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _check_frames(x, in_channels: int, name: str, *, ndim: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        layout = "(B, C, H, W)" if ndim == 4 else "(T, B, C, H, W) or (B, T, C, H, W)"
        raise ValueError(f"{name} must have {ndim} dimensions {layout}, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {x.dtype}")
    channels = x.shape[-3]
    if channels != in_channels:
        raise ValueError(
            f"{name} has {channels} channels (dim {ndim - 3}), expected in_channels={in_channels}"
        )


def _check_state(state, shape: tuple[int, ...], name: str) -> None:
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError(f"{name} must be a tuple (h, c) of tensors, got {type(state).__name__}")
    for part, tensor in zip(("h", "c"), state):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}[{part}] must be a torch.Tensor, got {type(tensor).__name__}")
        if tuple(tensor.shape) != tuple(shape):
            raise ValueError(f"{name}[{part}] must have shape {tuple(shape)}, got {tuple(tensor.shape)}")


# --------------------------------------------------------------------------- sequences
class ConvLSTM(nn.Module):
    r"""A multi-layer, optionally bidirectional Convolutional LSTM over frame sequences.

    Follows :class:`torch.nn.LSTM` wherever it has the same concept. Each layer and direction is a
    :class:`ConvLSTMCell` (equations there). The input convolution of a layer runs once over all
    ``T * B`` frames; only the hidden convolution and the pointwise update run in the time loop.
    The second and later layers take the previous layer's output (both directions concatenated),
    with dropout in between when ``dropout > 0``.

    ``stride``, ``padding`` and ``dilation`` act on the first layer's input convolution; every
    recurrent convolution, and the input convolutions of deeper layers, are stride 1 with "same"
    padding, so all states share the size ``H' x W'`` of the first input convolution's output.

    Args:
        in_channels: ``C_in``, channels of each input frame.
        hidden_channels: ``C_h``, channels of the hidden and cell states.
        kernel_size: int or pair; both convolutions of every layer. Default 3.
        padding: of the first input convolution: int, pair, ``"same"`` or ``"valid"``. Default ``"same"``.
        stride: of the first input convolution. Default 1.
        bias: learn gate biases. Default ``True``.
        batch_first: input and output are ``(B, T, ...)`` instead of ``(T, B, ...)``. Default ``False``.
        bidirectional: add a backward direction. Default ``False``.
        num_layers: stacked layers. Default 1.
        dilation: of the first input convolution. Default 1.
        dropout: dropout probability on the outputs of each layer but the last. Default 0.
        peephole: the paper's peephole connections (per-channel weights). Default ``False``.
        norm: ``None``, ``"group"`` or ``"layer"`` normalisation of gate pre-activations.
        norm_groups: groups per gate for ``norm="group"``. Default 8.
        forget_bias: initial forget-gate bias. Default 1.0.
        gradient_checkpointing: when training, recompute each chunk of about ``sqrt(T)`` time steps
            (input convolution included) in the backward pass instead of storing its activations.

    Inputs: ``input, state, lengths``
        * **input**: ``(T, B, C_in, H, W)``, ``(B, T, C_in, H, W)`` when ``batch_first``, or a
          :class:`~torch.nn.utils.rnn.PackedSequence` of frames ``(C_in, H, W)``.
        * **state**: optional ``(h_0, c_0)``, each ``(D * num_layers, B, C_h, H', W')``, with ``D = 2``
          when bidirectional, else 1. Zeros when absent.
        * **lengths**: optional int tensor ``(B,)`` of valid steps per sample, each in ``[1, T]``
          (not with a PackedSequence, which carries its own).

    Outputs: ``output, (h_n, c_n)``
        * **output**: ``(T, B, D * C_h, H', W')`` (``(B, T, ...)`` when ``batch_first``; a
          PackedSequence for a PackedSequence input): the last layer's hidden states, forward then
          backward direction on the channel axis, both aligned with the input's time steps; zeros
          at padded steps.
        * **h_n**, **c_n**: ``(D * num_layers, B, C_h, H', W')`` in nn.LSTM's order (layer-major,
          forward before backward). The forward direction's final state is taken at each sample's
          last valid step; the backward direction starts there. Under bf16/fp16 autocast ``c_n``
          (and the outputs) are float32.

    Attributes:
        cells: ``ModuleList`` of :class:`ConvLSTMCell`, index ``layer * D + direction``.
        fused: run each layer and direction as one fused autograd function with a hand-written
            backward through time (default ``True``; see ``docs/benchmarks.md``): same results, fewer
            saved activations, faster. It applies without ``norm``, peepholes, per-sample ``lengths``
            shorter than ``T`` or ``torch.compile``; those take the per-step loop, whose cells fuse each
            step's pointwise work (:attr:`ConvLSTMCell.fused`). ``fused = False`` (set on the layer: its cells
            follow) is autograd over plain ops throughout, e.g. for double backward.
        memory_format: the memory format of the fused path's tensors: ``"auto"`` (default: on the CPU the
            faster of channels_last and contiguous for the layer's recurrent convolution, measured once per
            process and shape, see :func:`~.convlstm_fused.resolve_memory_format`; channels_last elsewhere and
            for small convolutions), ``"channels_last"`` or ``"contiguous"``. Results agree to rounding (about
            1e-7 in fp32) whichever it is; force one for results identical across processes.
        pointwise: how the fused path runs each step's pointwise work (gate activations, cell update and their
            backward): ``"eager"`` (default, torch ops in place) or ``"compiled"`` (``torch.compile``d into a
            few fused kernels per step, see :mod:`.convlstm_pointwise`: faster, above all in bf16, for a few
            seconds of compilation per process and shape and a C++ compiler on the CPU). Results agree to
            rounding. ``torch.compile(module)`` itself traces the plain loop instead.

    Example::

        >>> conv_lstm = ConvLSTM(1, 64, 3, padding=1, batch_first=True, bidirectional=True)
        >>> output, (h_n, c_n) = conv_lstm(torch.randn(2, 10, 1, 64, 64))
        >>> output.shape, h_n.shape
        (torch.Size([2, 10, 128, 64, 64]), torch.Size([2, 2, 64, 64, 64]))
    """

    _fused: bool = True
    memory_format: str = "auto"
    pointwise: str = "eager"

    @property
    def fused(self) -> bool:
        return self._fused

    @fused.setter
    def fused(self, value: bool) -> None:
        # the cells' single-step fusion follows: fused = False is autograd over plain ops throughout
        self._fused = bool(value)
        for cell in self.cells:
            cell.fused = self._fused

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size=3,
        padding="same",
        stride=1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        *,
        num_layers: int = 1,
        dilation=1,
        dropout: float = 0.0,
        peephole: bool = False,
        norm: str | None = None,
        norm_groups: int = 8,
        forget_bias: float = 1.0,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.hidden_channels = check_int("hidden_channels", hidden_channels)
        self.num_layers = check_int("num_layers", num_layers)
        self.batch_first = _check_bool(batch_first, "batch_first")
        self.bidirectional = _check_bool(bidirectional, "bidirectional")
        self.gradient_checkpointing = _check_bool(gradient_checkpointing, "gradient_checkpointing")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise TypeError(f"dropout must be a float in [0, 1), got {dropout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.num_directions = 2 if bidirectional else 1
        options = dict(peephole=peephole, norm=norm, norm_groups=norm_groups, forget_bias=forget_bias)
        first_input = (in_channels, stride, padding, dilation)
        self.cells = nn.ModuleList(self._build_cells(first_input, kernel_size, bias, options))
        first = self.cells[0].gate
        self.kernel_size, self.stride, self.padding, self.dilation = (
            first.kernel_size,
            first.stride,
            first.padding,
            first.dilation,
        )
        self.bias, self.peephole, self.norm, self.forget_bias = bias, peephole, norm, first.forget_bias

    def _build_cells(self, first_input, kernel_size, bias, options) -> list[ConvLSTMCell]:
        """One :class:`ConvLSTMCell` per layer and direction (index ``layer * D + direction``). The first layer
        reads the input as `first_input` ``(in_channels, stride, padding, dilation)`` says; deeper layers read the
        previous layer's directions concatenated, stride 1, "same"."""
        deeper = (self.num_directions * self.hidden_channels, 1, "same", 1)
        cells = []
        for layer in range(self.num_layers):
            in_channels, stride, padding, dilation = first_input if layer == 0 else deeper
            for _ in range(self.num_directions):
                cells.append(
                    ConvLSTMCell(
                        in_channels,
                        self.hidden_channels,
                        kernel_size,
                        stride,
                        padding,
                        dilation,
                        bias,
                        **options,
                    )
                )
        return cells

    def reset_parameters(self) -> None:
        for cell in self.cells:
            cell.gate.reset_parameters()

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(H', W')``, the state size for input frames of ``height x width``."""
        return self.cells[0].gate.output_size(height, width)

    # ------------------------------------------------------------------ checks
    def _check_inputs(self, x, state, lengths, batch_first: bool) -> torch.Tensor | None:
        """Validate everything before any convolution runs; returns lengths as a CPU int64 tensor."""
        _check_frames(x, self.in_channels, "input", ndim=5)
        steps, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
        if steps == 0 or batch == 0:
            raise ValueError(
                f"input must have at least one time step and one sample, got shape {tuple(x.shape)}"
            )
        height, width = self.output_size(x.shape[-2], x.shape[-1])
        if height <= 0 or width <= 0:
            raise ValueError(
                f"input frames of {tuple(x.shape[-2:])} are smaller than the input convolution's receptive "
                f"field (kernel_size={self.kernel_size}, padding={self.padding}, dilation={self.dilation})"
            )
        if state is not None:
            shape = (self.num_layers * self.num_directions, batch, self.hidden_channels, height, width)
            _check_state(state, shape, "state")
        if lengths is None:
            return None
        if not isinstance(lengths, torch.Tensor):
            if isinstance(lengths, Sequence) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in lengths
            ):
                lengths = torch.tensor(list(lengths), dtype=torch.long)
            else:
                raise TypeError(
                    f"lengths must be an int tensor or a list of ints, got {type(lengths).__name__}"
                )
        if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
            raise TypeError(f"lengths must have an integer dtype, got {lengths.dtype}")
        if lengths.shape != (batch,):
            raise ValueError(
                f"lengths must have shape ({batch},) (one per sample), got {tuple(lengths.shape)}"
            )
        lengths = lengths.detach().to("cpu", torch.long)
        if int(lengths.min()) < 1 or int(lengths.max()) > steps:
            raise ValueError(
                f"lengths must be in [1, {steps}] (the number of time steps), got {lengths.tolist()}"
            )
        return lengths

    # ------------------------------------------------------------------ forward
    def forward(self, input, state: State | None = None, lengths=None):
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError("lengths must be None for a PackedSequence input, which carries its own")
            packed_input = input
            input, lengths = pad_packed_sequence(input, batch_first=False)
            lengths = lengths.to(torch.long)
            batch_first = False
        else:
            batch_first = self.batch_first
        lengths = self._check_inputs(input, state, lengths, batch_first)
        if batch_first:  # everything below works on (T, B, C, H, W)
            input = input.transpose(0, 1)

        output, h_n, c_n = self._run(input, state, lengths)

        if packed:
            order = packed_input.sorted_indices
            sorted_output = output if order is None else output.index_select(1, order)
            sorted_lengths = lengths if order is None else lengths.index_select(0, order.cpu())
            data = pack_padded_sequence(sorted_output, sorted_lengths, enforce_sorted=True).data
            output = PackedSequence(
                data, packed_input.batch_sizes, packed_input.sorted_indices, packed_input.unsorted_indices
            )
        elif batch_first:
            output = output.transpose(0, 1)
        return output, (h_n, c_n)

    def _run(self, x: torch.Tensor, state: State | None, lengths: torch.Tensor | None):
        steps, batch = x.shape[:2]
        valid = None
        if lengths is not None and int(lengths.min()) < steps:
            # valid[t] is (B, 1, 1, 1): True where step t is inside the sample.
            valid = (torch.arange(steps).unsqueeze(1) < lengths.unsqueeze(0)).to(x.device)
            valid = valid.view(steps, batch, 1, 1, 1)
        h_n, c_n = [], []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                cell = self.cells[index]
                if state is None:
                    initial = cell.zero_state(layer_input[0])
                else:
                    initial = (state[0][index], state[1][index].to(state_dtype(state[1].dtype)))
                output, final = self._run_direction(
                    cell, layer_input, initial, valid, reverse=direction == 1, zero_state=state is None
                )
                outputs.append(output)
                h_n.append(final[0])
                c_n.append(final[1])
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, torch.stack(h_n), torch.stack(c_n)

    def _run_direction(
        self,
        cell: ConvLSTMCell,
        x: torch.Tensor,
        state: State,
        valid,
        reverse: bool,
        zero_state: bool = False,
    ):
        """One layer, one direction over (T, B, C, H, W); returns ((T, B, C_h, H', W'), (h, c))."""
        steps = x.shape[0]
        order = list(range(steps - 1, -1, -1)) if reverse else list(range(steps))
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            chunk = max(1, math.isqrt(steps))
            chunks = [order[i : i + chunk] for i in range(0, steps, chunk)]
            outputs: list[torch.Tensor | None] = [None] * steps
            hidden, cell_state = state
            for times in chunks:
                start, stop = min(times), max(times) + 1
                chunk_valid = None if valid is None else valid[start:stop]
                chunk_out, hidden, cell_state = checkpoint(
                    _run_chunk,
                    cell,
                    x[start:stop],
                    hidden,
                    cell_state,
                    chunk_valid,
                    reverse,
                    zero_state and times is chunks[0],
                    self.fused,
                    self.memory_format,
                    self.pointwise,
                    use_reentrant=False,
                )
                for offset, out in enumerate(chunk_out.unbind(0)):
                    outputs[start + offset] = out
            return torch.stack(outputs), (hidden, cell_state)
        output, hidden, cell_state = _run_chunk(
            cell,
            x,
            state[0],
            state[1],
            valid,
            reverse,
            zero_state,
            self.fused,
            self.memory_format,
            self.pointwise,
        )
        return output, (hidden, cell_state)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.stride != (1, 1):
            text += f", stride={self.stride}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.bidirectional:
            text += ", bidirectional=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        return text


def _run_chunk(
    cell: ConvLSTMCell,
    x: torch.Tensor,
    hidden: torch.Tensor,
    cell_state: torch.Tensor,
    valid: torch.Tensor | None,
    reverse: bool,
    zero_state: bool = False,
    fused: bool = True,
    memory_format: str = "auto",
    pointwise: str = "eager",
):
    """Steps over the (T, B, ...) frames ``x`` in time order (reversed when ``reverse``).

    The input convolution runs once over all ``T * B`` frames. Where ``valid`` is False the state
    is carried unchanged and the output is zero. ``zero_state`` says ``(hidden, cell_state)`` are
    zeros. With ``fused`` (and where it applies, see :func:`~.convlstm_fused.fused_applies`) the whole
    chunk runs as one fused autograd ``Function`` (:mod:`.convlstm_fused`) in ``memory_format``, its pointwise
    work ``pointwise`` (eager or compiled). Returns
    ``(outputs (T, B, C_h, H', W'), h, c)``.
    """
    if fused and fused_applies(cell.gate, valid):
        return run_fused(cell.gate, x, hidden, cell_state, reverse, zero_state, memory_format, pointwise)
    steps, batch = x.shape[:2]
    input_gates = cell.gate.input_gates(x.flatten(0, 1)).unflatten(0, (steps, batch)).unbind(0)
    step_valid = None if valid is None else valid.unbind(0)
    outputs: list[torch.Tensor | None] = [None] * steps
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        new_hidden, new_cell = cell.step(input_gates[t], (hidden, cell_state))
        if step_valid is None:
            hidden, cell_state = new_hidden, new_cell
            outputs[t] = new_hidden
        else:
            keep = step_valid[t]
            hidden = torch.where(keep, new_hidden, hidden)
            cell_state = torch.where(keep, new_cell, cell_state)
            outputs[t] = new_hidden * keep
    return torch.stack(outputs), hidden, cell_state
