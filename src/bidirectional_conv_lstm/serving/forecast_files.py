"""Forecast files any tool opens: a rain-rate forecast ``xarray.DataArray`` -> a CF-1.8 ``xarray.Dataset``, written
as compressed netCDF (``.nc``) or Zarr (``.zarr``).

What the file holds (CF-1.8, the names CF and pysteps users expect):

- ``precip_intensity`` (float32, ``mm h-1``, standard name ``rainfall_rate``), dims ``(time, y, x)`` or
  ``(realization, time, y, x)`` for an ensemble (a ``member`` dimension is renamed to CF's ``realization``);
  no-data (NaN) is written as ``_FillValue`` and read back as NaN;
- ``x`` / ``y``: projection coordinates in metres (``km`` converted) and a ``crs`` grid-mapping variable from the
  projection (``pyproj.CRS.to_cf()``: ``grid_mapping_name`` and its parameters plus ``crs_wkt``);
- 2-D ``lat`` / ``lon`` (degrees north / east) of every pixel centre;
- ``time``: the valid times; scalar ``forecast_reference_time`` (the last observed frame) and ``forecast_period``
  (valid time minus reference time) along ``time``.

``pyproj`` (in the ``nowcasting`` extra) is needed only when the forecast has a projection; ``netCDF4`` writes
``.nc`` files and ``zarr`` writes ``.zarr`` stores.
"""

from __future__ import annotations

import os
import shutil
import uuid
from importlib import metadata
from pathlib import Path

import numpy as np
import xarray

from ..models.convlstm.georeferencing_convlstm import METRES_PER, RAIN_RATE_UNITS

__all__ = [
    "FORECAST_SUFFIXES",
    "FORECAST_VARIABLE",
    "forecast_crs",
    "forecast_to_cf_dataset",
    "write_forecast",
]

#: The data variable's name (pysteps' and ODIM's word for rain rate).
FORECAST_VARIABLE = "precip_intensity"
#: File kinds :func:`write_forecast` writes, by suffix.
FORECAST_SUFFIXES = (".nc", ".zarr")
#: Written for no-data pixels (NaN in memory); rain rates are never negative.
FILL_VALUE = np.float32(-9999.0)

_ENSEMBLE_DIMS = ("member", "realization")
_TIME_UNITS_FORMAT = "minutes since %Y-%m-%d %H:%M:%S"
# Attributes this module writes itself; the input's own copies are not carried over.
_OWN_ATTRS = {
    "units",
    "long_name",
    "standard_name",
    "grid_mapping",
    "coordinates",
    "_FillValue",
    "missing_value",
}


def forecast_crs(forecast: xarray.DataArray, crs=None):
    """The projection of a forecast as a ``pyproj.CRS``, or None when it has none.

    Looked for in this order: the ``crs`` argument (anything ``pyproj.CRS.from_user_input`` takes: EPSG code,
    proj4 or WKT string, a ``pyproj.CRS``), the DataArray's attrs ``crs_wkt`` or ``projection`` (a proj4 string,
    as pysteps' metadata write it), then a 0-d coordinate with a ``crs_wkt`` or ``spatial_ref`` attribute (as
    rioxarray and CF readers leave it).

    Raises:
        ValueError: the projection given or found is not one pyproj understands.
    """
    name, value = "crs", crs
    if value is None:
        name, value = _find_crs(forecast)
    if value is None:
        return None
    import pyproj

    try:
        return pyproj.CRS.from_user_input(value)
    except pyproj.exceptions.CRSError as error:
        shown = str(value) if len(str(value)) < 120 else str(value)[:117] + "..."
        raise ValueError(f"{name}: {shown!r} is not a projection pyproj understands ({error})") from None


