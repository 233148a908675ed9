"""Per-frame sufficient statistics of nowcast verification, batched in torch (the engine of ``verification``).

Every score of :mod:`bidirectional_conv_lstm.nowcasting.verification` is a function of sums that add up over pixels,
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


def _window_sums(tensor, sizes, dim: int, bound: int, wide: torch.dtype) -> dict[int, torch.Tensor]:
    """Sums of ``n`` consecutive entries along ``dim`` for each ``n`` in ``sizes``: ``{n: out}`` with
    ``out[j] = tensor[j] + ... + tensor[j + n - 1]`` (length ``L - n + 1``), for entries in ``[0, bound]``.

    Sums of 2, 4, 8, ... entries are built by doubling and shared by all sizes; a size is the sum of the powers
    of two of its binary digits, placed end to end. uint8 sums turn ``wide`` before they could overflow.
    """
    sizes = sorted(set(sizes))
    powers = {1: tensor}
    power = 1
    while 2 * power <= sizes[-1]:
        previous = _widen(powers[power], 2 * power * bound, wide)
        length = previous.shape[dim] - power
        powers[2 * power] = previous.narrow(dim, 0, length) + previous.narrow(dim, power, length)
        power *= 2
    sums = {}
    for size in sizes:
        length = tensor.shape[dim] - size + 1
        total, offset = None, 0
        for bit in sorted((p for p in powers if size & p), reverse=True):
            piece = powers[bit].narrow(dim, offset, length)
            total = piece if total is None else _widen(total, size * bound, wide) + piece
            offset += bit
        sums[size] = total
    return sums


def _gram_sums(fractions: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(sum f*f, sum f*o, sum o*o)`` over pixels of ``fractions`` (N, K, H, 2, W) -> float64 (N, K, 3).

    One 2 x 2 matrix product per image row in ``dtype``, the rows then summed in float64. In float32 the sums of
    integer window counts are exact while a row's sums stay below 2**24, and stay exact under reduced-precision
    matmul settings (TF32, bf16) while the counts are <= 256 (windows up to 16); callers pass float64 otherwise.
    """
    frames, thresholds, height, _, width = fractions.shape
    rows = fractions.reshape(-1, 2, width).to(dtype)
    gram = torch.bmm(rows, rows.transpose(1, 2)).view(frames, thresholds, height, 4).to(torch.float64)
    return gram[..., [0, 1, 3]].sum(2)


def _contingency(
    events: torch.Tensor, thresholds: tuple[float, ...], num_valid: torch.Tensor
) -> torch.Tensor:
    """Hits, false alarms, misses, correct negatives (N, K, 4) float64 from ``events`` uint8 (N, K, H, 2, W).

    Counted through each pixel's pair of levels (how many thresholds the forecast and the observation reach):
    events are nested over thresholds, so one histogram of (K + 1) x (K + 1) level pairs per frame holds the
    tables of every threshold. No-data pixels reach no level and only count through ``num_valid``.
    """
    frames, count = events.shape[:2]
    bins = count + 1
    levels = events.sum(1, dtype=torch.uint8).to(torch.int32)  # (N, H, 2, W)
    offsets = torch.arange(frames, device=events.device, dtype=torch.int32).view(-1, 1, 1) * (bins * bins)
    pairs = (levels[:, :, 0] * bins + levels[:, :, 1] + offsets).flatten()
    joint = torch.bincount(pairs, minlength=frames * bins * bins).view(frames, bins, bins).to(torch.float64)
    # reached[n, a, b]: pixels whose forecast reaches at least level a and the observation at least level b.
    reached = joint.flip((1, 2)).cumsum(1).cumsum(2).flip((1, 2))
    level = [1 + sorted(thresholds).index(threshold) for threshold in thresholds]  # event: level >= this
    hits = reached[:, level, level]
    false_alarms = reached[:, level, 0] - hits
    misses = reached[:, 0, level] - hits
    correct_negatives = num_valid[:, None] - hits - false_alarms - misses
    return torch.stack([hits, false_alarms, misses, correct_negatives], dim=-1)


def _chunk_statistics(forecast, observed, valid, thresholds, windows) -> dict[str, torch.Tensor]:
    """:func:`frame_statistics` of (N, H, W) frames: the error sums, then the contingency tables of every
    threshold, then the FSS sums of every window."""
    height, width = observed.shape[1:]
    errors, valid, num_valid = _error_sums(forecast, observed, valid)
    stats = {"errors": errors}
    if not thresholds:
        return stats
    largest = max((1, *windows))
    low = largest // 2
    events = _padded_events(forecast, observed, valid, thresholds, low, largest - 1 - low)
    inner = events[:, :, low : low + height, :, low : low + width]
    stats["contingency"] = _contingency(inner, thresholds, num_valid)
    if windows:
        stats["fss"] = _fss_sums(events, valid, stats["contingency"], windows, low, (height, width))
    return stats


