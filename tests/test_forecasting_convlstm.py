"""Rain-rate forecasts in mm/h (`forecast_rain_rate`): shapes, padding to the patch size, no-data, errors; and the
advection head (`config.advection`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.models.convlstm.advection_convlstm import advect
from bidirectional_conv_lstm.models.convlstm.rain_rate import RainRateTransform
from rain_models import small_rain_model as rain_model

pytestmark = pytest.mark.usefixtures("one_thread")


def observed_rain(shape=(2, 3, 10, 13), seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    rain = torch.rand(shape, generator=generator) ** 2 * 20
    return torch.where(rain < 1, torch.zeros_like(rain), rain)


def test_forecast_pads_to_the_patch_size_and_crops_back_in_mm_h():
    model = rain_model()
    rain = observed_rain()
    forecast = model.forecast_rain_rate(rain, num_output_frames=5)
    assert forecast.shape == (2, 5, 10, 13) and forecast.dtype == torch.float32
    # The same by hand: pad with 0 mm/h to 12 x 16, to model space, predict, back to mm/h, crop.
    transform = RainRateTransform("log1p")
    padded = F.pad(rain, (0, 3, 0, 2))
    with torch.no_grad():
        predictions = model(transform.forward(padded).unsqueeze(2), num_output_frames=5).predictions
    expected = transform.inverse(predictions[:, :, 0, :10, :13])
    assert torch.equal(forecast, expected)
    assert (forecast >= 0).all() and forecast.max() > 0
    # The default horizon is the config's; (B, T, 1, H, W) in gives (B, T_out, 1, H, W) out; numpy in, numpy out.
    assert model.forecast_rain_rate(rain).shape == (2, 2, 10, 13)
    with_channel = model.forecast_rain_rate(rain.unsqueeze(2).numpy(), num_output_frames=5)
    assert isinstance(with_channel, np.ndarray) and with_channel.shape == (2, 5, 1, 10, 13)
    np.testing.assert_array_equal(with_channel[:, :, 0], forecast.numpy())


def test_no_data_is_filled_like_the_collator_and_masked_by_the_last_frame():
    model = rain_model()
    rain = observed_rain()
    holes = torch.zeros_like(rain, dtype=torch.bool)
    holes[:, 0, :4, :4] = True  # no data in an early frame only: the forecast there is still defined
    holes[:, -1, 6:, 10:] = True  # and in the last frame: no forecast there
    with_nan = torch.where(holes, torch.full_like(rain, float("nan")), rain)
    forecast = model.forecast_rain_rate(with_nan, num_output_frames=4)
    last_missing = holes[:, -1:].expand_as(forecast)
    assert torch.isnan(forecast[last_missing]).all() and not torch.isnan(forecast[~last_missing]).any()
    # A hole is read as no rain (as RainRateCollator fills it): same forecast as 0 mm/h there, where defined.
    zero_filled = model.forecast_rain_rate(
        torch.where(holes, torch.zeros_like(rain), rain), num_output_frames=4
    )
    assert torch.equal(forecast[~last_missing], zero_filled[~last_missing])
    # A valid mask says the same as NaN; no_data_value replaces NaN.
    masked = model.forecast_rain_rate(rain, ~holes, num_output_frames=4, no_data_value=0.0)
    assert torch.equal(masked[~last_missing], forecast[~last_missing]) and (masked[last_missing] == 0).all()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: m.forecast_rain_rate(torch.rand(2, 3, 1, 1, 8, 8)), ValueError, "shape"),
        (lambda m: m.forecast_rain_rate(torch.rand(2, 3, 2, 8, 8)), ValueError, "1 channel"),
        (lambda m: m.forecast_rain_rate([[0.0]]), TypeError, "numpy array"),
        (lambda m: m.forecast_rain_rate(-torch.rand(1, 3, 8, 8) - 1), ValueError, "negative"),
        (
            lambda m: m.forecast_rain_rate(torch.rand(1, 3, 8, 8), num_output_frames=0),
            ValueError,
            "num_output",
        ),
        (lambda m: m.forecast_rain_rate(torch.rand(1, 3, 8, 8), torch.ones(1, 3, 8, 8)), TypeError, "bool"),
        (
            lambda m: m.forecast_rain_rate(torch.rand(1, 3, 8, 8), torch.ones(1, 3, 8, 9).bool()),
            ValueError,
            "valid",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(rain_model())


def test_an_image_model_does_not_forecast_rain_rate():
    model = ConvLSTMForFramePrediction(ConvLSTMConfig(hidden_sizes=[4], patch_size=2))
    with pytest.raises(ValueError, match="rain_rate_transform is None"):
        model.forecast_rain_rate(torch.rand(1, 3, 8, 8))


def test_advect_moves_frames_by_whole_pixels_and_brings_in_nothing():
    frames = torch.rand(2, 1, 6, 7)
    motion = torch.zeros(2, 2, 6, 7)
    motion[:, 0] = 2.0  # two pixels to the right
    motion[:, 1] = -1.0  # one pixel up
    moved = advect(frames, motion)
    torch.testing.assert_close(moved[:, :, :-1, 2:], frames[:, :, 1:, :-2])
    assert (moved[:, :, :, :2] == 0).all() and (moved[:, :, -1] == 0).all()  # from outside the frame: nothing


def test_advect_with_persistence_padding_keeps_what_a_pixel_has_where_its_source_is_beyond_the_edge():
    frames = torch.rand(2, 3, 5, 8, dtype=torch.float64)
    motion = torch.zeros(2, 2, 5, 8, dtype=torch.float64)
    motion[:, 0] = 2.5  # two and a half pixels to the right
    moved = advect(frames, motion, "persistence")
    f = frames
    # From inside the frame: bilinear, as with any padding.
    torch.testing.assert_close(moved[..., 3:], 0.5 * f[..., :-3] + 0.5 * f[..., 1:-2])
    torch.testing.assert_close(moved[..., :2], f[..., :2])  # from beyond the edge: the pixel's own value
    # Half the footprint beyond the edge: that half is the pixel's own value ("border" would give the edge pixel).
    torch.testing.assert_close(moved[..., 2], 0.5 * f[..., 0] + 0.5 * f[..., 2])
    torch.testing.assert_close(advect(frames, motion, "border")[..., 1], f[..., 0])
    still = advect(frames, torch.zeros_like(motion), "persistence")
    torch.testing.assert_close(still, frames)  # no motion: the frame itself
    motion[:, 1] = -1.0  # and one pixel up: the bottom row's sources are beyond the edge too
    torch.testing.assert_close(advect(frames, motion, "persistence")[..., -1, :], f[..., -1, :])
    with pytest.raises(ValueError, match="padding_mode must be one of .* got 'reflection'"):
        advect(frames, motion, "reflection")


def test_the_config_offers_every_padding_the_warp_has():
    from bidirectional_conv_lstm.models.convlstm.advection_convlstm import PADDING_MODES
    from bidirectional_conv_lstm.models.convlstm.configuration_convlstm import ADVECTION_PADDINGS

    assert ADVECTION_PADDINGS == PADDING_MODES
    with pytest.raises(ValueError, match="advection_padding"):
        ConvLSTMConfig(advection=True, advection_padding="reflection")


def test_boundary_padding_extends_the_frames_by_their_edges_and_crops_back():
    from bidirectional_conv_lstm.models.convlstm.modeling_convlstm import extend_frames

    frames = torch.rand(2, 3, 1, 8, 12)
    wider = extend_frames(frames, 4)
    assert wider.shape == (2, 3, 1, 16, 20)
    torch.testing.assert_close(wider[..., 4:12, 4:16], frames)
    torch.testing.assert_close(wider[..., :4, 4:16], frames[..., :1, :].expand(2, 3, 1, 4, 12))
    torch.testing.assert_close(wider[..., :4, :4], frames[..., :1, :1].expand(2, 3, 1, 4, 4))  # corners too

    plain = rain_model(advection=True)
    padded = rain_model(advection=True, boundary_padding=8)
    padded.load_state_dict(plain.state_dict())  # the same weights: the margin adds none
    pixel_values = torch.rand(2, 3, 1, 8, 12)
    with torch.no_grad():
        one = padded(pixel_values, num_output_frames=1, output_hidden_states=True)
        reference = plain(extend_frames(pixel_values, 8), num_output_frames=1).predictions
    # One step is the plain model on the extended frames, cropped; hidden states are the frame's patch grid.
    torch.testing.assert_close(one.predictions, reference[..., 8:16, 8:20])
    assert one.hidden_states[0].shape[-2:] == one.encoder_hidden_states[0].shape[-2:] == (2, 3)

    fed = []
    step = padded.forecaster.step
    padded.forecaster.step = lambda frame, *states: fed.append(frame) or step(frame, *states)
    with torch.no_grad():
        out = padded(pixel_values, num_output_frames=3).predictions
    assert out.shape == (2, 3, 1, 8, 12)
    for index, frame in enumerate(fed[1:]):
        # Every fed-back frame is the previous prediction, its margin the prediction's edge pixels repeated.
        pixels = F.pixel_shuffle(frame, 4)
        torch.testing.assert_close(pixels, extend_frames(out[:, index], 8))
    with pytest.raises(
        ValueError, match="boundary_padding must be an int >= 0 and a multiple of patch_size=4"
    ):
        ConvLSTMConfig(hidden_sizes=[4], patch_size=4, boundary_padding=6)


def test_mean_probability_matching_restores_the_observed_intensity_and_moves_no_rain():
    from bidirectional_conv_lstm.models.convlstm.forecasting_convlstm import (
        WET_THRESHOLD,
        match_observed_mean,
    )

    model = rain_model(advection=True, probability_matching="mean")
    generator = torch.Generator().manual_seed(2)
    observed = torch.rand(2, 3, 12, 12, generator=generator) * 8
    observed[:, :, :4] = 0.0  # a dry band
    observed[0, -1, 5, 5] = float("nan")  # no data in the last frame
    matched = model.forecast_rain_rate(observed, num_output_frames=3)
    plain = model.forecast_rain_rate(observed, num_output_frames=3, probability_matching=None)
    valid = ~torch.isnan(observed[:, -1])
    last = torch.nan_to_num(observed[:, -1])
    wet = (plain >= WET_THRESHOLD) & valid[:, None]
    assert wet.any() and not torch.equal(matched, plain)
    torch.testing.assert_close(matched[~wet & valid[:, None]], plain[~wet & valid[:, None]])  # dry: unchanged
    assert torch.isnan(matched[0, :, 5, 5]).all()
    known = valid[:, None].expand_as(plain)
    assert torch.equal(matched[known] > 0, plain[known] > 0)  # no rain created or removed, none moved
    for sample in range(2):
        observed_wet = last[sample][(last[sample] >= WET_THRESHOLD) & valid[sample]]
        for lead in range(3):
            forecast_wet = matched[sample, lead][wet[sample, lead]]
            # Each frame's wet pixels now have the observed frame's geometric mean.
            torch.testing.assert_close(
                forecast_wet.log().mean(), observed_wet.log().mean(), rtol=1e-4, atol=1e-4
            )
    # A frame with nothing wet (or an observation with nothing wet) is left as it is.
    dry = torch.zeros(1, 2, 4, 4)
    torch.testing.assert_close(
        match_observed_mean(dry, torch.full((1, 4, 4), 3.0), torch.ones(1, 4, 4, dtype=torch.bool)), dry
    )
    rainy = torch.full((1, 2, 4, 4), 2.0)
    torch.testing.assert_close(
        match_observed_mean(rainy, torch.zeros(1, 4, 4), torch.ones(1, 4, 4, dtype=torch.bool)), rainy
    )
    with pytest.raises(ValueError, match="probability_matching must be one of"):
        model.forecast_rain_rate(observed, probability_matching="cdf")
    with pytest.raises(ValueError, match="probability_matching must be None or 'mean'"):
        rain_model(probability_matching="cdf")
    with pytest.raises(ValueError, match="needs rain_rate_transform"):
        ConvLSTMConfig(hidden_sizes=[4], probability_matching="mean")


def test_untrained_advection_head_starts_near_persistence_and_learns_motion():
    model = rain_model(advection=True)
    model.forecaster.advection.conv.weight.data.zero_()  # as initialised: no motion, the gate at its bias
    model.forecaster.advection.conv.bias.data[:2] = 0.0
    model.forecaster.advection.conv.bias.data[2:] = -20.0  # gate shut: the drawn frame is not used
    pixel_values = torch.rand(2, 3, 1, 8, 8)
    with torch.no_grad():
        out = model(pixel_values, num_output_frames=3).predictions
    # No motion and a shut gate: every forecast frame is the last observed frame (persistence).
    torch.testing.assert_close(out, pixel_values[:, -1:].expand_as(out), atol=1e-6, rtol=0)
    model.train()
    labels = torch.roll(pixel_values[:, -1:], 1, dims=-1).expand(2, 3, 1, 8, 8).contiguous()
    model(pixel_values, labels=labels).loss.backward()
    assert model.forecaster.advection.conv.weight.grad[:2].abs().sum() > 0  # the motion gets a gradient


@pytest.mark.parametrize("warp", ["previous", "origin"])
def test_origin_warp_moves_the_last_frame_once_along_the_summed_motion(warp):
    model = rain_model(advection=True, advection_warp=warp, boundary_padding=0)
    head = model.forecaster.advection
    head.conv.weight.data.zero_()
    head.conv.bias.data[:2] = torch.tensor([0.5, 0.0])  # half a pixel to the right every step
    head.conv.bias.data[2:] = -30.0  # gate shut: only the moved frame
    pixel_values = torch.rand(2, 3, 1, 8, 16)
    with torch.no_grad():
        out = model(pixel_values, num_output_frames=4).predictions
    last = pixel_values[:, -1]
    exact = [
        advect(last, torch.full((2, 2, 8, 16), 0.0).index_fill_(1, torch.tensor([0]), 0.5 * k))
        for k in (1, 2, 3, 4)
    ]
    # Column 2 on is inside the frame after two pixels of motion: the origin warp is the exact shift there.
    torch.testing.assert_close(exact[3][..., 2:], last[..., :-2])
    moved = torch.stack(exact, 1)
    if warp == "origin":
        torch.testing.assert_close(out, moved, atol=1e-6, rtol=0)
    else:  # four half-pixel interpolations in a row smooth the field: not the exact shift
        torch.testing.assert_close(out[:, 0], moved[:, 0], atol=1e-6, rtol=0)
        assert (out[:, 3, ..., 2:] - last[..., :-2]).abs().max() > 0.05
    model.train()  # the motion learns through the summed displacement too
    model(pixel_values, labels=moved.detach().clone()).loss.backward()
    assert head.conv.weight.grad[:2].abs().sum() > 0
    with pytest.raises(
        ValueError, match="advection_warp must be one of \\('previous', 'origin'\\), got 'next'"
    ):
        rain_model(advection=True, advection_warp="next")


def train_toy_motion(model, target_motion=None) -> tuple[float, float]:
    """A smooth field (no dry background) moving one pixel a step to the right; only the motion (the head's bias)
    is trained, the gate shut. Returns the learnt motion (x, y)."""
    torch.manual_seed(0)
    head = model.forecaster.advection
    head.conv.weight.data.zero_()
    head.conv.bias.data.zero_()
    head.conv.bias.data[2:] = -30.0
    base = F.avg_pool2d(torch.rand(1, 1, 64, 64), 5, 1, 2)
    frames = torch.stack([base[..., 8:40, 8 - k : 40 - k] for k in range(7)], 1)
    optimizer = torch.optim.Adam([head.conv.bias], lr=0.05)
    for _ in range(120):
        loss = model(pixel_values=frames[:, :3], labels=frames[:, 3:], target_motion=target_motion).loss
        optimizer.zero_grad()
        loss.backward()
        head.conv.bias.grad[2:] = 0
        optimizer.step()
    motion_x, motion_y = head.conv.bias.data[:2].tolist()
    return motion_x, motion_y


@pytest.mark.parametrize("padding", ["zeros", "border", "persistence"])
def test_the_motion_is_learnt_when_the_warp_brings_in_the_edge(padding):
    # With zeros coming in at the inflow edge, moving costs more than it gains and the motion stays far below a
    # pixel; with the edge pixels coming in, or the inflow band kept as it was, it converges to the true motion.
    motion_x, motion_y = train_toy_motion(rain_model(advection=True, advection_padding=padding))
    if padding != "zeros":
        assert motion_x == pytest.approx(1.0, abs=0.05) and abs(motion_y) < 0.05
    else:
        assert motion_x < 0.5


def test_the_motion_term_teaches_the_motion_where_the_frame_loss_alone_does_not():
    # The setting of the test above in which the frame loss leaves the motion far below a pixel (zeros at the
    # inflow edge); told the motion (motion_loss_weight), the head converges to it.
    model = rain_model(advection=True, advection_padding="zeros", motion_loss_weight=1.0)
    target = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 32, 32)
    motion_x, motion_y = train_toy_motion(model, target)
    assert motion_x == pytest.approx(1.0, abs=0.1) and abs(motion_y) < 0.05


@pytest.mark.parametrize("warp", ["previous", "origin"])
def test_the_motion_output_and_the_motion_term_of_the_loss(warp):
    model = rain_model(advection=True, advection_warp=warp, boundary_padding=4, motion_loss_weight=0.3)
    pixel_values, labels = torch.rand(2, 3, 1, 8, 12), torch.rand(2, 2, 1, 8, 12)
    assert model(pixel_values).motion is None  # not asked for
    out = model(pixel_values, labels=labels, output_motion=True)
    assert out.motion.shape == (2, 2, 2, 8, 12) and out.motion.dtype == torch.float32  # cropped to the frame
    assert out.motion.abs().amax() > 0  # trained-looking weights move the rain
    # The motion is what the head warps with: with the gate shut and no padding, step 1 is the last frame
    # moved along it.
    plain = rain_model(advection=True, advection_warp=warp)
    plain.forecaster.advection.conv.bias.data[2:] = -30.0
    shut = plain(pixel_values, output_motion=True)
    moved = advect(pixel_values[:, -1], shut.motion[:, 0])
    torch.testing.assert_close(shut.predictions[:, 0], moved, atol=1e-5, rtol=0)
    # The loss adds motion_loss_weight x the mean squared end-point error over the pixels with rain (>= 0.1 mm/h)
    # in the frame a step moves or in the one it gives, and with data; in float64 here.
    rain = torch.tensor([0.0, 0.05, 0.3, 4.0])[torch.randint(0, 4, (2, 5, 1, 8, 12))]
    values = model.rain_rate_transform.forward(rain)
    pixel_values, labels = values[:, :3], values[:, 3:]
    loss_mask = torch.rand(2, 2, 1, 8, 12) > 0.2
    wet = rain[:, 2:, 0] >= 0.1
    moving = (wet[:, :-1] | wet[:, 1:]) & loss_mask[:, :, 0]
    assert 0 < moving.sum() < moving.numel()
    for target in (torch.randn(2, 2, 8, 12), torch.randn(2, 2, 2, 8, 12)):
        with_motion = model(pixel_values, labels=labels, loss_mask=loss_mask, target_motion=target)
        frame_loss = model(pixel_values, labels=labels, loss_mask=loss_mask).loss
        steps = target if target.dim() == 5 else target[:, None].expand(-1, 2, -1, -1, -1)
        error = (with_motion.motion.double() - steps.double()).pow(2).sum(2)[moving].mean()
        torch.testing.assert_close(with_motion.loss.double(), frame_loss.double() + 0.3 * error)
    # A weight of 0 adds nothing.
    model.config.motion_loss_weight = 0.0
    zero_weight = model(pixel_values, labels=labels, loss_mask=loss_mask, target_motion=target).loss
    torch.testing.assert_close(zero_weight, frame_loss)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target_motion": torch.zeros(2, 2, 8, 8)}, ValueError, "without labels"),
        (
            {"labels": torch.rand(2, 2, 1, 8, 8), "target_motion": torch.zeros(2, 2, 8, 9)},
            ValueError,
            r"target_motion must be a float tensor of shape \(B, 2, H, W\) = \(2, 2, 8, 8\)",
        ),
        (
            {
                "labels": torch.rand(2, 2, 1, 8, 8),
                "target_motion": torch.zeros(2, 2, 8, 8, dtype=torch.int64),
            },
            ValueError,
            "torch.int64",
        ),
        ({"output_motion": "yes"}, TypeError, "output_motion must be True or False"),
    ],
)
def test_bad_motion_arguments_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        rain_model(advection=True)(torch.rand(2, 3, 1, 8, 8), **kwargs)


def test_a_model_without_advection_has_no_motion():
    model = rain_model()
    with pytest.raises(ValueError, match="output_motion=True needs an advection model"):
        model(torch.rand(1, 3, 1, 8, 8), output_motion=True)
    with pytest.raises(ValueError, match="target_motion needs an advection model"):
        model(
            torch.rand(1, 3, 1, 8, 8), labels=torch.rand(1, 2, 1, 8, 8), target_motion=torch.zeros(1, 2, 8, 8)
        )
    with pytest.raises(ValueError, match="motion_loss_weight=0.5 trains the advection head's motion"):
        ConvLSTMConfig(motion_loss_weight=0.5)
    with pytest.raises(ValueError, match="motion_loss_weight must be a finite float >= 0"):
        ConvLSTMConfig(advection=True, motion_loss_weight=-1.0)


def test_a_trained_advection_head_survives_save_and_from_pretrained(tmp_path):
    model = rain_model(advection=True)  # every weight moved off its initial value, the gate bias included
    model.save_pretrained(tmp_path)
    loaded = ConvLSTMForFramePrediction.from_pretrained(tmp_path)
    for (name, saved), again in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(saved, again), name
