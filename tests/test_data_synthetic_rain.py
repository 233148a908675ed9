"""Synthetic advecting rain: determinism, statistics (wet fraction, spectrum, log-normal rates), motion that
optical flow can follow, the cached DatasetDict and bad arguments."""

import datasets
import numpy as np
import pytest

from bidirectional_conv_lstm.data import (
    SyntheticRainConfig,
    generate_synthetic_rain,
    iter_synthetic_rain,
    load_synthetic_rain,
)
from bidirectional_conv_lstm.data.rain import fields as fields_module
from bidirectional_conv_lstm.data.rain import synthetic as synthetic_rain_module
from bidirectional_conv_lstm.data.rain.storage import decode_rain_rate

SMALL = {"num_frames": 6, "size": 32}
TINY = {"num_train": 3, "num_validation": 2, "num_test": 2, "num_frames": 5, "size": 16}


def test_shapes_dtype_and_determinism():
    first = generate_synthetic_rain(3, seed=3, **SMALL)
    again = generate_synthetic_rain(3, seed=3, **SMALL)
    other = generate_synthetic_rain(3, seed=4, **SMALL)
    assert first.shape == (3, 6, 32, 32) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert generate_synthetic_rain(0, **SMALL).shape == (0, 6, 32, 32)


def test_a_sequence_depends_only_on_the_seed_and_its_index():
    whole = generate_synthetic_rain(5, seed=2, **SMALL)
    np.testing.assert_allclose(generate_synthetic_rain(2, seed=2, **SMALL), whole[:2], rtol=0, atol=1e-5)
    chunks = list(iter_synthetic_rain(5, seed=2, chunk_size=2, **SMALL))
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    np.testing.assert_allclose(np.concatenate(chunks), whole, rtol=0, atol=1e-5)
    tail = np.concatenate(list(iter_synthetic_rain(2, seed=2, start_index=3, **SMALL)))
    np.testing.assert_allclose(tail, whole[3:], rtol=0, atol=1e-5)


@pytest.mark.parametrize("wet_fraction", [0.1, 0.4])
def test_wet_fraction_is_near_the_target(wet_fraction):
    rain = generate_synthetic_rain(8, num_frames=6, size=48, seed=5, wet_fraction=wet_fraction)
    per_sequence = (rain > 0).mean(axis=(1, 2, 3))
    assert abs(per_sequence.mean() - wet_fraction) < 0.03
    assert np.all(np.abs(per_sequence - wet_fraction) < 0.1)
    assert np.all((rain > 0).mean(axis=(2, 3)) > 0)  # every frame has some rain


def test_rates_are_log_normal_where_wet_and_zero_elsewhere():
    rain, noise = generate_synthetic_rain(
        6, num_frames=6, size=48, seed=1, median_rain_rate=2.0, log_std_rain_rate=0.8, return_noise=True
    )
    wet = rain > 0
    assert np.all(rain >= 0) and np.all(np.isfinite(rain))
    # the rain is a monotonic map of the thresholded Gaussian field: wet exactly where the field is high
    threshold = np.quantile(noise, 1 - wet.mean())
    assert np.mean(wet == (noise > threshold)) > 0.999
    log_rates = np.log(rain[wet])
    assert abs(np.median(rain[wet]) - 2.0) < 0.2
    assert abs(log_rates.std() - 0.8) < 0.08

    def skewness(values):
        return np.mean(((values - values.mean()) / values.std()) ** 3)

    # ln R about symmetric while R is strongly right-skewed: log-normal (the field's marginal is only about
    # Gaussian, so ln R is only about normal)
    assert abs(skewness(log_rates)) < 0.5 and skewness(rain[wet]) > 2
    order = np.argsort(noise[wet])
    assert np.all(np.diff(rain[wet][order]) >= 0)
    capped = generate_synthetic_rain(2, seed=1, max_rain_rate=5.0, **SMALL)
    assert capped.max() == pytest.approx(5.0)


