"""Verification of precipitation nowcasts, as weather services compute it.

Scores of rain-rate forecasts against observations, both in mm/h, (B, T, H, W) (B samples, T lead times), streamed
over batches in the design of pysteps' ``verification`` package: for each group of scores an ``*_init`` (empty
counts), ``*_accum`` (add a batch), ``*_merge`` (add two sets of counts, e.g. from parallel runs) and
``*_compute`` (scores from counts); :class:`NowcastVerifier` runs the three groups in one pass and gathers
across processes. The scores agree with pysteps' ``det_cat_fct`` and ``fss`` to rounding (tests check it).

Conventions:

- **Events** are ``value >= threshold`` (as pysteps' ``fss``; its ``det_cat_fct`` uses ``>``), compared in the
  fields' floating dtype (float32 unless a field is float64), thresholds in mm/h.
- **Pooling**: counts (and FSS sums, squared errors) are summed over samples and pixels for each lead time
  before a score is taken (SEVIR's convention); the ``"overall"`` scores pool every lead time. A score is never an
  average of per-frame scores.
- **No-data**: pixels where ``valid`` is False, or where either field is NaN or infinite, are left out of every
  count and sum: not an event, not a non-event, not an error.
- **Zero denominators** give NaN (nothing to score, e.g. CSI with no event forecast nor observed). pysteps agrees
  except for the frequency bias with no observed event, where its division gives ``inf``.

Scores, from hits H, false alarms F, misses M, correct negatives R (N = H + F + M + R), at each threshold:

- ``pod`` probability of detection H / (H + M); ``far`` false alarm ratio F / (H + F); ``csi`` critical
  success index (threat score) H / (H + M + F); ``bias`` frequency bias (H + F) / (H + M);
- ``hss`` Heidke skill score 2 (H R - F M) / ((H + M)(M + R) + (H + F)(F + R));
- ``ets`` equitable threat score (Gilbert skill score) (H - H_r) / (H + M + F - H_r), H_r = (H + M)(H + F) / N
  the hits of a random forecast, NaN when the observation has no event or no non-event (pysteps' form is NaN
  there too);
- ``csi_m`` the mean of ``csi`` over the thresholds where it is defined (NaN if none).

References: Jolliffe and Stephenson (2012), Forecast Verification, 2nd ed., Wiley; Hogan et al. (2010),
Weather and Forecasting 25, 710-726 (ETS, HSS); pysteps ``verification/detcatscores.py``.

FSS, the fractions skill score (Roberts and Lean 2008, Monthly Weather Review 136, 78-97) at a threshold and a
window of ``n x n`` pixels: ``S_f``, ``S_o`` are the fractions of events in the window at each position, then
``FSS = 1 - sum (S_f - S_o)**2 / (sum S_f**2 + sum S_o**2)`` with the sums over positions, frames and samples
(pysteps' ``fss_accum`` / ``fss_compute``). As in pysteps (``uniform_filter(size=n, mode="constant")``) each
pixel centres one window (for even ``n`` it spans ``i - n // 2 ... i - n // 2 + n - 1``) and the outside of
the field counts as no event. With no-data, a window's fractions are taken over the pixels that count in it
(valid pixels and the outside of the field), and windows centred on no-data pixels are left out; without no-data
this is pysteps' ``fss`` exactly.

Continuous scores: ``mse`` (mm/h)**2 and ``mae`` mm/h, over valid pixels.
"""

from __future__ import annotations

import math

import torch

from ..training.metrics import gather_function
from .verification_statistics import check_thresholds, check_windows, frame_statistics, to_fields

__all__ = [
    "CATEGORICAL_SCORES",
    "DEFAULT_THRESHOLDS",
    "DEFAULT_WINDOWS",
    "NowcastVerifier",
    "categorical_scores",
    "det_cat_accum",
    "det_cat_compute",
    "det_cat_init",
    "det_cat_merge",
    "det_cont_accum",
    "det_cont_compute",
    "det_cont_init",
    "det_cont_merge",
    "fractions_skill_score",
    "fss_accum",
    "fss_compute",
    "fss_init",
    "fss_merge",
]

DEFAULT_THRESHOLDS = (0.5, 1.0, 2.0, 5.0, 10.0)
DEFAULT_WINDOWS = (1, 4, 16)
CATEGORICAL_SCORES = ("csi", "pod", "far", "bias", "hss", "ets")
_STATISTIC = {"det_cat": "contingency", "fss": "fss", "det_cont": "errors"}


def _label(threshold: float) -> str:
    return f"{threshold:g}"


