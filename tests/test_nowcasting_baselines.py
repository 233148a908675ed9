"""Persistence, Lucas-Kanade extrapolation and S-PROG baselines (the last two need pysteps)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from bidirectional_conv_lstm.nowcasting import baselines as nowcasting_baselines
from bidirectional_conv_lstm.nowcasting.baselines import (
    BASELINE_NAMES,
    extrapolation_forecast,
    get_baseline,
    get_baselines,
    lucas_kanade_motion,
    persistence_forecast,
    sprog_forecast,
)

SHIFT = (1, 2)  # rows, columns per frame step


def translated_rain(num_frames: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Rain (num_frames, size, size) mm/h: one smooth log-normal field moving SHIFT pixels per frame."""
    rng = np.random.default_rng(seed)
    margin = 2 * num_frames * max(SHIFT)
    field = gaussian_filter(rng.standard_normal((size + margin, size + margin)), 3.0)
    field /= field.std()
    rain = np.where(field > 0.0, np.exp(1.2 * field), 0.0)  # wet area about a half, up to ~30 mm/h
    start = margin // 2 + num_frames * max(SHIFT) // 2
    frames = [
        rain[
            start - t * SHIFT[0] : start - t * SHIFT[0] + size,
            start - t * SHIFT[1] : start - t * SHIFT[1] + size,
        ]
        for t in range(num_frames)
    ]
    return np.stack(frames).astype(np.float32)


def test_persistence_repeats_the_last_frame_exactly():
    rain = np.stack([translated_rain(5, 32, seed) for seed in (0, 1)])
    forecast = persistence_forecast(torch.from_numpy(rain), num_output_frames=3)
    assert forecast.shape == (2, 3, 32, 32) and forecast.dtype == np.float32
    for step in range(3):
        np.testing.assert_array_equal(forecast[:, step], rain[:, -1])
    valid = np.ones(rain.shape, dtype=bool)
    valid[:, -1, :4, :4] = False
    masked = persistence_forecast(rain, valid, num_output_frames=2)
    assert np.all(masked[:, :, :4, :4] == 0) and np.array_equal(masked[:, 0, 4:], rain[:, -1, 4:])


def test_bad_inputs_are_named():
    rain = translated_rain(4, 16)[None]
    with pytest.raises(ValueError, match="observed"):
        persistence_forecast(rain[0], num_output_frames=2)
    with pytest.raises(ValueError, match="num_output_frames"):
        persistence_forecast(rain, num_output_frames=0)
    with pytest.raises(ValueError, match="negative"):
        persistence_forecast(-rain - 1, num_output_frames=1)
    with pytest.raises(ValueError, match="valid"):
        persistence_forecast(rain, np.ones((1, 4, 8, 8), bool), num_output_frames=1)
    with pytest.raises(ValueError, match="at least 2"):
        extrapolation_forecast(rain[:, :1], num_output_frames=1)
    with pytest.raises(TypeError, match="observed"):
        persistence_forecast(rain.tolist(), num_output_frames=1)


def test_get_baseline_names_and_unknown_name():
    assert get_baseline("persistence") is persistence_forecast
    assert get_baseline("lucas_kanade") is get_baseline("extrapolation") is extrapolation_forecast
    assert get_baseline("sprog") is sprog_forecast
    with pytest.raises(ValueError) as error:
        get_baseline("rover")
    for name in (*BASELINE_NAMES, "lucas_kanade"):
        assert repr(name) in str(error.value)


def test_a_clear_error_without_pysteps(monkeypatch):
    monkeypatch.setitem(sys.modules, "pysteps", None)  # makes `import pysteps` fail
    with pytest.raises(ImportError, match=r'pip install -e "\.\[nowcasting\]"'):
        extrapolation_forecast(translated_rain(4, 16)[None], num_output_frames=1)


def test_extrapolation_recovers_a_translation():
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    rain = translated_rain(4 + 6)
    observed, future = rain[None, :4], rain[None, 4:]
    motion = lucas_kanade_motion(observed)
    interior = (slice(None), slice(None), slice(16, 48), slice(16, 48))
    np.testing.assert_allclose(motion[interior].mean(axis=(2, 3))[0], SHIFT[::-1], atol=0.25)  # (x, y)

    extrapolated = extrapolation_forecast(observed, num_output_frames=6, motion=motion)
    persisted = persistence_forecast(observed, num_output_frames=6)
    assert extrapolated.shape == future.shape and extrapolated.dtype == np.float32 and extrapolated.min() >= 0
    # Away from the upstream edges (rain advected in from outside the grid is unknown) the field is recovered.
    inner = (slice(None), slice(None), slice(12, None), slice(24, None))
    error = np.abs(extrapolated - future)[inner].mean()
    assert error < 0.2 * np.abs(persisted - future)[inner].mean()
    assert error < 0.1 * future[inner].mean()


def test_sprog_returns_nonnegative_mm_h_of_the_right_shape():
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    rain = np.stack([translated_rain(4, 64, seed) for seed in (0, 1)])
    valid = np.ones(rain.shape, dtype=bool)
    valid[:, :, :6, :] = False  # a strip without radar data
    forecast = sprog_forecast(torch.from_numpy(rain), torch.from_numpy(valid), num_output_frames=3)
    assert forecast.shape == (2, 3, 64, 64) and forecast.dtype == np.float32
    assert np.all(np.isfinite(forecast)) and forecast.min() >= 0
    assert np.all(forecast[:, :, :6] == 0)  # S-PROG's domain mask (the no-data strip) comes back as 0
    wet = forecast[:, 0, 6:] > 0.1
    assert 0.2 < wet.mean() < 0.9  # the rain area survives the first step
    with pytest.raises(ValueError, match="at least 3"):
        sprog_forecast(rain[:, :2], num_output_frames=1)


def test_sprog_on_a_nearly_dry_window_falls_back_to_extrapolation():
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    rain = np.zeros((1, 4, 64, 64), dtype=np.float32)
    rain[0, :, 30, 30] = 2.0  # one wet pixel: S-PROG cannot fit its AR model on it ("Singular matrix")
    forecast = sprog_forecast(rain, num_output_frames=3)
    expected = extrapolation_forecast(rain, num_output_frames=3)
    assert forecast.shape == (1, 3, 64, 64) and np.all(np.isfinite(forecast))
    np.testing.assert_allclose(forecast, expected, atol=1e-6)


def test_baselines_named_together_share_one_motion_field(monkeypatch):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    calls = []
    original = nowcasting_baselines.lucas_kanade_motion
    monkeypatch.setattr(
        nowcasting_baselines,
        "lucas_kanade_motion",
        lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs),
    )
    observed = translated_rain(4, 32)[None]
    forecasters = get_baselines(["persistence", "lucas_kanade", "sprog"])
    assert list(forecasters) == ["persistence", "lucas_kanade", "sprog"]
    forecasts = {name: forecaster(observed, num_output_frames=2) for name, forecaster in forecasters.items()}
    assert len(calls) == 1
    np.testing.assert_array_equal(
        forecasts["lucas_kanade"], extrapolation_forecast(observed, num_output_frames=2)
    )
    np.testing.assert_array_equal(forecasts["sprog"], sprog_forecast(observed, num_output_frames=2))
    forecasters["sprog"](observed.copy(), num_output_frames=2)  # another batch: a new motion field
    assert len(calls) == 2
