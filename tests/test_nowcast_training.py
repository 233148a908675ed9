"""Nowcasting in the training loop: the radar data options (whole held-out events), and a tiny two-stage run
(synthetic pretraining, then radar windows) that trains, scores the model beside the baselines, saves, reloads and
forecasts mm/h."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bidirectional_conv_lstm import ConvLSTMForFramePrediction
from bidirectional_conv_lstm.data import generate_synthetic_rain
from bidirectional_conv_lstm.nowcasting.data import load_rain_datasets
from bidirectional_conv_lstm.nowcasting.recipe import nowcasting_stages, run_nowcasting_recipe
from bidirectional_conv_lstm.training.arguments import TrainingArguments
from bidirectional_conv_lstm.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
SHARED_RADAR = ROOT.parent / "shared" / "radar"
EVENTS = ("north", "south", "east")
# The extrapolation and S-PROG baselines need pysteps (pip install -e ".[nowcasting]"); CI installs it.
HAS_PYSTEPS = importlib.util.find_spec("pysteps") is not None


@pytest.fixture(scope="module")
def radar_stacks(tmp_path_factory) -> list[dict]:
    """Three small events as (T, H, W) mm/h stacks with a no-data corner, as RadarSource fields."""
    folder = tmp_path_factory.mktemp("radar_stacks")
    rain = generate_synthetic_rain(len(EVENTS), num_frames=12, size=32, seed=3, speed_range=(0.5, 1.5))
    sources = []
    for name, event in zip(EVENTS, rain):
        event[:, :3, :5] = np.nan  # outside the radar range
        np.save(folder / f"{name}.npy", event)
        sources.append({"name": name, "path": str(folder / f"{name}.npy"), "timestep": 5})
    return sources


def radar_arguments(sources, cache_dir, **overrides) -> dict:
    values = {
        "dataset": "radar",
        "data": {
            "sources": sources,
            "test_events": ["east"],
            "validation_events": ["south"],
            "tile_size": 16,
            "time_block_fractions": [1.0, 0.0, 0.0],  # the training event trains whole
            "train_crops_per_window": 2,
            "cache_dir": str(cache_dir),
        },
        "model": {"hidden_sizes": [4], "patch_size": 4, "rain_rate_transform": {"kind": "log1p"}},
        "num_input_frames": 3,
        "num_output_frames": 3,
    }
    values.update(overrides)
    return values


def test_radar_runs_hold_out_whole_events_and_check_their_options_first(radar_stacks, tmp_path):
    args = TrainingArguments(**radar_arguments(radar_stacks, tmp_path))
    splits = load_rain_datasets(args)
    assert {split: set(splits[split]["event"]) for split in ("train", "validation", "test")} == {
        "train": {"north"},
        "validation": {"south"},
        "test": {"east"},
    }
    assert {name: info["role"] for name, info in splits["info"]["events"].items()} == {
        "north": "train",
        "south": "validation",
        "east": "test",
    }
    bad = [
        ({"test_events": ["west"]}, ValueError, "unknown events"),
        ({"test_events": ["east"], "validation_events": ["east"]}, ValueError, "both"),
        ({"test_events": ["north", "east"], "validation_events": ["south"]}, ValueError, "none is left"),
        ({"event_overrides": {"north": {"tile_size": 8}}}, ValueError, "may not change"),
        ({"sources": None}, ValueError, "data.root"),
        ({"root": str(tmp_path / "nowhere"), "sources": None}, FileNotFoundError, "data.root"),
        ({"tile_sizes": 16}, ValueError, "unknown radar options"),
    ]
    for change, error, message in bad:
        values = radar_arguments(radar_stacks, tmp_path)
        values["data"] = {**values["data"], **change}
        with pytest.raises(error, match=message):
            TrainingArguments(**values)
    with pytest.raises(ValueError, match="rain_rate_transform"):
        TrainingArguments(**radar_arguments(radar_stacks, tmp_path, model={"hidden_sizes": [4]}))


@pytest.mark.parametrize("augment", [True, False])
def test_only_training_batches_are_augmented_from_the_run_seed(radar_stacks, tmp_path, augment):
    from bidirectional_conv_lstm.nowcasting.task import RainRateTask

    values = radar_arguments(radar_stacks, tmp_path, seed=11)
    values["data"] = {**values["data"], "augment": augment}
    args = TrainingArguments(**values)
    splits = load_rain_datasets(args)
    task = RainRateTask(args, splits)
    assert (task.train_collator.augment, task.train_collator.seed) == (augment, 11)
    assert task.collator.augment is False  # validation and test windows are scored as they are
    windows = [splits["train"][i] for i in range(4)]
    plain, trained = task.collator(windows), task.train_collator(windows)
    turned = not torch.equal(plain["pixel_values"], trained["pixel_values"])
    assert turned is augment
    # model_inputs only renames the collator's mask: the batch is not turned a second time.
    inputs = task.model_inputs(trained)
    assert inputs["pixel_values"] is trained["pixel_values"] and inputs["loss_mask"] is trained["labels_mask"]


def test_scoring_one_split_lets_every_event_be_held_out(radar_stacks, tmp_path):
    from bidirectional_conv_lstm.nowcasting.evaluation import evaluate_rain_dataset

    east = [source for source in radar_stacks if source["name"] == "east"]
    data = {
        "sources": east,
        "split": "event",
        "test_events": ["east"],
        "tile_size": 16,
        "cache_dir": str(tmp_path),
    }
    frames = {"num_input_frames": 3, "num_output_frames": 3}
    results = evaluate_rain_dataset("radar", data=data, baselines=["persistence"], **frames)
    assert results["num_windows"] > 0 and list(results["methods"]) == ["persistence"]
    with pytest.raises(ValueError, match="give no validation windows"):
        evaluate_rain_dataset("radar", data=data, split="validation", baselines=["persistence"], **frames)
    # A training run on the same data is refused before any file is read.
    with pytest.raises(ValueError, match="none is left to train on"):
        TrainingArguments(**radar_arguments(east, tmp_path, data={**data, "sources": east}))
    with pytest.raises(ValueError, match="data has unknown radar options \\['tile'\\]"):
        evaluate_rain_dataset("radar", data={**data, "tile": 16}, baselines=["persistence"], **frames)


def test_lucas_kanade_motion_is_the_windows_motion():
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    import datasets

    from bidirectional_conv_lstm.data.rain.storage import encode_rain_rate, rain_window_features
    from bidirectional_conv_lstm.nowcasting.data import add_lucas_kanade_motion
    from test_nowcasting_baselines import translated_rain  # moves (x, y) = (2, 1) pixels a frame

    rows = [
        {
            "rain_rate": encode_rain_rate(translated_rain(6, 48, seed))[:, None],
            "event": "e",
            "origin": "",
            "y": 0,
            "x": 0,
        }
        for seed in range(3)
    ]
    windows = datasets.Dataset.from_list(rows, features=rain_window_features(6, 48, 48)).with_format("numpy")
    with_motion = add_lucas_kanade_motion(windows, 4, batch_size=2)
    assert with_motion.features["motion"].shape == (2, 48, 48)
    motion = np.stack(with_motion["motion"])
    assert motion.dtype == np.float32
    rain = np.stack([translated_rain(6, 48, seed)[3] for seed in range(3)])
    wet = rain >= 1.0
    np.testing.assert_allclose([motion[:, 0][wet].mean(), motion[:, 1][wet].mean()], [2.0, 1.0], atol=0.3)
    np.testing.assert_array_equal(np.stack(with_motion["rain_rate"]), np.stack(windows["rain_rate"]))


def test_radar_training_windows_can_carry_lucas_kanade_motion_to_the_motion_term(radar_stacks, tmp_path):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    from bidirectional_conv_lstm.nowcasting.task import RainRateTask

    values = radar_arguments(radar_stacks, tmp_path)
    values["data"] = {**values["data"], "train_motion": "lucas_kanade"}
    values["model"] = {**values["model"], "advection": True, "motion_loss_weight": 1.0}
    args = TrainingArguments(**values)
    splits = load_rain_datasets(args)
    assert "motion" in splits["train"].column_names
    assert "motion" not in splits["validation"].column_names and "motion" not in splits["test"].column_names
    task = RainRateTask(args, splits)
    batch = task.train_collator([splits["train"][i] for i in range(4)])
    assert task.model_inputs(batch)["target_motion"] is batch["target_motion"]
    model = ConvLSTMForFramePrediction(args.model_config())
    with_motion = model(**task.model_inputs(batch)).loss
    without = model(
        pixel_values=batch["pixel_values"], labels=batch["labels"], loss_mask=batch["labels_mask"]
    ).loss
    assert with_motion > without  # the untrained head moves nothing; the windows' rain moves
    # A model without a motion term is not handed the motion.
    values["model"] = {**values["model"], "motion_loss_weight": 0.0}
    plain = RainRateTask(TrainingArguments(**values), splits)
    assert "target_motion" not in plain.model_inputs(batch)
    values["data"] = {**values["data"], "train_motion": "optical_flow"}
    with pytest.raises(
        ValueError, match="data.train_motion must be one of \\[None, 'lucas_kanade'\\], got 'optical_flow'"
    ):
        TrainingArguments(**values)


def test_a_resumed_radar_run_turns_its_windows_as_the_whole_run_did(radar_stacks, tmp_path):
    """Training windows are turned and flipped at random; a run resumed mid-epoch from its step-2 checkpoint
    (14 windows, 3 batches an epoch: it crosses into epoch 2) ends with the uninterrupted run's weights."""
    import shutil

    from test_training import state_hash

    values = radar_arguments(radar_stacks, tmp_path / "cache", seed=3)
    values.update(
        output_dir=str(tmp_path / "whole"),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        max_train_steps=6,
        warmup_steps=0,
        eval_steps=6,
        eval_num_samples=4,
        test_num_samples=2,
        checkpointing_steps=2,
        checkpoints_total_limit=3,
        num_threads=1,
    )
    assert values["data"].get("augment", True)
    whole = train(TrainingArguments(**values))
    checkpoint = tmp_path / "whole" / "checkpoints" / "checkpoint-000002"
    shutil.copytree(checkpoint, tmp_path / "resumed" / "checkpoints" / checkpoint.name)
    resumed = train(
        TrainingArguments(
            **{**values, "output_dir": str(tmp_path / "resumed"), "resume_from_checkpoint": "latest"}
        )
    )
    assert resumed["global_step"] == whole["global_step"] == 6
    assert state_hash(resumed["model"]) == state_hash(whole["model"])


