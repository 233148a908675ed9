"""Tests of the layer module: ConvGate, ConvLSTMCell, ConvLSTM."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bidirectional_conv_lstm import ConvGate, ConvLSTM, ConvLSTMCell


def randomize(module: nn.Module, seed: int = 0, scale: float = 0.5) -> nn.Module:
    """Random values for every parameter (biases and peepholes too), so no term hides at zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(
                (torch.rand(parameter.shape, generator=generator, dtype=parameter.dtype) - 0.5) * 2 * scale
            )
    return module


def reference_convlstm(module: ConvLSTM, x, state=None, lengths=None):
    """Shi et al. (2015) equations, one sample and one step at a time, in the input's dtype.

    x is (T, B, C, H, W). Each sample runs alone over its first ``lengths[b]`` steps; the backward
    direction starts at the sample's last valid step. Returns output, h_n, c_n like ConvLSTM.
    """
    steps, batch = x.shape[:2]
    lengths = [steps] * batch if lengths is None else [int(v) for v in lengths]
    directions = module.num_directions
    layer_input = x
    h_n, c_n = [], []
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            gate = module.cells[index].gate
            hidden_channels = gate.hidden_channels
            out_h, out_w = gate.output_size(layer_input.shape[-2], layer_input.shape[-1])
            output = x.new_zeros(steps, batch, hidden_channels, out_h, out_w)
            finals_h, finals_c = [], []
            for b in range(batch):
                if state is None:
                    h = x.new_zeros(1, hidden_channels, out_h, out_w)
                    c = x.new_zeros(1, hidden_channels, out_h, out_w)
                else:
                    h, c = state[0][index, b : b + 1], state[1][index, b : b + 1]
                times = range(lengths[b])
                for t in reversed(times) if direction == 1 else times:
                    frame = layer_input[t, b : b + 1]
                    zx = F.conv2d(
                        frame, gate.input_conv.weight, None, gate.stride, gate.padding, gate.dilation
                    )
                    zh = F.conv2d(h, gate.hidden_conv.weight, None, 1, "same")
                    if gate.norm is None:
                        if gate.input_conv.bias is not None:
                            zx = zx + gate.input_conv.bias.view(1, -1, 1, 1)
                    else:
                        groups = 4 * gate.norm_groups
                        zx = F.group_norm(
                            zx, groups, gate.input_norm.weight, gate.input_norm.bias, gate.input_norm.eps
                        )
                        zh = F.group_norm(
                            zh, groups, gate.hidden_norm.weight, gate.hidden_norm.bias, gate.hidden_norm.eps
                        )
                    zi, zf, zg, zo = (zx + zh).chunk(4, dim=1)
                    if gate.peephole:
                        w_ci, w_cf, w_co = gate.peephole_weight
                    else:
                        w_ci = w_cf = w_co = 0.0
                    i = torch.sigmoid(zi + w_ci * c)
                    f = torch.sigmoid(zf + w_cf * c)
                    g = torch.tanh(zg)
                    c = f * c + i * g
                    o = torch.sigmoid(zo + w_co * c)
                    h = o * torch.tanh(c)
                    output[t, b] = h[0]
                finals_h.append(h[0])
                finals_c.append(c[0])
            outputs.append(output)
            h_n.append(torch.stack(finals_h))
            c_n.append(torch.stack(finals_c))
        layer_input = torch.cat(outputs, dim=2)
    return layer_input, torch.stack(h_n), torch.stack(c_n)


REFERENCE_CASES = {
    "uni-1layer": dict(),
    "bi-1layer": dict(bidirectional=True),
    "bi-2layers": dict(bidirectional=True, num_layers=2),
    "uni-3layers": dict(num_layers=3),
    "bi-3layers-peephole": dict(bidirectional=True, num_layers=3, peephole=True),
    "stride2-pad1": dict(stride=2, padding=1, bidirectional=True),
    "valid-padding": dict(padding="valid", num_layers=2),
    "dilation2": dict(dilation=2, padding=2, bidirectional=True),
    "kernel-5x3": dict(kernel_size=(5, 3), padding=(2, 1)),
    "even-kernel-same": dict(kernel_size=2, padding="same"),
    "no-bias": dict(bias=False, bidirectional=True),
    "group-norm": dict(norm="group", norm_groups=2, bidirectional=True),
    "layer-norm-peephole": dict(norm="layer", peephole=True),
}


