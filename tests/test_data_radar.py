"""Radar archives in mm/h (pysteps importers, xarray / numpy stacks) and their window tables.

Tests on the real sample events read ``../shared/radar`` (pysteps-data; ``$BCL_RADAR_DATA`` overrides the folder)
and skip when it is absent; the window tests run on small synthetic stacks that need no pysteps.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import xarray

from bidirectional_conv_lstm.data import (
    EXAMPLE_EVENTS,
    RadarSource,
    RadarWindowsConfig,
    example_radar_sources,
    list_radar_files,
    load_radar_windows,
    radar_windows_info,
    read_radar_archive,
)
from bidirectional_conv_lstm.data.radar import windows as radar_windows_module
from bidirectional_conv_lstm.data.radar.timeline import block_average
from bidirectional_conv_lstm.data.rain.storage import NO_DATA, decode_rain_rate

RADAR_DATA_ENV = "BCL_RADAR_DATA"
HAS_PYSTEPS = importlib.util.find_spec("pysteps") is not None


@pytest.fixture(scope="module")
def radar_root() -> Path:
    root = Path(os.environ.get(RADAR_DATA_ENV) or Path(__file__).resolve().parents[2] / "shared" / "radar")
    if not root.is_dir():
        pytest.skip(f"no sample radar data at {root} (set ${RADAR_DATA_ENV})")
    if not HAS_PYSTEPS:
        pytest.skip("reading the sample radar archives needs the nowcasting extra (pysteps)")
    return root


def _stack(
    folder: Path,
    name: str,
    frames: int,
    size: int = 32,
    *,
    seed: int = 0,
    step: float = 5.0,
    start: str = "2024-01-01T10:00",
    suffix: str = ".npz",
) -> Path:
    """A (frames, size, size) mm/h stack with timestamps; values in [0, 10) mm/h."""
    rain = np.random.default_rng(seed).uniform(0, 10, size=(frames, size, size)).astype(np.float32)
    first = datetime.fromisoformat(start)
    times = np.array([first + k * timedelta(minutes=step) for k in range(frames)], dtype="datetime64[s]")
    path = folder / f"{name}{suffix}"
    np.savez(path, rain_rate=rain, timestamps=times) if suffix == ".npz" else np.save(path, rain)
    return path


def _rows(split) -> list[dict]:
    return [split[index] for index in range(len(split))]


# --- the five sample events ---------------------------------------------------------------------------------------

# name: (range start, range end, frames, grid (H, W) as the importers report it, step, native unit, has no-data)
EVENTS = {
    "knmi_20100826": ("2010-08-26T00:00", "2010-08-26T00:10", 3, (765, 700), 5, "mm", True),
    "fmi_20160928": ("2016-09-28T16:00", "2016-09-28T16:10", 3, (1226, 760), 5, "dBZ", True),
    "fmi_20170509": ("2017-05-09T12:00", "2017-05-09T12:10", 3, (1226, 760), 5, "dBZ", True),
    # 00:40 holds fill pixels (-1) and one value -2: both must come out as no data.
    "bom66_20201031": ("2020-10-31T00:30", "2020-10-31T00:50", 3, (512, 512), 10, "mm", True),
    "bom2_20180616": ("2018-06-16T12:00", "2018-06-16T12:12", 3, (512, 512), 6, "mm", False),
}


def _expected_rain_rate(source: RadarSource, path: Path) -> np.ndarray:
    """mm/h computed independently of the reader: raw netCDF for BoM, the importer's field + textbook formulas."""
    if source.importer == "bom_rf3":
        import netCDF4

        with netCDF4.Dataset(path) as dataset:
            variable = dataset.variables["precipitation"]
            variable.set_auto_maskandscale(False)
            raw = variable[:].astype(np.float64)
        return np.where(raw < 0, np.nan, raw * 0.05 * 60 / source.timestep)  # -1 fill, -2 unusable: no data
    from pysteps.io import get_method

    field, _, metadata = get_method(source.importer, "importer")(str(path), **source.importer_kwargs)
    if source.importer == "knmi_hdf5":
        return field * 60 / 5  # 5-min accumulation (mm) -> mm/h
    # dBZ -> Z -> R with the importer's Z = a R^b; at or below the no-rain threshold: 0 mm/h.
    rain = (10 ** (field / 10) / metadata["zr_a"]) ** (1 / metadata["zr_b"])
    return np.where(field < metadata["threshold"], 0.0, rain)


