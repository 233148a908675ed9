"""Real weather-radar archives read as rain rate in mm/h: :func:`read_radar_archive` -> :class:`RadarSequence`.

National formats go through pysteps' importers (``pysteps.io.get_method(name, "importer")``, any name pysteps
offers, with its keyword arguments) and ``pysteps.utils.to_rainrate`` for the unit: 5-min accumulations in mm
become mm/h (``R = depth * 60 / accutime``), reflectivity in dBZ becomes mm/h through the importer's Z-R relation
``Z = a R^b``. pysteps is the optional ``nowcasting`` extra, imported only when a source needs it; a ``.npy`` /
``.npz`` stack or a ``(time, y, x)`` netCDF variable (read with xarray) needs neither pysteps nor its readers.

No-data pixels (outside the radar range, blocked beams, the importers' masked or NaN values, and non-physical
negative values such as BoM's code -2) are NaN in the result, never 0 mm/h.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import importlib
import io
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import numpy as np

from ...models.convlstm.argument_checks import check_int
from .cache import cached_shape, load_sequence, save_sequence, sequence_folder
from .sources import (
    BUILTIN_IMPORTERS,
    KNOWN_UNITS,
    RadarSource,
    as_datetime,
    check_time_steps,
    in_time_range,
    list_radar_files,
)

__all__ = [
    "NOWCASTING_INSTALL",
    "RadarFrames",
    "RadarSequence",
    "import_pysteps",
    "open_radar_frames",
    "radar_frame_times",
    "radar_grid_shape",
    "read_radar_archive",
]

NOWCASTING_INSTALL = (
    'pip install "bidirectional-conv-lstm[nowcasting]" (from a clone: pip install -e ".[nowcasting]")'
)
# CF / common spellings of the units a stack may declare.
_UNIT_ALIASES = {
    "mm/h": "mm/h",
    "mm h-1": "mm/h",
    "mm/hr": "mm/h",
    "mm hr-1": "mm/h",
    "kg m-2 h-1": "mm/h",
    "mm": "mm",
    "kg m-2": "mm",
    "dbz": "dBZ",
}


@dataclasses.dataclass
class RadarSequence:
    """One radar event as rain rate.

    Attributes:
        name (`str`): the source's name.
        rain_rate (`np.ndarray`): float32 (T, H, W), mm/h, NaN where there is no data.
        timestamps (`list[datetime]` or None): one naive UTC time per frame, increasing (gaps only where a source
            allows missing frames); None for a stack without times.
        timestep (`float` or None): minutes between frames (the source's, or the median step of the timestamps).
        metadata (`dict`): the importer's metadata after conversion (``unit`` is ``"mm/h"``; grid corners, pixel
            sizes, projection...) plus ``native_unit``, ``importer``, ``files`` and ``negative_values_masked``.
    """

    name: str
    rain_rate: np.ndarray
    timestamps: list[datetime] | None
    timestep: float | None
    metadata: dict

    @property
    def valid(self) -> np.ndarray:
        """bool (T, H, W): True where there is data."""
        return ~np.isnan(self.rain_rate)


def import_pysteps(purpose: str):
    """Import pysteps (quietly: it prints where its config file is), or raise an ImportError that says which
    ``pip install`` brings it."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            pysteps = importlib.import_module("pysteps")
            importlib.import_module("pysteps.io")
            importlib.import_module("pysteps.utils")
    except ImportError as error:
        raise ImportError(f"{purpose} needs pysteps, the nowcasting extra: {NOWCASTING_INSTALL}") from error
    return pysteps


