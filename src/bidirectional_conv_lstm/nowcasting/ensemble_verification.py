"""Verification of ensemble (probabilistic) precipitation nowcasts, streamed over batches and processes.

An ensemble of M members ``(B, M, T, H, W)`` in mm/h is scored against observations ``(B, T, H, W)`` per lead
time and pooled over every lead time (``"overall"``), on valid pixels only (the mask is True, the observation and
every member finite), from sums that add up batch by batch (:mod:`.ensemble_statistics`), as
:class:`~.verification.NowcastVerifier` scores single forecasts. Each score is pysteps' (``verification.probscores``
and ``ensscores``) applied to all the pooled pixels at once; the tests check every one against pysteps to 1e-6:

- ``crps``: the continuous ranked probability score of the members' empirical distribution, mm/h, the mean over
  pixels (pysteps' ``CRPS``). pysteps 1.21 drops one interval where the observation equals a member exactly
  (members 0 and 1, observation 0: pysteps gives 0 instead of 0.25); this module does not.
- ``rank_histogram`` (curve, M + 1 bins, normalized): the observation's rank among the members (pysteps'
  ``rankhist`` with ``X_min = rank_min``: pixels where the observation and every member are below ``rank_min`` are
  left out, values below it are tied). A tie is split evenly over the ranks it spans, the expectation of pysteps'
  random choice.
- At each threshold (``value >= threshold`` is an event, probabilities ``j / M`` of the members), pysteps'
  ``reldiag`` (``reliability_forecast@1``, ``reliability_observed@1``, ``reliability_count@1``: ``reldiag_bins``
  bins, NaN where fewer than ``reldiag_min_count`` pixels), ``ROC_curve`` (``roc_pofd@1``, ``roc_pod@1`` at
  ``roc_thresholds`` probability thresholds, area ``roc_auc@1``), the Brier score ``brier@1`` (the mean of
  ``(p - o)**2``) and the Brier skill score ``bss@1 = 1 - brier / (o_bar (1 - o_bar))`` against the sample
  climatology ``o_bar`` (NaN where every pixel or none is an event).
- ``spread``: pysteps' ``ensemble_spread`` with RMSE (the mean over member pairs of their RMSE); ``skill``:
  ``ensemble_skill`` with RMSE (the mean over members of their RMSE against the observation); ``spread_skill``
  = spread / skill, about 1 for a calibrated ensemble. Also ``ensemble_mean_rmse`` (the RMSE of the ensemble mean),
  ``ensemble_std`` (the root mean unbiased ensemble variance) and ``spread_error`` = ``sqrt((M + 1) / M)``
  ensemble_std / ensemble_mean_rmse (Fortin et al. 2014; about 1 for a calibrated ensemble). Spread scores are NaN
  for one member.

References: Hersbach (2000), Weather and Forecasting 15, 559-570 (CRPS); Hamill (2001), Monthly Weather Review 129,
550-560 (rank histograms); Bröcker and Smith (2007), Weather and Forecasting 22, 651-661 (reliability); Fortin et
al. (2014), Journal of Hydrometeorology 15, 1708-1713 (spread-error ratio); pysteps ``verification``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..models.convlstm.argument_checks import check_int
from ..models.convlstm.ensemble_convlstm import member_fractions
from ..training.metrics import gather_function
from .ensemble_statistics import (
    STATISTICS,
    ensemble_frame_statistics,
    statistic_sizes,
    to_ensemble_fields,
)
from .verification_statistics import check_thresholds

__all__ = [
    "DEFAULT_PROBABILITY_THRESHOLDS",
    "EnsembleVerifier",
    "ensemble_scores",
    "exceedance_probability",
]

DEFAULT_PROBABILITY_THRESHOLDS = (0.5, 1.0, 2.0, 5.0)


def exceedance_probability(members, thresholds=DEFAULT_PROBABILITY_THRESHOLDS) -> torch.Tensor:
    """``P(rain >= threshold)`` at each pixel: the fraction of members at or above each threshold.

    Args:
        members: rain rate in mm/h, float (..., M, T, H, W) (e.g. (B, M, T, H, W)), numpy array or torch tensor.
        thresholds: K positive rain rates in mm/h.

    Returns:
        A torch tensor (..., K, T, H, W) in [0, 1] of ``members``' floating dtype (float32 for other dtypes), on its
        device; NaN where a member is NaN or infinite. At each pixel it does not increase with the threshold.
    """
    thresholds = check_thresholds(thresholds)
    if not thresholds:
        raise ValueError(f"thresholds must hold at least one rain rate (mm/h), got {thresholds!r}")
    members = torch.as_tensor(members) if not isinstance(members, torch.Tensor) else members
    if members.dtype == torch.bool or members.is_complex() or members.ndim < 4:
        raise ValueError(
            f"members must be real rain rates (..., M, T, H, W), got dtype {members.dtype}, shape "
            f"{tuple(members.shape)}"
        )
    probability = member_fractions(members, thresholds)  # (..., K, T, H, W), members' floating dtype
    finite = torch.isfinite(members).all(-4, keepdim=True)
    return probability if bool(finite.all()) else torch.where(finite, probability, math.nan)


def _divide(numerator, denominator):
    """numerator / denominator (numpy float64), NaN where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator != 0, numerator / np.where(denominator != 0, denominator, 1.0), math.nan)


