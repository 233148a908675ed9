"""A nowcast from a radar archive: the frames a model needs, ending at a given time, read and forecast over the
whole domain, written as a CF-1.8 file (the library side of ``convlstm-nowcast``).

:func:`nowcast` lists the archive's frames in the window the model reads (``config.num_input_frames`` frames
ending at ``time``, by default the newest the archive holds), reads only those (through
:func:`~bidirectional_conv_lstm.data.radar.archive.read_radar_archive`: pysteps importers, or a netCDF / Zarr /
numpy stack), turns them into an ``xarray.DataArray`` on the map, forecasts with ``model.forecast_rain_rate``
(which block-averages a finer grid to the model's) and writes the forecast with
:func:`~bidirectional_conv_lstm.serving.forecast_files.write_forecast`. A missing frame is an error naming its
time, or (``allow_missing``) the mean of the frames just before and after it, linear in time.
"""

from __future__ import annotations

import dataclasses
import os
import time as clock
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from ..data.radar.archive import RadarSequence, radar_frame_times, read_radar_archive
from ..data.radar.sources import RadarSource, as_datetime, list_radar_files, newest_archive_time
from ..data.radar.xarray_frames import radar_sequence_to_data_array
from ..models.convlstm.georeferencing_convlstm import OUTPUT_GRIDS, block_average
from ..nowcasting.pictures import save_radar_gif, save_radar_strip
from ..utils.loading import load_pretrained_model
from .forecast_files import FORECAST_SUFFIXES, write_forecast

__all__ = ["NowcastReport", "check_archive", "check_nowcast_paths", "nowcast", "nowcast_source"]

# RadarSource fields nowcast sets itself.
_WINDOW_FIELDS = ("start", "end", "allow_missing_frames")
# Lead times a PNG strip shows at most (a long forecast is sampled evenly).
_STRIP_LEAD_TIMES = 6


@dataclasses.dataclass
class NowcastReport:
    """What :func:`nowcast` did.

    Attributes:
        output: the forecast file written.
        pictures: ``{"png": path, "gif": path}`` of the pictures drawn.
        frame_times: the observed frames' times, oldest first; ``interpolated`` those made from their neighbours.
        files: the files the frames were read from.
        input_shape, model_shape: ``(H, W)`` of the archive's grid and of the forecast's (the model's grid, or the
            archive's with ``output_grid="input"``).
        input_pixel_size, model_pixel_size: metres (None where unknown).
        step_minutes: minutes between frames.
        valid_times: the forecast's valid times.
        seconds: ``{"read", "forecast", "write", "total"}`` wall-clock seconds.
    """

    output: Path
    pictures: dict[str, Path]
    frame_times: list[datetime]
    interpolated: list[datetime]
    files: list[str]
    input_shape: tuple[int, int]
    model_shape: tuple[int, int]
    input_pixel_size: float | None
    model_pixel_size: float | None
    step_minutes: float
    valid_times: list[datetime]
    seconds: dict[str, float]

    def summary(self) -> list[str]:
        """Lines saying what was done, for a person."""
        times = ", ".join(f"{stamp:%H:%M}" for stamp in self.frame_times)
        lines = [
            f"read {len(self.frame_times) - len(self.interpolated)} frames from {len(self.files)} file(s): "
            f"{self.frame_times[0]:%Y-%m-%d} {times} UTC, every {self.step_minutes:g} min"
        ]
        if self.interpolated:
            lines.append(
                "interpolated (missing): " + ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in self.interpolated)
            )
        lines += [
            f"input grid: {_grid(self.input_shape, self.input_pixel_size)}",
            f"forecast grid: {_grid(self.model_shape, self.model_pixel_size)}",
            f"forecast: {len(self.valid_times)} frames valid {self.valid_times[0]:%Y-%m-%d %H:%M} to "
            f"{self.valid_times[-1]:%H:%M} UTC",
            "time: "
            + ", ".join(
                f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items() if name != "total"
            )
            + f" (total {self.seconds['total']:.1f} s)",
            f"wrote {self.output}",
        ]
        lines += [f"wrote {path}" for path in self.pictures.values()]
        return lines


