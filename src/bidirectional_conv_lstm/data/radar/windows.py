"""Radar events cut into sliding windows of fixed-size tiles: a ``datasets`` DatasetDict (train / validation /
test) in the rain-rate storage schema (:mod:`~bidirectional_conv_lstm.data.rain.storage`), cached on disk.

Per event: lay the frames on a regular timeline (native step, or resampled to ``timestep``), take windows of
``num_input_frames + num_output_frames`` frames every ``stride`` frames, assign each window to a split (by event,
or by contiguous time block within the event: a window straddling a block boundary is dropped, so no frame is on
both sides), then cut tiles: random crops for training, a fixed tiling for validation and test.

Out of core: the frames are read a few at a time
(:func:`~bidirectional_conv_lstm.data.radar.archive.open_radar_frames`), block-averaged as they come, kept in a
rolling :class:`~bidirectional_conv_lstm.data.radar.timeline.FrameBuffer` of the native frames the next window
needs, and each window's rows are written to the split's Arrow file as soon as they are cut; memory depends on the
window, tile and frame sizes, not on the event's length. Several events are built in parallel processes with
``num_workers``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import datasets
import numpy as np
from datasets.arrow_writer import ArrowWriter

from ...models.convlstm.argument_checks import check_int
from ..cache import cached_build, default_cache_dir, numpy_format, quiet_progress_bars
from ..rain.storage import encode_rain_rate, rain_window_features
from ..splits import SPLITS
from .archive import RadarFrames, open_radar_frames, radar_grid_shape
from .cache import file_identity
from .sources import RadarSource, list_radar_files
from .timeline import FrameBuffer, Timeline, block_average, build_timeline, window_starts

__all__ = ["RadarWindowsConfig", "load_radar_windows", "radar_windows_info"]

# Bump when the rows built for the same parameters change, so old caches are not reused.
_BUILD_VERSION = 2  # 2: built out of core; files as a hash in the key
_MAX_CROP_ATTEMPTS = 20
_BATCH_ROWS = 32


@dataclasses.dataclass(frozen=True)
class RadarWindowsConfig:
    """How radar events are cut into windows and tiles.

    Args:
        num_input_frames (`int`, *optional*, defaults to 4): observed frames per window.
        num_output_frames (`int`, *optional*, defaults to 12): future frames per window.
        stride (`int`, *optional*, defaults to 1): grid frames between consecutive forecast origins.
        tile_size (`int` or `(int, int)`, *optional*, defaults to 128): tile height and width in pixels, after
            downsampling.
        downsample (`int`, *optional*, defaults to 1): block-average factor (4 turns a 1 km grid into 4 km); a
            block with any no-data pixel is no data.
        split (`str`, *optional*, defaults to ``"time_block"``): ``"event"`` (whole events go to validation /
            test, the rest to train) or ``"time_block"`` (each event's timeline is cut into three contiguous
            blocks, train / validation / test, by ``time_block_fractions``).
        validation_events, test_events (`tuple[str]`, *optional*): event names for ``split="event"``.
        time_block_fractions (`tuple[float, float, float]`, *optional*, defaults to ``(0.7, 0.15, 0.15)``): the
            shares of each event's timeline for train / validation / test with ``split="time_block"``.
        train_crops_per_window (`int`, *optional*, defaults to 1): random crops drawn per training window.
        eval_tile_stride (`int`, *optional*): step of the fixed validation / test tiling; defaults to the tile
            size (no overlap; a remainder strip narrower than a tile at the bottom / right is not covered).
        eval_context (`int`, *optional*, defaults to 0): pixels of surroundings cut around each validation / test
            tile, on every side. Its observed frames (the first ``num_input_frames``) hold the radar field there
            (no data beyond the grid); its future frames are no data, so a forecaster sees the rain about to
            enter the tile, as it would running on the whole radar domain, while only the tile itself is scored.
            Validation / test rows are then ``tile_size + 2 * eval_context`` pixels a side (training crops keep
            ``tile_size``); which tiles are kept is decided on the tile alone, so the scored pixels are those of
            ``eval_context=0``.
        min_valid_fraction (`float`, *optional*, defaults to 0.5): a tile is kept only if at least this share of
            its pixels (over all frames) has data; tiles outside the radar range are dropped.
        min_wet_fraction (`float`, *optional*, defaults to 0.0): training crops must have at least this share of
            valid pixels at or above ``wet_threshold`` (a crop is redrawn up to 20 times, then skipped).
        wet_threshold (`float`, *optional*, defaults to 0.1): mm/h counted as wet.
        timestep (`float`, *optional*): resample every event to this step (minutes) by linear interpolation in
            time (crude, see :func:`~bidirectional_conv_lstm.data.radar.timeline.build_timeline`); None keeps
            each event's native step, which :func:`radar_windows_info` records.
        seed (`int`, *optional*, defaults to 0): the training crops' random draws (per event, from this seed).
    """

    num_input_frames: int = 4
    num_output_frames: int = 12
    stride: int = 1
    tile_size: int | tuple[int, int] = 128
    downsample: int = 1
    split: str = "time_block"
    validation_events: tuple[str, ...] = ()
    test_events: tuple[str, ...] = ()
    time_block_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    train_crops_per_window: int = 1
    eval_tile_stride: int | None = None
    eval_context: int = 0
    min_valid_fraction: float = 0.5
    min_wet_fraction: float = 0.0
    wet_threshold: float = 0.1
    timestep: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_sizes()
        self._check_split()
        self._check_thresholds()

    def _set(self, name: str, value) -> None:
        object.__setattr__(self, name, value)  # the dataclass is frozen: normalise in place once

    def _check_sizes(self) -> None:
        """Frame counts, tiles, the evaluation tiling and context (pixels), and the seed."""
        for name in (
            "num_input_frames",
            "num_output_frames",
            "stride",
            "downsample",
            "train_crops_per_window",
        ):
            self._set(name, check_int(name, getattr(self, name)))
        tile = (
            self.tile_size if isinstance(self.tile_size, (tuple, list)) else (self.tile_size, self.tile_size)
        )
        if len(tile) != 2:
            raise ValueError(f"tile_size must be an int or (height, width), got {self.tile_size!r}")
        self._set("tile_size", tuple(check_int("tile_size", side) for side in tile))
        if self.eval_tile_stride is not None:
            self._set("eval_tile_stride", check_int("eval_tile_stride", self.eval_tile_stride))
        if isinstance(self.eval_context, bool) or not isinstance(self.eval_context, (int, np.integer)):
            raise TypeError(
                f"eval_context must be an int (pixels), got {self.eval_context!r} ({type(self.eval_context).__name__})"
            )
        if self.eval_context < 0:
            raise ValueError(f"eval_context must be >= 0 pixels, got {self.eval_context}")
        self._set("eval_context", int(self.eval_context))
        self._set("seed", check_int("seed", self.seed, minimum=0))

    def _check_split(self) -> None:
        """The split kind with its held-out events, or its time-block shares."""
        if self.split not in ("event", "time_block"):
            raise ValueError(f"split must be 'event' or 'time_block', got {self.split!r}")
        for name in ("validation_events", "test_events"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(event, str) for event in value):
                raise TypeError(f"{name} must be a list of event names, got {value!r}")
            self._set(name, tuple(value))
        both = sorted(set(self.validation_events) & set(self.test_events))
        if both:
            raise ValueError(f"events {both} are in both validation_events and test_events")
        events = self.validation_events + self.test_events
        if self.split == "event" and not events:
            raise ValueError("split='event' needs validation_events and/or test_events")
        if self.split == "time_block" and events:
            raise ValueError(f"validation_events / test_events {list(events)} need split='event'")
        fractions = tuple(self.time_block_fractions)
        if (
            len(fractions) != 3
            or any(f < 0 for f in fractions)
            or fractions[0] <= 0
            or abs(sum(fractions) - 1) > 1e-6
        ):
            raise ValueError(
                f"time_block_fractions must be three shares (train > 0, validation, test >= 0) summing to 1, "
                f"got {self.time_block_fractions!r}"
            )
        self._set("time_block_fractions", tuple(float(f) for f in fractions))

    def _check_thresholds(self) -> None:
        """The tile-keeping fractions, the wet threshold (mm/h) and the time step (minutes)."""
        for name in ("min_valid_fraction", "min_wet_fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
            self._set(name, float(value))
        if not self.wet_threshold >= 0:
            raise ValueError(f"wet_threshold must be >= 0 mm/h, got {self.wet_threshold!r}")
        self._set("wet_threshold", float(self.wet_threshold))
        if self.timestep is not None:
            if isinstance(self.timestep, bool) or not self.timestep > 0:
                raise ValueError(
                    f"timestep must be None or a positive number of minutes, got {self.timestep!r}"
                )
            self._set("timestep", float(self.timestep))

    @property
    def num_frames(self) -> int:
        """Frames per window: ``num_input_frames + num_output_frames``."""
        return self.num_input_frames + self.num_output_frames

    @property
    def eval_tile_size(self) -> tuple[int, int]:
        """Height and width of the validation / test rows: ``tile_size`` plus ``eval_context`` on every side."""
        return tuple(side + 2 * self.eval_context for side in self.tile_size)

    def to_dict(self) -> dict:
        """JSON-able fields (tuples as lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: Mapping) -> RadarWindowsConfig:
        """The inverse of :meth:`to_dict`."""
        return cls(**dict(values))