def read_radar_archive(
    source: RadarSource, *, num_workers: int = 1, cache_dir: str | os.PathLike | None = None
) -> RadarSequence:
    """Read every frame of a source as rain rate in mm/h.

    Args:
        source: where the frames are and how to read them.
        num_workers: processes reading frames in parallel (pysteps importers only; their readers are not
            thread-safe). 1 reads in this process.
        cache_dir: keep the decoded event under ``<cache_dir>/radar_sequences/`` and reuse it while the files are
            unchanged (see :mod:`~bidirectional_conv_lstm.data.radar.cache`); None reads the files every time.

    Returns:
        a :class:`RadarSequence`, float32 (T, H, W) mm/h with NaN = no data.

    Raises:
        FileNotFoundError: a wrong root, pattern, path or range, or a missing frame (see :func:`list_radar_files`).
        ValueError: an unknown importer or unit, frames of different grid sizes, a stack that is not (T, H, W).
        ImportError: the source needs pysteps (or a netCDF engine) and it is not installed; says what to install.
    """
    if not isinstance(source, RadarSource):
        raise TypeError(f"source must be a RadarSource, got {type(source).__name__}")
    check_int("num_workers", num_workers)
    paths, stamps = list_radar_files(source)
    folder = sequence_folder(cache_dir, source, paths) if cache_dir is not None else None
    cached = load_sequence(folder) if folder is not None else None
    if cached is not None:
        return RadarSequence(source.name, *cached)
    if source.kind == "path":
        sequence = _read_stack(source, paths[0])
    else:
        sequence = _read_files(source, paths, stamps, num_workers)
    if folder is not None:
        save_sequence(folder, sequence.rain_rate, sequence.timestamps, sequence.timestep, sequence.metadata)
    return sequence


@dataclasses.dataclass
class RadarFrames:
    """One radar event read a few frames at a time: what is known before reading, and the frames.

    Attributes:
        name (`str`): the source's name.
        num_frames (`int`): T, the number of frames.
        timestamps, timestep: as :class:`RadarSequence`'s.
        metadata (`dict`): as :class:`RadarSequence`'s once ``chunks`` is exhausted (filled in as frames are read).
        chunks (iterator of `np.ndarray`): float32 (k, H, W) mm/h groups of consecutive frames (NaN = no data),
            the T frames in order, read when asked for; they hold the same values :func:`read_radar_archive` does.
    """

    name: str
    num_frames: int
    timestamps: list[datetime] | None
    timestep: float | None
    metadata: dict
    chunks: Iterator[np.ndarray]


def open_radar_frames(
    source: RadarSource,
    *,
    num_workers: int = 1,
    cache_dir: str | os.PathLike | None = None,
    chunk_size: int = 8,
) -> RadarFrames:
    """A source's frames, to be read in order a few at a time, so memory holds ``chunk_size`` frames (and, with
    ``num_workers`` processes, ``2 * num_workers`` read ahead), not the event: a stack is read by slices (a
    ``.npy`` memory-mapped, netCDF / Zarr lazily; a ``.npz`` is read whole), an archive or a file list file by
    file. With ``cache_dir`` a cached event (see :func:`read_radar_archive`) is sliced from its memory-mapped file;
    one not yet cached is read whole once, cached, then sliced.

    Raises:
        FileNotFoundError: as :func:`read_radar_archive`: here for what the listing tells, later (while iterating
            ``chunks``) for the frames themselves.
        ValueError: as :func:`read_radar_archive`: here for what the stack's header tells, later for the frames.
    """
    if not isinstance(source, RadarSource):
        raise TypeError(f"source must be a RadarSource, got {type(source).__name__}")
    check_int("num_workers", num_workers)
    check_int("chunk_size", chunk_size)
    paths, stamps = list_radar_files(source)
    if cache_dir is not None:
        folder = sequence_folder(cache_dir, source, paths)
        if cached_shape(folder) is None:
            read_radar_archive(source, num_workers=num_workers, cache_dir=cache_dir)
        rain_rate, stamps, timestep, metadata = load_sequence(folder, mmap_mode="r")
        chunks = (np.array(rain_rate[i : i + chunk_size]) for i in range(0, len(rain_rate), chunk_size))
        return RadarFrames(source.name, len(rain_rate), stamps, timestep, metadata, chunks)
    if source.kind != "path":
        metadata = {}
        paths = [str(path) for path in paths]  # kept while reading: strings cost half of Path objects
        frames = _file_frames(source, paths, num_workers, metadata)
        chunks = (frame[None] for frame in frames)
        return RadarFrames(source.name, len(paths), stamps, _timestep(source, stamps), metadata, chunks)
    with _lazy_stack(source, paths[0]) as (values, stamps, _):
        num_frames = len(values)
    metadata = {}
    chunks = _stack_chunks(source, paths[0], chunk_size, metadata)
    return RadarFrames(source.name, num_frames, stamps, _timestep(source, stamps), metadata, chunks)