def _find_crs(forecast: xarray.DataArray) -> tuple[str, object]:
    for key in ("crs_wkt", "projection"):
        if forecast.attrs.get(key):
            return f"forecast.attrs[{key!r}]", forecast.attrs[key]
    for coord_name, coord in forecast.coords.items():
        if coord.ndim == 0:
            for key in ("crs_wkt", "spatial_ref"):
                if coord.attrs.get(key):
                    return f"forecast.coords[{coord_name!r}].attrs[{key!r}]", coord.attrs[key]
    return "crs", None


def forecast_to_cf_dataset(forecast: xarray.DataArray, crs=None) -> xarray.Dataset:
    """A rain-rate forecast as a CF-1.8 dataset (see the module's docstring for what it holds).

    Args:
        forecast (`xarray.DataArray`): float rain rate in mm/h (attrs ``units`` ``"mm h-1"`` / ``"mm/h"`` or none),
            NaN = no data, dims ``(time, y, x)`` or ``(member, time, y, x)`` (``realization`` is taken too), as
            ``model.forecast_rain_rate`` returns it. Coordinates: ``time`` (datetime64 valid times), ``x`` / ``y``
            (1-D pixel centres, metres unless their ``units`` say ``km``), optionally ``forecast_reference_time``
            (0-d) and ``forecast_period``; the projection as :func:`forecast_crs` finds it. Its string and number
            attrs (``institution``, ``projection``...) become global attributes.
        crs (*optional*): the projection, overriding the one the DataArray carries (see :func:`forecast_crs`).

    Returns:
        an `xarray.Dataset` with ``precip_intensity`` (float32), ``x``, ``y``, ``time``, ``realization`` (for an
        ensemble), ``forecast_reference_time``, ``forecast_period``, and with a projection ``crs``, ``lat``,
        ``lon``; its encoding asks for ``_FillValue`` and CF time units.

    Raises:
        TypeError / ValueError: naming the argument, what it holds and what was expected.
    """
    array = _checked_forecast(forecast)
    projection = forecast_crs(forecast, crs)
    x_metres, y_metres = (_metres(forecast, axis) for axis in ("x", "y"))
    data = array.values.astype(np.float32)
    dims = ("realization", "time", "y", "x") if data.ndim == 4 else ("time", "y", "x")
    coords = {
        "x": ("x", x_metres, _axis_attrs("x", projection)),
        "y": ("y", y_metres, _axis_attrs("y", projection)),
        "time": ("time", array["time"].values.astype("datetime64[ns]"), _TIME_ATTRS),
    }
    if data.ndim == 4:
        members = array[dims[0]].values if dims[0] in array.coords else np.arange(data.shape[0])
        coords["realization"] = ("realization", np.asarray(members), _REALIZATION_ATTRS)
    coords.update(_reference_coords(array))
    attrs = {"long_name": "precipitation intensity", "standard_name": "rainfall_rate", "units": "mm h-1"}
    if projection is not None:
        attrs["grid_mapping"] = "crs"
        coords.update(_lat_lon(projection, x_metres, y_metres))
    variable = xarray.Variable(dims, data, attrs)
    variable.encoding["_FillValue"] = FILL_VALUE
    dataset = xarray.Dataset({FORECAST_VARIABLE: variable}, coords=coords, attrs=_global_attrs(forecast))
    if projection is not None:
        dataset["crs"] = xarray.Variable((), np.int32(0), projection.to_cf())
        dataset.variables["crs"].encoding["coordinates"] = (
            None  # a grid mapping has no coordinates of its own
        )
    for name in ("x", "y", "lat", "lon"):  # coordinates are never missing: no _FillValue (CF 2.5.1)
        if name in dataset.variables:
            dataset.variables[name].encoding["_FillValue"] = None
    for name in ("time", "forecast_reference_time"):
        if name in dataset.coords:
            dataset.variables[name].encoding.update(
                units=_time_units(dataset), calendar="proleptic_gregorian"
            )
    if "forecast_period" in dataset.coords:
        dataset.variables["forecast_period"].encoding["units"] = "minutes"
    return dataset