def load_radar_windows(
    sources: RadarSource | Sequence[RadarSource] | Mapping[str, RadarSource],
    config: RadarWindowsConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    num_workers: int = 1,
    cache_events: bool = False,
    **overrides,
) -> datasets.DatasetDict:
    """Radar events as a windowed ``DatasetDict`` (train / validation / test), built once and cached.

    The cache folder is keyed by the config, the sources and every file's identity (path, size, modification
    time), so changed files rebuild; a second call with the same inputs only lists the files and loads the cache.

    Args:
        sources: the events (their names must be distinct).
        config: how to cut windows and tiles; None for the defaults.
        cache_dir: the cache root; None for ``$BCL_CACHE`` or ``~/.cache/bidirectional_conv_lstm``.
        num_workers: processes: with several events, events built in parallel (each into its own Arrow files,
            then copied in order: the same tables); with one, its frames read in parallel (pysteps importers,
            see :func:`read_radar_archive`). Not part of the key.
        cache_events: also keep each decoded event (float32, as read) under ``cache_dir``, so tables with other
            window parameters skip the importers (worth it for slow ones such as ``bom_rf3``; costs 4 bytes a pixel
            a frame on disk).
        **overrides: fields of :class:`RadarWindowsConfig` replacing the config's.

    Returns:
        ``DatasetDict`` with ``train``, ``validation``, ``test`` (any may be empty), columns ``rain_rate``
        (uint16 (T, 1, H, W), 0.01 mm/h, 65535 = no data; decode with
        :func:`~bidirectional_conv_lstm.data.rain.storage.decode_rain_rate`), ``event``, ``origin`` (ISO time of the
        first frame), ``y``, ``x``; numpy formatted. :func:`radar_windows_info` gives the config and per-event
        time steps, grids and window counts.

    Raises:
        FileNotFoundError: a source's files are missing (see :func:`list_radar_files`).
        ValueError: duplicate or unknown event names, tiles larger than an event's (downsampled) grid, bad config.
    """
    config = _with_overrides(config, overrides)
    sources = _as_source_list(sources)
    names = [source.name for source in sources]
    unknown = sorted(set(config.validation_events + config.test_events) - set(names))
    if unknown:
        raise ValueError(
            f"validation_events / test_events name unknown events {unknown}; the sources are {names}"
        )
    params = {
        "version": _BUILD_VERSION,
        "config": config.to_dict(),
        "sources": [{"source": source.to_dict(), **_files_identity(source)} for source in sources],
    }
    events_cache = _events_cache(cache_dir) if cache_events else None
    build = functools.partial(
        _build_windows, sources=sources, config=config, num_workers=num_workers, events_cache=events_cache
    )
    return numpy_format(cached_build("radar_windows", params, build, cache_dir))


