"""The fused sequence path (``ConvLSTM.fused``) against the plain per-step loop it replaces."""

from __future__ import annotations

import copy

import pytest
import torch

from bidirectional_conv_lstm import ConvLSTM
from bidirectional_conv_lstm.models.convlstm import convlstm_fused


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return module


def fused_and_plain(module: ConvLSTM) -> tuple[ConvLSTM, ConvLSTM]:
    plain = copy.deepcopy(module)
    plain.fused = False
    module.fused = True
    return module, plain


def count_fused_calls(monkeypatch) -> list[int]:
    calls = [0]
    original = convlstm_fused._FusedConvLSTMSequence.apply

    def counting(*args):
        calls[0] += 1
        return original(*args)

    monkeypatch.setattr(convlstm_fused._FusedConvLSTMSequence, "apply", counting)
    return calls


def run_with_grads(module, x, state=None):
    module.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    if state is not None:
        state = tuple(s.clone().requires_grad_(True) for s in state)
    output, (h_n, c_n) = module(x, state)
    loss = output.square().sum() + (h_n * 0.5).sum() + c_n.square().sum() * 0.25
    loss.backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    grads["x"] = x.grad
    if state is not None:
        grads["h0"], grads["c0"] = state[0].grad, state[1].grad
    return output, h_n, c_n, grads


def assert_results_close(results, expected, tolerance: float) -> None:
    """Two :func:`run_with_grads` results agree: outputs and final states to `tolerance`, every gradient (the same
    names) to 10x it."""
    for name, value, reference in zip(("output", "h_n", "c_n"), results[:3], expected[:3]):
        torch.testing.assert_close(value, reference, rtol=tolerance, atol=tolerance, msg=name)
    grads, expected_grads = results[3], expected[3]
    assert grads.keys() == expected_grads.keys()
    for name in grads:
        torch.testing.assert_close(
            grads[name], expected_grads[name], rtol=10 * tolerance, atol=10 * tolerance, msg=name
        )


CASES = {
    "uni": dict(),
    "bi-2layers": dict(bidirectional=True, num_layers=2),
    "stride-valid": dict(stride=2, padding=0),
    "rect-kernel-dilation": dict(kernel_size=(3, 5), padding=(2, 4), dilation=2),
    "no-bias-batch-first": dict(bias=False, batch_first=True, bidirectional=True),
}


@pytest.mark.parametrize("memory_format", ["channels_last", "contiguous"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_fused_equals_plain_outputs_and_gradients(case, with_state, memory_format, monkeypatch):
    options = dict(in_channels=2, hidden_channels=3, kernel_size=3, padding=1) | case
    fused, plain = fused_and_plain(randomize(ConvLSTM(**options).double()))
    fused.memory_format = memory_format
    x = torch.randn(4, 2, 2, 7, 6, dtype=torch.float64)
    state = None
    if with_state:
        size = fused.output_size(7, 6)
        shape = (fused.num_layers * fused.num_directions, 2 if not fused.batch_first else 4, 3, *size)
        if fused.batch_first:
            x = x.transpose(0, 1).contiguous()
            shape = (fused.num_layers * fused.num_directions, 2, 3, *size)
        state = (torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64))
    elif fused.batch_first:
        x = x.transpose(0, 1).contiguous()
    calls = count_fused_calls(monkeypatch)
    results = run_with_grads(fused, x, state)
    assert calls[0] == fused.num_layers * fused.num_directions  # the fused path did run
    expected = run_with_grads(plain, x, state)
    assert calls[0] == fused.num_layers * fused.num_directions  # and the plain one did not
    assert_results_close(results, expected, 1e-10)


def test_fused_gradcheck_with_initial_state():
    module = randomize(ConvLSTM(1, 2, 3, 1, bidirectional=True).double())
    x = torch.randn(3, 2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 2, 2, 4, 4, dtype=torch.float64, requires_grad=True)

    def run(x, h0, c0):
        output, (h_n, c_n) = module(x, (h0, c0))
        return output, h_n, c_n

    assert torch.autograd.gradcheck(run, (x, h0, c0))


def test_fused_gradcheck_parameters_zero_state():
    module = randomize(ConvLSTM(2, 2, 3, 1, num_layers=2).double())
    x = torch.randn(3, 1, 2, 4, 4, dtype=torch.float64)
    names, params = zip(*module.named_parameters())

    def run(*params):
        return torch.func.functional_call(module, dict(zip(names, params)), (x,))[0]

    assert torch.autograd.gradcheck(run, tuple(p.detach().requires_grad_(True) for p in params))


def test_fused_only_output_or_only_final_state_used():
    fused, plain = fused_and_plain(randomize(ConvLSTM(1, 2, 3, 1, bidirectional=True).double()))
    x = torch.randn(3, 2, 1, 5, 5, dtype=torch.float64)
    for pick in (lambda out: out[0].sum(), lambda out: out[1][0].sum(), lambda out: out[1][1].sum()):
        for module in (fused, plain):
            module.zero_grad()
            pick(module(x)).backward()
        for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-10, msg=name)


