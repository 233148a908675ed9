"""Rain-rate windows already cut (``data.windows``: a folder of Parquet shards as convlstm-push-dataset pushes them,
a save_to_disk folder) train a radar run map-style and streamed, and options that only build windows are refused
beside them before any data is read."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from bidirectional_conv_lstm.data import SPLITS
from bidirectional_conv_lstm.nowcasting.data import load_rain_datasets
from bidirectional_conv_lstm.training.arguments import TrainingArguments
from bidirectional_conv_lstm.training.loop import train
from bidirectional_conv_lstm.training.streaming import streamed_train_batches
from test_nowcast_training import radar_arguments, radar_stacks  # noqa: F401 (the fixture)

TRAIN_SHARDS = 2
TEST_WINDOWS = 3


@pytest.fixture(scope="module")
def windows_folder(radar_stacks, tmp_path_factory) -> Path:  # noqa: F811 (the imported fixture)
    """The radar windows of test_nowcast_training's stacks, written as push_to_hub lays out its Parquet shards
    (``data/<split>-0000N-of-0000M.parquet``), with a card that records their events as a push does."""
    root = tmp_path_factory.mktemp("radar_windows")
    args = TrainingArguments(**radar_arguments(radar_stacks, root / "cache"))
    built = load_rain_datasets(args)
    (root / "data").mkdir()
    for split in SPLITS:
        count = TRAIN_SHARDS if split == "train" else 1
        # A few test windows: S-PROG (with pysteps) cannot score some of these tiny tiles' later windows.
        table = built[split].select(range(TEST_WINDOWS)) if split == "test" else built[split]
        for index in range(count):
            shard = table.shard(count, index, contiguous=True)
            shard.to_parquet(root / "data" / f"{split}-{index:05d}-of-{count:05d}.parquet")
    events = json.dumps({"events": built["info"]["events"]})
    (root / "README.md").write_text(f"---\nrain_windows: {events}\n---\n# radar windows\n")
    return root


def _rows(folder: Path, split: str) -> int:
    return sum(pq.read_metadata(file).num_rows for file in (folder / "data").glob(f"{split}-*.parquet"))


def _run(folder, output_dir: Path, **data) -> dict:
    values = radar_arguments([], None)
    values.update(
        data={"windows": str(folder), **data},
        output_dir=str(output_dir),
        per_device_train_batch_size=2,
        per_device_eval_batch_size=4,
        max_train_steps=2,
        warmup_steps=0,
        eval_steps=2,
        eval_num_samples=4,
        checkpointing_steps=100,
        num_threads=1,
    )
    return values


@pytest.mark.parametrize("streaming", [False, True])
def test_a_radar_run_trains_on_pushed_windows_map_style_and_streamed(windows_folder, tmp_path, streaming):
    data = {"streaming": True, "shuffle_buffer": 4} if streaming else {}
    args = TrainingArguments(**_run(windows_folder, tmp_path / "out", **data))
    results = train(args)
    assert results["global_step"] == 2
    # Every test window of the folder is scored (test_num_samples is unset), and nothing else.
    assert results["test"]["num_windows"] == _rows(windows_folder, "test")
    model = results["model"]
    assert model.config.time_step == 5.0  # the card's events: their time step and pixel size reach the config
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"read as they were pushed, from `{windows_folder}`" in card
    assert "| east | test |" in card  # the events the folder's card records
    if streaming:
        assert isinstance(load_rain_datasets(args)["train"], datasets.IterableDataset)
        epochs = TrainingArguments(
            **_run(windows_folder, tmp_path / "o2", streaming=True, num_train_windows=6)
        )
        assert streamed_train_batches(epochs, world_size=1) is None  # no num_train_epochs: max_train_steps
        with_epochs = TrainingArguments(
            **{**_run(windows_folder, tmp_path / "o2", streaming=True), "num_train_epochs": 1}
        )
        # The epoch's length comes from the shards' Parquet footers.
        assert streamed_train_batches(with_epochs, world_size=1) == _rows(windows_folder, "train") // 2


def test_a_save_to_disk_folder_without_a_card_trains_and_describes_itself_by_its_path(
    windows_folder, tmp_path
):
    splits = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_parquet(
                [str(f) for f in sorted((windows_folder / "data").glob(f"{split}-*.parquet"))]
            )
            for split in SPLITS
        }
    )
    splits.save_to_disk(str(tmp_path / "saved"))
    args = TrainingArguments(**_run(tmp_path / "saved", tmp_path / "out"))
    loaded = load_rain_datasets(args)
    assert loaded["info"] == {"dataset": "radar", "windows": str(tmp_path / "saved")}
    assert {split: len(loaded[split]) for split in SPLITS} == {s: _rows(windows_folder, s) for s in SPLITS}
    results = train(args)
    assert results["model"].config.time_step is None  # nothing says the windows' clock
    assert results["test"]["num_windows"] == _rows(windows_folder, "test")


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (
            {"sources": [{"name": "a", "path": "a.npy"}]},
            ValueError,
            r"data.windows=.* data.sources only applies",
        ),
        ({"root": "../shared/radar"}, ValueError, r"data.windows=.* data.root only applies when building"),
        ({"test_events": ["east"]}, ValueError, r"data.windows=.* data.test_events only applies"),
        ({"tile_size": 16}, ValueError, r"data.windows=.* data.tile_size only applies"),
        ({"windows": 3}, ValueError, "data.windows must be a Hub dataset id or a folder"),
        ({"eval_context": -1}, ValueError, "data.eval_context"),
        ({"shuffle_buffer": 4}, ValueError, "applies only to a streamed training split"),
    ],
)
def test_building_options_beside_windows_fail_before_any_data_is_read(tmp_path, data, error, match):
    values = _run(tmp_path / "never_read", tmp_path / "out", **data)
    with pytest.raises(error, match=match):
        TrainingArguments(**values)
    assert not (tmp_path / "out").exists()


def test_built_rain_windows_still_refuse_to_stream(radar_stacks, tmp_path):  # noqa: F811 (the fixture)
    values = radar_arguments(radar_stacks, tmp_path)
    values["data"]["streaming"] = True
    with pytest.raises(ValueError, match="built by its own dataset kind, which reads no stream"):
        TrainingArguments(**values)
