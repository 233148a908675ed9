"""Training on a streamed split (``data.streaming: true``, training/streaming.py) in two CPU processes (gloo), on a
local dataset of 16 Parquet shards: every window once per epoch by exactly one process, another order each epoch,
an exact resume from a mid-epoch checkpoint; and the clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from bidirectional_conv_lstm.training.arguments import TrainingArguments
from bidirectional_conv_lstm.training.loop import train
from bidirectional_conv_lstm.training.streaming import streamed_train_batches

ROOT = Path(__file__).resolve().parents[1]
NUM_SHARDS, WINDOWS_PER_SHARD = 16, 4
NUM_WINDOWS = NUM_SHARDS * WINDOWS_PER_SHARD  # 64: 32 a process, 8 batches of 4 an epoch
HELD_OUT_IDS = 1000  # validation and test windows have ids from here


def _windows(first_id: int, count: int, rng: np.random.Generator) -> datasets.Dataset:
    """``count`` windows of 4 frames (1 x 16 x 16, uint8) with their ``id``."""
    frames = rng.integers(0, 256, size=(count, 4, 1, 16, 16), dtype=np.uint8)
    return datasets.Dataset.from_dict({"frames": list(frames), "id": list(range(first_id, first_id + count))})


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """A local dataset of 16 training shards and one validation and one test shard, laid out as
    ``push_to_hub`` lays them out (``data/<split>-0000N-of-0000M.parquet``)."""
    root = tmp_path_factory.mktemp("streamed") / "windows"
    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for shard in range(NUM_SHARDS):
        _windows(shard * WINDOWS_PER_SHARD, WINDOWS_PER_SHARD, rng).to_parquet(
            root / "data" / f"train-{shard:05d}-of-{NUM_SHARDS:05d}.parquet"
        )
    for offset, split in enumerate(("validation", "test")):
        _windows(HELD_OUT_IDS + 4 * offset, 4, rng).to_parquet(
            root / "data" / f"{split}-00000-of-00001.parquet"
        )
    return root


def _config(dataset: Path, output_dir: Path, **overrides) -> dict:
    config = {
        "output_dir": str(output_dir),
        "seed": 0,
        "dataset": str(dataset),
        "data": {"streaming": True, "shuffle_buffer": 8},
        "model": {"num_channels": 1, "patch_size": 4, "hidden_sizes": [4], "kernel_size": 3},
        "num_input_frames": 2,
        "num_output_frames": 2,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "learning_rate": 0.01,
        "warmup_steps": 1,
        "max_train_steps": 100,
        "num_train_epochs": 2,  # 16 steps: the length comes from the shards' Parquet footers
        "eval_steps": 100,
        "eval_num_samples": 4,
        "test_num_samples": 4,
        "checkpointing_steps": 10,  # step 10: two batches into the second epoch
        "logging_steps": 100,
        "num_threads": 1,
    }
    config.update(overrides)
    return config


def _launch(config: dict, report_dir: Path, port: int) -> list[dict]:
    """Train ``config`` in two CPU processes (tests/streaming_worker.py); each process's report."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
        str(ROOT / "tests" / "streaming_worker.py"),
        json.dumps(config),
        str(report_dir),
    ]
    report_dir.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    rank_lines = "\n".join(line for line in completed.stderr.splitlines() if line.startswith("[rank"))
    assert completed.returncode == 0, rank_lines[-6000:] + "\n...\n" + completed.stderr[-1500:]
    return [json.loads((report_dir / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def _training_batches(report: dict) -> list[list[int]]:
    return [batch for batch in report["batches"] if all(i < HELD_OUT_IDS for i in batch)]


def test_two_processes_see_each_window_once_an_epoch_and_resume_exactly(shards, tmp_path):
    """Two processes, two epochs of 8 batches each: every window once per epoch, by exactly one process, in
    another order the second epoch. The run resumed from its step-10 checkpoint (mid-epoch) trains on the same
    batches and ends with the same weights."""
    config = _config(shards, tmp_path / "run")
    reports = _launch(config, tmp_path / "reports", port=29541)
    assert reports[0]["steps"] == reports[1]["steps"] == 16
    assert reports[0]["weights"] == reports[1]["weights"]
    batches = [_training_batches(report) for report in reports]
    assert [len(b) for b in batches] == [16, 16]
    epochs = [[sum(b[8 * epoch : 8 * epoch + 8], []) for b in batches] for epoch in (0, 1)]
    for seen in epochs:
        assert sorted(seen[0] + seen[1]) == list(range(NUM_WINDOWS))  # once each, by one process only
        assert len(seen[0]) == len(seen[1]) == NUM_WINDOWS // 2
    assert epochs[0] != epochs[1]  # set_epoch: the second epoch reads in another order

    resumed_dir = tmp_path / "resumed"
    checkpoint = Path(config["output_dir"]) / "checkpoints" / "checkpoint-000010"
    shutil.copytree(checkpoint, resumed_dir / "checkpoints" / checkpoint.name)
    resumed_config = {**config, "output_dir": str(resumed_dir), "resume_from_checkpoint": "latest"}
    resumed = _launch(resumed_config, tmp_path / "resumed_reports", port=29542)
    assert resumed[0]["steps"] == resumed[1]["steps"] == 16
    for rank in (0, 1):
        # The second epoch read again from its start: its 2 trained batches skipped, then the same 6 batches.
        assert _training_batches(resumed[rank]) == batches[rank][8:]
        assert resumed[rank]["weights"] == reports[rank]["weights"]


def test_epoch_length_from_parquet_footers_or_the_option(shards, tmp_path):
    args = TrainingArguments(**_config(shards, tmp_path / "out"))
    assert streamed_train_batches(args, world_size=2) == NUM_WINDOWS // 4  # 16 batches over both processes
    given = TrainingArguments(
        **_config(shards, tmp_path / "out", data={"streaming": True, "num_train_windows": 40})
    )
    assert streamed_train_batches(given, world_size=2) == 10
    without_epochs = TrainingArguments(**_config(shards, tmp_path / "out", num_train_epochs=None))
    assert streamed_train_batches(without_epochs, world_size=2) is None  # max_train_steps is the length


def test_a_stream_without_a_length_is_refused_naming_the_option(shards, tmp_path):
    """JSON Lines files carry no row count: num_train_epochs needs data.num_train_windows, said before training."""
    folder = tmp_path / "jsonl"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for split, first in (("train", 0), ("validation", HELD_OUT_IDS), ("test", HELD_OUT_IDS + 4)):
        _windows(first, 8, rng).to_json(folder / f"{split}.jsonl")
    args = TrainingArguments(**_config(folder, tmp_path / "out"))
    with pytest.raises(ValueError, match=r"num_train_epochs=2 .* set data.num_train_windows"):
        train(args)
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("dataset", "data", "match"),
    [
        ("moving_mnist", {"streaming": True}, "dataset='moving_mnist' is generated in memory"),
        ("synthetic_rain", {"streaming": True}, "built by its own dataset kind, which reads no stream"),
        (None, {"streaming": "yes"}, "data.streaming must be true or false, got 'yes'"),
        (None, {"streaming": True, "shuffle_buffer": 0}, "data.shuffle_buffer must be a positive int, got 0"),
        (None, {"shuffle_buffer": 100}, "data.shuffle_buffer=100 applies only to a streamed training split"),
    ],
)
def test_streaming_options_are_checked_up_front(shards, tmp_path, dataset, data, match):
    config = _config(shards, tmp_path / "out", data=data)
    if dataset is not None:
        config["dataset"] = dataset
    if dataset == "synthetic_rain":
        config["model"] = {**config["model"], "rain_rate_transform": {"kind": "dbr"}}
    with pytest.raises((ValueError, TypeError), match=match):
        TrainingArguments(**config)


def test_a_folder_of_sequences_cannot_stream(tmp_path):
    (tmp_path / "sequences").mkdir()
    np.save(tmp_path / "sequences" / "a.npy", np.zeros((4, 16, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match="is a folder of .npy/.npz/PNG sequences"):
        TrainingArguments(**_config(tmp_path / "sequences", tmp_path / "out"))
