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

import concurrent.futures
import contextlib
import dataclasses
import importlib
import io
import os
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
    list_radar_files,
)

__all__ = ["NOWCASTING_INSTALL", "RadarSequence", "import_pysteps", "radar_grid_shape", "read_radar_archive"]

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
    if source.importer in BUILTIN_IMPORTERS:
        sequence = _read_stack(source, paths[0])
    else:
        sequence = _read_with_pysteps(source, paths, stamps, num_workers)
    if folder is not None:
        save_sequence(folder, sequence.rain_rate, sequence.timestamps, sequence.timestep, sequence.metadata)
    return sequence


def _read_with_pysteps(source: RadarSource, paths: list[Path], stamps, num_workers: int) -> RadarSequence:
    pysteps = import_pysteps(f"RadarSource {source.name!r} (importer {source.importer!r})")
    _pysteps_importer(pysteps, source)  # an unknown name fails here, before any file is read
    jobs = [(source, str(path)) for path in paths]
    rain_rate, metadata, negative = None, {}, 0
    with contextlib.ExitStack() as stack:
        if num_workers > 1 and len(jobs) > 1:
            pool = stack.enter_context(concurrent.futures.ProcessPoolExecutor(min(num_workers, len(jobs))))
            frames = pool.map(_read_frame, jobs, chunksize=max(1, len(jobs) // (4 * num_workers)))
        else:
            frames = map(_read_frame, jobs)
        for index, (rain, frame_metadata) in enumerate(frames):
            if rain_rate is None:  # filled in place: one copy of the event in memory, not a list and a stack
                rain_rate = np.empty((len(jobs), *rain.shape), dtype=np.float32)
                metadata = frame_metadata
            elif rain.shape != rain_rate.shape[1:]:
                raise ValueError(
                    f"RadarSource {source.name!r}: {paths[index]} has grid {rain.shape}, the first frame "
                    f"{paths[0]} has {rain_rate.shape[1:]}"
                )
            rain_rate[index] = rain
            negative += frame_metadata["negative_values_masked"]
    metadata.update(negative_values_masked=negative, importer=source.importer, files=[str(p) for p in paths])
    return RadarSequence(source.name, rain_rate, stamps, _timestep(source, stamps), metadata)


def radar_grid_shape(source: RadarSource, *, cache_dir: str | os.PathLike | None = None) -> tuple[int, int]:
    """``(H, W)`` of a source's frames as its reader reports them, reading little: a cached event's array header
    (with ``cache_dir``, see :func:`read_radar_archive`), one frame through a pysteps importer (which also checks
    the importer's name), the header of a ``.npy`` file, or the whole of another stack."""
    paths, _ = list_radar_files(source)
    shape = cached_shape(sequence_folder(cache_dir, source, paths)) if cache_dir is not None else None
    if shape is not None:
        return tuple(shape[1:])
    if source.importer not in BUILTIN_IMPORTERS:
        pysteps = import_pysteps(f"RadarSource {source.name!r} (importer {source.importer!r})")
        _pysteps_importer(pysteps, source)
        return tuple(_read_frame((source, str(paths[0])))[0].shape)
    if paths[0].suffix.lower() == ".npy":
        shape = np.load(paths[0], mmap_mode="r", allow_pickle=False).shape
    else:
        shape = _read_stack(source, paths[0]).rain_rate.shape
    if len(shape) != 3:
        raise ValueError(f"RadarSource {source.name!r}: {paths[0]} holds shape {shape}; expected (T, H, W)")
    return tuple(shape[1:])


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
    """One file through its pysteps importer, converted to mm/h (runs in worker processes too)."""
    source, path = job
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
    if source.importer == "numpy":
        values, stamps, unit = *_load_numpy(source, path), None
    else:
        values, stamps, unit = _load_xarray(source, path)
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
    metadata = {"unit": source.unit or unit or "mm/h"}
    if metadata["unit"] == "dBZ":
        metadata["transform"] = "dB"
    rain, metadata = _to_rain_rate(np.asarray(values, dtype=np.float64), metadata, source, where=str(path))
    metadata.update(importer=source.importer, files=[str(path)])
    return RadarSequence(source.name, rain, stamps, _timestep(source, stamps), metadata)


def _load_numpy(source: RadarSource, path: Path) -> tuple[np.ndarray, list[datetime] | None]:
    loaded = np.load(path, allow_pickle=False)
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
        stamps = None
        if "timestamps" in loaded.files:
            stamps = [as_datetime(value, f"{path}['timestamps']") for value in loaded["timestamps"].tolist()]
        return loaded[key], stamps


def _load_xarray(source: RadarSource, path: Path) -> tuple[np.ndarray, list[datetime] | None, str | None]:
    import xarray

    try:
        dataset = xarray.open_dataset(path)
    except ValueError as error:
        if "backend" in str(error) or "engine" in str(error):
            raise ImportError(
                f"RadarSource {source.name!r}: no installed netCDF reader can open {path} (netCDF-4/HDF5 files need "
                f"netCDF4): {NOWCASTING_INSTALL}"
            ) from error
        raise
    with dataset:
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
        values = np.asarray(array.values)
        stamps = None
        if "time" in array.coords and np.issubdtype(array["time"].dtype, np.datetime64):
            stamps = [as_datetime(value, f"{path} time") for value in array["time"].values]
        units = array.attrs.get("units")
    unit = None
    if units is not None and source.unit is None:
        unit = _UNIT_ALIASES.get(str(units).strip().lower()) or _UNIT_ALIASES.get(str(units).strip())
        if unit is None:
            raise ValueError(
                f"RadarSource {source.name!r}: unknown unit {units!r} of variable {name!r} in {path}; expected one "
                f"of {KNOWN_UNITS} (set RadarSource(unit=...) to override)"
            )
    return values, stamps, unit