@pytest.mark.skipif(not SHARED_RADAR.is_dir(), reason="the shared radar events are not here")
def recipe_stages(tmp_path, **options) -> dict:
    return nowcasting_stages(
        ROOT / "configs" / "nowcasting_synthetic.yaml",
        ROOT / "configs" / "nowcasting_radar.yaml",
        output_dir=tmp_path,
        radar_root=SHARED_RADAR,
        ensemble_config=ROOT / "configs" / "nowcasting_ensemble.yaml",
        **options,
    )


def test_the_recipe_configs_are_valid_and_hold_out_the_test_events(tmp_path):
    stages = recipe_stages(tmp_path)
    first, second, third = stages["synthetic"], stages["radar"], stages["ensemble"]
    assert list(stages) == ["synthetic", "radar", "ensemble"]
    assert (first.output_dir, second.output_dir, third.output_dir) == tuple(
        str(folder) for folder in (tmp_path / "synthetic", tmp_path / "radar", tmp_path)
    )
    # Only the last stage is tested: on the test events' whole domains, origins every 20 minutes.
    assert (first.do_test, second.do_test, third.do_test) == (True, False, True)
    assert third.data["whole_domain_test"] == {"stride": 4} and third.data["root"] == str(SHARED_RADAR)
    assert (first.num_input_frames, first.num_output_frames) == (second.num_input_frames, 12) == (4, 12)
    for stage in (second, third):
        assert {"fmi_20170509", "bom2_20180616"} <= set(stage.data["test_events"])
    assert first.model["rain_rate_transform"] and first.model["advection"]
    # The ensemble stage: stage 2's data and model, its own fine-tuning settings over them.
    assert second.model["motion_loss_weight"] == 5.0 and second.data["train_motion"] == "lucas_kanade"
    assert third.model["motion_loss_weight"] == 0.0 and third.data["train_motion"] is None
    assert (third.model["ensemble_noise_channels"], third.model["ensemble_members"]) == (8, 20)
    assert third.model["advection_warp"] == second.model["advection_warp"] == "origin"
    assert third.data["event_overrides"] == second.data["event_overrides"]
    # The radar stage fine-tunes stage 1's model: its own model settings are fine-tuning ones, over stage 1's.
    changed = recipe_stages(
        tmp_path, radar_overrides={"model": {"fss_loss_weight": 0.25, "boundary_padding": 8}}
    )
    assert (changed["radar"].model["fss_loss_weight"], changed["radar"].model["boundary_padding"]) == (
        0.25,
        8,
    )
    assert changed["ensemble"].model["boundary_padding"] == 8  # stage 3 inherits stage 2's overrides
    assert "boundary_padding" not in first.model
    for key in ("radar_overrides", "ensemble_overrides"):
        with pytest.raises(ValueError, match=r"may only change .*not \['hidden_sizes'\]"):
            recipe_stages(tmp_path, **{key: {"model": {"hidden_sizes": [8]}}})
    # Without an ensemble config the radar stage is the last, and tested; without an archive, stage 1 alone.
    two = nowcasting_stages(
        ROOT / "configs" / "nowcasting_synthetic.yaml",
        ROOT / "configs" / "nowcasting_radar.yaml",
        output_dir=tmp_path,
        radar_root=SHARED_RADAR,
    )
    assert list(two) == ["synthetic", "radar"] and two["radar"].do_test
    assert two["radar"].output_dir == str(tmp_path)