def _grid(shape: tuple[int, int], pixel_size: float | None) -> str:
    size = f" of {pixel_size:g} m" if pixel_size else " (pixel size unknown)"
    return f"{shape[0]} x {shape[1]} pixels{size}"


def nowcast_source(archive: RadarSource | Mapping, start=None, end=None) -> RadarSource:
    """The archive as a :class:`RadarSource` of the frames from `start` to `end` (missing frames allowed: they are
    found and named here). `archive` is a RadarSource or its keyword arguments without a time range."""
    fields = archive if isinstance(archive, Mapping) else dataclasses.asdict(archive)
    fields = {key: value for key, value in fields.items() if key not in _WINDOW_FIELDS}
    if fields.get("root") is not None and (start is None or end is None):
        start = end = (
            start or end or datetime(2000, 1, 1)
        )  # an archive needs a range; only its fields are checked
    return RadarSource(**fields, start=start, end=end, allow_missing_frames=True)


def check_archive(archive: RadarSource | Mapping) -> RadarSource:
    """Check an archive's fields and that its files (or its root folder) exist, reading no frame; returns it as a
    :class:`RadarSource` without a time range (see :func:`nowcast_source`).

    Raises:
        ValueError / TypeError: bad fields; FileNotFoundError: no such root, file or stack.
    """
    source = nowcast_source(archive)
    if source.kind == "archive":
        if not Path(source.root).expanduser().is_dir():
            raise FileNotFoundError(f"archive {source.name!r}: root {str(source.root)!r} is not a folder")
    else:
        list_radar_files(source)
    return source


def check_nowcast_paths(output, png=None, gif=None) -> None:
    """Raise ValueError for an output of an unknown kind (`output` ``.nc`` / ``.zarr``, `png` ``.png``, `gif`
    ``.gif``), naming the argument."""
    if Path(output).suffix.lower() not in FORECAST_SUFFIXES:
        raise ValueError(
            f"output must end in one of {FORECAST_SUFFIXES} (netCDF or Zarr), got {str(output)!r}"
        )
    for name, path, suffix in (("png", png, ".png"), ("gif", gif, ".gif")):
        if path is not None and Path(path).suffix.lower() != suffix:
            raise ValueError(f"{name} must end in {suffix}, got {str(path)!r}")


