"""The datasets of a run, from its arguments: what the training loop, the evaluation and the dataset upload read.

Its own module so that the loops (loop.py, evaluation.py) and hub.datasets_push depend on it, not on each other.
"""

from __future__ import annotations

import datasets

from ..data import SPLITS, MovingMNISTConfig, load_frames_dataset, load_frames_folder, load_moving_mnist
from ..data.loaders import is_saved_dataset, is_sequence_folder
from .arguments import TrainingArguments

__all__ = ["load_datasets", "split_data_files"]


def load_datasets(args: TrainingArguments, *, stream_train: bool = False) -> dict:
    """``{"train", "validation", "test"}`` datasets for the run's data source: a ``frames`` column, or for the
    rain-rate sources (``"synthetic_rain"``, ``"radar"``) the ``rain_storage`` schema (``rain_rate`` windows).

    With ``stream_train`` (the loop passes ``data.streaming``), the training split of a dataset read with
    ``datasets.load_dataset`` (a Hub id, a folder of Parquet shards) is a ``datasets.IterableDataset`` that reads
    its shards lazily, and the validation and test splits are map-style, built from their own data files only (not
    the whole dataset's); a registered kind of data reads ``data.streaming`` itself, where its
    ``stream_source`` names what it streams. :class:`TrainingArguments` has refused ``data.streaming`` for every
    other source.
    """
    kind = args.kind
    if kind is not None:
        return kind.load(args)
    options = dict(args.data)
    cache_dir = options.pop("cache_dir", None)
    if args.dataset == "moving_mnist":
        splits = load_moving_mnist(MovingMNISTConfig(**options), cache_dir=cache_dir)
        return {name: splits[name] for name in SPLITS}
    if is_sequence_folder(args.dataset):
        # A folder of .npy/.npz files or of PNG folders: hold out the last tenth for validation and test.
        frames = load_frames_folder(args.dataset, cache_dir=cache_dir)
        split = frames.train_test_split(test_size=max(2, len(frames) // 5), seed=args.seed)
        held_out = split["test"].train_test_split(test_size=0.5, seed=args.seed)
        return {"train": split["train"], "validation": held_out["train"], "test": held_out["test"]}
    column = options.get("frames_column", "frames")
    names = {
        "train": options.get("train_split", "train"),
        "validation": options.get("validation_split", "validation"),
        "test": options.get("test_split", "test"),
    }
    loaded = {}
    for key, split in names.items():
        streaming = stream_train and key == "train"
        files = None if streaming or not stream_train else split_data_files(args.dataset, split)
        loaded[key] = load_frames_dataset(
            args.dataset,
            split=split,
            frames_column=column,
            streaming=streaming,
            data_files=None if files is None else {split: files},
        )
    return loaded


def split_data_files(name_or_path: str, split: str) -> list[str] | None:
    """The data files of one split of a Hub dataset or a local folder of data files, as ``datasets`` resolves
    them (``load_dataset_builder``): local paths or ``hf://`` URLs; None for a ``save_to_disk`` folder or a split
    the builder does not list."""
    if is_saved_dataset(name_or_path):
        return None
    files = datasets.load_dataset_builder(str(name_or_path)).config.data_files or {}
    return list(files[split]) if split in files else None