def _stack_chunks(source: RadarSource, path: Path, chunk_size: int, metadata: dict) -> Iterator[np.ndarray]:
    """A stack's frames, ``chunk_size`` at a time, converted as :func:`_read_stack` converts the whole."""
    with _lazy_stack(source, path) as (values, _, native):
        negative = 0
        for first in range(0, len(values), chunk_size):
            field = np.asarray(values[first : first + chunk_size], dtype=np.float64)
            rain, chunk_metadata = _to_rain_rate(field, native, source, where=str(path))
            negative += chunk_metadata["negative_values_masked"]
            metadata.update(chunk_metadata, negative_values_masked=negative)
            metadata.update(importer=source.importer, files=[str(path)])
            yield rain


def _read_files(source: RadarSource, paths: list[Path], stamps, num_workers: int) -> RadarSequence:
    """An archive or a file list, one frame per file, into one (T, H, W) array."""
    rain_rate, metadata = None, {}
    for index, rain in enumerate(_file_frames(source, paths, num_workers, metadata)):
        if rain_rate is None:  # filled in place: one copy of the event in memory, not a list and a stack
            rain_rate = np.empty((len(paths), *rain.shape), dtype=np.float32)
        rain_rate[index] = rain
    return RadarSequence(source.name, rain_rate, stamps, _timestep(source, stamps), metadata)


def _file_frames(source: RadarSource, paths: list, num_workers: int, metadata: dict) -> Iterator[np.ndarray]:
    """Each file's frame, float32 (H, W) mm/h, in order; ``metadata`` is filled with the first frame's (plus the
    count of masked negative values so far, the importer and the files). With ``num_workers > 1`` a process pool
    reads at most ``2 * num_workers`` files ahead of the consumer, so memory holds a few frames, not the event."""
    if source.importer not in BUILTIN_IMPORTERS:
        pysteps = import_pysteps(f"RadarSource {source.name!r} (importer {source.importer!r})")
        _pysteps_importer(pysteps, source)  # an unknown name fails here, before any file is read
    files = [str(path) for path in paths]  # the same strings as the caller's, when it gives strings
    jobs = ((source, file) for file in files)
    with contextlib.ExitStack() as stack:
        if num_workers > 1 and len(paths) > 1:
            pool = stack.enter_context(concurrent.futures.ProcessPoolExecutor(min(num_workers, len(paths))))
            stack.callback(pool.shutdown, cancel_futures=True)  # a consumer that stops early cancels the rest
            frames = _ordered_map(pool, _read_frame, jobs, ahead=2 * num_workers)
        else:
            frames = map(_read_frame, jobs)
        for index, (rain, frame_metadata) in enumerate(frames):
            if index == 0:
                metadata.update(frame_metadata, negative_values_masked=0)
                metadata.update(importer=source.importer, files=files)
                grid = rain.shape
            elif rain.shape != grid:
                raise ValueError(
                    f"RadarSource {source.name!r}: {paths[index]} has grid {rain.shape}, the first frame "
                    f"{paths[0]} has {grid}"
                )
            metadata["negative_values_masked"] += frame_metadata["negative_values_masked"]
            yield rain


