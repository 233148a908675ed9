"""Per-frame sufficient statistics of nowcast verification, batched in torch (the engine of ``verification``).

Every score of :mod:`bidirectional_conv_lstm.verification` is a function of sums that add up over pixels,
frames and samples, so a test set is scored by adding these sums batch by batch. For each frame, threshold
``thr`` and window size ``n`` this module computes:

- the contingency counts at ``thr`` (hits, false alarms, misses, correct negatives), events being ``value >= thr``;
- the fractions skill score sums ``sum S_f**2``, ``sum S_f * S_o``, ``sum S_o**2`` over window positions, where
  ``S`` is the fraction of events in the ``n x n`` window at each position (Roberts and Lean 2008), laid out as
  pysteps' ``fss_accum`` lays them out (``scipy.ndimage.uniform_filter(size=n, mode="constant")``: the window of
  position ``i`` covers ``i - n // 2 ... i - n // 2 + n - 1``, the outside of the field counts as no event);
- the sums of squared and absolute errors and the number of valid pixels.

Speed: the event fields of all thresholds and both fields are one uint8 tensor; window sums along each axis
are built by doubling (sums of 2, 4, 8, ... consecutive pixels, shared by every window size), so a window costs
``O(log n)`` additions per pixel whatever its size, with no Python loop over pixels; the contingency tables of
all thresholds come from one histogram of (forecast level, observed level) pairs. Window counts are integers and
their products are summed by batched matrix products in a precision that keeps them exact, so without no-data
the FSS sums are exact; frames are processed in chunks that stay in the CPU's cache.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["check_thresholds", "check_windows", "frame_statistics", "to_fields"]

# Frames per chunk on the CPU: keeps the uint8 event tensor (frames x thresholds x 2 x H x W) near the cache's size.
_CPU_CHUNK_ELEMENTS = 1_500_000
_GPU_CHUNK_ELEMENTS = 400_000_000


def check_thresholds(thresholds, name: str = "thresholds") -> tuple[float, ...]:
    """Rain-rate thresholds as a tuple of floats: finite, > 0, distinct (an empty tuple is allowed)."""
    if isinstance(thresholds, (int, float, np.integer, np.floating)) and not isinstance(thresholds, bool):
        thresholds = (thresholds,)
    if isinstance(thresholds, (str, bytes)) or not hasattr(thresholds, "__iter__"):
        raise ValueError(f"{name} must be a sequence of positive numbers (mm/h), got {thresholds!r}")
    values = []
    for value in thresholds:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be positive numbers (mm/h), got {value!r} in {thresholds!r}")
        if not math.isfinite(float(value)) or float(value) <= 0:
            raise ValueError(
                f"{name} must be positive finite numbers (mm/h), got {value!r} in {thresholds!r}"
            )
        values.append(float(value))
    if len({f"{value:g}" for value in values}) != len(values):  # score names use the :g form
        raise ValueError(f"{name} must be distinct (to 6 significant digits), got {thresholds!r}")
    return tuple(values)


def check_windows(windows, name: str = "windows") -> tuple[int, ...]:
    """FSS window sizes in pixels as a tuple of ints: integers >= 1, distinct (an empty tuple is allowed)."""
    if isinstance(windows, (int, np.integer)) and not isinstance(windows, bool):
        windows = (windows,)
    if isinstance(windows, (str, bytes)) or not hasattr(windows, "__iter__"):
        raise ValueError(f"{name} must be a sequence of positive integers (pixels), got {windows!r}")
    values = []
    for value in windows:
        is_integer = isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not is_integer or int(value) < 1:
            raise ValueError(f"{name} must be positive integers (pixels), got {value!r} in {windows!r}")
        values.append(int(value))
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must be distinct, got {windows!r}")
    return tuple(values)


def _as_tensor(array, name: str) -> torch.Tensor:
    if isinstance(array, np.ndarray) or not isinstance(array, torch.Tensor):
        array = np.asarray(array)
        if array.dtype == object:
            raise TypeError(f"{name} must be a numeric array or tensor, got dtype object")
        array = torch.from_numpy(np.ascontiguousarray(array))
    return array


def to_fields(forecast, observed, valid=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Checked fields for scoring: ``(forecast, observed, valid)`` as torch tensors (B, T, H, W).

    Args:
        forecast: rain rate in mm/h, float (B, T, H, W) or (B, T, 1, H, W), numpy array or torch tensor (any
            device). float64 stays float64, other dtypes become float32; non-finite values are no-data.
        observed: the same shape.
        valid: None (every finite pixel is valid) or bool, broadcastable to (B, T, H, W) (e.g. (H, W) for a fixed
            radar domain, or ``labels_mask`` (B, T, 1, H, W)); False marks no-data pixels.

    Returns:
        ``forecast`` and ``observed`` (B, T, H, W) of one floating dtype on ``observed``'s device, and ``valid``
        (None, or bool broadcast to (B, T, H, W), maybe a view); non-finite values are found while scoring.

    Raises:
        TypeError: non-numeric fields, or a non-bool ``valid``.
        ValueError: fields that are not (B, T, H, W), shapes that differ, a ``valid`` that does not broadcast.
    """
    fields = []
    for name, array in (("forecast", forecast), ("observed", observed)):
        tensor = _as_tensor(array, name)
        if tensor.dtype == torch.bool or tensor.is_complex():
            raise TypeError(f"{name} must hold real rain rates in mm/h, got dtype {tensor.dtype}")
        if tensor.ndim == 5 and tensor.shape[2] == 1:
            tensor = tensor[:, :, 0]
        if tensor.ndim != 4:
            raise ValueError(
                f"{name} must be (B, T, H, W) or (B, T, 1, H, W), got shape {tuple(tensor.shape)}"
            )
        fields.append(tensor)
    forecast, observed = fields
    if forecast.shape != observed.shape:
        raise ValueError(
            f"forecast and observed must have one shape (B, T, H, W), got {tuple(forecast.shape)} "
            f"and {tuple(observed.shape)}"
        )
    dtype = torch.float64 if torch.float64 in (forecast.dtype, observed.dtype) else torch.float32
    device = observed.device
    forecast = forecast.to(device=device, dtype=dtype)
    observed = observed.to(device=device, dtype=dtype)
    if valid is not None:
        valid = _as_tensor(valid, "valid")
        if valid.dtype != torch.bool:
            raise TypeError(f"valid must be a bool mask (True = valid pixel), got dtype {valid.dtype}")
        if valid.ndim == 5 and valid.shape[2] == 1:
            valid = valid[:, :, 0]
        try:
            valid = torch.broadcast_to(valid.to(device), forecast.shape)
        except RuntimeError as error:
            raise ValueError(
                f"valid must broadcast to the fields' shape {tuple(forecast.shape)}, got {tuple(valid.shape)}"
            ) from error
    return forecast, observed, valid


