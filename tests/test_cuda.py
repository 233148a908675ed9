"""On a CUDA GPU: the layer's fused and plain paths, precisions, layouts, compile, checkpointing, CUDA graphs and
training steps. Marked `cuda` and skipped without a GPU (scripts/gpu_check.sh runs them); the checks that CUDA
graphs fail clearly without CUDA run everywhere."""

from __future__ import annotations

import copy

import pytest
import torch

from bidirectional_conv_lstm import ConvLSTM, ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.serving.cuda_graphs import GraphedFramePrediction, GraphedTrainingStep

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def exact_fp32():
    """fp32 convolutions and matmuls in full fp32 (no TF32), so that two paths can be compared closely."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def randomized(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return module


def forward_backward(module, x, autocast_dtype=None):
    """Outputs, final states and every gradient (input included) of a fixed scalar function of the outputs."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    with torch.autocast("cuda", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        output, (h_n, c_n) = module(x)
    loss = output.float().square().mean() + h_n.float().sum() * 0.1 + c_n.float().square().mean()
    loss.backward()
    # (a compiled module names its parameters "_orig_mod.<name>")
    grads = {
        name.removeprefix("_orig_mod."): p.grad.detach().clone() for name, p in module.named_parameters()
    }
    grads["x"] = x.grad.detach().clone()
    return output.detach(), h_n.detach(), c_n.detach(), grads


def layer(**options) -> ConvLSTM:
    defaults = dict(
        in_channels=3, hidden_channels=8, kernel_size=3, padding=1, bidirectional=True, num_layers=2
    )
    return randomized(ConvLSTM(**(defaults | options)))


def assert_all_close(first, second, rtol, atol):
    for a, b in zip(first[:3], second[:3]):
        torch.testing.assert_close(a.float(), b.float(), rtol=rtol, atol=atol)
    for name in first[3]:
        torch.testing.assert_close(first[3][name].float(), second[3][name].float(), rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    "dtype, autocast_dtype, tolerance",
    [(torch.float64, None, 1e-9), (torch.float32, None, 2e-4), (torch.float32, torch.bfloat16, 3e-2)],
    ids=["float64", "float32", "bf16-autocast"],
)
@pytest.mark.cuda
@requires_cuda
def test_fused_equals_plain_on_cuda(exact_fp32, dtype, autocast_dtype, tolerance):
    fused = layer().to("cuda", dtype)
    plain = copy.deepcopy(fused)
    fused.fused, plain.fused = True, False
    x = torch.randn(5, 2, 3, 12, 10, device="cuda", dtype=dtype)
    result = forward_backward(fused, x, autocast_dtype)
    assert_all_close(result, forward_backward(plain, x, autocast_dtype), tolerance, tolerance)
    output, h_n, c_n, _ = result
    assert output.device.type == h_n.device.type == "cuda"
    if autocast_dtype is not None:  # convolutions in bf16, the cell state in float32
        assert c_n.dtype == torch.float32


@pytest.mark.cuda
@requires_cuda
def test_cuda_computes_what_the_cpu_computes():
    module = layer().double()
    x = torch.randn(4, 2, 3, 9, 9, dtype=torch.float64)
    on_cpu = forward_backward(module, x)
    on_cuda = forward_backward(copy.deepcopy(module).cuda(), x.cuda())
    moved = (*(tensor.cpu() for tensor in on_cuda[:3]), {k: v.cpu() for k, v in on_cuda[3].items()})
    assert_all_close(moved, on_cpu, 1e-9, 1e-9)


@pytest.mark.cuda
@requires_cuda
def test_channels_last_and_gradient_checkpointing_on_cuda(exact_fp32):
    module = layer().cuda()
    x = torch.randn(6, 2, 3, 12, 12, device="cuda")
    reference = forward_backward(module, x)
    channels_last = copy.deepcopy(module).to(memory_format=torch.channels_last)
    assert_all_close(forward_backward(channels_last, x), reference, 2e-4, 2e-4)
    checkpointed = copy.deepcopy(module)
    checkpointed.gradient_checkpointing = True
    assert_all_close(forward_backward(checkpointed, x), reference, 2e-4, 2e-4)


@pytest.mark.cuda
@requires_cuda
def test_torch_compile_on_cuda(exact_fp32):
    module = layer(num_layers=1, hidden_channels=4).cuda()
    x = torch.randn(3, 2, 3, 8, 8, device="cuda")
    reference = forward_backward(module, x)
    compiled = torch.compile(copy.deepcopy(module))
    assert_all_close(forward_backward(compiled, x), reference, 2e-4, 2e-4)