def _ordered_map(pool, function, jobs: Iterable, ahead: int) -> Iterator:
    """``map(function, jobs)`` in ``pool``, in order, with at most ``ahead`` jobs submitted and not yet consumed."""
    pending = collections.deque()
    for job in jobs:
        pending.append(pool.submit(function, job))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def radar_grid_shape(source: RadarSource, *, cache_dir: str | os.PathLike | None = None) -> tuple[int, int]:
    """``(H, W)`` of a source's frames as its reader reports them, reading little: a cached event's array header
    (with ``cache_dir``, see :func:`read_radar_archive`), one frame through a pysteps importer (which also checks
    the importer's name), the header of a ``.npy`` file, or the whole of another stack."""
    paths, _ = list_radar_files(source)
    shape = cached_shape(sequence_folder(cache_dir, source, paths)) if cache_dir is not None else None
    if shape is not None:
        return tuple(shape[1:])
    if source.kind != "path":
        if source.importer not in BUILTIN_IMPORTERS:
            pysteps = import_pysteps(f"RadarSource {source.name!r} (importer {source.importer!r})")
            _pysteps_importer(pysteps, source)
        return tuple(_read_frame((source, str(paths[0])))[0].shape)
    with _lazy_stack(source, paths[0]) as (values, _, _):  # checks the shape; reads no frame (but a .npz)
        return tuple(values.shape[1:])


def _pysteps_importer(pysteps, source: RadarSource):
    try:
        return pysteps.io.get_method(source.importer, "importer")
    except ValueError:
        known = sorted(getattr(getattr(pysteps.io, "interface", None), "_importer_methods", {}))
        raise ValueError(
            f"RadarSource {source.name!r}: unknown importer {source.importer!r}; pysteps offers {known}, and "
            f"{list(BUILTIN_IMPORTERS)} read .npy/.npz/netCDF stacks"
        ) from None


def _read_frame(job: tuple[RadarSource, str]) -> tuple[np.ndarray, dict]:
    """One file through its pysteps importer (or a builtin one: a stack of one frame), converted to mm/h (runs in
    worker processes too)."""
    source, path = job
    if source.importer in BUILTIN_IMPORTERS:
        with _lazy_stack(source, Path(path), one_frame=True) as (values, _, metadata):
            rain, metadata = _to_rain_rate(
                np.asarray(values[0], dtype=np.float64), metadata, source, where=path
            )
        return rain, metadata
    pysteps = import_pysteps(f"RadarSource {source.name!r} (importer {source.importer!r})")
    importer = _pysteps_importer(pysteps, source)
    try:
        field, _, metadata = importer(path, **source.importer_kwargs)
    except Exception as error:
        # pysteps.exceptions.MissingOptionalDependency: the reader this format needs is not installed.
        if type(error).__name__ == "MissingOptionalDependency":
            raise ImportError(f"importer {source.importer!r}: {error}; {NOWCASTING_INSTALL}") from error
        kind = OSError if isinstance(error, OSError) else ValueError
        raise kind(
            f"RadarSource {source.name!r}: importer {source.importer!r} (kwargs {source.importer_kwargs}) could not "
            f"read {path}: {type(error).__name__}: {error}"
        ) from error
    field = np.ma.filled(np.ma.asarray(field, dtype=np.float64), np.nan)
    return _to_rain_rate(field, metadata, source, where=path)


