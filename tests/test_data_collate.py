"""The batch collator / transform, DataLoader workers, streaming and sharding, and mean_pixel_value."""

import datasets
import numpy as np
import pytest
import torch
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader

from bidirectional_conv_lstm.data import (
    FramePredictionCollator,
    frames_to_float,
    load_moving_mnist,
    mean_pixel_value,
)


@pytest.fixture(scope="module")
def moving_mnist(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return load_moving_mnist(
        cache_dir=cache, num_train=8, num_validation=2, num_test=4, num_frames=6, image_size=32
    )


def test_collator_splits_and_scales(moving_mnist):
    collator = FramePredictionCollator(num_input_frames=2, num_output_frames=3)
    rows = [moving_mnist["train"][i] for i in range(4)]
    batch = collator(rows)
    assert set(batch) == {"pixel_values", "labels"}
    assert batch["pixel_values"].shape == (4, 2, 1, 32, 32) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].shape == (4, 3, 1, 32, 32) and batch["labels"].dtype == torch.float32
    raw = np.stack([row["frames"] for row in rows]).astype(np.float32) / 255
    np.testing.assert_allclose(batch["pixel_values"].numpy(), raw[:, :2])
    np.testing.assert_allclose(batch["labels"].numpy(), raw[:, 2:5])  # the 6th frame is cut
    assert batch["labels"].min() >= 0 and batch["labels"].max() <= 1 and batch["labels"].max() > 0


def test_collator_accepts_every_format_of_the_same_frames(moving_mnist):
    collator = FramePredictionCollator(3, 3)
    expected = collator([moving_mnist["test"][0]])["labels"]
    as_torch = moving_mnist["test"].with_format("torch")[0]  # datasets' torch format gives int64
    assert as_torch["frames"].dtype == torch.int64
    as_lists = moving_mnist["test"].with_format(None)[0]
    as_float = {"frames": moving_mnist["test"][0]["frames"].astype(np.float64) / 255}
    for example in (as_torch, as_lists, as_float):
        torch.testing.assert_close(collator([example])["labels"], expected)
    no_channel = {"frames": moving_mnist["test"][0]["frames"][:, 0]}  # (T, H, W)
    torch.testing.assert_close(collator([no_channel])["labels"], expected)


def test_collator_without_output_frames_gives_no_labels():
    batch = FramePredictionCollator(4, 0)([{"frames": np.zeros((4, 8, 8), np.uint8)}])
    assert set(batch) == {"pixel_values"}


def test_transform_path(moving_mnist):
    collator = FramePredictionCollator(2, 4)
    transformed = moving_mnist["train"].with_transform(collator.transform)
    row = transformed[0]
    assert set(row) == {"pixel_values", "labels"}
    assert row["pixel_values"].shape == (2, 1, 32, 32) and row["labels"].shape == (4, 1, 32, 32)
    batch = next(iter(DataLoader(transformed, batch_size=3)))
    torch.testing.assert_close(
        batch["labels"], collator([moving_mnist["train"][i] for i in range(3)])["labels"]
    )


def test_dataloader_workers_give_the_same_batches(moving_mnist):
    collator = FramePredictionCollator(3, 3)
    single = list(DataLoader(moving_mnist["train"], batch_size=4, collate_fn=collator))
    workers = list(DataLoader(moving_mnist["train"], batch_size=4, collate_fn=collator, num_workers=2))
    assert len(single) == len(workers) == 2
    for a, b in zip(single, workers):
        torch.testing.assert_close(a["pixel_values"], b["pixel_values"])
        torch.testing.assert_close(a["labels"], b["labels"])


def test_streaming_dataset_sharded_across_processes(moving_mnist):
    collator = FramePredictionCollator(3, 3)
    stream = moving_mnist["train"].to_iterable_dataset(num_shards=4)  # our datasets convert as they come
    seen = []
    for rank in range(2):
        shard = split_dataset_by_node(stream, rank=rank, world_size=2)
        batches = list(DataLoader(shard, batch_size=2, collate_fn=collator))
        assert all(b["pixel_values"].shape[1:] == (3, 1, 32, 32) for b in batches)
        seen.append(torch.cat([b["labels"] for b in batches]))
    assert len(seen[0]) == len(seen[1]) == 4
    everything = collator([moving_mnist["train"][i] for i in range(8)])["labels"]
    together = torch.cat(seen)
    # The two processes see disjoint halves that together are the whole split.
    assert sorted(together.sum(dim=(1, 2, 3, 4)).tolist()) == pytest.approx(
        sorted(everything.sum(dim=(1, 2, 3, 4)).tolist())
    )

    map_shard = split_dataset_by_node(moving_mnist["train"], rank=1, world_size=2)
    assert isinstance(map_shard, datasets.Dataset) and len(map_shard) == 4
    assert collator([map_shard[0]])["labels"].shape == (1, 3, 1, 32, 32)


@pytest.mark.parametrize(
    ("frames", "error", "words"),
    [
        (np.zeros((4, 8, 8), np.uint8), ValueError, "frames\\[0\\] has 4 frames.*6"),
        (np.full((6, 8, 8), 300, np.int64), ValueError, "255"),
        (np.full((6, 8, 8), 1.2, np.float32), ValueError, r"\[0, 1\]"),
        (np.full((6, 8, 8), np.nan, np.float32), ValueError, "NaN"),
        (np.zeros((6, 8, 8), bool), TypeError, "bool"),
        (np.zeros((6,), np.uint8), ValueError, "shape"),
    ],
)
def test_bad_frames_give_clear_errors(frames, error, words):
    with pytest.raises(error, match=words):
        FramePredictionCollator(3, 3)([{"frames": frames}])


def test_collator_argument_and_batch_errors():
    with pytest.raises(ValueError, match="num_input_frames"):
        FramePredictionCollator(0, 3)
    with pytest.raises(TypeError, match="num_output_frames"):
        FramePredictionCollator(3, 2.0)
    collator = FramePredictionCollator(1, 1)
    with pytest.raises(ValueError, match="'frames' key"):
        collator([{"video": np.zeros((2, 8, 8), np.uint8)}])
    with pytest.raises(ValueError, match=r"frames\[1\].*\(1, 8, 9\)"):
        collator([{"frames": np.zeros((2, 8, 8), np.uint8)}, {"frames": np.zeros((2, 8, 9), np.uint8)}])
    with pytest.raises(ValueError, match="empty"):
        collator([])


def test_frames_to_float_keeps_values():
    frames = np.array([[[0, 51], [102, 255]]], dtype=np.uint8)  # (T=1, H=2, W=2)
    result = frames_to_float(frames)
    assert result.shape == (1, 1, 2, 2)
    torch.testing.assert_close(result[0, 0], torch.tensor([[0.0, 0.2], [0.4, 1.0]]))


def test_mean_pixel_value_map_style_and_streaming(moving_mnist):
    train = moving_mnist["train"]
    expected = train[:]["frames"].astype(np.float64).mean() / 255
    assert mean_pixel_value(train, batch_size=3) == pytest.approx(expected, rel=1e-9)
    assert mean_pixel_value(train.to_iterable_dataset()) == pytest.approx(expected, rel=1e-6)
    first_two = train[:2]["frames"].astype(np.float64).mean() / 255
    assert mean_pixel_value(train, max_sequences=2) == pytest.approx(first_two, rel=1e-9)
    assert 0 < expected < 0.5
    with pytest.raises(ValueError, match="video"):
        mean_pixel_value(train, frames_column="video")
