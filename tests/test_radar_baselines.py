"""The published-figures pipeline (radar_baselines) on small stacks written as radar sources."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest

from bidirectional_conv_lstm.data import RadarSource
from bidirectional_conv_lstm.nowcasting.radar_baselines import run_radar_baselines
from test_nowcasting_baselines import translated_rain


def stack_source(tmp_path, name: str, num_frames: int, step_minutes: float, seed: int) -> RadarSource:
    rain = np.full((num_frames, 40, 52), np.nan, dtype=np.float32)  # a no-data border, cropped away
    rain[:, 2:38, 4:48] = translated_rain(num_frames, 44, seed)[:, :36]
    start = datetime(2021, 6, 1, 12, 0)
    stamps = np.array(
        [start + k * timedelta(minutes=step_minutes) for k in range(num_frames)], "datetime64[s]"
    )
    path = tmp_path / f"{name}.npz"
    np.savez(path, rain_rate=rain, timestamps=stamps)
    return RadarSource(name=name, path=path, timestep=step_minutes)


def test_events_are_scored_and_pooled_by_time_step(tmp_path):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    sources = {
        "a": stack_source(tmp_path, "a", 9, 5, seed=0),
        "b": stack_source(tmp_path, "b", 11, 5, seed=1),
        "c": stack_source(tmp_path, "c", 8, 10, seed=2),
    }
    report = run_radar_baselines(
        sources,
        tmp_path / "out",
        methods=["persistence", "extrapolation"],
        num_input_frames=3,
        num_output_frames=4,
        origin_every_minutes=10,
        pixel_km=None,
        lead_time_minutes=10,
        log=lambda line: None,
    )
    events = report["events"]
    # 5-min events: origins every 2 frames -> (9 - 7) // 2 + 1 = 2 and (11 - 7) // 2 + 1 = 3 windows;
    # the 10-min event: every frame -> 8 - 7 + 1 = 2 windows.
    assert [events[name]["info"]["num_windows"] for name in "abc"] == [2, 3, 2]
    assert events["a"]["info"]["grid"] == [36, 44]  # the all-no-data border is cropped
    assert set(report["pooled"]) == {"5min", "10min"}
    pooled = report["pooled"]["5min"]
    assert pooled["num_windows"] == 5 and pooled["events"] == ["a", "b"]
    for method in ("persistence", "extrapolation"):
        # Pooled contingency counts: the pooled CSI lies between the events' CSIs.
        values = [events[name]["results"]["methods"][method]["overall"]["csi@1"] for name in "ab"]
        assert min(values) - 1e-9 <= pooled["methods"][method]["overall"]["csi@1"] <= max(values) + 1e-9
    assert (
        pooled["methods"]["extrapolation"]["overall"]["csi@1"]
        > pooled["methods"]["persistence"]["overall"]["csi@1"]
    )
    out = tmp_path / "out"
    table = (out / "baselines.md").read_text()
    assert "At +10 min" in table and "| extrapolation |" in table and "### 10-minute events" in table
    assert json.loads((out / "metrics.json").read_text())["settings"]["methods"] == [
        "persistence",
        "extrapolation",
    ]
    for path in ("5min_scores.png", "a/forecast_strip.png", "a/forecast.gif", "c/radar_frame.png"):
        assert (out / path).stat().st_size > 1000, path


def test_unknown_method_fails_before_reading(tmp_path):
    source = RadarSource(name="missing", path=tmp_path / "absent.npy")
    with pytest.raises(ValueError, match="unknown baseline"):
        run_radar_baselines({"missing": source}, tmp_path / "out", methods=["rover"])