@pytest.mark.slow
def test_tiny_two_stage_run_scores_saves_reloads_and_forecasts_mm_h(radar_stacks, tmp_path):
    cache = tmp_path / "cache"
    tiny = {
        "data": {
            "num_train": 8,
            "num_validation": 4,
            "num_test": 4,
            "num_frames": 6,
            "size": 32,
            "cache_dir": str(cache),
        },
        "model": {"hidden_sizes": [4]},
        "num_input_frames": 3,
        "num_output_frames": 3,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "max_train_steps": 2,
        "max_train_minutes": None,
        "eval_steps": 2,
        "eval_num_samples": 4,
        "test_num_samples": 4,
        "teacher_forcing_steps": 1,
        "num_threads": 1,
    }
    # Stage 1 with the recipe's own config, shrunk: synthetic fields only (no archive).
    results = run_nowcasting_recipe(
        ROOT / "configs" / "nowcasting_synthetic.yaml",
        ROOT / "configs" / "nowcasting_radar.yaml",
        output_dir=tmp_path / "synthetic",
        synthetic_overrides=tiny,
    )
    assert results["radar"] is None and results["ensemble"] is None
    assert results["output_dir"] == str(tmp_path / "synthetic")
    # Stage 2: fine-tune the stage-1 model on radar windows (here: stacks with no data), score, save.
    # (with the fine-tuning settings of the radar recipe: a boundary margin and the FSS loss term)
    tuning = {"boundary_padding": 4, "fss_loss_weight": 0.5}
    values = radar_arguments(
        radar_stacks, cache, model=tuning, model_name_or_path=str(tmp_path / "synthetic")
    )
    values["data"]["eval_context"] = 4  # validation and test tiles come with 4 px of surroundings, not scored
    values.update(
        {k: v for k, v in tiny.items() if k not in ("data", "model")}, output_dir=str(tmp_path / "radar")
    )
    test = train(TrainingArguments(**values))["test"]

    # Extrapolation and S-PROG need pysteps (the nowcasting extra): without it the run scores persistence only.
    baselines = {"extrapolation", "sprog"} if HAS_PYSTEPS else set()
    assert set(test["methods"]) == {"model", "persistence", *baselines}
    for scores in test["methods"].values():
        assert 0 <= scores["overall"]["csi@0.5"] <= 1 and len(scores["per_lead_time"]["csi@0.5"]) == 3
    output = tmp_path / "radar"
    for name in (
        "eval/metrics.json",
        "eval/metrics.md",
        "eval/scores_by_lead_time.png",
        "forecast.png",
        "forecast.gif",
    ):
        assert (output / name).is_file(), name
    assert (
        json.loads((output / "eval" / "metrics.json").read_text())["num_windows"] == test["num_windows"] > 0
    )
    assert test["context"] == 4 and "saw 4 px of surroundings" in (output / "eval" / "metrics.md").read_text()
    from PIL import Image

    from bidirectional_conv_lstm.nowcasting.pictures import save_radar_gif

    # The pictures show the scored 16 px tile, not its surroundings: the GIF of 16 x 16 frames has the same size.
    tile = np.zeros((3, 16, 16), np.float32)
    reference = save_radar_gif(tile, tile, dict.fromkeys(test["methods"], tile), tmp_path / "reference.gif")
    assert Image.open(output / "forecast.gif").size == Image.open(reference).size
    card = (output / "README.md").read_text()
    assert "| **this model** |" in card and "east" in card
    assert ("| Lucas-Kanade extrapolation |" in card) == HAS_PYSTEPS
    assert yaml.safe_load((output / "training_config.yaml").read_text())["model_name_or_path"] == str(
        tmp_path / "synthetic"
    )

    model = ConvLSTMForFramePrediction.from_pretrained(output)
    assert model.config.rain_rate_transform["kind"] == "log1p" and model.config.advection
    assert (model.config.boundary_padding, model.config.fss_loss_weight) == (4, 0.5)
    # The windows' clock is saved with the model (the stacks carry no pixel size: it stays unknown).
    assert (model.config.time_step, model.config.pixel_size) == (5.0, None)
    observed = np.load(radar_stacks[2]["path"])[None, :3]  # the held-out event, NaN corner included
    forecast = model.forecast_rain_rate(observed, num_output_frames=5)
    assert isinstance(forecast, np.ndarray) and forecast.shape == (1, 5, 32, 32)
    assert np.isnan(forecast[:, :, :3, :5]).all() and (forecast[:, :, 3:] >= 0).all()
    assert torch.isfinite(torch.from_numpy(forecast[:, :, 3:])).all()


