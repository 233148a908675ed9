"""An opt-in disk cache of decoded radar events (float32 mm/h, as read), for importers too slow to rerun.

Some importers cost far more than the frames they read (pysteps' ``bom_rf3`` reads each coordinate value one by
one: about 0.4 s a 512 x 512 frame on an idle core). ``read_radar_archive(source, cache_dir=...)`` keeps the
converted event as ``rain_rate.npy`` (float32 (T, H, W), NaN = no data, bit-identical to an uncached read) with
its timestamps and metadata in ``sequence.json``, under ``<cache_dir>/radar_sequences/<key>``, where the key
hashes the source and every file's path, size and modification time. Published by an atomic rename, as
:func:`~bidirectional_conv_lstm.data.cache.cached_build` does.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np

from ..cache import cache_key, default_cache_dir
from .sources import RadarSource

__all__ = ["cached_shape", "file_identity", "load_sequence", "save_sequence", "sequence_folder"]

# Bump when the values read for the same files change (conversion rules), so old entries are not reused.
_READER_VERSION = 2  # 2: stacks keep their grid (x / y, projection) in the metadata
_ARRAY, _RECORD = "rain_rate.npy", "sequence.json"


def file_identity(path: Path) -> list:
    """``[resolved path, size, mtime_ns]``: what a cache key needs to notice a changed file."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def sequence_folder(cache_dir: str | os.PathLike | None, source: RadarSource, paths: list[Path]) -> Path:
    """The cache folder of a source's event read from ``paths``."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    params = {
        "version": _READER_VERSION,
        "source": source.to_dict(),
        "files": [file_identity(p) for p in paths],
    }
    return root / "radar_sequences" / cache_key(params)


def load_sequence(
    folder: Path, mmap_mode: str | None = None
) -> tuple[np.ndarray, list[datetime] | None, float | None, dict] | None:
    """``(rain_rate, timestamps, timestep, metadata)`` from a cache folder, or None when there is none;
    ``mmap_mode="r"`` maps the array instead of reading it (frames are read when sliced)."""
    if not (folder / _RECORD).is_file():
        return None
    record = json.loads((folder / _RECORD).read_text())
    stamps = record["timestamps"]
    stamps = None if stamps is None else [datetime.fromisoformat(stamp) for stamp in stamps]
    return (
        np.load(folder / _ARRAY, mmap_mode=mmap_mode, allow_pickle=False),
        stamps,
        record["timestep"],
        record["metadata"],
    )


def cached_shape(folder: Path) -> tuple[int, ...] | None:
    """The (T, H, W) shape of a cached event, from its array header alone; None when there is none."""
    if not (folder / _RECORD).is_file():
        return None
    return np.load(folder / _ARRAY, mmap_mode="r", allow_pickle=False).shape


def save_sequence(folder: Path, rain_rate: np.ndarray, timestamps, timestep, metadata: dict) -> None:
    """Write a cache folder (staged, then renamed into place; a concurrent writer's copy wins if it was first)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"
    try:
        staging.mkdir()
        np.save(staging / _ARRAY, rain_rate, allow_pickle=False)
        record = {
            "timestamps": None if timestamps is None else [stamp.isoformat() for stamp in timestamps],
            "timestep": timestep,
            "metadata": metadata,
        }
        (staging / _RECORD).write_text(json.dumps(record, default=str))
        try:
            os.rename(staging, folder)
        except OSError:
            if not (folder / _RECORD).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
