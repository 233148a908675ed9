"""Loaders for real frame data: the Moving MNIST test file, folders of arrays / PNGs, any datasets dataset."""

import datasets
import numpy as np
import pytest
from PIL import Image

from bidirectional_conv_lstm.data import (
    FramePredictionCollator,
    load_frames_dataset,
    load_frames_folder,
    load_moving_mnist_test_file,
)


def _frames(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# --- mnist_test_seq.npy ---------------------------------------------------------------------------------------


def test_moving_mnist_test_file_is_time_first_and_becomes_one_row_per_sequence(tmp_path):
    array = _frames((5, 7, 16, 16))  # (T, N, H, W), as mnist_test_seq.npy's (20, 10000, 64, 64)
    np.save(tmp_path / "mnist_test_seq.npy", array)
    dataset = load_moving_mnist_test_file(tmp_path / "mnist_test_seq.npy", cache_dir=tmp_path / "cache")
    assert len(dataset) == 7
    frames = dataset[:]["frames"]
    assert dataset.features["frames"].dtype == "uint8" and frames.shape == (7, 5, 1, 16, 16)
    np.testing.assert_array_equal(frames[:, :, 0], array.transpose(1, 0, 2, 3))
    # Second call: the cache.
    again = load_moving_mnist_test_file(tmp_path / "mnist_test_seq.npy", cache_dir=tmp_path / "cache")
    assert again.cache_files[0]["filename"] == dataset.cache_files[0]["filename"]


def test_moving_mnist_test_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_moving_mnist_test_file(tmp_path / "missing.npy", cache_dir=tmp_path)
    np.save(tmp_path / "floats.npy", np.zeros((5, 2, 8, 8), np.float32))
    with pytest.raises(TypeError, match="floats.npy.*uint8"):
        load_moving_mnist_test_file(tmp_path / "floats.npy", cache_dir=tmp_path)
    np.save(tmp_path / "flat.npy", np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="flat.npy.*shape"):
        load_moving_mnist_test_file(tmp_path / "flat.npy", cache_dir=tmp_path)
    np.save(tmp_path / "empty.npy", np.zeros((20, 0, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="empty.npy.*no sequences"):
        load_moving_mnist_test_file(tmp_path / "empty.npy", cache_dir=tmp_path)
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match="junk.npy"):
        load_moving_mnist_test_file(tmp_path / "junk.npy", cache_dir=tmp_path)


# --- folders of arrays and PNG frames ---------------------------------------------------------------------------


def _write_png_sequence(folder, frames, mode="L"):
    folder.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame, mode=mode).save(folder / f"frame_{index}.png")


def test_frames_folder_reads_npy_npz_and_png_sequences(tmp_path):
    root = tmp_path / "sequences"
    root.mkdir()
    grey = _frames((12, 16, 16), seed=1)  # 12 frames: frame_10 must come after frame_9
    np.save(root / "a.npy", _frames((12, 16, 16), seed=2))
    np.savez(root / "b.npz", frames=_frames((12, 1, 16, 16), seed=3), extra=np.zeros(2))
    _write_png_sequence(root / "c", grey)
    (root / "README.txt").write_text("ignored")
    dataset = load_frames_folder(root, cache_dir=tmp_path / "cache")
    assert dataset["name"] == ["a.npy", "b.npz", "c"]
    frames = dataset[:]["frames"]
    assert dataset.features["frames"].dtype == "uint8" and frames.shape == (3, 12, 1, 16, 16)
    np.testing.assert_array_equal(frames[0, :, 0], np.load(root / "a.npy"))
    np.testing.assert_array_equal(frames[2, :, 0], grey)  # natural order of frame names


def test_frames_folder_rgb_png_float_arrays_and_unequal_lengths(tmp_path):
    root = tmp_path / "rgb"
    root.mkdir()
    rgb = _frames((3, 8, 8, 3))
    _write_png_sequence(root / "clip", rgb, mode="RGB")
    np.save(root / "long.npy", np.full((5, 3, 8, 8), 0.5, dtype=np.float64))
    dataset = load_frames_folder(root, cache_dir=tmp_path / "cache")
    clip, long = dataset[0]["frames"], dataset[1]["frames"]
    # A float file makes the whole folder float32 in [0, 1]; lengths may differ.
    assert clip.dtype == np.float32 and clip.shape == (3, 3, 8, 8) and long.shape == (5, 3, 8, 8)
    np.testing.assert_allclose(clip, rgb.transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
    np.testing.assert_allclose(long, 0.5)


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda root: (root / "empty_clip").mkdir(), ValueError, "empty_clip.*PNG"),
        (
            lambda root: np.save(root / "wide.npy", np.zeros((2, 3, 4, 5, 6), np.uint8)),
            ValueError,
            "wide.npy.*shape",
        ),
        (lambda root: np.save(root / "mask.npy", np.zeros((2, 8, 8), bool)), TypeError, "mask.npy.*dtype"),
        (
            lambda root: np.save(root / "big.npy", np.full((2, 8, 8), 300, np.int32)),
            ValueError,
            "big.npy.*255",
        ),
        (lambda root: np.save(root / "hot.npy", np.full((2, 8, 8), 1.5)), ValueError, r"hot.npy.*\[0, 1\]"),
        (lambda root: np.save(root / "nan.npy", np.full((2, 8, 8), np.nan)), ValueError, "nan.npy.*NaN"),
        (
            lambda root: np.savez(root / "two.npz", x=np.zeros((2, 8, 8)), y=np.zeros((2, 8, 8))),
            ValueError,
            "two.npz",
        ),
        (
            lambda root: np.save(root / "none.npy", np.zeros((0, 8, 8), np.uint8)),
            ValueError,
            "none.npy.*one frame",
        ),
    ],
)
def test_frames_folder_errors_name_the_file(tmp_path, make, error, words):
    root = tmp_path / "root"
    root.mkdir()
    np.save(root / "0_good.npy", np.zeros((2, 8, 8), np.uint8))
    make(root)
    with pytest.raises(error, match=words):
        load_frames_folder(root, cache_dir=tmp_path / "cache")


