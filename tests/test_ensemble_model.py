"""Ensemble ConvLSTM models (models/convlstm/ensemble_convlstm.py): noise injection in the forecaster, members in
`forward` and in `forecast_rain_rate`, the almost fair CRPS in training, the deterministic products and the
exceedance probabilities, the config fields; and a model without noise that is the model of before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from safetensors.torch import load_file

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.models.convlstm.ensemble_convlstm import (
    exceedance_probability,
    probability_matched_mean,
)
from bidirectional_conv_lstm.models.convlstm.losses_convlstm import almost_fair_crps
from rain_models import small_rain_model

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def rain_model(**overrides) -> ConvLSTMForFramePrediction:
    """An ensemble model (3 noise channels, 4 members), its noise injection moved enough to move the forecast."""
    return small_rain_model(
        noise_scale=0.5, **{"ensemble_noise_channels": 3, "ensemble_members": 4, **overrides}
    )


def observed_rain(shape=(2, 3, 10, 13), seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    rain = torch.rand(shape, generator=generator) ** 2 * 20
    return torch.where(rain < 1, torch.zeros_like(rain), rain)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_a_model_without_noise_is_the_model_of_before():
    # A model saved before the ensemble fields existed: its config has none of them, its weights load with no key
    # left over or missing, and it predicts what it predicted then.
    old = FIXTURES / "model_saved_before_the_move"
    model = ConvLSTMForFramePrediction.from_pretrained(old).eval()
    assert model.config.ensemble_noise_channels == 0 and model.forecaster.noise_injection is None
    assert set(model.state_dict()) == set(load_file(old / "model.safetensors"))
    io = load_file(FIXTURES / "model_saved_before_the_move_io.safetensors")
    with torch.no_grad():
        predictions = model(io["pixel_values"], num_output_frames=2).predictions
        one_member = model(io["pixel_values"], num_output_frames=2, num_members=1)
    torch.testing.assert_close(predictions, io["predictions"], rtol=0, atol=1e-6)
    assert torch.equal(one_member.members[:, 0], predictions) and torch.equal(
        one_member.predictions, predictions
    )
    # Adding the noise adds exactly two weights, and with them at zero every member is the deterministic forecast.
    plain, noisy = rain_model(ensemble_noise_channels=0), rain_model()
    extra = set(noisy.state_dict()) - set(plain.state_dict())
    assert extra == {"forecaster.noise_injection.conv.weight", "forecaster.noise_injection.conv.bias"}
    noisy.load_state_dict(plain.state_dict(), strict=False)
    torch.nn.init.zeros_(noisy.forecaster.noise_injection.conv.weight)
    torch.nn.init.zeros_(noisy.forecaster.noise_injection.conv.bias)
    pixel_values = torch.rand(2, 3, 1, 8, 12)
    with torch.no_grad():
        members = noisy(pixel_values, num_members=3, generator=seeded(0)).members
        expected = plain(pixel_values).predictions
    assert all(torch.equal(members[:, index], expected) for index in range(3))


def test_the_noise_convolution_starts_small_and_keeps_its_initialisation():
    model = rain_model(hidden_sizes=[16])
    torch.manual_seed(1)
    fresh = ConvLSTMForFramePrediction(model.config)
    conv = fresh.forecaster.noise_injection.conv
    assert conv.weight.shape == (64, 3, 3, 3) and conv.padding == (1, 1)
    # normal(0, 0.02), not the convolutions' kaiming_uniform (whose std here would be 1 / sqrt(3 * 27) = 0.11)
    assert 0.017 < conv.weight.std().item() < 0.023 and torch.count_nonzero(conv.bias) == 0


def test_members_are_reproducible_by_seed_and_their_mean_is_the_prediction():
    model = rain_model()
    pixel_values = torch.rand(2, 3, 1, 8, 12)
    with torch.no_grad():
        first = model(pixel_values, num_members=3, generator=seeded(7))
        again = model(pixel_values, num_members=3, generator=seeded(7))
        other = model(pixel_values, num_members=3, generator=seeded(8))
        single = model(pixel_values, generator=seeded(7)).predictions
        one = model(pixel_values, num_members=1, generator=seeded(7))
    assert first.members.shape == (2, 3, 2, 1, 8, 12) and first.predictions.shape == (2, 2, 1, 8, 12)
    assert torch.equal(first.members, again.members)
    assert (first.members - other.members).abs().max() > 1e-3
    assert (first.members[:, 0] - first.members[:, 1]).abs().max() > 1e-3  # members differ from each other
    torch.testing.assert_close(first.predictions, first.members.mean(1))
    # Without num_members an ensemble model gives one member, drawn as num_members=1 draws it.
    assert single.shape == (2, 2, 1, 8, 12) and torch.equal(single, one.members[:, 0])
    assert torch.equal(one.predictions, single) and (single - first.members[:, 0]).abs().max() > 1e-3


def test_many_members_of_a_model_without_noise_are_refused():
    model = rain_model(ensemble_noise_channels=0)
    with pytest.raises(ValueError, match=r"num_members=3 .*no noise \(config.ensemble_noise_channels=0\)"):
        model(torch.rand(1, 3, 1, 8, 12), num_members=3)
    with pytest.raises(ValueError, match=r"num_members=2 .*ensemble_noise_channels=0"):
        model.forecast_rain_rate(observed_rain(), num_members=2)
    with pytest.raises(ValueError, match="num_members must be a positive int, got 0"):
        rain_model()(torch.rand(1, 3, 1, 8, 12), num_members=0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int"):
        rain_model()(torch.rand(1, 3, 1, 8, 12), num_members=2, generator=3)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        rain_model().forecast_rain_rate(observed_rain(), num_members=2, seed=-1)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"ensemble_noise_channels": -1}, "ensemble_noise_channels must be an int >= 0, got -1"),
        ({"ensemble_noise_channels": 2.0}, "ensemble_noise_channels must be an int >= 0, got 2.0"),
        ({"ensemble_train_members": 0}, "ensemble_train_members must be a positive int, got 0"),
        (
            {"ensemble_train_members": 2, "ensemble_noise_channels": 0},
            r"ensemble_train_members=2 .*ensemble_noise_channels=0",
        ),
        ({"crps_alpha": 1.5}, r"crps_alpha must be a float in \[0, 1\], got 1.5"),
        ({"crps_alpha": True}, r"crps_alpha must be a float in \[0, 1\], got True"),
        ({"ensemble_members": 0}, "ensemble_members must be a positive int, got 0"),
        ({"ensemble_product": "mode"}, "ensemble_product must be one of .*'median'.*, got 'mode'"),
    ],
)
def test_bad_ensemble_fields_are_refused_by_name(overrides, message):
    options = dict(hidden_sizes=[4], ensemble_noise_channels=2)
    with pytest.raises(ValueError, match=message):
        ConvLSTMConfig(**{**options, **overrides})


def test_training_with_members_uses_the_almost_fair_crps_and_teaches_the_noise():
    model = rain_model(ensemble_train_members=2, crps_alpha=0.9).train()
    pixel_values, labels = torch.rand(2, 3, 1, 8, 12), torch.rand(2, 2, 1, 8, 12)
    mask = torch.rand(2, 2, 1, 8, 12) > 0.3
    output = model(pixel_values, labels=labels, loss_mask=mask, generator=seeded(0))
    assert output.members.shape == (2, 2, 2, 1, 8, 12) and torch.isfinite(output.loss)
    expected = almost_fair_crps(output.members.detach(), labels, mask, alpha=0.9)
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    output.loss.backward()
    gradient = model.forecaster.noise_injection.conv.weight.grad
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0
    # The same loss under activation checkpointing: the recomputed steps see the same noise.
    model.zero_grad()
    model.activation_checkpointing_enable()
    again = model(pixel_values, labels=labels, loss_mask=mask, generator=seeded(0))
    again.loss.backward()
    assert again.loss.item() == pytest.approx(output.loss.item(), rel=1e-6)
    torch.testing.assert_close(model.forecaster.noise_injection.conv.weight.grad, gradient)


def test_an_advection_ensemble_repeats_the_carried_frames_and_adds_the_motion_term():
    model = rain_model(
        advection=True, advection_warp="origin", motion_loss_weight=0.5, ensemble_train_members=3
    ).train()
    pixel_values, labels = torch.rand(2, 3, 1, 8, 12), torch.rand(2, 2, 1, 8, 12)
    motion = torch.randn(2, 2, 8, 12)
    output = model(pixel_values, labels=labels, target_motion=motion, generator=seeded(0))
    assert output.members.shape == (2, 3, 2, 1, 8, 12) and output.motion.shape == (6, 2, 2, 8, 12)
    crps = almost_fair_crps(output.members.detach(), labels, alpha=0.95)
    assert torch.isfinite(output.loss) and output.loss.item() > crps.item()  # the motion term is added
    output.loss.backward()
    assert model.forecaster.advection.conv.weight.grad.abs().sum() > 0


def test_the_fss_term_is_added_over_the_members_and_the_valid_pixels():
    model = rain_model(
        loss="weighted_mse", fss_loss_weight=1.0, fss_loss_windows=[3], ensemble_train_members=2
    ).train()
    pixel_values, labels = torch.rand(2, 3, 1, 8, 12), torch.rand(2, 2, 1, 8, 12)
    mask = torch.rand(2, 2, 1, 8, 12) > 0.3
    output = model(pixel_values, labels=labels, loss_mask=mask, generator=seeded(0))
    crps = almost_fair_crps(output.members.detach(), labels, mask)
    assert torch.isfinite(output.loss) and output.loss.item() > crps.item()


def test_a_few_steps_of_ensemble_training_lower_the_crps_of_a_fixed_batch():
    model = rain_model(ensemble_train_members=2).train()
    generator = torch.Generator().manual_seed(3)
    pixel_values = torch.rand(2, 3, 1, 8, 12, generator=generator)
    labels = torch.rand(2, 2, 1, 8, 12, generator=generator) * 0.5

    def crps() -> float:
        with torch.no_grad():  # the same noise every time: only the weights change
            return model(pixel_values, labels=labels, num_members=4, generator=seeded(0)).loss.item()

    before = crps()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(15):
        optimizer.zero_grad()
        model(pixel_values, labels=labels, generator=seeded(100 + step)).loss.backward()
        optimizer.step()
    assert crps() < 0.8 * before


def test_forecast_members_in_mm_h_for_torch_numpy_and_data_arrays():
    model = rain_model()
    rain = observed_rain()
    rain[1] = 0.0  # a dry sample: every member exactly 0
    rain[0, -1, :3, :4] = float("nan")  # no data in the last frame: NaN in every member
    members = model.forecast_rain_rate(rain, num_members=10, seed=1)
    assert members.shape == (2, 10, 2, 10, 13) and members.dtype == torch.float32
    same, other = (model.forecast_rain_rate(rain, num_members=10, seed=seed) for seed in (1, 2))
    torch.testing.assert_close(same, members, rtol=0, atol=0, equal_nan=True)
    assert (members - other).nan_to_num().abs().max() > 1e-3
    assert (members[1] == 0).all() and torch.isnan(members[0, :, :, :3, :4]).all()
    assert (members[0, :, :, 3:] >= 0).all() and members[0, 0].ne(members[0, 9]).any()
    # With a channel axis and as numpy: the same members, and a seed gives them whatever the model's chunks.
    as_numpy = model.forecast_rain_rate(rain.unsqueeze(2).numpy(), num_members=10, seed=1)
    assert isinstance(as_numpy, np.ndarray) and as_numpy.shape == (2, 10, 2, 1, 10, 13)
    np.testing.assert_array_equal(as_numpy[:, :, :, 0], members.numpy())
    # A model without noise has one member: its forecast.
    plain = rain_model(ensemble_noise_channels=0)
    one = plain.forecast_rain_rate(rain, num_members=1)
    assert one.shape == (2, 1, 2, 10, 13)
    torch.testing.assert_close(one[:, 0], plain.forecast_rain_rate(rain), rtol=0, atol=0, equal_nan=True)
    frames = xr.DataArray(
        rain[0].numpy(),
        dims=("time", "y", "x"),
        coords={"time": np.datetime64("2017-05-09T10:00", "ns") + np.timedelta64(5, "m") * np.arange(3)},
    )
    ensemble = model.forecast_rain_rate(frames, num_members=3, seed=1)
    assert ensemble.dims == ("member", "time", "y", "x") and ensemble.shape == (3, 2, 10, 13)
    assert list(ensemble.member.values) == [0, 1, 2] and ensemble.attrs["units"] == "mm h-1"
    np.testing.assert_array_equal(
        ensemble.values, model.forecast_rain_rate(rain[:1], num_members=3, seed=1)[0]
    )


def test_without_num_members_an_ensemble_model_forecasts_its_configured_product():
    rain = observed_rain()
    for product in ("mean", "median"):
        model = rain_model(ensemble_product=product)
        members = model.forecast_rain_rate(rain, num_members=4, seed=5)
        forecast = model.forecast_rain_rate(rain, seed=5)
        expected = members.mean(1) if product == "mean" else members.sort(1).values[:, 1:3].mean(1)
        assert forecast.shape == (2, 2, 10, 13)
        torch.testing.assert_close(forecast, expected)


def test_the_probability_matched_mean_has_the_mean_pattern_and_the_pooled_values():
    # Definition: in each frame, the pooled N * P members' values sorted ascending, every N-th kept starting at
    # N // 2, go to the pixels in the order of the members' mean.
    generator = torch.Generator().manual_seed(0)
    members = torch.rand(2, 5, 3, 6, 7, generator=generator) ** 3 * 10
    valid = torch.rand(2, 1, 6, 7, generator=generator) > 0.2
    matched = probability_matched_mean(members, valid)
    mean = members.mean(1)
    assert matched.shape == (2, 3, 6, 7)
    for b in range(2):
        for t in range(3):
            keep = valid[b, 0]
            pooled = members[b, :, t][:, keep].flatten().sort().values
            assert torch.equal(matched[b, t][keep].sort().values, pooled[5 // 2 :: 5])
            assert torch.equal(matched[b, t][keep].argsort(), mean[b, t][keep].argsort())
            assert torch.equal(matched[b, t][~keep], mean[b, t][~keep])
    # Through the model: the product's values in each frame are the pooled members' values subsampled.
    model = rain_model(ensemble_product="probability_matched_mean")
    rain = observed_rain()
    forecast = model.forecast_rain_rate(rain, seed=2)
    members = model.forecast_rain_rate(rain, num_members=4, seed=2)
    pooled = members[0, :, 1].flatten().sort().values
    assert torch.equal(forecast[0, 1].flatten().sort().values, pooled[2::4])


def test_exceedance_probabilities_are_fractions_of_members_and_fall_with_the_threshold():
    model = rain_model()
    rain = observed_rain()
    rain[0, -1, :3, :4] = float("nan")
    thresholds = (0.5, 1.0, 2.0, 5.0)
    probabilities = model.forecast_exceedance_probability(rain, thresholds, num_members=6, seed=4)
    members = model.forecast_rain_rate(rain, num_members=6, seed=4)
    assert probabilities.shape == (2, 4, 2, 10, 13)
    assert torch.isnan(probabilities[0, :, :, :3, :4]).all()
    known = probabilities[~torch.isnan(probabilities)]
    assert ((known >= 0) & (known <= 1)).all() and torch.equal(known * 6, (known * 6).round())
    assert (probabilities[:, 1:].nan_to_num() <= probabilities[:, :-1].nan_to_num()).all()
    assert 0 < known.mean() < 1  # some pixels certain, some not
    expected = exceedance_probability(members, thresholds)
    assert torch.equal(probabilities.nan_to_num(), expected.where(~torch.isnan(probabilities), 0.0))
    # The default is config.ensemble_members members; a DataArray gives a threshold dimension.
    torch.testing.assert_close(
        model.forecast_exceedance_probability(rain, seed=4),
        model.forecast_exceedance_probability(rain, num_members=4, seed=4),
        rtol=0,
        atol=0,
        equal_nan=True,
    )
    for bad in ((1.0, 0.5), (0.0, 1.0), (), "1", (1.0, float("inf"))):
        with pytest.raises(
            ValueError, match="thresholds must be a non-empty sequence of strictly increasing"
        ):
            model.forecast_exceedance_probability(rain, bad)
    frames = xr.DataArray(
        rain[1].numpy(),
        dims=("time", "y", "x"),
        coords={"time": np.datetime64("2017-05-09T10:00", "ns") + np.timedelta64(5, "m") * np.arange(3)},
    )
    as_data_array = model.forecast_exceedance_probability(frames, (1.0, 2.0), num_members=3, seed=0)
    assert as_data_array.dims == ("threshold", "time", "y", "x") and as_data_array.attrs["units"] == "1"
    assert list(as_data_array.threshold.values) == [1.0, 2.0]


def test_an_ensemble_model_round_trips_through_save_and_from_pretrained(tmp_path):
    model = rain_model(
        ensemble_train_members=3, crps_alpha=0.8, ensemble_members=7, ensemble_product="median"
    )
    model.save_pretrained(tmp_path)
    loaded = ConvLSTMForFramePrediction.from_pretrained(tmp_path).eval()
    for name in (
        "ensemble_noise_channels",
        "ensemble_train_members",
        "crps_alpha",
        "ensemble_members",
        "ensemble_product",
    ):
        assert getattr(loaded.config, name) == getattr(model.config, name), name
    assert torch.equal(
        loaded.forecaster.noise_injection.conv.weight, model.forecaster.noise_injection.conv.weight
    )
    pixel_values = torch.rand(1, 3, 1, 8, 12)
    with torch.no_grad():
        expected = model(pixel_values, num_members=2, generator=seeded(0)).members
        assert torch.equal(loaded(pixel_values, num_members=2, generator=seeded(0)).members, expected)
