"""Frame metrics against hand-computed values and OpenSTL's formulas; streaming, gathering, baselines."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from bidirectional_conv_lstm.training.metrics import (
    METRIC_NAMES,
    FrameMetricsAccumulator,
    baseline_predictions,
    evaluate_baselines,
    format_metrics_table,
    frame_metrics,
    per_frame_metrics,
)


def _pair(shape=(3, 4, 1, 16, 16), seed=0):
    rng = np.random.default_rng(seed)
    true = rng.random(shape)
    pred = np.clip(true + rng.normal(0, 0.2, shape), -0.2, 1.2)  # some values outside [0, 1]
    return pred, true


def test_mse_and_mae_are_summed_over_pixels_and_averaged_over_frames():
    true = np.zeros((2, 3, 1, 8, 8))
    pred = np.zeros_like(true)
    offsets = np.array([[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]])
    pred += offsets[:, :, None, None, None]
    result = frame_metrics(pred, true)
    # Each frame: 64 pixels off by its offset.
    assert result["mse"] == pytest.approx(64 * (offsets**2).mean())
    assert result["mae"] == pytest.approx(64 * offsets.mean())
    assert result["mse_per_frame"] == pytest.approx(64 * (offsets**2).mean(axis=0))
    assert result["mae_per_frame"] == pytest.approx([64 * 0.2, 64 * 0.3, 64 * 0.4])
    assert result["num_samples"] == 2


def test_psnr_of_a_known_noise_level():
    true = np.full((1, 2, 1, 8, 8), 0.5)
    sign = np.where(np.indices((8, 8)).sum(axis=0) % 2 == 0, 1.0, -1.0)  # checkerboard of +-sigma
    pred = true + np.stack([0.1 * sign, 0.01 * sign])[None, :, None]
    result = frame_metrics(pred, true)
    # Frame MSE = sigma^2 exactly: PSNR = -10 log10(sigma^2) = 20 dB and 40 dB.
    assert result["psnr_per_frame"] == pytest.approx([20.0, 40.0])
    assert result["psnr"] == pytest.approx(30.0)


def test_identical_frames_give_ssim_one_and_infinite_psnr():
    _, true = _pair()
    result = frame_metrics(true, true)
    assert result["ssim"] == pytest.approx(1.0)
    assert result["ssim_openstl"] == pytest.approx(1.0)
    assert result["mse"] == 0 and result["mae"] == 0
    assert math.isinf(result["psnr"])


def test_ssim_is_scikit_image_with_both_data_ranges():
    pred, true = _pair(shape=(1, 1, 1, 16, 16))
    clipped = np.clip(pred, 0, 1)
    values = per_frame_metrics(pred, true)
    assert values["ssim"][0, 0] == pytest.approx(
        structural_similarity(clipped[0, 0, 0], true[0, 0, 0], data_range=1.0)
    )
    assert values["ssim_openstl"][0, 0] == pytest.approx(
        structural_similarity(clipped[0, 0, 0], true[0, 0, 0], data_range=2.0)
    )
    # The wider range shrinks the errors' weight: OpenSTL's SSIM reads higher.
    assert values["ssim_openstl"][0, 0] > values["ssim"][0, 0]


@pytest.mark.parametrize("channels", [1, 3])
def test_matches_openstl_formulas(channels):
    """OpenSTL's openstl/core/metrics.py, written out (SSIM with its (W, H, C) layout and float range 2)."""
    pred, true = _pair(shape=(2, 3, channels, 12, 12), seed=channels)
    result = frame_metrics(pred, true)
    assert result["mse"] == pytest.approx(np.mean((pred - true) ** 2, axis=(0, 1)).sum())
    assert result["mae"] == pytest.approx(np.mean(np.abs(pred - true), axis=(0, 1)).sum())
    clipped = np.clip(pred, 0, 1)
    psnr, ssim = 0.0, 0.0
    for b in range(2):
        for f in range(3):
            psnr += 20.0 * np.log10(1.0 / np.sqrt(np.mean((clipped[b, f] - true[b, f]) ** 2)))
            ssim += structural_similarity(
                clipped[b, f].swapaxes(0, 2), true[b, f].swapaxes(0, 2), channel_axis=-1, data_range=2.0
            )
    assert result["psnr"] == pytest.approx(psnr / 6)
    assert result["ssim_openstl"] == pytest.approx(ssim / 6)


