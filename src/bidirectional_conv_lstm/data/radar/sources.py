"""Where a radar event's frames are: :class:`RadarSource`, a ``pystepsrc``-like data-source entry, and the file
listing that turns it into ``(path, timestamp)`` pairs without reading any frame.

A source is one of three kinds:

- an **archive**: ``root`` + ``path_fmt`` + ``fn_pattern`` + ``fn_ext`` (strftime patterns, exactly as pysteps'
  ``pystepsrc`` data sources write them) + ``timestep`` + a time range ``start`` .. ``end`` (both included),
  read with a pysteps importer (``importer`` + ``importer_kwargs``);
- an explicit **file list** ``files`` read with a pysteps importer, timestamps given in ``timestamps`` or
  parsed from the file names with ``fn_pattern``;
- one **stack file** ``path``: a ``.npy`` / ``.npz`` array (T, H, W) (importer ``"numpy"``) or a ``(time, y, x)``
  netCDF variable (importer ``"xarray"``); these need neither pysteps nor its readers.

Listing does not import pysteps: a cached window table is found again with a few ``stat`` calls.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

__all__ = [
    "BUILTIN_IMPORTERS",
    "KNOWN_UNITS",
    "RadarSource",
    "list_radar_files",
    "newest_archive_time",
]

#: Importers that need no pysteps: ``"numpy"`` reads .npy/.npz stacks, ``"xarray"`` a (time, y, x) netCDF variable;
#: an archive or a file list of them holds one frame per file (a stack of length 1).
BUILTIN_IMPORTERS = ("numpy", "xarray")
#: Units a field may come in: rain rate, accumulation over ``accutime`` minutes, reflectivity (Z-R relation).
KNOWN_UNITS = ("mm/h", "mm", "dBZ")
_SUFFIX_IMPORTERS = {
    ".npy": "numpy",
    ".npz": "numpy",
    ".nc": "xarray",
    ".nc4": "xarray",
    ".cdf": "xarray",
    ".zarr": "xarray",
}
_MISSING_LISTED = 5
_TIME_FORMATS = ("%Y%m%d%H%M%S", "%Y%m%d%H%M")


@dataclasses.dataclass(frozen=True)
class RadarSource:
    """One radar event: where its frames are and how to read them (a pysteps ``pystepsrc`` data-source entry).

    Args:
        name (`str`): the event's name; the ``event`` column of the window tables and the unit of event splits.
        root (`str` or `os.PathLike`, *optional*): the archive's root folder (pystepsrc ``root_path``).
        path_fmt (`str`, *optional*, defaults to ``""``): strftime sub-folder pattern under ``root``
            (e.g. ``"%Y/%m"``).
        fn_pattern (`str`, *optional*, defaults to ``""``): strftime file-name pattern without extension
            (e.g. ``"RAD_NL25_RAP_5min_%Y%m%d%H%M"``); ``?`` matches any one character.
        fn_ext (`str`, *optional*, defaults to ``""``): file extension without the dot (e.g. ``"h5"``, ``"pgm.gz"``).
        importer (`str`, *optional*): a pysteps importer name (``"knmi_hdf5"``, ``"fmi_pgm"``, ``"bom_rf3"``,
            ``"odim_hdf5"``, ``"mch_gif"``, ``"opera_hdf5"``, ...: any name ``pysteps.io.get_method`` takes), or
            ``"numpy"`` / ``"xarray"`` (a stack at ``path``; in an archive or a file list, one frame per file, its
            time from the listing); None infers it from ``path``'s suffix.
        importer_kwargs (`dict`, *optional*): keyword arguments for the importer (pystepsrc ``importer_kwargs``).
        timestep (`float`, *optional*): minutes between frames; required for an archive, checked against the
            timestamps otherwise (a gap is a missing frame).
        start, end (`datetime` or `str`, *optional*): the time range of an archive, both ends included (ISO 8601
            or ``"%Y%m%d%H%M"`` strings; naive times are UTC). A file list with timestamps or a stack with times
            takes them too (either may be left open): only the frames in the range are read.
        files (sequence of paths, *optional*): an explicit file list instead of an archive pattern.
        path (`str` or `os.PathLike`, *optional*): one ``.npy`` / ``.npz`` / netCDF / Zarr stack (T, H, W).
        timestamps (sequence of `datetime` or `str`, *optional*): one per frame of ``files`` or ``path``.
        variable (`str`, *optional*): the netCDF variable / ``.npz`` key to read (default: the only 3-D one, or
            ``"rain_rate"``).
        unit (`str`, *optional*): the field's unit, one of :data:`KNOWN_UNITS`; overrides what the importer
            reports. Stacks default to the netCDF ``units`` attribute, else ``"mm/h"``.
        accutime (`float`, *optional*): minutes a ``"mm"`` accumulation covers (default: the importer's
            ``accutime``, else ``timestep``).
        zr_a, zr_b (`float`, *optional*): Z-R relation ``Z = a R^b`` for ``"dBZ"`` (default: the importer's,
            else Marshall-Palmer 200, 1.6).
        allow_missing_frames (`bool`, *optional*, defaults to False): False makes a missing frame in the range
            an error; True skips it (the windows that would contain it are not built).

    Example:
        ```python
        >>> source = RadarSource(
        ...     name="knmi_20100826", root="/data/radar/KNMI", path_fmt="%Y/%m",
        ...     fn_pattern="RAD_NL25_RAP_5min_%Y%m%d%H%M", fn_ext="h5", importer="knmi_hdf5",
        ...     importer_kwargs={"accutime": 5, "qty": "ACRR", "pixelsize": 1000.0}, timestep=5,
        ...     start="2010-08-26T00:00", end="2010-08-26T07:35")
        ```
    """

    name: str
    root: str | os.PathLike | None = None
    path_fmt: str = ""
    fn_pattern: str = ""
    fn_ext: str = ""
    importer: str | None = None
    importer_kwargs: Mapping = dataclasses.field(default_factory=dict)
    timestep: float | None = None
    start: datetime | str | None = None
    end: datetime | str | None = None
    files: Sequence[str | os.PathLike] | None = None
    path: str | os.PathLike | None = None
    timestamps: Sequence[datetime | str] | None = None
    variable: str | None = None
    unit: str | None = None
    accutime: float | None = None
    zr_a: float | None = None
    zr_b: float | None = None
    allow_missing_frames: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string (the event's name), got {self.name!r}")
        kinds = [kind for kind, given in self._kinds().items() if given]
        if len(kinds) != 1:
            raise ValueError(
                f"RadarSource {self.name!r} needs exactly one of root (+ fn_pattern), files or path; got "
                f"{kinds or 'none'}"
            )
        self._normalise_values()
        kind = kinds[0]
        if kind == "archive":
            self._check_archive()
        elif kind == "files":
            self._check_files()
        else:
            self._infer_stack_importer()
        if not isinstance(self.importer, str) or not self.importer:
            raise ValueError(
                f"RadarSource {self.name!r}: importer must be an importer name, got {self.importer!r}"
            )

    def _set(self, name: str, value) -> None:
        object.__setattr__(self, name, value)  # the dataclass is frozen: normalise in place once

    def _normalise_values(self) -> None:
        """Check the numbers, unit and importer options; times become aware datetimes, numbers floats."""
        for name in ("timestep", "accutime", "zr_a", "zr_b"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value > 0:
                    raise ValueError(
                        f"RadarSource {self.name!r}: {name} must be a positive number, got {value!r}"
                    )
                self._set(name, float(value))
        if self.unit is not None and self.unit not in KNOWN_UNITS:
            raise ValueError(
                f"RadarSource {self.name!r}: unknown unit {self.unit!r}; expected one of {KNOWN_UNITS}"
            )
        if not isinstance(self.importer_kwargs, Mapping):
            raise TypeError(f"importer_kwargs must be a dict, got {type(self.importer_kwargs).__name__}")
        self._set("importer_kwargs", dict(self.importer_kwargs))
        if self.start is not None:
            self._set("start", as_datetime(self.start, "start"))
        if self.end is not None:
            self._set("end", as_datetime(self.end, "end"))
        if self.timestamps is not None:
            stamps = [as_datetime(value, "timestamps") for value in self.timestamps]
            self._set("timestamps", tuple(stamps))

    def _check_archive(self) -> None:
        missing = [
            name
            for name in ("fn_pattern", "fn_ext", "importer", "timestep", "start", "end")
            if not getattr(self, name)
        ]
        if missing:
            raise ValueError(f"RadarSource {self.name!r}: an archive (root) also needs {missing}")
        if self.end < self.start:
            raise ValueError(f"RadarSource {self.name!r}: end {self.end} is before start {self.start}")

    def _check_files(self) -> None:
        if isinstance(self.files, (str, os.PathLike)):
            raise TypeError(f"files must be a list of paths, got the single path {self.files!r}")
        self._set("files", tuple(str(Path(f).expanduser()) for f in self.files))
        if not self.files:
            raise ValueError(f"RadarSource {self.name!r}: files is empty")
        if self.importer is None:
            raise ValueError(f"RadarSource {self.name!r}: files need an importer (a pysteps importer name)")
        if self.timestamps is not None and len(self.timestamps) != len(self.files):
            raise ValueError(
                f"RadarSource {self.name!r}: {len(self.timestamps)} timestamps for {len(self.files)} files"
            )

    def _infer_stack_importer(self) -> None:
        """A stack file without an importer is read by the builtin one its suffix names."""
        suffix = Path(self.path).suffix.lower()
        if self.importer is None:
            if suffix not in _SUFFIX_IMPORTERS:
                raise ValueError(
                    f"RadarSource {self.name!r}: cannot tell how to read path {str(self.path)!r} from its suffix "
                    f"{suffix!r}; expected one of {sorted(_SUFFIX_IMPORTERS)} or an explicit importer"
                )
            self._set("importer", _SUFFIX_IMPORTERS[suffix])

    def _kinds(self) -> dict[str, bool]:
        return {
            "archive": self.root is not None,
            "files": self.files is not None,
            "path": self.path is not None,
        }

    @property
    def kind(self) -> str:
        """``"archive"``, ``"files"`` or ``"path"``."""
        return next(kind for kind, given in self._kinds().items() if given)

    @classmethod
    def from_pystepsrc(cls, name: str, entry: Mapping, start=None, end=None, **overrides) -> RadarSource:
        """A source from a pystepsrc ``data_sources`` entry (``root_path``, ``path_fmt``, ``fn_pattern``,
        ``fn_ext``, ``importer``, ``timestep``, ``importer_kwargs``) and a time range."""
        known = {"root_path", "path_fmt", "fn_pattern", "fn_ext", "importer", "timestep", "importer_kwargs"}
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ValueError(f"pystepsrc entry {name!r} has unknown keys {unknown}; known: {sorted(known)}")
        fields = {key: entry[key] for key in known - {"root_path"} if key in entry}
        return cls(name=name, root=entry.get("root_path"), start=start, end=end, **{**fields, **overrides})

    def to_dict(self) -> dict:
        """The source as JSON-able data (times as ISO strings, paths as strings)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, os.PathLike):
                value = str(value)
            elif field.name == "timestamps" and value is not None:
                value = [stamp.isoformat() for stamp in value]
            elif field.name == "files" and value is not None:
                value = list(value)
            out[field.name] = value
        return out


