"""Loaders for real frame data: the standard Moving MNIST test file, the user's own arrays and PNG frames, and
any ``datasets`` dataset (Hub or local, streaming included) with a frames column.

Every loader returns data with one ``frames`` column holding one sequence per row, (T, C, H, W), numpy
formatted, ready for :class:`~bidirectional_conv_lstm.data.FramePredictionCollator`.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from .cache import cached_build, numpy_format, write_arrow

__all__ = [
    "is_saved_dataset",
    "is_sequence_folder",
    "load_frames_dataset",
    "load_frames_folder",
    "load_moving_mnist_test_file",
]

_ARRAY_SUFFIXES = (".npy", ".npz")
_FRAME_SUFFIX = ".png"
_PNG_CHANNELS = {"L": 1, "RGB": 3}
_LOADER_VERSION = 1
_CHUNK_SIZE = 500


def _file_identity(path: Path) -> list:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def load_moving_mnist_test_file(
    path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None
) -> datasets.Dataset:
    """The standard Moving MNIST test set, ``mnist_test_seq.npy`` (Srivastava et al. 2015), as a Dataset.

    The file (a uint8 array (T=20, N=10000, H=64, W=64), time first) is read memory-mapped and converted once
    into the cache (keyed by the file's path, size and modification time), so results compare with published
    tables (OpenSTL evaluates on this file).

    Args:
        path: the ``.npy`` file.
        cache_dir: the cache root; None for ``$BCL_CACHE`` or ``~/.cache/bidirectional_conv_lstm``.

    Returns:
        Dataset with N rows and a ``frames`` column, stored uint8 (T, 1, H, W), numpy formatted (read as int64).

    Raises:
        FileNotFoundError: no such file.
        TypeError / ValueError: not a uint8 (T, N, H, W) array (the message names the file).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Moving MNIST test file {str(path)!r} does not exist; it is mnist_test_seq.npy from "
            "https://www.cs.toronto.edu/~nitish/unsupervised_video/ (or generate data with load_moving_mnist)"
        )
    array = _open_array(path)
    if array.ndim != 4:
        raise ValueError(
            f"{path}: expected a (T, N, H, W) array such as (20, 10000, 64, 64), got shape {array.shape}"
        )
    if array.dtype != np.uint8:
        raise TypeError(f"{path}: expected dtype uint8, got {array.dtype}")
    num_frames, num_sequences, height, width = array.shape
    if num_frames == 0 or num_sequences == 0:
        raise ValueError(f"{path}: holds no sequences or no frames (shape {array.shape})")
    features = datasets.Features(
        {"frames": datasets.Array4D(shape=(num_frames, 1, height, width), dtype="uint8")}
    )

    def build(scratch: Path) -> datasets.Dataset:
        def batches():
            for start in range(0, num_sequences, _CHUNK_SIZE):
                chunk = np.asarray(array[:, start : start + _CHUNK_SIZE])
                yield {"frames": np.ascontiguousarray(chunk.transpose(1, 0, 2, 3)[:, :, None])}

        return write_arrow(scratch / "test.arrow", features, batches())

    params = {"loader": "moving_mnist_test_file", "version": _LOADER_VERSION, "file": _file_identity(path)}
    return numpy_format(cached_build("moving_mnist_test_file", params, build, cache_dir))


def _open_array(path: Path) -> np.ndarray:
    """An .npy (memory-mapped) or single-array .npz file's array; never unpickles."""
    try:
        if path.suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if len(keys) == 1:
                return archive[keys[0]]
            if "frames" in keys:
                return archive["frames"]
            raise ValueError(
                f"{path}: an .npz sequence must hold one array or one named 'frames', found {keys}"
            )
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, ValueError) and str(path) in str(error):
            raise
        raise ValueError(f"{path}: cannot read as a numpy array file ({error})") from error


