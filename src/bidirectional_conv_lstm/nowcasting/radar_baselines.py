"""The published baseline figures: persistence, Lucas-Kanade extrapolation, S-PROG, ANVIL and the STEPS ensemble
on whole radar events.

For each event (a :class:`~.data.radar_sources.RadarSource`, by default the five sample events of pysteps'
example data): read it as mm/h (:func:`~.data.radar.read_radar_archive`), block-average it to ``pixel_km``
(:func:`~.data.radar_timeline.block_average`: a block with any no-data pixel is no data), crop it to the rows and
columns that ever hold data, cut windows of
``num_input_frames`` observed + ``num_output_frames`` future frames of the **whole grid** (optical flow needs the
context) with forecast origins every ``origin_every_minutes`` at the event's **native time step** (no resampling:
interpolating 10-minute frames to 5 minutes would invent frames), and score every method with
:func:`~bidirectional_conv_lstm.nowcasting.evaluation.score_nowcasts`. Events with the same time step are then pooled (contingency counts
summed over windows and pixels) and reported at one lead time (``+60 min``) and over all lead times.

An ensemble method (STEPS) is scored twice, as :func:`~.evaluation.score_nowcasts` does: its members' mean in the
deterministic tables beside the others, its members in an ensemble table (CRPS, Brier skill, ROC area,
spread / skill, rank histogram); it is run with each event's pixel size and time step (its motion perturbations
and rain mask depend on them), and its pictures add a strip of members, exceedance-probability maps, the
reliability diagram at 1 mm/h and the rank histograms.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from ..data import read_radar_archive
from ..data.radar.timeline import block_average, build_timeline, window_starts
from ..data.rain.storage import decode_rain_rate, encode_rain_rate
from .ensemble_pictures import plot_rank_histograms, plot_reliability_diagram, save_ensemble_pictures
from .evaluation import (
    deterministic_forecast,
    ensemble_size,
    format_scores_table,
    resolve_forecasters,
    results_from_verifiers,
    score_nowcasts,
)
from .pictures import plot_scores_by_lead_time, save_radar_gif, save_radar_strip, save_rain_rate_figure
from .tables import RANK_DEVIATION_NOTE, ensemble_methods, format_ensemble_table

__all__ = ["EventWindows", "baselines_report", "event_windows", "run_radar_baselines"]

DEFAULT_METHODS = ("persistence", "extrapolation", "sprog")


class EventWindows(torch.utils.data.Dataset):
    """Windows of one event, stored once: row ``i`` is ``{"rain_rate": uint16 (T, 1, H, W)}`` (the rain_storage
    form) of native frames ``frames[i]``."""

    def __init__(self, stored: np.ndarray, frames: list[np.ndarray], origins: list[str]):
        self.stored, self.frames, self.origins = stored, frames, origins

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict:
        return {"rain_rate": self.stored[self.frames[index]][:, None], "origin": self.origins[index]}


def _native_pixel_km(metadata: Mapping) -> float | None:
    size = metadata.get("xpixelsize")
    if size is None:
        return None
    return float(size) / (1.0 if metadata.get("cartesian_unit", "m") == "km" else 1000.0)


def event_windows(
    sequence, *, num_frames: int, num_input_frames: int, origin_every_minutes: float, pixel_km: float | None
) -> tuple[EventWindows, dict]:
    """Whole-grid windows of a :class:`~.data.radar.RadarSequence` at its native step.

    Returns:
        the windows and a description (``timestep``, ``stride`` in frames, ``downsample`` factor, ``grid``,
        ``pixel_km``).
    """
    step = sequence.timestep
    if not step:
        raise ValueError(f"event {sequence.name!r} has no time step; origins every N minutes need one")
    native_km = _native_pixel_km(sequence.metadata)
    factor = 1
    if pixel_km is not None and native_km:
        factor = max(1, round(pixel_km / native_km))
    rain = block_average(sequence.rain_rate, factor)
    # Crop to the rows and columns that ever hold data: pixels outside never count in the scores, and the optical
    # flow and S-PROG's FFTs need not run over them (KNMI's composite is three quarters no data).
    seen = ~np.isnan(rain).all(axis=0)
    if not seen.any():
        raise ValueError(f"event {sequence.name!r} has no valid pixel at all")
    rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    crop = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
    rain = rain[:, crop[0] : crop[1], crop[2] : crop[3]]
    timeline = build_timeline(sequence.timestamps, step, len(rain), None)
    stride = max(1, round(origin_every_minutes / step))
    starts = window_starts(timeline.present, num_frames, stride)
    frames = [timeline.left[start : start + num_frames] for start in starts]
    origins = [
        timeline.times[start + num_input_frames - 1].isoformat() if timeline.times else str(start)
        for start in starts
    ]
    info = {
        "timestep_minutes": float(step),
        "stride_frames": stride,
        "origin_every_minutes": stride * float(step),
        "downsample": factor,
        "pixel_km": None if native_km is None else round(native_km * factor, 3),
        "grid": list(rain.shape[1:]),
        "crop": [int(value) for value in crop],  # y0, y1, x0, x1 in the downsampled grid
        "num_windows": len(frames),
    }
    return EventWindows(encode_rain_rate(rain), frames, origins), info


def _on_event_grid(forecasters: Mapping, info: Mapping) -> dict:
    """The forecasters, those taking ``kmperpixel`` and ``timestep_minutes`` (STEPS) given the event's."""
    if not info.get("pixel_km"):
        return dict(forecasters)
    grid = {"kmperpixel": float(info["pixel_km"]), "timestep_minutes": float(info["timestep_minutes"])}
    on_grid = {}
    for name, forecaster in forecasters.items():
        parameters = inspect.signature(forecaster).parameters
        if all(key in parameters for key in grid):
            # wraps keeps the attributes the evaluation reads (num_members, min_input_frames)
            forecaster = functools.wraps(forecaster)(functools.partial(forecaster, **grid))
        on_grid[name] = forecaster
    return on_grid


