"""Whole-domain scoring: the data option's checks, each test event's whole grid as its windows, and the mean of the
events' results (scores, ensemble curves, the motion check)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bidirectional_conv_lstm.data import generate_synthetic_rain
from bidirectional_conv_lstm.nowcasting.data import check_rain_data, load_rain_datasets, whole_domain_test
from bidirectional_conv_lstm.nowcasting.tables import describe_scoring
from bidirectional_conv_lstm.nowcasting.whole_domains import mean_motion, mean_results, whole_domain_arguments
from bidirectional_conv_lstm.training.arguments import TrainingArguments


def radar_run(tmp_path, **data) -> TrainingArguments:
    """A radar run over three events (two 32 x 32, one 24 x 24) with `data` options."""
    sources = []
    for name, size, seed in (("north", 32, 3), ("east", 32, 5), ("west", 24, 6)):
        event = generate_synthetic_rain(1, num_frames=12, size=size, seed=seed, speed_range=(0.5, 1.5))[0]
        np.save(tmp_path / f"{name}.npy", event)
        sources.append({"name": name, "path": str(tmp_path / f"{name}.npy"), "timestep": 5})
    options = {
        "sources": sources,
        "tile_size": 16,
        "test_events": ["east", "west"],
        "cache_dir": str(tmp_path),
    }
    return TrainingArguments(
        dataset="radar",
        data={**options, **data},
        model={"hidden_sizes": [4], "patch_size": 4, "rain_rate_transform": {"kind": "log1p"}},
        num_input_frames=3,
        num_output_frames=3,
        output_dir=str(tmp_path / "run"),
    )


@pytest.mark.parametrize(
    "value, message",
    [
        (4, r"whole_domain_test must be a mapping of window fields \(e.g. \{stride: 4\}\) or null, got 4"),
        (
            {"tile_size": 16},
            r"may set \['stride', 'downsample', 'timestep', 'min_valid_fraction'\], not \['tile_size'\]",
        ),
    ],
)
def test_the_option_is_checked_with_the_run(tmp_path, value, message):
    with pytest.raises(ValueError, match=message):
        radar_run(tmp_path, whole_domain_test=value)


def test_the_option_needs_named_test_events(tmp_path):
    args = radar_run(tmp_path, whole_domain_test={"stride": 2})
    assert whole_domain_test(args) == {"stride": 2}
    args.data["test_events"] = []
    with pytest.raises(ValueError, match="name them in data.test_events"):
        check_rain_data(args)


def test_each_test_event_is_cut_into_windows_of_its_whole_grid(tmp_path):
    args = radar_run(tmp_path, whole_domain_test={"stride": 3}, event_overrides={"west": {"downsample": 2}})
    east, west = (whole_domain_arguments(args, event) for event in ("east", "west"))
    assert east.data["tile_size"] == [32, 32] and west.data["tile_size"] == [12, 12]  # 24 px downsampled 2x
    assert east.data["events"] == ["east"] and east.data["test_events"] == ["east"]
    assert "whole_domain_test" not in east.data and east.data["stride"] == 3
    assert east.data["min_valid_fraction"] == 0.0  # a whole grid may be mostly outside the radars' range
    windows = load_rain_datasets(west, splits=("test",))["test"]
    # 12 frames, 6 a window, an origin every 3 frames: 3 windows, each the whole 12 x 12 grid
    assert len(windows) == 3 and np.asarray(windows[0]["rain_rate"]).shape == (6, 1, 12, 12)
    assert set(windows["event"]) == {"west"}


def fake_results(scale: float, windows: int, *, nan: bool = False) -> dict:
    return {
        "num_windows": windows,
        "num_input_frames": 3,
        "num_output_frames": 2,
        "timestep_minutes": 5.0,
        "thresholds": [0.5, 1.0],
        "fss_windows": [4],
        "methods": {
            "model": {
                "overall": {"csi@0.5": 0.2 * scale, "far@5": math.nan if nan else 0.1, "mae": scale},
                "per_lead_time": {"csi@0.5": [0.3 * scale, 0.1 * scale], "mae": [scale, 2 * scale]},
                "num_members": 3,
                "probabilistic": {"overall": {"crps": scale, "rank_histogram": [0.5, 0.25, 0.25]}},
            },
            "persistence": {"overall": {"csi@0.5": 0.1, "mae": 2.0}, "per_lead_time": {}},
        },
        "motion": {
            "overall": {
                "cosine": scale,
                "model_speed": 1.0,
                "lucas_kanade_speed": 1.0,
                "model_mean": [scale, 0.0],
                "lucas_kanade_mean": [1.0, 0.0],
                "windows": windows,
                "wet_pixels": 100 * windows,
            },
            "by_event": {},
            "wet_threshold": 1.0,
        },
    }


def test_the_mean_over_events_averages_every_score_and_sums_the_windows():
    merged = mean_results(
        {"a": fake_results(1.0, 2), "b": fake_results(3.0, 6, nan=True)}, {"a": (32, 32), "b": (24, 24)}
    )
    model = merged["methods"]["model"]
    assert model["overall"]["csi@0.5"] == pytest.approx(0.4) and model["overall"]["mae"] == pytest.approx(2.0)
    assert math.isnan(model["overall"]["far@5"])  # undefined on one event: no mean
    assert model["per_lead_time"]["mae"] == pytest.approx([2.0, 4.0])
    assert model["probabilistic"]["overall"]["crps"] == pytest.approx(2.0) and model["num_members"] == 3
    assert model["probabilistic"]["overall"]["rank_histogram"] == pytest.approx([0.5, 0.25, 0.25])
    assert merged["num_windows"] == 8 and merged["timestep_minutes"] == 5.0
    # counts the same on every event stay counts: "3 observed -> 2 forecast frames", "3 members"
    assert merged["num_input_frames"] == 3 and isinstance(merged["num_input_frames"], int)
    assert isinstance(model["num_members"], int)
    assert merged["events"] == {
        "a": {"num_windows": 2, "grid": [32, 32]},
        "b": {"num_windows": 6, "grid": [24, 24]},
    }
    # The motion: pooled over wet pixels (event b has three times a's), each event's row kept.
    motion = merged["motion"]
    assert motion["overall"]["cosine"] == pytest.approx((1.0 * 200 + 3.0 * 600) / 800)
    assert motion["overall"]["model_mean"] == pytest.approx([2.5, 0.0]) and motion["overall"]["windows"] == 8
    assert set(motion["by_event"]) == {"a", "b"}
    report = describe_scoring(merged)
    assert report.startswith("Whole radar domains of 2 held-out events (a: 32 x 32, 2 windows; b: 24 x 24, 6")
    assert "the mean over the events" in report


def test_methods_missing_on_an_event_are_left_out_and_empty_input_is_refused():
    partial = fake_results(1.0, 2)
    del partial["methods"]["persistence"]
    assert list(mean_results({"a": fake_results(1.0, 2), "b": partial})["methods"]) == ["model"]
    with pytest.raises(ValueError, match="at least one event"):
        mean_results({})
    assert mean_motion({}) is None
