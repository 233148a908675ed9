"""Radar frames on the map (data/radar/xarray_frames.py): a RadarSequence as a ``(time, y, x)`` DataArray with pixel
centres from pysteps' grid metadata; stacks that keep their grid; the frame listing a nowcast needs (the newest
frame of an archive, a time range of a file list or stack, the times of a stack without reading it).

The FMI tests read ``../shared/radar`` (``$BCL_RADAR_DATA`` overrides the folder) and skip when it is absent.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import xarray

from bidirectional_conv_lstm.data import RadarSequence, RadarSource, example_radar_sources, read_radar_archive
from bidirectional_conv_lstm.data.radar.archive import radar_frame_times
from bidirectional_conv_lstm.data.radar.sources import list_radar_files, newest_archive_time
from bidirectional_conv_lstm.data.radar.xarray_frames import radar_sequence_to_data_array

HAS_PYSTEPS = importlib.util.find_spec("pysteps") is not None


@pytest.fixture(scope="module")
def radar_root() -> Path:
    root = Path(os.environ.get("BCL_RADAR_DATA") or Path(__file__).resolve().parents[2] / "shared" / "radar")
    if not root.is_dir():
        pytest.skip(f"no sample radar data at {root} (set $BCL_RADAR_DATA)")
    return root


def test_the_fmi_event_on_its_map(radar_root):
    if not HAS_PYSTEPS:
        pytest.skip("reading the FMI archive needs the nowcasting extra (pysteps)")
    pyproj = pytest.importorskip("pyproj")
    source = example_radar_sources(radar_root)["fmi_20170509"]
    sequence = read_radar_archive(
        dataclasses.replace(source, start="2017-05-09T12:00", end="2017-05-09T12:05")
    )
    frames = radar_sequence_to_data_array(sequence)
    metadata = sequence.metadata
    assert frames.dims == ("time", "y", "x") and frames.shape == (
        2,
        1226,
        760,
    )  # 1226 rows, 760 columns at 1 km
    assert np.shares_memory(frames.values, sequence.rain_rate)
    np.testing.assert_array_equal(
        frames["time"].values, np.array(["2017-05-09T12:00", "2017-05-09T12:05"], "M8[ns]")
    )
    x, y = frames["x"].values, frames["y"].values
    assert metadata["yorigin"] == "upper" and np.all(np.diff(y) < 0)  # row 0 is the north edge
    assert x[0] == pytest.approx(metadata["x1"] + metadata["xpixelsize"] / 2)
    assert y[0] == pytest.approx(metadata["y2"] - metadata["ypixelsize"] / 2)
    assert x[-1] == pytest.approx(
        metadata["x2"] - metadata["xpixelsize"] / 2, abs=0.01
    )  # corners and sizes agree
    assert y[-1] == pytest.approx(metadata["y1"] + metadata["ypixelsize"] / 2, abs=0.01)  # to the centimetre
    np.testing.assert_allclose(np.diff(x), metadata["xpixelsize"])
    assert frames.attrs["units"] == "mm h-1" and frames.attrs["projection"] == metadata["projection"]
    assert frames.attrs["xpixelsize"] == pytest.approx(999.674053)
    to_degrees = pyproj.Transformer.from_crs(
        pyproj.CRS(frames.attrs["projection"]), "EPSG:4326", always_xy=True
    )
    lon, lat = to_degrees.transform(x[380], y[613])
    assert 60 < lat < 66 and 20 < lon < 30  # the middle of the composite is in Finland


def _sequence(height=4, width=3, **metadata) -> RadarSequence:
    rain = np.arange(2 * height * width, dtype=np.float32).reshape(2, height, width)
    stamps = [datetime(2024, 1, 1, 10, 0), datetime(2024, 1, 1, 10, 5)]
    return RadarSequence("test", rain, stamps, 5.0, {"unit": "mm/h", **metadata})


def test_grid_from_metadata_lower_origin_and_km():
    frames = radar_sequence_to_data_array(
        _sequence(
            x1=10.0,
            x2=13.0,
            y1=-2.0,
            y2=2.0,
            xpixelsize=1.0,
            ypixelsize=1.0,
            yorigin="lower",
            cartesian_unit="km",
        )  # fmt: skip
    )
    np.testing.assert_allclose(frames["x"].values, [10500.0, 11500.0, 12500.0])
    np.testing.assert_allclose(
        frames["y"].values, [-1500.0, -500.0, 500.0, 1500.0]
    )  # row 0 is the south edge
    assert frames["x"].attrs["units"] == "m" and frames.attrs["xpixelsize"] == 1000.0
    assert frames.attrs["timestep"] == 5.0


def test_a_km_projection_is_rewritten_in_metres_to_match_the_coordinates():
    """pysteps' KNMI importer gives a km grid and an ellipsoid in km: x / y become metres, and so must the
    projection's lengths, or pyproj puts the grid nowhere on Earth."""
    import pyproj

    knmi = "+proj=stere +lat_0=90 +lon_0=0.0 +lat_ts=60.0 +a=6378.137 +b=6356.752 +x_0=0 +y_0=0"
    frames = radar_sequence_to_data_array(
        _sequence(
            x1=0.0,
            x2=3.0,
            y1=-4000.0,
            y2=-3996.0,
            xpixelsize=1.0,
            ypixelsize=1.0,
            cartesian_unit="km",
            projection=knmi,
        )
    )
    assert "+a=6378137 +b=6356752" in frames.attrs["projection"]
    to_degrees = pyproj.Transformer.from_crs(frames.attrs["projection"], "EPSG:4326", always_xy=True)
    lon, lat = to_degrees.transform(frames["x"].values[0], frames["y"].values[0])
    assert 0 < lon < 1 and 52 < lat < 54  # the North Sea off the Netherlands, by KNMI's grid


