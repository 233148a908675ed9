"""The space and time grids radar windows are cut from: block-average downsampling, and a regular timeline at
the native or a target time step (crude linear interpolation in time), with the frames that are missing on it.

A :class:`Timeline` does not copy the event: grid frame ``i`` is ``(1 - weight[i]) * R[left[i]] +
weight[i] * R[right[i]]`` of the native frames ``R``, computed only for the tiles that are cut. ``R`` is the whole
(T, H, W) event, or a :class:`FrameBuffer`: the few native frames the next windows need, read in order, so
cutting an archive of any length holds a window's frames in memory, not the archive.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np

from ...models.convlstm.georeferencing_convlstm import block_average

__all__ = ["FrameBuffer", "Timeline", "block_average", "build_timeline", "window_starts"]


@dataclasses.dataclass
class Timeline:
    """A regular sequence of frames over one event.

    Attributes:
        times: the grid times (N,), or None for an event without a clock (then grid = native frames).
        timestep: minutes between grid frames (None without a clock and a step).
        native_timestep: the event's own step in minutes.
        left, right: int64 (N,): the native frames each grid frame is interpolated between.
        weight: float32 (N,): the weight of ``right`` (0 on native frames).
        present: bool (N,): False where the grid frame cannot be made (a missing native frame around it).
    """

    times: list[datetime] | None
    timestep: float | None
    native_timestep: float | None
    left: np.ndarray
    right: np.ndarray
    weight: np.ndarray
    present: np.ndarray

    def __len__(self) -> int:
        return len(self.present)

    def frames(self, rain_rate: np.ndarray, start: int, stop: int, y: int, x: int, height: int, width: int):
        """Grid frames ``start:stop`` of the tile at ``(y, x)``: float32 (stop - start, height, width), NaN = no
        data (a no-data pixel in either neighbour makes the interpolated pixel no data)."""
        rows, cols = slice(y, y + height), slice(x, x + width)
        left = rain_rate[self.left[start:stop], rows, cols]
        weight = self.weight[start:stop]
        if not weight.any():
            return left
        right = rain_rate[self.right[start:stop], rows, cols]
        weight = weight[:, None, None]
        return (1 - weight) * left + weight * right


def build_timeline(
    timestamps: list[datetime] | None, native_timestep: float | None, num_frames: int, timestep: float | None
) -> Timeline:
    """The regular timeline of an event with ``num_frames`` native frames at ``timestamps``.

    Without ``timestep`` (or with the native one) the grid is every native step from the first frame to the last;
    a gap (a frame a source allowed to be missing) is a grid frame that is not present. With another ``timestep``
    the grid starts at the first multiple of it (counted from midnight) at or after the first frame, and each grid
    time is interpolated linearly between the two native frames around it; only where those two are consecutive
    (no missing frame between them) is it present. Linear interpolation in time is crude: it does not move rain
    with the wind, it fades one position into the next, so a 10-min event resampled to 5 min has ghosted
    in-between frames. Use it to mix time steps, not to invent temporal resolution.
    """
    if timestamps is None:
        if timestep is not None and timestep != native_timestep:
            raise ValueError(
                f"timestep={timestep:g} min asks for resampling in time, but the event has no timestamps "
                "(give RadarSource(timestamps=...))"
            )
        index = np.arange(num_frames)
        return Timeline(
            None,
            native_timestep,
            native_timestep,
            index,
            index,
            np.zeros(num_frames, np.float32),
            np.ones(num_frames, bool),
        )
    if len(timestamps) == 1 or native_timestep is None:
        native_timestep = native_timestep or timestep or 1.0
    native = timedelta(minutes=native_timestep)
    if timestep is None or math.isclose(timestep, native_timestep):
        count = round((timestamps[-1] - timestamps[0]) / native) + 1
        times = [timestamps[0] + k * native for k in range(count)]
        position = {when: index for index, when in enumerate(timestamps)}
        left = np.array([position.get(when, 0) for when in times], dtype=np.int64)
        present = np.array([when in position for when in times], dtype=bool)
        return Timeline(
            times, native_timestep, native_timestep, left, left.copy(), np.zeros(count, np.float32), present
        )
    step = timedelta(minutes=timestep)
    midnight = datetime.combine(timestamps[0].date(), datetime.min.time())
    first = midnight + math.ceil((timestamps[0] - midnight) / step - 1e-9) * step
    count = max(0, math.floor((timestamps[-1] - first) / step + 1e-9) + 1)
    times = [first + k * step for k in range(count)]
    native_seconds = np.array([(when - midnight).total_seconds() for when in timestamps])
    left = np.zeros(count, np.int64)
    right = np.zeros(count, np.int64)
    weight = np.zeros(count, np.float32)
    present = np.zeros(count, bool)
    for index, when in enumerate(times):
        seconds = (when - midnight).total_seconds()
        before = int(np.searchsorted(native_seconds, seconds + 1e-6, side="right")) - 1
        if before < 0:
            continue
        offset = seconds - native_seconds[before]
        if abs(offset) < 1e-6:
            left[index] = right[index] = before
            present[index] = True
        elif before + 1 < len(timestamps) and math.isclose(
            native_seconds[before + 1] - native_seconds[before], native.total_seconds()
        ):
            left[index], right[index] = before, before + 1
            weight[index] = offset / native.total_seconds()
            present[index] = True
    return Timeline(times, float(timestep), native_timestep, left, right, weight, present)


def window_starts(present: np.ndarray, num_frames: int, stride: int) -> list[int]:
    """First grid frames of the windows: ``0, stride, 2 stride, ...`` up to ``len(present) - num_frames``, kept
    only where all ``num_frames`` frames are present."""
    starts = range(0, len(present) - num_frames + 1, stride)
    return [start for start in starts if present[start : start + num_frames].all()]


class FrameBuffer:
    """A rolling buffer of an event's native frames, read in order from groups of frames and dropped once no
    later window needs them; :meth:`Timeline.frames` indexes it as it indexes the whole event.

    Args:
        chunks: float32 (k, H, W) groups of consecutive native frames, ``num_frames`` in all.
        num_frames: T, the event's native frames.
        grid: (H, W).

    The caller says which frames the next window needs: :meth:`keep_from` (the earliest one; all before it are
    dropped, for good) and :meth:`read_through` (the latest one). ``buffer.shape`` is the whole event's (T, H, W).
    """

    def __init__(self, chunks: Iterator[np.ndarray], num_frames: int, grid: tuple[int, int]) -> None:
        self.shape = (num_frames, *grid)
        self._chunks = iter(chunks)
        self._frames: dict[int, np.ndarray] = {}
        self._first = 0  # frames before it are no longer needed
        self._read = 0  # frames read so far

    def __len__(self) -> int:
        return self.shape[0]

    def keep_from(self, first: int) -> None:
        """Drop the frames before ``first``, and never keep them when they are read later."""
        self._first = max(self._first, int(first))
        for index in [index for index in self._frames if index < self._first]:
            del self._frames[index]

    def read_through(self, last: int) -> None:
        """Read the frames up to ``last`` (included), keeping those from :meth:`keep_from`'s on."""
        while self._read <= last:
            chunk = next(self._chunks, None)
            if chunk is None or chunk.shape[1:] != self.shape[1:]:
                raise ValueError(
                    f"the event's frames ended after {self._read} of {self.shape[0]}"
                    if chunk is None
                    else f"frames {self._read}.. have grid {chunk.shape[1:]}; expected {self.shape[1:]}"
                )
            for frame in chunk:
                if self._read >= self._first:
                    self._frames[self._read] = frame
                self._read += 1

    def __getitem__(self, key: tuple[np.ndarray, slice, slice]) -> np.ndarray:
        """``buffer[indices, rows, cols]``: float32 (len(indices), rows, cols), as ``rain_rate[indices, rows, cols]``."""
        indices, rows, cols = key
        missing = [int(index) for index in indices if int(index) not in self._frames]
        if missing:
            raise IndexError(
                f"frames {missing} are not in the buffer (it holds {sorted(self._frames)}): read_through / "
                "keep_from were not called for this window"
            )
        return np.stack([self._frames[int(index)][rows, cols] for index in indices])
