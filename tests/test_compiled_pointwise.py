"""``ConvLSTM.pointwise = "compiled"``: the fused path's per-step pointwise work through ``torch.compile``, against
the plain per-step loop (float64) and against float64 under bf16 autocast, in both memory formats, with the
initial state and the output gradient in another layout than the layer's."""

from __future__ import annotations

import copy

import pytest
import torch

from bidirectional_conv_lstm import ConvLSTM
from bidirectional_conv_lstm.models.convlstm import convlstm_fused, convlstm_pointwise
from test_performance_paths import CASES, assert_results_close, randomize, run_with_grads


@pytest.fixture
def modes(monkeypatch) -> list[str]:
    """The pointwise modes the fused path asked for, in order."""
    asked: list[str] = []
    original = convlstm_fused.pointwise_steps

    def recording(mode):
        asked.append(mode)
        return original(mode)

    monkeypatch.setattr(convlstm_fused, "pointwise_steps", recording)
    return asked


OTHER_CASES = ["stride-valid", "rect-kernel-dilation", "no-bias-batch-first"]


def compiled_and_plain(module: ConvLSTM) -> tuple[ConvLSTM, ConvLSTM]:
    plain = copy.deepcopy(module)
    plain.fused = False
    module.pointwise = "compiled"
    return module, plain


@pytest.mark.parametrize("memory_format", ["channels_last", "contiguous"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
def test_compiled_pointwise_equals_the_plain_loop_in_float64(memory_format, with_state, modes):
    compiled, plain = compiled_and_plain(
        randomize(ConvLSTM(2, 3, 3, 1, bidirectional=True, num_layers=2).double())
    )
    compiled.memory_format = memory_format
    x = torch.randn(4, 2, 2, 7, 6, dtype=torch.float64)
    state = None
    if with_state:  # contiguous (NCHW) whatever the layer's layout
        state = tuple(torch.randn(4, 2, 3, 7, 6, dtype=torch.float64) for _ in range(2))
    results = run_with_grads(compiled, x, state)
    assert modes and set(modes) == {"compiled"}  # forward and backward of every layer and direction
    assert_results_close(results, run_with_grads(plain, x, state), 1e-9)


@pytest.mark.parametrize("case", [CASES[name] for name in OTHER_CASES], ids=OTHER_CASES)
def test_compiled_pointwise_equals_the_plain_loop_for_the_layers_other_options(case, modes):
    """Stride, "valid" padding, rectangular kernels, dilation, no bias, batch first: the compiled steps see other
    shapes, and the initial state (contiguous) another layout than the layer's."""
    options = dict(in_channels=2, hidden_channels=3, kernel_size=3, padding=1) | case
    compiled, plain = compiled_and_plain(randomize(ConvLSTM(**options).double()))
    x = torch.randn(4, 2, 2, 7, 6, dtype=torch.float64)
    states = compiled.num_layers * compiled.num_directions
    state = tuple(
        torch.randn(states, 2, 3, *compiled.output_size(7, 6), dtype=torch.float64) for _ in range(2)
    )
    if compiled.batch_first:
        x = x.transpose(0, 1).contiguous()
    results = run_with_grads(compiled, x, state)
    assert modes and set(modes) == {"compiled"}
    assert_results_close(results, run_with_grads(plain, x, state), 1e-9)


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
def test_compiled_pointwise_under_bf16_autocast_matches_float64(with_state, modes):
    """Under bf16 autocast (cell state float32) the outputs and every gradient are the float64 plain path's to bf16
    precision, and finite, also with an initial state in another layout than the layer's (an earlier form of the
    compiled functions gave NaN there)."""
    compiled, plain = compiled_and_plain(randomize(ConvLSTM(2, 4, 3, 1, bidirectional=True, num_layers=2)))
    x = torch.randn(5, 2, 2, 6, 6)
    state = None
    if with_state:
        state = (torch.randn(4, 2, 4, 6, 6) * 0.5, torch.randn(4, 2, 4, 6, 6) * 0.5)
    reference = run_with_grads(plain.double(), x.double(), state and tuple(s.double() for s in state))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, h_n, c_n, grads = run_with_grads(compiled, x, state)
    assert set(modes) == {"compiled"}
    assert output.dtype == c_n.dtype == torch.float32
    torch.testing.assert_close(output.double(), reference[0], rtol=0.05, atol=0.05)
    torch.testing.assert_close(c_n.double(), reference[2], rtol=0.05, atol=0.05)
    assert set(grads) == set(reference[3])
    for name, value in grads.items():
        assert torch.isfinite(value).all(), name
        scale = reference[3][name].abs().max()
        torch.testing.assert_close(value.double() / scale, reference[3][name] / scale, rtol=0.03, atol=0.03)


def test_compiled_pointwise_with_gradient_checkpointing_matches_eager(modes):
    eager = randomize(ConvLSTM(2, 3, 3, 1).double())
    compiled = copy.deepcopy(eager)
    compiled.pointwise = "compiled"
    compiled.gradient_checkpointing = True
    x = torch.randn(9, 2, 2, 5, 5, dtype=torch.float64)
    expected = run_with_grads(eager, x)
    modes.clear()
    result = run_with_grads(compiled, x)
    assert modes and set(modes) == {"compiled"}
    assert_results_close(result, expected, 1e-9)


def test_pointwise_bad_value_is_refused_before_running(modes):
    module = ConvLSTM(2, 4, 3, 1)
    module.pointwise = "fast"
    with pytest.raises(ValueError, match=r"pointwise must be one of \('eager', 'compiled'\), got 'fast'"):
        module(torch.randn(3, 2, 2, 6, 6))
    assert modes == []


def test_each_call_signature_compiles_its_own_copy_once(monkeypatch):
    """Dynamo keeps at most `recompile_limit` (8) graphs per code object and the layers of one model soon need more
    (shapes, layouts, dtypes): every signature gets a fresh copy of the function's code, compiled once."""
    compiled_codes = []

    def fake_compile(function, **options):
        assert options == dict(dynamic=False, fullgraph=True)
        compiled_codes.append(function.__code__)
        return function

    monkeypatch.setattr(convlstm_pointwise, "_COMPILED", {})
    monkeypatch.setattr(convlstm_pointwise.torch, "compile", fake_compile)
    function = convlstm_pointwise._fusible_cell_update
    for batch in range(1, 11):  # ten shapes, each called twice
        for _ in range(2):
            assert convlstm_pointwise._compiled(function, (torch.zeros(batch, 4), None)) is not function
    convlstm_pointwise._compiled(function, (torch.zeros(1, 4, dtype=torch.float64), None))  # another dtype
    convlstm_pointwise._compiled(
        function, (torch.zeros(4, 1).t(), None)
    )  # other strides, same shape as batch 1
    assert len(compiled_codes) == len(convlstm_pointwise._COMPILED) == 12
    assert (
        len({id(code) for code in compiled_codes}) == 12
    )  # twelve code objects (== compares their contents)
    assert all(code is not function.__code__ and code == function.__code__ for code in compiled_codes)