def _rank_histogram(pairs: np.ndarray) -> np.ndarray:
    """The normalized rank histogram (M + 1) from (L, E) counts (M+1, M+1): a pair spreads its count evenly over
    the ranks L ... L + E."""
    size = pairs.shape[0]
    below, equal = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    spread = np.zeros(size + 1)
    share = pairs / (equal + 1.0)
    np.add.at(spread, below, share)
    np.add.at(spread, np.minimum(below + equal + 1, size), -share)
    histogram = np.cumsum(spread)[:size]
    return histogram / histogram.sum() if histogram.sum() > 0 else np.full(size, math.nan)


def _probability_scores(counts: np.ndarray, bins: int, min_count: int, roc_points: int) -> dict:
    """Brier, reliability diagram and ROC from (j, o) counts (M+1, 2), as pysteps computes them from ``j / M``."""
    m = counts.shape[0] - 1
    probability = np.arange(m + 1) / m  # pysteps' excprob: the mean of the members' events
    total, events = counts.sum(), counts[:, 1].sum()
    brier = _divide((counts[:, 0] * probability**2 + counts[:, 1] * (1.0 - probability) ** 2).sum(), total)
    base_rate = _divide(events, total)
    scores = {"brier": float(brier), "bss": float(1.0 - _divide(brier, base_rate * (1.0 - base_rate)))}
    edges = np.linspace(-1e-6, 1 + 1e-6, int(bins + 1))  # pysteps' reldiag_init
    which = np.digitize(probability, edges, right=True) - 1
    size = np.bincount(which, weights=counts.sum(1), minlength=bins)[:bins]
    observed = np.bincount(which, weights=counts[:, 1], minlength=bins)[:bins]
    forecast = np.bincount(which, weights=counts.sum(1) * probability, minlength=bins)[:bins]
    enough = size >= min_count
    scores["reliability_forecast"] = np.where(enough, _divide(forecast, size), math.nan)
    scores["reliability_observed"] = np.where(enough, _divide(observed, size), math.nan)
    scores["reliability_count"] = size
    above = probability[None, :] >= np.linspace(0.0, 1.0, int(roc_points))[:, None]  # pysteps' ROC_curve
    pod = _divide(above @ counts[:, 1], events)
    pofd = _divide(above @ counts[:, 0], total - events)
    area = (1.0 - pofd[0]) * (1.0 + pod[0]) / 2.0
    area += ((pofd[:-1] - pofd[1:]) * (pod[1:] + pod[:-1]) / 2.0).sum() + pofd[-1] * pod[-1] / 2.0
    scores.update(roc_pofd=pofd, roc_pod=pod, roc_auc=float(area))
    return scores