def as_datetime(value, argument: str) -> datetime:
    """A naive UTC datetime from a datetime, numpy datetime64, ISO 8601 or ``%Y%m%d%H%M[%S]`` string."""
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, str):
        for time_format in _TIME_FORMATS:
            try:
                return datetime.strptime(value, time_format)
            except ValueError:
                continue
        try:
            return as_datetime(datetime.fromisoformat(value), argument)
        except ValueError:
            pass
        raise ValueError(f"{argument}: cannot read {value!r} as a time; expected ISO 8601 or %Y%m%d%H%M")
    raise TypeError(f"{argument} must be a datetime or a time string, got {value!r} ({type(value).__name__})")


def list_radar_files(source: RadarSource) -> tuple[list[Path], list[datetime] | None]:
    """The files of a source and their timestamps, in time order, without reading them.

    Returns:
        ``(paths, timestamps)``: existing files; ``timestamps`` is None when the source has no clock (a file
        list without ``timestamps`` or ``fn_pattern``, a stack without times is listed as ``[path], None``).

    Raises:
        FileNotFoundError: the root / a file / the path does not exist, no file matches in the range, or a frame
            is missing in the range and ``allow_missing_frames`` is False (the message names the time and path).
        ValueError: timestamps that cannot be parsed from file names, or a gap that is not a whole number of
            ``timestep``.
    """
    if source.kind == "path":
        path = Path(source.path).expanduser()
        if not (
            path.is_file() or (path.suffix.lower() == ".zarr" and path.is_dir())
        ):  # a Zarr store is a folder
            raise FileNotFoundError(f"RadarSource {source.name!r}: path {str(path)!r} does not exist")
        return [path], None
    if source.kind == "archive":
        return _list_archive(source)
    paths, stamps, missing = [], [], []
    for index, file in enumerate(source.files):
        path = Path(file)
        if not path.is_file():
            missing.append(str(path))
            continue
        paths.append(path)
        if source.timestamps is not None:
            stamps.append(source.timestamps[index])
        elif source.fn_pattern:
            stamps.append(_time_from_name(path, source))
    if missing and not source.allow_missing_frames:
        raise FileNotFoundError(
            f"RadarSource {source.name!r}: {len(missing)} of the files do not exist, e.g. {missing[:_MISSING_LISTED]}"
            " (allow_missing_frames=True skips them)"
        )
    if not paths:
        raise FileNotFoundError(f"RadarSource {source.name!r}: none of the {len(source.files)} files exists")
    if not stamps:
        return paths, None
    if source.start is not None or source.end is not None:
        kept = [i for i, stamp in enumerate(stamps) if in_time_range(stamp, source)]
        if not kept:
            raise FileNotFoundError(
                f"RadarSource {source.name!r}: none of the {len(paths)} files is between start={source.start} and "
                f"end={source.end} (they span {min(stamps)} to {max(stamps)})"
            )
        paths, stamps = [paths[i] for i in kept], [stamps[i] for i in kept]
    order = sorted(range(len(paths)), key=stamps.__getitem__)
    paths, stamps = [paths[i] for i in order], [stamps[i] for i in order]
    check_time_steps(stamps, source)
    return paths, stamps


