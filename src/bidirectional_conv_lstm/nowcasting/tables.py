"""Markdown tables of nowcast scores (the results dict of :func:`bidirectional_conv_lstm.nowcasting.evaluation.evaluate_nowcasts`).

Scores are keyed as the verifier names them: ``csi@T`` (threshold ``T`` mm/h), ``fss@T/W`` (threshold, window in
pixels), ``csi_m``, ``mae``, ``mse``; a method's ``per_lead_time`` holds the same keys per lead time.

Ensemble methods (an entry with ``"probabilistic"``, the scores of
:class:`~bidirectional_conv_lstm.nowcasting.ensemble_verification.EnsembleVerifier`) get a second table
(:func:`format_ensemble_table`): CRPS, Brier skill scores, ROC area, spread / skill and the rank histogram's
largest deviation from flat (:func:`rank_histogram_deviation`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

__all__ = [
    "ensemble_methods",
    "format_ensemble_table",
    "format_scores_table",
    "nowcast_report",
    "rank_histogram_deviation",
    "score_keys",
    "score_value",
]

RANK_DEVIATION_NOTE = (
    "RH max dev: the rank histogram's largest deviation from flat, max over its M + 1 bins of "
    "|(M + 1) f - 1| (f: a bin's frequency): 0 for a flat histogram, M when every observation falls in one bin."
)


def score_value(scores: Mapping, key: str, lead_time: int | None = None) -> float:
    """One score of a method's results: overall, or at ``lead_time`` (1-based, in frames).

    ``scores`` is ``results["methods"][name]``; its ``per_lead_time`` may be ``{key: [one per lead time]}`` or
    ``[{key: value} per lead time]``.
    """
    if lead_time is None:
        return float(scores["overall"][key])
    per_lead_time = scores["per_lead_time"]
    if isinstance(per_lead_time, Mapping):
        series = per_lead_time[key]
        return float(series[lead_time - 1])
    return float(per_lead_time[lead_time - 1][key])


def score_keys(overall: Mapping) -> tuple[list[tuple[float, str]], list[tuple[float, int, str]]]:
    """CSI keys ``csi@T`` as (T, key) and FSS keys ``fss@T/W`` as (T, W, key), sorted."""
    csi, fss = [], []
    for key in overall:
        if match := re.fullmatch(r"csi@([0-9.eE+-]+)", key):
            csi.append((float(match.group(1)), key))
        elif match := re.fullmatch(r"fss@([0-9.eE+-]+)/([0-9]+)", key):
            fss.append((float(match.group(1)), int(match.group(2)), key))
    return sorted(csi), sorted(fss)


def format_scores_table(
    results: Mapping,
    *,
    lead_time: int | None = None,
    csi_thresholds: Iterable[float] | None = None,
    fss_threshold: float = 1.0,
    fss_windows: Iterable[int] | None = None,
    errors: bool = True,
) -> str:
    """A Markdown table: one row per method; CSI at each threshold, CSI-M, FSS at ``fss_threshold`` mm/h for each
    window, MAE and MSE (mm/h, mm²/h²).

    Args:
        results: the dict of :func:`evaluate_nowcasts`.
        lead_time: a lead time (1-based frame index) instead of the overall (all lead times pooled) scores.
        csi_thresholds: the CSI columns (default: every threshold scored).
        fss_threshold: the threshold of the FSS columns.
        fss_windows: the FSS windows shown (default: every window scored).
        errors: include CSI-M, MAE and MSE.
    """
    methods = results["methods"]
    if not methods:
        raise ValueError("results has no methods to tabulate")
    csi_keys, fss_keys = score_keys(next(iter(methods.values()))["overall"])
    if csi_thresholds is not None:
        wanted = [float(t) for t in csi_thresholds]
        csi_keys = [(t, key) for t, key in csi_keys if any(np.isclose(t, w) for w in wanted)]
    fss_keys = [(t, w, key) for t, w, key in fss_keys if np.isclose(t, fss_threshold)]
    if fss_windows is not None:
        fss_keys = [(t, w, key) for t, w, key in fss_keys if w in {int(x) for x in fss_windows}]
    columns = [(f"CSI {t:g}", key) for t, key in csi_keys]
    if errors:
        columns.append(("CSI-M", "csi_m"))
    columns += [(f"FSS {t:g} ({w} px)", key) for t, w, key in fss_keys]
    if errors:
        columns += [("MAE", "mae"), ("MSE", "mse")]
    header = "| method | " + " | ".join(title for title, _ in columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for name, scores in methods.items():
        cells = []
        for _, key in columns:
            value = score_value(scores, key, lead_time)
            cells.append("n/a" if not np.isfinite(value) else f"{value:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ensemble_methods(results: Mapping) -> dict[str, Mapping]:
    """``{name: entry}`` of the methods of ``results`` scored as ensembles (with ``"probabilistic"``)."""
    return {name: scores for name, scores in results["methods"].items() if "probabilistic" in scores}


def rank_histogram_deviation(histogram: Iterable[float]) -> float:
    """max_i |(M + 1) f_i - 1| of a normalized rank histogram f (M + 1 bins): 0 when flat, M at worst."""
    histogram = np.asarray(histogram, dtype=np.float64)
    if histogram.ndim != 1 or histogram.size < 2:
        raise ValueError(f"histogram must hold M + 1 >= 2 frequencies, got shape {histogram.shape}")
    return float(np.max(np.abs(histogram.size * histogram - 1.0)))


def _ensemble_columns(probabilistic: Mapping) -> list[tuple[str, str]]:
    """(title, key) of the ensemble table: CRPS, BSS at every threshold, ROC area at 1 mm/h (or the first
    threshold), spread / skill."""
    overall = probabilistic["overall"]
    bss = sorted((float(key[4:]), key) for key in overall if key.startswith("bss@"))
    auc = sorted((float(key[8:]), key) for key in overall if key.startswith("roc_auc@"))
    auc = [item for item in auc if np.isclose(item[0], 1.0)] or auc[:1]
    return (
        [("CRPS", "crps")]
        + [(f"BSS {t:g}", key) for t, key in bss]
        + [(f"ROC area {t:g}", key) for t, key in auc]
        + [("spread/skill", "spread_skill")]
    )


def format_ensemble_table(results: Mapping, *, lead_time: int | None = None) -> str:
    """A Markdown table of the ensemble methods: members, CRPS (mm/h), Brier skill score at each probability
    threshold (mm/h), ROC area, spread / skill and the rank histogram's largest deviation (``RH max dev``, see
    :func:`rank_histogram_deviation`); overall or at ``lead_time`` (1-based frames).

    Raises:
        ValueError: ``results`` has no ensemble method.
    """
    methods = ensemble_methods(results)
    if not methods:
        raise ValueError("results has no ensemble method (an entry with 'probabilistic') to tabulate")
    columns = _ensemble_columns(next(iter(methods.values()))["probabilistic"])
    titles = ["members", *(title for title, _ in columns), "RH max dev"]
    lines = ["| method | " + " | ".join(titles) + " |", "|---" * (len(titles) + 1) + "|"]
    for name, scores in methods.items():
        probabilistic = scores["probabilistic"]
        cells = [str(scores.get("num_members", "?"))]
        for _, key in columns:
            value = score_value(probabilistic, key, lead_time)
            cells.append("n/a" if not np.isfinite(value) else f"{value:.3f}")
        curves = probabilistic["curves"]
        histogram = (
            curves["overall"]["rank_histogram"]
            if lead_time is None
            else curves["per_lead_time"]["rank_histogram"][lead_time - 1]
        )
        deviation = rank_histogram_deviation(histogram)
        cells.append("n/a" if not np.isfinite(deviation) else f"{deviation:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _describe(results: Mapping, lead_time: int | None) -> str:
    step = results.get("timestep_minutes")
    if lead_time is None:
        return "all lead times pooled"
    return f"+{lead_time * step:g} min" if step else f"lead time {lead_time} (frames)"


def describe_scoring(results: Mapping) -> str:
    """One sentence on what `results` scored: the windows and frames, how counts were pooled; for results over
    whole domains (:func:`~bidirectional_conv_lstm.nowcasting.whole_domains.mean_results`) the events, their grids
    and window counts, and that each figure is the mean over events."""
    step = results.get("timestep_minutes")
    frames = f"{results['num_input_frames']} observed -> {results['num_output_frames']} forecast frames" + (
        f" of {step:g} min" if step else ""
    )
    events = results.get("events")
    if events:
        listed = "; ".join(
            f"{name}: {' x '.join(str(side) for side in event['grid'])}, {event['num_windows']} windows"
            for name, event in events.items()
        )
        return (
            f"Whole radar domains of {len(events)} held-out events ({listed}), {frames}; thresholds in mm/h, FSS "
            "windows in pixels; each event's scores pooled over its windows and pixels, then every figure the mean "
            "over the events."
        )
    return (
        f"{results['num_windows']} windows, {frames}; thresholds in mm/h, FSS windows in pixels; contingency counts "
        "pooled over windows and pixels"
        + (
            f"; every method saw {results['context']} px of surroundings around each tile, scored on the tile alone."
            if results.get("context")
            else "."
        )
    )


def nowcast_report(results: Mapping, *, lead_times: Iterable[int] = ()) -> str:
    """Markdown: the overall table, then one table per requested lead time (1-based frames); with an ensemble
    method, the ensemble tables (:func:`format_ensemble_table`) after them."""
    text = [describe_scoring(results)]
    for lead_time in (None, *lead_times):
        text.append(f"\n**{_describe(results, lead_time)}**\n")
        text.append(format_scores_table(results, lead_time=lead_time))
    if ensemble_methods(results):
        text.append(
            "\n**Ensembles**: the rows above score each ensemble's deterministic product (the members' mean "
            "unless the method names another); here its members (probability thresholds in mm/h).\n\n"
            + RANK_DEVIATION_NOTE
        )
        for lead_time in (None, *lead_times):
            text.append(f"\n**Ensembles, {_describe(results, lead_time)}**\n")
            text.append(format_ensemble_table(results, lead_time=lead_time))
    if results.get("motion"):
        text.append("\n" + motion_report(results["motion"]))
    return "\n".join(text)


MAX_EVENT_ROWS = 10


def motion_report(motion: Mapping) -> str:
    """Markdown: the advection head's motion beside Lucas-Kanade's
    (:func:`~bidirectional_conv_lstm.nowcasting.motion.motion_against_lucas_kanade`'s dict), pooled and per event."""
    heading = (
        "**The model's motion against Lucas-Kanade's** (the advection head's first forecast step, on pixels of "
        f"{motion['wet_threshold']:g} mm/h or more in the last observed frame; cosine 1: the same direction)\n"
    )
    if motion["overall"] is None:
        return heading + "no window had enough rain to compare."
    text = [
        heading,
        "| windows | wet pixels | mean cosine | model speed | Lucas-Kanade speed | model mean (x, y) "
        "| Lucas-Kanade mean (x, y) |",
        "|---|---|---|---|---|---|---|",
    ]
    events = list(motion["by_event"].items())
    # per event when the windows come from a few events (radar), not one row per synthetic sequence
    rows = [("all", motion["overall"])] + (events if 1 < len(events) <= MAX_EVENT_ROWS else [])
    for name, scores in rows:
        model_mean, flow_mean = (
            ", ".join(f"{v:+.2f}" for v in scores[key]) for key in ("model_mean", "lucas_kanade_mean")
        )
        text.append(
            f"| {name}: {scores['windows']} | {scores['wet_pixels']} | {scores['cosine']:.2f} | "
            f"{scores['model_speed']:.2f} px | {scores['lucas_kanade_speed']:.2f} px | ({model_mean}) | ({flow_mean}) |"
        )
    return "\n".join(text)