def _error_sums(forecast, observed, valid) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Sums of squared and absolute errors and valid pixels per frame, float64 (N, 3); the no-data mask (None
    when every pixel is known: non-finite values of either field are no data too); valid pixels per frame."""
    frames, height, width = observed.shape
    error = observed - forecast
    absolute = error.abs()
    known = absolute < math.inf  # False where either field is NaN or infinite: no-data
    if valid is not None:
        known &= valid
    valid = None if bool(known.all()) else known
    if valid is None:
        num_valid = torch.full((frames,), float(height * width), dtype=torch.float64, device=observed.device)
    else:
        num_valid = valid.sum((-1, -2)).to(torch.float64)
        error = error.masked_fill(~valid, 0.0)
        absolute = absolute.masked_fill(~valid, 0.0)
    squared = (error * error).sum((-1, -2)).to(torch.float64)
    errors = torch.stack([squared, absolute.sum((-1, -2)).to(torch.float64), num_valid], dim=-1)
    return errors, valid, num_valid


def _padded_events(forecast, observed, valid, thresholds, low: int, high: int) -> torch.Tensor:
    """Events of every threshold and both fields, zero-padded as pysteps pads (``low`` before, ``high`` after):
    uint8 (N, K, H', 2, W'), the rows of both fields side by side; no-data is never an event."""
    frames, height, width = observed.shape
    both = torch.stack([forecast, observed], dim=2)  # (N, H, 2, W): rows of both fields side by side
    if valid is not None:
        both = both.masked_fill(~valid[:, :, None], -math.inf)  # no-data is never an event
    events = torch.zeros(
        (frames, len(thresholds), height + low + high, 2, width + low + high),
        dtype=torch.bool,
        device=observed.device,
    )
    levels = torch.tensor(thresholds, dtype=both.dtype, device=observed.device).view(1, -1, 1, 1, 1)
    torch.ge(both[:, None], levels, out=events[:, :, low : low + height, :, low : low + width])
    return events.view(torch.uint8)


def _fss_sums(events, valid, contingency, windows, low: int, shape: tuple[int, int]) -> torch.Tensor:
    """Sum S_f**2, sum S_f * S_o, sum S_o**2 per frame, threshold and window: float64 (N, K, W, 3), from the
    padded events of :func:`_padded_events` of fields of ``shape`` (H, W), with ``low`` pixels of padding before
    them; fractions over the valid pixels of each window when ``valid``."""
    height, width = shape
    wide = [window for window in windows if window > 1] or [1]
    along_width = _window_sums(events, wide, dim=-1, bound=1, wide=torch.int32)
    if valid is not None:
        # Pixels that count in a window's fractions: valid ones, and the outside of the field (pysteps' zeros).
        counted = torch.ones(
            (events.shape[0], 1, events.shape[2], 1, events.shape[4]), dtype=torch.uint8, device=events.device
        )
        counted[:, :, low : low + height, :, low : low + width] = valid[:, None, :, None]
        counted_width = _window_sums(counted, wide, dim=-1, bound=1, wide=torch.int32)
    fss = []
    for window in windows:
        if window == 1:  # the fractions are the events themselves: the contingency counts give the sums
            hits, false_alarms, misses = contingency.unbind(-1)[:3]
            fss.append(torch.stack([hits + false_alarms, hits, hits + misses], dim=-1))
            continue
        start = low - window // 2  # pysteps' (uniform_filter's) window placement in the padded field
        rows = along_width[window].narrow(-1, start, width).narrow(2, start, height + window - 1)
        counts = _window_sums(rows, (window,), dim=2, bound=window, wide=torch.float32)[window]
        if valid is None:
            exact = window * window <= 256 and width * window**4 < 2**24
            fss.append(_gram_sums(counts, torch.float32 if exact else torch.float64) / float(window) ** 4)
            continue
        known_rows = counted_width[window].narrow(-1, start, width).narrow(2, start, height + window - 1)
        known_counts = _window_sums(known_rows, (window,), dim=2, bound=window, wide=torch.float32)[window]
        # Fractions over the counted pixels of each window; windows centred on no-data pixels are left out.
        scale = valid[:, None, :, None].to(torch.float64) / known_counts.to(torch.float64).clamp(min=1)
        fss.append(_gram_sums(counts.to(torch.float64).mul_(scale), torch.float64))  # one dtype: vectorized
    return torch.stack(fss, dim=2)  # (N, K, W, 3)


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
    if not pieces:  # no frame: empty sums of the right shapes
        empty = {
            "errors": (3,),
            "contingency": (len(thresholds), 4),
            "fss": (len(thresholds), len(windows), 3),
        }
        keys = (
            ["errors"] + (["contingency"] if thresholds else []) + (["fss"] if thresholds and windows else [])
        )
        return {key: observed.new_zeros((batch, steps, *empty[key]), dtype=torch.float64) for key in keys}
    result = {}
    for key in pieces[0]:
        joined = torch.cat([piece[key] for piece in pieces])
        result[key] = joined.reshape(batch, steps, *joined.shape[1:])
    return result