def _widen(tensor: torch.Tensor, largest: int, wide: torch.dtype) -> torch.Tensor:
    """``tensor`` as uint8 while it holds ``largest``, else as ``wide`` (window sums move few bytes)."""
    if tensor.dtype == torch.uint8 and largest > 255:
        return tensor.to(wide)
    return tensor


def _strided_sums(flat, sizes, step: int, bound: int, wide: torch.dtype) -> dict[int, torch.Tensor]:
    """Sums of ``n`` entries ``step`` apart in the 1-D ``flat``, for each ``n`` in ``sizes``: ``{n: out}`` with
    ``out[j] = flat[j] + flat[j + step] + ... + flat[j + (n - 1) * step]``, for entries in ``[0, bound]``.

    Step 1 sums along image rows, step = a row's length along columns: every addition is one contiguous run
    over the whole chunk (sums that straddle a row's end are computed and never read). Sums of 2, 4, 8, ...
    entries are built by doubling and shared by all sizes; a size adds the powers of two of its binary digits
    end to end, so it costs O(log n) additions. uint8 sums turn ``wide`` before they could overflow.
    """
    sizes = sorted(set(sizes))
    powers = {1: flat}
    power = 1
    while 2 * power <= sizes[-1]:
        previous = _widen(powers[power], 2 * power * bound, wide)
        length = previous.numel() - power * step
        powers[2 * power] = previous[:length] + previous[power * step : power * step + length]
        power *= 2
    sums = {}
    for size in sizes:
        length = flat.numel() - (size - 1) * step
        total, offset = None, 0
        for bit in sorted((p for p in powers if size & p), reverse=True):
            piece = powers[bit][offset * step : offset * step + length]
            total = piece if total is None else _widen(total, size * bound, wide) + piece
            offset += bit
        sums[size] = total
    return sums


def _row_gram(rows: torch.Tensor) -> torch.Tensor:
    """``(sum f*f, sum f*o, sum o*o)`` of each row pair in ``rows`` (R, 2, W) -> float64 (R, 3).

    One 2 x 2 matrix product per row. In float32 the sums of integer window counts are exact while a row's sums
    stay below 2**24, and stay exact under reduced-precision matmul settings (TF32, bf16) while the counts are
    <= 256 (windows up to 16); the caller passes float64 rows otherwise.
    """
    gram = torch.bmm(rows, rows.transpose(1, 2)).view(-1, 4)
    return gram[:, [0, 1, 3]].to(torch.float64)