def in_time_range(stamp: datetime, source: RadarSource) -> bool:
    """Whether a frame's time is in the source's ``start`` .. ``end`` (both included; an open end takes all)."""
    return (source.start is None or stamp >= source.start) and (source.end is None or stamp <= source.end)


def check_time_steps(stamps: Sequence[datetime], source: RadarSource) -> None:
    """Raise on repeated times, on steps that are not whole multiples of ``source.timestep`` and, unless
    ``allow_missing_frames``, on any gap (a missing frame)."""
    if source.timestep is None:
        return
    step = timedelta(minutes=source.timestep)
    for before, after in zip(stamps, stamps[1:]):
        ratio = (after - before) / step
        if after == before or abs(ratio - round(ratio)) > 1e-6:
            raise ValueError(
                f"RadarSource {source.name!r}: frames at {before} and {after} are not a whole number of "
                f"timestep={source.timestep:g} min apart"
            )
        if round(ratio) > 1 and not source.allow_missing_frames:
            raise FileNotFoundError(
                f"RadarSource {source.name!r}: missing frame at {before + step} (the frames jump from {before} to "
                f"{after}); allow_missing_frames=True drops the windows that would contain it"
            )


def _time_from_name(path: Path, source: RadarSource) -> datetime:
    stem = (
        path.name[: -len(source.fn_ext) - 1]
        if source.fn_ext and path.name.endswith(source.fn_ext)
        else path.stem
    )
    try:
        return datetime.strptime(stem, source.fn_pattern)
    except ValueError as error:
        raise ValueError(
            f"RadarSource {source.name!r}: file name {path.name!r} does not match fn_pattern {source.fn_pattern!r} "
            f"(fn_ext {source.fn_ext!r}): {error}"
        ) from None


