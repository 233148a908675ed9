"""Does the streaming loader keep up with the model? Windows/s the streamed training path delivers against windows/s
a training step consumes, at the CPU recipe's shape (configs/nowcasting_synthetic.yaml: 64 x 64 tiles, 4 -> 12
frames, batch 16, its model).

The loader: synthetic rain windows (16 frames, the ``rain_storage`` schema with the ``motion`` column) written as
Parquet shards, read by ``datasets.load_dataset("parquet", ..., streaming=True)``, numpy formatted, through
:func:`~bidirectional_conv_lstm.training.streaming.process_stream` (the shuffle buffer) and the recipe's training
collator (:class:`~bidirectional_conv_lstm.data.RainRateCollator` with augmentation) in a ``DataLoader`` with
``num_workers`` 0, 1, 2..., as the training loop builds it. Timing starts once every worker has delivered a batch
(its shuffle buffer is full); what the workers prefetched by then (at most 2 batches each) counts as delivered in
the timed span, a small overstatement.

The model: training steps (forward, backward, gradient clipping, AdamW step) of the recipe's model config, fp32, on
one collated batch, after a warm-up step; the median step. The two are measured apart: in training, workers share
the cores with the model, and with ``num_workers=0`` loading adds to every step (the step's share spent loading is
model rate / loader rate).

The end of a stream: ``datasets`` (5.x) waits ``datasets.config.SLEEP_TIME_ON_THREADS_SHUTDOWN`` (5 s) when a
Parquet stream's shards run out (apache/arrow#45214), in every worker, while the shuffle buffer still holds its
last windows; the table gives the rest of the epoch apart (that wait and the buffer's draining), since it is paid
once an epoch, not per window.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import deque
from itertools import islice
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader

from ..data import RainRateCollator
from ..data.cache import numpy_format
from ..data.rain.fields import RainFieldParameters
from ..data.rain.storage import encode_rain_rate, rain_window_features
from ..data.rain.synthetic import iter_synthetic_rain
from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction
from ..models.convlstm.rain_rate import RainRateTransform
from ..training.arguments import TrainingArguments, load_training_arguments
from ..training.streaming import DEFAULT_SHUFFLE_BUFFER, process_stream
from .measurement import timed

__all__ = [
    "LOADER_COLUMNS",
    "benchmark_loader",
    "loader_table",
    "measure_loader",
    "measure_model",
    "recipe_arguments",
    "write_parquet_windows",
]

RECIPE_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "nowcasting_synthetic.yaml"
#: The columns of :func:`loader_table`.
LOADER_COLUMNS = ("what", "num_workers", "windows/s", "x the model", "rest of the epoch (s)")


def recipe_arguments(config: str | Path = RECIPE_CONFIG, **overrides) -> TrainingArguments:
    """The CPU recipe's run arguments (stage 1, synthetic rain), with ``overrides``."""
    return load_training_arguments(config, overrides)


def write_parquet_windows(
    folder: str | Path, args: TrainingArguments, num_windows: int, num_shards: int, seed: int = 0
) -> list[str]:
    """Write ``num_windows`` synthetic rain windows of the run's shape (``data.num_frames`` frames of
    ``data.size``, the recipe's field parameters) as ``num_shards`` Parquet shards in the ``rain_storage`` schema;
    the shards' paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    known = {field.name for field in dataclasses.fields(RainFieldParameters)}
    params = {key: value for key, value in args.data.items() if key in known}
    params["speed_range"] = tuple(params.get("speed_range", RainFieldParameters.speed_range))
    frames, size = params.get("num_frames", 20), params.get("size", 128)
    features = rain_window_features(frames, size, size, motion=True)
    per_shard = -(-num_windows // num_shards)
    paths = []
    for shard in range(num_shards):
        count = min(per_shard, num_windows - shard * per_shard)
        if count <= 0:
            break
        chunks = iter_synthetic_rain(
            count, seed=seed, start_index=shard * per_shard, return_motion=True, **params
        )
        rain, motion = (np.concatenate(parts) for parts in zip(*chunks, strict=True))
        table = {
            "rain_rate": encode_rain_rate(rain[:, :, None]),
            "motion": motion,
            "event": [f"synthetic-{shard * per_shard + i}" for i in range(count)],
            "origin": [""] * count,
            "y": np.zeros(count, dtype=np.int32),
            "x": np.zeros(count, dtype=np.int32),
        }
        path = folder / f"train-{shard:05d}-of-{num_shards:05d}.parquet"
        datasets.Dataset.from_dict(table, features=features).to_parquet(path)
        paths.append(str(path))
    return paths


def _train_collator(args: TrainingArguments) -> RainRateCollator:
    """The training collator ``RainRateTask`` builds for a new model: the config's rain-rate transform,
    augmentation as ``data.augment`` says, the run's seed."""
    transform = RainRateTransform.from_dict(args.model_config().rain_rate_transform)
    augment = args.data.get("augment", True)
    return RainRateCollator(
        args.num_input_frames, args.num_output_frames, transform, augment=augment, seed=args.seed
    )


