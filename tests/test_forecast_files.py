"""CF-1.8 forecast files (serving.forecast_files): what cf-xarray and pyproj find in them, and round trips through
netCDF and Zarr with the same values, no-data and times."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray

from bidirectional_conv_lstm.serving.forecast_files import (
    FILL_VALUE,
    forecast_crs,
    forecast_to_cf_dataset,
    write_forecast,
)

pyproj = pytest.importorskip("pyproj", reason="projections need pyproj (the nowcasting extra)")

# FMI's composite projection as pysteps' fmi_pgm importer reports it.
FMI_PROJECTION = (
    "+proj=stere +lon_0=25E +lat_0=90N +lat_ts=60 +a=6371288 +x_0=380886.310 +y_0=3395677.920 +no_defs"
)
REFERENCE = np.datetime64("2017-05-09T12:00", "ns")


def _forecast(*, members: int | None = None, frames: int = 3, height: int = 6, width: int = 8, **attrs):
    """A (time, y, x) or (member, time, y, x) mm/h forecast on a 4 km grid with one no-data pixel per frame."""
    shape = (frames, height, width) if members is None else (members, frames, height, width)
    values = np.random.default_rng(0).gamma(0.5, 2.0, shape).astype(np.float32)
    values[..., 0, 1] = np.nan
    dims = ("time", "y", "x") if members is None else ("member", "time", "y", "x")
    coords = {
        "time": REFERENCE + np.arange(1, frames + 1) * np.timedelta64(5, "m"),
        "y": 1_000_000.0 - 4000.0 * np.arange(height) - 2000.0,
        "x": 4000.0 * np.arange(width) + 2000.0,
        "forecast_reference_time": REFERENCE,
    }
    if members is not None:
        coords["member"] = np.arange(members)
    attrs = {"projection": FMI_PROJECTION, "units": "mm h-1", "institution": "FMI", **attrs}
    return xarray.DataArray(values, dims=dims, coords=coords, attrs=attrs, name="precip_intensity")


def test_cf_xarray_finds_axes_coordinates_standard_names_and_grid_mapping():
    pytest.importorskip("cf_xarray", reason="cf-xarray is in the dev extra")
    dataset = forecast_to_cf_dataset(_forecast())
    assert dataset.attrs["Conventions"] == "CF-1.8"
    assert dataset.cf.axes == {"X": ["x"], "Y": ["y"], "T": ["time"]}
    assert dataset.cf.coordinates["latitude"] == ["lat"] and dataset.cf.coordinates["longitude"] == ["lon"]
    names = dataset.cf.standard_names
    assert names["rainfall_rate"] == ["precip_intensity"]
    assert names["projection_x_coordinate"] == ["x"] and names["projection_y_coordinate"] == ["y"]
    assert names["forecast_reference_time"] == ["forecast_reference_time"]
    assert names["forecast_period"] == ["forecast_period"]
    assert dataset.cf.grid_mapping_names == {"polar_stereographic": ["crs"]}
    assert dataset.cf["rainfall_rate"].attrs["units"] == "mm h-1"
    assert (
        dataset["lat"].attrs["units"] == "degrees_north" and dataset["lon"].attrs["units"] == "degrees_east"
    )


def test_grid_mapping_gives_the_projection_back_and_lat_lon_match_it():
    forecast = _forecast()
    dataset = forecast_to_cf_dataset(forecast)
    crs = pyproj.CRS.from_cf(dataset["crs"].attrs)
    assert crs.equals(pyproj.CRS(FMI_PROJECTION))
    lon, lat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
        float(forecast.x[3]), float(forecast.y[2])
    )
    np.testing.assert_allclose([dataset.lat.values[2, 3], dataset.lon.values[2, 3]], [lat, lon])
    assert 55 < lat < 75 and 15 < lon < 35  # Finland, not the pole nor the origin


def test_crs_is_found_in_a_coordinate_and_the_argument_wins():
    forecast = _forecast(projection=None).drop_attrs()
    assert forecast_crs(forecast) is None and "crs" not in forecast_to_cf_dataset(forecast)
    with_coord = forecast.assign_coords(
        spatial_ref=xarray.DataArray(0, attrs={"crs_wkt": pyproj.CRS(3067).to_wkt()})
    )
    assert forecast_crs(with_coord).equals(pyproj.CRS(3067))
    assert forecast_crs(with_coord, crs="EPSG:3035").equals(pyproj.CRS(3035))
    with pytest.raises(ValueError, match=r"^crs: 'EPSG:nope' is not a projection pyproj understands"):
        forecast_to_cf_dataset(forecast, crs="EPSG:nope")


def test_netcdf_round_trip_keeps_values_no_data_times_and_compresses(tmp_path):
    forecast = _forecast(frames=4, height=40, width=50)
    forecast.values[1, 10:20, 10:20] = 0.0  # compressible
    path = write_forecast(forecast, tmp_path / "forecast.nc")
    with xarray.open_dataset(path) as back:
        np.testing.assert_array_equal(back["precip_intensity"].values, forecast.values)  # NaN where NaN
        np.testing.assert_array_equal(back["time"].values, forecast["time"].values)
        assert back["forecast_reference_time"].values == REFERENCE
        np.testing.assert_array_equal(
            back["forecast_period"].values, np.arange(1, 5) * np.timedelta64(5, "m")
        )
        np.testing.assert_array_equal(back["x"].values, forecast["x"].values)
        encoding = back["precip_intensity"].encoding
        assert encoding["zlib"] and encoding["_FillValue"] == FILL_VALUE
        assert back["time"].encoding["units"].startswith("minutes since 2017-05-09")
        assert back.attrs["institution"] == "FMI" and back["precip_intensity"].attrs["units"] == "mm h-1"
    raw = xarray.open_dataset(path, mask_and_scale=False)
    assert raw["precip_intensity"].values[0, 0, 1] == FILL_VALUE  # no-data on disk is the fill value, not NaN
    raw.close()


def test_member_dimension_becomes_realization(tmp_path):
    forecast = _forecast(members=2)
    dataset = forecast_to_cf_dataset(forecast)
    assert dataset["precip_intensity"].dims == ("realization", "time", "y", "x")
    assert dataset["realization"].attrs["standard_name"] == "realization"
    with xarray.open_dataset(write_forecast(forecast, tmp_path / "ensemble.nc")) as back:
        np.testing.assert_array_equal(back["precip_intensity"].values, forecast.values)
        np.testing.assert_array_equal(back["realization"].values, [0, 1])


def test_km_coordinates_become_metres():
    forecast = _forecast()
    in_km = forecast.assign_coords(x=("x", forecast.x.values / 1000, {"units": "km"}), y=forecast.y / 1000)
    in_km["y"].attrs["units"] = "km"
    dataset = forecast_to_cf_dataset(in_km)
    np.testing.assert_allclose(dataset.x.values, forecast.x.values)
    np.testing.assert_allclose(dataset.y.values, forecast.y.values)
    assert dataset.x.attrs["units"] == "m"


def test_zarr_round_trip_and_overwrite(tmp_path):
    pytest.importorskip("zarr", reason="Zarr output needs zarr (the nowcasting extra)")
    forecast = _forecast()
    path = write_forecast(forecast, tmp_path / "forecast.zarr")
    write_forecast(forecast * 2, path)  # a store is a folder: replaced whole, not merged
    with xarray.open_zarr(path) as back:
        np.testing.assert_array_equal(back["precip_intensity"].values, forecast.values * 2)
        np.testing.assert_array_equal(back["time"].values, forecast["time"].values)
        assert pyproj.CRS.from_cf(back["crs"].attrs).equals(pyproj.CRS(FMI_PROJECTION))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.zarr"]  # no temporary left behind


def test_failed_write_leaves_the_existing_file(tmp_path, monkeypatch):
    path = write_forecast(_forecast(), tmp_path / "forecast.nc")
    before = path.read_bytes()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xarray.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        write_forecast(_forecast() * 3, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["forecast.nc"]


@pytest.mark.parametrize(
    ("make", "path", "error", "message"),
    [
        (lambda f: f.isel(time=0), "f.nc", ValueError, r"^forecast must have dims \('time', 'y', 'x'\)"),
        (lambda f: f.rename(x="lon"), "f.nc", ValueError, r"^forecast must have dims"),
        (lambda f: f.values, "f.nc", TypeError, r"^forecast must be an xarray.DataArray"),
        (
            lambda f: f.assign_attrs(units="dBZ"),
            "f.nc",
            ValueError,
            r"^forecast.attrs\['units'\] must be one of",
        ),
        (lambda f: f.assign_coords(time=np.arange(3)), "f.nc", TypeError, r"^forecast's 'time' coordinate"),
        (lambda f: f, "f.tif", ValueError, r"^path must end in one of \('.nc', '.zarr'\).*'.*f.tif'"),
        (lambda f: f, "missing/f.nc", FileNotFoundError, r"^path: the folder"),
    ],
)
def test_bad_inputs_are_one_line_errors_naming_the_argument(tmp_path, make, path, error, message):
    with pytest.raises(error, match=message) as caught:
        write_forecast(make(_forecast()), tmp_path / path)
    assert "\n" not in str(caught.value)
    assert not any(tmp_path.iterdir())


def _cf_checker():
    """The ``cfchecks`` command when cfchecker and the udunits2 C library it needs are installed, else None."""
    command = Path(sys.executable).parent / "cfchecks"
    if not command.is_file():
        return None
    try:
        importlib.import_module("cfunits")  # raises FileNotFoundError without libudunits2
    except (ImportError, OSError):
        return None
    return command


def _cf_tables(folder: Path) -> list[str]:
    """The checker's table options, pointing at small local tables (it downloads the real ones otherwise): the
    standard names the writer uses with their canonical units, as in the CF standard name table."""
    names = {
        "rainfall_rate": "m s-1",
        "projection_x_coordinate": "m",
        "projection_y_coordinate": "m",
        "latitude": "degree_north",
        "longitude": "degree_east",
        "time": "s",
        "forecast_reference_time": "s",
        "forecast_period": "s",
        "realization": "1",
    }
    entries = "".join(
        f'<entry id="{n}"><canonical_units>{u}</canonical_units></entry>' for n, u in names.items()
    )
    version = "<version_number>1</version_number>"
    tables = {
        "-s": f"<standard_name_table>{version}<last_modified>2025</last_modified>{entries}</standard_name_table>",
        "-a": f'<area_type_table>{version}<date>2025</date><entry id="land"/></area_type_table>',
        "-r": f'<standardized_region_list>{version}<date>2025</date><entry id="global"/></standardized_region_list>',
    }
    options = []
    for option, text in tables.items():
        path = folder / f"table{option}.xml"
        path.write_text('<?xml version="1.0"?>' + text)
        options += [option, str(path)]
    return options


@pytest.mark.skipif(
    _cf_checker() is None, reason="the CF checker (cfchecker + the udunits2 library) is not installed"
)
@pytest.mark.parametrize("members", [None, 2])
def test_cf_checker_finds_no_error(tmp_path, members):
    path = write_forecast(_forecast(members=members), tmp_path / "forecast.nc")
    command = [str(_cf_checker()), "-v", "1.8", *_cf_tables(tmp_path), str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "ERRORS detected: 0" in result.stdout and "WARNINGS given: 0" in result.stdout, result.stdout[
        -3000:
    ]