def _list_archive(source: RadarSource) -> tuple[list[Path], list[datetime]]:
    # pysteps.io.archive.find_by_date does the same lookup, but importing pysteps costs seconds, which a cache hit
    # must not pay, and it reports misses by printing; this mirrors its rules (strftime path and name, "?").
    root = Path(source.root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"RadarSource {source.name!r}: root {str(root)!r} is not a folder")
    step = timedelta(minutes=source.timestep)
    count = int((source.end - source.start) / step) + 1
    paths, stamps, missing, listings = [], [], [], {}
    for index in range(count):
        when = source.start + index * step
        folder = root / when.strftime(source.path_fmt) if source.path_fmt else root
        name = when.strftime(source.fn_pattern) + "." + source.fn_ext
        if "?" in name:
            if folder not in listings:
                listings[folder] = sorted(os.listdir(folder)) if folder.is_dir() else []
            matches = fnmatch.filter(listings[folder], name)
            path = folder / (matches[0] if matches else name)
        else:
            path = folder / name
        if path.is_file():
            paths.append(path)
            stamps.append(when)
        else:
            missing.append((when, path))
    if not paths:
        example = missing[0][1]
        raise FileNotFoundError(
            f"RadarSource {source.name!r}: no file between start={source.start} and end={source.end} every "
            f"{source.timestep:g} min under root {str(root)!r} matches path_fmt={source.path_fmt!r}, "
            f"fn_pattern={source.fn_pattern!r}, fn_ext={source.fn_ext!r} (the first expected is {str(example)!r})"
        )
    if missing and not source.allow_missing_frames:
        listed = ", ".join(f"{when.isoformat()} ({path})" for when, path in missing[:_MISSING_LISTED])
        raise FileNotFoundError(
            f"RadarSource {source.name!r}: {len(missing)} missing frame(s) between {source.start} and {source.end}: "
            f"{listed}; allow_missing_frames=True drops the windows that would contain them"
        )
    return paths, stamps


