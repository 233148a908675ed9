"""``ConvLSTMCell.fused``: a training step's pointwise work as one autograd function (``fused_cell_step``) against
autograd over the plain ops (``lstm_pointwise``), and where each is taken."""

from __future__ import annotations

import copy

import pytest
import torch

from bidirectional_conv_lstm import ConvLSTM, ConvLSTMCell, ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.models.convlstm import convlstm
from bidirectional_conv_lstm.models.convlstm.convlstm_pointwise import fused_cell_step
from test_performance_paths import randomize


@pytest.fixture
def fused_calls(monkeypatch) -> list[int]:
    """How many steps took the fused function."""
    calls = [0]
    original = convlstm.fused_cell_step

    def counting(*args):
        calls[0] += 1
        return original(*args)

    monkeypatch.setattr(convlstm, "fused_cell_step", counting)
    return calls


def pointwise_results(function, gates, cell, grad_h, grad_c):
    gates = gates.clone().requires_grad_(True)
    cell = cell.clone().requires_grad_(True)
    hidden, new_cell = function(gates, cell)
    torch.autograd.backward((hidden, new_cell), (grad_h, grad_c))
    return hidden, new_cell, gates.grad, cell.grad


def test_fused_step_equals_autograd_over_the_plain_ops_in_float64():
    generator = torch.Generator().manual_seed(0)
    gates = torch.randn(3, 8, 5, 4, generator=generator, dtype=torch.float64) * 2
    cell, grad_h, grad_c = (
        torch.randn(3, 2, 5, 4, generator=generator, dtype=torch.float64) for _ in range(3)
    )
    fused = pointwise_results(fused_cell_step, gates, cell, grad_h, grad_c)
    plain = pointwise_results(lambda g, c: convlstm.lstm_pointwise(g, c, None), gates, cell, grad_h, grad_c)
    for name, value, expected in zip(("h", "c", "grad gates", "grad c"), fused, plain):
        torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12, msg=name)


def test_fused_step_passes_gradcheck_keeps_its_inputs_and_refuses_a_second_derivative():
    generator = torch.Generator().manual_seed(1)
    gates = torch.randn(2, 8, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    cell = torch.randn(2, 2, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    before = gates.detach().clone(), cell.detach().clone()
    assert torch.autograd.gradcheck(fused_cell_step, (gates, cell))
    assert torch.equal(gates, before[0]) and torch.equal(cell, before[1])  # nothing written in place
    hidden, _ = fused_cell_step(gates, cell)
    (grad_gates,) = torch.autograd.grad(hidden.sum(), gates, create_graph=True)
    # first derivatives only, as documented
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        grad_gates.sum().backward()


def test_a_training_step_under_bf16_autocast_matches_float64(fused_calls):
    """bf16 gates and a float32 cell state: the fused step's outputs and the cell's gradients are the float64
    plain path's to bf16 precision, in float32 and with gradients in the weights' dtype."""
    cell = randomize(ConvLSTMCell(2, 4, 3))
    reference = copy.deepcopy(cell).double()
    reference.fused = False
    x = torch.randn(3, 2, 6, 6)
    state = (torch.randn(3, 4, 6, 6) * 0.5, torch.randn(3, 4, 6, 6) * 0.5)

    def loss(module, x, state):
        hidden, new_cell = module(x, state)
        hidden, new_cell = module(x, (hidden, new_cell))  # two steps: the state's gradient flows through
        return hidden.square().sum() + new_cell.sum(), hidden, new_cell

    with torch.autocast("cpu", dtype=torch.bfloat16):
        value, hidden, new_cell = loss(cell, x, state)
    value.backward()
    assert fused_calls[0] == 2
    assert hidden.dtype == new_cell.dtype == torch.float32
    expected, expected_hidden, _ = loss(reference, x.double(), tuple(s.double() for s in state))
    expected.backward()
    assert fused_calls[0] == 2  # the reference took the plain ops
    torch.testing.assert_close(hidden.double(), expected_hidden, rtol=0.05, atol=0.05)
    for (name, parameter), (_, expected_parameter) in zip(
        cell.named_parameters(), reference.named_parameters()
    ):
        assert parameter.grad.dtype == torch.float32 and torch.isfinite(parameter.grad).all(), name
        scale = expected_parameter.grad.abs().max()
        torch.testing.assert_close(
            parameter.grad.double() / scale, expected_parameter.grad / scale, rtol=0.03, atol=0.03, msg=name
        )


def test_the_plain_ops_run_without_gradients_with_peepholes_and_when_not_fused(fused_calls):
    x, state = torch.randn(2, 2, 5, 5), None
    cell = ConvLSTMCell(2, 3, 3)
    with torch.no_grad():
        cell(x, state)
    assert fused_calls[0] == 0  # nothing to differentiate: the plain ops are as fast
    ConvLSTMCell(2, 3, 3, peephole=True)(x, state)[0].sum().backward()
    assert fused_calls[0] == 0
    cell.fused = False
    cell(x, state)[0].sum().backward()
    assert fused_calls[0] == 0
    cell.fused = True
    cell(x, state)[0].sum().backward()
    assert fused_calls[0] == 1


def test_a_layer_that_is_not_fused_is_plain_throughout_and_twice_differentiable(fused_calls):
    layer = randomize(ConvLSTM(2, 3, 3, 1, num_layers=2, bidirectional=True).double())
    layer.fused = False
    assert all(cell.fused is False for cell in layer.cells)
    x = torch.randn(3, 2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([3, 2])  # a mask: the per-step loop
    assert torch.autograd.gradgradcheck(lambda x: layer(x, lengths=lengths)[0], (x,))
    assert fused_calls[0] == 0
    layer.fused = True
    assert all(cell.fused is True for cell in layer.cells)
    layer(x, lengths=lengths)[0].sum().backward()
    assert fused_calls[0] == 2 * 2 * 3  # the masked loop's steps: two layers, two directions, three steps


def test_the_frame_prediction_models_forecaster_steps_fused_in_training(fused_calls):
    config = ConvLSTMConfig(hidden_sizes=[4, 4], kernel_size=3, patch_size=2, num_channels=1)
    model = ConvLSTMForFramePrediction(config)
    frames, labels = torch.rand(2, 3, 1, 8, 8), torch.rand(2, 4, 1, 8, 8)
    plain = copy.deepcopy(model)
    for module in plain.modules():
        if isinstance(module, ConvLSTMCell):
            module.fused = False
    loss = model(frames, labels=labels).loss
    loss.backward()
    assert fused_calls[0] == 4 * 2  # four forecast steps, two layers
    expected = plain(frames, labels=labels).loss
    expected.backward()
    assert fused_calls[0] == 8
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    for (name, parameter), (_, reference) in zip(model.named_parameters(), plain.named_parameters()):
        if reference.grad is not None:
            torch.testing.assert_close(parameter.grad, reference.grad, rtol=1e-5, atol=1e-6, msg=name)
