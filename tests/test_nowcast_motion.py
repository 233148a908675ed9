"""The advection head's motion beside Lucas-Kanade's (nowcast_motion): the model's motion is what its head
predicts, and the comparison tells a head that moves rain the right way from one that moves it the wrong way."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.data.rain.storage import encode_rain_rate, rain_window_features
from bidirectional_conv_lstm.models.convlstm.rain_rate import RainRateTransform
from bidirectional_conv_lstm.nowcasting.motion import model_motion, motion_against_lucas_kanade
from test_nowcasting_baselines import translated_rain  # moves (x, y) = (2, 1) pixels a frame

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 48


def head_moving(velocity, **overrides) -> ConvLSTMForFramePrediction:
    """A rain-rate advection model whose head predicts `velocity` (x, y) everywhere, whatever it reads."""
    options = dict(
        hidden_sizes=[4],
        patch_size=4,
        num_input_frames=3,
        num_output_frames=1,
        advection=True,
        rain_rate_transform=RainRateTransform("log1p").to_dict(),
    )
    model = ConvLSTMForFramePrediction(ConvLSTMConfig(**{**options, **overrides})).eval()
    head = model.forecaster.advection.conv
    head.weight.data.zero_()
    head.bias.data[:2] = torch.tensor(velocity, dtype=torch.float32)
    return model


@pytest.fixture(scope="module")
def windows() -> datasets.Dataset:
    rows = [
        {
            "rain_rate": encode_rain_rate(translated_rain(5, SIZE, seed))[:, None],
            "event": "even" if seed % 2 == 0 else "odd",
            "origin": "",
            "y": 0,
            "x": 0,
        }
        for seed in range(4)
    ]
    return datasets.Dataset.from_list(rows, features=rain_window_features(5, SIZE, SIZE))


def test_model_motion_is_the_heads_motion_in_pixels_per_step():
    model = head_moving((1.5, -0.5))
    observed = np.random.default_rng(0).random((2, 3, 16, 24)).astype(np.float32) * 5
    observed[0, -1, :3, :3] = np.nan  # no data is read as no rain
    motion = model_motion(model, observed)
    assert motion.shape == (2, 2, 16, 24) and motion.dtype == np.float32
    np.testing.assert_allclose(motion[:, 0], 1.5, atol=1e-6)
    np.testing.assert_allclose(motion[:, 1], -0.5, atol=1e-6)
    # a head that reads its input: the same as the forward's own motion output
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
        values = model.rain_rate_transform.forward(torch.from_numpy(np.nan_to_num(observed)))
        expected = model(values[:, :, None], num_output_frames=1, output_motion=True).motion[:, 0]
    assert expected.std() > 0.01  # it varies over the frame
    np.testing.assert_allclose(model_motion(model, observed), expected.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"observed must be mm/h \(B, T_in, H, W\)"):
        model_motion(model, observed[0])
    with pytest.raises(ValueError, match="advection head"):
        model_motion(ConvLSTMForFramePrediction(ConvLSTMConfig(hidden_sizes=[4])), observed)


def test_model_motion_of_any_grid_pads_as_the_forecast_does_and_crops_back():
    # 15 x 10 is no multiple of patch_size=4: padded with 0 mm/h on the bottom and right (forecast_rain_rate's
    # convention) to 16 x 12, and the motion of the padded frames cropped back.
    torch.manual_seed(1)
    model = head_moving((0.0, 0.0))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    observed = np.random.default_rng(1).random((2, 3, 15, 10)).astype(np.float32) * 5
    motion = model_motion(model, torch.from_numpy(observed))
    assert motion.shape == (2, 2, 15, 10) and np.isfinite(motion).all()
    padded = np.zeros((2, 3, 16, 12), np.float32)
    padded[..., :15, :10] = observed
    np.testing.assert_allclose(motion, model_motion(model, padded)[..., :15, :10], atol=1e-6)


def test_the_comparison_tells_the_right_motion_from_the_wrong_one(windows):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    right = motion_against_lucas_kanade(head_moving((2.0, 1.0)), windows, num_input_frames=3, batch_size=3)
    overall = right["overall"]
    assert overall["windows"] == 4 and set(right["by_event"]) == {"even", "odd"}
    assert right["by_event"]["even"]["windows"] == 2
    assert overall["cosine"] > 0.9
    assert overall["model_speed"] == pytest.approx(np.hypot(2, 1), rel=1e-5)
    assert overall["lucas_kanade_speed"] == pytest.approx(np.hypot(2, 1), rel=0.25)  # the field moves (2, 1)
    np.testing.assert_allclose(overall["lucas_kanade_mean"], [2.0, 1.0], atol=0.5)
    wrong = motion_against_lucas_kanade(head_moving((-2.0, -1.0)), windows, num_input_frames=3)["overall"]
    assert wrong["cosine"] < -0.9
    sideways = motion_against_lucas_kanade(head_moving((-1.0, 2.0)), windows, num_input_frames=3)["overall"]
    assert abs(sideways["cosine"]) < 0.3
    # The wet pixels are those of the tile: a context of 8 px compares the inner 32 x 32 only.
    inner = motion_against_lucas_kanade(head_moving((2.0, 1.0)), windows, num_input_frames=3, context=8)
    assert 0 < inner["overall"]["wet_pixels"] < overall["wet_pixels"]
    # Windows with too little rain are left out.
    dry = motion_against_lucas_kanade(
        head_moving((2.0, 1.0)), windows, num_input_frames=3, min_wet_pixels=SIZE**2
    )
    assert dry["overall"] is None and dry["by_event"] == {}


def test_the_report_gives_the_motion_pooled_and_per_event(windows, tmp_path):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    from bidirectional_conv_lstm.nowcasting.evaluation import evaluate_nowcasts, write_nowcast_evaluation

    results = evaluate_nowcasts(windows, ["persistence"], num_input_frames=3, num_output_frames=2)
    results["motion"] = motion_against_lucas_kanade(head_moving((2.0, 1.0)), windows, num_input_frames=3)
    paths = write_nowcast_evaluation(results, tmp_path)
    report = paths["table"].read_text()
    overall = results["motion"]["overall"]
    assert "The model's motion against Lucas-Kanade's" in report
    assert f"| all: 4 | {overall['wet_pixels']} | {overall['cosine']:.2f} | 2.24 px |" in report
    assert "| even: 2 |" in report and "| odd: 2 |" in report
    assert json.loads(paths["json"].read_text())["motion"]["overall"]["cosine"] == pytest.approx(
        overall["cosine"]
    )
    results["motion"] = {"overall": None, "by_event": {}, "wet_threshold": 1.0}
    write_nowcast_evaluation(results, tmp_path)
    assert "no window had enough rain to compare" in paths["table"].read_text()