def _files_identity(source: RadarSource) -> dict:
    """``{"files": count, "files_hash": ...}``: a hash of every file's identity (path, size, modification time),
    so a long archive's cache key costs a few bytes, not a list of its files."""
    paths, _ = list_radar_files(source)
    digest = hashlib.sha256()
    for path in paths:
        digest.update(json.dumps(file_identity(path)).encode())
    return {"files": len(paths), "files_hash": digest.hexdigest()}


def _with_overrides(config: RadarWindowsConfig | None, overrides: Mapping) -> RadarWindowsConfig:
    """``config`` (the defaults for None) with fields of :class:`RadarWindowsConfig` replaced."""
    config = config if config is not None else RadarWindowsConfig()
    if not isinstance(config, RadarWindowsConfig):
        raise TypeError(f"config must be a RadarWindowsConfig or None, got {type(config).__name__}")
    known = {field.name for field in dataclasses.fields(RadarWindowsConfig)}
    if set(overrides) - known:
        raise TypeError(
            f"load_radar_windows got unknown parameters {sorted(set(overrides) - known)}; known: {sorted(known)}"
        )
    return dataclasses.replace(config, **overrides) if overrides else config


def _build_windows(
    scratch: Path,
    *,
    sources: list[RadarSource],
    config: RadarWindowsConfig,
    num_workers: int,
    events_cache: Path | None,
) -> datasets.DatasetDict:
    """Write every event's windows into one Arrow file per split under ``scratch``, and open them."""
    grids = {}
    for source in sources:  # every grid checked before any event is read
        grids[source.name] = radar_grid_shape(source, cache_dir=events_cache)
        _check_tiles(config, source.name, grids[source.name])
    features = _split_features(config)
    info = {"config": config.to_dict(), "events": {}}
    with _split_writers(scratch, features) as writers:
        if num_workers > 1 and len(sources) > 1:
            info["events"] = _write_events_in_parallel(
                sources, config, grids, writers, scratch, num_workers, events_cache
            )
        else:
            for source in sources:
                frames = open_radar_frames(source, num_workers=num_workers, cache_dir=events_cache)
                info["events"][source.name] = _write_event(frames, config, writers, grids[source.name])
    description = json.dumps(info)
    with quiet_progress_bars():
        return datasets.DatasetDict(
            {
                split: datasets.Dataset.from_file(
                    str(scratch / f"{split}.arrow"),
                    info=datasets.DatasetInfo(description=description, features=features[split]),
                )
                for split in SPLITS
            }
        )