def test_no_grid_no_coordinates_and_clear_errors():
    frames = radar_sequence_to_data_array(_sequence())
    assert set(frames.coords) == {"time"}
    with pytest.raises(ValueError, match=r"x extent \(5\) is not 3 pixels of xpixelsize=1"):
        radar_sequence_to_data_array(
            _sequence(x1=0.0, x2=5.0, y1=0.0, y2=4.0, xpixelsize=1.0, ypixelsize=1.0)
        )
    with pytest.raises(TypeError, match="sequence must be a RadarSequence, got ndarray"):
        radar_sequence_to_data_array(np.zeros((2, 4, 3)))


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_stack_keeps_its_grid_projection_and_reads_its_time_range(tmp_path, suffix):
    if suffix == ".zarr":
        pytest.importorskip("zarr")
    pyproj = pytest.importorskip("pyproj")
    from bidirectional_conv_lstm.serving.forecast_files import write_forecast

    times = np.datetime64("2024-06-01T10:00", "ns") + np.arange(4) * np.timedelta64(5, "m")
    rain = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    written = xarray.DataArray(
        rain,
        dims=("time", "y", "x"),
        coords={"time": times, "x": 500.0 + 1000.0 * np.arange(6), "y": 4500.0 - 1000.0 * np.arange(5)},
        attrs={"crs_wkt": pyproj.CRS(3067).to_wkt(), "units": "mm/h"},
    )
    path = write_forecast(
        written, tmp_path / f"stack{suffix}"
    )  # a CF file: x / y in metres and a grid mapping
    source = RadarSource(name="stack", path=path, start="2024-06-01T10:05", end="2024-06-01T10:10")
    assert radar_frame_times(source) == [datetime(2024, 6, 1, 10, 5), datetime(2024, 6, 1, 10, 10)]
    frames = radar_sequence_to_data_array(read_radar_archive(source))
    np.testing.assert_array_equal(frames.values, rain[1:3])  # only the range is read
    np.testing.assert_array_equal(frames["x"].values, written["x"].values)
    np.testing.assert_array_equal(frames["y"].values, written["y"].values)
    assert pyproj.CRS(frames.attrs["crs_wkt"]).equals(pyproj.CRS(3067))


def test_newest_frame_of_an_archive_and_a_file_list_cut_to_a_range(tmp_path):
    for day, minutes in (("20240101", (0, 5)), ("20240102", (0, 5, 10)), ("notaday", (30,))):
        folder = tmp_path / "x" / day
        folder.mkdir(parents=True)
        for minute in minutes:
            (folder / f"radarA_{day}10{minute:02d}.h5").touch()
    (tmp_path / "x" / "20240102" / "radarB_202401021015.h5").touch()  # '?' matches the letter
    (tmp_path / "x" / "20240102" / "radarA_202401021020.txt").touch()  # another extension
    assert newest_archive_time(tmp_path, "x/%Y%m%d", "radar?_%Y%m%d%H%M", "h5") == datetime(
        2024, 1, 2, 10, 15
    )
    with pytest.raises(FileNotFoundError, match="no file under root .* matches path_fmt='x/%Y'"):
        newest_archive_time(tmp_path, "x/%Y", "radar?_%Y%m%d%H%M", "h5")
    files = sorted(str(p) for p in (tmp_path / "x").glob("2024*/radarA_*.h5"))
    source = RadarSource(name="files", files=files, importer="knmi_hdf5", fn_pattern="radarA_%Y%m%d%H%M",
                         fn_ext="h5", start="2024-01-01T10:05", end="2024-01-02T10:05")  # fmt: skip
    paths, stamps = list_radar_files(source)
    assert [path.name for path in paths] == ["radarA_202401011005.h5", "radarA_202401021000.h5",
                                             "radarA_202401021005.h5"]  # fmt: skip
    assert stamps[0] == datetime(2024, 1, 1, 10, 5)