def _to_rain_rate(
    field: np.ndarray, metadata: dict, source: RadarSource, *, where: str
) -> tuple[np.ndarray, dict]:
    """float64 field in its native unit (NaN = no data) -> (float32 mm/h with NaN, converted metadata)."""
    metadata = dict(metadata)
    if source.unit is not None:  # the user's word over the importer's
        metadata.update(unit=source.unit, transform="dB" if source.unit == "dBZ" else None)
    unit, transform = metadata.get("unit"), metadata.get("transform")
    if unit not in KNOWN_UNITS:
        raise ValueError(
            f"RadarSource {source.name!r}: unknown unit {unit!r} in {where}; expected one of {KNOWN_UNITS} "
            "(set RadarSource(unit=...) if the file does not say)"
        )
    native = {"native_unit": unit, "native_transform": transform}
    if unit == "mm":
        accutime = source.accutime or metadata.get("accutime") or source.timestep
        if accutime is None:
            raise ValueError(
                f"RadarSource {source.name!r}: {where} holds accumulations (mm) but their period is unknown; "
                "set accutime= or timestep= (minutes)"
            )
        metadata["accutime"] = float(accutime)
    if transform is None and unit == "mm/h":
        rain = field
    elif transform is None and unit == "mm":
        scale = 60.0 / float(metadata["accutime"])  # as pysteps.utils.to_rainrate, without importing pysteps
        rain = field * scale
        for key in ("threshold", "zerovalue"):
            if metadata.get(key) is not None:
                metadata[key] = float(metadata[key]) * scale
    else:
        pysteps = import_pysteps(f"converting {unit} (transform {transform}) to mm/h for {where}")
        # A stack has no rain / no-rain threshold: convert every value.
        metadata.setdefault("threshold", -np.inf)
        metadata.setdefault("zerovalue", 0.0)
        try:
            rain, metadata = pysteps.utils.to_rainrate(field, metadata, zr_a=source.zr_a, zr_b=source.zr_b)
        except ValueError as error:
            raise ValueError(
                f"RadarSource {source.name!r}: cannot convert {where} to mm/h: {error}"
            ) from None
    rain = np.where(np.isfinite(rain), rain, np.nan)
    negative = rain < 0
    rain[negative] = np.nan  # no physical meaning (BoM writes -2 for some unusable pixels): no data, not 0
    metadata["unit"] = "mm/h"
    metadata.update(native, negative_values_masked=int(negative.sum()))
    return rain.astype(np.float32), {key: _plain(value) for key, value in metadata.items()}


def _plain(value):
    """numpy scalars to Python ones, so metadata is JSON-able."""
    return value.item() if isinstance(value, np.generic) else value


def _timestep(source: RadarSource, stamps) -> float | None:
    if source.timestep is not None or not stamps or len(stamps) < 2:
        return source.timestep
    steps = np.diff(np.array(stamps, dtype="datetime64[s]")).astype(np.int64)
    return float(np.median(steps)) / 60.0


def _read_stack(source: RadarSource, path: Path) -> RadarSequence:
    with _lazy_stack(source, path) as (values, stamps, metadata):
        rain, metadata = _to_rain_rate(
            np.asarray(values, dtype=np.float64), metadata, source, where=str(path)
        )
    metadata.update(importer=source.importer, files=[str(path)])
    return RadarSequence(source.name, rain, stamps, _timestep(source, stamps), metadata)


@contextlib.contextmanager
def _lazy_stack(source: RadarSource, path: Path, *, one_frame: bool = False):
    """``(values, timestamps, metadata)`` of a stack, checked, before its values are read: ``values`` is (T, H, W)
    and read when indexed (a memory-mapped ``.npy``, an xarray variable; a ``.npz`` is read whole), ``metadata``
    holds the grid and the unit to convert from. ``one_frame``: a file of an archive or a file list, which must
    hold one frame and takes its time from the listing."""
    grid, unit = {}, None
    with contextlib.ExitStack() as stack:
        if source.importer == "numpy":
            values, stamps = _load_numpy(source, path)
        else:
            dataset = stack.enter_context(_open_xarray(source, path))
            name, values = _stack_array(source, dataset, path)
            grid, stamps = _grid_metadata(dataset, values), _stack_times(values, path)
            unit = _stack_unit(source, values, name, path)
        if one_frame and len(values) != 1:
            raise ValueError(
                f"RadarSource {source.name!r}: {path} holds {len(values)} frames; a file of an archive or a file "
                "list must hold one (give a stack as path=...)"
            )
        stamps = None if one_frame else _checked_stack(source, path, values, stamps)
        metadata = {**grid, "unit": source.unit or unit or "mm/h"}
        if metadata["unit"] == "dBZ":
            metadata["transform"] = "dB"
        yield values, stamps, metadata


