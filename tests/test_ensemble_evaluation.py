"""Ensemble methods in the nowcast evaluation: members to an EnsembleVerifier, their mean to a NowcastVerifier."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch

from bidirectional_conv_lstm.data.rain.storage import decode_windows, encode_rain_rate, rain_window_features
from bidirectional_conv_lstm.nowcasting.baselines import persistence_forecast, steps_forecast
from bidirectional_conv_lstm.nowcasting.ensemble_verification import EnsembleVerifier
from bidirectional_conv_lstm.nowcasting.evaluation import (
    evaluate_nowcasts,
    nowcast_report,
    score_nowcasts,
)
from bidirectional_conv_lstm.nowcasting.radar_baselines import _on_event_grid, run_radar_baselines
from bidirectional_conv_lstm.nowcasting.tables import format_ensemble_table, rank_histogram_deviation
from bidirectional_conv_lstm.nowcasting.verification import NowcastVerifier
from test_nowcasting_baselines import translated_rain
from test_radar_baselines import stack_source

T_IN, T_OUT, SIZE = 3, 3, 32
FACTORS = (0.5, 1.0, 1.5)  # the fake ensemble: persistence scaled by each


@pytest.fixture(scope="module")
def windows() -> datasets.Dataset:
    rows = []
    for seed in range(4):
        rain = translated_rain(T_IN + T_OUT, SIZE, seed)
        valid = np.ones(rain.shape, dtype=bool)
        valid[:, :4, :4] = False
        rows.append(
            {"rain_rate": encode_rain_rate(rain, valid)[:, None], "event": "e", "origin": "", "y": 0, "x": 0}
        )
    return datasets.Dataset.from_list(rows, features=rain_window_features(T_IN + T_OUT, SIZE, SIZE))


def scaled_ensemble(observed, valid=None, *, num_output_frames):
    persisted = torch.from_numpy(persistence_forecast(observed, valid, num_output_frames=num_output_frames))
    return torch.stack([persisted * factor for factor in FACTORS], dim=1)  # (B, 3, T, H, W)


scaled_ensemble.num_members = 3


def constant_ensemble(observed, valid=None, *, num_output_frames):
    persisted = persistence_forecast(observed, valid, num_output_frames=num_output_frames)
    return np.repeat(persisted[:, None], 2, axis=1)


constant_ensemble.num_members = 2

KWARGS = {"num_input_frames": T_IN, "num_output_frames": T_OUT, "batch_size": 3}


def decoded(windows):
    return decode_windows(windows.with_format("numpy")[:]["rain_rate"], T_IN, T_OUT)


def test_members_and_their_mean_are_scored_as_the_verifiers_score_them(windows):
    results = evaluate_nowcasts(
        windows, {"ensemble": scaled_ensemble, "persistence": "persistence"}, **KWARGS
    )
    entry = results["methods"]["ensemble"]
    assert entry["num_members"] == 3 and results["probability_thresholds"] == [0.5, 1.0, 2.0, 5.0]
    assert "probabilistic" not in results["methods"]["persistence"]
    observed, observed_valid, future, future_valid = decoded(windows)
    members = scaled_ensemble(observed, observed_valid, num_output_frames=T_OUT)
    ensemble = EnsembleVerifier()
    ensemble.update(members, future, future_valid)
    reference = ensemble.compute()
    for key in ("crps", "bss@1", "roc_auc@1", "spread_skill"):
        assert entry["probabilistic"]["overall"][key] == pytest.approx(reference["overall"][key], rel=1e-9), (
            key
        )
    assert entry["probabilistic"]["curves"]["overall"]["rank_histogram"] == pytest.approx(
        reference["curves"]["overall"]["rank_histogram"]
    )
    deterministic = NowcastVerifier()
    deterministic.update(members.mean(1), future, future_valid)
    for key, value in deterministic.compute()["overall"].items():
        assert entry["overall"][key] == pytest.approx(value, rel=1e-9, nan_ok=True), key
    assert len(entry["per_lead_time"]["mae"]) == T_OUT == len(entry["probabilistic"]["per_lead_time"]["crps"])
    assert json.loads(json.dumps(results))["methods"]["ensemble"]["num_members"] == 3


def test_a_constant_ensemble_has_the_crps_of_the_mae_of_its_forecast(windows):
    results = evaluate_nowcasts(
        windows, {"constant": constant_ensemble, "persistence": "persistence"}, **KWARGS
    )
    constant, persisted = results["methods"]["constant"], results["methods"]["persistence"]
    assert constant["probabilistic"]["overall"]["crps"] == pytest.approx(
        persisted["overall"]["mae"], rel=1e-6
    )
    assert constant["overall"] == pytest.approx(persisted["overall"], nan_ok=True)  # its mean is persistence


def test_a_forecaster_can_name_its_deterministic_product(windows):
    def first_member_product(observed, valid=None, *, num_output_frames):
        return scaled_ensemble(observed, valid, num_output_frames=num_output_frames)

    first_member_product.num_members = 3
    first_member_product.deterministic = lambda members: members[:, 0]

    def half(observed, valid=None, *, num_output_frames):
        return FACTORS[0] * persistence_forecast(observed, valid, num_output_frames=num_output_frames)

    results = evaluate_nowcasts(windows, {"ensemble": first_member_product, "half": half}, **KWARGS)
    methods = results["methods"]
    assert methods["ensemble"]["overall"] == pytest.approx(methods["half"]["overall"], nan_ok=True)


def test_wrong_member_counts_and_shapes_are_named_before_scoring(windows):
    calls = []

    def spy(observed, valid=None, *, num_output_frames):
        calls.append(1)
        return scaled_ensemble(observed, valid, num_output_frames=num_output_frames)

    for bad in (1, 2.5, True):
        spy.num_members = bad
        with pytest.raises(ValueError, match=f"'spy' has num_members={bad!r}; expected an int >= 2"):
            score_nowcasts(windows, {"spy": spy}, **KWARGS)
    assert not calls
    spy.num_members = 4  # returns 3
    with pytest.raises(
        ValueError, match=r"'spy' returned shape \(3, 3, 3, 32, 32\), expected \(B, N, T, H, W\)"
    ):
        score_nowcasts(windows, {"spy": spy}, **KWARGS)

    def deterministic_shape(observed, valid=None, *, num_output_frames):
        return persistence_forecast(observed, valid, num_output_frames=num_output_frames)

    deterministic_shape.num_members = 3
    with pytest.raises(ValueError, match="members"):
        score_nowcasts(windows, {"flat": deterministic_shape}, **KWARGS)
    del spy.num_members  # members without the attribute that says so
    with pytest.raises(ValueError, match="expected \\(B, T, H, W\\).*num_members attribute"):
        score_nowcasts(windows, {"spy": spy}, **KWARGS)


def test_merged_halves_and_the_accelerator_give_the_same_scores(windows):
    from accelerate import Accelerator

    methods = {"ensemble": scaled_ensemble}
    whole, _, _ = score_nowcasts(windows, methods, **KWARGS)
    first, _, _ = score_nowcasts(windows.select(range(2)), methods, **KWARGS)
    second, _, _ = score_nowcasts(windows.select(range(2, 4)), methods, **KWARGS)
    merged = first["ensemble"].merge(second["ensemble"]).compute()
    expected = whole["ensemble"].compute()
    assert merged["probabilistic"]["overall"] == pytest.approx(
        expected["probabilistic"]["overall"], nan_ok=True
    )
    assert merged["overall"] == pytest.approx(expected["overall"], nan_ok=True)
    accelerated = evaluate_nowcasts(windows, methods, accelerator=Accelerator(cpu=True), **KWARGS)
    assert accelerated["methods"]["ensemble"]["probabilistic"]["overall"]["crps"] == pytest.approx(
        expected["probabilistic"]["overall"]["crps"]
    )


def test_the_ensemble_table_and_pictures_appear_only_with_an_ensemble(windows, tmp_path):
    alone = evaluate_nowcasts(windows, ["persistence"], output_dir=tmp_path / "deterministic", **KWARGS)
    assert "Ensembles" not in nowcast_report(alone)
    assert not (tmp_path / "deterministic" / "reliability.png").exists()
    with pytest.raises(ValueError, match="no ensemble method"):
        format_ensemble_table(alone)
    results = evaluate_nowcasts(
        windows, {"persistence": "persistence", "ensemble": scaled_ensemble}, output_dir=tmp_path, **KWARGS
    )
    report = nowcast_report(results, lead_times=[2])
    assert (
        "**Ensembles, all lead times pooled**" in report and "**Ensembles, lead time 2 (frames)**" in report
    )
    header, _, row = format_ensemble_table(results).splitlines()
    assert header == (
        "| method | members | CRPS | BSS 0.5 | BSS 1 | BSS 2 | BSS 5 | ROC area 1 | spread/skill | RH max dev |"
    )
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    probabilistic = results["methods"]["ensemble"]["probabilistic"]
    assert cells[:3] == ["ensemble", "3", f"{probabilistic['overall']['crps']:.3f}"]
    deviation = rank_histogram_deviation(probabilistic["curves"]["overall"]["rank_histogram"])
    assert (
        cells[-1] == f"{deviation:.2f}" and deviation > 0.5
    )  # a scaled persistence is no calibrated ensemble
    assert "| ensemble |" in (tmp_path / "metrics.md").read_text()
    for name in ("reliability.png", "rank_histograms.png"):
        assert (tmp_path / name).stat().st_size > 5_000


def test_rank_histogram_deviation():
    assert rank_histogram_deviation([0.25] * 4) == pytest.approx(0.0)
    assert rank_histogram_deviation([1.0, 0.0, 0.0, 0.0]) == pytest.approx(3.0)  # M = 3, all in one bin
    with pytest.raises(ValueError, match="histogram"):
        rank_histogram_deviation([1.0])


def test_steps_is_scored_as_an_ensemble_beside_persistence(windows):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    results = evaluate_nowcasts(windows, ["persistence", "steps"], max_windows=1, **KWARGS)
    steps = results["methods"]["steps"]
    assert steps["num_members"] == 20 and np.isfinite(steps["probabilistic"]["overall"]["crps"])
    assert len(steps["probabilistic"]["curves"]["overall"]["rank_histogram"]) == 21
    assert np.isfinite(steps["overall"]["mae"])


def test_radar_baselines_score_steps_as_an_ensemble_on_the_event_grid(tmp_path):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    sources = {"a": stack_source(tmp_path, "a", 8, 5, seed=0), "b": stack_source(tmp_path, "b", 8, 5, seed=1)}
    report = run_radar_baselines(
        sources,
        tmp_path / "out",
        methods=["persistence", "steps", "anvil"],
        num_input_frames=4,
        num_output_frames=3,
        origin_every_minutes=5,
        pixel_km=None,
        lead_time_minutes=10,
        max_windows_per_event=1,
        log=lambda line: None,
    )
    pooled = report["pooled"]["5min"]["methods"]
    assert pooled["steps"]["num_members"] == 20 and "probabilistic" not in pooled["anvil"]
    crps = [
        report["events"][name]["results"]["methods"]["steps"]["probabilistic"]["overall"]["crps"]
        for name in "ab"
    ]
    assert min(crps) - 1e-9 <= pooled["steps"]["probabilistic"]["overall"]["crps"] <= max(crps) + 1e-9
    out = tmp_path / "out"
    table = (out / "baselines.md").read_text()
    assert "| anvil |" in table and "RH max dev" in table and "| steps | 20 |" in table
    pictures = (
        "5min_reliability.png",
        "5min_rank_histograms.png",
        "a/steps_members.png",
        "a/steps_exceedance.png",
    )
    for path in (*pictures, "a/forecast_strip.png"):
        assert (out / path).stat().st_size > 1000, path
    # STEPS' motion perturbations and rain mask get an event's pixel size and time step when it has them.
    grid = {"pixel_km": 1.0, "timestep_minutes": 10.0}
    on_grid = _on_event_grid({"steps": steps_forecast, "persistence": persistence_forecast}, grid)
    assert on_grid["steps"].keywords == {"kmperpixel": 1.0, "timestep_minutes": 10.0}
    assert on_grid["steps"].num_members == 20 and on_grid["persistence"] is persistence_forecast
