"""Frame-prediction metrics with OpenSTL's definitions, per lead time, streamed over batches and processes.

Definitions (those of OpenSTL's ``openstl/core/metrics.py``, so numbers compare with its tables), for
predictions and targets (B, T, C, H, W) on the [0, 1] scale:

- ``mse``: squared error **summed over the pixels** (C, H, W) of a frame, averaged over frames and samples
  (OpenSTL's ``MSE`` with ``spatial_norm=False``; trained 2-digit Moving MNIST models score in the tens).
- ``mae``: absolute error summed over a frame's pixels, averaged the same way.
- ``psnr``: per frame, ``-10 log10(mean squared error over the frame's pixels)`` (data range 1), averaged over
  frames and samples; a frame predicted exactly gives ``inf`` (as in OpenSTL).
- ``ssim``: scikit-image's ``structural_similarity`` per frame with ``data_range=1.0`` (the correct range for
  [0, 1] data), averaged over frames and samples.
- ``ssim_openstl``: the same with ``data_range=2.0``: OpenSTL calls ``structural_similarity`` on floats without a
  data range, which its pinned scikit-image took as 2 (the float dtype range [-1, 1]); use this column to
  compare with published OpenSTL tables.

As in OpenSTL, predictions are clipped to [0, 1] for ``psnr`` and the SSIMs but not for ``mse`` / ``mae``.
Each metric also comes per lead time (``*_per_frame``: the metric of the 1st, 2nd, ... predicted frame).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch
from skimage.metrics import structural_similarity

from ..models.convlstm.argument_checks import check_int

__all__ = [
    "BASELINES",
    "METRIC_NAMES",
    "FrameMetricsAccumulator",
    "baseline_predictions",
    "evaluate_baselines",
    "format_metrics_table",
    "frame_metrics",
    "per_frame_metrics",
]

METRIC_NAMES = ("mse", "mae", "psnr", "ssim", "ssim_openstl")
BASELINES = ("copy_last", "zeros", "mean")
_SSIM_MIN_SIDE = 7  # scikit-image's default window


def _as_float64(array, name: str) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().double().numpy()
    array = np.asarray(array)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise TypeError(
            f"{name} must be a float array or tensor (B, T, C, H, W) in [0, 1], got dtype {array.dtype}"
        )
    if array.ndim != 5:
        raise ValueError(f"{name} must be (B, T, C, H, W), got shape {array.shape}")
    return array.astype(np.float64, copy=False)


def per_frame_metrics(pred, true) -> dict[str, np.ndarray]:
    """Every metric for every predicted frame of every sample (the building block of the averages).

    Args:
        pred: predictions, float (B, T, C, H, W) numpy array or torch tensor, on the [0, 1] scale (values
            outside are clipped for ``psnr`` / SSIM, as in OpenSTL).
        true: targets, same shape, in [0, 1].

    Returns:
        ``{"mse", "mae", "psnr", "ssim", "ssim_openstl"}`` -> float64 arrays (B, T).

    Raises:
        TypeError: non-numeric inputs.
        ValueError: not 5-D, shapes differ, frames smaller than 7x7 (SSIM's window), targets outside [0, 1].
    """
    pred = _as_float64(pred, "pred")
    true = _as_float64(true, "true")
    if pred.shape != true.shape:
        raise ValueError(
            f"pred and true must have one shape (B, T, C, H, W), got {pred.shape} and {true.shape}"
        )
    if min(true.shape[-2:]) < _SSIM_MIN_SIDE:
        raise ValueError(
            f"frames must be at least {_SSIM_MIN_SIDE}x{_SSIM_MIN_SIDE} for SSIM, got {true.shape[-2:]}"
        )
    if true.size and (not np.isfinite(true).all() or true.min() < 0 or true.max() > 1):
        raise ValueError(
            f"true must lie in [0, 1] (divide uint8 frames by 255), found values in [{true.min():g}, {true.max():g}]"
        )
    error = pred - true
    clipped = np.clip(pred, 0.0, 1.0)
    with np.errstate(divide="ignore"):
        psnr = -10.0 * np.log10(((clipped - true) ** 2).mean(axis=(2, 3, 4)))
    batch, frames, channels = true.shape[:3]
    ssim = np.empty((batch, frames))
    ssim_openstl = np.empty((batch, frames))
    channel_axis = None if channels == 1 else 0
    for sample in range(batch):
        for frame in range(frames):
            a, b = clipped[sample, frame], true[sample, frame]
            if channel_axis is None:
                a, b = a[0], b[0]
            ssim[sample, frame] = structural_similarity(a, b, data_range=1.0, channel_axis=channel_axis)
            ssim_openstl[sample, frame] = structural_similarity(
                a, b, data_range=2.0, channel_axis=channel_axis
            )
    return {
        "mse": (error**2).sum(axis=(2, 3, 4)),
        "mae": np.abs(error).sum(axis=(2, 3, 4)),
        "psnr": psnr,
        "ssim": ssim,
        "ssim_openstl": ssim_openstl,
    }


def gather_function(gather) -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, torch.device | None]:
    """``(function gathering a tensor from every process, the device to gather on)`` for ``gather``: an
    ``accelerate.Accelerator`` (its ``gather_for_metrics``), a callable, or None (one process: ``(None, None)``)."""
    if gather is None:
        return None, None
    if hasattr(gather, "gather_for_metrics"):  # an accelerate.Accelerator
        return gather.gather_for_metrics, torch.device(gather.device)
    if callable(gather):
        return gather, None
    raise TypeError(
        f"gather must be None, an accelerate.Accelerator or a callable, got {type(gather).__name__}"
    )


class FrameMetricsAccumulator:
    """Streaming frame metrics: call :meth:`update` once per batch, :meth:`compute` at the end.

    Only per-lead-time sums are kept (a few floats per metric), so the test set never sits in memory. In
    distributed evaluation each process computes its own samples' per-frame metrics and they are gathered
    (a (B, T, 5) tensor per batch, not the frames), so every process computes the same totals.

    Args:
        gather: None (one process); an ``accelerate.Accelerator`` (uses ``gather_for_metrics``, which also drops
            the samples duplicated to pad the last batch); or a callable taking a float tensor (B, T, K) and
            returning the concatenation over processes (e.g. built on ``torch.distributed.all_gather``). Every
            process must call :meth:`update` the same number of times.

    Example:
        ```python
        >>> metrics = FrameMetricsAccumulator(gather=accelerator)
        >>> for batch in dataloader:
        ...     metrics.update(model(**batch).predictions, batch["labels"])
        >>> metrics.compute()["mse"]
        ```
    """

    def __init__(self, *, gather=None):
        self._gather, self._device = gather_function(gather)
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen."""
        self._sums: np.ndarray | None = None
        self._count = 0

    @property
    def num_samples(self) -> int:
        """Samples accumulated so far (over all processes when gathering)."""
        return self._count

    def update(self, pred, true) -> None:
        """Add a batch: ``pred`` and ``true`` float (B, T, C, H, W), numpy or torch, targets in [0, 1]."""
        values = per_frame_metrics(pred, true)
        stats = np.stack([values[name] for name in METRIC_NAMES], axis=-1)  # (B, T, K)
        if self._gather is not None:
            device = self._device if self._device is not None else torch.device("cpu")
            dtype = torch.float32 if device.type == "mps" else torch.float64
            gathered = self._gather(torch.from_numpy(stats).to(device=device, dtype=dtype))
            stats = gathered.detach().cpu().double().numpy()
        if self._sums is not None and stats.shape[1] != self._sums.shape[0]:
            raise ValueError(
                f"every batch must predict the same number of frames: got {stats.shape[1]} after {self._sums.shape[0]}"
            )
        sums = stats.sum(axis=0)  # (T, K)
        self._sums = sums if self._sums is None else self._sums + sums
        self._count += stats.shape[0]

    def compute(self) -> dict:
        """The averages so far.

        Returns:
            ``{"mse", "mae", "psnr", "ssim", "ssim_openstl"}`` -> float (averaged over frames and samples),
            ``"<name>_per_frame"`` -> list of T floats (averaged over samples, one per lead time), and
            ``"num_samples"`` -> int.

        Raises:
            ValueError: no batch was added.
        """
        if self._sums is None or self._count == 0:
            raise ValueError(
                "FrameMetricsAccumulator.compute() needs at least one update() with a non-empty batch"
            )
        per_frame = self._sums / self._count  # (T, K)
        result: dict = {}
        for index, name in enumerate(METRIC_NAMES):
            result[name] = float(per_frame[:, index].mean())
        for index, name in enumerate(METRIC_NAMES):
            result[f"{name}_per_frame"] = per_frame[:, index].tolist()
        result["num_samples"] = self._count
        return result


def frame_metrics(pred, true) -> dict:
    """All metrics of one set of predictions (see the module docstring for the definitions).

    Args:
        pred: float (B, T, C, H, W) numpy array or torch tensor on the [0, 1] scale.
        true: targets, the same shape, in [0, 1].

    Returns:
        the dict of :meth:`FrameMetricsAccumulator.compute`: ``mse``, ``mae``, ``psnr``, ``ssim``,
        ``ssim_openstl``, each also as ``*_per_frame`` (one value per lead time), and ``num_samples``.
    """
    accumulator = FrameMetricsAccumulator()
    accumulator.update(pred, true)
    return accumulator.compute()


def baseline_predictions(pixel_values, num_output_frames: int, kind: str, mean_value: float | None = None):
    """What a model-free baseline predicts.

    Args:
        pixel_values: observed frames, float (B, T_in, C, H, W) in [0, 1], numpy array or torch tensor.
        num_output_frames: T_out, frames to predict.
        kind: ``"copy_last"`` (repeat the last observed frame), ``"zeros"`` (all-black frames) or ``"mean"``
            (every pixel at ``mean_value``).
        mean_value: for ``"mean"``: the training set's mean pixel value in [0, 1]
            (:func:`bidirectional_conv_lstm.data.mean_pixel_value`).

    Returns:
        predictions (B, T_out, C, H, W) of the input's type, device and (floating) dtype.

    Raises:
        ValueError: an unknown ``kind``, ``num_output_frames`` < 1, a missing or out-of-range ``mean_value``,
            or ``pixel_values`` that are not 5-D.
    """
    if kind not in BASELINES:
        raise ValueError(f"kind must be one of {BASELINES}, got {kind!r}")
    check_int("num_output_frames", num_output_frames)
    if kind == "mean" and (mean_value is None or not 0.0 <= float(mean_value) <= 1.0):
        raise ValueError(
            f"kind='mean' needs mean_value in [0, 1] (the training set's mean pixel value), got {mean_value!r}"
        )
    is_tensor = isinstance(pixel_values, torch.Tensor)
    if not is_tensor:
        pixel_values = np.asarray(pixel_values)
    if pixel_values.ndim != 5:
        raise ValueError(f"pixel_values must be (B, T_in, C, H, W), got shape {tuple(pixel_values.shape)}")
    batch, _, channels, height, width = pixel_values.shape
    shape = (batch, num_output_frames, channels, height, width)
    if is_tensor:
        dtype = pixel_values.dtype if pixel_values.is_floating_point() else torch.float32
        if kind == "copy_last":
            return pixel_values[:, -1:].to(dtype).repeat(1, num_output_frames, 1, 1, 1)
        fill = 0.0 if kind == "zeros" else float(mean_value)
        return torch.full(shape, fill, dtype=dtype, device=pixel_values.device)
    dtype = pixel_values.dtype if np.issubdtype(pixel_values.dtype, np.floating) else np.float32
    if kind == "copy_last":
        return np.repeat(pixel_values[:, -1:].astype(dtype), num_output_frames, axis=1)
    return np.full(shape, 0.0 if kind == "zeros" else float(mean_value), dtype=dtype)


def evaluate_baselines(
    batches: Iterable[Mapping],
    *,
    mean_value: float | None,
    kinds: Iterable[str] = BASELINES,
    gather=None,
    max_batches: int | None = None,
) -> dict[str, dict]:
    """Score the baselines over a dataloader with the same code that scores models.

    Args:
        batches: batches ``{"pixel_values": (B, T_in, C, H, W), "labels": (B, T_out, C, H, W)}`` in [0, 1], e.g.
            a DataLoader with :class:`~bidirectional_conv_lstm.data.FramePredictionCollator`.
        mean_value: the training set's mean pixel value, for the ``"mean"`` baseline (may be None without it).
        kinds: which baselines (default all of :data:`BASELINES`).
        gather: as in :class:`FrameMetricsAccumulator` (an ``accelerate.Accelerator`` when distributed).
        max_batches: stop after this many batches (None: all).

    Returns:
        ``{kind: metrics dict}`` as :meth:`FrameMetricsAccumulator.compute` returns it.
    """
    kinds = tuple(kinds)
    for kind in kinds:
        if kind not in BASELINES:
            raise ValueError(f"kinds must be among {BASELINES}, got {kind!r}")
    if "mean" in kinds and mean_value is None:
        raise ValueError(
            "the 'mean' baseline needs mean_value (the training set's mean pixel value in [0, 1])"
        )
    accumulators = {kind: FrameMetricsAccumulator(gather=gather) for kind in kinds}
    for index, batch in enumerate(batches):
        if max_batches is not None and index >= max_batches:
            break
        labels = batch["labels"]
        for kind, accumulator in accumulators.items():
            accumulator.update(
                baseline_predictions(batch["pixel_values"], labels.shape[1], kind, mean_value), labels
            )
    return {kind: accumulator.compute() for kind, accumulator in accumulators.items()}


def format_metrics_table(results: Mapping[str, Mapping]) -> str:
    """A Markdown table of ``{row name: metrics dict}`` (e.g. the output of :func:`evaluate_baselines`)."""
    header = "| | " + " | ".join(METRIC_NAMES) + " |"
    lines = [header, "|---" * (len(METRIC_NAMES) + 1) + "|"]
    for row, values in results.items():
        lines.append(f"| {row} | " + " | ".join(f"{values[name]:.4g}" for name in METRIC_NAMES) + " |")
    return "\n".join(lines)