def _checked_stack(source: RadarSource, path: Path, values, stamps) -> list[datetime] | None:
    """The stack's timestamps (the source's over the file's), after checking its shape, dtype and times."""
    if values.ndim != 3 or 0 in values.shape:
        raise ValueError(
            f"RadarSource {source.name!r}: {path} holds shape {values.shape}; expected (T, H, W)"
        )
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise TypeError(f"RadarSource {source.name!r}: {path} holds dtype {values.dtype}; expected numbers")
    if source.timestamps is not None:
        stamps = list(source.timestamps)
    if stamps is not None:
        if len(stamps) != len(values):
            raise ValueError(
                f"RadarSource {source.name!r}: {len(stamps)} timestamps for the {len(values)} frames of {path}"
            )
        for before, after in zip(stamps, stamps[1:]):
            if after <= before:
                raise ValueError(
                    f"RadarSource {source.name!r}: timestamps of {path} are not increasing at {after}"
                )
        check_time_steps(stamps, source)
    return stamps


def _load_numpy(source: RadarSource, path: Path) -> tuple[np.ndarray, list[datetime] | None]:
    """A ``.npy`` stack memory-mapped (read when indexed), or a ``.npz`` array read whole, and its times."""
    loaded = np.load(path, mmap_mode="r", allow_pickle=False)  # an .npz ignores mmap_mode
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded:
        arrays = [key for key in loaded.files if key != "timestamps"]
        key = source.variable or (
            "rain_rate" if "rain_rate" in arrays else arrays[0] if len(arrays) == 1 else None
        )
        if key not in loaded.files:
            raise ValueError(
                f"RadarSource {source.name!r}: {path} holds arrays {loaded.files}; set variable= to the (T, H, W) one"
                + (f" ({source.variable!r} is not there)" if source.variable else "")
            )
        if "timestamps" not in loaded.files:
            return loaded[key], None
        stamps = [as_datetime(value, f"{path}['timestamps']") for value in loaded["timestamps"].tolist()]
        keep = [index for index, stamp in enumerate(stamps) if in_time_range(stamp, source)]
        return loaded[key][keep] if len(keep) < len(stamps) else loaded[key], [stamps[i] for i in keep]


def _stack_unit(source: RadarSource, array, name: str, path: Path) -> str | None:
    """The unit a netCDF / Zarr variable declares (``units``), unless the source sets one."""
    units = array.attrs.get("units")
    if units is None or source.unit is not None:
        return None
    unit = _UNIT_ALIASES.get(str(units).strip().lower()) or _UNIT_ALIASES.get(str(units).strip())
    if unit is None:
        raise ValueError(
            f"RadarSource {source.name!r}: unknown unit {units!r} of variable {name!r} in {path}; expected one "
            f"of {KNOWN_UNITS} (set RadarSource(unit=...) to override)"
        )
    return unit


def _open_xarray(source: RadarSource, path: Path):
    import xarray

    try:
        return xarray.open_dataset(path, engine="zarr" if path.suffix.lower() == ".zarr" else None)
    except ValueError as error:
        if "backend" in str(error) or "engine" in str(error):
            raise ImportError(
                f"RadarSource {source.name!r}: no installed netCDF reader can open {path} (netCDF-4/HDF5 files need "
                f"netCDF4): {NOWCASTING_INSTALL}"
            ) from error
        raise