def _contingency(
    levels: torch.Tensor, thresholds: tuple[float, ...], num_valid: torch.Tensor
) -> torch.Tensor:
    """Hits, false alarms, misses, correct negatives (N, K, 4) float64 from ``levels`` (N, H, 2, W): how many
    thresholds each pixel of the forecast ([:, :, 0]) and of the observation ([:, :, 1]) reaches.

    Events are nested over thresholds, so one histogram of (K + 1) x (K + 1) level pairs per frame holds the
    tables of every threshold. No-data pixels reach no level and only count through ``num_valid``.
    """
    frames, bins = levels.shape[0], len(thresholds) + 1
    offsets = torch.arange(frames, device=levels.device, dtype=torch.int32).view(-1, 1, 1) * (bins * bins)
    pairs = (levels[:, :, 0].to(torch.int32) * bins + levels[:, :, 1] + offsets).flatten()
    joint = torch.bincount(pairs, minlength=frames * bins * bins).view(frames, bins, bins).to(torch.float64)
    # reached[n, a, b]: pixels whose forecast reaches at least level a and the observation at least level b.
    reached = joint.flip((1, 2)).cumsum(1).cumsum(2).flip((1, 2))
    level = [1 + sorted(thresholds).index(threshold) for threshold in thresholds]  # event: level >= this
    hits = reached[:, level, level]
    false_alarms = reached[:, level, 0] - hits
    misses = reached[:, 0, level] - hits
    correct_negatives = num_valid[:, None] - hits - false_alarms - misses
    return torch.stack([hits, false_alarms, misses, correct_negatives], dim=-1)


def _errors(forecast, observed, valid):
    """Sums of squared and absolute errors and valid pixels (N, 3) float64, and the no-data mask (or None)."""
    frames, height, width = observed.shape
    error = observed - forecast
    absolute = error.abs()
    known = absolute < math.inf  # False where either field is NaN or infinite: no-data
    if valid is not None:
        known &= valid
    if bool(known.all()):
        valid = None
        num_valid = torch.full((frames,), float(height * width), dtype=torch.float64, device=observed.device)
    else:
        valid = known
        num_valid = valid.sum((-1, -2)).to(torch.float64)
        error, absolute = error.masked_fill(~valid, 0.0), absolute.masked_fill(~valid, 0.0)
    squared = (error * error).sum((-1, -2)).to(torch.float64)
    return torch.stack([squared, absolute.sum((-1, -2)).to(torch.float64), num_valid], dim=-1), valid


