"""Radar windows built out of core (frames read a few at a time, a rolling buffer of the frames the next window
needs, rows written as they are cut) give the tables a build from whole in-memory events gives, in one process
or several; and peak memory does not grow with the archive's length."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from bidirectional_conv_lstm.benchmarks.radar_windows import (
    measure_in_subprocess,
    write_netcdf_archive,
)
from bidirectional_conv_lstm.data import SPLITS, RadarSource, RadarWindowsConfig, load_radar_windows
from bidirectional_conv_lstm.data.radar import windows as radar_windows_module
from bidirectional_conv_lstm.data.radar.archive import read_radar_archive
from bidirectional_conv_lstm.data.radar.timeline import block_average, build_timeline, window_starts
from bidirectional_conv_lstm.data.rain.storage import encode_rain_rate


def _reference_rows(sources: list[RadarSource], config: RadarWindowsConfig) -> dict[str, list]:
    """The rows as the build made them before it streamed: each whole event read into memory, then cut."""
    rows = {split: [] for split in SPLITS}
    for source in sources:
        sequence = read_radar_archive(source)
        rain = block_average(sequence.rain_rate, config.downsample)
        timeline = build_timeline(sequence.timestamps, sequence.timestep, len(rain), config.timestep)
        starts = window_starts(timeline.present, config.num_frames, config.stride)
        splits = radar_windows_module._split_of_windows(config, source.name, starts, len(timeline))
        rng = np.random.default_rng([config.seed, zlib.crc32(source.name.encode())])
        tiling = radar_windows_module._eval_tiling(config, rain.shape[1:])
        for start, split in zip(starts, splits):
            if split == "train":
                tiles = radar_windows_module._train_crops(rain, timeline, start, config, rng)
            elif split is not None:
                tiles = radar_windows_module._eval_tiles(rain, timeline, start, config, tiling)
            for tile, y, x in tiles if split is not None else ():
                origin = timeline.times[start].isoformat()
                rows[split].append((encode_rain_rate(tile)[:, None], source.name, origin, y, x))
    return rows


def _assert_same_rows(windows, reference: dict[str, list]) -> None:
    for split in SPLITS:
        table = windows[split]
        assert len(table) == len(reference[split]), split
        for index, (rain, event, origin, y, x) in enumerate(reference[split]):
            row = table[index]
            assert (row["event"], row["origin"], row["y"], row["x"]) == (event, origin, y, x)
            np.testing.assert_array_equal(row["rain_rate"], rain)


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> list[RadarSource]:
    """Two events of one-frame netCDF files (32 x 32, no-data corner), the first with a missing frame."""
    folder = tmp_path_factory.mktemp("archives")
    return [
        write_netcdf_archive(folder / "gappy", 40, 32, missing=(11,), seed=1),
        write_netcdf_archive(folder / "whole", 34, 32, seed=2),
    ]


@pytest.mark.parametrize(
    "settings",
    [
        {"timestep": 2.5, "train_crops_per_window": 2},  # resampled in time: interpolated frames
        {"downsample": 2, "tile_size": 8, "eval_context": 3, "stride": 2},
        {"split": "event", "test_events": ("whole",), "min_wet_fraction": 0.2},
    ],
)
def test_streamed_windows_equal_the_whole_event_build(archives, tmp_path, settings):
    config = RadarWindowsConfig(
        **{"num_input_frames": 2, "num_output_frames": 2, "tile_size": 16, **settings}
    )
    windows = load_radar_windows(archives, config, cache_dir=tmp_path / "cache")
    reference = _reference_rows(archives, config)
    assert sum(map(len, reference.values())) > 20 and len(reference["test"]) > 0  # something was compared
    _assert_same_rows(windows, reference)
    parallel = load_radar_windows(archives, config, cache_dir=tmp_path / "parallel", num_workers=2)
    _assert_same_rows(parallel, reference)
    info = radar_windows_module.radar_windows_info(parallel)
    assert info == radar_windows_module.radar_windows_info(windows)
    assert info["events"]["gappy"]["grid_frames"] == (79 if "timestep" in settings else 40)


def test_a_netcdf_stack_streams_as_its_frames_do(archives, tmp_path):
    """A (time, y, x) netCDF stack, read by slices, gives the rows its one-frame files give."""
    import xarray

    source = archives[1]
    sequence = read_radar_archive(source)
    stack = tmp_path / "whole.nc"
    array = xarray.DataArray(sequence.rain_rate, dims=("time", "y", "x"), attrs={"units": "mm/h"})
    xarray.Dataset({"rain_rate": array}, coords={"time": sequence.timestamps}).to_netcdf(stack)
    config = RadarWindowsConfig(num_input_frames=2, num_output_frames=2, tile_size=16)
    from_files = load_radar_windows(source, config, cache_dir=tmp_path / "files")
    from_stack = load_radar_windows(
        RadarSource(name=source.name, path=stack), config, cache_dir=tmp_path / "s"
    )
    assert len(from_stack["train"]) > 5
    for split in SPLITS:
        np.testing.assert_array_equal(from_stack[split]["rain_rate"], from_files[split]["rain_rate"])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_archive(tmp_path):
    """2,000 frames build with a peak (tracemalloc, in a fresh process) within 20 % of 200 frames'."""
    runs = {}
    for count in (200, 2000):
        source = write_netcdf_archive(tmp_path / f"archive_{count}", count)
        runs[count] = measure_in_subprocess(source, tmp_path / f"cache_{count}")
    assert runs[2000]["rows"]["train"] > 9 * runs[200]["rows"]["train"]  # ten times the archive, and its rows
    ratio = runs[2000]["peak_mib"] / runs[200]["peak_mib"]
    print(f"peak: {runs[200]} vs {runs[2000]}; ratio {ratio:.3f}")
    assert ratio <= 1.2, runs
