"""Losses of the field: masked, intensity-weighted MSE / MAE (Shi et al. 2017) against a float64 reference, and the
rain-rate options of the config (transform, thresholds, weights) through save / from_pretrained."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers.utils import find_labels

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.models.convlstm.losses_convlstm import (
    fractions_skill_loss,
    frame_prediction_loss,
    rain_rate_weights,
)
from bidirectional_conv_lstm.models.convlstm.rain_rate import RainRateTransform
from bidirectional_conv_lstm.nowcasting.verification import NowcastVerifier

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"hidden_sizes": [4], "patch_size": 2, "num_input_frames": 3, "num_output_frames": 2}


def reference_weight(rain: float, thresholds, weights) -> float:
    """The balanced-loss weight of one pixel, written out as the paper states it (with the documented 1e-4
    relative tolerance at the thresholds)."""
    weight = weights[0]
    for threshold, step_weight in zip(thresholds, weights[1:]):
        if rain >= threshold * (1 - 1e-4):
            weight = step_weight
    return weight


def reference_loss(predictions, labels, mask, kind, transform, thresholds, weights, l1_weight=1.0) -> float:
    """float64, one pixel at a time: sum over valid pixels of w * error, divided by the number of valid pixels."""
    predictions = np.asarray(predictions, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=np.float64).ravel()
    mask = np.ones(labels.shape, bool) if mask is None else np.asarray(mask).ravel()
    rain = transform.inverse(labels)  # numpy float64 path of the transform
    squared = absolute = 0.0
    for p, y, r, ok in zip(predictions, labels, rain, mask):
        if ok:
            w = reference_weight(float(r), thresholds, weights)
            squared += w * (p - y) ** 2
            absolute += w * abs(p - y)
    count = max(int(mask.sum()), 1)
    return {
        "weighted_mse": squared / count,
        "weighted_mae": absolute / count,
        "weighted_mse+mae": (squared + l1_weight * absolute) / count,
    }[kind]


def rain_batch(transform, shape=(2, 3, 1, 6, 5), seed=0):
    """Labels spanning every weight band (0 to 60 mm/h, exact threshold values included), predictions near them."""
    generator = torch.Generator().manual_seed(seed)
    rain = torch.rand(shape, generator=generator) ** 3 * 60
    rain.view(-1)[:5] = torch.tensor([2.0, 5.0, 10.0, 30.0, 0.0])  # exactly at the thresholds: ">="
    labels = transform.forward(rain)
    predictions = (labels + 0.2 * torch.randn(shape, generator=generator)).clamp(0, 1)
    mask = torch.rand(shape, generator=generator) > 0.3
    return predictions, labels, mask


def test_rain_rate_weights_step_up_at_the_thresholds():
    rain = torch.tensor([0.0, 1.99, 2.0, 1.9999998, 4.9, 5.0, 9.99, 10.0, 29.0, 30.0, 200.0])
    got = rain_rate_weights(rain, (2, 5, 10, 30), (1, 2, 5, 10, 30))
    assert got.tolist() == [1, 1, 2, 2, 2, 5, 5, 10, 10, 30, 30]
    with pytest.raises(ValueError, match="one more entry"):
        rain_rate_weights(rain, (2, 5), (1, 2))


@pytest.mark.parametrize("kind", ["weighted_mse", "weighted_mae", "weighted_mse+mae"])
@pytest.mark.parametrize("transform_kind", ["dbr", "log1p"])
@pytest.mark.parametrize("masked", [True, False])
def test_weighted_losses_match_a_float64_reference(kind, transform_kind, masked):
    transform = RainRateTransform(transform_kind)
    predictions, labels, mask = rain_batch(transform)
    mask = mask if masked else None
    thresholds, weights = (2.0, 5.0, 10.0, 30.0), (1.0, 2.0, 5.0, 10.0, 30.0)
    got = frame_prediction_loss(
        predictions,
        labels,
        kind,
        loss_mask=mask,
        rain_rate_inverse=transform.inverse,
        thresholds=thresholds,
        weights=weights,
        l1_weight=0.5,
    )
    expected = reference_loss(predictions, labels, mask, kind, transform, thresholds, weights, l1_weight=0.5)
    assert got.dtype == torch.float32 and got.shape == ()
    assert math.isclose(got.item(), expected, rel_tol=1e-5)


def test_model_loss_uses_the_configured_thresholds_and_weights_and_ignores_invalid_pixels():
    transform = RainRateTransform("dbr")
    config = ConvLSTMConfig(
        **TINY,
        loss="weighted_mse",
        rain_rate_transform=transform.to_dict(),
        loss_thresholds=[1.0, 20.0],
        loss_weights=[0.5, 3.0, 7.0],
    )
    model = ConvLSTMForFramePrediction(config)
    pixel_values = torch.rand(2, 3, 1, 6, 6)
    _, labels, mask = rain_batch(transform, shape=(2, 2, 1, 6, 6), seed=3)
    out = model(pixel_values, labels=labels, loss_mask=mask)
    expected = reference_loss(
        out.predictions.detach(), labels, mask, "weighted_mse", transform, (1.0, 20.0), (0.5, 3.0, 7.0)
    )
    assert math.isclose(out.loss.item(), expected, rel_tol=1e-5)
    # Whatever an invalid label pixel holds, the loss and the gradients do not change.
    scrambled = torch.where(mask, labels, torch.rand_like(labels))
    again = model(pixel_values, labels=scrambled, loss_mask=mask)
    assert torch.equal(again.loss, out.loss)
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("loss", ["mse", "l1", "mse+l1", "bce"])
def test_image_losses_average_over_valid_pixels(loss):
    model = ConvLSTMForFramePrediction(ConvLSTMConfig(**TINY, loss=loss, l1_weight=0.25))
    predictions, labels = torch.rand(2, 2, 1, 4, 4, dtype=torch.float64), torch.rand(2, 2, 1, 4, 4)
    mask = torch.rand(2, 2, 1, 4, 4) > 0.5
    p, y = predictions[mask], labels[mask].double()
    expected = {
        "mse": ((p - y) ** 2).mean(),
        "l1": (p - y).abs().mean(),
        "mse+l1": ((p - y) ** 2).mean() + 0.25 * (p - y).abs().mean(),
        "bce": -(y * p.log() + (1 - y) * (1 - p).log()).mean(),
    }[loss]
    got = model.compute_loss(predictions, labels, loss_mask=mask)
    assert math.isclose(got.item(), expected.item(), rel_tol=1e-5)


def test_loss_mask_is_checked_and_is_no_label_for_the_trainer():
    # transformers.Trainer takes every forward argument with "label" in its name for a label, and evaluates
    # without a loss when one is missing: the mask must not look like one.
    assert find_labels(ConvLSTMForFramePrediction) == ["labels"]
    model = ConvLSTMForFramePrediction(ConvLSTMConfig(**TINY))
    pixel_values, labels = torch.rand(1, 3, 1, 4, 4), torch.rand(1, 2, 1, 4, 4)
    with pytest.raises(ValueError, match="loss_mask must be a bool tensor"):
        model(pixel_values, labels=labels, loss_mask=torch.ones(1, 2, 1, 4, 4))
    with pytest.raises(ValueError, match="loss_mask must be a bool tensor"):
        model(pixel_values, labels=labels, loss_mask=torch.ones(1, 1, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="without labels"):
        model(pixel_values, loss_mask=torch.ones(1, 2, 1, 4, 4, dtype=torch.bool))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"loss": "weighted_mse"}, "needs rain_rate_transform"),
        ({"rain_rate_transform": "dbr"}, "rain_rate_transform must be a dict"),
        ({"rain_rate_transform": {"kind": "db"}}, "not a valid transform"),
        ({"rain_rate_transform": {"kind": "dbr", "scale": -1.0}}, "not a valid transform"),
        ({"loss_thresholds": [5.0, 2.0]}, "loss_thresholds"),
        ({"loss_thresholds": [0.0, 2.0], "loss_weights": [1, 2, 3]}, "loss_thresholds"),
        ({"loss_weights": [1.0, 2.0]}, "loss_weights"),
        ({"loss_weights": [1.0, 2.0, 5.0, 10.0, -30.0]}, "loss_weights"),
        ({"fss_loss_weight": 1.0}, "adds an FSS term to the rain-rate losses"),
        ({"fss_loss_weight": -1.0}, "fss_loss_weight must be a finite float >= 0"),
        ({"fss_loss_thresholds": []}, "fss_loss_thresholds"),
        ({"fss_loss_thresholds": [0.0]}, "fss_loss_thresholds"),
        ({"fss_loss_windows": [0]}, "fss_loss_windows"),
        ({"fss_loss_windows": [4.5]}, "fss_loss_windows"),
    ],
)
def test_config_rejects_bad_rain_rate_options(overrides, message):
    with pytest.raises(ValueError, match=message):
        ConvLSTMConfig(**TINY, **overrides)


@pytest.mark.parametrize("kind", ["dbr", "log1p", "linear"])
def test_transform_and_loss_options_round_trip_through_save_and_from_pretrained(tmp_path, kind):
    transform = (
        RainRateTransform(kind, threshold=0.2) if kind != "linear" else RainRateTransform(kind, scale=50.0)
    )
    config = ConvLSTMConfig(
        **TINY,
        loss="weighted_mae",
        rain_rate_transform=transform.to_dict(),
        loss_thresholds=(1.0, 4.0),
        loss_weights=(1.0, 3.0, 9.0),
        fss_loss_weight=0.5,
        fss_loss_thresholds=(0.5, 2.0),
        fss_loss_windows=(4, 9),
    )
    ConvLSTMForFramePrediction(config).save_pretrained(tmp_path)
    loaded = ConvLSTMForFramePrediction.from_pretrained(tmp_path)
    assert loaded.rain_rate_transform == transform
    assert (loaded.config.loss_thresholds, loaded.config.loss_weights) == ([1.0, 4.0], [1.0, 3.0, 9.0])
    assert loaded.config.loss == "weighted_mae"
    assert (loaded.config.fss_loss_weight, loaded.config.fss_loss_thresholds) == (0.5, [0.5, 2.0])
    assert loaded.config.fss_loss_windows == [4, 9]
    rain = torch.tensor([0.0, 0.5, 3.0, 40.0])
    torch.testing.assert_close(loaded.rain_rate_transform.inverse(transform.forward(rain)), rain)
    assert ConvLSTMForFramePrediction(ConvLSTMConfig(**TINY)).rain_rate_transform is None


def binary_rain(shape, seed, wet=0.3):
    """Fields of 0 or 10 mm/h (far from a 1 mm/h threshold, where the soft threshold is exact)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator) < wet).float() * 10.0