@pytest.mark.parametrize("options", REFERENCE_CASES.values(), ids=REFERENCE_CASES.keys())
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
def test_matches_paper_equations(options, with_state):
    options = dict(options)
    kernel_size = options.pop("kernel_size", 3)
    padding = options.pop("padding", 1)
    module = randomize(ConvLSTM(2, 4, kernel_size, padding, **options).double())
    x = torch.randn(4, 3, 2, 7, 6, dtype=torch.float64)
    state = None
    if with_state:
        out_h, out_w = module.output_size(7, 6)
        shape = (module.num_layers * module.num_directions, 3, 4, out_h, out_w)
        state = (torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64))
    output, (h_n, c_n) = module(x, state)
    expected_output, expected_h, expected_c = reference_convlstm(module, x, state)
    torch.testing.assert_close(output, expected_output, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h_n, expected_h, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(c_n, expected_c, rtol=1e-10, atol=1e-10)


def test_variable_lengths_match_reference_with_initial_state():
    module = randomize(ConvLSTM(2, 3, 3, 1, bidirectional=True, num_layers=2, peephole=True).double())
    x = torch.randn(5, 3, 2, 6, 6, dtype=torch.float64)
    shape = (4, 3, 3, 6, 6)
    state = (torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64))
    lengths = torch.tensor([5, 2, 3])
    output, (h_n, c_n) = module(x, state, lengths=lengths)
    expected = reference_convlstm(module, x, state, lengths)
    torch.testing.assert_close(output, expected[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h_n, expected[1], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(c_n, expected[2], rtol=1e-10, atol=1e-10)


def test_variable_lengths_equal_each_sample_alone_and_ignore_padding():
    module = randomize(ConvLSTM(1, 3, 3, 1, batch_first=True, bidirectional=True, num_layers=2).double())
    lengths = torch.tensor([2, 5, 3])
    x = torch.randn(3, 5, 1, 5, 5, dtype=torch.float64)
    output, (h_n, c_n) = module(x, lengths=lengths)
    for b, length in enumerate(lengths.tolist()):
        alone, (h_alone, c_alone) = module(x[b : b + 1, :length])
        torch.testing.assert_close(output[b, :length], alone[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(h_n[:, b], h_alone[:, 0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c_n[:, b], c_alone[:, 0], rtol=1e-12, atol=1e-12)
        assert torch.count_nonzero(output[b, length:]) == 0
    noisy = x.clone()
    for b, length in enumerate(lengths.tolist()):
        noisy[b, length:] = 1e3 * torch.randn_like(noisy[b, length:])
    noisy_output, (noisy_h, noisy_c) = module(noisy, lengths=lengths)
    assert torch.equal(noisy_output, output)
    assert torch.equal(noisy_h, h_n) and torch.equal(noisy_c, c_n)


# ----------------------------------------------------------------------------- nn.LSTM equivalence
def convlstm_from_lstm(lstm: nn.LSTM) -> ConvLSTM:
    """A 1x1 ConvLSTM carrying ``lstm``'s weights."""
    module = ConvLSTM(
        lstm.input_size,
        lstm.hidden_size,
        1,
        0,
        bidirectional=lstm.bidirectional,
        num_layers=lstm.num_layers,
        batch_first=lstm.batch_first,
        forget_bias=0.0,
    ).to(lstm.weight_ih_l0.dtype)
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            for direction in range(module.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                gate = module.cells[layer * module.num_directions + direction].gate
                gate.input_conv.weight.copy_(getattr(lstm, "weight_ih" + suffix)[..., None, None])
                gate.hidden_conv.weight.copy_(getattr(lstm, "weight_hh" + suffix)[..., None, None])
                gate.input_conv.bias.copy_(
                    getattr(lstm, "bias_ih" + suffix) + getattr(lstm, "bias_hh" + suffix)
                )
    return module


def as_frames(x: torch.Tensor) -> torch.Tensor:
    return x[..., None, None]


@pytest.mark.parametrize("batch_first", [False, True])
def test_1x1_convlstm_is_an_lstm_with_lengths(batch_first):
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=batch_first).double()
    module = convlstm_from_lstm(lstm)
    lengths = torch.tensor([4, 6, 1, 3])
    x = (
        torch.randn(4, 6, 3, dtype=torch.float64)
        if batch_first
        else torch.randn(6, 4, 3, dtype=torch.float64)
    )
    h0 = torch.randn(4, 4, 5, dtype=torch.float64)
    c0 = torch.randn(4, 4, 5, dtype=torch.float64)

    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    expected_packed, (expected_h, expected_c) = lstm(packed, (h0, c0))
    expected, _ = pad_packed_sequence(expected_packed, batch_first=batch_first, total_length=6)

    output, (h_n, c_n) = module(as_frames(x), (as_frames(h0), as_frames(c0)), lengths=lengths)
    torch.testing.assert_close(output[..., 0, 0], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(h_n[..., 0, 0], expected_h, rtol=0, atol=1e-6)
    torch.testing.assert_close(c_n[..., 0, 0], expected_c, rtol=0, atol=1e-6)


def test_1x1_convlstm_is_an_lstm_with_packed_sequence():
    torch.manual_seed(1)
    lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True).double()
    module = convlstm_from_lstm(lstm)
    lengths = torch.tensor([2, 5, 5, 3])
    x = torch.randn(5, 4, 3, dtype=torch.float64)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    expected, (expected_h, expected_c) = lstm(packed)

    packed_frames = pack_padded_sequence(as_frames(x), lengths, enforce_sorted=False)
    output, (h_n, c_n) = module(packed_frames)
    assert isinstance(output, torch.nn.utils.rnn.PackedSequence)
    assert torch.equal(output.batch_sizes, expected.batch_sizes)
    assert torch.equal(output.sorted_indices, expected.sorted_indices)
    torch.testing.assert_close(output.data[..., 0, 0], expected.data, rtol=0, atol=1e-6)
    torch.testing.assert_close(h_n[..., 0, 0], expected_h, rtol=0, atol=1e-6)
    torch.testing.assert_close(c_n[..., 0, 0], expected_c, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- gradients
def test_gradcheck_tiny_bidirectional():
    module = randomize(ConvLSTM(1, 2, 3, 1, bidirectional=True, peephole=True).double())
    x = torch.randn(3, 2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 2, 2, 4, 4, dtype=torch.float64, requires_grad=True)

    def run(x, h0, c0):
        output, (h_n, c_n) = module(x, (h0, c0), lengths=torch.tensor([3, 2]))
        return output, h_n, c_n

    assert torch.autograd.gradcheck(run, (x, h0, c0))


@pytest.mark.parametrize("norm", [None, "group"])
def test_gradients_reach_every_parameter_through_output(norm):
    module = ConvLSTM(2, 4, 3, 1, bidirectional=True, num_layers=2, peephole=True, norm=norm, norm_groups=2)
    output, _ = module(torch.randn(4, 2, 2, 6, 6))
    output.square().sum().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_gradient_checkpointing_same_gradients_fewer_saved_bytes():
    torch.manual_seed(0)
    module = ConvLSTM(2, 8, 3, 1, bidirectional=True, num_layers=2, peephole=True).double()
    checkpointed = ConvLSTM(
        2, 8, 3, 1, bidirectional=True, num_layers=2, peephole=True, gradient_checkpointing=True
    )
    checkpointed.double().load_state_dict(module.state_dict())
    x = torch.randn(9, 2, 2, 8, 8, dtype=torch.float64)
    lengths = torch.tensor([9, 5])

    def run(m):
        saved = []

        def pack(tensor):
            saved.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            output, (h_n, _) = m(x, lengths=lengths)
        (output.square().sum() + h_n.sum()).backward()
        return output, {n: p.grad.clone() for n, p in m.named_parameters()}, sum(saved)

    output, grads, saved_bytes = run(module)
    output_ckpt, grads_ckpt, saved_bytes_ckpt = run(checkpointed)
    torch.testing.assert_close(output_ckpt, output)
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], rtol=1e-10, atol=1e-10)
    assert saved_bytes_ckpt * 2 < saved_bytes, (saved_bytes_ckpt, saved_bytes)


# ----------------------------------------------------------------------------- streaming, dtypes
def test_streaming_cell_equals_sequence_call():
    module = randomize(ConvLSTM(1, 3, 3, 1, batch_first=True, peephole=True))
    x = torch.randn(2, 6, 1, 8, 8)
    output, (h_n, c_n) = module(x)
    cell: ConvLSTMCell = module.cells[0]
    state = None
    for t in range(6):
        state = cell(x[:, t], state)
        torch.testing.assert_close(state[0], output[:, t], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(state[0], h_n[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(state[1], c_n[0], rtol=1e-6, atol=1e-6)


def test_bf16_autocast_keeps_float32_cell_state():
    module = ConvLSTM(1, 4, 3, 1, bidirectional=True, num_layers=2)
    x = torch.randn(3, 2, 1, 8, 8)
    reference, (_, reference_c) = module(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, (h_n, c_n) = module(x)
        gates = module.cells[0].gate.input_gates(x[0])
    assert gates.dtype == torch.bfloat16  # the convolutions did run in bf16
    assert c_n.dtype == torch.float32 and h_n.dtype == torch.float32
    torch.testing.assert_close(c_n, reference_c, rtol=0.05, atol=0.05)
    torch.testing.assert_close(output, reference, rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    "options", [dict(), dict(peephole=True, norm="group", norm_groups=2)], ids=["fused", "plain"]
)
def test_bfloat16_weights_run_with_float32_cell_state(options):
    module = ConvLSTM(1, 4, 3, 1, bidirectional=True, num_layers=2, **options)
    module = module.bfloat16()
    x = torch.randn(3, 2, 1, 8, 8).bfloat16()
    output, (h_n, c_n) = module(x)
    assert c_n.dtype == torch.float32
    assert output.shape == (3, 2, 8, 8, 8) and torch.isfinite(output).all()
    cell_h, cell_c = module.cells[0](x[0])
    assert cell_c.dtype == torch.float32 and torch.isfinite(cell_h).all()


def test_forward_changes_no_attributes_or_buffers():
    module = ConvLSTM(1, 4, 3, 1, bidirectional=True, num_layers=2, dropout=0.5)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    attributes = dict(vars(module))
    module.train()
    module(torch.randn(3, 2, 1, 6, 6))
    assert list(module.buffers()) == []
    assert module.state_dict().keys() == before.keys()
    assert all(torch.equal(module.state_dict()[k], v) for k, v in before.items())
    assert {k: v for k, v in vars(module).items() if k != "_modules"} == {
        k: v for k, v in attributes.items() if k != "_modules"
    }


def test_dropout_between_layers_only_in_training():
    module = ConvLSTM(1, 4, 3, 1, num_layers=2, dropout=0.5)
    x = torch.randn(3, 2, 1, 6, 6)
    module.eval()
    first, _ = module(x)
    second, _ = module(x)
    assert torch.equal(first, second)
    module.train()
    torch.manual_seed(0)
    dropped, _ = module(x)
    assert not torch.allclose(dropped, first)


def test_forget_bias_and_extra_repr():
    module = ConvLSTM(1, 4, 3, 1, bidirectional=True, forget_bias=2.0, peephole=True)
    bias = module.cells[1].gate.gate_bias
    assert torch.equal(bias[4:8], torch.full((4,), 2.0))
    assert torch.count_nonzero(bias[:4]) == 0 and torch.count_nonzero(bias[8:]) == 0
    text = repr(module)
    assert "bidirectional=True" in text and "peephole=True" in text and "kernel_size=(3, 3)" in text


def test_gate_is_one_convolution_per_input():
    gate = ConvGate(3, 5, 3, padding=1)
    convs = [m for m in gate.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 and all(c.out_channels == 20 for c in convs)
    x, h = torch.randn(2, 3, 6, 6), torch.randn(2, 5, 6, 6)
    torch.testing.assert_close(gate(x, h), gate.input_gates(x) + gate.hidden_gates(h))


@pytest.mark.slow
def test_torch_compile_gives_same_output():
    module = ConvLSTM(1, 4, 3, 1, bidirectional=True)
    x = torch.randn(3, 2, 1, 8, 8)
    expected, (expected_h, _) = module(x)
    compiled = torch.compile(module)
    output, (h_n, _) = compiled(x)
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h_n, expected_h, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- bad input
CONSTRUCTOR_ERRORS = [
    (dict(in_channels=0), ValueError, "in_channels"),
    (dict(in_channels=2.0), TypeError, "in_channels"),
    (dict(hidden_channels=-1), ValueError, "hidden_channels"),
    (dict(kernel_size=0), ValueError, "kernel_size"),
    (dict(kernel_size=(3,)), TypeError, "kernel_size"),
    (dict(padding="full"), ValueError, "padding"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(stride=0), ValueError, "stride"),
    (dict(stride=2, padding="same"), ValueError, "padding"),
    (dict(dilation=0), ValueError, "dilation"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(dropout=-0.1), ValueError, "dropout"),
    (dict(dropout="0.1"), TypeError, "dropout"),
    (dict(num_layers=0), ValueError, "num_layers"),
    (dict(norm="batch"), ValueError, "norm"),
    (dict(norm="group", norm_groups=3), ValueError, "norm_groups"),
    (dict(batch_first="yes"), TypeError, "batch_first"),
    (dict(bidirectional=1), TypeError, "bidirectional"),
    (dict(forget_bias="1"), TypeError, "forget_bias"),
]


@pytest.mark.parametrize(
    ("overrides", "error", "name"),
    CONSTRUCTOR_ERRORS,
    ids=[f"{e[2]}={list(e[0].values())[-1]!r}" for e in CONSTRUCTOR_ERRORS],
)
def test_bad_constructor_arguments(overrides, error, name):
    arguments = dict(in_channels=1, hidden_channels=4, kernel_size=3, padding=1) | overrides
    with pytest.raises(error, match=name):
        ConvLSTM(**arguments)


def _state(shape):
    return (torch.zeros(shape), torch.zeros(shape))


FORWARD_ERRORS = [
    ("4-dim input", dict(x=torch.randn(3, 2, 6, 6)), ValueError, "input"),
    ("6-dim input", dict(x=torch.randn(3, 2, 1, 1, 6, 6)), ValueError, "input"),
    ("channel mismatch", dict(x=torch.randn(3, 2, 2, 6, 6)), ValueError, "in_channels"),
    ("integer input", dict(x=torch.ones(3, 2, 1, 6, 6, dtype=torch.long)), TypeError, "input"),
    ("numpy input", dict(x=torch.randn(3, 2, 1, 6, 6).numpy()), TypeError, "input"),
    ("empty sequence", dict(x=torch.randn(0, 2, 1, 6, 6)), ValueError, "input"),
    (
        "frames too small",
        dict(x=torch.randn(3, 2, 1, 6, 6), options=dict(padding="valid", kernel_size=7)),
        ValueError,
        "input",
    ),
    ("lengths wrong shape", dict(lengths=torch.tensor([3, 2, 1])), ValueError, "lengths"),
    ("lengths 2-d", dict(lengths=torch.tensor([[3, 2]])), ValueError, "lengths"),
    ("lengths float", dict(lengths=torch.tensor([3.0, 2.0])), TypeError, "lengths"),
    ("lengths zero", dict(lengths=torch.tensor([3, 0])), ValueError, "lengths"),
    ("lengths > T", dict(lengths=torch.tensor([4, 2])), ValueError, "lengths"),
    ("lengths string", dict(lengths="3,2"), TypeError, "lengths"),
    ("state wrong shape", dict(state=_state((2, 2, 4, 6, 6))), ValueError, "state"),
    ("state wrong size", dict(state=_state((1, 2, 4, 5, 5))), ValueError, "state"),
    ("state not a pair", dict(state=torch.zeros(1, 2, 4, 6, 6)), TypeError, "state"),
    ("state of lists", dict(state=([0.0], [0.0])), TypeError, "state"),
]


@pytest.mark.parametrize(
    ("case", "error", "name"),
    [(e[1], e[2], e[3]) for e in FORWARD_ERRORS],
    ids=[e[0] for e in FORWARD_ERRORS],
)
def test_bad_forward_input_raises_before_any_convolution(case, error, name):
    options = dict(kernel_size=3, padding=1) | case.get("options", {})
    module = ConvLSTM(1, 4, **options)
    calls = []
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d):
            conv.register_forward_pre_hook(lambda *args: calls.append(1))
    x = case.get("x", torch.randn(3, 2, 1, 6, 6))
    with pytest.raises(error, match=name):
        module(x, case.get("state"), lengths=case.get("lengths"))
    assert calls == []


def test_lengths_with_packed_sequence_rejected():
    module = ConvLSTM(1, 2, 3, 1)
    packed = pack_padded_sequence(torch.randn(3, 2, 1, 4, 4), torch.tensor([3, 2]))
    with pytest.raises(ValueError, match="lengths"):
        module(packed, lengths=torch.tensor([3, 2]))


def test_cell_rejects_bad_input():
    cell = ConvLSTMCell(2, 3, 3, padding=1)
    with pytest.raises(ValueError, match="in_channels"):
        cell(torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match="state"):
        cell(torch.randn(1, 2, 4, 4), (torch.zeros(1, 3, 5, 5), torch.zeros(1, 3, 5, 5)))
