"""The rain-rate collator: model-space batches, the no-data fill and mask, input formats, augmentation, errors."""

import numpy as np
import pytest
import torch

from bidirectional_conv_lstm.data import RainRateCollator, load_synthetic_rain, rain_rate_and_mask
from bidirectional_conv_lstm.data.rain.storage import NO_DATA, decode_rain_rate, encode_rain_rate
from bidirectional_conv_lstm.models.convlstm.rain_rate import RainRateTransform


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return load_synthetic_rain(
        cache_dir=cache, num_train=4, num_validation=1, num_test=1, num_frames=6, size=16, wet_fraction=0.4
    )


def _window_with_holes(seed=0, frames=5, size=8):
    """A stored (T, 1, H, W) window (int64, as datasets reads it) with no-data pixels, and its mm/h + mask."""
    rng = np.random.default_rng(seed)
    rain = np.exp(rng.normal(0, 1.5, (frames, 1, size, size))) * (rng.random((frames, 1, size, size)) < 0.5)
    valid = rng.random(rain.shape) > 0.2
    stored = encode_rain_rate(rain, valid).astype(np.int64)
    decoded, _ = decode_rain_rate(stored)
    return stored, decoded, valid


def test_batches_are_the_transformed_rain_rate(synthetic):
    transform = RainRateTransform("dbr")
    collator = RainRateCollator(2, 3, transform)
    rows = [synthetic["train"][i] for i in range(3)]
    batch = collator(rows)
    assert set(batch) == {"pixel_values", "labels", "labels_mask", "rain_rate", "target_motion"}
    assert batch["pixel_values"].shape == (3, 2, 1, 16, 16) and batch["pixel_values"].dtype == torch.float32
    # the synthetic rain's own motion, as stored
    np.testing.assert_array_equal(batch["target_motion"].numpy(), np.stack([row["motion"] for row in rows]))
    assert batch["labels"].shape == (3, 3, 1, 16, 16) and batch["labels"].dtype == torch.float32
    assert batch["labels_mask"].shape == (3, 3, 1, 16, 16) and batch["labels_mask"].dtype == torch.bool
    assert batch["rain_rate"].shape == (3, 5, 1, 16, 16) and batch["rain_rate"].dtype == torch.float32
    rain, _ = decode_rain_rate(np.stack([row["rain_rate"] for row in rows]))
    np.testing.assert_allclose(batch["rain_rate"].numpy(), rain[:, :5])  # the 6th frame is cut
    model_space = transform.forward(rain)
    np.testing.assert_allclose(batch["pixel_values"].numpy(), model_space[:, :2], rtol=1e-6)
    np.testing.assert_allclose(batch["labels"].numpy(), model_space[:, 2:5], rtol=1e-6)
    assert batch["labels_mask"].all()  # the synthetic rain has no no-data pixels
    assert float(batch["labels"].min()) >= 0 and float(batch["labels"].max()) < 1.2
    # the labels map back to the rain rate (above the threshold; lighter rain is none)
    back = transform.inverse(batch["labels"]).numpy()
    truth = rain[:, 2:5]
    wet = truth >= 0.1
    np.testing.assert_allclose(back[wet], truth[wet], rtol=1e-5)
    assert np.all(back[~wet] == 0)


@pytest.mark.parametrize("kind", ["dbr", "log1p", "linear"])
def test_no_data_pixels_are_no_rain_in_model_space_and_masked(kind):
    transform = RainRateTransform(kind)
    stored, decoded, valid = _window_with_holes()
    batch = RainRateCollator(2, 3, transform)([{"rain_rate": stored}])
    values = torch.cat([batch["pixel_values"], batch["labels"]], 1)[0].numpy()
    assert np.all(values[~valid] == np.float32(transform.no_rain_value))
    np.testing.assert_allclose(values[valid], transform.forward(decoded[valid]), rtol=1e-6)
    np.testing.assert_array_equal(batch["labels_mask"][0].numpy(), valid[2:])
    rain_rate = batch["rain_rate"][0].numpy()
    assert np.all(np.isnan(rain_rate[~valid]))
    np.testing.assert_allclose(rain_rate[valid], decoded[valid])


def test_every_input_format_gives_the_same_batch():
    stored, decoded, valid = _window_with_holes(1)
    collator = RainRateCollator(3, 2, {"kind": "log1p"})  # a transform dict, as a config stores it
    reference = collator([{"rain_rate": stored}])
    as_mm_h = np.where(valid, decoded, np.nan)
    for window in (
        stored.astype(np.uint16),
        torch.from_numpy(stored),
        stored[:, 0],  # (T, H, W)
        stored.tolist(),
        as_mm_h,  # float mm/h, NaN = no data
        torch.from_numpy(as_mm_h).double(),
    ):
        batch = collator([{"rain_rate": window}])
        for key, value in reference.items():
            torch.testing.assert_close(batch[key], value, equal_nan=True)
    rain, mask = rain_rate_and_mask(as_mm_h)
    assert rain.dtype == torch.float32 and torch.equal(mask, torch.from_numpy(valid))


