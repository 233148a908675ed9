"""Moving MNIST generator, digit pools and the on-disk cache."""

import gzip

import datasets
import numpy as np
import pytest

from bidirectional_conv_lstm.data import (
    MovingMNISTConfig,
    generate_moving_mnist,
    iter_moving_mnist,
    load_digit_pools,
    load_moving_mnist,
    moving_mnist_trajectories,
    read_idx_images,
)
from bidirectional_conv_lstm.data import moving_mnist as moving_mnist_module

TINY = {"num_train": 6, "num_validation": 3, "num_test": 4, "num_frames": 4}


def _pattern_digits(count=3, size=28, seed=1):
    """Random-valued 'digits', so every pixel's position matters."""
    return np.random.default_rng(seed).integers(1, 256, size=(count, size, size), dtype=np.uint8)


def _write_idx(path, images):
    header = b"".join(int(v).to_bytes(4, "big") for v in (2051, *images.shape))
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + images.tobytes())


def test_generate_shapes_dtype_and_determinism():
    digits = _pattern_digits()
    first = generate_moving_mnist(5, digits, num_frames=7, image_size=40, digit_size=12, seed=3)
    again = generate_moving_mnist(5, digits, num_frames=7, image_size=40, digit_size=12, seed=3)
    other = generate_moving_mnist(5, digits, num_frames=7, image_size=40, digit_size=12, seed=4)
    assert first.shape == (5, 7, 1, 40, 40)
    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.max() > 0


def test_chunking_does_not_change_the_data():
    digits = _pattern_digits()
    whole = generate_moving_mnist(11, digits, num_frames=5, seed=0)
    chunks = list(iter_moving_mnist(11, digits, num_frames=5, seed=0, chunk_size=4))
    assert [len(c) for c in chunks] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def _openstl_trajectory(x, y, theta, num_frames, free_range, step_length):
    """OpenSTL's scalar get_random_trajectory, given its three random draws."""
    v_y, v_x = np.sin(theta), np.cos(theta)
    bounce_x = bounce_y = 1
    tops, lefts = [], []
    for _ in range(num_frames):
        y += bounce_y * v_y * step_length
        x += bounce_x * v_x * step_length
        if x <= 0:
            x, bounce_x = 0, -bounce_x
        if x >= 1.0:
            x, bounce_x = 1.0, -bounce_x
        if y <= 0:
            y, bounce_y = 0, -bounce_y
        if y >= 1.0:
            y, bounce_y = 1.0, -bounce_y
        tops.append(int(free_range * y))
        lefts.append(int(free_range * x))
    return tops, lefts


@pytest.mark.parametrize("speed", [0.1, 0.37])
def test_trajectories_follow_the_openstl_algorithm(speed):
    tops, lefts = moving_mnist_trajectories(20, num_frames=30, num_digits=2, speed=speed, seed=5)
    rng = np.random.default_rng(5)
    x, y, theta = rng.random((20, 2)), rng.random((20, 2)), rng.random((20, 2)) * 2 * np.pi
    for n in range(20):
        for d in range(2):
            expected = _openstl_trajectory(x[n, d], y[n, d], theta[n, d], 30, 36, speed)
            assert tops[n, d].tolist() == expected[0]
            assert lefts[n, d].tolist() == expected[1]


def test_digits_stay_inside_the_canvas_and_bounce_off_the_borders():
    tops, lefts = moving_mnist_trajectories(200, num_frames=20, seed=0)
    free_range = 64 - 28
    assert tops.min() >= 0 and lefts.min() >= 0
    assert tops.max() <= free_range and lefts.max() <= free_range
    bounced = np.zeros(tops.shape[:2], dtype=bool)
    for track_index in np.ndindex(tops.shape[:2]):
        for positions in (tops[track_index], lefts[track_index]):
            steps = np.diff(positions)
            moving = np.flatnonzero(steps)
            for before, after in zip(moving[:-1], moving[1:]):
                if np.sign(steps[before]) != np.sign(steps[after]):
                    # A reversal happens only at a border: 0 or the free range.
                    assert positions[before + 1] in (0, free_range)
                    bounced[track_index] = True
    # 20 steps of 0.1 along the larger of |cos|, |sin| (>= 0.707) cover more than the free range: every digit bounces.
    assert bounced.all()