def _split_features(config: RadarWindowsConfig) -> dict[str, datasets.Features]:
    return {
        split: rain_window_features(
            config.num_frames, *(config.tile_size if split == "train" else config.eval_tile_size)
        )
        for split in SPLITS
    }


@contextlib.contextmanager
def _split_writers(folder: Path, features: dict) -> Iterator[dict[str, ArrowWriter]]:
    """One Arrow writer per split, ``<folder>/<split>.arrow``, finalized when the block ends without error."""
    with contextlib.ExitStack() as stack:
        writers = {
            split: stack.enter_context(
                ArrowWriter(features=features[split], path=str(folder / f"{split}.arrow"))
            )
            for split in SPLITS
        }
        yield writers
        for writer in writers.values():
            writer.finalize()


def _write_events_in_parallel(
    sources: list[RadarSource],
    config: RadarWindowsConfig,
    grids: dict,
    writers: dict[str, ArrowWriter],
    scratch: Path,
    num_workers: int,
    events_cache: Path | None,
) -> dict:
    """Build each event in a worker process into its own split files, then copy them to ``writers`` in event
    order (so the tables are those of a build in one process); re-raise the workers' warnings here."""
    jobs = [
        (source, config, grids[source.name], scratch / f"event-{index}", events_cache)
        for index, source in enumerate(sources)
    ]
    events = {}
    with concurrent.futures.ProcessPoolExecutor(min(num_workers, len(jobs))) as pool:
        for (source, *_, folder, _), (event, caught) in zip(jobs, pool.map(_write_event_shard, jobs)):
            for message, category in caught:
                warnings.warn(message, category, stacklevel=5)  # the caller of load_radar_windows
            with quiet_progress_bars():
                for split, writer in writers.items():
                    writer.write_table(datasets.Dataset.from_file(str(folder / f"{split}.arrow")).data.table)
            events[source.name] = event
    return events