@pytest.mark.parametrize("masked", [False, True])
def test_fractions_skill_loss_is_one_minus_the_verification_fss(masked):
    shape = (2, 3, 23, 19)  # odd and even sides; windows larger than the field's side included
    forecast, observed = binary_rain(shape, 1), binary_rain(shape, 2)
    valid = torch.rand(shape, generator=torch.Generator().manual_seed(3)) > 0.2 if masked else None
    windows = (1, 4, 9, 16, 30)
    got = fractions_skill_loss(forecast, observed, thresholds=(1.0, 5.0), windows=windows, valid=valid)
    verifier = NowcastVerifier(thresholds=(1.0, 5.0), fss_windows=windows)
    verifier.update(forecast, observed, valid)
    overall = verifier.compute()["overall"]
    expected = np.mean([1.0 - overall[f"fss@{t}/{n}"] for t in (1, 5) for n in windows])
    assert math.isclose(got.item(), expected, rel_tol=1e-4)  # float32 running sums against float64
    # A perfect forecast scores 0; no event anywhere is 0 too (not NaN).
    assert fractions_skill_loss(observed, observed, thresholds=(1.0,), windows=(4,)).item() == pytest.approx(
        0.0
    )
    dry = torch.zeros(shape)
    assert fractions_skill_loss(dry, dry, thresholds=(1.0,), windows=(4,)).item() == 0.0