def nowcast(
    model,
    archive: RadarSource | Mapping,
    output: str | os.PathLike,
    *,
    time: datetime | str | None = None,
    num_output_frames: int | None = None,
    allow_missing: bool = False,
    output_grid: str = "model",
    png: str | os.PathLike | None = None,
    gif: str | os.PathLike | None = None,
) -> NowcastReport:
    """Forecast from the frames of `archive` ending at `time` and write a CF-1.8 file.

    Args:
        model: a rain model (``ConvLSTMForFramePrediction`` with a rain-rate transform), a folder or a Hub id.
        archive: where the frames are: a :class:`RadarSource` (its time range is replaced) or its keyword
            arguments: a pystepsrc-like archive (``root``, ``fn_pattern``, ...), a file list or a stack ``path``.
        output: the forecast file, ``.nc`` or ``.zarr`` (folders created).
        time: the last observed frame (naive UTC; a datetime or an ISO 8601 / ``%Y%m%d%H%M`` string); None takes
            the newest frame of the archive. A ``.npy`` stack has no times: its last frame is `time`.
        num_output_frames: frames to forecast (default: the model's ``config.num_output_frames``).
        allow_missing: fill a missing observed frame (not the last) from its two neighbours instead of failing.
        output_grid: ``"model"`` (the model's grid, e.g. 4 km) or ``"input"`` (the archive's).
        png, gif: also draw the observed and forecast frames in the rain-rate colours.

    Returns:
        a :class:`NowcastReport`.

    Raises:
        ValueError / TypeError / FileNotFoundError: bad arguments (before the model is loaded), a missing frame
            (naming its time), frames the model cannot take (another time step, a coarser grid).
    """
    started = clock.perf_counter()
    check_nowcast_paths(output, png, gif)
    if output_grid not in OUTPUT_GRIDS:
        raise ValueError(f"output_grid must be one of {OUTPUT_GRIDS}, got {output_grid!r}")
    check_archive(archive)
    last = None if time is None else as_datetime(time, "time")
    if not hasattr(model, "forecast_rain_rate"):
        model = load_pretrained_model(model, argument="model")
    config = model.config
    source, times, step = _window(archive, last, config, allow_missing)
    sequence = read_radar_archive(source)
    frames, interpolated = _frames_at(sequence, times, step, allow_missing)
    data_array = radar_sequence_to_data_array(
        RadarSequence(sequence.name, frames, times, step.total_seconds() / 60, sequence.metadata)
    )
    if "x" not in data_array.coords:
        data_array = _pixel_grid(data_array, config.pixel_size)
    read = clock.perf_counter()
    forecast = model.forecast_rain_rate(
        data_array, num_output_frames=num_output_frames, output_grid=output_grid
    )
    predicted = clock.perf_counter()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    path = write_forecast(forecast, output)
    written = clock.perf_counter()
    pictures = _draw(data_array.values, forecast, step, png, gif)
    return NowcastReport(
        output=path,
        pictures=pictures,
        frame_times=times,
        interpolated=interpolated,
        files=list(sequence.metadata.get("files", [])),
        input_shape=frames.shape[1:],
        model_shape=tuple(forecast.shape[1:]),
        input_pixel_size=_spacing(data_array),
        model_pixel_size=_spacing(forecast),
        step_minutes=step.total_seconds() / 60,
        valid_times=[as_datetime(value, "time") for value in forecast["time"].values],
        seconds={
            "read": read - started,
            "forecast": predicted - read,
            "write": written - predicted,
            "total": clock.perf_counter() - started,
        },
    )


def _window(archive, last: datetime | None, config, allow_missing: bool):
    """``(source, times, step)``: the source restricted to the frames the model reads (one more before them with
    `allow_missing`, to fill the first), their times, oldest first, and the step between them."""
    count = int(config.num_input_frames)
    probe = nowcast_source(archive)
    if last is None:
        last = _newest(probe)
    step = _step(probe, last, config)
    times = [last - step * k for k in range(count - 1, -1, -1)]
    first = times[0] - (step if allow_missing else timedelta(0))
    if probe.kind == "path" and Path(probe.path).suffix.lower() == ".npy":
        return nowcast_source(archive), times, step  # no times: the last frames of the stack are taken
    return nowcast_source(archive, first, last), times, step


def _newest(source: RadarSource) -> datetime:
    if source.kind == "archive":
        return newest_archive_time(source.root, source.path_fmt, source.fn_pattern, source.fn_ext)
    stamps = radar_frame_times(source)
    if not stamps:
        raise ValueError(
            f"archive {source.name!r}: its frames have no times (a .npy stack, or files without fn_pattern); give "
            "time (the last observed frame's)"
        )
    return max(stamps)


def _step(source: RadarSource, last: datetime, config) -> timedelta:
    """The archive's own step (its ``timestep``, else the most common step of its frames' times), else the
    model's ``config.time_step``."""
    minutes = source.timestep
    if minutes is None and not (source.kind == "path" and Path(source.path).suffix.lower() == ".npy"):
        stamps = [stamp for stamp in (radar_frame_times(source) or []) if stamp <= last]
        if len(stamps) > 1:
            steps, counts = np.unique(np.diff(np.array(stamps, dtype="datetime64[s]")), return_counts=True)
            minutes = steps[np.argmax(counts)].astype(np.int64) / 60
    minutes = minutes or getattr(config, "time_step", None)
    if not minutes:
        raise ValueError(
            f"archive {source.name!r}: the time step between frames is unknown (no timestep, one frame, and no "
            "config.time_step)"
        )
    return timedelta(minutes=float(minutes))


