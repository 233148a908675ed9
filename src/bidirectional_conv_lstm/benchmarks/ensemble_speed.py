"""How fast is an ensemble from the model against pysteps' STEPS? Seconds for ``N`` members of ``T`` frames of one
``H x W`` domain, both methods on the same observed frames, timed side by side in one run (alternating, the median
of ``repeats`` after a warm-up).

- the model: :func:`~bidirectional_conv_lstm.models.convlstm.forecasting_convlstm.forecast_rain_rate` with
  ``num_members=N`` of the CPU recipe's model (configs/nowcasting_synthetic.yaml) with noise injection
  (``ensemble_noise_channels``), fp32, in this process's threads; the weights are random unless a trained model is
  given (its speed does not depend on them);
- STEPS: :func:`~bidirectional_conv_lstm.nowcasting.baselines.steps_forecast` (20 members by default, its default
  noise, one worker, numpy FFT), timed with its Lucas-Kanade motion field (what a user runs) and, apart, from a
  motion field computed beforehand (STEPS alone).

The observed frames are synthetic rain from the project's generator (:mod:`~bidirectional_conv_lstm.data.rain`), so
the benchmark needs no radar data.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ..data.rain.synthetic import iter_synthetic_rain
from ..models.convlstm.argument_checks import check_int
from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction
from ..nowcasting.baselines import lucas_kanade_motion, steps_forecast
from ..training.arguments import load_training_arguments

__all__ = ["RECIPE_CONFIG", "benchmark_ensemble_speed", "ensemble_speed_table", "recipe_ensemble_model"]

RECIPE_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "nowcasting_synthetic.yaml"


def recipe_ensemble_model(
    config: str | Path = RECIPE_CONFIG, noise_channels: int = 8
) -> ConvLSTMForFramePrediction:
    """The CPU recipe's model (its config file's model section) with ``noise_channels`` noise channels, random
    weights (seed 0), in eval mode."""
    args = load_training_arguments(config, {})
    model_config = args.model_config()
    model_config.ensemble_noise_channels = check_int("noise_channels", noise_channels)
    torch.manual_seed(0)
    return ConvLSTMForFramePrediction(model_config).eval()


def _observed(size: int, num_input_frames: int, seed: int) -> np.ndarray:
    """(1, T_in, size, size) mm/h of synthetic rain with rain in it."""
    rain = next(iter_synthetic_rain(1, seed=seed, num_frames=num_input_frames, size=size))
    return rain.astype(np.float32)


def _median_seconds(functions: dict, repeats: int) -> dict[str, float]:
    """Each function timed ``repeats`` times after one warm-up call, alternating between them; medians."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for index in range(repeats + 1):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            if index:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def benchmark_ensemble_speed(
    model: ConvLSTMForFramePrediction | None = None,
    *,
    size: int = 256,
    num_members: int = 20,
    num_input_frames: int = 4,
    num_output_frames: int = 12,
    repeats: int = 3,
    seed: int = 0,
) -> dict:
    """Seconds for ``num_members`` members of ``num_output_frames`` frames of one ``size x size`` domain: the
    model (:func:`recipe_ensemble_model` when None) against STEPS, side by side.

    Returns:
        ``{"size", "num_members", "num_input_frames", "num_output_frames", "repeats", "threads", "seconds":
        {"model": s, "steps": s, "steps_without_motion": s, "motion": s}, "speedup": steps / model,
        "speedup_without_motion": ...}``.
    """
    for name, value in (("size", size), ("num_members", num_members), ("repeats", repeats)):
        check_int(name, value)
    check_int("num_input_frames", num_input_frames, minimum=3)  # STEPS' AR(2) model
    check_int("num_output_frames", num_output_frames)
    model = recipe_ensemble_model() if model is None else model
    observed = _observed(size, num_input_frames, seed)
    motion = lucas_kanade_motion(observed)
    frames = dict(num_output_frames=num_output_frames)
    functions = {
        "model": lambda: model.forecast_rain_rate(observed, num_members=num_members, seed=seed, **frames),
        "steps": lambda: steps_forecast(observed, num_members=num_members, seed=seed, **frames),
        "steps_without_motion": lambda: steps_forecast(
            observed, num_members=num_members, seed=seed, motion=motion, **frames
        ),
        "motion": lambda: lucas_kanade_motion(observed),
    }
    seconds = _median_seconds(functions, repeats)
    return {
        "size": size,
        "num_members": num_members,
        "num_input_frames": num_input_frames,
        "num_output_frames": num_output_frames,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "speedup": seconds["steps"] / seconds["model"],
        "speedup_without_motion": seconds["steps_without_motion"] / seconds["model"],
    }


def ensemble_speed_table(result: dict) -> str:
    """The Markdown table of :func:`benchmark_ensemble_speed`'s result."""
    seconds = result["seconds"]
    shape = (
        f"{result['num_members']} members x {result['num_output_frames']} frames of "
        f"{result['size']} x {result['size']}"
    )
    rows = [
        ("the model (`forecast_rain_rate(num_members=...)`)", seconds["model"], 1.0),
        ("STEPS with its Lucas-Kanade motion", seconds["steps"], result["speedup"]),
        (
            "STEPS from a precomputed motion field",
            seconds["steps_without_motion"],
            result["speedup_without_motion"],
        ),
        ("(Lucas-Kanade motion alone)", seconds["motion"], None),
    ]
    lines = [
        f"{shape}, {result['threads']} threads, median of {result['repeats']}:",
        "",
        "| method | seconds | the model is x faster |",
        "|---|---|---|",
    ]
    for name, value, ratio in rows:
        lines.append(f"| {name} | {value:.2f} | {'-' if ratio is None else f'{ratio:.1f}x'} |")
    return "\n".join(lines) + "\n"