def _divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, NaN where the denominator is 0."""
    return torch.where(denominator != 0, numerator / denominator.where(denominator != 0, 1.0), math.nan)


def categorical_scores(hits, false_alarms, misses, correct_negatives) -> dict[str, torch.Tensor]:
    """Every score of :data:`CATEGORICAL_SCORES` from contingency counts (formulas in the module docstring).

    Args:
        hits, false_alarms, misses, correct_negatives: float64 tensors of one shape (counts, any shape).

    Returns:
        ``{"csi", "pod", "far", "bias", "hss", "ets"}`` -> float64 tensors of that shape, NaN where undefined.
    """
    h, f, m, r = hits, false_alarms, misses, correct_negatives
    total = h + f + m + r
    random_hits = _divide((h + m) * (h + f), total)
    ets = _divide(h - random_hits, h + m + f - random_hits)
    base_rate_defined = (h + m > 0) & (f + r > 0)  # some observed events and some observed non-events
    return {
        "csi": _divide(h, h + m + f),
        "pod": _divide(h, h + m),
        "far": _divide(f, h + f),
        "bias": _divide(h + f, h + m),
        "hss": _divide(2 * (h * r - f * m), (h + m) * (m + r) + (h + f) * (f + r)),
        "ets": torch.where(base_rate_defined, ets, math.nan),
    }


def fractions_skill_score(sum_forecast_squared, sum_product, sum_observed_squared) -> torch.Tensor:
    """FSS from pooled sums, as pysteps' ``fss_compute``: ``1 - (A - 2 B + C) / (A + C)``, NaN if A + C = 0.

    Args:
        sum_forecast_squared: A = sum of S_f**2; sum_product: B = sum of S_f S_o; sum_observed_squared: C =
            sum of S_o**2 (float64 tensors of one shape).
    """
    numerator = sum_forecast_squared - 2.0 * sum_product + sum_observed_squared
    return 1.0 - _divide(numerator, sum_forecast_squared + sum_observed_squared)


def _init(method: str, thresholds=(), windows=()) -> dict:
    thresholds, windows = check_thresholds(thresholds), check_windows(windows)
    if method != "det_cont" and not thresholds:
        raise ValueError(f"thresholds must hold at least one rain rate (mm/h), got {thresholds!r}")
    if method == "fss" and not windows:
        raise ValueError(f"windows must hold at least one window size (pixels), got {windows!r}")
    return {"method": method, "thresholds": thresholds, "windows": windows, "counts": None, "num_samples": 0}


def _add(state: dict, counts: torch.Tensor, num_samples: int) -> None:
    """Add per-lead-time counts (T, ...) to ``state`` (moved to the state's device)."""
    if state["counts"] is None:
        state["counts"] = counts.clone()
    else:
        if counts.shape[0] != state["counts"].shape[0]:
            raise ValueError(
                f"every batch must have the same number of lead times T: got {counts.shape[0]} after "
                f"{state['counts'].shape[0]}"
            )
        state["counts"] += counts.to(state["counts"].device)
    state["num_samples"] += num_samples


def _accum(state: dict, forecast, observed, valid) -> None:
    forecast, observed, valid = to_fields(forecast, observed, valid)
    windows = state["windows"] if state["method"] == "fss" else ()
    thresholds = state["thresholds"] if state["method"] != "det_cont" else ()
    statistics = frame_statistics(forecast, observed, valid, thresholds, windows)
    if forecast.shape[0]:
        _add(state, statistics[_STATISTIC[state["method"]]].sum(0), forecast.shape[0])


def _merge(state_1: dict, state_2: dict) -> dict:
    for key in ("method", "thresholds", "windows"):
        if state_1[key] != state_2[key]:
            raise ValueError(f"cannot merge: the {key} differ, {state_1[key]!r} != {state_2[key]!r}")
    merged = dict(state_1, counts=None, num_samples=0)
    for state in (state_1, state_2):
        if state["counts"] is not None:
            _add(merged, state["counts"], state["num_samples"])
    return merged


def _scores(state: dict, counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scores from counts with lead times first: (T, ...) -> ``{name: (T,)}``."""
    method, thresholds = state["method"], state["thresholds"]
    if method == "det_cont":
        return {"mse": _divide(counts[:, 0], counts[:, 2]), "mae": _divide(counts[:, 1], counts[:, 2])}
    if method == "fss":
        values = fractions_skill_score(*counts.unbind(-1))  # (T, K, W)
        return {
            f"fss@{_label(threshold)}/{window}": values[:, k, w]
            for k, threshold in enumerate(thresholds)
            for w, window in enumerate(state["windows"])
        }
    scores = categorical_scores(*counts.unbind(-1))  # each (T, K)
    result = {
        f"{name}@{_label(threshold)}": scores[name][:, k]
        for name in CATEGORICAL_SCORES
        for k, threshold in enumerate(thresholds)
    }
    result["csi_m"] = scores["csi"].nanmean(-1)  # NaN where no threshold has a CSI
    return result


def _compute(state: dict) -> dict:
    if state["counts"] is None:
        raise ValueError(
            f"{state['method']}_compute needs at least one {state['method']}_accum with a sample"
        )
    per_lead_time = _scores(state, state["counts"])
    overall = _scores(state, state["counts"].sum(0, keepdim=True))
    return {
        "overall": {name: float(value[0]) for name, value in overall.items()},
        "per_lead_time": {name: value.tolist() for name, value in per_lead_time.items()},
        "num_samples": state["num_samples"],
    }


def det_cat_init(thresholds=DEFAULT_THRESHOLDS) -> dict:
    """Empty contingency tables at ``thresholds`` (mm/h, positive), per lead time (pysteps' det_cat_fct_init)."""
    return _init("det_cat", thresholds)


def det_cat_accum(table: dict, forecast, observed, valid=None) -> None:
    """Add a batch's hits, false alarms, misses and correct negatives to ``table`` (float64 (T, K, 4)).

    Args:
        table: from :func:`det_cat_init`.
        forecast: rain rate in mm/h, float (B, T, H, W) (or (B, T, 1, H, W)), numpy array or torch tensor.
        observed: the observed rain rate, the same shape.
        valid: optional bool mask broadcastable to (B, T, H, W); False (and NaN / inf in a field) is no-data.
    """
    _accum(table, forecast, observed, valid)


def det_cat_merge(table_1: dict, table_2: dict) -> dict:
    """A new table with the counts of both (same thresholds and lead times), e.g. from two processes."""
    return _merge(table_1, table_2)


def det_cat_compute(table: dict) -> dict:
    """Categorical scores: ``{"overall": {name: float}, "per_lead_time": {name: [T floats]}, "num_samples"}``,
    names ``csi@1``, ``pod@1``, ``far@1``, ``bias@1``, ``hss@1``, ``ets@1`` (per threshold, formatted with
    ``:g``) and ``csi_m``. Formulas and NaN cases: module docstring."""
    return _compute(table)


def fss_init(thresholds=DEFAULT_THRESHOLDS, windows=DEFAULT_WINDOWS) -> dict:
    """Empty FSS sums at ``thresholds`` (mm/h) x ``windows`` (pixels), per lead time (pysteps' fss_init)."""
    return _init("fss", thresholds, windows)


def fss_accum(fss: dict, forecast, observed, valid=None) -> None:
    """Add a batch's sums of S_f**2, S_f S_o, S_o**2 to ``fss`` (float64 (T, K, W, 3); pysteps' fss_accum).

    Args:
        fss: from :func:`fss_init`.
        forecast, observed, valid: as in :func:`det_cat_accum`.
    """
    _accum(fss, forecast, observed, valid)


def fss_merge(fss_1: dict, fss_2: dict) -> dict:
    """A new FSS object with the sums of both (same thresholds, windows and lead times)."""
    return _merge(fss_1, fss_2)


def fss_compute(fss: dict) -> dict:
    """FSS per threshold and window, named ``fss@<threshold>/<window>`` (e.g. ``fss@1/16``), overall and per
    lead time, laid out as in :func:`det_cat_compute`."""
    return _compute(fss)


def det_cont_init() -> dict:
    """Empty sums of squared and absolute errors, per lead time (MSE and MAE of pysteps' det_cont_fct)."""
    return _init("det_cont")


def det_cont_accum(errors: dict, forecast, observed, valid=None) -> None:
    """Add a batch's sums of squared errors, absolute errors and valid pixels to ``errors`` (float64 (T, 3)).

    Args:
        errors: from :func:`det_cont_init`.
        forecast, observed, valid: as in :func:`det_cat_accum`.
    """
    _accum(errors, forecast, observed, valid)


def det_cont_merge(errors_1: dict, errors_2: dict) -> dict:
    """A new object with the sums of both."""
    return _merge(errors_1, errors_2)


def det_cont_compute(errors: dict) -> dict:
    """``mse`` ((mm/h)**2) and ``mae`` (mm/h) over valid pixels, overall and per lead time."""
    return _compute(errors)


class NowcastVerifier:
    """Every score of this module, per lead time and overall, streamed over batches and processes.

    One pass over each batch fills the three groups of counts (:func:`det_cat_init`, :func:`fss_init`,
    :func:`det_cont_init`), kept as float64 torch tensors of a few numbers per lead time on the batches' device,
    so a test set of any size is scored in constant memory. In distributed evaluation each process computes its
    samples' per-frame counts and they are gathered (a (B, T, S) tensor per batch, not the frames), so every
    process holds the same totals.

    Args:
        thresholds: rain-rate thresholds in mm/h, positive (events are ``value >= threshold``).
        fss_windows: FSS window sizes in pixels, positive integers (1 is the pixel scale).
        gather: None (one process); an ``accelerate.Accelerator`` (its ``gather_for_metrics`` also drops the
            samples duplicated to pad the last batch); or a callable taking a float tensor (B, T, S) and
            returning the concatenation over processes. Every process must call :meth:`update` as often.

    Example:
        ```python
        >>> verifier = NowcastVerifier(thresholds=(0.5, 1, 2, 5, 10), fss_windows=(1, 4, 16))
        >>> for batch in batches:  # rain rates in mm/h, (B, T, H, W)
        ...     verifier.update(forecast_mm_h, batch_observed_mm_h, valid=batch_valid)
        >>> scores = verifier.compute()
        >>> scores["overall"]["csi@1"], scores["per_lead_time"]["fss@1/16"]
        ```
    """

    def __init__(self, thresholds=DEFAULT_THRESHOLDS, fss_windows=DEFAULT_WINDOWS, *, gather=None):
        self.thresholds = check_thresholds(thresholds)
        self.fss_windows = check_windows(fss_windows, name="fss_windows")
        self._gather, self._device = gather_function(gather)
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen."""
        self.states = {"det_cont": det_cont_init()}
        if self.thresholds:
            self.states["det_cat"] = det_cat_init(self.thresholds)
            if self.fss_windows:
                self.states["fss"] = fss_init(self.thresholds, self.fss_windows)

    @property
    def num_samples(self) -> int:
        """Samples accumulated so far (over all processes when gathering)."""
        return self.states["det_cont"]["num_samples"]

    def __repr__(self) -> str:
        return (
            f"NowcastVerifier(thresholds={self.thresholds}, fss_windows={self.fss_windows}, "
            f"num_samples={self.num_samples})"
        )

    def update(self, forecast, observed, valid=None) -> None:
        """Add a batch.

        Args:
            forecast: rain rate in mm/h, float (B, T, H, W) (or (B, T, 1, H, W)), numpy array or torch tensor.
            observed: the observed rain rate, the same shape.
            valid: optional bool mask broadcastable to (B, T, H, W); False (and NaN / inf in a field) is no-data.
        """
        forecast, observed, valid = to_fields(forecast, observed, valid)
        windows = self.fss_windows if "fss" in self.states else ()
        statistics = frame_statistics(forecast, observed, valid, self.thresholds, windows)
        parts = {method: statistics[_STATISTIC[method]] for method in self.states}
        if self._gather is not None:
            batch, steps = observed.shape[:2]
            shapes = {method: part.shape[2:] for method, part in parts.items()}
            sizes = [math.prod(shape) for shape in shapes.values()]
            flat = torch.cat(
                [part.reshape(batch, steps, size) for part, size in zip(parts.values(), sizes)], -1
            )
            device = self._device if self._device is not None else flat.device
            dtype = torch.float32 if device.type == "mps" else torch.float64
            flat = self._gather(flat.to(device=device, dtype=dtype))
            flat = flat.to(device="cpu" if flat.device.type == "mps" else flat.device, dtype=torch.float64)
            pieces = flat.split(sizes, dim=-1)
            parts = {
                method: piece.reshape(*piece.shape[:2], *shapes[method])
                for (method, piece) in zip(shapes, pieces)
            }
        for method, part in parts.items():
            if part.shape[0]:
                _add(self.states[method], part.sum(0), part.shape[0])

    def merge(self, other: NowcastVerifier) -> NowcastVerifier:
        """Add the counts of ``other`` (same thresholds, windows and lead times) to this one; returns self."""
        if not isinstance(other, NowcastVerifier):
            raise TypeError(f"other must be a NowcastVerifier, got {type(other).__name__}")
        if (other.thresholds, other.fss_windows) != (self.thresholds, self.fss_windows):
            raise ValueError(
                f"cannot merge verifiers with different thresholds / fss_windows: {self.thresholds}, "
                f"{self.fss_windows} and {other.thresholds}, {other.fss_windows}"
            )
        self.states = {method: _merge(state, other.states[method]) for method, state in self.states.items()}
        return self

    def compute(self) -> dict:
        """The scores so far.

        Returns:
            ``{"overall": {name: float}, "per_lead_time": {name: [T floats]}, "num_samples": int}`` with the
            names of :func:`det_cat_compute` (``csi@1``, ..., ``csi_m``), :func:`fss_compute` (``fss@1/16``)
            and :func:`det_cont_compute` (``mse``, ``mae``).

        Raises:
            ValueError: no sample was added.
        """
        if self.num_samples == 0:
            raise ValueError("NowcastVerifier.compute() needs at least one update() with a non-empty batch")
        result = {"overall": {}, "per_lead_time": {}, "num_samples": self.num_samples}
        for method in ("det_cat", "fss", "det_cont"):
            if method in self.states:
                scores = _compute(self.states[method])
                result["overall"].update(scores["overall"])
                result["per_lead_time"].update(scores["per_lead_time"])
        return result
