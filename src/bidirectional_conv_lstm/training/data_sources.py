"""The datasets of a run, from its arguments: what the training loop, the evaluation and the dataset upload read.

Its own module so that the loops (loop.py, evaluation.py) and hub.datasets_push depend on it, not on each other.
"""

from __future__ import annotations

from pathlib import Path

from ..data import SPLITS, MovingMNISTConfig, load_frames_dataset, load_frames_folder, load_moving_mnist
from .arguments import TrainingArguments

__all__ = ["load_datasets"]


def load_datasets(args: TrainingArguments) -> dict:
    """``{"train", "validation", "test"}`` datasets for the run's data source: a ``frames`` column, or for the
    rain-rate sources (``"synthetic_rain"``, ``"radar"``) the ``rain_storage`` schema (``rain_rate`` windows)."""
    kind = args.kind
    if kind is not None:
        return kind.load(args)
    options = dict(args.data)
    cache_dir = options.pop("cache_dir", None)
    if args.dataset == "moving_mnist":
        splits = load_moving_mnist(MovingMNISTConfig(**options), cache_dir=cache_dir)
        return {name: splits[name] for name in SPLITS}
    path = Path(args.dataset)
    if (
        path.is_dir()
        and not any((path / name).exists() for name in ("dataset_dict.json", "state.json"))
        and not (any(path.glob("*.parquet")) or any(path.glob("*.arrow")))
    ):
        # A folder of .npy/.npz files or of PNG folders: hold out the last tenth for validation and test.
        frames = load_frames_folder(path, cache_dir=cache_dir)
        split = frames.train_test_split(test_size=max(2, len(frames) // 5), seed=args.seed)
        held_out = split["test"].train_test_split(test_size=0.5, seed=args.seed)
        return {"train": split["train"], "validation": held_out["train"], "test": held_out["test"]}
    column = options.get("frames_column", "frames")
    names = {
        "train": options.get("train_split", "train"),
        "validation": options.get("validation_split", "validation"),
        "test": options.get("test_split", "test"),
    }
    return {
        key: load_frames_dataset(args.dataset, split=split, frames_column=column)
        for key, split in names.items()
    }
