"""The STEPS ensemble and ANVIL baselines (pysteps), and their names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bidirectional_conv_lstm.nowcasting import baselines as nowcasting_baselines
from bidirectional_conv_lstm.nowcasting.baselines import (
    BASELINE_NAMES,
    anvil_forecast,
    extrapolation_forecast,
    get_baseline,
    get_baselines,
    min_input_frames,
    steps_forecast,
)
from test_nowcasting_baselines import translated_rain


@pytest.fixture(scope="module")
def rain() -> np.ndarray:
    """Two moving rain fields, (2, 4, 64, 64) mm/h."""
    return np.stack([translated_rain(4, 64, seed) for seed in (0, 1)])


def test_steps_members_are_nonnegative_reproducible_and_spread(rain):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    members = steps_forecast(torch.from_numpy(rain), num_output_frames=3, num_members=4, seed=7)
    assert members.shape == (2, 4, 3, 64, 64) and members.dtype == np.float32
    assert np.all(np.isfinite(members)) and members.min() >= 0
    np.testing.assert_array_equal(members, steps_forecast(rain, num_output_frames=3, num_members=4, seed=7))
    other = steps_forecast(rain, num_output_frames=3, num_members=4, seed=8)
    assert np.abs(other - members).mean() > 0.05
    assert members.std(axis=1).mean() > 0.05  # the members differ from each other
    wet = members[:, :, 0] > 0.1
    assert 0.2 < wet.mean() < 0.9  # the rain area survives the first step
    # The seed is per window: a window's members do not depend on the windows beside it.
    alone = steps_forecast(rain[1:], num_output_frames=3, num_members=4, seed=7)
    np.testing.assert_array_equal(alone[0], members[1])


def test_steps_no_data_is_zero_and_bad_arguments_are_named(rain):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    valid = np.ones(rain.shape, dtype=bool)
    valid[:, :, :6] = False
    members = steps_forecast(rain[:1], valid[:1], num_output_frames=2, num_members=2, seed=0)
    assert np.all(members[..., :6, :] == 0) and np.all(np.isfinite(members))
    for kwargs, name in (
        ({"num_members": 0}, "num_members"),
        ({"seed": -1}, "seed"),
        ({"kmperpixel": 0.0}, "kmperpixel"),
        ({"timestep_minutes": float("nan")}, "timestep_minutes"),
    ):
        with pytest.raises(ValueError, match=name):
            steps_forecast(rain, num_output_frames=2, **kwargs)
    with pytest.raises(ValueError, match="at least 3"):
        steps_forecast(rain[:, :2], num_output_frames=1)


def test_anvil_forecast_is_nonnegative_mm_h_of_the_right_shape(rain):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    valid = np.ones(rain.shape, dtype=bool)
    valid[:, :, :6] = False
    forecast = anvil_forecast(rain, valid, num_output_frames=3)
    assert forecast.shape == (2, 3, 64, 64) and forecast.dtype == np.float32
    assert np.all(np.isfinite(forecast)) and forecast.min() >= 0
    assert np.all(forecast[:, :, :6] == 0)
    assert np.all((forecast == 0) | (forecast >= 0.1))  # below the rain threshold is no rain
    wet = forecast[:, 0, 6:] > 0.1
    assert 0.2 < wet.mean() < 0.9
    with pytest.raises(ValueError, match="at least 4"):
        anvil_forecast(rain[:, :3], num_output_frames=1)


@pytest.mark.parametrize("method", ["steps", "anvil"])
def test_an_ar_model_that_cannot_be_fitted_falls_back_to_extrapolation(monkeypatch, rain, method):
    pysteps = pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    original = pysteps.nowcasts.get_method

    def singular(*args, **kwargs):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(
        pysteps.nowcasts, "get_method", lambda name: singular if name == method else original(name)
    )
    observed = rain[:1]
    expected = extrapolation_forecast(observed, num_output_frames=2)
    if method == "steps":
        members = steps_forecast(observed, num_output_frames=2, num_members=3)
        assert members.shape == (1, 3, 2, 64, 64)
        for member in range(3):
            np.testing.assert_array_equal(members[:, member], expected)
    else:
        np.testing.assert_array_equal(anvil_forecast(observed, num_output_frames=2), expected)


def test_steps_and_anvil_are_named_and_share_the_motion_field(monkeypatch, rain):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    assert {"steps", "anvil"} <= set(BASELINE_NAMES)
    assert get_baseline("steps") is steps_forecast and get_baseline("anvil") is anvil_forecast
    with pytest.raises(ValueError, match="'steps'.*'anvil'"):
        get_baseline("linda")
    calls = []
    original = nowcasting_baselines.lucas_kanade_motion
    monkeypatch.setattr(
        nowcasting_baselines,
        "lucas_kanade_motion",
        lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs),
    )
    forecasters = get_baselines(["persistence", "steps", "anvil"])
    assert forecasters["steps"].num_members == 20  # the attributes the evaluation reads survive the wrapping
    assert min_input_frames(forecasters["steps"]) == 3 and min_input_frames(forecasters["anvil"]) == 4
    observed = rain[:1]
    members = forecasters["steps"](observed, num_output_frames=2, num_members=2, seed=0)
    forecast = forecasters["anvil"](observed, num_output_frames=2)
    assert len(calls) == 1
    np.testing.assert_array_equal(forecast, anvil_forecast(observed, num_output_frames=2))
    np.testing.assert_array_equal(
        members, steps_forecast(observed, num_output_frames=2, num_members=2, seed=0)
    )