def test_prediction_is_clipped_for_psnr_and_ssim_only():
    true = np.full((1, 1, 1, 8, 8), 1.0)
    pred = np.full((1, 1, 1, 8, 8), 1.5)
    result = frame_metrics(pred, true)
    assert result["mse"] == pytest.approx(64 * 0.25)
    assert math.isinf(result["psnr"]) and result["ssim"] == pytest.approx(1.0)


def test_per_frame_lists_average_to_the_totals():
    pred, true = _pair()
    result = frame_metrics(pred, true)
    for name in METRIC_NAMES:
        assert len(result[f"{name}_per_frame"]) == 4
        assert np.mean(result[f"{name}_per_frame"]) == pytest.approx(result[name])


def test_torch_and_numpy_inputs_agree():
    pred, true = _pair()
    from_numpy = frame_metrics(pred, true)
    from_torch = frame_metrics(torch.from_numpy(pred).float(), torch.from_numpy(true).float())
    for name in METRIC_NAMES:
        assert from_torch[name] == pytest.approx(from_numpy[name], rel=1e-5)


def test_streaming_accumulation_equals_one_shot():
    pred, true = _pair(shape=(5, 3, 1, 10, 10))
    accumulator = FrameMetricsAccumulator()
    accumulator.update(pred[:2], true[:2])
    accumulator.update(torch.from_numpy(pred[2:]), torch.from_numpy(true[2:]))
    streamed, whole = accumulator.compute(), frame_metrics(pred, true)
    assert accumulator.num_samples == 5
    for name in METRIC_NAMES:
        assert streamed[name] == pytest.approx(whole[name])
        assert streamed[f"{name}_per_frame"] == pytest.approx(whole[f"{name}_per_frame"])
    accumulator.reset()
    with pytest.raises(ValueError, match="update"):
        accumulator.compute()