def test_datasets_transform_and_no_labels(synthetic):
    collator = RainRateCollator(4, 2, RainRateTransform("dbr"))
    batch = synthetic["train"].with_transform(collator.transform)[0:2]
    assert batch["pixel_values"].shape == (2, 4, 1, 16, 16) and batch["labels"].shape == (2, 2, 1, 16, 16)
    torch.testing.assert_close(
        batch["pixel_values"], collator([synthetic["train"][i] for i in range(2)])["pixel_values"]
    )
    inputs_only = RainRateCollator(6, 0, RainRateTransform("dbr"))([synthetic["test"][0]])
    assert set(inputs_only) == {"pixel_values", "rain_rate", "target_motion"}
    assert inputs_only["pixel_values"].shape[1] == 6


def _dihedral(array):
    """The 8 rotations / reflections of the last two axes."""
    turns = [np.rot90(array, k, axes=(-2, -1)) for k in range(4)]
    return turns + [turn[..., ::-1] for turn in turns]


def test_augmentation_is_off_by_default_seeded_and_applies_one_symmetry_to_frames_and_masks():
    windows = [_window_with_holes(seed, frames=4, size=8)[0] for seed in range(6)]
    examples = [{"rain_rate": window} for window in windows]
    transform = RainRateTransform("dbr")
    plain = RainRateCollator(2, 2, transform)(examples)
    torch.testing.assert_close(RainRateCollator(2, 2, transform)(examples), plain, equal_nan=True)
    first = RainRateCollator(2, 2, transform, augment=True, seed=3)
    second = RainRateCollator(2, 2, transform, augment=True, seed=3)
    batches = []
    for epoch in range(4):  # each epoch draws anew; same seed and epoch, same draws
        first.set_epoch(epoch)
        second.set_epoch(epoch)
        batches.append(first(examples))
        torch.testing.assert_close(second(examples), batches[-1], equal_nan=True)
        torch.testing.assert_close(first(examples), batches[-1], equal_nan=True)
    assert not torch.equal(batches[0]["pixel_values"], batches[1]["pixel_values"])
    used = set()
    for batch in batches:
        for index in range(len(windows)):
            values = torch.cat([batch["pixel_values"], batch["labels"]], 1)[index].numpy()
            candidates = _dihedral(torch.cat([plain["pixel_values"], plain["labels"]], 1)[index].numpy())
            matches = [k for k, candidate in enumerate(candidates) if np.array_equal(candidate, values)]
            assert matches, "each window gets one rotation / reflection"
            mask_candidates = _dihedral(plain["labels_mask"][index].numpy())
            assert np.array_equal(mask_candidates[matches[0]], batch["labels_mask"][index].numpy())
            rain_candidates = _dihedral(plain["rain_rate"][index].numpy())
            assert np.array_equal(
                rain_candidates[matches[0]], batch["rain_rate"][index].numpy(), equal_nan=True
            )
            used.add(matches[0])
    assert len(used) >= 4  # the draws cover the symmetries
    other = RainRateCollator(2, 2, transform, augment=True, seed=4)(examples)
    assert not torch.equal(other["pixel_values"], batches[0]["pixel_values"])


def test_augmentation_keeps_non_square_tiles_in_shape():
    window = np.random.default_rng(0).integers(0, 500, size=(3, 1, 4, 6))
    batch = RainRateCollator(2, 1, RainRateTransform("linear"), augment=True, seed=1)(
        [{"rain_rate": window}] * 8
    )
    assert batch["pixel_values"].shape == (8, 2, 1, 4, 6)


def test_a_window_is_turned_the_same_way_in_any_batch_and_any_dataloader_worker():
    # The draw depends on the seed, the epoch and the window alone: not on its batch, its place in it, the worker
    # that collates it, or what was drawn before (so a run resumed mid-epoch turns its windows as the whole run did).
    examples = [{"rain_rate": _window_with_holes(seed, frames=3, size=8)[0]} for seed in range(8)]
    collator = RainRateCollator(2, 1, RainRateTransform("dbr"), augment=True, seed=5)
    collator.set_epoch(2)
    whole = collator(examples)["pixel_values"]
    reversed_halves = [collator(list(reversed(examples[i : i + 4])))["pixel_values"].flip(0) for i in (0, 4)]
    torch.testing.assert_close(torch.cat(reversed_halves), whole)
    loader = torch.utils.data.DataLoader(examples, batch_size=2, num_workers=2, collate_fn=collator)
    torch.testing.assert_close(torch.cat([batch["pixel_values"] for batch in loader]), whole)
    assert len({tuple(torch.flatten(frames).tolist()) for frames in whole}) == len(examples)
    with pytest.raises(ValueError, match="epoch must be an int >= 0, got -1"):
        collator.set_epoch(-1)


