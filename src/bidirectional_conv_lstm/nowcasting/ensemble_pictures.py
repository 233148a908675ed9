"""Pictures of ensemble (probabilistic) nowcasts: reliability diagrams, rank histograms, exceedance maps, members.

The score pictures read the results of :func:`bidirectional_conv_lstm.nowcasting.evaluation.evaluate_nowcasts`
(an ensemble method's ``"probabilistic"`` entry, the output of
:meth:`~bidirectional_conv_lstm.nowcasting.ensemble_verification.EnsembleVerifier.compute`):

- :func:`plot_reliability_diagram`: forecast probability against observed frequency at one threshold, one line
  per ensemble, the diagonal of perfect reliability, and below it how many pixels fell in each probability bin;
- :func:`plot_rank_histograms`: the rank histogram of each ensemble, the flat line of a calibrated one.

The map pictures take one sample's fields: :func:`save_exceedance_maps` shows ``P(rain >= threshold)`` (e.g.
:func:`~bidirectional_conv_lstm.nowcasting.ensemble_verification.exceedance_probability`) at a few lead times
beside the observed rain, in a 0-1 colour scale with the observed exceedance outlined;
:func:`save_members_strip` is :func:`~.pictures.radar_strip` of a few members and their mean. Figures use
matplotlib's Agg backend and the rain-rate colours of :mod:`.pictures`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .ensemble_verification import DEFAULT_PROBABILITY_THRESHOLDS, exceedance_probability
from .pictures import RAIN_RATE_LEVELS, radar_strip, rain_rate_colormap
from .tables import rank_histogram_deviation
from .verification_statistics import check_thresholds

__all__ = [
    "plot_rank_histograms",
    "plot_reliability_diagram",
    "save_ensemble_pictures",
    "save_exceedance_maps",
    "save_members_strip",
]

PROBABILITY_COLORMAP = "viridis"  # perceptually uniform; 0 and 1 far apart for readers with colour blindness


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    _pyplot().close(figure)
    return path


def _ensembles(results_by_method: Mapping) -> dict[str, Mapping]:
    """The entries with ``"probabilistic"`` of ``{name: method results}`` (or of a whole results dict)."""
    if not isinstance(results_by_method, Mapping):
        raise TypeError(f"results_by_method must be a mapping of name -> results, got {results_by_method!r}")
    methods = results_by_method.get("methods", results_by_method)
    ensembles = {
        name: scores
        for name, scores in methods.items()
        if isinstance(scores, Mapping) and "probabilistic" in scores
    }
    if not ensembles:
        raise ValueError(
            f"results_by_method has no ensemble method (an entry with 'probabilistic'): got {list(methods)}"
        )
    return ensembles


def plot_reliability_diagram(results_by_method: Mapping, threshold: float, path: str | os.PathLike) -> Path:
    """The reliability diagram of every ensemble at ``threshold`` mm/h, with the pixels per bin beneath.

    Args:
        results_by_method: ``results["methods"]`` (or ``results``); entries without ``"probabilistic"`` are
            skipped.
        threshold: one of the probability thresholds scored (mm/h).
        path: the PNG to write.

    Raises:
        ValueError: no ensemble, or ``threshold`` not scored (the message lists the scored ones).
    """
    ensembles = _ensembles(results_by_method)
    (threshold,) = check_thresholds(threshold, name="threshold")
    label = f"{threshold:g}"
    for name, scores in ensembles.items():
        curves = scores["probabilistic"]["curves"]["overall"]
        if f"reliability_forecast@{label}" not in curves:
            scored = [key.split("@")[1] for key in curves if key.startswith("reliability_forecast@")]
            raise ValueError(f"threshold={threshold:g} mm/h was not scored for {name!r}; scored: {scored}")
    plt = _pyplot()
    figure, (axis, counts) = plt.subplots(
        2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect reliability")
    width = 0.8 / len(ensembles)
    for index, (name, scores) in enumerate(ensembles.items()):
        curves = scores["probabilistic"]["curves"]["overall"]
        forecast = np.asarray(curves[f"reliability_forecast@{label}"], dtype=np.float64)
        observed = np.asarray(curves[f"reliability_observed@{label}"], dtype=np.float64)
        count = np.asarray(curves[f"reliability_count@{label}"], dtype=np.float64)
        shown = np.isfinite(forecast) & np.isfinite(observed)
        axis.plot(forecast[shown], observed[shown], marker="o", markersize=4, label=name)
        centres = (np.arange(len(count)) + 0.5) / len(count)
        offset = (index - (len(ensembles) - 1) / 2) * width / len(count)
        filled = count > 0  # empty bins have no bar on the log scale
        counts.bar(centres[filled] + offset, count[filled], width=width / len(count), label=name)
    axis.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed frequency")
    axis.set_title(f"Reliability, rain >= {label} mm/h")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left")
    counts.set(yscale="log", xlabel="forecast probability", ylabel="pixels")
    counts.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def plot_rank_histograms(results_by_method: Mapping, path: str | os.PathLike) -> Path:
    """One panel per ensemble: its rank histogram (all lead times pooled) and the flat 1 / (M + 1) line, titled
    with the largest deviation from flat (:func:`~.tables.rank_histogram_deviation`)."""
    ensembles = _ensembles(results_by_method)
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(ensembles), figsize=(3.8 * len(ensembles), 3.2), squeeze=False)
    for axis, (name, scores) in zip(axes[0], ensembles.items()):
        histogram = np.asarray(
            scores["probabilistic"]["curves"]["overall"]["rank_histogram"], dtype=np.float64
        )
        ranks = np.arange(len(histogram))
        axis.bar(ranks, np.nan_to_num(histogram), width=0.9, color="#3c3cc8")
        axis.axhline(1.0 / len(histogram), color="black", linestyle="--", linewidth=1)
        deviation = rank_histogram_deviation(histogram)
        axis.set_title(f"{name} (M = {len(histogram) - 1}, max dev {deviation:.2f})", fontsize=9)
        axis.set(xlabel="rank of the observation", ylabel="frequency")
        axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return _save(figure, path)


def _field(array, name: str, ndim: int, layout: str) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().float().cpu().numpy()
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {layout}, got shape {array.shape}")
    return array


def _lead_indices(lead_indices, num_lead_times: int, name: str = "lead_indices") -> list[int]:
    indices = list(range(num_lead_times)) if lead_indices is None else list(lead_indices)
    if not indices or any(
        isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < num_lead_times
        for i in indices
    ):
        raise ValueError(
            f"{name} must be 0-based lead-time indices in 0..{num_lead_times - 1}, got {lead_indices!r}"
        )
    return [int(i) for i in indices]


def _check_exceedance(observed_last_frame, truth, probabilities, thresholds):
    """Checked float64 fields of :func:`save_exceedance_maps` and its thresholds."""
    observed = _field(observed_last_frame, "observed_last_frame", 2, "one frame (H, W) in mm/h")
    probabilities = _field(probabilities, "probabilities", 4, "(K thresholds, T, H, W) in [0, 1]")
    thresholds = check_thresholds(thresholds)
    if probabilities.shape[0] != len(thresholds) or probabilities.shape[2:] != observed.shape:
        raise ValueError(
            f"probabilities has shape {probabilities.shape}, expected (K={len(thresholds)}, T, "
            f"{observed.shape[0]}, {observed.shape[1]}) for {len(thresholds)} thresholds and the observed frame"
        )
    if np.any((probabilities < 0) | (probabilities > 1)):  # NaN compares False
        raise ValueError(
            f"probabilities must lie in [0, 1], got {np.nanmin(probabilities)} .. {np.nanmax(probabilities)}"
        )
    if truth is not None:
        truth = _field(truth, "truth", 3, "the future (T, H, W) in mm/h")
        if truth.shape != probabilities.shape[1:]:
            raise ValueError(f"truth has shape {truth.shape}, expected {probabilities.shape[1:]} (T, H, W)")
    return observed, truth, probabilities, thresholds


def save_exceedance_maps(
    observed_last_frame,
    truth,
    probabilities,
    thresholds: Iterable[float],
    lead_indices: Iterable[int] | None,
    path: str | os.PathLike,
    *,
    timestep_minutes: float | None = None,
) -> Path:
    """Probability-of-exceedance maps beside the observed rain, as a PNG.

    The first row shows the last observed frame and the true future at each lead time (rain-rate colours); each
    further row one threshold: the observed frame's exceedance (0 or 1), then ``P(rain >= threshold)`` at each
    lead time (0-1 colour bar) with the true exceedance outlined in black.

    Args:
        observed_last_frame: mm/h (H, W), numpy or torch (NaN: no data).
        truth: mm/h (T, H, W) or None.
        probabilities: (K, T, H, W) in [0, 1] (NaN: no data), one map per threshold and lead time.
        thresholds: the K thresholds (mm/h).
        lead_indices: 0-based lead times shown (e.g. ``(2, 5, 11)``); None: all.
        path: the PNG to write.
        timestep_minutes: frame step, to label lead times in minutes.
    """
    observed, truth, probabilities, thresholds = _check_exceedance(
        observed_last_frame, truth, probabilities, thresholds
    )
    leads = _lead_indices(lead_indices, probabilities.shape[1])
    plt = _pyplot()
    cmap, norm = rain_rate_colormap()
    rows, columns = 1 + len(thresholds), 1 + len(leads)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns + 1.2, 2.2 * rows), squeeze=False)
    rain = axes[0][0].imshow(np.ma.masked_invalid(observed), cmap=cmap, norm=norm, interpolation="nearest")
    axes[0][0].set_title("observed", fontsize=9)
    for column, lead in enumerate(leads, start=1):
        label = f"+{(lead + 1) * timestep_minutes:g} min" if timestep_minutes else f"+{lead + 1}"
        axes[0][column].set_title(f"truth {label}" if truth is not None else label, fontsize=9)
        if truth is not None:
            axes[0][column].imshow(
                np.ma.masked_invalid(truth[lead]), cmap=cmap, norm=norm, interpolation="nearest"
            )
    for row, threshold in enumerate(thresholds, start=1):
        exceeded = np.where(np.isfinite(observed), (observed >= threshold).astype(float), np.nan)
        axes[row][0].imshow(np.ma.masked_invalid(exceeded), cmap=PROBABILITY_COLORMAP, vmin=0, vmax=1)
        axes[row][0].set_ylabel(f">= {threshold:g} mm/h", fontsize=9)
        for column, lead in enumerate(leads, start=1):
            image = axes[row][column].imshow(
                np.ma.masked_invalid(probabilities[row - 1, lead]),
                cmap=PROBABILITY_COLORMAP,
                vmin=0,
                vmax=1,
                interpolation="nearest",
            )
            if truth is not None and np.nanmax(truth[lead], initial=0.0) >= threshold:
                axes[row][column].contour(
                    np.nan_to_num(truth[lead]) >= threshold, levels=[0.5], colors="black"
                )
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    rain_bar = figure.colorbar(rain, ax=axes[0].tolist(), extend="max", ticks=list(RAIN_RATE_LEVELS[::2]))
    rain_bar.set_label("mm/h")
    probability_bar = figure.colorbar(image, ax=axes[1:].ravel().tolist())
    probability_bar.set_label("probability of exceedance")
    return _save(figure, path)


def save_members_strip(
    observed,
    truth,
    members,
    path: str | os.PathLike,
    num_members_shown: int = 4,
    lead_indices: Iterable[int] | None = None,
    **kwargs,
) -> Path:
    """:func:`~.pictures.radar_strip` of an ensemble: the observed frames, the truth, the members' mean and the
    first ``num_members_shown`` members, as a PNG.

    Args:
        observed: mm/h (T_in, H, W); truth: mm/h (T, H, W) or None.
        members: mm/h (N, T, H, W), numpy or torch.
        path: the PNG to write.
        num_members_shown: members drawn, 1..N.
        lead_indices: 0-based lead times shown; None: all.
        **kwargs: more of :func:`~.pictures.radar_strip` (``observed_valid``, ``truth_valid``,
            ``timestep_minutes``, ``scale``).
    """
    members = _field(members, "members", 4, "(N members, T, H, W) in mm/h")
    count = len(members)
    if isinstance(num_members_shown, bool) or not isinstance(num_members_shown, (int, np.integer)):
        raise ValueError(f"num_members_shown must be an int in 1..{count}, got {num_members_shown!r}")
    if not 1 <= num_members_shown <= count:
        raise ValueError(
            f"num_members_shown must be in 1..{count} (the members given), got {num_members_shown}"
        )
    leads = _lead_indices(lead_indices, members.shape[1])
    forecasts = {"mean": members.mean(0)}  # NaN (no data) in any member stays no data
    forecasts.update({f"member {i + 1}": members[i] for i in range(int(num_members_shown))})
    strip = radar_strip(observed, truth, forecasts, lead_times=[lead + 1 for lead in leads], **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    strip.save(path)
    return path


def save_ensemble_pictures(
    name: str,
    members,
    observed,
    truth,
    folder: str | os.PathLike,
    lead_indices,
    *,
    observed_valid,
    truth_valid,
    timestep_minutes: float | None = None,
) -> dict[str, Path]:
    """``<name>_members.png`` (:func:`save_members_strip`, up to 4 members) and ``<name>_exceedance.png``
    (:func:`save_exceedance_maps` at 0.5, 1, 2 and 5 mm/h, the first 4 of ``lead_indices``) of one window's
    ensemble: ``members`` (N, T, H, W) mm/h, ``observed`` (T_in, H, W), ``truth`` (T, H, W) and their valid masks;
    ``lead_indices`` 0-based. Returns ``{"members", "exceedance"}`` -> the paths."""
    folder = Path(folder)
    kwargs = {
        "observed_valid": observed_valid,
        "truth_valid": truth_valid,
        "timestep_minutes": timestep_minutes,
    }
    strip = save_members_strip(
        observed, truth, members, folder / f"{name}_members.png",
        num_members_shown=min(4, len(members)), lead_indices=list(lead_indices), **kwargs,
    )  # fmt: skip
    probabilities = exceedance_probability(np.asarray(members), DEFAULT_PROBABILITY_THRESHOLDS).numpy()
    maps = save_exceedance_maps(
        np.where(observed_valid[-1], observed[-1], np.nan),
        np.where(truth_valid, truth, np.nan),
        np.where(truth_valid[None], probabilities, np.nan),
        DEFAULT_PROBABILITY_THRESHOLDS,
        list(lead_indices)[:4],
        folder / f"{name}_exceedance.png",
        timestep_minutes=timestep_minutes,
    )
    return {"members": strip, "exceedance": maps}