_TIME_ATTRS = {"standard_name": "time", "long_name": "valid time", "axis": "T"}
_REALIZATION_ATTRS = {"standard_name": "realization", "long_name": "ensemble member", "units": "1"}


def _checked_forecast(forecast) -> xarray.DataArray:
    if not isinstance(forecast, xarray.DataArray):
        raise TypeError(f"forecast must be an xarray.DataArray (time, y, x), got {type(forecast).__name__}")
    dims = tuple(forecast.dims)
    if (
        dims[-3:] != ("time", "y", "x")
        or len(dims) not in (3, 4)
        or (len(dims) == 4 and dims[0] not in _ENSEMBLE_DIMS)
    ):
        raise ValueError(
            f"forecast must have dims ('time', 'y', 'x') or ('member', 'time', 'y', 'x'), got {dims}"
        )
    if not np.issubdtype(forecast.dtype, np.floating) and not np.issubdtype(forecast.dtype, np.integer):
        raise TypeError(f"forecast must hold numbers (mm/h), got dtype {forecast.dtype}")
    units = forecast.attrs.get("units")
    if units is not None and str(units).strip() not in RAIN_RATE_UNITS:
        raise ValueError(
            f"forecast.attrs['units'] must be one of {RAIN_RATE_UNITS} (rain rate), got {units!r}"
        )
    for name in ("time", "x", "y"):
        if name not in forecast.coords or forecast[name].ndim != 1:
            raise ValueError(f"forecast needs a 1-D {name!r} coordinate, got coords {list(forecast.coords)}")
    if not np.issubdtype(forecast["time"].dtype, np.datetime64):
        raise TypeError(
            f"forecast's 'time' coordinate must be datetime64 valid times, got {forecast['time'].dtype}"
        )
    return forecast


def _metres(forecast: xarray.DataArray, axis: str) -> np.ndarray:
    coord = forecast[axis]
    units = str(coord.attrs.get("units", "m")).strip().lower()
    if units not in METRES_PER:
        raise ValueError(f"forecast's {axis!r} coordinate has units {units!r}; expected metres ('m') or 'km'")
    if not np.issubdtype(coord.dtype, np.number):
        raise TypeError(f"forecast's {axis!r} coordinate must hold numbers, got dtype {coord.dtype}")
    return coord.values.astype(np.float64) * METRES_PER[units]


def _axis_attrs(axis: str, projection) -> dict:
    attrs = {"units": "m", "axis": axis.upper()}
    if projection is not None:
        attrs["standard_name"] = f"projection_{axis}_coordinate"
    attrs["long_name"] = f"{axis} coordinate of projection (pixel centre)"
    return attrs


def _reference_coords(array: xarray.DataArray) -> dict:
    """``forecast_reference_time`` (0-d) and ``forecast_period`` (along time), each derived from the other when
    only one is given; none when neither is."""
    valid = array["time"].values.astype("datetime64[ns]")
    reference = period = None
    if "forecast_reference_time" in array.coords:
        reference = np.datetime64(array["forecast_reference_time"].values, "ns")
        period = valid - reference
    elif "forecast_period" in array.coords:
        period = array["forecast_period"].values.astype("timedelta64[ns]")
        reference = valid[0] - period[0]
    if reference is None:
        return {}
    return {
        "forecast_reference_time": (
            (),
            reference,
            {"standard_name": "forecast_reference_time", "long_name": "time of the last observed frame"},
        ),
        "forecast_period": (
            "time",
            period,
            {
                "standard_name": "forecast_period",
                "long_name": "lead time (valid time - forecast reference time)",
            },
        ),
    }