def _radial_power_spectrum(field: np.ndarray) -> np.ndarray:
    """Radially averaged power spectrum of a square field, by integer wavenumber (cycles per field)."""
    size = field.shape[-1]
    power = np.abs(np.fft.fftshift(np.fft.fft2(field * np.outer(*[np.hanning(size)] * 2)))) ** 2
    y, x = np.indices(power.shape) - size // 2
    radius = np.rint(np.hypot(y, x)).astype(int)
    return np.bincount(radius.ravel(), power.ravel()) / np.bincount(radius.ravel())


@pytest.mark.parametrize("slope", [-3.0, -2.0])
def test_noise_spectrum_follows_the_power_law(slope):
    _, noise = generate_synthetic_rain(
        3, num_frames=4, size=128, seed=0, spectral_slope=slope, return_noise=True
    )
    spectrum = np.mean([_radial_power_spectrum(frame) for frame in noise.reshape(-1, 128, 128)], axis=0)
    wavenumbers = np.arange(len(spectrum))
    fit = (wavenumbers >= 3) & (wavenumbers <= 32)
    fitted = np.polyfit(np.log(wavenumbers[fit]), np.log(spectrum[fit]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.3)


def test_rain_moves_so_optical_flow_beats_persistence():
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    from pysteps.extrapolation.semilagrangian import extrapolate
    from pysteps.motion.lucaskanade import dense_lucaskanade

    num_input, num_output, threshold = 4, 6, 1.0
    rain = generate_synthetic_rain(4, num_frames=num_input + num_output, size=128, seed=7)
    errors = {"persistence": [], "extrapolation": []}
    counts = {name: np.zeros(3) for name in errors}  # hits, misses, false alarms at 1 mm/h
    for sequence in rain:
        observed, future = sequence[:num_input], sequence[num_input:]
        motion = dense_lucaskanade(observed, verbose=False)
        forecasts = {
            "persistence": np.repeat(observed[-1:], num_output, axis=0),
            # outside the extrapolated domain pysteps gives NaN: no rain known there
            "extrapolation": np.nan_to_num(extrapolate(observed[-1], motion, num_output), nan=0.0),
        }
        for name, forecast in forecasts.items():
            errors[name].append(np.abs(forecast - future).mean())
            hit, event = forecast >= threshold, future >= threshold
            counts[name] += [(hit & event).sum(), (~hit & event).sum(), (hit & ~event).sum()]
    csi = {name: c[0] / c.sum() for name, c in counts.items()}
    assert np.mean(errors["extrapolation"]) < 0.9 * np.mean(errors["persistence"])
    assert csi["extrapolation"] > csi["persistence"] + 0.05
    # and per sequence, extrapolation is never worse in MAE
    assert np.all(np.array(errors["extrapolation"]) < np.array(errors["persistence"]))


def test_noise_grid_margin_holds_the_trajectories_at_the_defaults():
    params = fields_module.RainFieldParameters()
    size = fields_module.noise_grid_size(params)
    draws = [fields_module.sequence_draws(0, index, params) for index in range(100)]
    motion = fields_module._motion_fields(draws, params, size)
    _, extent = fields_module._back_trajectories(motion, params, size)
    assert extent <= size  # no rain that left the frame re-enters it


def test_sampling_reads_the_periodic_continuation_past_the_noise_grid():
    import torch

    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 6, 6)).astype(np.float32)
    positions = rng.uniform(0, 16, size=(2, 5, 7, 2)).astype(np.float32)  # up to 2.7 periods
    positions[0, 0, 0] = (5.5, 0.25)  # between the last column and the first one's copy
    sampled = fields_module.sample_periodic(torch.from_numpy(noise), torch.from_numpy(positions), 17).numpy()
    x, y = positions[..., 0], positions[..., 1]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    wx, wy = x - x0, y - y0
    n = np.arange(2)[:, None, None]

    def at(row, column):
        return noise[n, row % 6, column % 6]

    expected = (
        at(y0, x0) * (1 - wx) * (1 - wy)
        + at(y0, x0 + 1) * wx * (1 - wy)
        + at(y0 + 1, x0) * (1 - wx) * wy
        + at(y0 + 1, x0 + 1) * wx * wy
    )
    np.testing.assert_allclose(sampled, expected, atol=1e-5)


