"""CUDA graphs for :class:`ConvLSTMForFramePrediction`: record a forward pass, or a whole training step, once and
replay it with one call.

A ConvLSTM runs one small convolution and a few pointwise kernels per layer and time step: the OpenSTL ConvLSTM-S
shape (4 layers, 10 -> 10 frames) launches thousands of kernels per batch, and at small batches a GPU can spend
more time launching kernels than running them. A CUDA graph records the launches once; a replay issues them all at
once, from static input and output buffers. Whether that pays on a given GPU and batch is what
``scripts/gpu_check.sh`` measures (``scripts/benchmark_cuda_graphs.py``); nothing here claims it does.

What a graph fixes at capture: the input shapes (batch, frames, size), ``num_output_frames``, the autocast dtype,
``teacher_forcing_ratio`` (the random draws themselves change at every replay) and, for training, the optimizer's
learning rate. Everything that needs other values needs another capture.

Both classes need CUDA and raise a clear error without it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GraphedFramePrediction", "GraphedTrainingStep"]


def _check_cuda(model: nn.Module, tensors: dict) -> torch.device:
    if not torch.cuda.is_available():
        raise RuntimeError(
            "CUDA graphs need a CUDA GPU, and torch.cuda.is_available() is False on this machine"
        )
    device = next(model.parameters()).device
    if device.type != "cuda":
        raise ValueError(f"model must be on a CUDA device (model.to('cuda')), its parameters are on {device}")
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.device != device:
            raise ValueError(f"{name} must be on the model's device {device}, got {tensor.device}")
    return device


def _check_autocast_dtype(autocast_dtype) -> None:
    if autocast_dtype not in (None, torch.bfloat16, torch.float16):
        raise ValueError(
            f"autocast_dtype must be None, torch.bfloat16 or torch.float16, got {autocast_dtype!r}"
        )


def _autocast(autocast_dtype):
    # The autocast cache must stay off while capturing: cached casts would be freed with the graph's first use.
    return torch.autocast(
        "cuda",
        dtype=autocast_dtype or torch.bfloat16,
        enabled=autocast_dtype is not None,
        cache_enabled=False,
    )


def _warm_up(device: torch.device, iterations: int, run_once) -> None:
    """Call ``run_once()`` ``iterations`` times on a side stream before a capture, as CUDA graphs ask (cuDNN picks
    its algorithms, the caching allocator settles)."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(iterations):
            run_once()
    torch.cuda.current_stream(device).wait_stream(stream)


def _check_capturable_adam(optimizer) -> None:
    if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)) or not all(
        group.get("capturable", False) for group in optimizer.param_groups
    ):
        raise ValueError(
            f"optimizer must be torch.optim.Adam or AdamW created with capturable=True, got "
            f"{type(optimizer).__name__} (capturable={optimizer.defaults.get('capturable')})"
        )


