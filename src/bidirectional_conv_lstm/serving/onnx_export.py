"""ONNX export of a frame-prediction model, checked with ONNX Runtime against PyTorch.

The exported graph maps `pixel_values` `(batch, T_in, C, H, W)` float32 (what the processor produces: scaled or
rain-rate transformed) to `predictions` `(batch, T_out, C, H, W)`:

- **dynamic**: `batch` (>= 1), `height` and `width` (any size: the graph pads the frames on the bottom and right
  to a multiple of `patch_size` with the model-space value of nothing, 0 for images and the transform's
  ``no_rain_value`` for rain-rate models, as the processor and `forecast_rain_rate` pad, and crops the
  predictions back to `H x W`);
- **fixed at export**: `T_in` and `T_out` (the encoder and the forecaster are unrolled over time), the channels, the
  weights, float32, and `output_threshold` (applied, as in `eval()` mode).

It uses PyTorch's `torch.export`-based exporter (`torch.onnx.export(..., dynamo=True)`, which needs `onnxscript`):
the TorchScript exporter cannot convert the model's 5-D pixel (un)shuffle with a dynamic batch. Under `torch.export`
the layer takes its plain per-step path, not the fused training kernel (a `torch.autograd.Function`). Needs the
``onnx`` extra: ``pip install "bidirectional-conv-lstm[onnx]"``.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.convlstm.argument_checks import check_int
from ..models.convlstm.forecasting_convlstm import pad_to_patch_size
from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction
from ..utils.loading import load_pretrained_model

__all__ = ["check_onnx_model", "export_onnx"]

ATOL = 1e-4


class _FixedHorizon(nn.Module):
    """`model(pixel_values)` -> predictions of any `H x W`, with the horizon fixed (the exported graph has one
    input): the frames are padded on the bottom and right to a multiple of the patch size with the model-space
    value of nothing (0 for images, no rain for rain-rate models) and the predictions cropped back."""

    def __init__(self, model: nn.Module, num_output_frames: int):
        super().__init__()
        self.model = model
        self.num_output_frames = num_output_frames
        transform = model.rain_rate_transform
        self.fill = 0.0 if transform is None else float(transform.no_rain_value)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        pixel_values = pad_to_patch_size(pixel_values, self.model.config.patch_size, self.fill)
        predictions = self.model(
            pixel_values=pixel_values, num_output_frames=self.num_output_frames
        ).predictions
        return predictions[..., :height, :width]


def _frame_count(name: str, value, default: int) -> int:
    if value is None:
        return default
    return check_int(name, value)


def _load(model):
    if isinstance(model, (str, os.PathLike)):
        return load_pretrained_model(model)
    if not isinstance(model, ConvLSTMForFramePrediction):
        raise TypeError(
            f"model must be a ConvLSTMForFramePrediction, a saved model folder or a Hub id, got {type(model).__name__}"
        )
    return model


def export_onnx(
    model,
    output_path: str | os.PathLike,
    *,
    num_input_frames: int | None = None,
    num_output_frames: int | None = None,
    opset_version: int = 18,
    check: bool = True,
    atol: float = ATOL,
) -> dict:
    """Export `model` to an ONNX file with fixed frame counts and dynamic batch, height and width.

    Args:
        model: a `ConvLSTMForFramePrediction`, or a folder / Hub id `from_pretrained` loads. It is not modified.
        output_path: the ``.onnx`` file to write (its folder is created).
        num_input_frames: observed frames the graph takes; defaults to `config.num_input_frames`.
        num_output_frames: frames it predicts; defaults to `config.num_output_frames`.
        opset_version: the ONNX opset.
        check: run :func:`check_onnx_model` on the written file (two input sizes) and raise if it disagrees.
        atol: the largest absolute difference `check` accepts.

    Returns:
        ``{"path", "num_input_frames", "num_output_frames", "max_abs_diff"}`` (the check's differences per input
        shape; empty without `check`).

    Raises:
        ValueError / TypeError: bad arguments, an ensemble model (before anything is exported); ImportError: onnxscript (or, with
        `check`, onnxruntime) is missing; RuntimeError: ONNX Runtime disagrees with PyTorch by more than `atol`.
    """
    output_path = _checked_output_path(output_path, num_input_frames, num_output_frames)
    model = _load(model)
    config = model.config
    if getattr(config, "ensemble_noise_channels", 0):
        raise ValueError(
            f"model is an ensemble model (config.ensemble_noise_channels={config.ensemble_noise_channels}): each "
            "forecast is a random draw of its noise, which an exported graph would not reproduce; export a model "
            "without noise (ensemble_noise_channels=0), or draw members in PyTorch "
            "(forecast_rain_rate(num_members=N, seed=s))"
        )
    num_input = _frame_count("num_input_frames", num_input_frames, config.num_input_frames)
    num_output = _frame_count("num_output_frames", num_output_frames, config.num_output_frames)
    # A float32 copy in eval mode on the CPU: the caller's model keeps its device, dtype and mode.
    wrapper = _FixedHorizon(copy.deepcopy(model).float().cpu(), num_output).eval()
    _write_onnx(wrapper, num_input, output_path, opset_version)
    report = {
        "path": str(output_path),
        "num_input_frames": num_input,
        "num_output_frames": num_output,
        "max_abs_diff": {},
    }
    if check:
        report["max_abs_diff"] = check_onnx_model(
            output_path, wrapper.model, num_output_frames=num_output, atol=atol
        )
    return report


def _checked_output_path(
    output_path: str | os.PathLike, num_input_frames: int | None, num_output_frames: int | None
) -> Path:
    """`output_path` as a `Path`, once the arguments are checked and the exporter's onnxscript is found: all before
    the model is loaded."""
    for name, value in (("num_input_frames", num_input_frames), ("num_output_frames", num_output_frames)):
        _frame_count(name, value, 1)
    output_path = Path(output_path)
    if output_path.suffix != ".onnx":
        raise ValueError(f"output_path must end in .onnx, got {os.fspath(output_path)!r}")
    try:
        import onnxscript  # noqa: F401  (the exporter imports it; fail here with the fix)
    except ImportError as error:
        raise ImportError(
            'ONNX export needs onnxscript (and onnxruntime to check): pip install "bidirectional-conv-lstm[onnx]"'
        ) from error
    return output_path


def _write_onnx(wrapper: _FixedHorizon, num_input_frames: int, output_path: Path, opset_version: int) -> None:
    """Export `wrapper` (float32, eval mode, on the CPU) to `output_path`, with `num_input_frames` fixed and the
    batch, height and width dynamic."""
    config = wrapper.model.config
    patch = config.patch_size
    # An example of no multiple of the patch (when it is over 1), so the graph keeps its padding.
    example = torch.rand(2, num_input_frames, config.num_channels, 2 * patch + 1, 3 * patch + 1)
    dim = torch.export.Dim
    dynamic_shapes = {
        "pixel_values": {0: dim("batch", min=1), 3: dim("height", min=1), 4: dim("width", min=1)}
    }
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            input_names=["pixel_values"],
            output_names=["predictions"],
            opset_version=opset_version,
            verbose=False,
        )
    program.save(os.fspath(output_path))


def check_onnx_model(
    onnx_path: str | os.PathLike,
    model,
    *,
    num_output_frames: int | None = None,
    shapes: list[tuple[int, int, int, int, int]] | None = None,
    atol: float = ATOL,
    seed: int = 0,
) -> dict[str, float]:
    """Run the ONNX file with ONNX Runtime and `model` with PyTorch on the same random inputs; compare.

    Args:
        onnx_path: the exported file.
        model: the `ConvLSTMForFramePrediction` it came from (or a folder / Hub id).
        num_output_frames: the exported horizon; defaults to the graph's output shape.
        shapes: `(batch, T_in, C, H, W)` inputs to try; defaults to two batch sizes and two frame sizes (a
            multiple of the patch size, and one not square that is no multiple).
        atol: the largest absolute difference accepted.
        seed: for the random inputs.

    Returns:
        ``{"BxTxCxHxW": max |onnx - torch|}`` per shape.

    Raises:
        RuntimeError: a difference above `atol` (naming the shape).
    """
    import onnxruntime

    model = _load(model)
    config = model.config
    session = onnxruntime.InferenceSession(os.fspath(onnx_path), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    graph_output = session.get_outputs()[0]
    steps = graph_input.shape[1]
    if num_output_frames is None:
        num_output_frames = graph_output.shape[1]
    patch = config.patch_size
    if shapes is None:
        shapes = [
            (1, steps, config.num_channels, 2 * patch, 3 * patch),
            (3, steps, config.num_channels, 5 * patch + 3, 4 * patch + 1),
        ]
    generator = torch.Generator().manual_seed(seed)
    # PyTorch pads and crops as the graph does: the same wrapper around a float32 copy of the model.
    reference = _FixedHorizon(copy.deepcopy(model).float().cpu(), num_output_frames).eval()
    differences = {}
    for shape in shapes:
        pixel_values = torch.rand(shape, generator=generator)
        with torch.no_grad():
            expected = reference(pixel_values)
        actual = session.run([graph_output.name], {graph_input.name: pixel_values.numpy()})[0]
        key = "x".join(map(str, shape))
        if actual.shape != tuple(expected.shape):
            raise RuntimeError(
                f"ONNX output shape {actual.shape} != PyTorch {tuple(expected.shape)} for input {key}"
            )
        differences[key] = float(np.abs(actual - expected.numpy()).max())
        if not math.isfinite(differences[key]) or differences[key] > atol:
            raise RuntimeError(
                f"{os.fspath(onnx_path)}: ONNX Runtime and PyTorch differ by {differences[key]:.3g} (> atol={atol:g}) "
                f"on an input of shape {key}"
            )
    return differences
