"""Building radar windows out of core: peak memory and frames/s of ``load_radar_windows`` on synthetic archives of
one-frame netCDF files (what a national archive looks like: one file every 5 minutes), short and long.

Each build runs in a fresh Python process, so imports and earlier builds do not count, and reports the peak of
``tracemalloc`` over the build (every Python and numpy allocation: steady from run to run), the process's peak
resident memory (``ru_maxrss``: imports included, noisier) and the wall time. A streamed build's peak depends on
the window, tile and frame sizes; reading whole events made it grow with the archive's length.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import xarray

from ..data.radar.sources import RadarSource
from ..data.radar.windows import RadarWindowsConfig

__all__ = ["benchmark_radar_windows", "measure_window_build", "write_netcdf_archive"]

#: The benchmark's windows: 4 observed + 4 future frames every 2 frames, 64 px tiles, time-block splits.
BENCHMARK_WINDOWS = {"num_input_frames": 4, "num_output_frames": 4, "stride": 2, "tile_size": 64}
_FIRST = datetime(2024, 6, 1)
_PATTERN = "rain_%Y%m%d%H%M"


def write_netcdf_archive(
    folder: str | Path, num_frames: int, size: int = 128, *, missing=(), seed: int = 0, timestep: float = 5.0
) -> RadarSource:
    """Write ``num_frames`` rain-like frames, one netCDF file each (``rain_YYYYmmddHHMM.nc``: a float32
    ``rain_rate`` (time=1, y, x) in mm/h, NaN on a no-data corner), every ``timestep`` minutes from 2024-06-01,
    skipping the frame indices in ``missing``; return the archive's :class:`RadarSource` (``importer="xarray"``,
    missing frames allowed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    field = rng.lognormal(0.0, 1.0, (size + num_frames, size)).astype(np.float32)
    for index in range(num_frames):
        if index in missing:
            continue
        frame = np.roll(field[index : index + size], index % size, axis=1)  # rain that moves
        frame = np.where(frame < 1.0, 0.0, frame).astype(np.float32)
        frame[: size // 8, : size // 8] = np.nan
        when = _FIRST + index * timedelta(minutes=timestep)
        variable = xarray.DataArray(frame[None], dims=("time", "y", "x"), attrs={"units": "mm/h"})
        xarray.Dataset({"rain_rate": variable}, coords={"time": [when]}).to_netcdf(
            folder / f"{when:{_PATTERN}}.nc"
        )
    last = _FIRST + (num_frames - 1) * timedelta(minutes=timestep)
    return RadarSource(
        name=folder.name,
        root=folder,
        fn_pattern=_PATTERN,
        fn_ext="nc",
        importer="xarray",
        timestep=timestep,
        start=_FIRST,
        end=last,
        allow_missing_frames=bool(missing),
    )


def measure_window_build(source: RadarSource, cache_dir: str | Path, num_workers: int = 1, **config) -> dict:
    """Build ``source``'s windows in this process under ``tracemalloc``: ``peak_mib`` (tracemalloc's peak over the
    build), ``max_rss_mib`` (the process's peak resident memory so far), ``seconds``, ``frames_per_s`` and
    ``rows`` per split."""
    import resource
    import time
    import tracemalloc

    from ..data.radar.windows import load_radar_windows

    config = RadarWindowsConfig(**{**BENCHMARK_WINDOWS, **config})
    tracemalloc.start()
    start = time.perf_counter()
    windows = load_radar_windows(source, config, cache_dir=cache_dir, num_workers=num_workers)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    frames = sum(1 for path in Path(source.root).iterdir() if path.suffix == ".nc")
    return {
        "frames": frames,
        "peak_mib": round(peak / 2**20, 2),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seconds": round(seconds, 2),
        "frames_per_s": round(frames / seconds, 1),
        "rows": {split: len(table) for split, table in windows.items()},
    }


def measure_in_subprocess(source: RadarSource, cache_dir: str | Path, num_workers: int = 1) -> dict:
    """:func:`measure_window_build` in a fresh Python process (imports and earlier builds not counted)."""
    code = (
        "import json, sys\n"
        "from bidirectional_conv_lstm.benchmarks.radar_windows import measure_window_build\n"
        "from bidirectional_conv_lstm.data.radar.sources import RadarSource\n"
        "source, cache_dir, workers = json.loads(sys.argv[1])\n"
        "print(json.dumps(measure_window_build(RadarSource(**source), cache_dir, workers)))\n"
    )
    argument = json.dumps([source.to_dict(), str(cache_dir), num_workers])
    done = subprocess.run([sys.executable, "-c", code, argument], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the window build failed in its subprocess:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def benchmark_radar_windows(folder: str | Path, frame_counts=(200, 2000), size: int = 128) -> dict:
    """Write an archive of each length under ``folder`` and build its windows in a fresh process: the figures of
    :func:`measure_window_build` per length, and ``peak_ratio`` (longest over shortest tracemalloc peak)."""
    folder = Path(folder)
    runs = []
    for count in frame_counts:
        source = write_netcdf_archive(folder / f"archive_{count}", count, size)
        runs.append(measure_in_subprocess(source, folder / f"cache_{count}"))
    return {
        "frame_size": f"{size} x {size}",
        "windows": BENCHMARK_WINDOWS,
        "runs": runs,
        "peak_ratio": round(runs[-1]["peak_mib"] / runs[0]["peak_mib"], 3),
    }