def _natural_key(name: str) -> list:
    """Sort 'frame_2' before 'frame_10'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _png_frames(folder: Path) -> list[Path]:
    frames = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() == _FRAME_SUFFIX), key=lambda p: _natural_key(p.name)
    )
    if not frames:
        raise ValueError(f"{folder}: a sequence folder must hold PNG frames (*.png), found none")
    return frames


def _png_info(frames: list[Path]) -> tuple[tuple[int, int, int, int], np.dtype]:
    """(T, C, H, W) and dtype of a PNG sequence, from the headers only; all frames must agree."""
    reference = None
    for frame in frames:
        with Image.open(frame) as image:
            if image.mode not in _PNG_CHANNELS:
                raise ValueError(
                    f"{frame}: PNG mode {image.mode!r} is not supported; use 8-bit grayscale ('L') or 'RGB' frames"
                )
            shape = (_PNG_CHANNELS[image.mode], image.height, image.width)
        if reference is None:
            reference = (frame, shape)
        elif shape != reference[1]:
            raise ValueError(
                f"{frame}: frame of (C, H, W) {shape} differs from {reference[0].name}'s {reference[1]}; "
                "all frames of a folder must have one size"
            )
    return (len(frames), *reference[1]), np.dtype(np.uint8)


def _read_png_sequence(frames: list[Path]) -> np.ndarray:
    array = np.stack([np.asarray(Image.open(frame)) for frame in frames])
    return array[:, None] if array.ndim == 3 else array.transpose(0, 3, 1, 2)


def _as_sequence(array: np.ndarray, source: Path) -> np.ndarray:
    """(T, H, W) or (T, C, H, W) -> (T, C, H, W); checks dims."""
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4:
        return array
    raise ValueError(f"{source}: a sequence must be (T, H, W) or (T, C, H, W), got shape {array.shape}")


def _checked_values(array: np.ndarray, source: Path, storage: np.dtype) -> np.ndarray:
    """Check the value range of one sequence and convert it to the storage dtype."""
    if array.dtype == np.uint8:
        return array if storage == np.uint8 else array.astype(np.float32) / 255.0
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"{source}: integer frames must lie in [0, 255], found values in [{low}, {high}]"
            )
        return array.astype(np.uint8) if storage == np.uint8 else array.astype(np.float32) / 255.0
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{source}: frames contain NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise ValueError(f"{source}: float frames must lie in [0, 1], found values in [{low:g}, {high:g}]")
    return array.astype(np.float32)


# One sequence of a frames folder: its file or folder, (T, C, H, W), dtype, and its PNG frames (None for arrays).
_Source = tuple[Path, tuple[int, ...], np.dtype, list[Path] | None]


def _sequence_sources(root: Path) -> list[_Source]:
    """The sequences of a frames folder in natural name order, read from the file headers only."""
    entries = sorted(
        (p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: _natural_key(p.name)
    )
    sources: list[_Source] = []
    for entry in entries:
        if entry.is_dir():
            frames = _png_frames(entry)
            shape, dtype = _png_info(frames)
            sources.append((entry, shape, dtype, frames))
        elif entry.suffix.lower() in _ARRAY_SUFFIXES:
            array = _open_array(entry)
            if array.dtype == bool or not (
                np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
            ):
                raise TypeError(
                    f"{entry}: frames must be integers in [0, 255] or floats in [0, 1], got dtype {array.dtype}"
                )
            sources.append((entry, _as_sequence(array, entry).shape, array.dtype, None))
    if not sources:
        raise ValueError(
            f"{root}: found no sequences; expected .npy / .npz files ((T, H, W) or (T, C, H, W)) or sub-folders of PNG frames"
        )
    return sources


def _check_frame_sizes(sources: list[_Source]) -> None:
    """Every sequence has a frame, and all share the first one's (C, H, W)."""
    reference = sources[0]
    for source, shape, _, _ in sources:
        if shape[0] == 0:
            raise ValueError(f"{source}: a sequence needs at least one frame, got shape {shape}")
        if shape[1:] != reference[1][1:]:
            raise ValueError(
                f"{source}: frames of (C, H, W) {shape[1:]} differ from {reference[0].name}'s {reference[1][1:]}; "
                "all sequences must share one frame size"
            )


def _folder_features(sources: list[_Source]) -> tuple[np.dtype, datasets.Features]:
    """The storage dtype (float32 if any sequence is float, else uint8) and the dataset's features."""
    storage = (
        np.dtype(np.float32)
        if any(np.issubdtype(d, np.floating) for _, _, d, _ in sources)
        else np.dtype(np.uint8)
    )
    lengths = {shape[0] for _, shape, _, _ in sources}
    time_dim = lengths.pop() if len(lengths) == 1 else None
    features = datasets.Features(
        {
            "frames": datasets.Array4D(shape=(time_dim, *sources[0][1][1:]), dtype=storage.name),
            "name": datasets.Value("string"),
        }
    )
    return storage, features


def load_frames_folder(
    path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None
) -> datasets.Dataset:
    """The user's own sequences, one sequence per file or per folder, as a Dataset.

    ``path`` holds sequences as either

    - ``.npy`` / ``.npz`` files, each one array (T, H, W) or (T, C, H, W) (an ``.npz`` with several arrays
      must name the sequence ``frames``), or
    - sub-folders of PNG frames (8-bit grayscale or RGB), one folder a sequence, frames in natural name order
      (``frame_2.png`` before ``frame_10.png``).

    Integer frames must lie in [0, 255] and are stored as uint8; float frames must lie in [0, 1] and, if any
    file is float, every sequence is stored as float32 in [0, 1]. Sequences may differ in length T but not in
    (C, H, W). Everything is checked from the file headers before any pixel is converted; the result is cached
    (keyed by the files' paths, sizes and modification times). Other files and hidden folders are ignored.

    Args:
        path: the folder.
        cache_dir: the cache root; None for ``$BCL_CACHE`` or ``~/.cache/bidirectional_conv_lstm``.

    Returns:
        Dataset with one row per sequence, columns ``frames`` (stored uint8 or float32 (T, C, H, W), numpy
        formatted: integer frames read as int64)
        and ``name`` (the file or folder name), sorted by name.

    Raises:
        FileNotFoundError: no such folder.
        ValueError / TypeError: no sequences, an empty sequence folder, a wrong shape, dtype or value range,
            unequal frame sizes (the message names the file).
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"frames folder {str(root)!r} does not exist or is not a folder")
    sources = _sequence_sources(root)
    _check_frame_sizes(sources)
    storage, features = _folder_features(sources)

    def build(scratch: Path) -> datasets.Dataset:
        def batches():
            for source, _, _, frames in sources:
                raw = (
                    _read_png_sequence(frames)
                    if frames is not None
                    else _as_sequence(np.asarray(_open_array(source)), source)
                )
                yield {"frames": [_checked_values(raw, source, storage)], "name": [source.name]}

        return write_arrow(scratch / "frames.arrow", features, batches())

    files = [f for source, _, _, frames in sources for f in (frames if frames is not None else [source])]
    params = {
        "loader": "frames_folder",
        "version": _LOADER_VERSION,
        "files": [_file_identity(f) for f in files],
    }
    return numpy_format(cached_build("frames_folder", params, build, cache_dir))


# Files of a folder that datasets.load_dataset reads with its packaged builders.
_DATA_FILE_SUFFIXES = frozenset((".parquet", ".arrow", ".jsonl", ".csv"))


def is_saved_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``)."""
    path = Path(path).expanduser()
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


