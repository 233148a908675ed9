"""scripts/benchmark_ensemble.py --quick (benchmarks/ensemble_speed.py): members from the model and from STEPS on
the same small domain, side by side. No timing is asserted: the figures must only be there, positive, and the
ratio the one of the seconds reported."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from bidirectional_conv_lstm.benchmarks.ensemble_speed import benchmark_ensemble_speed, recipe_ensemble_model

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("pysteps")


def test_quick_run_times_model_members_beside_steps(tmp_path, capsys):
    script = runpy.run_path(str(ROOT / "scripts" / "benchmark_ensemble.py"))
    output = tmp_path / "ensemble.json"
    result = script["main"](["--quick", "--output-json", str(output)])
    printed = capsys.readouterr().out
    assert json.loads(output.read_text())["seconds"] == result["seconds"]
    assert (result["size"], result["num_members"], result["num_output_frames"]) == (64, 3, 2)
    seconds = result["seconds"]
    assert set(seconds) == {"model", "steps", "steps_without_motion", "motion"} and min(seconds.values()) > 0
    assert result["speedup"] == pytest.approx(seconds["steps"] / seconds["model"])
    assert (
        "3 members x 2 frames of 64 x 64" in printed and "| STEPS with its Lucas-Kanade motion |" in printed
    )
    assert result["model"] == "recipe config, random weights" and result["cpu"]


def test_the_benchmark_model_is_the_recipe_model_with_noise_and_bad_sizes_are_refused():
    model = recipe_ensemble_model(noise_channels=4)
    assert model.config.ensemble_noise_channels == 4 and model.forecaster.noise_injection is not None
    assert (
        model.config.hidden_sizes == [32, 32] and model.config.advection
    )  # configs/nowcasting_synthetic.yaml
    with pytest.raises(ValueError, match="num_input_frames must be an int >= 3, got 2"):
        benchmark_ensemble_speed(model, num_input_frames=2)
    with pytest.raises(ValueError, match="size must be a positive int, got 0"):
        benchmark_ensemble_speed(model, size=0)