def _write_event_shard(job: tuple) -> tuple[dict, list[tuple[str, type]]]:
    """One event's windows into ``<folder>/<split>.arrow`` (in a worker process): its description and warnings."""
    source, config, grid, folder, events_cache = job
    folder.mkdir()
    with (
        warnings.catch_warnings(record=True) as caught,
        _split_writers(folder, _split_features(config)) as writers,
    ):
        warnings.simplefilter("always")
        event = _write_event(open_radar_frames(source, cache_dir=events_cache), config, writers, grid)
    return event, [(str(warning.message), warning.category) for warning in caught]


def radar_windows_info(dataset: datasets.Dataset | datasets.DatasetDict) -> dict:
    """What a window table was built from: ``{"config": {...}, "events": {name: {"timestep_minutes",
    "native_timestep_minutes", "resampled", "grid", "pixel_size", "cartesian_unit", "importer", "native_unit",
    "windows": {split: count}, "rows": {split: count}}}}``."""
    if isinstance(dataset, datasets.DatasetDict):
        dataset = next(iter(dataset.values()))
    return json.loads(dataset.info.description)


def _as_source_list(sources) -> list[RadarSource]:
    if isinstance(sources, RadarSource):
        sources = [sources]
    elif isinstance(sources, Mapping):
        sources = list(sources.values())
    sources = list(sources)
    if not sources or not all(isinstance(source, RadarSource) for source in sources):
        raise TypeError(f"sources must be one or more RadarSource, got {sources!r}")
    names = [source.name for source in sources]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"sources have duplicate names {duplicates}; each event needs its own name")
    return sources


