"""Dataset statistics the baselines need."""

from __future__ import annotations

import itertools

import datasets
import numpy as np

from ..models.convlstm.argument_checks import check_int
from .collate import frames_to_float

__all__ = ["mean_pixel_value"]


def mean_pixel_value(
    dataset: datasets.Dataset | datasets.IterableDataset,
    *,
    frames_column: str = "frames",
    batch_size: int = 256,
    max_sequences: int | None = None,
) -> float:
    """The mean pixel value of a dataset's frames on the [0, 1] scale (the "mean frame" baseline's value).

    Reads ``batch_size`` sequences at a time, so the dataset never has to fit in memory.

    Args:
        dataset: map-style or streaming, with ``frames_column`` holding uint8 / integer [0, 255] or [0, 1] float
            sequences.
        frames_column: the column to read.
        batch_size: sequences read at a time.
        max_sequences: read only the first this many sequences (None: all).

    Returns:
        the mean over every pixel of every frame, a float in [0, 1].

    Raises:
        ValueError: an empty dataset, a missing column, or bad frames (see :func:`frames_to_float`).
    """
    check_int("batch_size", batch_size)
    if max_sequences is not None:
        check_int("max_sequences", max_sequences)
    columns = dataset.column_names
    if columns is not None and frames_column not in columns:
        raise ValueError(
            f"frames_column={frames_column!r} is not a column of the dataset; columns: {columns}"
        )
    total, count = 0.0, 0
    if isinstance(dataset, datasets.Dataset):
        feature = dataset.features.get(frames_column)
        if getattr(feature, "dtype", None) == "uint8":  # read the stored bytes, not int64 copies
            dataset = dataset.with_format("numpy", dtype=np.uint8)
        stop = len(dataset) if max_sequences is None else min(len(dataset), max_sequences)
        for start in range(0, stop, batch_size):
            frames = dataset[start : min(start + batch_size, stop)][frames_column]
            if isinstance(frames, np.ndarray) and frames.dtype == np.uint8:  # the common case, without floats
                total += float(frames.sum(dtype=np.uint64)) / 255.0
                count += frames.size
                continue
            for sequence in frames:
                value = frames_to_float(sequence, name=frames_column)
                total += float(value.double().sum())
                count += value.numel()
    else:
        rows = dataset if max_sequences is None else itertools.islice(dataset, max_sequences)
        for row in rows:
            value = frames_to_float(row[frames_column], name=frames_column)
            total += float(value.double().sum())
            count += value.numel()
    if count == 0:
        raise ValueError("mean_pixel_value needs a dataset with at least one frame")
    return total / count