@pytest.mark.parametrize("name", list(EVENTS))
def test_each_sample_event_reads_as_mm_per_hour_with_no_data_masked(radar_root, name):
    start, end, frames, grid, step, native_unit, has_no_data = EVENTS[name]
    source = dataclasses.replace(example_radar_sources(radar_root)[name], start=start, end=end)
    sequence = read_radar_archive(source)
    assert sequence.rain_rate.dtype == np.float32 and sequence.rain_rate.shape == (frames, *grid)
    assert sequence.timestep == step
    assert all(b - a == timedelta(minutes=step) for a, b in zip(sequence.timestamps, sequence.timestamps[1:]))
    assert sequence.timestamps[0] == datetime.fromisoformat(start)
    assert sequence.metadata["unit"] == "mm/h" and sequence.metadata["native_unit"] == native_unit
    rain = sequence.rain_rate
    assert np.nanmin(rain) >= 0 and 1 < np.nanmax(rain) < 300  # it rains, at rates radars see
    assert (np.isnan(rain).sum() > 0) == has_no_data
    for index, path in enumerate(sequence.metadata["files"]):
        expected = _expected_rain_rate(source, Path(path))
        np.testing.assert_array_equal(np.isnan(rain[index]), np.isnan(expected))
        np.testing.assert_allclose(rain[index], expected, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_sample_sources_are_the_five_events_and_a_wrong_root_is_named(radar_root, tmp_path):
    sources = example_radar_sources(radar_root)
    assert tuple(sources) == EXAMPLE_EVENTS
    # pysteps' own pystepsrc entry for KNMI names the same archive.
    from pysteps import rcparams

    entry = {**rcparams["data_sources"]["knmi"], "root_path": str(radar_root / "KNMI")}
    knmi = RadarSource.from_pystepsrc("knmi_20100826", entry, start="201008260000", end="2010-08-26 07:35")
    assert list_radar_files(knmi) == list_radar_files(sources["knmi_20100826"])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        example_radar_sources(tmp_path / "nowhere")


def test_archive_errors_name_root_pattern_range_and_missing_frame(radar_root, tmp_path):
    knmi = example_radar_sources(radar_root)["knmi_20100826"]
    with pytest.raises(FileNotFoundError, match="root .*nowhere"):
        list_radar_files(dataclasses.replace(knmi, root=tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="no file between .*fn_pattern='RAD_XX_%Y%m%d%H%M'"):
        list_radar_files(dataclasses.replace(knmi, fn_pattern="RAD_XX_%Y%m%d%H%M"))
    with pytest.raises(FileNotFoundError, match="no file between start=2011-01-01"):
        list_radar_files(dataclasses.replace(knmi, start="2011-01-01T00:00", end="2011-01-01T01:00"))
    with pytest.raises(ValueError, match="unknown importer 'knmi_hdf6'"):
        read_radar_archive(dataclasses.replace(knmi, importer="knmi_hdf6", end="2010-08-26T00:00"))

    # A copy of four frames with 00:10 missing.
    folder = tmp_path / "KNMI" / "2010" / "08"
    folder.mkdir(parents=True)
    for minute in (0, 5, 15):
        name = f"RAD_NL25_RAP_5min_2010082600{minute:02d}.h5"
        shutil.copy(radar_root / "KNMI" / "2010" / "08" / name, folder / name)
    gappy = dataclasses.replace(knmi, root=tmp_path / "KNMI", end="2010-08-26T00:15")
    with pytest.raises(FileNotFoundError, match="missing frame.*2010-08-26T00:10.*allow_missing_frames"):
        read_radar_archive(gappy)
    gappy = dataclasses.replace(gappy, allow_missing_frames=True)
    sequence = read_radar_archive(gappy)
    assert [t.minute for t in sequence.timestamps] == [0, 5, 15]
    # Opt-in: the windows that would contain 00:10 are dropped; (00:00, 00:05) is the only whole pair.
    config = RadarWindowsConfig(
        num_input_frames=1,
        num_output_frames=1,
        tile_size=16,
        downsample=8,
        time_block_fractions=(1, 0, 0),
        min_valid_fraction=0,
    )
    windows = load_radar_windows(gappy, config, cache_dir=tmp_path / "cache")
    assert radar_windows_info(windows)["events"]["knmi_20100826"]["windows"]["train"] == 1
    assert set(windows["train"]["origin"]) <= {"2010-08-26T00:00:00"}
    with pytest.raises(ValueError, match=r"tile_size=\(128, 128\) is larger than event 'knmi_20100826'"):
        load_radar_windows(gappy, config, cache_dir=tmp_path / "cache", tile_size=128)


def test_real_windows_store_the_block_averaged_event(radar_root, tmp_path):
    source = dataclasses.replace(example_radar_sources(radar_root)["knmi_20100826"], end="2010-08-26T00:35")
    config = RadarWindowsConfig(
        num_input_frames=2,
        num_output_frames=2,
        tile_size=32,
        downsample=4,
        time_block_fractions=(0.5, 0.25, 0.25),
        train_crops_per_window=3,
    )
    with pytest.warns(
        UserWarning, match=r"validation \(2 frames\), test \(2 frames\) are shorter than a window"
    ):
        windows = load_radar_windows(source, config, cache_dir=tmp_path)
    assert len(windows["train"]) >= 1
    events = radar_windows_info(windows)["events"]["knmi_20100826"]
    assert (
        events["grid"] == [191, 175]
        and events["pixel_size"] == [4.0, 4.0]
        and events["timestep_minutes"] == 5
    )
    # 8 frames: train block 0-3 (one window), validation 4-5 and test 6-7 (too short for a window of 4).
    assert events["windows"] == {"train": 1, "validation": 0, "test": 0}
    coarse = block_average(read_radar_archive(source).rain_rate, 4)
    for row in _rows(windows["train"]):
        rain, valid = decode_rain_rate(row["rain_rate"][:, 0])
        expected = coarse[:4, row["y"] : row["y"] + 32, row["x"] : row["x"] + 32]
        np.testing.assert_array_equal(valid, ~np.isnan(expected))
        np.testing.assert_allclose(rain[valid], expected[valid], atol=0.005 + 1e-6)
        assert valid.mean() >= 0.5


# --- windows on synthetic stacks ----------------------------------------------------------------------------------


def test_window_counts_follow_the_formula_and_event_splits_are_disjoint(tmp_path):
    lengths = {"a": 20, "b": 15, "c": 12}
    sources = [
        RadarSource(name=name, path=_stack(tmp_path, name, frames, seed=i))
        for i, (name, frames) in enumerate(lengths.items())
    ]
    config = RadarWindowsConfig(
        num_input_frames=3,
        num_output_frames=2,
        stride=2,
        tile_size=16,
        split="event",
        validation_events=["b"],
        test_events=["c"],
        train_crops_per_window=2,
    )
    windows = load_radar_windows(sources, config, cache_dir=tmp_path / "cache")
    info = radar_windows_info(windows)["events"]
    for name, frames in lengths.items():
        assert sum(info[name]["windows"].values()) == (frames - 5) // 2 + 1
    assert info["a"]["rows"]["train"] == 2 * info["a"]["windows"]["train"]  # two random crops each
    assert info["b"]["rows"]["validation"] == 4 * info["b"]["windows"]["validation"]  # the fixed 2 x 2 tiling
    assert {split: set(windows[split]["event"]) for split in windows} == {
        "train": {"a"},
        "validation": {"b"},
        "test": {"c"},
    }
    # Rows hold the stack's own values at their origin and corner.
    stack = np.load(tmp_path / "b.npz")["rain_rate"]
    row = windows["validation"][5]
    index = (datetime.fromisoformat(row["origin"]) - datetime(2024, 1, 1, 10)) // timedelta(minutes=5)
    rain, valid = decode_rain_rate(row["rain_rate"][:, 0])
    np.testing.assert_allclose(
        rain, stack[index : index + 5, row["y"] : row["y"] + 16, row["x"] : row["x"] + 16], atol=0.005 + 1e-6
    )
    assert valid.all() and windows["validation"].features["rain_rate"].dtype == "uint16"


def test_eval_context_shows_the_surroundings_of_observed_frames_and_scores_the_tile_alone(tmp_path):
    stack_path = _stack(tmp_path, "b", 8, size=40)
    stack = np.load(stack_path)["rain_rate"]
    stack[:, 30:, 30:] = np.nan  # no data in a corner: it shows in the surroundings of the tiles beside it
    np.savez(stack_path, rain_rate=stack, timestamps=np.load(stack_path)["timestamps"])
    sources = [
        RadarSource(name="a", path=_stack(tmp_path, "a", 8, size=40, seed=1)),
        RadarSource(name="b", path=stack_path),
    ]
    config = RadarWindowsConfig(
        num_input_frames=3, num_output_frames=2, tile_size=16, split="event", test_events=["b"]
    )
    plain = load_radar_windows(sources, config, cache_dir=tmp_path / "cache")
    context = load_radar_windows(sources, config, cache_dir=tmp_path / "cache", eval_context=6)
    assert context["train"].features == plain["train"].features  # training crops keep the tile size
    assert context["test"].features["rain_rate"].shape == (5, 1, 28, 28)
    # The same tiles of the same windows are kept: the decision is taken on the tile alone.
    assert list(zip(context["test"]["origin"], context["test"]["y"], context["test"]["x"])) == list(
        zip(plain["test"]["origin"], plain["test"]["y"], plain["test"]["x"])
    )
    for row, tile in zip(_rows(context["test"]), _rows(plain["test"])):
        rain, valid = decode_rain_rate(row["rain_rate"][:, 0])
        tile_rain, tile_valid = decode_rain_rate(tile["rain_rate"][:, 0])
        np.testing.assert_array_equal(rain[:, 6:22, 6:22], tile_rain)  # the centre is the plain tile
        np.testing.assert_array_equal(valid[:, 6:22, 6:22], tile_valid)
        ring = np.ones((28, 28), bool)
        ring[6:22, 6:22] = False
        assert not valid[3:, ring].any()  # the future around the tile is no data: it cannot be scored
        start = (datetime.fromisoformat(row["origin"]) - datetime(2024, 1, 1, 10)) // timedelta(minutes=5)
        y, x = row["y"], row["x"]
        padded = np.pad(stack[start : start + 3], ((0, 0), (6, 6), (6, 6)), constant_values=np.nan)
        expected = padded[:, y : y + 28, x : x + 28]  # the observed surroundings, no data beyond the grid
        np.testing.assert_array_equal(valid[:3], ~np.isnan(expected))
        np.testing.assert_allclose(rain[:3][valid[:3]], expected[~np.isnan(expected)], atol=0.005 + 1e-6)
    assert (0, 0) in set(
        zip(context["test"]["y"], context["test"]["x"])
    )  # a corner tile: data on two sides only
    with pytest.raises(ValueError, match="eval_context must be >= 0 pixels, got -1"):
        RadarWindowsConfig(eval_context=-1)
    with pytest.raises(TypeError, match="eval_context must be an int"):
        RadarWindowsConfig(eval_context=2.5)


def test_time_blocks_never_share_a_frame_and_straddling_windows_are_dropped(tmp_path):
    source = RadarSource(name="long", path=_stack(tmp_path, "long", 40, size=16))
    config = RadarWindowsConfig(
        num_input_frames=3, num_output_frames=2, tile_size=16, time_block_fractions=(0.5, 0.25, 0.25)
    )
    windows = load_radar_windows(source, config, cache_dir=tmp_path / "cache")
    # Blocks: frames 0-19, 20-29, 30-39; windows of 5 frames every frame, wholly inside a block.
    assert radar_windows_info(windows)["events"]["long"]["windows"] == {
        "train": 16,
        "validation": 6,
        "test": 6,
    }
    covered = {}
    for split in windows:
        starts = [
            (datetime.fromisoformat(o) - datetime(2024, 1, 1, 10)) // timedelta(minutes=5)
            for o in windows[split]["origin"]
        ]
        covered[split] = {start + offset for start in starts for offset in range(5)}
    assert covered["train"] == set(range(20)) and covered["validation"] == set(range(20, 30))
    assert covered["test"] == set(range(30, 40))


def test_crops_are_deterministic_by_seed_and_the_cache_is_reused(tmp_path, monkeypatch):
    source = RadarSource(name="e", path=_stack(tmp_path, "e", 12, size=48))
    config = RadarWindowsConfig(
        num_input_frames=2,
        num_output_frames=2,
        tile_size=16,
        train_crops_per_window=3,
        time_block_fractions=(1, 0, 0),
    )
    first = load_radar_windows(source, config, cache_dir=tmp_path / "one")["train"]
    same = load_radar_windows(source, config, cache_dir=tmp_path / "two")["train"]
    other = load_radar_windows(source, config, cache_dir=tmp_path / "one", seed=1)["train"]
    assert list(zip(first["y"], first["x"])) == list(zip(same["y"], same["x"]))
    np.testing.assert_array_equal(first["rain_rate"], same["rain_rate"])
    assert list(zip(first["y"], first["x"])) != list(zip(other["y"], other["x"]))

    def no_reading(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(radar_windows_module, "open_radar_frames", no_reading)
    again = load_radar_windows(source, config, cache_dir=tmp_path / "one")["train"]
    assert again.cache_files[0]["filename"] == first.cache_files[0]["filename"]
    os.utime(source.path, (1, 1))  # the file changed: its identity (size, mtime) is part of the key
    with pytest.raises(AssertionError, match="cache should have been used"):
        load_radar_windows(source, config, cache_dir=tmp_path / "one")


def test_decoded_events_can_be_cached(tmp_path, monkeypatch):
    from bidirectional_conv_lstm.data.radar import archive as radar_module

    source = RadarSource(name="e", path=_stack(tmp_path, "e", 5, size=8))
    first = read_radar_archive(source, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(
        radar_module, "_read_stack", lambda *args: pytest.fail("the cached event was not used")
    )
    again = read_radar_archive(source, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.rain_rate, first.rain_rate)
    assert again.timestamps == first.timestamps and again.metadata == first.metadata
    config = RadarWindowsConfig(
        num_input_frames=2, num_output_frames=1, tile_size=8, time_block_fractions=(1, 0, 0)
    )
    windows = load_radar_windows(source, config, cache_dir=tmp_path / "cache", cache_events=True)
    assert len(windows["train"]) == 3  # built from the cached event: _read_stack was never called


def test_training_crops_meet_the_wet_and_valid_fractions(tmp_path):
    rain = np.zeros((6, 64, 64), np.float32)
    rain[:, 40:, 40:] = 5.0  # one wet corner
    rain[:, :20, :] = np.nan  # a strip outside the radar range
    np.save(tmp_path / "wet.npy", rain)
    source = RadarSource(name="wet", path=tmp_path / "wet.npy", timestep=5)
    config = RadarWindowsConfig(
        num_input_frames=1,
        num_output_frames=1,
        tile_size=16,
        train_crops_per_window=4,
        min_wet_fraction=0.25,
        min_valid_fraction=0.9,
        time_block_fractions=(1, 0, 0),
    )
    train = load_radar_windows(source, config, cache_dir=tmp_path / "cache")["train"]
    assert len(train) > 0 and set(train["origin"]) == {""}  # a stack without a clock
    for row in _rows(train):
        values, valid = decode_rain_rate(row["rain_rate"])
        assert valid.mean() >= 0.9 and (values[valid] >= 0.1).mean() >= 0.25


def test_block_average_marks_a_block_with_any_no_data_pixel_as_no_data():
    rain = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    rain[1, 0, 0] = np.nan
    coarse = block_average(rain, 2)
    assert coarse.shape == (2, 2, 3)
    np.testing.assert_allclose(coarse[0], rain[0].reshape(2, 2, 3, 2).mean(axis=(1, 3)))
    assert np.isnan(coarse[1, 0, 0]) and np.isnan(coarse[1]).sum() == 1


def test_resampling_interpolates_between_consecutive_frames_only(tmp_path):
    # A 6-min event whose field equals the minutes since 10:00; frame 10:18 missing.
    minutes = [0, 6, 12, 24, 30]
    rain = np.broadcast_to(np.array(minutes, np.float32)[:, None, None], (5, 8, 8)).copy()
    np.save(tmp_path / "six.npy", rain)
    stamps = [datetime(2024, 1, 1, 10) + timedelta(minutes=m) for m in minutes]
    source = RadarSource(
        name="six", path=tmp_path / "six.npy", timestamps=stamps, timestep=6, allow_missing_frames=True
    )
    config = RadarWindowsConfig(
        num_input_frames=1, num_output_frames=1, tile_size=8, timestep=5, time_block_fractions=(1, 0, 0)
    )
    windows = load_radar_windows(source, config, cache_dir=tmp_path / "cache")
    info = radar_windows_info(windows)["events"]["six"]
    assert info["resampled"] and info["timestep_minutes"] == 5 and info["native_timestep_minutes"] == 6
    # 5-min grid 10:00..10:30; 10:15 and 10:20 fall in the gap 10:12-10:24: pairs (0,5), (5,10), (25,30) remain.
    by_origin = {
        row["origin"]: decode_rain_rate(row["rain_rate"])[0][:, 0, 0, 0] for row in _rows(windows["train"])
    }
    assert sorted(by_origin) == ["2024-01-01T10:00:00", "2024-01-01T10:05:00", "2024-01-01T10:25:00"]
    np.testing.assert_allclose(by_origin["2024-01-01T10:05:00"], [5, 10], atol=0.005)  # linear in time
    np.testing.assert_allclose(by_origin["2024-01-01T10:25:00"], [25, 30], atol=0.005)


# --- stacks without pysteps, units and argument errors ---------------------------------------------------------------


def test_npy_npz_and_netcdf_stacks_work_without_pysteps(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pysteps", None)  # as if the nowcasting extra were not installed
    npz = RadarSource(name="npz", path=_stack(tmp_path, "npz", 6, size=16))
    npy = RadarSource(name="npy", path=_stack(tmp_path, "npy", 6, size=16, suffix=".npy"))
    times = np.array(
        [datetime(2024, 1, 1) + k * timedelta(minutes=5) for k in range(6)], dtype="datetime64[ns]"
    )
    depth = np.full((6, 16, 16), 0.5, np.float32)
    depth[:, 0, 0] = np.nan
    xarray.Dataset(
        {"precip": (("time", "y", "x"), depth, {"units": "mm"})}, coords={"time": times}
    ).to_netcdf(tmp_path / "depth.nc", engine="scipy")
    netcdf = RadarSource(name="nc", path=tmp_path / "depth.nc", timestep=5)
    sequence = read_radar_archive(netcdf)
    assert sequence.timestamps[1] == datetime(2024, 1, 1, 0, 5) and sequence.metadata["native_unit"] == "mm"
    assert np.isnan(sequence.rain_rate[:, 0, 0]).all() and np.nanmax(sequence.rain_rate) == pytest.approx(6.0)
    assert read_radar_archive(npy).timestamps is None and len(read_radar_archive(npz).timestamps) == 6
    config = RadarWindowsConfig(
        num_input_frames=2, num_output_frames=1, tile_size=8, split="event", test_events=["nc"]
    )
    windows = load_radar_windows([npz, npy, netcdf], config, cache_dir=tmp_path / "cache")
    assert len(windows["train"]) == 8 and set(windows["test"]["event"]) == {"nc"}
    corner = windows["test"].filter(lambda row: row["y"] == 0 and row["x"] == 0)
    assert (
        len(corner) == 4 and (np.stack(corner["rain_rate"])[:, :, 0, 0, 0] == NO_DATA).all()
    )  # kept as no data
    with pytest.raises(ImportError, match=r"pip install .*\[nowcasting\]"):
        read_radar_archive(RadarSource(name="k", files=[tmp_path / "npz.npz"], importer="knmi_hdf5"))
    dbz = RadarSource(name="dbz", path=tmp_path / "npy.npy", unit="dBZ")
    with pytest.raises(ImportError, match=r"converting dBZ .*pip install"):
        read_radar_archive(dbz)


def test_units_convert_and_an_unknown_unit_is_named(tmp_path):
    np.save(tmp_path / "depth.npy", np.full((3, 4, 4), 1.0, np.float32))
    hourly = read_radar_archive(RadarSource(name="d", path=tmp_path / "depth.npy", unit="mm", accutime=10))
    np.testing.assert_allclose(hourly.rain_rate, 6.0)
    with pytest.raises(ValueError, match="accumulations .*accutime"):
        read_radar_archive(RadarSource(name="d", path=tmp_path / "depth.npy", unit="mm"))
    with pytest.raises(ValueError, match="unknown unit 'inch'"):
        RadarSource(name="d", path=tmp_path / "depth.npy", unit="inch")
    xarray.Dataset({"r": (("time", "y", "x"), np.ones((3, 4, 4)), {"units": "inches"})}).to_netcdf(
        tmp_path / "inches.nc", engine="scipy"
    )
    with pytest.raises(ValueError, match="unknown unit 'inches' of variable 'r'"):
        read_radar_archive(RadarSource(name="i", path=tmp_path / "inches.nc"))
    if (
        HAS_PYSTEPS
    ):  # reflectivity through pysteps' Z-R: 10 log10(200 * 1^1.6) dBZ is 1 mm/h (Marshall-Palmer)
        np.save(tmp_path / "dbz.npy", np.full((2, 4, 4), 10 * np.log10(200.0), np.float32))
        dbz = read_radar_archive(RadarSource(name="z", path=tmp_path / "dbz.npy", unit="dBZ"))
        np.testing.assert_allclose(dbz.rain_rate, 1.0, rtol=1e-5)


def test_bad_arguments_are_named(tmp_path):
    path = _stack(tmp_path, "s", 4, size=8)
    source = RadarSource(name="s", path=path)
    for name in ("num_input_frames", "num_output_frames", "stride", "downsample"):
        with pytest.raises(ValueError, match=f"{name} must be a positive int, got 0"):
            RadarWindowsConfig(**{name: 0})
    with pytest.raises(ValueError, match=r"tile_size=\(16, 16\) is larger than event 's'"):
        load_radar_windows(source, cache_dir=tmp_path, tile_size=16, num_input_frames=1, num_output_frames=1)
    with pytest.raises(ValueError, match="unknown events \\['x'\\]"):
        load_radar_windows(source, cache_dir=tmp_path, split="event", test_events=["x"])
    with pytest.raises(ValueError, match="duplicate names"):
        load_radar_windows([source, source], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="time_block_fractions"):
        RadarWindowsConfig(time_block_fractions=(0.5, 0.2, 0.2))
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        read_radar_archive(RadarSource(name="m", path=tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="exactly one of root"):
        RadarSource(name="two", path=path, files=[path])
    with pytest.raises(ValueError, match="cannot tell how to read path"):
        RadarSource(name="gif", path=tmp_path / "frames.gif")
    with pytest.raises(ValueError, match="an archive \\(root\\) also needs \\['start', 'end'\\]"):
        RadarSource(name="a", root=tmp_path, fn_pattern="%Y", fn_ext="h5", importer="knmi_hdf5", timestep=5)