def _pictures(windows: EventWindows, forecasters, info, folder: Path, num_input_frames, num_output_frames):
    """Strip, GIF and one frame with its colour bar, for the window with the most rain at its origin (and, per
    ensemble method, its members and exceedance maps; its deterministic product in the strip and GIF)."""
    wet = [(decode_rain_rate(windows.stored[f[num_input_frames - 1]])[0] >= 1).sum() for f in windows.frames]
    index = int(np.argmax(wet))
    stored = windows[index]["rain_rate"][None]
    rain, valid = decode_rain_rate(stored[:, : num_input_frames + num_output_frames, 0])
    observed, observed_valid = rain[:, :num_input_frames], valid[:, :num_input_frames]
    truth, truth_valid = rain[0, num_input_frames:], valid[0, num_input_frames:]
    step = info["timestep_minutes"]
    every = max(1, round(15 / step))  # one frame every ~15 minutes in the strip
    lead_times = list(range(every, num_output_frames + 1, every))
    origin = windows.origins[index]
    kwargs = {"observed_valid": observed_valid[0], "truth_valid": truth_valid, "timestep_minutes": step}
    forecasts = {}
    for name, method in _on_event_grid(forecasters, info).items():
        forecast = method(observed, valid=observed_valid, num_output_frames=num_output_frames)
        if ensemble_size(name, method) is None:
            forecasts[name] = np.asarray(forecast)[0]
            continue
        forecasts[name] = deterministic_forecast(method, forecast).numpy()[0]
        members = np.asarray(forecast)[0]
        save_ensemble_pictures(
            name, members, observed[0], truth, folder, [t - 1 for t in lead_times], **kwargs
        )
    save_radar_strip(
        observed[0], truth, forecasts, folder / "forecast_strip.png", lead_times=lead_times, **kwargs
    )
    save_radar_gif(observed[0], truth, forecasts, folder / "forecast.gif", scale=1, **kwargs)
    rain_frame = np.where(observed_valid[0, -1], observed[0, -1], np.nan)
    save_rain_rate_figure(
        rain_frame, folder / "radar_frame.png", title=f"{folder.name}, {origin}", pixel_km=info["pixel_km"]
    )