def _chunk_statistics(forecast, observed, valid, thresholds, windows) -> dict[str, torch.Tensor]:
    stats = {}
    stats["errors"], valid = _errors(forecast, observed, valid)
    if not thresholds:
        return stats
    frames, height, width = observed.shape
    count, device = len(thresholds), observed.device
    largest = max((1, *windows))
    low, padded_height, padded_width = largest // 2, height + largest - 1, width + largest - 1
    row = 2 * padded_width  # a padded row of both fields
    # Both fields' rows side by side, zero-padded as pysteps pads (no event outside the field) and with one
    # frame of tail that keeps the strided views below in bounds: (N + 1, H', 2, W'); no-data is never an event.
    fields = torch.stack([forecast, observed], dim=2)  # (N, H, 2, W)
    if valid is not None:
        fields = fields.masked_fill(~valid[:, :, None], -math.inf)
    padded = torch.full(
        (frames + 1, padded_height, 2, padded_width), -math.inf, dtype=fields.dtype, device=device
    )
    padded[:frames, low : low + height, :, low : low + width] = fields
    levels = torch.tensor(thresholds, dtype=fields.dtype, device=device).view(1, -1, 1, 1, 1)
    events = (padded[:, None] >= levels).view(torch.uint8)  # (N + 1, K, H', 2, W')
    reached = events.view(frames + 1, count, -1).sum(1, dtype=torch.uint8)[:frames]
    stats["contingency"] = _contingency(
        reached.view(frames, *padded.shape[1:]), thresholds, stats["errors"][:, 2]
    )
    if not windows:
        return stats
    wide = [window for window in windows if window > 1] or [1]
    along_rows = _strided_sums(events.view(-1), wide, step=1, bound=1, wide=torch.int32)
    if (
        valid is not None
    ):  # pixels that count in a window's fractions: valid ones and the outside of the field
        counted = torch.ones((frames + 1, padded_height, padded_width), dtype=torch.uint8, device=device)
        counted[:frames, low : low + height, low : low + width] = valid
        counted_rows = _strided_sums(counted.view(-1), wide, step=1, bound=1, wide=torch.int32)
    fss = []
    for window in windows:
        if window == 1:  # the fractions are the events themselves: the contingency counts give the sums
            hits, false_alarms, misses = stats["contingency"].unbind(-1)[:3]
            fss.append(torch.stack([hits + false_alarms, hits, hits + misses], dim=-1))
            continue
        start = low - window // 2  # pysteps' (uniform_filter's) window placement in the padded field
        sums = _strided_sums(along_rows[window], (window,), step=row, bound=window, wide=torch.float32)[
            window
        ]
        exact = valid is None and window * window <= 256 and width * window**4 < 2**24
        sums = sums.to(torch.float32 if exact else torch.float64)
        offset = sums.storage_offset() + start * row + start
        if valid is None:  # every padded row of every frame and threshold: (N K H', 2, W), rows >= H unused
            rows = sums.as_strided((frames * count * padded_height, 2, width), (row, padded_width, 1), offset)
            gram = _row_gram(rows).view(frames, count, padded_height, 3)[:, :, :height].sum(2)
            fss.append(gram / float(window) ** 4)
            continue
        counts = sums.as_strided(
            (frames, count, height, 2, width),
            (count * padded_height * row, padded_height * row, row, padded_width, 1),
            offset,
        )
        known = _strided_sums(
            counted_rows[window], (window,), step=padded_width, bound=window, wide=torch.int32
        )
        known = known[window].to(torch.float64)
        known = known.as_strided(
            (frames, height, width),
            (padded_height * padded_width, padded_width, 1),
            known.storage_offset() + start * padded_width + start,
        )
        # Fractions over the counted pixels of each window; windows centred on no-data pixels are left out.
        scale = valid.to(torch.float64) / known.clamp(min=1)
        fractions = counts * scale[:, None, :, None, :]  # (N, K, H, 2, W)
        fss.append(_row_gram(fractions.view(-1, 2, width)).view(frames, count, height, 3).sum(2))
    stats["fss"] = torch.stack(fss, dim=2)  # (N, K, W, 3)
    return stats


def frame_statistics(forecast, observed, valid, thresholds, windows) -> dict[str, torch.Tensor]:
    """The sums behind every score, per frame, for fields checked by :func:`to_fields`.

    Args:
        forecast: float (B, T, H, W) rain rate in mm/h.
        observed: the same shape, dtype and device.
        valid: None or bool broadcastable to (B, T, H, W); False marks no-data pixels, as do non-finite values
            of either field (not events, left out of every sum).
        thresholds: tuple of K positive floats (mm/h); events are ``value >= threshold`` in the fields' dtype.
        windows: tuple of positive ints, FSS window sizes in pixels (empty: no FSS sums).

    Returns:
        float64 tensors on the fields' device: ``"errors"`` (B, T, 3) = sum of squared errors, sum of absolute
        errors, valid pixels; ``"contingency"`` (B, T, K, 4) = hits, false alarms, misses, correct negatives
        (when K > 0); ``"fss"`` (B, T, K, len(windows), 3) = sum S_f**2, sum S_f * S_o, sum S_o**2 (when
        thresholds and windows are given).
    """
    batch, steps, height, width = observed.shape
    if observed.device.type == "mps":  # no float64 there: count on the CPU
        forecast, observed = forecast.cpu(), observed.cpu()
        valid = None if valid is None else valid.cpu()
    flat_forecast = forecast.reshape(-1, height, width)
    flat_observed = observed.reshape(-1, height, width)
    flat_valid = None if valid is None else valid.expand(observed.shape).reshape(-1, height, width)
    largest = max((1, *windows))
    per_frame = max(1, len(thresholds)) * 2 * (height + largest) * (width + largest)
    budget = _CPU_CHUNK_ELEMENTS if observed.device.type == "cpu" else _GPU_CHUNK_ELEMENTS
    chunk = max(1, budget // per_frame)
    pieces = []
    for start in range(0, flat_observed.shape[0], chunk):
        part = slice(start, start + chunk)
        pieces.append(
            _chunk_statistics(
                flat_forecast[part],
                flat_observed[part],
                None if flat_valid is None else flat_valid[part],
                thresholds,
                windows,
            )
        )
    result = {}
    for key in pieces[0] if pieces else ():
        joined = torch.cat([piece[key] for piece in pieces])
        result[key] = joined.reshape(batch, steps, *joined.shape[1:])
    return result
