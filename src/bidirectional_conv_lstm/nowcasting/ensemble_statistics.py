"""Per-frame sufficient statistics of ensemble verification, batched in torch (the engine of
``ensemble_verification``).

Every ensemble score of :mod:`bidirectional_conv_lstm.nowcasting.ensemble_verification` is a function of sums
that add up over pixels, frames and samples. For each frame (a sample's lead time) this module computes, over the
frame's *valid* pixels (the mask is True, the observation and every member are finite):

- ``"crps"``: the sum of the pixels' ensemble CRPS and the number of valid pixels;
- ``"rank"``: a histogram of ``(L, E)`` pairs, ``L`` the members below the observation and ``E`` the members
  equal to it ((M + 1) x (M + 1) counts): the rank histogram with ties split evenly follows from it;
- ``"probability"``: for each threshold, a histogram of ``(j, o)`` pairs, ``j`` the members at or above the
  threshold (the forecast probability is ``j / M``) and ``o`` whether the observation is (K x (M + 1) x 2 counts):
  Brier score, reliability diagram and ROC curve follow from it exactly;
- ``"spread"``: the members' Gram matrix about the ensemble mean (M x M: pairwise squared differences), each
  member's sum of squared errors (M), the ensemble mean's sum of squared errors (1).

The CRPS of an ensemble ``x_1 .. x_M`` and an observation ``y`` is the CRPS of the ensemble's empirical
distribution, ``(1/M) sum_j |x_j - y| - 1/(2 M**2) sum_jk |x_j - x_k|``, the pair term taken through the sorted
members: ``sum_{j<k} |x_j - x_k| = sum_i (2 i - M + 1) x_(i)`` (``i`` from 0). It is Hersbach's (2000) formula.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["STATISTICS", "ensemble_frame_statistics", "statistic_sizes", "to_ensemble_fields"]

#: The statistics' names, in the order :func:`ensemble_frame_statistics` returns them.
STATISTICS = ("crps", "rank", "probability", "spread")
# Elements of the (frames, members, pixels) float64 tensors of one chunk: a few tens of MB at most.
_CPU_CHUNK_ELEMENTS = 2_000_000
_GPU_CHUNK_ELEMENTS = 200_000_000


def _tensor(array, name: str) -> torch.Tensor:
    if not isinstance(array, torch.Tensor):
        array = np.asarray(array)
        if array.dtype == object:
            raise TypeError(f"{name} must be a numeric array or tensor, got dtype object")
        array = torch.from_numpy(np.ascontiguousarray(array))
    if array.dtype == torch.bool or array.is_complex() or not array.is_floating_point():
        raise TypeError(
            f"{name} must hold real rain rates in mm/h (a floating dtype), got dtype {array.dtype}"
        )
    return array


def to_ensemble_fields(members, observed, valid=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked fields for ensemble scoring.

    Args:
        members: rain rate in mm/h, float (B, M, T, H, W) or (B, M, T, 1, H, W), numpy array or torch tensor.
        observed: float (B, T, H, W) or (B, T, 1, H, W), the same B, T, H, W.
        valid: None (every finite pixel is valid) or bool broadcastable to (B, T, H, W) (or (B, T, 1, H, W)).

    Returns:
        ``members`` (B, M, T, H, W) and ``observed`` (B, T, H, W) of one dtype (float64 if either is, else
        float32) on ``observed``'s device, and ``valid`` bool (B, T, H, W): the mask, a finite observation and
        every member finite.

    Raises:
        TypeError: non-floating fields or a non-bool ``valid``.
        ValueError: wrong numbers of dimensions, shapes that differ, a ``valid`` that does not broadcast.
    """
    members, observed = _tensor(members, "members"), _tensor(observed, "observed")
    if members.ndim == 6 and members.shape[3] == 1:
        members = members[:, :, :, 0]
    if observed.ndim == 5 and observed.shape[2] == 1:
        observed = observed[:, :, 0]
    if members.ndim != 5:
        raise ValueError(f"members must be (B, M, T, H, W), got shape {tuple(members.shape)}")
    if observed.ndim != 4:
        raise ValueError(f"observed must be (B, T, H, W), got shape {tuple(observed.shape)}")
    if members.shape[:1] + members.shape[2:] != observed.shape:
        raise ValueError(
            f"members (B, M, T, H, W) and observed (B, T, H, W) must share B, T, H, W, got "
            f"{tuple(members.shape)} and {tuple(observed.shape)}"
        )
    if members.shape[1] < 1:
        raise ValueError(f"members must hold at least one member (dim 1), got shape {tuple(members.shape)}")
    dtype = torch.float64 if torch.float64 in (members.dtype, observed.dtype) else torch.float32
    members = members.to(device=observed.device, dtype=dtype)
    observed = observed.to(dtype=dtype)
    known = torch.isfinite(observed) & torch.isfinite(members).all(1)
    if valid is not None:
        valid = torch.as_tensor(valid) if not isinstance(valid, torch.Tensor) else valid
        if valid.dtype != torch.bool:
            raise TypeError(f"valid must be a bool mask (True = valid pixel), got dtype {valid.dtype}")
        if valid.ndim == 5 and valid.shape[2] == 1:
            valid = valid[:, :, 0]
        try:
            known = known & torch.broadcast_to(valid.to(observed.device), observed.shape)
        except RuntimeError as error:
            raise ValueError(
                f"valid must broadcast to observed's shape {tuple(observed.shape)}, got {tuple(valid.shape)}"
            ) from error
    return members, observed, known