def test_fractions_skill_loss_has_a_gradient_near_the_threshold_and_none_from_invalid_pixels():
    observed = binary_rain((1, 2, 16, 16), 4)
    forecast = (torch.rand(1, 2, 16, 16, generator=torch.Generator().manual_seed(5)) * 2).requires_grad_()
    valid = torch.ones(1, 2, 16, 16, dtype=torch.bool)
    valid[..., :4, :] = False
    fractions_skill_loss(forecast, observed, thresholds=(1.0,), windows=(4,), valid=valid).backward()
    gradient = forecast.grad
    assert torch.isfinite(gradient).all()
    assert gradient[..., 4:, :].abs().sum() > 0
    assert torch.all(gradient[..., :4, :] == 0)


def test_model_adds_the_weighted_fss_term_to_the_weighted_loss():
    transform = RainRateTransform("log1p")
    options = {**TINY, "loss": "weighted_mse+mae", "rain_rate_transform": transform.to_dict()}
    plain = ConvLSTMForFramePrediction(ConvLSTMConfig(**options))
    with_fss = ConvLSTMForFramePrediction(
        ConvLSTMConfig(**options, fss_loss_weight=0.7, fss_loss_thresholds=[0.5, 2.0], fss_loss_windows=[3])
    )
    with_fss.load_state_dict(plain.state_dict())
    pixel_values = torch.rand(2, 3, 1, 6, 6)
    _, labels, mask = rain_batch(transform, shape=(2, 2, 1, 6, 6), seed=7)
    base = plain(pixel_values, labels=labels, loss_mask=mask)
    out = with_fss(pixel_values, labels=labels, loss_mask=mask)
    term = fractions_skill_loss(
        transform.inverse(out.predictions.detach()),
        transform.inverse(labels),
        thresholds=(0.5, 2.0),
        windows=(3,),
        valid=mask,
    )
    assert term.item() > 0
    assert math.isclose(out.loss.item(), base.loss.item() + 0.7 * term.item(), rel_tol=1e-5)


