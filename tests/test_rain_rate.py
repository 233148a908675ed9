"""Rain-rate transforms: round trips, the threshold, numpy / torch parity, dtypes, gradients, dicts and errors."""

import json
import math

import numpy as np
import pytest
import torch

from bidirectional_conv_lstm.models.convlstm.rain_rate import RAIN_RATE_TRANSFORM_KINDS, RainRateTransform

KINDS_AND_PARAMS = [
    ("dbr", {}),
    ("dbr", {"threshold": 0.5, "zero_value": -20.0, "offset": -10.0, "scale": 40.0}),
    ("log1p", {}),
    ("log1p", {"threshold": 0.1, "offset": 0.5, "scale": 2.0}),
    ("linear", {}),
    ("linear", {"threshold": 0.2, "offset": -1.0, "scale": 50.0}),
]


def _rain(seed=0, shape=(3, 4, 16, 16)):
    """Log-normal rain with dry pixels, light rain below 0.1 mm/h and cores near 200 mm/h."""
    rng = np.random.default_rng(seed)
    rain = np.exp(rng.normal(0.0, 1.5, size=shape))
    rain[rng.random(shape) < 0.4] = 0.0
    rain.flat[:3] = (0.01, 0.09, 200.0)
    return rain


@pytest.mark.parametrize(("kind", "params"), KINDS_AND_PARAMS)
def test_round_trip_above_the_threshold_and_zero_below(kind, params):
    transform = RainRateTransform(kind, **params)
    rain = _rain()
    back = transform.inverse(transform.forward(rain))
    above = rain >= transform.threshold * (1 + 1e-6)
    np.testing.assert_allclose(back[above], rain[above], rtol=1e-5, atol=1e-5)
    assert np.all(back[~above & (rain < transform.threshold)] == 0)
    # float64 in, float64 out, and then the round trip is exact to float64 rounding
    assert back.dtype == np.float64
    np.testing.assert_allclose(back[above], rain[above], rtol=1e-12)


@pytest.mark.parametrize("kind", RAIN_RATE_TRANSFORM_KINDS)
def test_model_space_is_about_zero_to_one_and_monotonic(kind):
    transform = RainRateTransform(kind)
    rain = np.array([0.0, 0.1, 0.5, 1.0, 5.0, 20.0, 100.0], dtype=np.float32)
    values = transform.forward(rain)
    assert values.dtype == np.float32
    assert values[0] == pytest.approx(transform.no_rain_value) == pytest.approx(0.0)
    assert values[-1] == pytest.approx(1.0, abs=1e-6)  # 100 mm/h -> 1 at the defaults
    assert np.all(np.diff(values) > 0)


def test_dbr_values_follow_the_definition():
    transform = RainRateTransform("dbr", threshold=0.1, zero_value=-15.0, offset=-15.0, scale=35.0)
    rain = np.array([0.0, 0.05, 0.1, 1.0, 10.0])
    expected_dbr = np.array([-15.0, -15.0, -10.0, 0.0, 10.0])
    np.testing.assert_allclose(transform.forward(rain), (expected_dbr + 15.0) / 35.0, atol=1e-12)
    # values decoding between the zero value and the threshold's dBR are below the threshold: no rain
    assert transform.inverse(np.array([(-12.0 + 15.0) / 35.0]))[0] == 0.0
    assert transform.inverse(np.array([-5.0, 0.0]))[0] == 0.0  # far below: never negative


@pytest.mark.parametrize(("kind", "params"), KINDS_AND_PARAMS)
def test_inverse_is_never_negative(kind, params):
    transform = RainRateTransform(kind, **params)
    values = np.linspace(-3, 3, 601)
    rain = transform.inverse(values)
    assert np.all(rain >= 0)
    assert np.all(rain[(rain > 0)] >= transform.threshold)
    assert rain[-1] > 0


@pytest.mark.parametrize(("kind", "params"), KINDS_AND_PARAMS)
def test_numpy_and_torch_agree(kind, params):
    transform = RainRateTransform(kind, **params)
    rain = _rain(1).astype(np.float32)
    values = transform.forward(rain)
    tensor_values = transform.forward(torch.from_numpy(rain))
    assert isinstance(tensor_values, torch.Tensor) and tensor_values.dtype == torch.float32
    np.testing.assert_allclose(tensor_values.numpy(), values, rtol=1e-6, atol=1e-7)
    model_values = np.linspace(-0.5, 1.5, 200, dtype=np.float32)
    np.testing.assert_allclose(
        transform.inverse(torch.from_numpy(model_values)).numpy(),
        transform.inverse(model_values),
        rtol=1e-6,
        atol=1e-7,
    )