def test_frames_are_digits_pasted_at_the_trajectory_combined_by_maximum():
    digit = _pattern_digits(count=1, size=10)
    frames = generate_moving_mnist(6, digit, num_frames=8, image_size=24, digit_size=10, num_digits=2, seed=9)
    tops, lefts = moving_mnist_trajectories(
        6, num_frames=8, image_size=24, digit_size=10, num_digits=2, seed=9
    )
    expected = np.zeros_like(frames)
    for n in range(6):
        for t in range(8):
            for d in range(2):
                top, left = tops[n, d, t], lefts[n, d, t]
                window = expected[n, t, 0, top : top + 10, left : left + 10]
                np.maximum(window, digit[0], out=window)
    np.testing.assert_array_equal(frames, expected)


def test_digits_of_another_size_are_resized():
    frames = generate_moving_mnist(
        2, _pattern_digits(size=28), num_frames=3, image_size=32, digit_size=14, seed=0
    )
    assert frames.shape == (2, 3, 1, 32, 32)
    # One 14x14 digit per slot: at most 2 * 196 lit pixels per frame.
    assert 0 < (frames[0, 0, 0] > 0).sum() <= 2 * 14 * 14


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"num_digits": 0}, ValueError, "num_digits"),
        ({"num_frames": 2.5}, TypeError, "num_frames"),
        ({"image_size": 20, "digit_size": 28}, ValueError, "image_size"),
        ({"speed": -0.1}, ValueError, "speed"),
        ({"speed": float("nan")}, ValueError, "speed"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_generation_arguments_name_the_argument(kwargs, error, words):
    with pytest.raises(error, match=words):
        generate_moving_mnist(2, _pattern_digits(), **kwargs)
    with pytest.raises(error, match=words):
        MovingMNISTConfig(**kwargs)


def test_bad_digit_pools_are_rejected():
    with pytest.raises(ValueError, match="digits"):
        generate_moving_mnist(2, np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        generate_moving_mnist(2, np.full((3, 28, 28), 0.5))


def test_bundled_pools_are_disjoint_and_stratified_in_size():
    pools = load_digit_pools()
    assert {split: len(pool) for split, pool in pools.items()} == {
        "train": 3500,
        "validation": 500,
        "test": 1000,
    }
    assert all(pool.dtype == np.uint8 and pool.shape[1:] == (28, 28) for pool in pools.values())
    as_bytes = {split: {image.tobytes() for image in pool} for split, pool in pools.items()}
    assert not as_bytes["train"] & as_bytes["test"]
    assert not as_bytes["train"] & as_bytes["validation"]
    assert not as_bytes["validation"] & as_bytes["test"]


def test_generated_splits_draw_from_their_own_pool(tmp_path):
    # One static digit per sequence: somewhere in the frame sits one whole digit of the split's own pool.
    dataset = load_moving_mnist(
        cache_dir=tmp_path, num_digits=1, speed=0.0, num_frames=1, num_train=3, num_validation=3, num_test=3
    )
    pools = {split: {image.tobytes() for image in pool} for split, pool in load_digit_pools().items()}
    for split in ("train", "validation", "test"):
        for frames in dataset[split]["frames"]:
            canvas = frames[0, 0].astype(np.uint8)
            crops = {
                canvas[top : top + 28, left : left + 28].tobytes() for top in range(37) for left in range(37)
            }
            assert crops & pools[split]
            for other in {"train", "validation", "test"} - {split}:
                assert not crops & pools[other]


def test_load_moving_mnist_builds_a_datasetdict_and_hits_the_cache(tmp_path, monkeypatch):
    first = load_moving_mnist(cache_dir=tmp_path, **TINY)
    assert isinstance(first, datasets.DatasetDict)
    assert {split: len(first[split]) for split in first} == {"train": 6, "validation": 3, "test": 4}
    feature = first["train"].features["frames"]
    assert isinstance(feature, datasets.Array4D)
    assert feature.shape == (4, 1, 64, 64) and feature.dtype == "uint8"
    sample = first["test"][0]["frames"]
    assert sample.shape == (4, 1, 64, 64) and sample.min() >= 0 and sample.max() <= 255
    assert first["test"].with_format("numpy", dtype=np.uint8)[0]["frames"].dtype == np.uint8
    folders = list((tmp_path / "moving_mnist").iterdir())
    assert len(folders) == 1 and (folders[0] / "dataset_dict.json").is_file()

    def fail(*args, **kwargs):
        raise AssertionError("the second call must load the cache, not generate")

    monkeypatch.setattr(moving_mnist_module, "iter_moving_mnist", fail)
    second = load_moving_mnist(MovingMNISTConfig(**TINY), cache_dir=tmp_path)
    np.testing.assert_array_equal(second["train"][:]["frames"], first["train"][:]["frames"])
    assert second["train"].cache_files[0]["filename"].startswith(str(folders[0]))
    monkeypatch.undo()

    # Other parameters: another folder, other data; the splits differ from each other.
    reseeded = load_moving_mnist(cache_dir=tmp_path, seed=1, **TINY)
    assert len(list((tmp_path / "moving_mnist").iterdir())) == 2
    assert not np.array_equal(reseeded["train"][:]["frames"], first["train"][:]["frames"])
    assert not np.array_equal(first["train"][:3]["frames"], first["validation"][:3]["frames"])


def test_default_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BCL_CACHE", str(tmp_path / "env_cache"))
    load_moving_mnist(num_train=1, num_validation=1, num_test=1, num_frames=2)
    assert any((tmp_path / "env_cache" / "moving_mnist").iterdir())


def test_load_moving_mnist_rejects_unknown_parameters(tmp_path):
    with pytest.raises(TypeError, match="num_trian"):
        load_moving_mnist(cache_dir=tmp_path, num_trian=5)
    with pytest.raises(TypeError, match="config"):
        load_moving_mnist({"num_train": 5}, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="num_validation"):
        load_moving_mnist(cache_dir=tmp_path, num_validation=0)
    assert not (tmp_path / "moving_mnist").exists()  # checked before any work


def test_idx_digit_source(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    single = tmp_path / "train-images-idx3-ubyte.gz"
    _write_idx(single, images)
    np.testing.assert_array_equal(read_idx_images(single), images)
    pools = load_digit_pools(single)
    assert [len(pools[s]) for s in ("train", "validation", "test")] == [28, 4, 8]
    assert sorted(np.concatenate(list(pools.values())).reshape(40, -1).tolist()) == sorted(
        images.reshape(40, -1).tolist()
    )

    test_images = np.random.default_rng(1).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", test_images)
    pools = load_digit_pools(tmp_path)
    np.testing.assert_array_equal(pools["test"], test_images)
    assert len(pools["train"]) + len(pools["validation"]) == 40

    dataset = load_moving_mnist(cache_dir=tmp_path / "cache", digit_source=tmp_path, **TINY)
    assert dataset["test"][0]["frames"].shape == (4, 1, 64, 64)


def test_missing_or_bad_digit_sources_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="bundled"):
        load_moving_mnist(cache_dir=tmp_path, digit_source=tmp_path / "nowhere", **TINY)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_digit_pools(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes((2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(3 + 8))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte"):
        read_idx_images(labels)
    with pytest.raises(ValueError, match="digit_pool_fractions"):
        MovingMNISTConfig(digit_pool_fractions=(0.8, 0.2, 0.2))
