"""Frames that know where and when they are: ``xarray.DataArray`` rain rate in and out of ``forecast_rain_rate``,
checked against the grid the model was trained on (``config.pixel_size``, ``config.time_step``).

- :func:`frames_from_data_array` reads a ``(time, y, x)`` DataArray in mm/h: its pixel size (from the ``x`` / ``y``
  coordinate spacing, or pysteps' ``xpixelsize`` / ``ypixelsize`` attributes), its time step (from ``time``), and
  block-averages a grid finer than the model's by the whole factor between them (:func:`block_average`). A time
  step other than the model's is an error naming both (unless the caller turns the check off).
- :func:`forecast_to_data_array` puts a forecast back on the map: valid times, ``forecast_reference_time``,
  ``forecast_period``, the model grid's (or the input grid's) coordinates, and the input's projection (its
  attributes and its 0-d coordinates, such as a CF ``grid_mapping`` variable) carried through.

xarray is not imported: a DataArray is recognised by its class and the forecast is built with the input's own
class, so this file (remote code, copied into every saved model) needs only numpy.
"""

import dataclasses

import numpy as np

__all__ = [
    "OUTPUT_GRIDS",
    "block_average",
    "forecast_to_data_array",
    "frames_from_data_array",
    "is_data_array",
]

OUTPUT_GRIDS = ("model", "input")
DIMS = ("time", "y", "x")
#: Spellings of rain rate in mm/h (CF and common), and metres per length unit of projection coordinates.
RAIN_RATE_UNITS = ("mm/h", "mm h-1", "mm/hr", "mm hr-1", "kg m-2 h-1")
METRES_PER = {"m": 1.0, "metre": 1.0, "metres": 1.0, "meter": 1.0, "meters": 1.0, "km": 1000.0}
_MINUTE = np.timedelta64(60, "s")
# Pixel sizes and time steps that differ by less than this fraction are the same.
_TOLERANCE = 1e-3


def is_data_array(value) -> bool:
    """Whether `value` is an ``xarray.DataArray`` (recognised without importing xarray)."""
    kind = type(value)
    return kind.__name__ == "DataArray" and kind.__module__.split(".")[0] == "xarray"


def block_average(rain_rate: np.ndarray, factor: int) -> np.ndarray:
    """Downsample ``(..., H, W)`` by the mean of ``factor x factor`` blocks (e.g. 1 km -> 4 km with factor 4).

    A block with any no-data (NaN) pixel is no data: averaging only its valid pixels would present a partly seen
    block as fully observed (and bias it toward whichever part was seen, e.g. at the edge of the radar range).
    The last ``H % factor`` rows and ``W % factor`` columns are dropped.

    Returns:
        float32 ``(..., H // factor, W // factor)``; the input itself when ``factor == 1``.
    """
    if factor == 1:
        return rain_rate
    *lead, height, width = rain_rate.shape
    rows, cols = height // factor, width // factor
    if rows == 0 or cols == 0:
        raise ValueError(f"downsample={factor} is larger than the grid ({height}, {width})")
    blocks = rain_rate[..., : rows * factor, : cols * factor].reshape(*lead, rows, factor, cols, factor)
    # np.mean propagates NaN: the "any no-data pixel" rule above, for free.
    return blocks.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)


@dataclasses.dataclass
class GridContext:
    """What :func:`forecast_to_data_array` needs of the input: the DataArray itself, the block-average factor,
    the last observed time and the time step of the forecast."""

    data_array: object
    factor: int
    last_time: np.datetime64
    step: np.timedelta64