def test_dtypes_devices_nan_and_array_likes():
    transform = RainRateTransform("dbr")
    half = transform.forward(torch.tensor([0.0, 1.0, 10.0], dtype=torch.float16))
    assert half.dtype == torch.float16
    assert transform.forward(torch.tensor([0, 1, 10])).dtype == torch.float32  # integers -> float32
    assert transform.forward(np.array([0, 1, 10], dtype=np.int64)).dtype == np.float32
    meta = transform.forward(torch.ones(2, 3, device="meta"))
    assert meta.device.type == "meta" and meta.shape == (2, 3)
    listed = transform.forward([0.0, 1.0])
    assert isinstance(listed, np.ndarray) and listed.shape == (2,)
    with_nan = transform.forward(np.array([np.nan, 1.0]))
    assert np.isnan(with_nan[0]) and np.isnan(transform.inverse(with_nan)[0])
    assert torch.isnan(transform.inverse(torch.tensor([float("nan")])))[0]


@pytest.mark.parametrize("kind", RAIN_RATE_TRANSFORM_KINDS)
def test_torch_path_is_differentiable_without_nan_gradients(kind):
    transform = RainRateTransform(kind)
    rain = torch.tensor([0.0, 0.01, 0.5, 3.0, 50.0], dtype=torch.float64, requires_grad=True)
    transform.forward(rain).sum().backward()
    assert torch.isfinite(rain.grad).all() and rain.grad[-1] > 0
    values = torch.tensor([-1.0, 0.0, 0.3, 0.9], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: transform.inverse(v), (values[2:].detach().requires_grad_(),))
    transform.inverse(values).sum().backward()
    assert torch.isfinite(values.grad).all() and values.grad[-1] > 0


@pytest.mark.parametrize(("kind", "params"), KINDS_AND_PARAMS)
def test_dict_round_trip_is_json_able(kind, params):
    transform = RainRateTransform(kind, **params)
    values = transform.to_dict()
    assert values["kind"] == kind and all(isinstance(v, float) for k, v in values.items() if k != "kind")
    again = RainRateTransform.from_dict(json.loads(json.dumps(values)))
    assert again == transform and hash(again) == hash(transform)
    assert again.to_dict() == values
    rain = _rain(2)
    np.testing.assert_array_equal(again.forward(rain), transform.forward(rain))
    assert RainRateTransform.from_dict(transform) is transform
    assert kind in repr(transform)


def test_defaults_are_resolved_and_recorded():
    values = RainRateTransform("dbr", threshold=1.0).to_dict()
    # zero value 5 dB below the threshold's 0 dBR; offset at it; 100 mm/h (20 dBR) -> 1
    assert values == {"kind": "dbr", "threshold": 1.0, "zero_value": -5.0, "offset": -5.0, "scale": 25.0}
    assert RainRateTransform("log1p").scale == pytest.approx(math.log(101.0))
    assert RainRateTransform("dbr") != RainRateTransform("log1p")


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("dBZ",), {}, ValueError, "kind must be one of"),
        ((None,), {}, ValueError, "kind must be one of"),
        (("dbr",), {"threshold": 0.0}, ValueError, "threshold must be > 0"),
        (("dbr",), {"threshold": -1.0}, ValueError, "threshold must be > 0"),
        (("log1p",), {"threshold": -0.1}, ValueError, "threshold must be >= 0"),
        (("dbr",), {"zero_value": -10.0}, ValueError, "zero_value"),
        (("linear",), {"scale": 0.0}, ValueError, "scale must be > 0"),
        (("log1p",), {"scale": -2.0}, ValueError, "scale must be > 0"),
        (("dbr",), {"offset": float("nan")}, ValueError, "offset must be a finite number"),
        (("linear",), {"scale": "10"}, ValueError, "scale must be a finite number"),
        (("linear",), {"threshold": True}, ValueError, "threshold must be a finite number"),
        (("linear",), {"zero_value": -15.0}, TypeError, "unknown parameters"),
        (("dbr",), {"treshold": 0.1}, TypeError, "unknown parameters"),
    ],
)
def test_bad_parameters_raise_naming_them(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        RainRateTransform(*args, **kwargs)


def test_bad_dicts_and_inputs_raise():
    with pytest.raises(ValueError, match="'kind' key"):
        RainRateTransform.from_dict({"threshold": 0.1})
    with pytest.raises(ValueError, match="'kind' key"):
        RainRateTransform.from_dict("dbr")
    with pytest.raises(TypeError, match="unknown parameters"):
        RainRateTransform.from_dict({"kind": "log1p", "zero_value": 1.0})
    transform = RainRateTransform()
    with pytest.raises(TypeError, match="rain_rate must hold real numbers"):
        transform.forward(np.array(["1.0"]))
    with pytest.raises(TypeError, match="values must hold real numbers"):
        transform.inverse(torch.tensor([True]))