def run_radar_baselines(
    sources: Mapping,
    output_dir: str | os.PathLike,
    *,
    methods: Iterable[str] = DEFAULT_METHODS,
    num_input_frames: int = 4,
    num_output_frames: int = 12,
    origin_every_minutes: float = 20.0,
    pixel_km: float | None = 2.0,
    lead_time_minutes: float = 60.0,
    thresholds: Iterable[float] = (0.5, 1, 2, 5, 10),
    fss_windows: Iterable[int] = (1, 4, 16),
    num_workers: int = 1,
    cache_dir: str | os.PathLike | None = None,
    max_windows_per_event: int | None = None,
    pictures: bool = True,
    log=print,
) -> dict:
    """Score the baselines on every event and write ``baselines.md``, ``metrics.json`` and pictures.

    Args:
        sources: ``{name: RadarSource}`` (e.g. :func:`~.data.radar_sources.example_radar_sources`).
        output_dir: where to write (``baselines.md``, ``metrics.json``, ``<time step>min_scores.png`` and, per
            event, ``forecast_strip.png``, ``forecast.gif``, ``radar_frame.png``).
        methods: baseline names (:func:`~bidirectional_conv_lstm.nowcasting.baselines.get_baseline`).
        num_input_frames, num_output_frames: observed and forecast frames per window.
        origin_every_minutes: time between forecast origins (rounded to whole native steps).
        pixel_km: block-average the grids to about this resolution; None keeps the native grid.
        lead_time_minutes: the lead time of the second table (rounded to a whole native step).
        thresholds, fss_windows: the verification's thresholds (mm/h) and FSS windows (pixels of the
            downsampled grid).
        num_workers: processes reading each archive.
        cache_dir: keep each event as read (mm/h) there and reuse it (pysteps' BoM importer is slow);
            None reads the files every time.
        max_windows_per_event: score only the first windows of each event (quick checks).
        pictures: draw the pictures.
        log: where progress lines go.

    Returns:
        ``{"settings", "events": {name: {"info", "results"}}, "pooled": {"<step>min": results}}``.
    """
    if not sources:
        raise ValueError("sources is empty; expected at least one radar event")
    forecasters = resolve_forecasters(list(methods))  # an unknown name fails before any file is read
    if lead_time_minutes <= 0:
        raise ValueError(f"lead_time_minutes must be positive, got {lead_time_minutes}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    common = {"num_input_frames": num_input_frames, "num_output_frames": num_output_frames}
    verify = {"thresholds": tuple(thresholds), "fss_windows": tuple(fss_windows)}
    windowing = {"origin_every_minutes": origin_every_minutes, "pixel_km": pixel_km}
    reading = {"num_workers": num_workers, "cache_dir": cache_dir}
    events, groups = {}, {}
    for name, source in sources.items():
        scored = _score_event(
            name,
            source,
            forecasters,
            common=common,
            verify=verify,
            windowing=windowing,
            reading=reading,
            max_windows=max_windows_per_event,
            log=log,
        )
        if scored is None:
            continue
        windows, events[name], verifiers = scored
        _pool_event(groups, name, events[name]["info"], verifiers)
        if pictures:
            _pictures(windows, forecasters, events[name]["info"], output_dir / name, **common)
    pooled = {key: _pooled_results(group, common, verify) for key, group in groups.items()}
    settings = {
        "methods": list(forecasters),
        "origin_every_minutes": origin_every_minutes,
        "pixel_km": pixel_km,
        "lead_time_minutes": lead_time_minutes,
        **common,
        **verify,
    }
    report = {"settings": settings, "events": events, "pooled": pooled}
    _write_report(report, output_dir, pictures=pictures)
    return report


def _score_event(
    name: str,
    source,
    forecasters: Mapping,
    *,
    common: Mapping,
    verify: Mapping,
    windowing: Mapping,
    reading: Mapping,
    max_windows: int | None,
    log,
) -> tuple[EventWindows, dict, dict] | None:
    """Read one event, cut its whole-grid windows and score every forecaster on them.

    Returns:
        the windows, ``{"info", "results"}`` and the verifiers (to pool with other events); None (logged) for an
        event too short for one window.
    """
    start = time.perf_counter()
    sequence = read_radar_archive(source, **reading)
    read_seconds = time.perf_counter() - start
    num_frames = common["num_input_frames"] + common["num_output_frames"]
    windows, info = event_windows(
        sequence, num_frames=num_frames, num_input_frames=common["num_input_frames"], **windowing
    )
    if len(windows) == 0:
        log(f"{name}: {len(sequence.rain_rate)} frames make no window of {num_frames} frames; skipped")
        return None
    forecasters = _on_event_grid(forecasters, info)
    verifiers, seconds, count = score_nowcasts(
        windows, forecasters, batch_size=1, max_windows=max_windows, **common, **verify
    )
    info.update(read_seconds=read_seconds, scored_windows=count, seconds_per_window=seconds)
    step = info["timestep_minutes"]
    results = results_from_verifiers(verifiers, num_windows=count, timestep_minutes=step, **common, **verify)
    log(
        f"{name}: {count} windows on a {info['grid'][0]} x {info['grid'][1]} grid "
        f"({info['pixel_km']} km, {step:g} min), read in {read_seconds:.1f} s, scored in "
        f"{time.perf_counter() - start - read_seconds:.1f} s"
    )
    return windows, {"info": info, "results": results}, verifiers


def _pool_event(groups: dict, name: str, info: Mapping, verifiers: Mapping) -> None:
    """Add an event's verifiers to the group of events with its time step (``"<step>min"``)."""
    step = info["timestep_minutes"]
    group = groups.setdefault(f"{step:g}min", {"events": [], "verifiers": None, "count": 0, "step": step})
    group["events"].append(name)
    group["count"] += info["scored_windows"]
    if group["verifiers"] is None:
        group["verifiers"] = verifiers
    else:
        for method, verifier in verifiers.items():
            merged = group["verifiers"][method].merge(verifier)  # in place, or a new verifier
            group["verifiers"][method] = merged if merged is not None else group["verifiers"][method]


def _pooled_results(group: Mapping, common: Mapping, verify: Mapping) -> dict:
    """The results of a group of events with one time step, scored as one, with their names (``"events"``)."""
    results = results_from_verifiers(
        group["verifiers"], num_windows=group["count"], timestep_minutes=group["step"], **common, **verify
    )
    return results | {"events": group["events"]}


def _write_report(report: Mapping, output_dir: Path, *, pictures: bool) -> None:
    """``metrics.json``, ``baselines.md`` and, with ``pictures``, one scores plot per pooled time step."""
    (output_dir / "metrics.json").write_text(json.dumps(report, indent=2, default=float))
    (output_dir / "baselines.md").write_text(baselines_report(report) + "\n")
    if pictures:
        for key, results in report["pooled"].items():
            plot_scores_by_lead_time(
                results, output_dir / f"{key}_scores.png", scores=("csi@0.5", "csi@2", "fss@1/16")
            )
            if ensemble_methods(results):
                plot_reliability_diagram(results, 1.0, output_dir / f"{key}_reliability.png")
                plot_rank_histograms(results, output_dir / f"{key}_rank_histograms.png")


def baselines_report(report: Mapping) -> str:
    """Markdown: per pooled group (events of one time step), the scores at the chosen lead time and overall."""
    settings = report["settings"]
    lines = [
        f"{settings['num_input_frames']} observed frames -> {settings['num_output_frames']} forecast frames, "
        f"origins every {settings['origin_every_minutes']:g} min (to the nearest whole frame), grids cropped to "
        f"where the radar sees and block-averaged to {settings['pixel_km']} km; CSI at 0.5 and 2 mm/h, FSS at 1 mm/h on 16-pixel windows; contingency "
        "counts pooled over windows and pixels. Events are reported at their native time step."
    ]
    for results in report["pooled"].values():
        step = results["timestep_minutes"]
        lead = max(1, min(results["num_output_frames"], round(settings["lead_time_minutes"] / step)))
        events = report["events"]
        described = ", ".join(
            f"{name} ({events[name]['info']['scored_windows']} windows, origins every "
            f"{events[name]['info']['origin_every_minutes']:g} min)"
            for name in results["events"]
        )
        lines.append(f"\n### {step:g}-minute events: {described}; {results['num_windows']} windows in all\n")
        selection = {"csi_thresholds": (0.5, 2), "fss_windows": (16,), "errors": False}
        lines.append(f"At +{lead * step:g} min:\n")
        lines.append(format_scores_table(results, lead_time=lead, **selection))
        lines.append(f"\nAll {results['num_output_frames']} lead times (+{step:g} to "
                     f"+{results['num_output_frames'] * step:g} min) pooled:\n")  # fmt: skip
        lines.append(format_scores_table(results, **selection))
        if ensemble_methods(results):
            lines.append(
                f"\nEnsembles (their members; the rows above score their mean), at +{lead * step:g} min:\n"
            )
            lines.append(format_ensemble_table(results, lead_time=lead))
            lines.append("\nAll lead times pooled:\n")
            lines.append(format_ensemble_table(results))
            lines.append("\n" + RANK_DEVIATION_NOTE)
    if len(report["pooled"]) > 1:
        lines.append(
            "\nEvents with different time steps are pooled separately (lead times differ in minutes)."
        )
    return "\n".join(lines)
