"""Pictures of what the model predicts: PNG strips of input / truth / prediction, GIFs, lead-time plots."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..models.convlstm.video_inputs import frames_to_gif

__all__ = ["frames_to_uint8", "prediction_strip", "save_prediction_strip", "save_gif", "plot_lead_time"]

_LABEL_WIDTH = 56
_GAP = 2


def frames_to_uint8(frames) -> np.ndarray:
    """Float frames in [0, 1] (..., C, H, W), torch or numpy -> uint8 (..., H, W, C) for images."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().float().cpu().numpy()
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim < 3:
        raise ValueError(f"frames must be (..., C, H, W), got shape {frames.shape}")
    array = np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)
    return np.moveaxis(array, -3, -1)


def _tile(row: np.ndarray) -> Image.Image:
    """(T, H, W, C) uint8 -> one image of the T frames side by side."""
    frames, height, width, channels = row.shape
    canvas = np.full((height, frames * (width + _GAP) - _GAP, channels), 255, dtype=np.uint8)
    for index, frame in enumerate(row):
        canvas[:, index * (width + _GAP) : index * (width + _GAP) + width] = frame
    image = canvas[..., 0] if channels == 1 else canvas[..., :3]
    return Image.fromarray(image).convert("RGB")


def prediction_strip(pixel_values, labels, predictions, *, max_samples: int = 4) -> Image.Image:
    """An RGB image with, for each sample, three rows: input frames, true future, predicted future.

    Args:
        pixel_values: (B, T_in, C, H, W) in [0, 1].
        labels: (B, T_out, C, H, W) in [0, 1], or None when the future is unknown (then no truth row).
        predictions: (B, T_out, C, H, W) in [0, 1].
        max_samples: at most this many samples.
    """
    inputs = frames_to_uint8(pixel_values)[:max_samples]
    predicted = frames_to_uint8(predictions)[:max_samples]
    truth = None if labels is None else frames_to_uint8(labels)[:max_samples]
    rows: list[tuple[str, Image.Image]] = []
    for index in range(len(inputs)):
        rows.append(("input", _tile(inputs[index])))
        if truth is not None:
            rows.append(("truth", _tile(truth[index])))
        rows.append(("predicted", _tile(predicted[index])))
    width = _LABEL_WIDTH + max(image.width for _, image in rows)
    height = sum(image.height + _GAP for _, image in rows)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    top = 0
    for label, image in rows:
        sheet.paste(image, (_LABEL_WIDTH, top))
        draw.text((2, top + image.height // 2 - 5), label, fill="black")
        top += image.height + _GAP
    return sheet


def save_prediction_strip(
    pixel_values, labels, predictions, path: str | os.PathLike, *, max_samples: int = 4
) -> Path:
    """Save :func:`prediction_strip` as a PNG (folders are created); returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prediction_strip(pixel_values, labels, predictions, max_samples=max_samples).save(path)
    return path


def save_gif(frames, path: str | os.PathLike, *, duration_ms: int = 150, scale: int = 2) -> Path:
    """Save frames (T, C, H, W) in [0, 1] as a looping GIF (folders are created), each frame enlarged ``scale``
    times, alpha dropped; returns the path written. The encoder is the pipeline's, ``video_inputs.frames_to_gif``."""
    pixels = frames_to_uint8(frames)  # (T, H, W, C)
    if pixels.shape[-1] > 1:
        pixels = pixels[..., :3]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(frames_to_gif(pixels, duration_ms, scale=scale))
    return path


def plot_lead_time(
    results: Mapping, path: str | os.PathLike, metrics: tuple[str, ...] = ("mse", "mae", "ssim", "psnr")
) -> Path:
    """Plot each metric against lead time for the model and its baselines.

    Args:
        results: an evaluation dict: ``{"mse_per_frame": [...], ..., "baselines": {name: {...}}}``.
        path: the PNG to write.
        metrics: which metrics, one panel each.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {"model": results}
    curves.update(results.get("baselines", {}))
    figure, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2))
    for axis, metric in zip(np.atleast_1d(axes), metrics):
        for name, values in curves.items():
            series = values[f"{metric}_per_frame"]
            axis.plot(
                range(1, len(series) + 1),
                series,
                marker="o",
                markersize=3,
                label=name,
                linewidth=2.5 if name == "model" else 1.2,
            )
        axis.set_xlabel("lead time (frames)")
        axis.set_title(metric.upper())
        axis.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