def _training_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Copies of the model's weights and buffers (by name) and of the optimizer's state tensors (Adam's moments and
    step counter, by parameter)."""
    weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    moments = {
        parameter: {key: value.clone() for key, value in state.items() if isinstance(value, torch.Tensor)}
        for parameter, state in optimizer.state.items()
    }
    return weights, moments


@torch.no_grad()
def _restore_training_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, weights: dict, moments: dict
) -> None:
    """Put back, in place, what :func:`_training_state` copied; optimizer state made since starts at zero."""
    for name, tensor in model.state_dict().items():
        tensor.copy_(weights[name])
    for parameter, state in optimizer.state.items():
        before = moments.get(parameter, {})
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                continue
            if key in before:
                value.copy_(before[key])
            else:  # a fresh Adam's moments and step counter start at zero
                value.zero_()


def _check_same(name: str, tensor, static: torch.Tensor) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.shape != static.shape or tensor.device != static.device:
        raise ValueError(
            f"{name} must have the captured shape {tuple(static.shape)} on {static.device}, got "
            f"{tuple(tensor.shape)} on {tensor.device}; capture another graph for other shapes"
        )


class GraphedFramePrediction:
    """Inference of a frame-prediction model as a replayed CUDA graph.

    Args:
        model (`ConvLSTMForFramePrediction`): on a CUDA device, in ``eval()`` mode.
        example_pixel_values (`torch.FloatTensor` of shape `(B, T_in, C, H, W)`): fixes the shapes; on the model's
            device.
        num_output_frames (`int`, *optional*): frames to predict (the config's by default).
        autocast_dtype (`torch.dtype`, *optional*): ``torch.bfloat16`` or ``torch.float16`` to capture under
            autocast; ``None`` for the model's own dtype.
        warmup_iterations (`int`, defaults to 3): eager passes on a side stream before capture (cuDNN picks its
            algorithms, the caching allocator settles).

    Calling it with `pixel_values` of the captured shape returns the predictions `(B, T_out, C, H, W)` in a static
    buffer that the next call overwrites (``.clone()`` what you keep).

    Raises:
        RuntimeError: no CUDA on this machine.
        ValueError / TypeError: the model is not on CUDA or in training mode, or a tensor is off its device.
    """

    def __init__(
        self,
        model: nn.Module,
        example_pixel_values: torch.Tensor,
        num_output_frames: int | None = None,
        *,
        autocast_dtype: torch.dtype | None = None,
        warmup_iterations: int = 3,
    ):
        device = _check_cuda(model, {"example_pixel_values": example_pixel_values})
        _check_autocast_dtype(autocast_dtype)
        if model.training:
            raise ValueError("model must be in eval() mode to capture inference (call model.eval() first)")
        self.model, self.num_output_frames, self.autocast_dtype = model, num_output_frames, autocast_dtype
        self.static_input = example_pixel_values.detach().clone()
        with torch.no_grad():
            _warm_up(device, warmup_iterations, self._forward)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.static_output = self._forward()

    def _forward(self) -> torch.Tensor:
        with _autocast(self.autocast_dtype):
            return self.model(
                pixel_values=self.static_input, num_output_frames=self.num_output_frames
            ).predictions

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        _check_same("pixel_values", pixel_values, self.static_input)
        self.static_input.copy_(pixel_values)
        self.graph.replay()
        return self.static_output


class GraphedTrainingStep:
    """One training step (forward, loss, backward, optional gradient clipping, optimizer step) as a CUDA graph.

    Args:
        model (`ConvLSTMForFramePrediction`): on a CUDA device, in ``train()`` mode.
        optimizer (`torch.optim.Adam` or `torch.optim.AdamW`): over the model's parameters, created with
            ``capturable=True`` (its step counter then lives on the GPU).
        example_pixel_values (`(B, T_in, C, H, W)`), example_labels (`(B, T_out, C, H, W)`): fix the shapes.
        autocast_dtype (`torch.dtype`, *optional*): as in :class:`GraphedFramePrediction`.
        teacher_forcing_ratio (`float`, defaults to 0.0): fixed for the graph.
        max_grad_norm (`float`, defaults to 0.0): clip the gradients' norm to this (0: no clipping).
        warmup_iterations (`int`, defaults to 3): eager steps on a side stream before capture. Their effect on the
            weights and the optimizer's state is undone: after construction both are as they were.

    Calling it with a batch of the captured shapes runs one step and returns the loss (a static 0-d tensor that
    the next call overwrites).

    Raises:
        RuntimeError: no CUDA on this machine.
        ValueError / TypeError: the model is not on CUDA or in eval mode, the optimizer is not a capturable
            Adam/AdamW, or a tensor is off the model's device.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        example_pixel_values: torch.Tensor,
        example_labels: torch.Tensor,
        *,
        autocast_dtype: torch.dtype | None = None,
        teacher_forcing_ratio: float = 0.0,
        max_grad_norm: float = 0.0,
        warmup_iterations: int = 3,
    ):
        device = _check_cuda(
            model, {"example_pixel_values": example_pixel_values, "example_labels": example_labels}
        )
        _check_autocast_dtype(autocast_dtype)
        if not model.training:
            raise ValueError(
                "model must be in train() mode to capture a training step (call model.train() first)"
            )
        _check_capturable_adam(optimizer)
        self.model, self.optimizer = model, optimizer
        self.autocast_dtype, self.teacher_forcing_ratio, self.max_grad_norm = (
            autocast_dtype,
            float(teacher_forcing_ratio),
            float(max_grad_norm),
        )
        self.static_input = example_pixel_values.detach().clone()
        self.static_labels = example_labels.detach().clone()
        # The warm-up steps change the weights and the optimizer's moments: remember both, restore them in place
        # (the graph reads those very tensors).
        weights, moments = _training_state(model, optimizer)
        _warm_up(device, warmup_iterations, self._warm_up_step)
        self.graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.static_loss = self._step()
        _restore_training_state(model, optimizer, weights, moments)

    def _warm_up_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._step()

    def _step(self) -> torch.Tensor:
        with _autocast(self.autocast_dtype):
            loss = self.model(
                pixel_values=self.static_input,
                labels=self.static_labels,
                teacher_forcing_ratio=self.teacher_forcing_ratio,
            ).loss
        loss.backward()
        if self.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm, foreach=True)
        self.optimizer.step()
        return loss.detach()

    def __call__(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_same("pixel_values", pixel_values, self.static_input)
        _check_same("labels", labels, self.static_labels)
        self.static_input.copy_(pixel_values)
        self.static_labels.copy_(labels)
        self.graph.replay()
        return self.static_loss
