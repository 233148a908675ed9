"""Nowcast evaluation: windows in the rain_storage schema -> every method through NowcastVerifier -> tables."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from bidirectional_conv_lstm.data.rain.storage import decode_windows, encode_rain_rate, rain_window_features
from bidirectional_conv_lstm.nowcasting.baselines import persistence_forecast
from bidirectional_conv_lstm.nowcasting.evaluation import (
    evaluate_nowcasts,
    format_scores_table,
    nowcast_report,
    score_value,
)
from bidirectional_conv_lstm.nowcasting.verification import NowcastVerifier
from test_nowcasting_baselines import translated_rain

T_IN, T_OUT, SIZE = 3, 4, 48
CORNER = (slice(None), slice(0, 6), slice(0, 6))  # no radar data there, in every frame


@pytest.fixture(scope="module")
def windows() -> datasets.Dataset:
    rows = []
    for seed in range(4):
        rain = translated_rain(T_IN + T_OUT + 1, SIZE, seed)  # one frame more than needed: it is ignored
        valid = np.ones(rain.shape, dtype=bool)
        valid[CORNER] = False
        rows.append(
            {
                "rain_rate": encode_rain_rate(rain, valid)[:, None],
                "event": f"e{seed}",
                "origin": "",
                "y": 0,
                "x": 0,
            }
        )
    return datasets.Dataset.from_list(rows, features=rain_window_features(T_IN + T_OUT + 1, SIZE, SIZE))


def persistence_by_hand(observed, valid=None, *, num_output_frames):
    return persistence_forecast(observed, valid, num_output_frames=num_output_frames)


def test_every_method_is_scored_the_same_way(windows, tmp_path):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    results = evaluate_nowcasts(
        windows,
        {"persistence": "persistence", "extrapolation": "lucas_kanade", "callable": persistence_by_hand},
        num_input_frames=T_IN,
        num_output_frames=T_OUT,
        timestep_minutes=5,
        batch_size=3,  # a full batch and a partial one
        output_dir=tmp_path,
    )
    methods = results["methods"]
    assert results["num_windows"] == 4 and list(methods) == ["persistence", "extrapolation", "callable"]
    assert methods["callable"]["overall"] == methods["persistence"]["overall"]
    # The evaluation's persistence scores are those of a verifier fed the decoded windows directly.
    observed, observed_valid, future, future_valid = decode_windows(
        windows.with_format("numpy")[:]["rain_rate"], T_IN, T_OUT
    )
    verifier = NowcastVerifier()
    verifier.update(
        persistence_forecast(observed, observed_valid, num_output_frames=T_OUT), future, future_valid
    )
    reference = verifier.compute()["overall"]
    for key, value in methods["persistence"]["overall"].items():
        assert value == pytest.approx(reference[key], rel=1e-9, abs=1e-12, nan_ok=True), key
    # The rain moves, so extrapolation wins by a wide margin.
    assert score_value(methods["extrapolation"], "csi@1") > score_value(methods["persistence"], "csi@1") + 0.2
    assert score_value(methods["extrapolation"], "mae") < 0.5 * score_value(methods["persistence"], "mae")
    for lead_time in range(1, T_OUT + 1):
        assert 0 <= score_value(methods["extrapolation"], "csi@0.5", lead_time) <= 1
    assert json.loads((tmp_path / "metrics.json").read_text())["methods"].keys() == methods.keys()
    table = (tmp_path / "metrics.md").read_text()
    assert all(f"| {name} |" in table for name in methods) and "CSI-M" in table and "FSS 1 (16 px)" in table
    assert (tmp_path / "scores_by_lead_time.png").stat().st_size > 10_000


def test_no_data_pixels_are_not_scored(windows):
    def noisy_where_no_data(observed, valid=None, *, num_output_frames):
        forecast = persistence_forecast(observed, valid, num_output_frames=num_output_frames)
        forecast[(slice(None), *CORNER)] = 500.0  # the truth has no data there: must not count
        return forecast

    results = evaluate_nowcasts(
        windows,
        {"persistence": "persistence", "noisy": noisy_where_no_data},
        num_input_frames=T_IN,
        num_output_frames=T_OUT,
    )
    assert results["methods"]["noisy"]["overall"] == results["methods"]["persistence"]["overall"]


def test_context_is_seen_by_forecasters_but_not_scored(windows):
    context = 8
    inner = (slice(None), slice(None), slice(context, -context), slice(context, -context))
    seen = []

    def spy(observed, valid=None, *, num_output_frames):
        seen.append(tuple(observed.shape[-2:]))
        return persistence_forecast(observed, valid, num_output_frames=num_output_frames)

    def wrong_outside(observed, valid=None, *, num_output_frames):
        forecast = persistence_forecast(observed, valid, num_output_frames=num_output_frames)
        outside = np.ones(forecast.shape[-2:], bool)
        outside[context:-context, context:-context] = False
        forecast[..., outside] = 500.0  # around the tile: must not count
        return forecast

    kwargs = {"num_input_frames": T_IN, "num_output_frames": T_OUT, "batch_size": 4}
    results = evaluate_nowcasts(
        windows, {"persistence": spy, "wrong": wrong_outside}, context=context, **kwargs
    )
    assert seen == [(SIZE, SIZE)] and results["context"] == context
    assert results["methods"]["wrong"]["overall"] == results["methods"]["persistence"]["overall"]
    # The scores are those of the cropped tiles, FSS windows at the tile's edge included.
    observed, observed_valid, future, future_valid = decode_windows(
        windows.with_format("numpy")[:]["rain_rate"], T_IN, T_OUT
    )
    verifier = NowcastVerifier()
    forecast = persistence_forecast(observed, observed_valid, num_output_frames=T_OUT)
    verifier.update(forecast[inner], future[inner], future_valid[inner])
    reference = verifier.compute()["overall"]
    for key, value in results["methods"]["persistence"]["overall"].items():
        assert value == pytest.approx(reference[key], rel=1e-9, abs=1e-12, nan_ok=True), key
    assert "saw 8 px of surroundings" in nowcast_report(results)
    assert (
        results["methods"]["persistence"]["overall"]
        != evaluate_nowcasts(windows, ["persistence"], **kwargs)["methods"]["persistence"]["overall"]
    )
    for bad in (-1, SIZE // 2, True):
        with pytest.raises(ValueError, match="context must be|leaves nothing"):
            evaluate_nowcasts(windows, {"spy": spy}, context=bad, **kwargs)
    assert seen == [(SIZE, SIZE)]


def test_the_accelerator_path_gives_the_same_scores(windows):
    from accelerate import Accelerator

    kwargs = {"num_input_frames": T_IN, "num_output_frames": T_OUT, "batch_size": 3}
    alone = evaluate_nowcasts(windows, ["persistence"], **kwargs)
    accelerated = evaluate_nowcasts(windows, ["persistence"], accelerator=Accelerator(cpu=True), **kwargs)
    assert accelerated["methods"]["persistence"]["overall"] == pytest.approx(
        alone["methods"]["persistence"]["overall"], nan_ok=True
    )


def test_tables_overall_and_at_one_lead_time(windows):
    results = evaluate_nowcasts(windows, ["persistence"], num_input_frames=T_IN, num_output_frames=T_OUT)
    table = format_scores_table(
        results, lead_time=T_OUT, csi_thresholds=[0.5, 2], fss_windows=[16], errors=False
    )
    header, _, row = table.splitlines()
    assert header == "| method | CSI 0.5 | CSI 2 | FSS 1 (16 px) |"
    expected = score_value(results["methods"]["persistence"], "csi@2", T_OUT)
    assert row.split("|")[3].strip() == f"{expected:.3f}"
    overall = format_scores_table(results).splitlines()[0]
    assert overall.count("CSI ") == 5 and "MAE" in overall and "MSE" in overall


def test_bad_arguments_fail_before_any_forecast(windows):
    calls = []

    def spy(observed, valid=None, *, num_output_frames):
        calls.append(1)
        return persistence_forecast(observed, valid, num_output_frames=num_output_frames)

    with pytest.raises(ValueError, match="fewer than num_input_frames"):
        evaluate_nowcasts(windows, {"spy": spy}, num_input_frames=6, num_output_frames=6)
    with pytest.raises(ValueError, match="unknown baseline 'rover'"):
        evaluate_nowcasts(windows, ["rover"], num_input_frames=T_IN, num_output_frames=T_OUT)
    with pytest.raises(ValueError, match="num_output_frames"):
        evaluate_nowcasts(windows, {"spy": spy}, num_input_frames=T_IN, num_output_frames=0)
    with pytest.raises(ValueError, match=r"num_input_frames=2 is too few for \{'sprog': 3\}"):
        evaluate_nowcasts(
            windows, {"spy": spy, "sprog": "sprog"}, num_input_frames=2, num_output_frames=T_OUT
        )
    assert not calls
    with pytest.raises(ValueError, match="'short' returned shape"):
        evaluate_nowcasts(
            windows,
            {"short": lambda observed, valid=None, *, num_output_frames: observed[:, :1]},
            num_input_frames=T_IN,
            num_output_frames=T_OUT,
        )


def run_evaluate_script(monkeypatch, *argv: str) -> None:
    main = runpy.run_path(str(Path(__file__).parents[1] / "scripts" / "evaluate.py"), run_name="evaluate")[
        "main"
    ]
    monkeypatch.setattr(sys, "argv", ["evaluate.py", *argv])
    main()


def tiny_synthetic_rain(cache_dir: Path, size: int = 32) -> dict:
    """Data options of a two-window synthetic_rain test split (`size` x `size`, 8 frames)."""
    return {
        "num_train": 1,
        "num_validation": 1,
        "num_test": 2,
        "size": size,
        "num_frames": 8,
        "cache_dir": str(cache_dir),
    }


def tiny_rain_model(path: Path, **overrides) -> str:
    """A saved tiny rain-rate model with an advection head (patch_size 4), its folder."""
    from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction

    torch.manual_seed(0)
    options = dict(
        hidden_sizes=[8],
        patch_size=4,
        num_input_frames=4,
        num_output_frames=2,
        advection=True,
        rain_rate_transform={"kind": "log1p"},
    )
    model = ConvLSTMForFramePrediction(ConvLSTMConfig(**{**options, **overrides}))
    with torch.no_grad():  # a head that moves the rain: the motion check has something to compare
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    model.save_pretrained(path)
    return str(path)


def test_evaluate_script_scores_baselines_on_rain_data(monkeypatch, tmp_path, capsys):
    data = tiny_synthetic_rain(tmp_path)
    run_evaluate_script(
        monkeypatch,
        *("--dataset", "synthetic_rain", "--data", json.dumps(data), "--baselines", "persistence"),
        *("--num_input_frames", "3", "--num_output_frames", "5", "--output_dir", str(tmp_path / "eval")),
    )
    results = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert results["num_windows"] == 2 and list(results["methods"]) == ["persistence"]
    assert "| persistence |" in capsys.readouterr().out
    for argv in (
        ["--dataset", "moving_mnist", "--baselines", "sprog", "--model", "x"],
        ["--dataset", "moving_mnist"],
    ):
        with pytest.raises(SystemExit):
            run_evaluate_script(monkeypatch, *argv)
    assert "--baselines applies to rain-rate datasets" in capsys.readouterr().err


def test_a_saved_model_is_scored_under_the_requested_precision(monkeypatch, tmp_path):
    from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
    from bidirectional_conv_lstm.nowcasting.evaluation import evaluate_rain_dataset

    config = ConvLSTMConfig(
        num_channels=1, hidden_sizes=[4], patch_size=4, rain_rate_transform={"kind": "log1p"}
    )
    ConvLSTMForFramePrediction(config).save_pretrained(tmp_path / "model")
    autocast_in_forward = []
    forward = ConvLSTMForFramePrediction.forward

    def spy(self, *args, **kwargs):
        autocast_in_forward.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(ConvLSTMForFramePrediction, "forward", spy)
    data = tiny_synthetic_rain(tmp_path)
    from accelerate.state import AcceleratorState

    scores = {}
    for precision in ("no", "bf16"):
        AcceleratorState._reset_state(True)  # one precision per process otherwise
        results = evaluate_rain_dataset(
            "synthetic_rain",
            data=data,
            model_name_or_path=str(tmp_path / "model"),
            num_input_frames=3,
            num_output_frames=5,
            mixed_precision=precision,
        )
        scores[precision] = results["methods"]["model"]["overall"]["mae"]
    AcceleratorState._reset_state(True)
    assert autocast_in_forward == [False, torch.bfloat16]
    assert scores["bf16"] == pytest.approx(scores["no"], rel=0.05)


def test_a_model_and_its_motion_are_scored_on_windows_of_any_size(tmp_path):
    # 30 x 30 windows for a patch_size=4 model: the forecast and the motion check pad to 32 x 32 and crop back.
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    from bidirectional_conv_lstm.nowcasting.evaluation import evaluate_rain_dataset

    results = evaluate_rain_dataset(
        "synthetic_rain",
        data=tiny_synthetic_rain(tmp_path, size=30),
        baselines=["persistence"],
        model_name_or_path=tiny_rain_model(tmp_path / "model"),
        num_input_frames=3,
        num_output_frames=4,
    )
    assert results["num_windows"] == 2 and list(results["methods"]) == ["model", "persistence"]
    for method in results["methods"].values():
        assert np.isfinite(method["overall"]["mae"])
    assert results["motion"]["overall"]["windows"] >= 1  # the motion of 30 x 30 windows was measured


def test_shape_problems_fail_in_one_line_before_the_windows_are_read(monkeypatch, tmp_path, capsys):
    from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
    from bidirectional_conv_lstm.nowcasting import evaluation

    def no_windows(*args, **kwargs):
        raise AssertionError("the windows were read before the checks")

    monkeypatch.setattr(evaluation, "load_rain_datasets", no_windows)
    data = json.dumps(tiny_synthetic_rain(tmp_path))
    ConvLSTMForFramePrediction(ConvLSTMConfig(hidden_sizes=[4], num_channels=3)).save_pretrained(
        tmp_path / "rgb"
    )
    cases = [
        (
            ["--model", str(tmp_path / "rgb"), "--num_input_frames", "3", "--num_output_frames", "4"],
            "the model must be a rain-rate model (config.rain_rate_transform set, num_channels=1)",
        ),
        (
            ["--baselines", "sprog", "--num_input_frames", "2", "--num_output_frames", "4"],
            "num_input_frames=2 is too few for {'sprog': 3}",
        ),
        (
            ["--model", tiny_rain_model(tmp_path / "model"), "--num_output_frames", "6"],
            "the synthetic_rain windows hold 8 frames, fewer than num_input_frames + num_output_frames = 10",
        ),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            run_evaluate_script(monkeypatch, "--dataset", "synthetic_rain", "--data", data, *argv)
        line = exit_info.value.code  # the one line printed, no usage block
        assert line.startswith(f"evaluate.py: error: {message}") and "\n" not in line
    assert "usage:" not in capsys.readouterr().err


RADAR_ROOT = Path(__file__).parents[1] / "../shared/radar"


@pytest.mark.slow
@pytest.mark.skipif(not (RADAR_ROOT / "fmi").is_dir(), reason="the shared radar events are not here")
def test_the_script_scores_a_whole_radar_domain_that_is_no_multiple_of_the_patch(monkeypatch, tmp_path):
    # The report of issue #21: FMI's whole 4 km domain (306 x 190, 306 and 190 not multiples of 4) with a
    # patch_size=4 advection model; the motion check failed after the baselines and the model had run.
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    from bidirectional_conv_lstm.nowcasting import motion

    shapes = []
    model_motion = motion.model_motion

    def spy(model, observed, *args, **kwargs):
        shapes.append(tuple(observed.shape))
        return model_motion(model, observed, *args, **kwargs)

    monkeypatch.setattr(motion, "model_motion", spy)
    data = {
        "root": str(RADAR_ROOT),
        "events": ["fmi_20170509"],
        "split": "event",
        "test_events": ["fmi_20170509"],
        "downsample": 4,  # 1 km -> 4 km
        "tile_size": [306, 190],  # the whole domain: one window per origin
        "stride": 12,
        "cache_dir": str(tmp_path / "cache"),
    }
    run_evaluate_script(
        monkeypatch,
        *("--dataset", "radar", "--data", json.dumps(data), "--baselines", "persistence"),
        *("--model", tiny_rain_model(tmp_path / "model"), "--output_dir", str(tmp_path / "eval")),
    )
    results = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert results["num_windows"] >= 2 and list(results["methods"]) == ["model", "persistence"]
    assert shapes and {shape[-2:] for shape in shapes} == {(306, 190)}
    assert results["motion"]["overall"]["wet_pixels"] > 0