def _frames_at(sequence: RadarSequence, times: list[datetime], step: timedelta, allow_missing: bool):
    """float32 ``(len(times), H, W)``: the frame at each time, or (`allow_missing`) the mean of the frames one
    step before and after a missing one; and the times so filled."""
    rain = sequence.rain_rate
    if sequence.timestamps is None:  # a .npy stack: its last frames are the window
        if len(rain) < len(times):
            raise ValueError(
                f"archive {sequence.name!r} has {len(rain)} frames; the model reads {len(times)}"
            )
        return rain[-len(times) :], []
    index = {stamp: position for position, stamp in enumerate(sequence.timestamps)}
    frames = np.empty((len(times), *rain.shape[1:]), dtype=np.float32)
    filled = []
    for position, when in enumerate(times):
        if when in index:
            frames[position] = rain[index[when]]
            continue
        before, after = when - step, when + step
        if when == times[-1] or not allow_missing or before not in index or after not in index:
            raise FileNotFoundError(
                _missing_message(sequence.name, when, times[-1], allow_missing, index, step)
            )
        frames[position] = 0.5 * (rain[index[before]] + rain[index[after]])
        filled.append(when)
    return frames, filled


def _missing_message(name: str, when: datetime, last: datetime, allow_missing: bool, index, step) -> str:
    where = f"archive {name!r} has no frame at {when:%Y-%m-%d %H:%M} UTC"
    if when == last:
        return f"{where}, the last observed frame (time); pick a time the archive has"
    if not allow_missing:
        return f"{where}; allow_missing (--allow-missing) fills it from the frames before and after it"
    absent = [f"{t:%H:%M}" for t in (when - step, when + step) if t not in index]
    return f"{where}, and its neighbour(s) at {', '.join(absent)} are missing too: it cannot be interpolated"


def _pixel_grid(data_array, pixel_size: float | None):
    """x / y pixel centres (metres, row 0 at the top) for frames without a grid, at the model's pixel size."""
    if not pixel_size:
        raise ValueError(
            "the archive's frames have no grid (x / y coordinates or pysteps grid metadata) and the model has no "
            "config.pixel_size: the forecast cannot be put on a map"
        )
    height, width = data_array.shape[1:]
    y = (height - 0.5 - np.arange(height)) * pixel_size
    return data_array.assign_coords(x=("x", (np.arange(width) + 0.5) * pixel_size), y=("y", y))


def _spacing(data_array) -> float | None:
    if "x" not in data_array.coords or data_array.sizes["x"] < 2:
        return None
    scale = 1000.0 if data_array["x"].attrs.get("units") == "km" else 1.0
    return float(abs(data_array["x"].values[1] - data_array["x"].values[0])) * scale


def _draw(observed: np.ndarray, forecast, step: timedelta, png, gif) -> dict[str, Path]:
    """The observed frames (block-averaged to the forecast's grid) and the forecast, in the rain-rate colours."""
    values = np.asarray(forecast.values)
    factor = observed.shape[-1] // values.shape[-1]
    if factor > 1:
        observed = block_average(observed, factor)
    observed = observed[..., : values.shape[-2], : values.shape[-1]]
    minutes = step.total_seconds() / 60
    pictures = {}
    if png is not None:
        count = values.shape[0]
        leads = sorted({int(round(v)) for v in np.linspace(1, count, min(count, _STRIP_LEAD_TIMES))})
        pictures["png"] = save_radar_strip(
            observed, None, {"forecast": values}, png, timestep_minutes=minutes, lead_times=leads
        )
    if gif is not None:
        scale = 2 if max(values.shape[-2:]) <= 256 else 1
        pictures["gif"] = save_radar_gif(
            observed, None, {"forecast": values}, gif, timestep_minutes=minutes, scale=scale
        )
    return pictures