def is_sequence_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder of sequences (``.npy`` / ``.npz`` files or PNG folders, read by
    :func:`load_frames_folder`) rather than a ``datasets`` folder: ``save_to_disk``, or data files that
    ``datasets.load_dataset`` reads (Parquet, Arrow, JSON Lines, CSV; in subfolders too, as ``push_to_hub``'s
    ``data/`` lays them out)."""
    path = Path(path).expanduser()
    if not path.is_dir() or is_saved_dataset(path):
        return False
    return not any(file.suffix in _DATA_FILE_SUFFIXES for file in path.rglob("*"))


def load_frames_dataset(
    name_or_path: str | os.PathLike,
    split: str = "test",
    *,
    streaming: bool = False,
    frames_column: str = "frames",
    name: str | None = None,
    data_files=None,
    revision: str | None = None,
    **load_dataset_kwargs,
) -> datasets.Dataset | datasets.IterableDataset:
    """Any dataset with a frames column: a Hub id, a local dataset folder or script, data files, or a
    ``save_to_disk`` folder; streaming included.

    Args:
        name_or_path: a Hub dataset id (``"user/moving-mnist"``), a builder name with ``data_files``
            (``"parquet"``), a local folder of data files, or a folder written by ``save_to_disk``.
        split: the split to load.
        streaming: return an ``IterableDataset`` that reads lazily (a ``save_to_disk`` folder is turned into
            one with ``to_iterable_dataset``).
        frames_column: the column with one sequence per row, (T, H, W) or (T, C, H, W), integers in [0, 255]
            or floats in [0, 1]; renamed to ``frames``.
        name, data_files, revision, **load_dataset_kwargs: passed to :func:`datasets.load_dataset`.

    Returns:
        Dataset or IterableDataset with the ``frames`` column, numpy formatted (integer frames read as int64,
        which the collator accepts).

    Raises:
        ValueError: the split or the frames column is missing (the message lists what exists).
        TypeError: the frames column is not an array of numbers.
    """
    local = Path(name_or_path).expanduser() if isinstance(name_or_path, (str, os.PathLike)) else None
    if local is not None and is_saved_dataset(local):
        saved = datasets.load_from_disk(str(local))
        if isinstance(saved, datasets.DatasetDict):
            if split not in saved:
                raise ValueError(f"split={split!r} is not in {str(local)!r}; available splits: {list(saved)}")
            saved = saved[split]
        dataset = saved.to_iterable_dataset() if streaming else saved
    else:
        dataset = datasets.load_dataset(
            os.fspath(name_or_path),
            name=name,
            split=split,
            data_files=data_files,
            revision=revision,
            streaming=streaming,
            **load_dataset_kwargs,
        )
    columns = dataset.column_names
    if columns is None:  # a streaming dataset of unknown features: look at one row
        columns = list(next(iter(dataset)).keys())
    if frames_column not in columns:
        raise ValueError(
            f"frames_column={frames_column!r} is not a column of {name_or_path!r}; columns: {columns}"
        )
    if frames_column != "frames":
        if "frames" in columns:
            raise ValueError(
                f"{name_or_path!r} has a 'frames' column besides frames_column={frames_column!r}; drop or rename one"
            )
        dataset = dataset.rename_column(frames_column, "frames")
    feature = dataset.features.get("frames") if dataset.features is not None else None
    if feature is not None and not isinstance(
        feature, (datasets.Array3D, datasets.Array4D, datasets.List, datasets.LargeList)
    ):
        raise TypeError(
            f"frames_column={frames_column!r} of {name_or_path!r} has feature {feature}; expected an array of "
            "numbers per row (Array3D / Array4D or nested lists), (T, H, W) or (T, C, H, W)"
        )
    return numpy_format(dataset)
