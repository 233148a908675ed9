"""Does a rain-rate model's advection head measure the motion? Its motion field beside Lucas-Kanade's.

A forecaster that moves rain the wrong way (or not at all) loses the first half hour to optical-flow extrapolation
whatever else it learns, and the scores alone do not say why. :func:`motion_against_lucas_kanade` compares, on the
wet pixels (``>= wet_threshold`` mm/h in the last observed frame) of held-out windows, the advection head's motion at
the first forecast step with pysteps' dense Lucas-Kanade field (:func:`bidirectional_conv_lstm.nowcasting.baselines.lucas_kanade_motion`,
the field the extrapolation baseline moves rain along):

- ``cosine``: the mean, over those pixels, of the cosine of the angle between the two vectors (1: the same
  direction everywhere; about 0: unrelated; -1: opposite);
- ``model_speed`` / ``lucas_kanade_speed``: their mean lengths, pixels per frame step;
- ``model_mean`` / ``lucas_kanade_mean``: their mean vectors (x, y).

Pooled over the windows, and per event. Needs pysteps (the ``nowcasting`` extra).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch

from ..data.rain.storage import crop_context, decode_windows
from ..models.convlstm.forecasting_convlstm import pad_to_patch_size
from .baselines import lucas_kanade_motion

__all__ = ["model_motion", "motion_against_lucas_kanade", "motion_check"]

MOTION_WET_THRESHOLD = 1.0  # mm/h: where there is rain to move
MIN_WET_PIXELS = 50  # a window with fewer wet pixels says little about the motion, and is left out


@torch.no_grad()
def model_motion(model, observed, valid=None, *, autocast: Callable | None = None) -> np.ndarray:
    """The advection head's motion at the first forecast step of observed mm/h.

    Args:
        model: a rain-rate `ConvLSTMForFramePrediction` with `config.advection`.
        observed: mm/h (B, T_in, H, W), numpy or torch, NaN = no data (read as no rain, as the collator does);
            any H x W: padded with no rain on the bottom and right to a multiple of `config.patch_size`, as
            `forecast_rain_rate` pads, and the motion cropped back.
        valid: optional bool (B, T_in, H, W), False = no data.
        autocast: a context-manager factory to run the model under (e.g. ``accelerator.autocast``).

    Returns:
        float32 (B, 2, H, W): pixels per frame step, x (columns) then y (rows); the forecast's first frame is the
        last observed one sampled at ``x - motion(x)`` (before the gate's blend).
    """
    config = model.config
    if not config.advection or config.rain_rate_transform is None:
        raise ValueError(
            "model_motion needs a rain-rate model with an advection head (config.advection=True)"
        )
    observed = observed.detach().cpu() if isinstance(observed, torch.Tensor) else observed
    rain = torch.as_tensor(np.asarray(observed, dtype=np.float32))
    if rain.ndim != 4 or 0 in rain.shape:
        raise ValueError(f"observed must be mm/h (B, T_in, H, W), not empty, got shape {tuple(rain.shape)}")
    known = ~torch.isnan(rain)
    if valid is not None:
        known &= torch.as_tensor(np.asarray(valid, dtype=bool))
    height, width = rain.shape[-2:]
    patch = config.patch_size
    filled = pad_to_patch_size(torch.where(known, rain, 0.0), patch)  # 0 mm/h: no rain
    values = model.rain_rate_transform.forward(filled)
    parameter = next(model.parameters())
    with autocast() if autocast is not None else contextlib.nullcontext():
        out = model(
            pixel_values=values[:, :, None].to(parameter.device, parameter.dtype),
            num_output_frames=1,
            output_motion=True,
        )
    return out.motion[:, 0, :, :height, :width].float().cpu().numpy()


def _summary(model_vectors: np.ndarray, flow_vectors: np.ndarray, windows: int) -> dict:
    """The scores of pooled (2, N) vectors (see the module docstring)."""
    model_speed, flow_speed = np.hypot(*model_vectors), np.hypot(*flow_vectors)
    cosine = (model_vectors * flow_vectors).sum(0) / np.maximum(model_speed * flow_speed, 1e-9)
    return {
        "windows": windows,
        "wet_pixels": int(model_vectors.shape[1]),
        "cosine": float(cosine.mean()),
        "model_speed": float(model_speed.mean()),
        "lucas_kanade_speed": float(flow_speed.mean()),
        "model_mean": [float(v) for v in model_vectors.mean(1)],
        "lucas_kanade_mean": [float(v) for v in flow_vectors.mean(1)],
    }


def motion_against_lucas_kanade(
    model,
    windows,
    *,
    num_input_frames: int,
    batch_size: int = 32,
    max_windows: int | None = None,
    context: int = 0,
    wet_threshold: float = MOTION_WET_THRESHOLD,
    min_wet_pixels: int = MIN_WET_PIXELS,
    autocast: Callable | None = None,
) -> dict:
    """The model's motion beside Lucas-Kanade's on the wet pixels of `windows` (see the module docstring).

    Args:
        model: a rain-rate model with an advection head (`config.advection`).
        windows: a table in the rain-window schema (``rain_rate`` (T, 1, H, W) stored, ``event``), e.g. a test
            split of :func:`~bidirectional_conv_lstm.nowcasting.data.load_rain_datasets`.
        num_input_frames: the observed frames of each window that both methods read.
        batch_size, max_windows: windows per model call; the first `max_windows` only (None: all).
        context: pixels of surroundings around each scored tile (``eval_context``): both fields are computed on
            the whole window and compared on the tile.
        wet_threshold: mm/h in the last observed frame that makes a pixel count.
        min_wet_pixels: windows with fewer wet pixels on the tile are left out.
        autocast: as :func:`model_motion`.

    Returns:
        ``{"overall": scores, "by_event": {event: scores}, "wet_threshold": ...}``, scores as the module
        docstring lists them plus ``windows`` and ``wet_pixels`` (``overall`` is None when no window had
        enough rain).
    """

    if not model.config.advection:
        raise ValueError(
            "motion_against_lucas_kanade needs a model with an advection head (config.advection)"
        )
    count = len(windows) if max_windows is None else min(len(windows), max_windows)
    table = windows.select(range(count)).with_format("numpy", columns=["rain_rate", "event"])
    pooled: dict[str, list] = {}
    for start in range(0, count, batch_size):
        rows = table[start : start + batch_size]
        observed, observed_valid, _, _ = decode_windows(np.asarray(rows["rain_rate"]), num_input_frames, 0)
        observed = np.where(observed_valid, observed, np.nan)
        motion = crop_context(model_motion(model, observed, autocast=autocast), context)
        flow = crop_context(lucas_kanade_motion(observed), context)
        last = crop_context(observed[:, -1], context)
        for index, event in enumerate(rows["event"]):
            wet = np.nan_to_num(last[index], nan=0.0) >= wet_threshold
            if wet.sum() < min_wet_pixels:
                continue
            pooled.setdefault(str(event), []).append((motion[index][:, wet], flow[index][:, wet]))

    def scores(pairs):
        return _summary(
            np.concatenate([m for m, _ in pairs], 1), np.concatenate([f for _, f in pairs], 1), len(pairs)
        )

    everything = [pair for pairs in pooled.values() for pair in pairs]
    return {
        "overall": scores(everything) if everything else None,
        "by_event": {event: scores(pairs) for event, pairs in sorted(pooled.items())},
        "wet_threshold": wet_threshold,
    }


def motion_check(model, windows, **options) -> dict | None:
    """:func:`motion_against_lucas_kanade` where it applies, for the evaluation reports: None for a model without
    an advection head, without pysteps installed, or with fewer than the two observed frames a Lucas-Kanade field
    needs."""
    import importlib.util

    if not model.config.advection or importlib.util.find_spec("pysteps") is None:
        return None
    if options.get("num_input_frames", 0) < 2:
        return None
    return motion_against_lucas_kanade(model, windows, **options)