# --- the almost fair CRPS of ensembles ----------------------------------------------------------------------------


def reference_almost_fair_crps(members, target, mask=None, alpha=0.95) -> float:
    """float64, element by element, the pair sum written the plain O(M**2) way (Lang et al. 2024, eq. for afCRPS)."""
    members = np.asarray(members, dtype=np.float64)
    count = members.shape[1]
    members = np.moveaxis(members, 1, -1).reshape(-1, count)
    target = np.asarray(target, dtype=np.float64)
    keep = np.ones(target.size, bool) if mask is None else np.broadcast_to(mask, target.shape).ravel()
    target = target.ravel()
    epsilon = (1 - alpha) / count
    scores = []
    for x, y, counted in zip(members, target, keep):
        if not counted:
            continue
        pairs = sum(abs(x[j] - x[k]) for j in range(count) for k in range(count) if j != k)
        scores.append(np.mean(np.abs(x - y)) - (1 - epsilon) * pairs / (2 * count * (count - 1)))
    return float(np.mean(scores))


@pytest.mark.parametrize("alpha", [1.0, 0.95, 0.5])
def test_almost_fair_crps_matches_a_float64_reference(alpha):
    from bidirectional_conv_lstm.models.convlstm.losses_convlstm import almost_fair_crps

    generator = torch.Generator().manual_seed(0)
    members = torch.randn(3, 5, 2, 1, 4, 6, generator=generator)
    members[:, 1] = members[:, 0]  # tied members
    target = torch.randn(3, 2, 1, 4, 6, generator=generator)
    value = almost_fair_crps(members, target, alpha=alpha)
    assert value.dtype == torch.float32 and value.shape == ()
    assert value.item() == pytest.approx(reference_almost_fair_crps(members, target, alpha=alpha), rel=1e-5)
    double = almost_fair_crps(members.double(), target.double(), alpha=alpha)
    assert double.dtype == torch.float64
    assert double.item() == pytest.approx(reference_almost_fair_crps(members, target, alpha=alpha), rel=1e-12)