def test_fused_channels_last_matches_contiguous():
    module = randomize(ConvLSTM(2, 4, 3, 1, bidirectional=True, num_layers=2))
    channels_last = copy.deepcopy(module).to(memory_format=torch.channels_last)
    assert channels_last.cells[0].gate.hidden_conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(3, 2, 2, 6, 6)
    output, h_n, c_n, grads = run_with_grads(channels_last, x)
    expected, expected_h, expected_c, expected_grads = run_with_grads(module, x)
    torch.testing.assert_close(output, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(c_n, expected_c, rtol=1e-4, atol=1e-5)
    for name in grads:
        torch.testing.assert_close(grads[name], expected_grads[name], rtol=1e-4, atol=1e-4, msg=name)


def test_memory_format_auto_takes_the_faster_layout_measured_once(monkeypatch):
    """ "auto" times the recurrent convolution in both layouts once per shape and runs the faster; a contiguous
    layout must win by the margin, else channels_last stays."""
    monkeypatch.setattr(convlstm_fused, "MEMORY_FORMAT_CHOICES", {})
    monkeypatch.setattr(convlstm_fused, "MEASURED_MIN_GFLOP", 0.0)  # measure even this small convolution
    timings = {"channels_last": 1.0, "contiguous": 0.5}
    calls = []

    def fake_time(layout, shape, padding, dtype, device, backward):
        name = "channels_last" if layout is torch.channels_last else "contiguous"
        calls.append((name, shape, backward))
        return timings[name]

    monkeypatch.setattr(convlstm_fused, "_time_layout", fake_time)
    module = randomize(ConvLSTM(2, 4, 3, 1))
    x = torch.randn(3, 2, 2, 6, 6)
    gate = module.cells[0].gate
    hidden = torch.zeros(2, 4, 6, 6)
    with torch.no_grad():  # inference: the forward alone is timed
        assert convlstm_fused.resolve_memory_format("auto", gate, x, hidden) is torch.contiguous_format
        assert len(calls) == 8 and {shape for _, shape, _ in calls} == {(2, 4, 16, 3, 3, 6, 6)}
        assert convlstm_fused.resolve_memory_format("auto", gate, x, hidden) is torch.contiguous_format
        assert len(calls) == 8  # measured once for this shape
    ((key, (choice, last, contiguous)),) = convlstm_fused.MEMORY_FORMAT_CHOICES.items()
    assert (
        choice == "contiguous" and (last, contiguous) == (1.0, 0.5) and key[4] is False
    )  # no gradients wanted
    # the forward with gradients is another measurement; contiguous within the margin keeps channels_last
    timings["contiguous"] = 0.99
    output, *_ = run_with_grads(module, x)
    assert len(convlstm_fused.MEMORY_FORMAT_CHOICES) == 2 and len(calls) == 16
    assert [entry[0] for entry in convlstm_fused.MEMORY_FORMAT_CHOICES.values()] == [
        "contiguous",
        "channels_last",
    ]
    # forced layouts and devices other than the CPU measure nothing
    for forced, layout in (("channels_last", torch.channels_last), ("contiguous", torch.contiguous_format)):
        assert convlstm_fused.resolve_memory_format(forced, gate, x, hidden) is layout
    meta = torch.empty(3, 2, 2, 6, 6, device="meta")
    assert convlstm_fused.resolve_memory_format("auto", gate, meta, hidden) is torch.channels_last
    assert len(calls) == 16


def test_memory_format_bad_value_is_refused_before_running():
    module = ConvLSTM(2, 4, 3, 1)
    module.memory_format = "nhwc"
    with pytest.raises(
        ValueError,
        match=r"memory_format must be one of \('auto', 'channels_last', 'contiguous'\), got 'nhwc'",
    ):
        module(torch.randn(3, 2, 2, 6, 6))


def test_memory_format_auto_leaves_small_convolutions_channels_last_unmeasured(monkeypatch):
    """Below MEASURED_MIN_GFLOP per step the timings would be noise: channels_last, as before, the same in every
    process."""
    monkeypatch.setattr(convlstm_fused, "MEMORY_FORMAT_CHOICES", {})
    module = randomize(ConvLSTM(8, 16, 3, 1))
    x, hidden = torch.randn(3, 4, 8, 12, 12), torch.zeros(4, 16, 12, 12)
    assert (
        convlstm_fused.resolve_memory_format("auto", module.cells[0].gate, x, hidden) is torch.channels_last
    )
    assert convlstm_fused.MEMORY_FORMAT_CHOICES == {}
    flops = 2 * 4 * 16 * 64 * 9 * 144  # B C 4C k k H W
    monkeypatch.setattr(convlstm_fused, "MEASURED_MIN_GFLOP", flops / 1e9)  # at the threshold: measured
    convlstm_fused.resolve_memory_format("auto", module.cells[0].gate, x, hidden)
    assert len(convlstm_fused.MEMORY_FORMAT_CHOICES) == 1


def test_memory_format_auto_measures_for_real_and_agrees_with_both_layouts(monkeypatch):
    monkeypatch.setattr(convlstm_fused, "MEASURED_MIN_GFLOP", 0.0)
    module = randomize(ConvLSTM(3, 8, 3, 1))
    x = torch.randn(4, 2, 3, 10, 10)
    results = {}
    for memory_format in ("auto", "channels_last", "contiguous"):
        module.memory_format = memory_format
        results[memory_format] = run_with_grads(module, x)
    for name in ("channels_last", "contiguous"):
        torch.testing.assert_close(results["auto"][0], results[name][0], rtol=1e-4, atol=1e-5)
        for key, grad in results["auto"][3].items():
            torch.testing.assert_close(grad, results[name][3][key], rtol=1e-4, atol=1e-4, msg=key)
    measured = [
        v for k, v in convlstm_fused.MEMORY_FORMAT_CHOICES.items() if k[0] == (2, 8, 32, 3, 3, 10, 10)
    ]
    assert measured and all(seconds > 0 for entry in measured for seconds in entry[1:])


def test_fused_bf16_autocast_matches_plain_and_keeps_float32_state():
    fused, plain = fused_and_plain(randomize(ConvLSTM(2, 4, 3, 1, bidirectional=True, num_layers=2)))
    x = torch.randn(4, 2, 2, 6, 6)
    reference, reference_h, reference_c, reference_grads = run_with_grads(plain, x)
    results = []
    for module in (fused, plain):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            results.append(run_with_grads(module, x))
    (output, h_n, c_n, grads), (plain_output, _, plain_c, plain_grads) = results
    assert output.dtype == c_n.dtype == h_n.dtype == torch.float32
    for name, p in fused.named_parameters():
        assert grads[name].dtype == p.dtype == torch.float32
    torch.testing.assert_close(output, plain_output, rtol=0.05, atol=0.05)
    torch.testing.assert_close(c_n, plain_c, rtol=0.05, atol=0.05)
    torch.testing.assert_close(output, reference, rtol=0.05, atol=0.05)
    for name in grads:
        scale = reference_grads[name].abs().max()
        torch.testing.assert_close(grads[name] / scale, reference_grads[name] / scale, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("with_state", [False, True])
def test_fused_bf16_gradients_match_float64_with_and_without_an_initial_state(with_state):
    """Under autocast the fused backward's gradients (weights, input frames, initial state) are the float64 plain
    path's to bf16 precision, with and without an initial state (the recurrent weight gradient of the first step
    is taken against it), in both directions."""
    module = randomize(ConvLSTM(2, 4, 3, 1, bidirectional=True, num_layers=2))
    fused, plain = fused_and_plain(module)
    x = torch.randn(5, 2, 2, 6, 6)
    state = None
    if with_state:  # an initial state: (num_layers * directions, B, C, H, W)
        state = (torch.randn(4, 2, 4, 6, 6) * 0.5, torch.randn(4, 2, 4, 6, 6) * 0.5)
    reference = run_with_grads(plain.double(), x.double(), state and tuple(s.double() for s in state))[3]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        grads = run_with_grads(fused, x, state)[3]
    assert set(grads) == set(reference)
    for name, value in grads.items():
        scale = reference[name].abs().max()
        torch.testing.assert_close(value.double() / scale, reference[name] / scale, rtol=0.03, atol=0.03)


def test_fused_saves_fewer_activation_bytes_than_plain():
    fused, plain = fused_and_plain(ConvLSTM(2, 16, 3, 1))
    x = torch.randn(8, 4, 2, 16, 16)

    def saved_bytes(module):
        storages = {}

        def pack(tensor):
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            module(x)
        return sum(storages.values())

    assert saved_bytes(fused) < 0.9 * saved_bytes(plain)


def test_plain_path_still_used_where_fused_does_not_apply(monkeypatch):
    calls = count_fused_calls(monkeypatch)
    x = torch.randn(3, 2, 1, 5, 5)
    ConvLSTM(1, 2, 3, 1, peephole=True)(x)
    ConvLSTM(1, 2, 3, 1, norm="layer")(x)
    ConvLSTM(1, 2, 3, 1)(x, lengths=torch.tensor([3, 2]))
    assert calls[0] == 0
    ConvLSTM(1, 2, 3, 1)(x, lengths=torch.tensor([3, 3]))  # full lengths: no mask needed
    assert calls[0] == 1


def test_fused_with_gradient_checkpointing_matches():
    module = randomize(ConvLSTM(2, 3, 3, 1, bidirectional=True).double())
    checkpointed = copy.deepcopy(module)
    checkpointed.gradient_checkpointing = True
    x = torch.randn(9, 2, 2, 5, 5, dtype=torch.float64)
    expected = run_with_grads(module, x)
    result = run_with_grads(checkpointed, x)
    torch.testing.assert_close(result[0], expected[0], rtol=1e-10, atol=1e-10)
    for name in expected[3]:
        torch.testing.assert_close(result[3][name], expected[3][name], rtol=1e-9, atol=1e-9, msg=name)