def _spread_scores(sums: np.ndarray, m: int, count: float) -> dict[str, float]:
    """Spread / skill scores from the Gram matrix, members' and mean's squared errors, over ``count`` pixels."""
    gram = sums[: m * m].reshape(m, m)
    member_errors, mean_errors = sums[m * m : m * m + m], sums[-1]
    skill = float(np.mean(np.sqrt(_divide(member_errors, count))))
    rmse = float(np.sqrt(_divide(mean_errors, count)))
    if m < 2:
        spread = std = math.nan
    else:
        diagonal = np.diag(gram)
        pairs = diagonal[:, None] + diagonal[None, :] - 2.0 * gram
        upper = pairs[np.triu_indices(m, 1)]
        spread = float(np.mean(np.sqrt(np.maximum(_divide(upper, count), 0.0))))
        std = float(np.sqrt(_divide(np.trace(gram), (m - 1) * count)))
    return {
        "spread": spread,
        "skill": skill,
        "spread_skill": float(_divide(spread, skill)),
        "ensemble_mean_rmse": rmse,
        "ensemble_std": std,
        "spread_error": float(math.sqrt((m + 1) / m) * _divide(std, rmse)),
    }


def ensemble_scores(
    sums: dict[str, np.ndarray],
    thresholds: tuple[float, ...],
    *,
    reldiag_bins: int = 10,
    reldiag_min_count: int = 10,
    roc_thresholds: int = 10,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every ensemble score from pooled statistics (one lead time, or all of them summed).

    Args:
        sums: float64 numpy arrays shaped as :func:`~.ensemble_statistics.statistic_sizes` says (summed over
            frames): ``"crps"`` (2,), ``"rank"`` (M+1, M+1), ``"probability"`` (K, M+1, 2), ``"spread"``.
        thresholds: the K thresholds (mm/h) of ``sums["probability"]``.
        reldiag_bins, reldiag_min_count: pysteps' ``reldiag`` ``n_bins`` and ``min_count``.
        roc_thresholds: pysteps' ``ROC_curve`` ``n_prob_thrs``.

    Returns:
        ``(scalars, curves)``: ``{"crps", "brier@<thr>", "bss@<thr>", "roc_auc@<thr>", "spread", "skill",
        "spread_skill", "ensemble_mean_rmse", "ensemble_std", "spread_error"}`` -> float (NaN where undefined), and
        ``{"rank_histogram", "reliability_forecast@<thr>", "reliability_observed@<thr>", "reliability_count@<thr>",
        "roc_pofd@<thr>", "roc_pod@<thr>"}`` -> float64 arrays. Thresholds are formatted with ``:g``.
    """
    m = sums["rank"].shape[0] - 1
    count = float(sums["crps"][1])
    scalars = {"crps": float(_divide(sums["crps"][0], count))}
    curves = {"rank_histogram": _rank_histogram(sums["rank"])}
    for k, threshold in enumerate(thresholds):
        label = f"{threshold:g}"
        scores = _probability_scores(sums["probability"][k], reldiag_bins, reldiag_min_count, roc_thresholds)
        for name, value in scores.items():
            if isinstance(value, float):
                scalars[f"{name}@{label}"] = value
            else:
                curves[f"{name}@{label}"] = np.asarray(value, dtype=np.float64)
    scalars.update(_spread_scores(sums["spread"], m, count))
    return scalars, curves


class EnsembleVerifier:
    """Every ensemble score of this module, per lead time and overall, streamed over batches and processes.

    Each batch adds a few sums per lead time (:mod:`.ensemble_statistics`: about (M + 1)**2 + M**2 + 2 K (M + 1)
    float64 numbers), kept on the batches' device, so a test set of any size is scored in constant memory. In
    distributed evaluation each process computes its samples' sums and they are gathered per sample, so every
    process holds the same totals. Every batch must have the same number of members M and lead times T.

    Args:
        thresholds: rain rates in mm/h (positive) of the exceedance probabilities (Brier, reliability, ROC).
        rank_min: pysteps' ``rankhist`` ``X_min`` in mm/h: pixels where the observation and every member are below
            it are left out of the rank histogram, values below it tie; None counts every pixel.
        reldiag_bins, reldiag_min_count: the reliability diagram's bins and the fewest pixels a bin needs (pysteps'
            ``n_bins`` 10 and ``min_count`` 10); roc_thresholds: the ROC curve's probability thresholds (10).
        gather: None (one process); an ``accelerate.Accelerator`` (its ``gather_for_metrics`` also drops the
            samples duplicated to pad the last batch); or a callable taking a float tensor (B, T, S) and returning
            the concatenation over processes. Every process must call :meth:`update` as often.

    Example:
        ```python
        >>> verifier = EnsembleVerifier(thresholds=(0.5, 1, 2, 5), gather=accelerator)
        >>> for batch in batches:  # members (B, M, T, H, W), observed (B, T, H, W), mm/h
        ...     verifier.update(members, observed, valid=valid)
        >>> scores = verifier.compute()
        >>> scores["overall"]["crps"], scores["per_lead_time"]["bss@1"], scores["curves"]["overall"]["rank_histogram"]
        ```
    """

    def __init__(
        self,
        thresholds=DEFAULT_PROBABILITY_THRESHOLDS,
        *,
        rank_min: float | None = 0.1,
        reldiag_bins: int = 10,
        reldiag_min_count: int = 10,
        roc_thresholds: int = 10,
        gather=None,
    ):
        self.thresholds = check_thresholds(thresholds)
        if rank_min is not None and (
            isinstance(rank_min, bool)
            or not isinstance(rank_min, (int, float))
            or not math.isfinite(rank_min)
        ):
            raise ValueError(f"rank_min must be a finite rain rate in mm/h or None, got {rank_min!r}")
        self.rank_min = None if rank_min is None else float(rank_min)
        self.options = {
            "reldiag_bins": check_int("reldiag_bins", reldiag_bins),
            "reldiag_min_count": check_int("reldiag_min_count", reldiag_min_count, minimum=0),
            "roc_thresholds": check_int("roc_thresholds", roc_thresholds, minimum=2),
        }
        self._gather, self._device = gather_function(gather)
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen."""
        self.sums: dict[str, torch.Tensor] | None = None
        self.num_samples = 0
        self.num_members: int | None = None

    def __repr__(self) -> str:
        return (
            f"EnsembleVerifier(thresholds={self.thresholds}, rank_min={self.rank_min}, "
            f"num_members={self.num_members}, num_samples={self.num_samples})"
        )

    def update(self, members, observed, valid=None) -> None:
        """Add a batch.

        Args:
            members: rain rate in mm/h, float (B, M, T, H, W) (or (B, M, T, 1, H, W)), numpy array or torch tensor.
            observed: the observed rain rate, float (B, T, H, W) (or (B, T, 1, H, W)).
            valid: optional bool mask broadcastable to (B, T, H, W); False (and NaN / inf in the observation or any
                member) is no-data.

        Raises:
            ValueError: shapes that do not fit, or a member count or lead-time count that differs from the
                earlier batches'.
        """
        members, observed, valid = to_ensemble_fields(members, observed, valid)
        batch, m, steps = members.shape[:3]
        if self.num_members is not None and m != self.num_members:
            raise ValueError(
                f"members must keep one ensemble size: got M = {m} after M = {self.num_members} (dim 1)"
            )
        statistics = ensemble_frame_statistics(members, observed, valid, self.thresholds, self.rank_min)
        if self._gather is not None:
            statistics = self._gathered(statistics, m, batch, steps)
        if statistics["crps"].shape[0] == 0:
            return
        totals = {name: value.sum(0) for name, value in statistics.items()}
        if self.sums is None:
            self.sums, self.num_members = totals, m
        elif totals["crps"].shape[0] != self.sums["crps"].shape[0]:
            raise ValueError(
                f"every batch must have the same number of lead times T: got {totals['crps'].shape[0]} after "
                f"{self.sums['crps'].shape[0]}"
            )
        else:
            self.sums = {
                name: self.sums[name] + totals[name].to(self.sums[name].device) for name in STATISTICS
            }
        self.num_samples += statistics["crps"].shape[0]

    def _gathered(self, statistics: dict, m: int, batch: int, steps: int) -> dict[str, torch.Tensor]:
        """The statistics of every process's samples: flattened to (B, T, S), gathered, split again."""
        shapes = statistic_sizes(m, len(self.thresholds))
        sizes = [math.prod(shapes[name]) for name in STATISTICS]
        flat = torch.cat([statistics[name].reshape(batch, steps, -1) for name in STATISTICS], -1)
        device = self._device if self._device is not None else flat.device
        dtype = torch.float32 if device.type == "mps" else torch.float64
        flat = self._gather(flat.to(device=device, dtype=dtype))
        flat = flat.to(device="cpu" if flat.device.type == "mps" else flat.device, dtype=torch.float64)
        pieces = flat.split(sizes, dim=-1)
        return {
            name: piece.reshape(*piece.shape[:2], *shapes[name]) for name, piece in zip(STATISTICS, pieces)
        }

    def merge(self, other: EnsembleVerifier) -> EnsembleVerifier:
        """Add the sums of ``other`` (same thresholds, options, members and lead times) to this one; returns self."""
        if not isinstance(other, EnsembleVerifier):
            raise TypeError(f"other must be an EnsembleVerifier, got {type(other).__name__}")
        mine = (self.thresholds, self.rank_min, self.options)
        theirs = (other.thresholds, other.rank_min, other.options)
        if mine != theirs:
            raise ValueError(f"cannot merge verifiers with different settings: {mine} and {theirs}")
        if other.sums is None:
            return self
        if self.sums is None:
            self.sums = {name: value.clone() for name, value in other.sums.items()}
            self.num_members, self.num_samples = other.num_members, other.num_samples
            return self
        if (other.num_members, other.sums["crps"].shape[0]) != (self.num_members, self.sums["crps"].shape[0]):
            raise ValueError(
                f"cannot merge verifiers of M = {self.num_members} / {other.num_members} members and T = "
                f"{self.sums['crps'].shape[0]} / {other.sums['crps'].shape[0]} lead times"
            )
        self.sums = {
            name: self.sums[name] + other.sums[name].to(self.sums[name].device) for name in STATISTICS
        }
        self.num_samples += other.num_samples
        return self

    def compute(self) -> dict:
        """The scores so far.

        Returns:
            ``{"overall": {name: float}, "per_lead_time": {name: [T floats]}, "curves": {"overall": {name:
            [floats]}, "per_lead_time": {name: [T lists]}}, "num_samples": int, "num_members": int}``, the names
            of :func:`ensemble_scores` (``crps``, ``brier@1``, ``bss@1``, ``roc_auc@1``, ``spread_skill``...;
            curves ``rank_histogram``, ``reliability_forecast@1``, ``roc_pod@1``...).

        Raises:
            ValueError: no sample was added.
        """
        if self.sums is None:
            raise ValueError("EnsembleVerifier.compute() needs at least one update() with a non-empty batch")
        sums = {name: value.cpu().numpy() for name, value in self.sums.items()}
        steps = sums["crps"].shape[0]
        overall = ensemble_scores({k: v.sum(0) for k, v in sums.items()}, self.thresholds, **self.options)
        lead_times = [
            ensemble_scores({k: v[t] for k, v in sums.items()}, self.thresholds, **self.options)
            for t in range(steps)
        ]
        return {
            "overall": overall[0],
            "per_lead_time": {name: [scores[0][name] for scores in lead_times] for name in overall[0]},
            "curves": {
                "overall": {name: value.tolist() for name, value in overall[1].items()},
                "per_lead_time": {
                    name: [scores[1][name].tolist() for scores in lead_times] for name in overall[1]
                },
            },
            "num_samples": self.num_samples,
            "num_members": self.num_members,
        }