@pytest.mark.cuda
@requires_cuda
def test_no_host_synchronisation_in_the_hot_path():
    """Forward and backward of the layer and the model (with scheduled sampling) never wait for the GPU: no
    `.item()`, `.cpu()` or data-dependent shapes in the hot path."""
    module = layer().cuda()
    model = tiny_model().cuda()
    x = torch.randn(5, 2, 3, 12, 12, device="cuda")
    frames = torch.rand(2, 7, 1, 16, 16, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        output, _ = module(x)
        output.square().mean().backward()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(frames[:, :4], labels=frames[:, 4:], teacher_forcing_ratio=0.5).loss
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def tiny_model() -> ConvLSTMForFramePrediction:
    torch.manual_seed(0)
    config = ConvLSTMConfig(
        hidden_sizes=[8, 8], patch_size=4, kernel_size=3, num_input_frames=4, num_output_frames=3
    )
    return ConvLSTMForFramePrediction(config)


@pytest.mark.cuda
@requires_cuda
def test_model_training_steps_on_cuda_match_the_cpu_and_learn(exact_fp32):
    frames = torch.rand(4, 7, 1, 16, 16)
    models = {device: tiny_model().to(device) for device in ("cpu", "cuda")}
    losses = {}
    for device, model in models.items():
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batch = frames.to(device)
        losses[device] = []
        for _ in range(3):
            loss = model(batch[:, :4], labels=batch[:, 4:]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses[device].append(loss.item())
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-4)
    for (name, on_cpu), on_cuda in zip(
        models["cpu"].state_dict().items(), models["cuda"].state_dict().values()
    ):
        torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-3, atol=1e-5, msg=name)
    # bf16 autocast on the GPU learns the fixed batch
    model = models["cuda"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = frames.cuda()
    bf16_losses = []
    for _ in range(20):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(batch[:, :4], labels=batch[:, 4:]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bf16_losses.append(loss.item())
    assert all(map(torch.isfinite, map(torch.tensor, bf16_losses))) and bf16_losses[-1] < 0.9 * bf16_losses[0]


@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_graphed_inference_equals_eager(exact_fp32, autocast_dtype):
    model = tiny_model().cuda().eval()
    example = torch.rand(3, 4, 1, 16, 16, device="cuda")
    graphed = GraphedFramePrediction(model, example, autocast_dtype=autocast_dtype)
    for seed in range(2):  # new inputs through the same graph
        frames = torch.rand(
            3, 4, 1, 16, 16, device="cuda", generator=torch.Generator("cuda").manual_seed(seed)
        )
        with (
            torch.no_grad(),
            torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast_dtype is not None),
        ):
            expected = model(pixel_values=frames).predictions
        tolerance = 1e-5 if autocast_dtype is None else 2e-2
        torch.testing.assert_close(graphed(frames).float(), expected.float(), rtol=tolerance, atol=tolerance)
    with pytest.raises(ValueError, match="captured shape"):
        graphed(torch.rand(2, 4, 1, 16, 16, device="cuda"))


@pytest.mark.cuda
@requires_cuda
def test_graphed_training_steps_equal_eager_steps(exact_fp32):
    eager_model = tiny_model().cuda().train()
    graphed_model = copy.deepcopy(eager_model)
    initial = {name: tensor.clone() for name, tensor in graphed_model.state_dict().items()}
    batches = torch.rand(4, 2, 7, 1, 16, 16, device="cuda")
    eager_optimizer = torch.optim.AdamW(eager_model.parameters(), lr=1e-3, capturable=True)
    graphed_optimizer = torch.optim.AdamW(graphed_model.parameters(), lr=1e-3, capturable=True)
    step = GraphedTrainingStep(
        graphed_model, graphed_optimizer, batches[0, :, :4], batches[0, :, 4:], max_grad_norm=1.0
    )
    for name, tensor in graphed_model.state_dict().items():  # the warm-up steps were undone
        torch.testing.assert_close(tensor, initial[name], rtol=0, atol=0)
    for batch in batches:
        loss = eager_model(batch[:, :4], labels=batch[:, 4:]).loss
        eager_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(eager_model.parameters(), 1.0)
        eager_optimizer.step()
        torch.testing.assert_close(step(batch[:, :4], batch[:, 4:]), loss.detach(), rtol=1e-4, atol=1e-6)
    for (name, eager), graphed in zip(eager_model.state_dict().items(), graphed_model.state_dict().values()):
        torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.cuda
@requires_cuda
def test_training_loop_on_cuda_with_auto_precision(tmp_path):
    from accelerate.state import AcceleratorState

    from bidirectional_conv_lstm.training.arguments import TrainingArguments
    from bidirectional_conv_lstm.training.loop import train
    from bidirectional_conv_lstm.utils.hardware import resolve_mixed_precision
    from test_training import tiny_config

    AcceleratorState._reset_state(True)
    try:
        args = TrainingArguments(
            **tiny_config(
                tmp_path / "out", tmp_path / "cache", mixed_precision="auto", dataloader_num_workers=2
            )
        )
        results = train(args)
    finally:
        AcceleratorState._reset_state(True)
    assert results["global_step"] == args.max_train_steps
    assert next(results["model"].parameters()).device.type == "cuda"
    expected = resolve_mixed_precision("auto", torch.device("cuda", torch.cuda.current_device()))[0]
    assert f"mixed_precision: {expected}" in (tmp_path / "out" / "training_config.yaml").read_text()


# ----------------------------------------------------------------------------- everywhere
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_graphs_fail_clearly_without_cuda():
    model = tiny_model().eval()
    frames = torch.rand(1, 4, 1, 16, 16)
    with pytest.raises(RuntimeError, match="CUDA graphs need a CUDA GPU"):
        GraphedFramePrediction(model, frames)
    with pytest.raises(RuntimeError, match="CUDA graphs need a CUDA GPU"):
        GraphedTrainingStep(model.train(), torch.optim.AdamW(model.parameters()), frames, frames[:, :3])


def test_cuda_graphs_check_the_model_device_and_mode(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as if a GPU were present
    model = tiny_model().eval()
    frames = torch.rand(1, 4, 1, 16, 16)
    with pytest.raises(ValueError, match="model must be on a CUDA device"):
        GraphedFramePrediction(model, frames)
    with pytest.raises(ValueError, match="model must be on a CUDA device"):
        GraphedTrainingStep(model, torch.optim.AdamW(model.parameters()), frames, frames[:, :3])
