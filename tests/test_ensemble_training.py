"""Ensembles in training and evaluation: the noise injection's own learning rate, fine-tuning a deterministic model
into an ensemble, the model as an ensemble forecaster beside STEPS, the card, and a tiny end-to-end ensemble run."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.data import generate_synthetic_rain
from bidirectional_conv_lstm.nowcasting.baselines import model_forecaster, steps_beside, steps_forecaster
from bidirectional_conv_lstm.nowcasting.card import create_nowcasting_model_card
from bidirectional_conv_lstm.nowcasting.evaluation import _with_model
from bidirectional_conv_lstm.training.arguments import TrainingArguments
from bidirectional_conv_lstm.training.loop import _optimizer, build_model, train

HAS_PYSTEPS = importlib.util.find_spec("pysteps") is not None
RAIN_MODEL = {"hidden_sizes": [4], "patch_size": 4, "rain_rate_transform": {"kind": "log1p"}}


def rain_model(**fields) -> ConvLSTMForFramePrediction:
    torch.manual_seed(0)
    return ConvLSTMForFramePrediction(ConvLSTMConfig(**RAIN_MODEL, **fields)).eval()


def test_noise_learning_rate_puts_the_noise_injection_in_groups_of_its_own():
    model = rain_model(ensemble_noise_channels=2, ensemble_train_members=2)
    args = TrainingArguments(learning_rate=3e-4, noise_learning_rate=2e-3, weight_decay=0.01)
    optimizer = _optimizer(args, model)
    noise = {id(p) for p in model.forecaster.noise_injection.parameters()}
    seen = 0
    for group in optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= noise or not ids & noise  # a group is all noise or none
        assert group["lr"] == (2e-3 if ids <= noise else 3e-4)
        assert group["weight_decay"] == (0.0 if all(p.ndim <= 1 for p in group["params"]) else 0.01)
        seen += len(ids)
    assert seen == len(list(model.parameters()))
    # without it, one learning rate for all
    plain = _optimizer(TrainingArguments(learning_rate=3e-4), model)
    assert {group["lr"] for group in plain.param_groups} == {3e-4}
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"noise_learning_rate must be in \(0, 1\) or null"):
            TrainingArguments(noise_learning_rate=bad)
    with pytest.raises(TypeError, match="noise_learning_rate must be float or null"):
        TrainingArguments(noise_learning_rate="fast")


def test_fine_tuning_a_deterministic_model_into_an_ensemble_adds_the_noise_injection(tmp_path):
    base = rain_model()
    base.save_pretrained(tmp_path / "base")
    args = TrainingArguments(
        model_name_or_path=str(tmp_path / "base"),
        model={"ensemble_noise_channels": 3, "ensemble_train_members": 2, "crps_alpha": 0.9},
        num_input_frames=2,
        num_output_frames=2,
    )
    model = build_model(args)
    assert model.config.ensemble_noise_channels == 3 and model.config.ensemble_train_members == 2
    weight = model.forecaster.noise_injection.conv.weight
    assert weight.shape[:2] == (4 * 4, 3) and 0.005 < weight.std().item() < 0.05  # normal(0, 0.02), not zeros
    for name, value in base.state_dict().items():  # the pretrained weights are kept
        torch.testing.assert_close(model.state_dict()[name], value, msg=name)
    frames = torch.rand(2, 4, 1, 16, 16) * 0.5
    output = model.train()(pixel_values=frames[:, :2], labels=frames[:, 2:])
    assert output.members.shape == (2, 2, 2, 1, 16, 16) and torch.isfinite(output.loss)
    output.loss.backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_an_ensemble_model_is_an_ensemble_forecaster_with_its_product():
    model = rain_model(ensemble_noise_channels=2, ensemble_members=3, ensemble_product="median")
    forecaster = model_forecaster(model)
    assert forecaster.num_members == 3
    observed = np.asarray(generate_synthetic_rain(2, num_frames=3, size=16, seed=1))
    members = forecaster(observed, num_output_frames=2)
    assert members.shape == (2, 3, 2, 16, 16) and np.isfinite(members).all() and (members >= 0).all()
    np.testing.assert_array_equal(members, forecaster(observed, num_output_frames=2))  # seeded: repeatable
    product = forecaster.deterministic(torch.as_tensor(members))
    torch.testing.assert_close(
        product, torch.as_tensor(members).median(dim=1).values
    )  # odd N: the middle member
    one = model_forecaster(model, num_members=1)
    assert not hasattr(one, "num_members") and one(observed, num_output_frames=2).shape == (2, 2, 16, 16)
    with pytest.raises(ValueError, match="num_members=4 needs an ensemble model"):
        model_forecaster(rain_model(), num_members=4)
    with pytest.raises(ValueError, match="num_members must be an int >= 2, got 1"):
        steps_forecaster(1)
    steps = steps_forecaster(5, kmperpixel=4.0, timestep_minutes=5.0)
    assert steps.num_members == 5 and steps.keywords["kmperpixel"] == 4.0 and steps.min_input_frames == 3
    # the STEPS a model is scored beside: its member count, its grid
    beside = steps_beside(forecaster, model.config)
    assert (
        beside.num_members == 3
        and "kmperpixel" not in beside.keywords
        and "timestep_minutes" not in beside.keywords
    )
    config = ConvLSTMConfig(**RAIN_MODEL, pixel_size=4000.0, time_step=10.0)
    beside = steps_beside(model_forecaster(rain_model()), config, timestep_minutes=5.0)
    assert beside.num_members == 20 and beside.keywords["kmperpixel"] == 4.0
    assert beside.keywords["timestep_minutes"] == 10.0  # the model's own, before the data's


def test_the_card_of_an_ensemble_model_says_how_to_ask_for_members():
    config = rain_model(ensemble_noise_channels=8, ensemble_train_members=4, ensemble_members=20).config
    text = str(create_nowcasting_model_card(config, model_id="me/rain"))
    assert "An ensemble model" in text and "8 channels" in text and "over 4" in text
    assert "forecast_exceedance_probability" in text and "num_members=50" in text
    assert "An ensemble model" not in str(
        create_nowcasting_model_card(rain_model().config, model_id="me/rain")
    )


@pytest.mark.skipif(not HAS_PYSTEPS, reason="STEPS needs pysteps (the nowcasting extra)")
def test_tiny_ensemble_run_trains_with_the_crps_and_scores_members_beside_steps(tmp_path):
    values = {
        "dataset": "synthetic_rain",
        "data": {"num_train": 8, "num_validation": 4, "num_test": 4, "num_frames": 6, "size": 32},
        "model": {
            **RAIN_MODEL,
            "ensemble_noise_channels": 2,
            "ensemble_train_members": 2,
            "ensemble_members": 3,
        },
        "num_input_frames": 3,
        "num_output_frames": 3,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "max_train_steps": 2,
        "eval_steps": 2,
        "eval_num_samples": 4,
        "test_num_samples": 4,
        "num_threads": 1,
        "noise_learning_rate": 2e-3,
        "output_dir": str(tmp_path / "run"),
    }
    values["data"]["cache_dir"] = str(tmp_path / "cache")
    test = train(TrainingArguments(**values))["test"]
    for name in ("model", "steps"):
        entry = test["methods"][name]
        assert entry["num_members"] == 3, name
        assert entry["probabilistic"]["overall"]["crps"] >= 0 and 0 <= entry["overall"]["csi@0.5"] <= 1, name
        assert len(entry["probabilistic"]["per_lead_time"]["crps"]) == 3, name
    for name in ("persistence", "extrapolation", "sprog"):
        assert "probabilistic" not in test["methods"][name]
    output = tmp_path / "run"
    for name in (
        "eval/reliability.png",
        "eval/rank_histograms.png",
        "README.md",
        "model_members.png",
        "model_exceedance.png",
        "steps_members.png",
    ):
        assert (output / name).is_file(), name
    card = (output / "README.md").read_text()
    assert "An ensemble model" in card and "STEPS (pysteps)" in card
    # the reliability diagram and rank histograms the card shows are the run's own files
    for picture in ("eval/reliability.png", "eval/rank_histograms.png"):
        assert f"]({picture})" in card and (output / picture).is_file()
    reloaded = ConvLSTMForFramePrediction.from_pretrained(output)
    assert reloaded.config.ensemble_noise_channels == 2 and reloaded.forecaster.noise_injection is not None


def test_an_evaluation_scores_the_model_first_and_steps_with_its_member_count():
    model = rain_model(ensemble_noise_channels=2, ensemble_members=3)
    methods = _with_model(
        model, {"persistence": "persistence", "steps": "steps"}, SimpleNamespace(autocast=None)
    )
    assert list(methods) == ["model", "persistence", "steps"]
    assert methods["model"].num_members == methods["steps"].num_members == 3
    plain = _with_model(rain_model(), {"steps": "steps"}, SimpleNamespace(autocast=None))
    assert plain["steps"].num_members == 20 and not hasattr(plain["model"], "num_members")