def frames_from_data_array(
    data_array, config, *, check_time_step: bool = True
) -> tuple[np.ndarray, GridContext]:
    """The model's input from a ``(time, y, x)`` DataArray in mm/h: float32 ``(1, T, H', W')`` on the model's grid
    (NaN = no data), and the context that puts the forecast back on the map.

    Raises:
        ValueError: other dimensions, a unit other than mm/h, no or irregular times, a pixel size the model's is
            not a whole multiple of, or (with ``check_time_step``) a time step other than ``config.time_step``.
    """
    if set(data_array.dims) != set(DIMS):
        raise ValueError(f"rain_rate as a DataArray must have dims {DIMS}, got {tuple(data_array.dims)}")
    data_array = data_array.transpose(*DIMS)
    units = data_array.attrs.get("units")
    if units is not None and units not in RAIN_RATE_UNITS:
        raise ValueError(
            f"rain_rate must be rain rate in mm/h (units one of {RAIN_RATE_UNITS}), got units={units!r}"
        )
    factor = _block_factor(_pixel_size(data_array), getattr(config, "pixel_size", None))
    last_time, step = _time_step(data_array, getattr(config, "time_step", None), check_time_step)
    values = np.asarray(data_array.values)
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise TypeError(f"rain_rate must hold real numbers (mm/h), got dtype {values.dtype}")
    frames = block_average(values.astype(np.float32, copy=False), factor)
    return frames[None], GridContext(data_array, factor, last_time, step)


def _pixel_size(data_array) -> float | None:
    """The input's pixel size in metres: the spacing of its ``x`` / ``y`` coordinates, else the ``xpixelsize`` /
    ``ypixelsize`` attributes; None when neither tells (or the coordinates are not in metres)."""
    sizes = []
    for axis in ("x", "y"):
        size = _coordinate_spacing(data_array, axis)
        if size is None:
            attribute = data_array.attrs.get(f"{axis}pixelsize")
            size = (
                float(attribute) if isinstance(attribute, (int, float, np.number)) and attribute > 0 else None
            )
        sizes.append(size)
    if None in sizes:
        return None
    if abs(sizes[0] - sizes[1]) > _TOLERANCE * max(sizes):
        raise ValueError(
            f"rain_rate's pixels must be square, got x spacing {sizes[0]} m and y spacing {sizes[1]} m"
        )
    return sizes[0]


def _coordinate_spacing(data_array, axis: str) -> float | None:
    """The regular spacing of coordinate `axis` in metres, or None (absent, one value, or not in metres)."""
    if axis not in data_array.coords or data_array.sizes[axis] < 2:
        return None
    coordinate = data_array.coords[axis]
    scale = METRES_PER.get(str(coordinate.attrs.get("units", "m")).strip().lower())
    values = np.asarray(coordinate.values, dtype=np.float64)
    if scale is None or not np.all(np.isfinite(values)):
        return None
    steps = np.abs(np.diff(values))
    if steps.min() <= 0 or steps.max() - steps.min() > _TOLERANCE * steps.max():
        raise ValueError(
            f"rain_rate's {axis} coordinate must be evenly spaced, got steps from {steps.min()} to {steps.max()}"
        )
    return float(np.median(steps)) * scale


def _block_factor(pixel_size: float | None, model_pixel_size: float | None) -> int:
    """How many input pixels make one model pixel along each axis (1 when either size is unknown)."""
    if pixel_size is None or model_pixel_size is None:
        return 1
    ratio = model_pixel_size / pixel_size
    factor = int(round(ratio))
    if factor < 1 or abs(ratio - factor) > _TOLERANCE * ratio:
        raise ValueError(
            f"rain_rate's pixel size ({pixel_size:g} m) must be the model's pixel_size ({model_pixel_size:g} m) "
            "or finer by a whole factor (it is block-averaged to the model's grid)"
        )
    return factor


def _time_step(data_array, model_step: float | None, check: bool) -> tuple[np.datetime64, np.timedelta64]:
    """The last observed time and the forecast's time step (the frames', else the model's)."""
    if "time" not in data_array.coords or not np.issubdtype(data_array.coords["time"].dtype, np.datetime64):
        raise ValueError("rain_rate as a DataArray needs a datetime64 'time' coordinate (one time per frame)")
    times = np.asarray(data_array.coords["time"].values).astype("datetime64[ns]")
    steps = np.diff(times)
    if len(steps) and (steps.min() <= np.timedelta64(0) or steps.min() != steps.max()):
        raise ValueError(
            f"rain_rate's times must be evenly spaced and increasing (a missing frame?), got steps from "
            f"{steps.min() / _MINUTE:g} to {steps.max() / _MINUTE:g} minutes"
        )
    if not len(steps):
        if model_step is None:
            raise ValueError(
                "one observed frame and no config.time_step: the forecast's valid times are unknown"
            )
        return times[-1], np.timedelta64(int(round(model_step * 60e9)), "ns")
    minutes = steps[0] / _MINUTE
    if check and model_step is not None and abs(minutes - model_step) > _TOLERANCE * model_step:
        raise ValueError(
            f"rain_rate's time step ({minutes:g} min) differs from the model's time_step ({model_step:g} min): the "
            "model forecasts one of its own steps per frame; resample the frames, or pass check_time_step=False"
        )
    return times[-1], steps[0]