# strftime fields a file name pattern may hold, and how many digits each writes.
_FIELD_DIGITS = {"Y": 4, "y": 2, "m": 2, "d": 2, "j": 3, "H": 2, "M": 2, "S": 2}


def _name_time(name: str, pattern: str) -> datetime | None:
    """The time in a file name written with strftime `pattern` (``?`` matches any one character), or None when
    the name does not match."""
    regex, fields = "", ""
    for literal, field in re.findall(r"([^%]*)(?:%(.))?", pattern):
        regex += re.escape(literal).replace(r"\?", ".")
        if field in _FIELD_DIGITS:
            regex += f"(\\d{{{_FIELD_DIGITS[field]}}})"
            fields += "%" + field
        elif field:
            regex += re.escape("%" + field)
    match = re.fullmatch(regex, name)
    if match is None:
        return None
    try:
        return datetime.strptime("".join(match.groups()), fields)
    except ValueError:
        return None


def _level_matches(name: str, level: str) -> bool:
    """Whether a folder name fits one level of ``path_fmt`` (a strftime pattern, or a fixed name)."""
    return _name_time(name, level) is not None if "%" in level else name == level


def newest_archive_time(root: str | os.PathLike, path_fmt: str, fn_pattern: str, fn_ext: str) -> datetime:
    """The time of the newest frame of an archive laid out as a pystepsrc data source (``root`` / ``path_fmt`` /
    ``fn_pattern``.``fn_ext``), without reading any frame.

    The sub-folders are walked newest name first (zero-padded strftime fields sort as times), so a long archive
    costs a few directory listings.

    Raises:
        FileNotFoundError: `root` is not a folder, or no file under it matches the pattern.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"root {str(root)!r} is not a folder")
    levels = [level for level in path_fmt.split("/") if level] if path_fmt else []
    suffix = "." + fn_ext if fn_ext else ""

    def newest(folder: Path, depth: int) -> datetime | None:
        entries = sorted(os.listdir(folder), reverse=True)
        if depth < len(levels):
            for entry in entries:
                if (folder / entry).is_dir() and _level_matches(entry, levels[depth]):
                    found = newest(folder / entry, depth + 1)
                    if found is not None:
                        return found
            return None
        times = [
            _name_time(entry[: len(entry) - len(suffix)], fn_pattern)
            for entry in entries
            if entry.endswith(suffix) and (folder / entry).is_file()
        ]
        return max((time for time in times if time is not None), default=None)

    found = newest(root, 0)
    if found is None:
        raise FileNotFoundError(
            f"no file under root {str(root)!r} matches path_fmt={path_fmt!r}, fn_pattern={fn_pattern!r}, "
            f"fn_ext={fn_ext!r}"
        )
    return found