def test_frames_folder_without_sequences(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no arrays here")
    with pytest.raises(ValueError, match="empty.*no sequences"):
        load_frames_folder(tmp_path / "empty", cache_dir=tmp_path / "cache")


def test_frames_folder_unequal_frame_sizes_name_the_file(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    np.save(root / "a.npy", np.zeros((2, 8, 8), np.uint8))
    np.save(root / "b.npy", np.zeros((2, 8, 9), np.uint8))
    with pytest.raises(ValueError, match="b.npy"):
        load_frames_folder(root, cache_dir=tmp_path / "cache")
    clip = root / "clip"
    clip.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(clip / "0.png")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(clip / "1.png")
    (root / "b.npy").unlink()
    with pytest.raises(ValueError, match="1.png"):
        load_frames_folder(root, cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_frames_folder(tmp_path / "nowhere", cache_dir=tmp_path / "cache")


def test_unsupported_png_mode_names_the_file(tmp_path):
    clip = tmp_path / "root" / "clip"
    clip.parent.mkdir()
    _write_png_sequence(clip, _frames((2, 8, 8, 4)), mode="RGBA")
    with pytest.raises(ValueError, match="frame_0.png.*RGBA"):
        load_frames_folder(clip.parent, cache_dir=tmp_path / "cache")


# --- any datasets dataset ------------------------------------------------------------------------------------


@pytest.fixture
def saved_dataset(tmp_path):
    frames = _frames((6, 4, 1, 8, 8))
    features = datasets.Features(
        {"video": datasets.Array4D(shape=(4, 1, 8, 8), dtype="uint8"), "label": datasets.Value("int64")}
    )
    dataset = datasets.Dataset.from_dict({"video": list(frames), "label": list(range(6))}, features=features)
    datasets.DatasetDict({"train": dataset, "test": dataset.select(range(2))}).save_to_disk(
        tmp_path / "saved"
    )
    dataset.to_parquet(tmp_path / "clips.parquet")
    return tmp_path, frames


def test_frames_dataset_from_a_saved_folder(saved_dataset):
    root, frames = saved_dataset
    dataset = load_frames_dataset(root / "saved", split="train", frames_column="video")
    assert isinstance(dataset, datasets.Dataset) and "frames" in dataset.column_names
    loaded = dataset[:]["frames"]
    assert dataset.features["frames"].dtype == "uint8"
    np.testing.assert_array_equal(loaded, frames)
    with pytest.raises(ValueError, match="validation.*available splits"):
        load_frames_dataset(root / "saved", split="validation", frames_column="video")
    with pytest.raises(ValueError, match="'frames'.*columns"):
        load_frames_dataset(root / "saved", split="train")
    with pytest.raises(TypeError, match="label"):
        load_frames_dataset(root / "saved", split="train", frames_column="label")


def test_frames_dataset_streaming_from_data_files(saved_dataset):
    root, frames = saved_dataset
    stream = load_frames_dataset(
        "parquet",
        split="train",
        data_files=str(root / "clips.parquet"),
        streaming=True,
        frames_column="video",
        cache_dir=str(root / "hf_cache"),
    )
    assert isinstance(stream, datasets.IterableDataset)
    rows = list(stream)
    assert len(rows) == 6
    np.testing.assert_array_equal(np.stack([row["frames"] for row in rows]), frames)
    batch = FramePredictionCollator(2, 2)(rows[:3])
    assert batch["pixel_values"].shape == (3, 2, 1, 8, 8)

    saved_stream = load_frames_dataset(root / "saved", split="test", streaming=True, frames_column="video")
    assert isinstance(saved_stream, datasets.IterableDataset)
    assert len(list(saved_stream)) == 2
