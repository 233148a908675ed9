"""Rain-rate forecasts of frames that know where and when they are: `forecast_rain_rate` with an `xarray.DataArray`
(models/convlstm/georeferencing_convlstm.py), the model's pixel size and time step, and inputs that are dry, mostly
without data, without any data, or infinite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from transformers import pipeline

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.models.convlstm.georeferencing_convlstm import block_average
from bidirectional_conv_lstm.nowcasting.task import RainRateTask

STEP = np.timedelta64(5, "m")
START = np.datetime64("2017-05-09T10:00", "ns")


def rain_model(**overrides) -> ConvLSTMForFramePrediction:
    values = dict(
        hidden_sizes=[8],
        patch_size=4,
        num_input_frames=4,
        num_output_frames=3,
        rain_rate_transform={"kind": "log1p"},
        pixel_size=4000.0,
        time_step=5.0,
    )
    torch.manual_seed(0)
    return ConvLSTMForFramePrediction(ConvLSTMConfig(**{**values, **overrides})).eval()


def frames(height=38, width=50, *, pixel=1000.0, step=STEP, seed=0, units="km") -> xr.DataArray:
    """(4, height, width) mm/h on a `pixel`-metre grid (coordinates in km when `units="km"`), north up."""
    rain = np.random.default_rng(seed).gamma(0.5, 2.0, (4, height, width)).astype(np.float32)
    scale = 1000.0 if units == "km" else 1.0
    x = (np.arange(width) + 0.5) * pixel / scale
    y = (np.arange(height)[::-1] + 0.5) * pixel / scale
    return xr.DataArray(
        rain,
        dims=("time", "y", "x"),
        coords={
            "time": START + step * np.arange(4),
            "y": ("y", y, {"units": units}),
            "x": ("x", x, {"units": units}),
            "crs": ((), 0, {"crs_wkt": "PROJCS[...]"}),
            "lat": (("y", "x"), np.add.outer(y, x * 0.0)),
        },
        attrs={"units": "mm h-1", "projection": "+proj=stere +lat_0=90 +lon_0=25", "institution": "FMI"},
    )


def test_a_data_array_is_forecast_on_the_models_grid_with_valid_times_and_its_projection():
    model, observed = rain_model(), frames()
    forecast = model.forecast_rain_rate(observed)
    # 1 km frames, a 4 km model: 38 x 50 -> 9 x 12 (the rows and columns of no whole block are dropped)
    assert forecast.name == "precip_intensity" and forecast.dims == ("time", "y", "x")
    assert forecast.shape == (3, 9, 12)
    last = observed.time.values[-1]
    assert (forecast.time.values == last + STEP * np.arange(1, 4)).all()
    assert forecast.forecast_reference_time.values == last
    assert (forecast.forecast_period.values == STEP * np.arange(1, 4)).all()
    np.testing.assert_allclose(forecast.x.values, observed.x.values[:48].reshape(12, 4).mean(1))
    np.testing.assert_allclose(forecast.y.values, observed.y.values[:36].reshape(9, 4).mean(1))
    assert forecast.x.attrs["units"] == "km"
    assert forecast.crs.attrs["crs_wkt"] == "PROJCS[...]" and forecast.lat.shape == (9, 12)
    assert (
        forecast.attrs["projection"] == observed.attrs["projection"] and forecast.attrs["units"] == "mm h-1"
    )
    # The same numbers as the array path given the block-averaged frames.
    coarse = block_average(observed.values, 4)[None]
    np.testing.assert_array_equal(forecast.values, model.forecast_rain_rate(coarse)[0])


def test_the_input_grid_gets_each_model_pixel_back_over_its_block():
    model, observed = rain_model(), frames()
    on_model = model.forecast_rain_rate(observed)
    on_input = model.forecast_rain_rate(observed, output_grid="input")
    assert on_input.shape == (3, 38, 50) and (on_input.x.values == observed.x.values).all()
    np.testing.assert_array_equal(on_input.values[:, :36:4, :48:4], on_model.values)
    np.testing.assert_array_equal(on_input.values[:, 3:36:4, 3:48:4], on_model.values)
    assert np.isnan(on_input.values[:, 36:]).all() and np.isnan(on_input.values[:, :, 48:]).all()
    assert on_input.lat.shape == (38, 50)


def test_frames_on_the_models_own_grid_are_taken_as_they_are_and_metres_are_read_too():
    model = rain_model()
    observed = frames(16, 20, pixel=4000.0, units="m")
    forecast = model.forecast_rain_rate(observed)
    assert forecast.shape == (3, 16, 20)
    np.testing.assert_array_equal(forecast.values, model.forecast_rain_rate(observed.values[None])[0])
    # pysteps' metadata attributes tell the pixel size when there are no coordinates
    bare = xr.DataArray(
        frames().values,
        dims=("time", "y", "x"),
        coords={"time": frames().time},
        attrs={"xpixelsize": 1000.0, "ypixelsize": 1000.0},
    )
    forecast = model.forecast_rain_rate(bare)
    assert forecast.shape == (3, 9, 12) and forecast.attrs["xpixelsize"] == 4000.0


def test_another_time_step_is_refused_naming_both_unless_told():
    model, observed = rain_model(), frames(step=np.timedelta64(10, "m"))
    with pytest.raises(
        ValueError, match=r"time step \(10 min\) differs from the model's time_step \(5 min\)"
    ):
        model.forecast_rain_rate(observed)
    forecast = model.forecast_rain_rate(observed, check_time_step=False)
    assert (forecast.forecast_period.values == np.timedelta64(10, "m") * np.arange(1, 4)).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: a.assign_coords(x=a.x * 8, y=a.y * 8),
            r"pixel size \(8000 m\) must be the model's pixel_size \(4000 m\) or finer",
        ),
        (lambda a: a.assign_coords(x=a.x * 1.5, y=a.y * 1.5), r"pixel size \(1500 m\)"),
        (lambda a: a.assign_attrs(units="dBZ"), r"rain rate in mm/h .*units='dBZ'"),
        (lambda a: a.rename(time="t"), r"must have dims \('time', 'y', 'x'\), got \('t', 'y', 'x'\)"),
        (lambda a: a.isel(time=[0, 1, 3]), r"times must be evenly spaced .* from 5 to 10 minutes"),
        (lambda a: a.assign_coords(x=a.x * 2), r"pixels must be square"),
    ],
)
def test_data_arrays_that_do_not_fit_the_model_are_refused_with_one_line(change, message):
    with pytest.raises(ValueError, match=message):
        rain_model().forecast_rain_rate(change(frames()))


def test_dry_frames_give_exactly_zero_and_a_mostly_empty_domain_is_forecast_where_it_has_data():
    model = rain_model(prediction_prior=0.3)  # an untrained head predicts rain everywhere
    dry = np.zeros((2, 4, 24, 28), np.float32)
    dry[1, :, 5, 5] = 0.05  # drizzle below 0.1 mm/h is no rain
    forecast = model.forecast_rain_rate(dry)
    assert (forecast == 0).all() and not np.signbit(forecast).any()
    assert (model.forecast_rain_rate(frames() * 0).values == 0).all()
    # a domain with data in one corner only: forecast there, NaN where the last frame had none
    sparse = np.full((1, 4, 24, 28), np.nan, np.float32)
    sparse[:, :, :8, :8] = 3.0
    forecast = model.forecast_rain_rate(sparse)
    assert np.isfinite(forecast[..., :8, :8]).all() and (forecast[..., :8, :8] > 0).any()
    assert np.isnan(forecast[..., 8:, :]).all() and np.isnan(forecast[..., :, 8:]).all()


def test_no_data_at_all_and_infinite_values_are_errors():
    model = rain_model()
    empty = np.full((2, 4, 8, 8), 1.0, np.float32)
    empty[1] = np.nan
    with pytest.raises(ValueError, match=r"no data at all in sample\(s\) \[1\]"):
        model.forecast_rain_rate(empty)
    infinite = np.ones((1, 4, 8, 8), np.float32)
    infinite[0, 2, 3, 3] = np.inf
    with pytest.raises(ValueError, match="rain_rate has 1 infinite values"):
        model.forecast_rain_rate(infinite)
    with pytest.raises(ValueError, match="output_grid must be one of"):
        model.forecast_rain_rate(infinite, output_grid="native")


def test_the_config_keeps_pixel_size_and_time_step_and_checks_them(tmp_path):
    model = rain_model()
    model.save_pretrained(tmp_path)
    config = ConvLSTMConfig.from_pretrained(tmp_path)
    assert (config.pixel_size, config.time_step) == (4000.0, 5.0)
    for name, bad in (
        ("pixel_size", 0),
        ("time_step", -5.0),
        ("time_step", float("nan")),
        ("pixel_size", "4km"),
    ):
        with pytest.raises(ValueError, match=f"{name} must be None or a positive number"):
            ConvLSTMConfig(**{name: bad})


def test_the_pipeline_forecasts_a_data_array():
    model = rain_model()
    predictor = pipeline("frame-prediction", model=model)
    observed = frames()
    result = predictor(observed, num_output_frames=2)
    assert result["predictions"].dims == ("time", "y", "x") and result["predictions"].shape == (2, 9, 12)
    np.testing.assert_array_equal(
        result["predictions"].values, model.forecast_rain_rate(observed, num_output_frames=2).values
    )
    with pytest.raises(TypeError, match="got \\['return_gif'\\]"):
        predictor(observed, return_gif=True)


def test_a_radar_run_records_its_windows_pixel_size_and_time_step():
    task = RainRateTask.__new__(RainRateTask)  # only the data description is needed here
    events = {"pixel_size": [1.0, 1.0], "cartesian_unit": "km", "timestep_minutes": 5.0}
    task.splits = {"info": {"events": {"a": dict(events), "b": dict(events)}}}
    config = ConvLSTMConfig()
    task.describe_data(config)
    assert (config.pixel_size, config.time_step) == (1000.0, 5.0)
    # FMI's 4 km windows are 3998.7 m (y and x rounded apart), KNMI's and BoM's 4000 m: one grid, its median size
    task.splits["info"]["events"]["c"] = dict(events, pixel_size=[0.999629, 0.999674])
    config = ConvLSTMConfig()
    task.describe_data(config)
    assert config.pixel_size == 1000.0
    task.splits["info"]["events"]["b"].update(pixel_size=[2.0, 2.0], timestep_minutes=10.0)  # unknown
    config = ConvLSTMConfig()
    task.describe_data(config)
    assert (config.pixel_size, config.time_step) == (None, None)