def _events_cache(cache_dir) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def _check_tiles(config: RadarWindowsConfig, name: str, grid: tuple[int, int]) -> None:
    height, width = (side // config.downsample for side in grid)
    if config.tile_size[0] > height or config.tile_size[1] > width:
        raise ValueError(
            f"tile_size={config.tile_size} is larger than event {name!r}'s grid ({height}, {width}) "
            f"(the {grid[0]} x {grid[1]} grid downsampled by {config.downsample})"
        )


def _split_of_windows(
    config: RadarWindowsConfig, name: str, starts: list[int], length: int
) -> list[str | None]:
    """The split of each window; None for one straddling a time-block boundary."""
    if config.split == "event":
        split = (
            "validation"
            if name in config.validation_events
            else "test"
            if name in config.test_events
            else "train"
        )
        return [split] * len(starts)
    train, validation, _ = config.time_block_fractions
    bounds = np.array([round(train * length), round((train + validation) * length)])
    blocks = np.diff([0, *bounds, length])
    short = [
        f"{split} ({size} frames)" for split, size in zip(SPLITS, blocks) if 0 < size < config.num_frames
    ]
    if short:
        warnings.warn(
            f"event {name!r} ({length} frames): the time blocks {', '.join(short)} are shorter than a window of "
            f"{config.num_frames} frames and get no windows; use longer events, other time_block_fractions or "
            "split='event'",
            stacklevel=6,  # the caller of load_radar_windows
        )
    first = np.searchsorted(bounds, starts, side="right")
    last = np.searchsorted(bounds, np.asarray(starts) + config.num_frames - 1, side="right")
    return [SPLITS[a] if a == b else None for a, b in zip(first, last)]


def _write_event(
    frames: RadarFrames, config: RadarWindowsConfig, writers: dict[str, ArrowWriter], grid: tuple[int, int]
) -> dict:
    """Cut one event (native grid ``grid``) into windows and tiles as its frames are read, write them to the split
    writers, and describe the event."""
    timeline = build_timeline(frames.timestamps, frames.timestep, frames.num_frames, config.timestep)
    starts = window_starts(timeline.present, config.num_frames, config.stride)
    splits = _split_of_windows(config, frames.name, starts, len(timeline))
    # Seeded per event by name, so adding or reordering events leaves the others' crops unchanged.
    rng = np.random.default_rng([config.seed, zlib.crc32(frames.name.encode())])
    chunks = (block_average(chunk, config.downsample) for chunk in frames.chunks)
    rain = FrameBuffer(chunks, frames.num_frames, tuple(side // config.downsample for side in grid))
    tiling = _eval_tiling(config, rain.shape[1:])
    rows = _EventRows(writers, frames.name, timeline)
    windows = dict.fromkeys(SPLITS, 0)
    for start, split in zip(starts, splits):
        if split is None:
            continue
        windows[split] += 1
        stop = start + config.num_frames
        rain.keep_from(timeline.left[start])  # native frames only move forward with the windows
        rain.read_through(timeline.right[start:stop].max())
        if split == "train":
            tiles = _train_crops(rain, timeline, start, config, rng)
        else:
            tiles = _eval_tiles(rain, timeline, start, config, tiling)
        for tile, y, x in tiles:
            rows.emit(split, start, tile, y, x)
    rows.flush()
    rain.keep_from(len(rain))
    rain.read_through(len(rain) - 1)  # every frame is read, as a whole read would: its errors, its metadata
    return _event_info(frames.metadata, timeline, config, rain.shape[1:], windows, rows.counts)


def _eval_tiling(config: RadarWindowsConfig, grid: tuple[int, int]) -> list[tuple[int, int]]:
    """The top-left corners of the fixed validation / test tiles on a grid."""
    height, width = config.tile_size
    return [
        (y, x)
        for y in range(0, grid[0] - height + 1, config.eval_tile_stride or height)
        for x in range(0, grid[1] - width + 1, config.eval_tile_stride or width)
    ]


def _train_crops(
    rain: np.ndarray, timeline: Timeline, start: int, config: RadarWindowsConfig, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, int, int]]:
    """A training window's random crops ``(tile, y, x)``: each redrawn until kept, up to ``_MAX_CROP_ATTEMPTS``."""
    height, width = config.tile_size
    grid_height, grid_width = rain.shape[1:]
    stop = start + config.num_frames
    for _ in range(config.train_crops_per_window):
        for _ in range(_MAX_CROP_ATTEMPTS):
            y = int(rng.integers(0, grid_height - height + 1))
            x = int(rng.integers(0, grid_width - width + 1))
            tile = timeline.frames(rain, start, stop, y, x, height, width)
            if _keep(tile, config, wet=True):
                yield tile, y, x
                break


def _eval_tiles(
    rain: np.ndarray,
    timeline: Timeline,
    start: int,
    config: RadarWindowsConfig,
    tiling: list[tuple[int, int]],
) -> Iterator[tuple[np.ndarray, int, int]]:
    """A validation / test window's kept tiles ``(tile, y, x)``, with their context when ``eval_context``."""
    height, width = config.tile_size
    stop = start + config.num_frames
    for y, x in tiling:
        tile = timeline.frames(rain, start, stop, y, x, height, width)
        if _keep(tile, config, wet=False):
            if config.eval_context:
                tile = _with_context(tile, timeline, rain, start, y, x, config)
            yield tile, y, x


class _EventRows:
    """One event's rows on their way to the split writers, in batches of ``_BATCH_ROWS``; counts them per split."""

    def __init__(self, writers: dict[str, ArrowWriter], event: str, timeline: Timeline) -> None:
        self.writers, self.event, self.timeline = writers, event, timeline
        self.buffers = {split: [] for split in SPLITS}
        self.counts = dict.fromkeys(SPLITS, 0)

    def emit(self, split: str, start: int, tile: np.ndarray, y: int, x: int) -> None:
        origin = self.timeline.times[start].isoformat() if self.timeline.times is not None else ""
        self.buffers[split].append((encode_rain_rate(tile)[:, None], origin, y, x))
        self.counts[split] += 1
        if len(self.buffers[split]) == _BATCH_ROWS:
            _flush(self.writers[split], self.buffers[split], self.event)

    def flush(self) -> None:
        for split in SPLITS:
            _flush(self.writers[split], self.buffers[split], self.event)


def _event_info(
    metadata: Mapping,
    timeline: Timeline,
    config: RadarWindowsConfig,
    grid: tuple[int, int],
    windows: dict[str, int],
    rows: dict[str, int],
) -> dict:
    """What :func:`radar_windows_info` reports of one event: time steps, grid, pixel size, units, counts."""
    return {
        "timestep_minutes": timeline.timestep,
        "native_timestep_minutes": timeline.native_timestep,
        "resampled": timeline.timestep != timeline.native_timestep,
        "grid": list(grid),
        "pixel_size": [
            metadata[key] * config.downsample if isinstance(metadata.get(key), (int, float)) else None
            for key in ("ypixelsize", "xpixelsize")
        ],
        "cartesian_unit": metadata.get("cartesian_unit"),
        "importer": metadata.get("importer"),
        "native_unit": metadata.get("native_unit"),
        "grid_frames": len(timeline),
        "windows": windows,
        "rows": rows,
    }


def _with_context(
    tile: np.ndarray, timeline, rain: np.ndarray, start: int, y: int, x: int, config: RadarWindowsConfig
):
    """``tile`` (the window's frames of the tile at ``(y, x)``) with ``eval_context`` pixels around it: the observed
    frames hold the grid there (NaN beyond it), the future frames only the tile (NaN around it)."""
    context, (height, width) = config.eval_context, config.tile_size
    out = np.full((len(tile), height + 2 * context, width + 2 * context), np.nan, np.float32)
    top, left = max(y - context, 0), max(x - context, 0)
    bottom = min(y + height + context, rain.shape[1])
    right = min(x + width + context, rain.shape[2])
    rows = slice(top - (y - context), bottom - (y - context))
    cols = slice(left - (x - context), right - (x - context))
    inputs = config.num_input_frames
    out[:inputs, rows, cols] = timeline.frames(
        rain, start, start + inputs, top, left, bottom - top, right - left
    )
    out[inputs:, context : context + height, context : context + width] = tile[inputs:]
    return out


def _keep(tile: np.ndarray, config: RadarWindowsConfig, *, wet: bool) -> bool:
    valid = ~np.isnan(tile)
    num_valid = int(valid.sum())
    if num_valid < config.min_valid_fraction * tile.size or num_valid == 0:
        return False
    if wet and config.min_wet_fraction > 0:
        return np.count_nonzero(tile >= config.wet_threshold) >= config.min_wet_fraction * num_valid
    return True


def _flush(writer: ArrowWriter, buffer: list, event: str) -> None:
    if buffer:
        writer.write_batch(
            {
                "rain_rate": np.stack([row[0] for row in buffer]),
                "event": [event] * len(buffer),
                "origin": [row[1] for row in buffer],
                "y": [row[2] for row in buffer],
                "x": [row[3] for row in buffer],
            }
        )
        buffer.clear()