def test_motion_beyond_the_margin_still_gives_valid_rain(monkeypatch):
    # A noise grid barely larger than the frame: the back-trajectories leave it, twice over.
    monkeypatch.setattr(synthetic_rain_module, "noise_grid_size", lambda params: params.size + 2)
    kwargs = {"num_frames": 12, "size": 16, "speed_range": (3.0, 3.0), "wet_fraction": 0.5}
    rain = generate_synthetic_rain(3, seed=0, **kwargs)
    assert np.all(np.isfinite(rain)) and np.all(rain >= 0) and 0.2 < (rain > 0).mean() < 0.8


def test_defaults_agree_between_the_generator_and_the_config():
    import inspect

    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(generate_synthetic_rain).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    config = SyntheticRainConfig()
    for name, value in config.field_parameters().items():
        assert defaults[name] == value, name


def test_load_synthetic_rain_builds_the_rain_window_schema_and_hits_the_cache(tmp_path, monkeypatch):
    first = load_synthetic_rain(cache_dir=tmp_path, **TINY)
    assert isinstance(first, datasets.DatasetDict)
    assert {split: len(first[split]) for split in first} == {"train": 3, "validation": 2, "test": 2}
    feature = first["train"].features["rain_rate"]
    assert (
        isinstance(feature, datasets.Array4D)
        and feature.shape == (5, 1, 16, 16)
        and feature.dtype == "uint16"
    )
    events = [event for split in first.values() for event in split["event"]]
    assert events == [f"synthetic-{index}" for index in range(7)]  # unique over the splits
    assert set(first["test"]["origin"]) == {""} and set(first["test"]["y"]) == {0} == set(first["test"]["x"])
    # The stored windows are the generator's fields, at the storage's 0.01 mm/h resolution.
    config = SyntheticRainConfig(**TINY)
    split_seed = int(np.random.SeedSequence([config.seed, 2]).generate_state(1)[0])
    expected = generate_synthetic_rain(2, seed=split_seed, **config.field_parameters())
    stored = np.stack(first["test"]["rain_rate"])
    rain, valid = decode_rain_rate(stored)
    assert valid.all() and stored.dtype == np.int64
    np.testing.assert_allclose(rain[:, :, 0], expected, atol=0.0051)
    assert not np.array_equal(np.stack(first["train"]["rain_rate"])[:2], stored)
    folders = list((tmp_path / "synthetic_rain").iterdir())
    assert len(folders) == 1

    def fail(*args, **kwargs):
        raise AssertionError("the second call must load the cache, not generate")

    monkeypatch.setattr(synthetic_rain_module, "iter_synthetic_rain", fail)
    second = load_synthetic_rain(config, cache_dir=tmp_path)
    np.testing.assert_array_equal(np.stack(second["test"]["rain_rate"]), stored)
    assert second["train"].cache_files[0]["filename"].startswith(str(folders[0]))
    monkeypatch.undo()

    # More training windows leave validation and test as they were (each split has its own seed stream).
    more = load_synthetic_rain(cache_dir=tmp_path, **{**TINY, "num_train": 4})
    assert len(list((tmp_path / "synthetic_rain").iterdir())) == 2
    np.testing.assert_array_equal(np.stack(more["test"]["rain_rate"]), stored)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"num_frames": 0}, ValueError, "num_frames"),
        ({"size": 4}, ValueError, "size"),
        ({"size": 32.0}, TypeError, "size"),
        ({"seed": -1}, ValueError, "seed"),
        ({"wet_fraction": 1.0}, ValueError, "wet_fraction"),
        ({"wet_fraction": 0}, ValueError, "wet_fraction"),
        ({"spectral_slope": 1.0}, ValueError, "spectral_slope"),
        ({"lifetime": 0.0}, ValueError, "lifetime"),
        ({"speed_range": (3.0, 1.0)}, ValueError, "speed_range"),
        ({"speed_range": 2.0}, ValueError, "speed_range"),
        ({"speed_range": (-1.0, 1.0)}, ValueError, "speed_range"),
        ({"motion_perturbation": float("nan")}, ValueError, "motion_perturbation"),
        ({"median_rain_rate": 0.0}, ValueError, "median_rain_rate"),
        ({"log_std_rain_rate": -1.0}, ValueError, "log_std_rain_rate"),
        ({"max_rain_rate": 700.0}, ValueError, "max_rain_rate"),
        ({"max_rain_rate": 0.5}, ValueError, "max_rain_rate"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, words):
    with pytest.raises(error, match=words):
        generate_synthetic_rain(2, **kwargs)
    with pytest.raises(error, match=words):
        SyntheticRainConfig(**kwargs)