@pytest.mark.slow
def test_a_whole_domain_test_scores_each_test_event_on_its_grid_and_reports_their_mean(tmp_path):
    """data.whole_domain_test: each test event forecast on its whole grid (grids of two sizes here), its scores in
    eval/<event>/, the run's figures the mean over the events; an ensemble model beside STEPS."""
    sources = []
    for name, size, seed in (("north", 32, 3), ("south", 32, 4), ("east", 32, 5), ("west", 24, 6)):
        event = generate_synthetic_rain(1, num_frames=12, size=size, seed=seed, speed_range=(0.5, 1.5))[0]
        event[:, :3, :5] = np.nan
        np.save(tmp_path / f"{name}.npy", event)
        sources.append({"name": name, "path": str(tmp_path / f"{name}.npy"), "timestep": 5})
    values = radar_arguments(sources, tmp_path / "cache", output_dir=str(tmp_path / "run"))
    values["data"].update(test_events=["east", "west"], whole_domain_test={"stride": 3})
    values["model"].update(ensemble_noise_channels=2, ensemble_train_members=2, ensemble_members=3)
    values.update(
        per_device_train_batch_size=4, max_train_steps=2, eval_steps=2, eval_num_samples=4, num_threads=1
    )
    test = train(TrainingArguments(**values))["test"]

    output = tmp_path / "run"
    by_event = {e: json.loads((output / "eval" / e / "metrics.json").read_text()) for e in ("east", "west")}
    # 12 frames, 6 per window, origins every 3 frames: 3 windows per event, each the whole grid.
    assert test["events"] == {
        "east": {"num_windows": 3, "grid": [32, 32]},
        "west": {"num_windows": 3, "grid": [24, 24]},
    }
    assert test["num_windows"] == 6 and all(r["num_windows"] == 3 for r in by_event.values())
    # (no ANVIL: it needs 4 observed frames, the run has 3)
    methods = {"model", "persistence", *({"extrapolation", "sprog", "steps"} if HAS_PYSTEPS else ())}
    assert set(test["methods"]) == methods
    for name in methods:
        events = [r["methods"][name] for r in by_event.values()]
        for key in ("csi@0.5", "mae"):
            assert test["methods"][name]["overall"][key] == pytest.approx(
                np.mean([e["overall"][key] for e in events])
            )
        lead = [np.mean([e["per_lead_time"]["mae"][t] for e in events]) for t in range(3)]
        assert test["methods"][name]["per_lead_time"]["mae"] == pytest.approx(lead)
    crps = [r["methods"]["model"]["probabilistic"]["overall"]["crps"] for r in by_event.values()]
    assert test["methods"]["model"]["probabilistic"]["overall"]["crps"] == pytest.approx(np.mean(crps))
    assert crps[0] != crps[1]  # two events, two different figures: the mean is of both
    report = (output / "eval" / "metrics.md").read_text()
    assert (
        "Whole radar domains of 2 held-out events (east: 32 x 32, 3 windows; west: 24 x 24, 3 windows)"
        in report
    )
    assert "Whole radar domains of 2 held-out events" in (output / "README.md").read_text()
    from PIL import Image

    # The pictures show a whole domain: one of the two grids.
    assert Image.open(output / "model_members.png").size[0] > 0 and (output / "forecast.gif").is_file()