def _lat_lon(projection, x_metres: np.ndarray, y_metres: np.ndarray) -> dict:
    import pyproj

    if not projection.is_projected:
        raise ValueError(f"crs must be a projected CRS (x / y in metres), got {projection.name!r}")
    transformer = pyproj.Transformer.from_crs(projection, "EPSG:4326", always_xy=True)
    grid_x, grid_y = np.meshgrid(x_metres, y_metres)
    lon, lat = (values.astype(np.float32) for values in transformer.transform(grid_x, grid_y))  # ~1 m apart
    return {
        "lat": (
            ("y", "x"),
            lat,
            {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"},
        ),
        "lon": (
            ("y", "x"),
            lon,
            {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"},
        ),
    }


def _global_attrs(forecast: xarray.DataArray) -> dict:
    attrs = {}
    for key, value in forecast.attrs.items():
        if key in _OWN_ATTRS or key.startswith("_"):
            continue
        if isinstance(value, (str, int, float, np.number)) and not isinstance(value, bool):
            attrs[key] = value
    attrs.update(
        Conventions="CF-1.8",
        title=str(forecast.attrs.get("title", "precipitation nowcast")),
        source=f"bidirectional-conv-lstm {metadata.version('bidirectional-conv-lstm')}",
    )
    return attrs


def _time_units(dataset: xarray.Dataset) -> str:
    first = dataset["forecast_reference_time"].values if "forecast_reference_time" in dataset else None
    origin = np.datetime64(first if first is not None else dataset["time"].values[0], "s").item()
    return origin.strftime(_TIME_UNITS_FORMAT)


def write_forecast(forecast: xarray.DataArray, path: str | os.PathLike, *, crs=None) -> Path:
    """Write a forecast as a CF-1.8 file: compressed netCDF-4 (``.nc``, zlib) or a Zarr store (``.zarr``).

    The file is written under a temporary name beside ``path`` and renamed when complete, so a failure leaves an
    existing ``path`` as it was.

    Args:
        forecast (`xarray.DataArray`): see :func:`forecast_to_cf_dataset`.
        path (`str` or `os.PathLike`): ends in ``.nc`` or ``.zarr``; its folder must exist.
        crs (*optional*): the projection, overriding the forecast's own (see :func:`forecast_crs`).

    Returns:
        the path written.

    Raises:
        ValueError: an unknown suffix or a bad forecast (see :func:`forecast_to_cf_dataset`).
        FileNotFoundError: ``path``'s folder does not exist.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORECAST_SUFFIXES:
        raise ValueError(f"path must end in one of {FORECAST_SUFFIXES} (netCDF or Zarr), got {str(path)!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: the folder {str(path.parent)!r} of {str(path)!r} does not exist")
    dataset = forecast_to_cf_dataset(forecast, crs)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if suffix == ".nc":
            dataset.to_netcdf(temporary, engine="netcdf4", encoding=_netcdf_encoding(dataset))
        else:
            dataset.to_zarr(temporary, mode="w", zarr_format=2, consolidated=True)
        _replace(temporary, path)
    finally:
        _remove(temporary)
    return path


def _netcdf_encoding(dataset: xarray.Dataset) -> dict:
    """The dataset's own encoding plus zlib + shuffle on every array (``to_netcdf(encoding=...)`` replaces a
    variable's encoding, it does not add to it), one frame per chunk for the rain rate (a reader takes a lead time alone)."""
    encoding = {}
    for name, variable in dataset.variables.items():
        if variable.ndim == 0 or not np.issubdtype(variable.dtype, np.number):
            continue
        encoding[name] = {**variable.encoding, "zlib": True, "complevel": 4, "shuffle": True}
    frame = dataset[FORECAST_VARIABLE]
    encoding[FORECAST_VARIABLE]["chunksizes"] = tuple(
        1 if dim in ("time", "realization") else size for dim, size in frame.sizes.items()
    )
    return encoding


def _replace(temporary: Path, path: Path) -> None:
    if temporary.is_file():
        os.replace(temporary, path)
        return
    # A Zarr store is a folder: a folder cannot be renamed over another, so the old one steps aside first.
    old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old") if path.exists() else None
    if old is not None:
        os.replace(path, old)
    try:
        os.replace(temporary, path)
    except OSError:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