class _FakeAccelerator:
    """Two processes that happen to hold the same batch: gather_for_metrics concatenates them."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls = 0

    def gather_for_metrics(self, tensor):
        self.calls += 1
        return torch.cat([tensor, tensor + 1.0])


def test_gather_hook_collects_every_process():
    pred, true = _pair(shape=(2, 3, 1, 8, 8))
    local = frame_metrics(pred, true)
    accelerator = _FakeAccelerator()
    accumulator = FrameMetricsAccumulator(gather=accelerator)
    accumulator.update(pred, true)
    gathered = accumulator.compute()
    assert accelerator.calls == 1
    assert gathered["num_samples"] == 4
    # The "other process" reports every per-frame value + 1, so the mean moves by exactly 0.5.
    assert gathered["mse"] == pytest.approx(local["mse"] + 0.5)
    plain = FrameMetricsAccumulator(gather=lambda tensor: torch.cat([tensor, tensor]))
    plain.update(pred, true)
    assert plain.compute()["ssim"] == pytest.approx(local["ssim"])
    with pytest.raises(TypeError, match="gather"):
        FrameMetricsAccumulator(gather="all")


@pytest.mark.parametrize(
    ("pred", "true", "error", "words"),
    [
        (np.zeros((2, 3, 1, 8, 8)), np.zeros((2, 3, 1, 8, 9)), ValueError, "one shape"),
        (np.zeros((3, 1, 8, 8)), np.zeros((3, 1, 8, 8)), ValueError, "pred must be"),
        (np.zeros((1, 1, 1, 4, 4)), np.zeros((1, 1, 1, 4, 4)), ValueError, "7x7"),
        (np.zeros((1, 1, 1, 8, 8)), np.full((1, 1, 1, 8, 8), 255.0), ValueError, "true must lie"),
        (np.full((1, 1, 1, 8, 8), "a"), np.zeros((1, 1, 1, 8, 8)), TypeError, "pred"),
    ],
)
def test_bad_metric_inputs(pred, true, error, words):
    with pytest.raises(error, match=words):
        frame_metrics(pred, true)


def test_lead_times_must_not_change_between_batches():
    accumulator = FrameMetricsAccumulator()
    accumulator.update(np.zeros((1, 2, 1, 8, 8)), np.zeros((1, 2, 1, 8, 8)))
    with pytest.raises(ValueError, match="same number of frames"):
        accumulator.update(np.zeros((1, 3, 1, 8, 8)), np.zeros((1, 3, 1, 8, 8)))


def test_baseline_predictions():
    pixel_values = np.random.default_rng(0).random((2, 4, 1, 8, 8)).astype(np.float32)
    copy = baseline_predictions(pixel_values, 3, "copy_last")
    assert copy.shape == (2, 3, 1, 8, 8) and copy.dtype == np.float32
    np.testing.assert_array_equal(copy, np.repeat(pixel_values[:, 3:4], 3, axis=1))
    assert not baseline_predictions(pixel_values, 3, "zeros").any()
    np.testing.assert_allclose(baseline_predictions(pixel_values, 2, "mean", mean_value=0.25), 0.25)
    as_torch = baseline_predictions(torch.from_numpy(pixel_values), 3, "copy_last")
    assert isinstance(as_torch, torch.Tensor)
    np.testing.assert_array_equal(as_torch.numpy(), copy)
    with pytest.raises(ValueError, match="kind"):
        baseline_predictions(pixel_values, 3, "last")
    with pytest.raises(ValueError, match="mean_value"):
        baseline_predictions(pixel_values, 3, "mean")
    with pytest.raises(ValueError, match="num_output_frames"):
        baseline_predictions(pixel_values, 0, "zeros")


def test_evaluate_baselines_with_the_same_code():
    static = np.random.default_rng(1).random((1, 1, 1, 8, 8))
    batches = [
        {
            "pixel_values": torch.from_numpy(np.repeat(static, 3, axis=1)),
            "labels": torch.from_numpy(np.repeat(static, 2, axis=1)),
        }
    ]
    results = evaluate_baselines(batches, mean_value=float(static.mean()))
    assert set(results) == {"copy_last", "zeros", "mean"}
    # A still scene: copying the last frame is perfect.
    assert results["copy_last"]["mse"] == 0 and results["copy_last"]["ssim"] == pytest.approx(1.0)
    assert results["zeros"]["mse"] == pytest.approx((static**2).sum())
    assert results["mean"]["mse"] == pytest.approx(((static - static.mean()) ** 2).sum())
    table = format_metrics_table(results)
    assert table.count("\n") == 4 and "| copy_last |" in table
    with pytest.raises(ValueError, match="mean_value"):
        evaluate_baselines(batches, mean_value=None)
    assert set(evaluate_baselines(batches, mean_value=None, kinds=["zeros"])) == {"zeros"}


@pytest.fixture
def accelerator():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    yield Accelerator(cpu=True)
    # Leave no process-wide state behind for other tests' Accelerators.
    AcceleratorState._reset_state(reset_partial_state=True)


def test_real_accelerator_gather_over_a_prepared_dataloader(accelerator):
    pred, true = _pair(shape=(5, 2, 1, 8, 8))
    loader = accelerator.prepare(
        torch.utils.data.DataLoader(list(zip(torch.from_numpy(pred), torch.from_numpy(true))), batch_size=2)
    )
    accumulator = FrameMetricsAccumulator(gather=accelerator)
    for batch_pred, batch_true in loader:
        accumulator.update(batch_pred, batch_true)
    result, whole = accumulator.compute(), frame_metrics(pred, true)
    assert result["num_samples"] == 5
    for name in METRIC_NAMES:
        assert result[name] == pytest.approx(whole[name])
