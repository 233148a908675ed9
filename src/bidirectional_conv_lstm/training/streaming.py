"""Training on a streamed split (``data.streaming: true``), on one process or several.

The training split of a Hub dataset or a local folder of Parquet shards is read lazily
(``datasets.load_dataset(..., streaming=True)``); validation and test stay map-style (small, read once). Each
process reads its own shards (:func:`datasets.distributed.split_dataset_by_node`; when the shard count does not
divide by the number of processes, every process reads every shard and keeps one window in ``world_size``), through
a shuffle buffer of ``data.shuffle_buffer`` windows (default :data:`DEFAULT_SHUFFLE_BUFFER`) seeded by the run's
seed; ``set_epoch`` gives every epoch another shard order and buffer draw, the same on every process.

An epoch ends when a process has read its shards: every process then stops, so that all take the same optimizer
steps (a process holding more windows than another leaves its last ones for that epoch). A run resumed in the
middle of an epoch reads that epoch again in the same order and skips the batches it had trained on: the same
batches follow as in the uninterrupted run. (``datasets``' own ``IterableDataset.state_dict`` restarts at the shard
position and loses the windows that were in the shuffle buffer, so it does not resume exactly.)

A stream has no ``len()``: the run's length is ``max_train_steps``; with ``num_train_epochs`` too, an epoch's
length comes from ``data.num_train_windows``, else from the split's row count in the dataset's metadata (a Hub
dataset's card, or the Parquet files' footers).
"""

from __future__ import annotations

from collections.abc import Iterator

import datasets
import fsspec
import pyarrow.parquet as pq
import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader

from ..data.loaders import is_saved_dataset
from .arguments import TrainingArguments
from .data_sources import split_data_files

__all__ = [
    "DEFAULT_SHUFFLE_BUFFER",
    "process_stream",
    "streamed_batches",
    "stream_source",
    "streamed_train_batches",
]

# Windows held in the shuffle buffer: ~1000 mixes windows from many shards and events (a shard holds one event's
# neighbouring windows) at ~1000 x a window's size of memory per process (and per DataLoader worker).
DEFAULT_SHUFFLE_BUFFER = 1000


def process_stream(
    train: datasets.IterableDataset, args: TrainingArguments, *, rank: int, world_size: int
) -> datasets.IterableDataset:
    """This process's share of the streamed training split: shuffled (shard order and a buffer of
    ``data.shuffle_buffer`` windows, from ``args.seed``), then split by node for process ``rank`` of
    ``world_size``. Call ``set_epoch`` on it (:func:`streamed_batches` does) for each epoch's order."""
    buffer_size = args.data.get("shuffle_buffer", DEFAULT_SHUFFLE_BUFFER)
    shuffled = train.shuffle(seed=args.seed, buffer_size=buffer_size)
    return split_dataset_by_node(shuffled, rank=rank, world_size=world_size)


def streamed_train_batches(args: TrainingArguments, world_size: int) -> int | None:
    """The training batches of an epoch, counted over all processes as ``len(DataLoader)`` counts a map-style
    split's (windows // ``per_device_train_batch_size``), for the schedules of a run with ``num_train_epochs``;
    None without ``num_train_epochs`` (``max_train_steps`` is then the run's length).

    Raises:
        ValueError: ``num_train_epochs`` is set, ``data.num_train_windows`` is not, and the dataset's metadata does
            not give the split's row count; or the split holds less than one batch per process.
    """
    if args.num_train_epochs is None:
        return None
    windows = args.data.get("num_train_windows")
    if windows is None:
        windows = _split_rows(stream_source(args), args.data.get("train_split", "train"))
    if windows is None:
        raise ValueError(
            f"num_train_epochs={args.num_train_epochs} with data.streaming=true needs the training split's length, "
            f"and dataset={args.dataset!r} does not give it (no row count in its metadata); set "
            "data.num_train_windows to the split's number of windows, or drop num_train_epochs and let "
            "max_train_steps set the run's length"
        )
    if windows < args.per_device_train_batch_size * world_size:
        raise ValueError(
            f"the streamed training split has {windows} windows, fewer than one batch "
            f"(per_device_train_batch_size={args.per_device_train_batch_size} x {world_size} processes)"
        )
    return windows // args.per_device_train_batch_size


def stream_source(args: TrainingArguments) -> str:
    """What a streamed run reads: ``dataset`` (a Hub id, a folder), or what its kind of data names
    (:attr:`~.kinds.DatasetKind.stream_source`)."""
    kind = args.kind
    return args.dataset if kind is None else kind.stream_source(args)


def _split_rows(name_or_path: str, split: str) -> int | None:
    """The rows of one split, from the dataset's metadata: the split sizes a Hub dataset's card records, else
    the footers of its Parquet files (read without their data), or a ``save_to_disk`` folder's length; None when
    none is there."""
    if is_saved_dataset(name_or_path):
        saved = datasets.load_from_disk(str(name_or_path))
        return len(saved[split] if isinstance(saved, datasets.DatasetDict) else saved)
    builder = datasets.load_dataset_builder(name_or_path)
    known = builder.info.splits or {}
    if split in known and known[split].num_examples:
        return known[split].num_examples
    files = split_data_files(name_or_path, split)
    if not files or not all(str(file).endswith(".parquet") for file in files):
        return None
    rows = 0
    for file in files:
        with fsspec.open(file, "rb") as stream:
            rows += pq.read_metadata(stream).num_rows
    return rows


def streamed_batches(loader: DataLoader, accelerator: Accelerator, *, epoch: int, skip: int = 0) -> Iterator:
    """The batches of epoch ``epoch`` of a :func:`process_stream` loader, on the accelerator's device, after the
    first ``skip`` (a resumed run's, read and dropped). Ends on every process as soon as one has no full batch
    left, so that all processes take the same steps.

    Raises:
        ValueError: the epoch gave some process no full batch at all.
    """
    loader.dataset.set_epoch(epoch)
    batches = iter(loader)
    count = 0
    while True:
        batch = next(batches, None)
        if not _every_process_has(batch is not None, accelerator):
            break
        count += 1
        if count > skip:
            yield send_to_device(batch, accelerator.device, non_blocking=accelerator.non_blocking)
    if count == 0:
        raise ValueError(
            f"epoch {epoch} of the streamed training split gave a process no full batch of "
            f"per_device_train_batch_size={loader.batch_size} windows ({accelerator.num_processes} processes); "
            "use more data, a smaller batch or fewer processes"
        )


def _every_process_has(has_batch: bool, accelerator: Accelerator) -> bool:
    """Whether every process has a batch (one small all-reduce with several processes)."""
    if accelerator.num_processes == 1:
        return has_batch
    count = torch.tensor([int(has_batch)], device=accelerator.device)
    return int(accelerator.reduce(count, reduction="sum").item()) == accelerator.num_processes