def test_bad_loader_calls_raise_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="num_sequences"):
        generate_synthetic_rain(-1)
    with pytest.raises(TypeError, match="unknown parameters"):
        iter_synthetic_rain(1, speed=2.0)
    with pytest.raises(ValueError, match="chunk_size"):
        iter_synthetic_rain(1, chunk_size=0)
    with pytest.raises(TypeError, match="num_trian"):
        load_synthetic_rain(cache_dir=tmp_path, num_trian=5)
    with pytest.raises(TypeError, match="config"):
        load_synthetic_rain({"num_train": 5}, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="num_test"):
        load_synthetic_rain(cache_dir=tmp_path, num_test=0)
    assert not (tmp_path / "synthetic_rain").exists()


def test_the_motion_column_is_the_displacement_that_moves_each_frame_to_the_next():
    """Each frame is the previous one moved along the stored motion (the fields also evolve, so not exactly): the
    true motion explains the next frame much better than no motion, or a motion pointing the other way."""
    import torch

    from bidirectional_conv_lstm.models.convlstm.advection_convlstm import advect

    # A long lifetime keeps the noise's own evolution small beside the motion.
    params = dict(num_frames=4, size=48, wet_fraction=0.3, lifetime=400.0, speed_range=(1.0, 2.0))
    ((rain, noise, motion),) = iter_synthetic_rain(6, seed=3, return_noise=True, return_motion=True, **params)
    assert motion.shape == (6, 2, 48, 48) and motion.dtype == np.float32
    speeds = np.hypot(motion[:, 0], motion[:, 1]).mean(axis=(1, 2))
    assert np.all((speeds > 0.8) & (speeds < 2.6))  # the uniform part's speed, plus the perturbation
    assert np.ptp(motion[0, 0]) > 0.05  # not uniform: the divergence-free perturbation varies over the frame
    fields = torch.from_numpy(noise)
    inner = (slice(None), slice(6, -6), slice(6, -6))  # away from what enters across the edge

    def error(displacement):
        moved = advect(fields[:, :-1].reshape(-1, 1, 48, 48), displacement.repeat_interleave(3, 0), "border")
        return (moved[:, 0] - fields[:, 1:].reshape(-1, 48, 48))[inner].abs().mean().item()

    true = torch.from_numpy(motion)
    assert error(true) < 0.5 * error(torch.zeros_like(true))  # measured 0.10 vs 0.30
    assert error(true) < 0.5 * error(-true)  # 0.46
    assert error(true) < 0.5 * error(true.flip(1))  # x and y swapped: 0.28
    # The rain and the noise come with the same motion whether or not it is asked for.
    (alone,) = iter_synthetic_rain(6, seed=3, **params)
    np.testing.assert_array_equal(alone, rain)


def test_load_synthetic_rain_stores_the_motion(tmp_path):
    splits = load_synthetic_rain(cache_dir=tmp_path, **TINY)
    feature = splits["test"].features["motion"]
    assert (
        isinstance(feature, datasets.Array3D) and feature.shape == (2, 16, 16) and feature.dtype == "float32"
    )
    config = SyntheticRainConfig(**TINY)
    split_seed = int(np.random.SeedSequence([config.seed, 2]).generate_state(1)[0])
    ((_, expected),) = iter_synthetic_rain(
        2, seed=split_seed, return_motion=True, **config.field_parameters()
    )
    np.testing.assert_array_equal(np.stack(splits["test"]["motion"]), expected)