def forecast_to_data_array(
    forecast: np.ndarray,
    context: GridContext,
    *,
    output_grid: str,
    no_data_value: float,
    leading: tuple | None = None,
    variable: tuple = ("precip_intensity", {"units": "mm h-1", "long_name": "precipitation intensity"}),
):
    """The forecast ``(T, H', W')`` (mm/h on the model's grid) as a DataArray named ``precip_intensity`` with
    ``(time, y, x)`` dims, valid times, ``forecast_reference_time``, ``forecast_period``, the input's 0-d
    coordinates and attributes, on the model's grid or (``output_grid="input"``) the input's.

    With ``leading=(dim, values, attrs)`` the forecast is ``(K, T, H', W')`` and the DataArray ``(dim, time, y,
    x)`` with ``values`` as the coordinate of ``dim`` (e.g. ``("member", np.arange(N), {})`` for ensemble members,
    which the CF writer names ``realization``). ``variable=(name, attrs)`` names another quantity (its attributes
    replace the units and long name of rain rate)."""
    source, factor = context.data_array, context.factor
    periods = context.step * np.arange(1, forecast.shape[-3] + 1)
    coords = {
        "time": ("time", context.last_time + periods),
        "forecast_reference_time": context.last_time,
        "forecast_period": ("time", periods),
    }
    for name, coordinate in source.coords.items():
        if name in DIMS:
            continue
        if coordinate.ndim == 0:
            coords[name] = coordinate.variable
        elif coordinate.dims == ("y", "x"):
            values = np.asarray(coordinate.values, dtype=np.float64)
            kept = values if output_grid == "input" else block_average(values, factor)
            coords[name] = (("y", "x"), kept, dict(coordinate.attrs))
    if output_grid == "input":
        forecast = _to_input_grid(forecast, factor, source.sizes["y"], source.sizes["x"], no_data_value)
    for axis in ("y", "x"):
        if axis in source.coords:
            coordinate = source.coords[axis]
            values = np.asarray(coordinate.values)
            if output_grid == "model" and factor > 1:
                values = values[: len(values) // factor * factor].reshape(-1, factor).mean(axis=1)
            coords[axis] = (axis, values, dict(coordinate.attrs))
    attrs = {
        key: value
        for key, value in source.attrs.items()
        if key not in ("units", "long_name", "standard_name")
    }
    name, variable_attrs = variable
    attrs.update(variable_attrs)
    for key in ("xpixelsize", "ypixelsize"):  # pysteps' metadata: the pixel size of the grid returned
        if output_grid == "model" and isinstance(attrs.get(key), (int, float, np.number)):
            attrs[key] = attrs[key] * factor
    dims = DIMS
    if leading is not None:
        dim, values, leading_attrs = leading
        coords[dim] = (dim, np.asarray(values), dict(leading_attrs))
        dims = (dim, *DIMS)
    return type(source)(forecast, dims=dims, coords=coords, attrs=attrs, name=name)


def _to_input_grid(forecast: np.ndarray, factor: int, height: int, width: int, fill: float) -> np.ndarray:
    """Each model pixel repeated over its ``factor x factor`` block; the rows and columns no block covered get
    `fill`."""
    repeated = forecast.repeat(factor, axis=-2).repeat(factor, axis=-1)
    out = np.full((*forecast.shape[:-2], height, width), fill, dtype=forecast.dtype)
    out[..., : repeated.shape[-2], : repeated.shape[-1]] = repeated
    return out