def _stack_array(source: RadarSource, dataset, path: Path):
    """``(name, variable)``: the stack's (time, y, x) variable, time first, cut to ``start`` .. ``end`` (lazily:
    nothing is read yet)."""
    cubes = [name for name, array in dataset.data_vars.items() if array.ndim == 3]
    name = source.variable or (cubes[0] if len(cubes) == 1 else None)
    if name not in dataset.data_vars:
        raise ValueError(
            f"RadarSource {source.name!r}: {path} has 3-D variables {cubes}; set variable= to the (time, y, x) one"
            + (f" ({source.variable!r} is not there)" if source.variable else "")
        )
    array = dataset[name]
    if "time" in array.dims:
        array = array.transpose("time", ...)
        if (source.start or source.end) and np.issubdtype(array["time"].dtype, np.datetime64):
            array = array.sel(time=slice(source.start, source.end))
    return name, array


def _stack_times(array, path: Path) -> list[datetime] | None:
    if "time" in array.coords and np.issubdtype(array["time"].dtype, np.datetime64):
        return [as_datetime(value, f"{path} time") for value in array["time"].values]
    return None


def radar_frame_times(source: RadarSource) -> list[datetime] | None:
    """The times of a source's frames (in its ``start`` .. ``end`` where it has them), reading no frame: the
    file listing of an archive or a file list, the time coordinate of a netCDF / Zarr stack, the ``timestamps``
    of a ``.npz``; None for frames without times (a ``.npy`` stack, files without a name pattern).

    Raises:
        FileNotFoundError / ValueError: as :func:`list_radar_files` and :func:`read_radar_archive`.
    """
    paths, stamps = list_radar_files(source)
    if source.kind != "path":
        return stamps
    if source.timestamps is not None:
        return [stamp for stamp in source.timestamps if in_time_range(stamp, source)]
    if source.importer == "numpy":
        loaded = np.load(paths[0], allow_pickle=False)  # a .npz reads one array at a time
        if isinstance(loaded, np.ndarray):
            return None
        with loaded:
            if "timestamps" not in loaded.files:
                return None
            stamps = [
                as_datetime(value, f"{paths[0]}['timestamps']") for value in loaded["timestamps"].tolist()
            ]
        return [stamp for stamp in stamps if in_time_range(stamp, source)]
    with _open_xarray(source, paths[0]) as dataset:
        return _stack_times(_stack_array(source, dataset, paths[0])[1], paths[0])


def _grid_metadata(dataset, array) -> dict:
    """pysteps-style grid metadata of a ``(time, y, x)`` variable: ``x1, y1, x2, y2`` (outer edges),
    ``xpixelsize``, ``ypixelsize``, ``yorigin`` and ``cartesian_unit`` from evenly spaced 1-D ``x`` / ``y``
    coordinates, and the projection (``crs_wkt`` of its CF ``grid_mapping`` variable, or the ``projection`` /
    ``crs_wkt`` attribute); empty for what is not there."""
    metadata = {}
    if all(axis in array.coords and array[axis].ndim == 1 and array[axis].size > 1 for axis in ("x", "y")):
        x, y = (np.asarray(array[axis].values, dtype=np.float64) for axis in ("x", "y"))
        xsize, ysize = abs(float(x[1] - x[0])), abs(float(y[1] - y[0]))
        units = str(array["x"].attrs.get("units", "m")).strip().lower()
        metadata.update(
            x1=float(x.min()) - xsize / 2,
            x2=float(x.max()) + xsize / 2,
            y1=float(y.min()) - ysize / 2,
            y2=float(y.max()) + ysize / 2,
            xpixelsize=xsize,
            ypixelsize=ysize,
            yorigin="upper" if y[0] > y[-1] else "lower",
            cartesian_unit="km" if units == "km" else "m",
        )
    mapping = array.attrs.get("grid_mapping") or array.encoding.get("grid_mapping")
    if mapping in dataset.variables and dataset[mapping].attrs.get("crs_wkt"):
        metadata["crs_wkt"] = str(dataset[mapping].attrs["crs_wkt"])
    for key in ("projection", "crs_wkt", "institution"):
        value = array.attrs.get(key, dataset.attrs.get(key))
        if isinstance(value, str) and value and key not in metadata:
            metadata[key] = value
    return metadata
