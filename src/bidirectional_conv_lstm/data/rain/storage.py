"""How rain-rate windows are stored in a ``datasets`` table: the one schema shared by radar archives and the
synthetic rain generator.

A window is ``T`` consecutive frames (observed then future) of one tile, stored as
``rain_rate: Array4D(shape=(T, 1, H, W), dtype="uint16")`` in units of :data:`RAIN_RATE_RESOLUTION` (0.01 mm/h),
so 0 to 655.34 mm/h with a 0.005 mm/h rounding error; the value :data:`NO_DATA` (65535) marks a pixel with no
radar data (outside the radar range, blocked beams). No-data is never stored as 0 mm/h. Two bytes a pixel, as
float16, but with a uniform 0.01 mm/h step at every intensity (float16's steps grow to 0.25 mm/h at 200 mm/h).

Besides ``rain_rate`` each row carries ``event`` (the name of the event / sequence it comes from, the unit of the
splits), ``origin`` (ISO 8601 time of the first frame, ``""`` when the data has no clock, as synthetic fields),
``y`` and ``x`` (the tile's top-left corner in the source grid, after downsampling). A table whose motion is known
(the synthetic rain) adds ``motion: Array3D(shape=(2, H, W), dtype="float32")``, each pixel's displacement per
frame in pixels, x then y: frame ``t`` at ``x`` is frame ``t - 1`` at ``x - motion(x)``.
"""

from __future__ import annotations

import datasets
import numpy as np
import torch

__all__ = [
    "NO_DATA",
    "RAIN_RATE_RESOLUTION",
    "crop_context",
    "decode_rain_rate",
    "decode_windows",
    "encode_rain_rate",
    "rain_window_features",
]

RAIN_RATE_RESOLUTION = 0.01  # mm/h per stored unit
NO_DATA = np.iinfo(np.uint16).max  # 65535
_MAX_STORED = NO_DATA - 1


def encode_rain_rate(rain_rate, valid=None) -> np.ndarray:
    """Rain rate in mm/h (float array, NaN = no data) to the stored uint16 form.

    Args:
        rain_rate: float array of any shape, mm/h; NaN marks no data. Negative values are an error.
        valid: optional bool array of the same shape; False marks no data (on top of NaN).

    Returns:
        uint16 array of the same shape: ``round(R / 0.01)`` clipped to 65534, :data:`NO_DATA` where no data.
    """
    rain_rate = np.asarray(rain_rate, dtype=np.float64)
    missing = np.isnan(rain_rate)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != rain_rate.shape:
            raise ValueError(f"valid has shape {valid.shape}, expected the rain rate's {rain_rate.shape}")
        missing |= ~valid
    if np.any(rain_rate[~missing] < 0):
        raise ValueError(f"rain_rate has negative values (min {np.nanmin(rain_rate)}); expected mm/h >= 0")
    stored = np.clip(np.rint(np.where(missing, 0.0, rain_rate) / RAIN_RATE_RESOLUTION), 0, _MAX_STORED)
    stored = stored.astype(np.uint16)
    stored[missing] = NO_DATA
    return stored


def decode_rain_rate(stored):
    """The stored uint16 form back to ``(rain_rate_mm_h, valid)``.

    Works on numpy arrays and torch tensors (any integer dtype: ``datasets`` hands uint16 columns out as int64
    unless told otherwise). Returns float32 rain rate with 0 at no-data pixels and a bool ``valid`` mask, as
    numpy arrays for numpy input and tensors (on the input's device) for tensor input.
    """
    if isinstance(stored, torch.Tensor):
        stored = stored.to(torch.int64) if stored.dtype != torch.int64 else stored
        valid = stored != NO_DATA
        rain = torch.where(valid, stored, 0).to(torch.float32) * RAIN_RATE_RESOLUTION
        return rain, valid
    stored = np.asarray(stored)
    valid = stored != NO_DATA
    rain = np.where(valid, stored, 0).astype(np.float32) * np.float32(RAIN_RATE_RESOLUTION)
    return rain, valid


def rain_window_features(
    num_frames: int, height: int, width: int, *, motion: bool = False
) -> datasets.Features:
    """The ``datasets.Features`` of a rain-rate window table (see the module docstring); with ``motion``, also the
    ``motion`` column: (2, H, W) float32, the known displacement of each pixel per frame (x then y)."""
    columns = {"rain_rate": datasets.Array4D(shape=(num_frames, 1, height, width), dtype="uint16")}
    if motion:
        columns["motion"] = datasets.Array3D(shape=(2, height, width), dtype="float32")
    columns.update(
        event=datasets.Value("string"),
        origin=datasets.Value("string"),
        y=datasets.Value("int32"),
        x=datasets.Value("int32"),
    )
    return datasets.Features(columns)


def decode_windows(stored, num_input_frames: int, num_output_frames: int):
    """Stored windows (B, T, 1, H, W) (uint16 / int64, numpy or torch) -> observed and future mm/h with masks.

    Returns:
        ``(observed, observed_valid, future, future_valid)``: float32 (B, T_in, H, W), bool (B, T_in, H, W),
        float32 (B, T_out, H, W), bool (B, T_out, H, W), numpy or torch as the input. The first
        ``num_input_frames`` frames are observed, the next ``num_output_frames`` the future.
    """
    if stored.ndim != 5 or stored.shape[2] != 1:
        raise ValueError(f"rain_rate windows must be (B, T, 1, H, W), got shape {tuple(stored.shape)}")
    needed = num_input_frames + num_output_frames
    if stored.shape[1] < needed:
        raise ValueError(
            f"windows have {stored.shape[1]} frames, fewer than num_input_frames + num_output_frames = {needed}"
        )
    rain, valid = decode_rain_rate(stored[:, :needed, 0])
    split = num_input_frames
    return rain[:, :split], valid[:, :split], rain[:, split:], valid[:, split:]


def crop_context(frames, context: int):
    """``frames`` (..., H, W) without ``context`` pixels on every side (the surroundings of an evaluation tile,
    see ``RadarWindowsConfig.eval_context``); ``frames`` itself when ``context`` is 0."""
    if context == 0:
        return frames
    return frames[..., context:-context, context:-context]