def test_almost_fair_crps_masks_and_ignores_nan_under_the_mask():
    from bidirectional_conv_lstm.models.convlstm.losses_convlstm import almost_fair_crps

    generator = torch.Generator().manual_seed(1)
    members = torch.randn(2, 4, 3, 5, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 3, 5, 5, generator=generator, dtype=torch.float64)
    mask = torch.rand(2, 3, 5, 5, generator=generator) < 0.6
    target[~mask] = math.nan  # no-data under the mask
    value = almost_fair_crps(members, target, mask=mask)
    expected = reference_almost_fair_crps(members.detach(), target, mask.numpy())
    assert value.item() == pytest.approx(expected, rel=1e-12)
    value.backward()
    gradient = members.grad.movedim(1, -1)
    assert torch.isfinite(gradient).all()
    assert (gradient[~mask] == 0).all() and (gradient[mask] != 0).any()
    nothing = almost_fair_crps(members, target, mask=torch.zeros(2, 3, 5, 5, dtype=torch.bool))
    assert nothing.item() == 0.0
    broadcast = almost_fair_crps(members, torch.nan_to_num(target), mask=torch.ones(5, 5, dtype=torch.bool))
    assert broadcast.item() == pytest.approx(almost_fair_crps(members, torch.nan_to_num(target)).item())


def test_almost_fair_crps_gradient_is_exact():
    from bidirectional_conv_lstm.models.convlstm.losses_convlstm import almost_fair_crps

    generator = torch.Generator().manual_seed(2)
    members = torch.randn(2, 4, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 3, 3, generator=generator, dtype=torch.float64)
    mask = torch.rand(2, 3, 3, generator=generator) < 0.7
    assert torch.autograd.gradcheck(lambda x: almost_fair_crps(x, target, mask=mask, alpha=0.9), (members,))


def test_fair_crps_is_unbiased_for_any_ensemble_size():
    """Members drawn from the observation's distribution N(0, 1): the fair CRPS averages to that distribution's CRPS,
    1 / sqrt(pi), for 2 members as for 8; the plain ensemble CRPS (1/(2 M**2) on the pairs) does not; a shifted or
    too narrow ensemble scores worse."""
    from bidirectional_conv_lstm.models.convlstm.losses_convlstm import almost_fair_crps

    generator = torch.Generator().manual_seed(3)
    samples = 200_000
    target = torch.randn(samples, generator=generator, dtype=torch.float64)
    crps_of_the_distribution = 1.0 / math.sqrt(math.pi)
    for count in (2, 8):
        members = torch.randn(samples, count, generator=generator, dtype=torch.float64)
        fair = almost_fair_crps(members, target, alpha=1.0).item()
        assert fair == pytest.approx(crps_of_the_distribution, abs=0.005)  # standard error ~0.001
        plain = almost_fair_crps(members, target, alpha=0.0).item()  # 1/(2 M**2) on the pair term
        assert plain > crps_of_the_distribution + 0.9 * (1 / math.sqrt(math.pi)) / count  # E|X-X'| / 2M
        shifted = almost_fair_crps(members + 0.5, target, alpha=1.0).item()
        narrow = almost_fair_crps(members * 0.5, target, alpha=1.0).item()
        assert shifted > fair + 0.05 and narrow > fair + 0.03
        almost = almost_fair_crps(members, target, alpha=0.95).item()
        assert fair < almost < fair + 0.05 / count  # (1 - alpha) / M of the pair term added back


def test_almost_fair_crps_refuses_bad_arguments():
    from bidirectional_conv_lstm.models.convlstm.losses_convlstm import almost_fair_crps

    members, target = torch.zeros(2, 3, 4), torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"members must hold M >= 2 .* got shape \(2, 1, 4\)"):
        almost_fair_crps(members[:, :1], target)
    with pytest.raises(ValueError, match=r"target must be .*\(2, 4\), got \(2, 3\)"):
        almost_fair_crps(members, target[:, :3])
    for alpha in (-0.1, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match="alpha must be a number in"):
            almost_fair_crps(members, target, alpha=alpha)