def measure_loader(
    files: list[str],
    args: TrainingArguments,
    num_workers: int,
    num_windows: int,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> dict:
    """Windows/s the streamed training path delivers from ``files`` (``num_windows`` in all) with ``num_workers``
    DataLoader workers and a shuffle buffer of ``shuffle_buffer`` windows: ``windows`` and ``seconds`` timed after
    every worker's first batch and before its shards run out (``windows_per_s``), then ``epoch_end_s``, the time the
    rest of the epoch took: the end of the shards (``datasets`` waits there, see the module docstring) and the
    draining of the shuffle buffers."""
    stream = numpy_format(
        datasets.load_dataset("parquet", data_files={"train": files}, split="train", streaming=True)
    )
    # A streamed run's own arguments (data.streaming, data.shuffle_buffer); the recipe's synthetic rain reads no
    # stream, so its arguments refuse the stream's options.
    streamed = SimpleNamespace(seed=args.seed, data={"shuffle_buffer": shuffle_buffer})
    stream = process_stream(stream, streamed, rank=0, world_size=1)
    stream.set_epoch(0)
    batch_size = args.per_device_train_batch_size
    loader = DataLoader(
        stream,
        batch_size=batch_size,
        drop_last=True,
        collate_fn=_train_collator(args),
        num_workers=num_workers,
    )
    warmup = max(1, num_workers)  # worker start-up and each worker's shuffle buffer filling
    # Timed until a little before any worker's shards run out (their last rows still in its buffer), with a
    # margin for the batches workers prefetch: the end of the stream is timed apart.
    timed_batches = (num_windows - warmup * shuffle_buffer) // batch_size - 4 * warmup
    if timed_batches < 1:
        raise ValueError(
            f"{num_windows} windows are too few to time batches of {batch_size} with num_workers={num_workers} "
            f"and a shuffle buffer of {shuffle_buffer}; write at least "
            f"{warmup * shuffle_buffer + (4 * warmup + 1) * batch_size}"
        )
    batches = iter(loader)
    for _ in range(warmup):
        next(batches)
    delivered = []
    seconds = timed(lambda: delivered.extend(len(b["pixel_values"]) for b in islice(batches, timed_batches)))
    epoch_end_s = timed(lambda: deque(batches, maxlen=0))
    windows = sum(delivered)
    return {
        "num_workers": num_workers,
        "windows": windows,
        "seconds": seconds,
        "windows_per_s": windows / seconds,
        "epoch_end_s": epoch_end_s,
    }


def measure_model(args: TrainingArguments, files: list[str], steps: int, warmup: int = 1) -> dict:
    """Windows/s the recipe's model consumes: the median of ``steps`` training steps (forward, backward, gradient
    clipping, AdamW step; fp32) on one training batch from ``files``, after ``warmup`` steps."""
    first = numpy_format(datasets.Dataset(pq.read_table(files[0])))  # in memory, no cache written
    rows = [first[i] for i in range(min(args.per_device_train_batch_size, len(first)))]
    batch = _train_collator(args)(rows)
    torch.manual_seed(args.seed)
    model = ConvLSTMForFramePrediction(args.model_config()).train()
    inputs = {
        "pixel_values": batch["pixel_values"],
        "labels": batch["labels"],
        "loss_mask": batch["labels_mask"],
    }
    if model.config.motion_loss_weight:
        inputs["target_motion"] = batch["target_motion"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    ratio = args.teacher_forcing_ratio(0)

    def step():
        model(**inputs, teacher_forcing_ratio=ratio).loss.backward()
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    times = [timed(step) for _ in range(steps)]
    seconds = statistics.median(times)
    return {
        "batch": len(rows),
        "steps": steps,
        "step_s": seconds,
        "windows_per_s": len(rows) / seconds,
        "threads": torch.get_num_threads(),
    }


def benchmark_loader(
    folder: str | Path,
    *,
    num_windows: int = 2048,
    num_shards: int = 16,
    workers: tuple[int, ...] = (0, 1, 2),
    steps: int = 5,
    shuffle_buffer: int = 256,
    config: str | Path = RECIPE_CONFIG,
) -> dict:
    """Write the windows under ``folder``, then measure the loader for each of ``workers`` and the model:
    ``loader`` (one dict per worker count, with ``ratio``: loader over model windows/s), ``model``, and the
    settings."""
    args = recipe_arguments(config)
    started = time.perf_counter()
    files = write_parquet_windows(folder, args, num_windows, num_shards, seed=args.seed)
    write_s = time.perf_counter() - started
    model = measure_model(args, files, steps)
    loader = []
    for count in workers:
        run = measure_loader(files, args, count, num_windows, shuffle_buffer)
        loader.append({**run, "ratio": run["windows_per_s"] / model["windows_per_s"]})
    return {
        "shape": f"{args.data.get('num_frames')} frames of {args.data.get('size')} x {args.data.get('size')}, "
        f"{args.num_input_frames} -> {args.num_output_frames}, batch {args.per_device_train_batch_size}",
        "windows": num_windows,
        "shards": len(files),
        "shuffle_buffer": shuffle_buffer,
        "write_s": write_s,
        "model": model,
        "loader": loader,
    }


def loader_table(report: dict) -> str:
    """The report as a markdown table (:data:`LOADER_COLUMNS`): one row per loader run and one for the model."""
    lines = ["| " + " | ".join(LOADER_COLUMNS) + " |", "|" + "---|" * len(LOADER_COLUMNS)]
    for run in report["loader"]:
        lines.append(
            f"| streaming loader (decode, shuffle, augment, collate) | {run['num_workers']} | "
            f"{run['windows_per_s']:.1f} | {run['ratio']:.1f}x | {run['epoch_end_s']:.1f} |"
        )
    model = report["model"]
    lines.append(
        f"| model training step (fp32, batch {model['batch']}, {model['threads']} threads; "
        f"{model['step_s']:.3f} s) | - | {model['windows_per_s']:.1f} | 1.0x | - |"
    )
    return "\n".join(lines)