@pytest.mark.parametrize(
    ("window", "error", "words"),
    [
        (np.full((5, 1, 4, 4), NO_DATA + 1), ValueError, "must lie in"),
        (np.full((5, 1, 4, 4), -1), ValueError, "must lie in"),
        (np.full((5, 1, 4, 4), -0.5), ValueError, ">= 0"),
        (np.full((5, 1, 4, 4), np.inf), ValueError, "finite"),
        (np.zeros((5, 2, 4, 4), dtype=np.int64), ValueError, "one window"),
        (np.zeros((5, 4), dtype=np.int64), ValueError, "one window"),
        (np.zeros((4, 1, 4, 4), dtype=np.int64), ValueError, "has 4 frames"),
        (np.zeros((5, 1, 4, 4), dtype=bool), TypeError, "numbers"),
        (np.array([["a"]]), TypeError, "numbers"),
    ],
)
def test_bad_windows_raise_naming_them(window, error, words):
    collator = RainRateCollator(2, 3, RainRateTransform("dbr"))
    with pytest.raises(error, match=words):
        collator([{"rain_rate": np.zeros((5, 1, 4, 4), dtype=np.int64)}, {"rain_rate": window}])


def test_bad_batches_and_arguments_raise():
    transform = RainRateTransform("dbr")
    collator = RainRateCollator(2, 1, transform)
    with pytest.raises(ValueError, match="no 'rain_rate' key"):
        collator([{"frames": np.zeros((3, 1, 4, 4))}])
    with pytest.raises(ValueError, match="empty batch"):
        collator([])
    with pytest.raises(ValueError, match="one size"):
        collator([{"rain_rate": np.zeros((3, 1, 4, 4))}, {"rain_rate": np.zeros((3, 1, 4, 6))}])
    with pytest.raises(ValueError, match="no 'rain_rate' column"):
        collator.transform({"frames": []})
    with pytest.raises(TypeError, match="transform must be a RainRateTransform"):
        RainRateCollator(2, 1, "dbr")
    with pytest.raises(ValueError, match="kind must be one of"):
        RainRateCollator(2, 1, {"kind": "dbz"})
    with pytest.raises(ValueError, match="num_input_frames"):
        RainRateCollator(0, 1, transform)
    with pytest.raises(TypeError, match="num_output_frames"):
        RainRateCollator(2, 1.0, transform)
    with pytest.raises(TypeError, match="augment"):
        RainRateCollator(2, 1, transform, augment="yes")
    assert "dbr" in repr(collator) and collator.num_frames == 3


def _moving_blob(frames=3, size=24, velocity=(1.5, -0.5)):
    """A smooth blob moving `velocity` (x, y) pixels per frame: a stored-form window and its motion (2, H, W)."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    window = np.stack(
        [
            5 * np.exp(-((cols - 8 - velocity[0] * t) ** 2 + (rows - 14 - velocity[1] * t) ** 2) / 20)
            for t in range(frames)
        ]
    )[:, None]
    motion = np.stack([np.full((size, size), v, dtype=np.float32) for v in velocity])
    return encode_rain_rate(window).astype(np.int64), motion


def test_augmentation_turns_and_flips_the_motion_with_its_window():
    """Every one of the eight symmetries keeps the motion the one that moves the window's frame to the next one."""
    from bidirectional_conv_lstm.models.convlstm.advection_convlstm import advect

    window, motion = _moving_blob()
    collator = RainRateCollator(1, 2, RainRateTransform("log1p"), augment=True, seed=0)
    plain = RainRateCollator(1, 2, RainRateTransform("log1p"))([{"rain_rate": window, "motion": motion}])
    torch.testing.assert_close(plain["target_motion"], torch.from_numpy(motion)[None])
    seen = set()
    for epoch in range(40):
        collator.set_epoch(epoch)
        batch = collator([{"rain_rate": window, "motion": motion}])
        rain, moved = batch["rain_rate"][0, :, 0], batch["target_motion"]
        assert moved.shape == (1, 2, 24, 24) and moved.dtype == torch.float32
        step = advect(rain[:1, None], moved)[0, 0]
        assert (step - rain[1]).abs().max() < 0.2  # the blob peaks at 5 mm/h
        # the motion of the untransformed window would move the turned one elsewhere (unless the turn is none)
        vector = tuple(moved[0, :, 0, 0].tolist())
        seen.add(vector)
        if vector != (1.5, -0.5):
            assert (advect(rain[:1, None], torch.from_numpy(motion)[None])[0, 0] - rain[1]).abs().max() > 0.5
    assert len(seen) == 8
    # the datasets transform hands it out too
    columns = collator.transform({"rain_rate": [window], "motion": [motion]})
    assert columns["target_motion"].shape == (1, 2, 24, 24)


def test_rows_without_a_motion_give_none_and_bad_motions_raise():
    window, motion = _moving_blob()
    collator = RainRateCollator(1, 2, RainRateTransform("log1p"))
    assert "target_motion" not in collator([{"rain_rate": window}])
    with pytest.raises(ValueError, match="motion.*every window or for none"):
        collator([{"rain_rate": window, "motion": motion}, {"rain_rate": window}])
    with pytest.raises(ValueError, match=r"motion\[0\] must be \(2, H, W\) = \(2, 24, 24\)"):
        collator([{"rain_rate": window, "motion": motion[:, :8]}])
    with pytest.raises(ValueError, match=r"motion\[0\] holds NaN"):
        collator([{"rain_rate": window, "motion": np.full_like(motion, np.nan)}])