def statistic_sizes(num_members: int, num_thresholds: int) -> dict[str, tuple[int, ...]]:
    """The shape of each statistic of one frame, for ``num_members`` members and ``num_thresholds`` thresholds."""
    m = num_members
    return {
        "crps": (2,),
        "rank": (m + 1, m + 1),
        "probability": (num_thresholds, m + 1, 2),
        "spread": (m * m + m + 1,),
    }


def _crps_sums(x: torch.Tensor, y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Sum of the ensemble CRPS over valid pixels and their number: float64 (N, 2), from float64 members
    ``x`` (N, M, P) and observations ``y`` (N, P), zero at invalid pixels."""
    m = x.shape[1]
    absolute = (x - y[:, None]).abs().sum(1)
    weights = torch.arange(m, dtype=x.dtype, device=x.device) * 2.0 - (m - 1)
    pairs = torch.einsum("nmp,m->np", x.sort(1).values, weights)  # sum over pairs j < k of |x_j - x_k|
    crps = absolute / m - pairs / (m * m)
    return torch.stack([(crps * valid).sum(-1), valid.sum(-1).to(x.dtype)], -1)


def _rank_counts(members, observed, valid, rank_min: float | None) -> torch.Tensor:
    """Counts of (members below the observation, members equal to it) pairs per frame: float64 (N, M+1, M+1),
    compared in the fields' dtype; with ``rank_min``, values below it are one value (tied) and pixels where the
    observation and every member are below it are left out (pysteps' ``rankhist`` ``X_min``)."""
    frames, m = members.shape[:2]
    counted = valid
    if rank_min is not None:
        level = torch.tensor(rank_min, dtype=members.dtype, device=members.device)
        counted = valid & ((observed >= level) | (members >= level).any(1))
        low = torch.tensor(-math.inf, dtype=members.dtype, device=members.device)
        members = torch.where(members < level, low, members)
        observed = torch.where(observed < level, low, observed)
    below = (members < observed[:, None]).sum(1)
    equal = (members == observed[:, None]).sum(1)
    bins = (m + 1) * (m + 1)
    offsets = torch.arange(frames, device=members.device).view(-1, 1) * bins
    index = (offsets + below * (m + 1) + equal)[counted]
    counts = torch.bincount(index, minlength=frames * bins).to(torch.float64)
    return counts.view(frames, m + 1, m + 1)


def _probability_counts(members, observed, valid, thresholds: tuple[float, ...]) -> torch.Tensor:
    """Counts of (members at or above the threshold, observed event) pairs per frame and threshold: float64
    (N, K, M+1, 2), events ``value >= threshold`` in the fields' dtype."""
    frames, m = members.shape[:2]
    count = len(thresholds)
    levels = torch.tensor(thresholds, dtype=members.dtype, device=members.device).view(1, -1, 1)
    exceeding = (members[:, :, None] >= levels[:, None]).sum(1)  # (N, K, P)
    observed_event = (observed[:, None] >= levels).long()  # (N, K, P)
    bins = (m + 1) * 2
    offsets = torch.arange(frames * count, device=members.device).view(frames, count, 1) * bins
    index = (offsets + exceeding * 2 + observed_event)[valid[:, None].expand(-1, count, -1)]
    counts = torch.bincount(index, minlength=frames * count * bins).to(torch.float64)
    return counts.view(frames, count, m + 1, 2)


def _spread_sums(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The members' Gram matrix about the ensemble mean (M*M), each member's and the ensemble mean's sums of
    squared errors: float64 (N, M*M + M + 1), from float64 fields zero at invalid pixels."""
    mean = x.mean(1)
    centred = x - mean[:, None]
    gram = torch.bmm(centred, centred.transpose(1, 2)).flatten(1)  # pair j, k: G_jj + G_kk - 2 G_jk
    member_errors = (x - y[:, None]).square().sum(-1)
    mean_errors = (mean - y).square().sum(-1, keepdim=True)
    return torch.cat([gram, member_errors, mean_errors], -1)


def _chunk_statistics(members, observed, valid, thresholds, rank_min) -> dict[str, torch.Tensor]:
    """The statistics of (N, M, P) members, (N, P) observations and (N, P) valid pixels."""
    x = members.to(torch.float64).masked_fill(~valid[:, None], 0.0)
    y = observed.to(torch.float64).masked_fill(~valid, 0.0)
    return {
        "crps": _crps_sums(x, y, valid),
        "rank": _rank_counts(members, observed, valid, rank_min),
        "probability": _probability_counts(members, observed, valid, thresholds),
        "spread": _spread_sums(x, y),
    }


def ensemble_frame_statistics(
    members, observed, valid, thresholds: tuple[float, ...], rank_min: float | None
) -> dict[str, torch.Tensor]:
    """The sums behind every ensemble score, per frame, for fields checked by :func:`to_ensemble_fields`.

    Args:
        members: float (B, M, T, H, W) mm/h; observed: float (B, T, H, W), the same dtype and device.
        valid: bool (B, T, H, W), the pixels that count (finite everywhere).
        thresholds: K positive rain rates (mm/h) for the exceedance probabilities (may be empty).
        rank_min: the rank histogram's minimum intensity (pysteps' ``X_min``) or None.

    Returns:
        float64 tensors on the fields' device (on the CPU for MPS fields): ``"crps"`` (B, T, 2), ``"rank"``
        (B, T, M+1, M+1), ``"probability"`` (B, T, K, M+1, 2), ``"spread"`` (B, T, M*M + M + 1); see the module
        docstring.
    """
    batch, m, steps, height, width = members.shape
    if observed.device.type == "mps":  # no float64 there
        members, observed, valid = members.cpu(), observed.cpu(), valid.cpu()
    flat_members = members.transpose(1, 2).reshape(batch * steps, m, height * width)
    flat_observed, flat_valid = observed.reshape(-1, height * width), valid.reshape(-1, height * width)
    budget = _CPU_CHUNK_ELEMENTS if observed.device.type == "cpu" else _GPU_CHUNK_ELEMENTS
    chunk = max(1, budget // max(1, m * height * width * max(1, len(thresholds))))
    pieces = [
        _chunk_statistics(
            flat_members[start : start + chunk],
            flat_observed[start : start + chunk],
            flat_valid[start : start + chunk],
            thresholds,
            rank_min,
        )
        for start in range(0, batch * steps, chunk)
    ]
    sizes = statistic_sizes(m, len(thresholds))
    result = {}
    for name in STATISTICS:
        if pieces:
            joined = torch.cat([piece[name] for piece in pieces])
        else:
            joined = observed.new_zeros((0, *sizes[name]), dtype=torch.float64)
        result[name] = joined.reshape(batch, steps, *sizes[name])
    return result
