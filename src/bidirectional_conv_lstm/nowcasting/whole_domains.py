"""Scoring on whole radar domains: each held-out event forecast on its whole grid, then the mean over events.

Tiles flatter a model against extrapolation: a tile has no inflow across its edge (rain moved in from beyond it is
unknown to extrapolation and persistence keeps it), and the recipe's tiles are chosen wet. A user forecasts the
whole domain, so the recipe's test does too. With ``data.whole_domain_test`` (a mapping, e.g. ``{stride: 4}``:
origins every 4 frames) a radar run's test scores every test event on its whole grid at the event's own
downsampling: one window per origin, the grid as the tile (its size read from the archive, see
:func:`whole_domain_arguments`). Grids differ between events, so each event is scored on its own (its scores pooled over
its windows, pixels and lead times) and the run's figures are the mean over the events (:func:`mean_results`),
as the field reports results over events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from ..data.radar.archive import radar_grid_shape
from .data import radar_sources, scoring_arguments, source_config, split_options, whole_domain_test

__all__ = ["mean_motion", "mean_results", "whole_domain_arguments"]


def whole_domain_arguments(args, event: str):
    """What scores test event `event` of radar run `args` on its whole grid (for
    :func:`~.data.load_rain_datasets`, split ``"test"``): the run's data options
    with ``events: [event]`` held out, the event's overrides and ``data.whole_domain_test`` applied, and
    ``tile_size`` the event's grid at its downsampling (read from the archive: one frame's header); no surroundings
    (``eval_context: 0``, there is nothing beyond the grid); every window kept whatever its share of pixels with
    data (``min_valid_fraction: 0`` unless ``data.whole_domain_test`` says otherwise: a composite's grid may be
    mostly outside the radars' range, and the scores count only pixels with data)."""
    whole = {"min_valid_fraction": 0.0, **(whole_domain_test(args) or {})}
    _, options = split_options(args)
    overrides = (options.get("event_overrides") or {}).get(event, {})
    config = dataclasses.replace(source_config(args), **{**overrides, **whole})
    height, width = radar_grid_shape(radar_sources(args)[event])
    data = {
        key: value for key, value in args.data.items() if key not in ("whole_domain_test", "train_motion")
    }
    data.update(whole, events=[event], split="event", test_events=[event], validation_events=[])
    data.update(tile_size=[height // config.downsample, width // config.downsample], eval_context=0)
    data["event_overrides"] = {event: {k: v for k, v in overrides.items() if k not in whole}}
    return scoring_arguments("radar", data, args.num_input_frames, args.num_output_frames)


def _mean_leaf(values: list):
    """The mean of one leaf over events: numbers (NaN where an event's is undefined), lists element by element,
    dicts key by key; other values (text) where every event agrees, else None."""
    first = values[0]
    if isinstance(first, Mapping):
        keys = [key for key in first if all(isinstance(v, Mapping) and key in v for v in values)]
        return {key: _mean_leaf([v[key] for v in values]) for key in keys}
    if isinstance(first, (list, tuple)):
        if not all(isinstance(v, (list, tuple)) and len(v) == len(first) for v in values):
            return None
        return [_mean_leaf([v[i] for v in values]) for i in range(len(first))]
    if all(type(v) is type(first) and v == first for v in values):
        return first  # the same on every event (a frame count, a member count): kept as it is
    if isinstance(first, bool) or not isinstance(first, (int, float, np.number)):
        return None
    return float(np.mean([float(v) if v is not None else np.nan for v in values]))


def mean_results(by_event: Mapping[str, Mapping], grids: Mapping[str, tuple[int, int]] | None = None) -> dict:
    """One results dict (:mod:`.evaluation`'s) from each event's: every score the mean over events (each event's
    own figure pooled over its windows and pixels), ``num_windows`` their sum, ``events``: ``{event:
    {"num_windows", "grid"}}``; the methods scored on every event. ``motion`` is :func:`mean_motion`'s."""
    if not by_event:
        raise ValueError("by_event must hold at least one event's results")
    results = list(by_event.values())
    methods = [name for name in results[0]["methods"] if all(name in r["methods"] for r in results)]
    merged = {
        key: _mean_leaf([r[key] for r in results])
        for key in results[0]
        if key not in ("methods", "motion", "num_windows", "context")
    }
    merged["methods"] = {name: _mean_leaf([r["methods"][name] for r in results]) for name in methods}
    merged["num_windows"] = int(sum(r["num_windows"] for r in results))
    merged["events"] = {
        name: {"num_windows": int(r["num_windows"]), "grid": list((grids or {}).get(name) or [])}
        for name, r in by_event.items()
    }
    motion = mean_motion({name: r["motion"] for name, r in by_event.items() if r.get("motion")})
    if motion is not None:
        merged["motion"] = motion
    return merged


def mean_motion(by_event: Mapping[str, Mapping]) -> dict | None:
    """Each event's motion check (:func:`~.motion.motion_against_lucas_kanade`) as one: ``by_event`` every event's
    overall row, ``overall`` their mean weighted by wet pixels (the pooled figure); None without any."""
    rows = {name: motion["overall"] for name, motion in by_event.items() if motion.get("overall")}
    if not by_event:
        return None
    first = next(iter(by_event.values()))
    if not rows:
        return {"overall": None, "by_event": {}, "wet_threshold": first["wet_threshold"]}
    weights = np.array([row["wet_pixels"] for row in rows.values()], dtype=float)
    overall = {}
    for key in ("cosine", "model_speed", "lucas_kanade_speed", "model_mean", "lucas_kanade_mean"):
        values = np.array([row[key] for row in rows.values()], dtype=float)
        mean = np.tensordot(weights / weights.sum(), values, axes=1)
        overall[key] = mean.tolist() if mean.ndim else float(mean)
    overall["windows"] = int(sum(row["windows"] for row in rows.values()))
    overall["wet_pixels"] = int(weights.sum())
    return {"overall": overall, "by_event": rows, "wet_threshold": first["wet_threshold"]}
