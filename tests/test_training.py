"""End-to-end tests of the Accelerate training loop, evaluation and prediction on tiny Moving MNIST runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.training.arguments import (
    TrainingArguments,
    load_training_arguments,
    parse_command_line,
)
from bidirectional_conv_lstm.training.checkpoints import find_latest_checkpoint
from bidirectional_conv_lstm.training.loop import train

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(output_dir: Path, cache_dir: Path, **overrides) -> dict:
    config = {
        "output_dir": str(output_dir),
        "seed": 0,
        "dataset": "moving_mnist",
        "data": {
            "num_train": 32,
            "num_validation": 8,
            "num_test": 8,
            "image_size": 32,
            "digit_size": 14,
            "num_frames": 8,
            "cache_dir": str(cache_dir),
        },
        "model": {"num_channels": 1, "patch_size": 4, "hidden_sizes": [8], "kernel_size": 3},
        "num_input_frames": 4,
        "num_output_frames": 4,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 8,
        "learning_rate": 0.01,
        "warmup_steps": 1,
        "max_train_steps": 8,
        "eval_steps": 4,
        "eval_num_samples": 8,
        "checkpointing_steps": 3,
        "checkpoints_total_limit": 2,
        "logging_steps": 1,
        "teacher_forcing_start": 0.5,
        "teacher_forcing_end": 0.0,
        "teacher_forcing_steps": 6,
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            config[key] = {**config.get(key, {}), **value}
        else:
            config[key] = value
    return config


def state_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data_cache")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cache_dir):
    """One uninterrupted tiny run (16 steps, checkpoints at 5, 10, 15) shared by several tests; its SSIM loss term
    ramps in over steps 6-11, so the resumed run (from step 10) starts mid-ramp."""
    output_dir = tmp_path_factory.mktemp("run") / "out"
    args = TrainingArguments(
        **tiny_config(
            output_dir,
            cache_dir,
            model={"loss": "mse+ssim", "ssim_weight": 0.5},
            max_train_steps=16,
            eval_steps=8,
            checkpointing_steps=5,
            teacher_forcing_steps=12,
            auxiliary_loss_start_step=6,
            auxiliary_loss_ramp_steps=6,
        )
    )
    return args, train(args)


def test_tiny_run_learns_and_saves_a_loadable_model_with_card(tiny_run):
    args, results = tiny_run
    output_dir = Path(args.output_dir)
    # The loss went down: the final model beats the freshly initialised one on the test split.
    untrained = ConvLSTMForFramePrediction(args.model_config())
    from torch.utils.data import DataLoader

    from bidirectional_conv_lstm.data import FramePredictionCollator
    from bidirectional_conv_lstm.training.data_sources import load_datasets
    from bidirectional_conv_lstm.training.evaluation import evaluate_dataloader

    test = load_datasets(args)["test"]
    loader = DataLoader(test, batch_size=8, collate_fn=FramePredictionCollator(4, 4))
    before = evaluate_dataloader(untrained, loader, baselines=False)["mse"]
    assert results["test"]["mse"] < 0.7 * before
    assert results["global_step"] == 16

    for name in (
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",  # the processor and the frame-prediction pipeline are saved with the model
        "pipeline_convlstm.py",
        "README.md",
        "prediction.png",
        "training_config.yaml",
        "eval/metrics.json",
        "eval/metrics.md",
        "eval/lead_time.png",
    ):
        assert (output_dir / name).is_file(), name
    loaded = ConvLSTMForFramePrediction.from_pretrained(output_dir)
    batch = FramePredictionCollator(4, 4)([test[i] for i in range(4)])
    with torch.no_grad():
        predictions = loaded(pixel_values=batch["pixel_values"]).predictions
    assert predictions.shape == (4, 4, 1, 32, 32)

    from huggingface_hub import ModelCard

    card = ModelCard.load(output_dir / "README.md")
    text = card.content
    assert f"{results['test']['mse']:.4g}"[:4] in text or f"{results['test']['mse']:.2f}" in text
    resolved = yaml.safe_load((output_dir / "training_config.yaml").read_text())
    assert resolved["max_train_steps"] == 16 and resolved["model"]["hidden_sizes"] == [8]
    metrics = json.loads((output_dir / "eval" / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"copy_last", "zeros", "mean"}
    assert len(metrics["mse_per_frame"]) == 4


def test_checkpoints_keep_the_last_k(tiny_run):
    args, _ = tiny_run
    folders = sorted(p.name for p in (Path(args.output_dir) / "checkpoints").glob("checkpoint-*"))
    assert folders == ["checkpoint-000010", "checkpoint-000015"]
    assert find_latest_checkpoint(args.output_dir).name == "checkpoint-000015"


def test_resumed_run_ends_with_identical_weights(tiny_run, tmp_path):
    """A run stopped after its step-10 checkpoint (mid-epoch: 32 sequences / 8 = 4 batches an epoch) and
    resumed ends at step 16 with the uninterrupted run's weights (same data order, same random state:
    scheduled sampling draws random numbers every step)."""
    args, results = tiny_run
    resumed_dir = tmp_path / "resumed"
    source = Path(args.output_dir) / "checkpoints" / "checkpoint-000010"
    shutil.copytree(source, resumed_dir / "checkpoints" / source.name)
    resumed_args = TrainingArguments(
        **{
            **args.to_dict(),
            "output_dir": str(resumed_dir),
            "resume_from_checkpoint": str(resumed_dir / "checkpoints" / source.name),
        }
    )
    resumed = train(resumed_args)
    assert resumed["global_step"] == 16
    assert state_hash(resumed["model"]) == state_hash(results["model"])
    untouched = TrainingArguments(**{**args.to_dict(), "output_dir": str(tmp_path / "fresh")})
    assert state_hash(ConvLSTMForFramePrediction(untouched.model_config())) != state_hash(results["model"])


def test_auxiliary_loss_schedule(tmp_path):
    args = TrainingArguments(
        **tiny_config(
            tmp_path / "out", tmp_path / "cache", auxiliary_loss_start_step=4, auxiliary_loss_ramp_steps=4
        )
    )
    assert [args.auxiliary_loss_scale(step) for step in range(9)] == [0, 0, 0, 0, 0.25, 0.5, 0.75, 1, 1]
    at_once = TrainingArguments(
        **tiny_config(tmp_path / "out", tmp_path / "cache", auxiliary_loss_start_step=2)
    )
    assert [at_once.auxiliary_loss_scale(step) for step in range(4)] == [0, 0, 1, 1]
    always = TrainingArguments(**tiny_config(tmp_path / "out", tmp_path / "cache"))
    assert always.auxiliary_loss_scale(0) == 1
    # The model's loss follows the scale: off, it is plain MSE.
    model = ConvLSTMForFramePrediction(ConvLSTMConfig(loss="mse+ssim", ssim_weight=0.5, hidden_sizes=[4]))
    pixel_values, labels = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 2, 1, 16, 16)
    with torch.no_grad():
        full = model(pixel_values, labels=labels)
        model.auxiliary_loss_scale = 0.0
        off = model(pixel_values, labels=labels)
        model.auxiliary_loss_scale = 0.5
        half = model(pixel_values, labels=labels)
    mse = torch.nn.functional.mse_loss(full.predictions, labels)
    torch.testing.assert_close(off.loss, mse)
    torch.testing.assert_close(half.loss - mse, (full.loss - mse) / 2)
    assert full.loss - mse > 0.1  # random frames are far from similar


def test_best_model_by_a_higher_is_better_metric(tmp_path, cache_dir):
    from torch.utils.data import DataLoader

    from bidirectional_conv_lstm.data import FramePredictionCollator
    from bidirectional_conv_lstm.training.data_sources import load_datasets
    from bidirectional_conv_lstm.training.evaluation import evaluate_dataloader

    args = TrainingArguments(
        **tiny_config(
            tmp_path / "out", cache_dir, max_train_steps=6, eval_steps=2, metric_for_best_model="ssim"
        )
    )
    results = train(args)
    assert results["metric_for_best_model"] == "ssim" and results["best_step"] in (2, 4, 6)
    state = json.loads((find_latest_checkpoint(args.output_dir) / "trainer_state.json").read_text())
    assert state["metric_for_best_model"] == "ssim" and state["best_metric"] == results["best_metric"]
    loader = DataLoader(
        load_datasets(args)["validation"], batch_size=8, collate_fn=FramePredictionCollator(4, 4)
    )
    saved = ConvLSTMForFramePrediction.from_pretrained(args.output_dir)
    saved_ssim = evaluate_dataloader(saved, loader, baselines=False)["ssim"]
    last_ssim = evaluate_dataloader(results["model"], loader, baselines=False)["ssim"]
    assert saved_ssim == pytest.approx(results["best_metric"], abs=1e-6)
    assert last_ssim <= saved_ssim + 1e-6  # the saved model is the best by SSIM, not merely the last one


def test_weight_average_is_validated_saved_and_resumed(tmp_path, cache_dir):
    """With ema_decay the saved model is the moving average of the weights after each step, and a run resumed
    from a checkpoint goes on with the average it had."""
    common = dict(
        lr_scheduler_type="constant",
        warmup_steps=0,
        teacher_forcing_start=0.0,
        teacher_forcing_steps=0,
        checkpointing_steps=2,
    )
    after_one = train(
        TrainingArguments(**tiny_config(tmp_path / "one", cache_dir, max_train_steps=1, **common))
    )
    averaged_args = TrainingArguments(
        **tiny_config(tmp_path / "ema", cache_dir, max_train_steps=2, eval_steps=2, ema_decay=0.75, **common)
    )
    averaged = train(averaged_args)
    saved = ConvLSTMForFramePrediction.from_pretrained(tmp_path / "ema").state_dict()
    first, last = after_one["model"].state_dict(), averaged["model"].state_dict()
    assert state_hash(after_one["model"]) != state_hash(
        averaged["model"]
    )  # the second step moved the weights
    for name, value in saved.items():
        torch.testing.assert_close(value, 0.75 * first[name] + 0.25 * last[name], msg=name)
    # Four steps in one go, and the same run resumed from its step-2 checkpoint: the same average is saved.
    four = tiny_config(
        tmp_path / "four", cache_dir, max_train_steps=4, eval_steps=4, ema_decay=0.75, **common
    )
    train(TrainingArguments(**four))
    resumed_dir = tmp_path / "resumed"
    checkpoint = Path(four["output_dir"]) / "checkpoints" / "checkpoint-000002"
    shutil.copytree(checkpoint, resumed_dir / "checkpoints" / checkpoint.name)
    train(TrainingArguments(**{**four, "output_dir": str(resumed_dir), "resume_from_checkpoint": "latest"}))
    assert state_hash(ConvLSTMForFramePrediction.from_pretrained(resumed_dir)) == state_hash(
        ConvLSTMForFramePrediction.from_pretrained(four["output_dir"])
    )
    with pytest.raises(ValueError, match="ema_decay must be in \\(0, 1\\) or null, got 1.0"):
        TrainingArguments(**tiny_config(tmp_path / "bad", cache_dir, ema_decay=1.0))


def _write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, cache_dir):
    output_dir = tmp_path / "killed"
    config = tiny_config(
        output_dir,
        cache_dir,
        max_train_steps=400,
        checkpointing_steps=2,
        eval_steps=400,
        checkpoints_total_limit=1,
    )
    config_path = _write_config(tmp_path / "run.yaml", config)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            latest = find_latest_checkpoint(output_dir)
            if (
                latest is not None
                and json.loads((latest / "trainer_state.json").read_text())["global_step"] >= 4
            ):
                break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint within 120 s")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    latest = find_latest_checkpoint(output_dir)
    step = json.loads((latest / "trainer_state.json").read_text())["global_step"]
    # Resume from the latest complete checkpoint; a tiny time budget stops it after one more step.
    results = train(
        load_training_arguments(
            config_path, {"resume_from_checkpoint": "latest", "eval_steps": 1, "max_train_minutes": 1e-6}
        )
    )
    assert results["global_step"] == step + 1
    assert (output_dir / "model.safetensors").is_file()


def test_two_cpu_processes_see_different_data_and_agree_on_weights(tmp_path, cache_dir):
    # With a time budget the processes follow the main process's clock (broadcast at every step).
    config = tiny_config(
        tmp_path / "ddp",
        cache_dir,
        max_train_steps=4,
        eval_steps=4,
        checkpointing_steps=4,
        max_train_minutes=30,
    )
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29533",
        str(ROOT / "tests" / "ddp_worker.py"),
        json.dumps(config),
        str(tmp_path),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    # Each rank's traceback is prefixed with "[rankN]:"; the failing rank's, not only the tail, says why.
    rank_lines = "\n".join(line for line in completed.stderr.splitlines() if line.startswith("[rank"))
    assert completed.returncode == 0, rank_lines[-6000:] + "\n...\n" + completed.stderr[-1500:]
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert reports[0]["world_size"] == reports[1]["world_size"] == 2
    assert reports[0]["steps"] == reports[1]["steps"] == 4
    assert reports[0]["weights"] == reports[1]["weights"]
    # The checkpoint holds both processes' random states, and no half-written folder is left behind.
    checkpoints = tmp_path / "ddp" / "checkpoints"
    assert {p.name for p in checkpoints.iterdir()} == {"checkpoint-000004"}
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {
        p.name for p in (checkpoints / "checkpoint-000004").iterdir()
    }
    # The first four batches of each process are its training batches: no batch seen by both.
    train_batches = [set(report["batches"][:4]) for report in reports]
    assert len(train_batches[0]) == 4 and not train_batches[0] & train_batches[1]


def test_evaluate_and_predict_scripts(tiny_run, tmp_path):
    args, _ = tiny_run
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    data = json.dumps({k: v for k, v in args.data.items()})
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "evaluate.py"),
            "--model",
            args.output_dir,
            "--data",
            data,
            "--output_dir",
            str(tmp_path / "eval"),
            "--batch_size",
            "4",
            "--mixed_precision",
            "auto",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "baseline: copy_last" in completed.stdout
    assert "mixed_precision: auto -> " in completed.stdout  # resolved as training resolves it, and said
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_samples"] == 8 and (tmp_path / "eval" / "lead_time.png").is_file()

    frames = (np.random.default_rng(0).random((6, 32, 32)) * 255).astype(np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "predict.py"),
            "--model",
            args.output_dir,
            "--input",
            str(tmp_path / "frames.npy"),
            "--num_output_frames",
            "7",
            "--output_dir",
            str(tmp_path / "pred"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    predictions = np.load(tmp_path / "pred" / "predictions.npy")
    assert predictions.shape == (1, 7, 1, 32, 32) and predictions.dtype == np.float32
    assert predictions.min() >= 0.0 and predictions.max() <= 1.0
    assert (tmp_path / "pred" / "prediction.gif").stat().st_size > 0
    assert (tmp_path / "pred" / "prediction.png").stat().st_size > 0


BAD_VALUES = [
    ({"learning_rate": -1.0}, ValueError, "learning_rate"),
    ({"learning_rate": "fast"}, TypeError, "learning_rate"),
    ({"per_device_train_batch_size": 0}, ValueError, "per_device_train_batch_size"),
    ({"mixed_precision": "fp8"}, ValueError, "mixed_precision"),
    ({"lr_scheduler_type": "exp"}, ValueError, "lr_scheduler_type"),
    ({"model": {"hidden_sizes": []}}, ValueError, "hidden_sizes"),
    ({"model": {"patch_size": 0}}, ValueError, "patch_size"),
    ({"data": {"num_frames": 5}}, ValueError, "num_frames"),
    ({"data": {"colour": True}}, ValueError, "colour"),
    ({"teacher_forcing_start": 1.5}, ValueError, "teacher_forcing_start"),
    ({"auxiliary_loss_ramp_steps": -1}, ValueError, "auxiliary_loss_ramp_steps"),
    ({"metric_for_best_model": "loss"}, ValueError, "metric_for_best_model"),
    ({"auxiliary_loss_start_step": 1.5}, TypeError, "auxiliary_loss_start_step"),
    ({"model": {"loss": "ssim"}}, ValueError, "loss"),
    ({"push_to_hub": True}, ValueError, "hub_model_id"),
    ({"resume_from_checkpoint": "/no/such/folder"}, FileNotFoundError, "resume_from_checkpoint"),
    ({"model_name_or_path": "/no/such/model"}, FileNotFoundError, "model_name_or_path"),
    ({"report_to": "wandb"}, ValueError, "report_to"),
    ({"dataset": "./no/such/sequences"}, FileNotFoundError, "dataset"),
    ({"unknown_key": 1}, ValueError, "unknown_key"),
]


@pytest.mark.parametrize(("overrides", "error", "name"), BAD_VALUES, ids=[case[2] for case in BAD_VALUES])
def test_bad_config_value_fails_fast(tmp_path, overrides, error, name):
    config = tiny_config(tmp_path / "out", tmp_path / "cache")
    if "model_name_or_path" in overrides:
        config.pop("model")
    config_path = _write_config(tmp_path / "bad.yaml", config)
    started = time.perf_counter()
    with pytest.raises(error, match=name):
        load_training_arguments(config_path, overrides)
    assert time.perf_counter() - started < 5
    assert not (tmp_path / "cache").exists()  # no data was generated


def test_fine_tuning_may_change_the_loss_settings_only(tmp_path):
    from bidirectional_conv_lstm.training.loop import build_model

    rain_model = ConvLSTMForFramePrediction(
        ConvLSTMConfig(hidden_sizes=[4], loss="weighted_mse", rain_rate_transform={"kind": "log1p"})
    )
    rain_model.save_pretrained(tmp_path / "rain")
    ConvLSTMForFramePrediction(ConvLSTMConfig(hidden_sizes=[4])).save_pretrained(tmp_path / "image")
    config = tiny_config(tmp_path / "out", tmp_path / "cache")
    config.pop("model")
    config_path = _write_config(tmp_path / "fine.yaml", config)
    settings = {"loss": "weighted_mse+mae", "fss_loss_weight": 0.5, "fss_loss_windows": [8]}
    args = load_training_arguments(
        config_path, {"model_name_or_path": str(tmp_path / "rain"), "model": settings}
    )
    model = build_model(args)
    assert (model.config.loss, model.config.fss_loss_weight, model.config.fss_loss_windows) == (
        "weighted_mse+mae",
        0.5,
        [8],
    )
    torch.testing.assert_close(model.state_dict(), rain_model.state_dict())  # the pretrained weights
    # How the advection head treats the frame's edge, and its motion term, are fine-tuning settings too, and the
    # loaded model follows them.
    advecting = ConvLSTMForFramePrediction(
        ConvLSTMConfig(hidden_sizes=[4], advection=True, rain_rate_transform={"kind": "log1p"})
    )
    advecting.save_pretrained(tmp_path / "advecting")
    settings = {"advection_padding": "border", "advection_warp": "origin", "motion_loss_weight": 0.5}
    args = load_training_arguments(
        config_path, {"model_name_or_path": str(tmp_path / "advecting"), "model": settings}
    )
    model = build_model(args)
    assert {name: getattr(model.config, name) for name in settings} == settings
    head = model.forecaster.advection
    head.conv.bias.data[:2] = 1.0  # moves everything one pixel right and down, the gate shut
    head.conv.bias.data[2:] = -30.0
    frames = torch.rand(1, 2, 1, 8, 8)
    with torch.no_grad():
        first = model(frames, num_output_frames=1).predictions[0, 0, 0]
    # "border" brings in the edge pixels where "zeros" would bring in nothing
    torch.testing.assert_close(first[0, 1:], frames[0, -1, 0, 0, :-1])
    torch.testing.assert_close(first[0, 0], frames[0, -1, 0, 0, 0])
    with pytest.raises(ValueError, match=r"may only change .*not \['hidden_sizes'\]"):
        load_training_arguments(
            config_path, {"model_name_or_path": str(tmp_path / "rain"), "model": {"hidden_sizes": [8]}}
        )
    # Checked against the pretrained config before any work: an image model has no rain-rate transform.
    with pytest.raises(ValueError, match="fine-tuning .*needs rain_rate_transform"):
        load_training_arguments(
            config_path, {"model_name_or_path": str(tmp_path / "image"), "model": {"loss": "weighted_mae"}}
        )
    assert not (tmp_path / "cache").exists()


def test_command_line_overrides_and_script_error(tmp_path):
    config_path = _write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "out", tmp_path / "cache"))
    args = parse_command_line(
        [
            "--config",
            str(config_path),
            "--learning_rate",
            "3e-3",
            "--model.hidden_sizes",
            "[4, 4]",
            "--push_to_hub",
            "--hub_model_id=user/model",
        ]
    )
    assert args.learning_rate == 3e-3 and args.model["hidden_sizes"] == [4, 4] and args.push_to_hub is True
    from bidirectional_conv_lstm import ConvLSTMConfig

    ConvLSTMConfig(hidden_sizes=[4]).save_pretrained(tmp_path / "pretrained")
    fine_tune = parse_command_line(
        [
            "--config",
            str(config_path),
            "--model",
            "null",
            "--model_name_or_path",
            str(tmp_path / "pretrained"),
        ]
    )
    assert fine_tune.model == {} and fine_tune.model_name_or_path == str(tmp_path / "pretrained")
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            "--config",
            str(config_path),
            "--max_train_steps",
            "-5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode != 0
    assert "max_train_steps must be > 0" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_tensorboard_gets_loss_metrics_baselines_and_pictures(tmp_path, cache_dir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    output_dir = tmp_path / "tb"
    train(
        TrainingArguments(
            **tiny_config(
                output_dir,
                cache_dir,
                max_train_steps=4,
                eval_steps=2,
                checkpointing_steps=4,
                report_to="tensorboard",
            )
        )
    )
    event_files = list(output_dir.rglob("events.out.tfevents.*"))
    assert event_files
    accumulator = EventAccumulator(
        str(event_files[0].parent), size_guidance={"images": 0, "scalars": 0}
    ).Reload()
    scalars = set(accumulator.Tags()["scalars"])
    assert {
        "train/loss",
        "train/learning_rate",
        "validation/mse",
        "validation/ssim",
        "validation/mse_vs_best_baseline",
        "validation/baseline_zeros/mse",
        "test/mse",
    } <= scalars
    assert [event.step for event in accumulator.Scalars("validation/mse")] == [2, 4]
    images = accumulator.Images("validation/prediction")
    # two sequences x (input, truth, prediction) rows of four 32x32 frames, with labels and gaps
    assert [image.step for image in images] == [2, 4]
    assert (images[0].width, images[0].height) == (56 + 4 * 34 - 2, 6 * 34)


def test_fine_tuning_starts_from_the_saved_model(tiny_run, tmp_path, cache_dir):
    args, _ = tiny_run
    config = tiny_config(
        tmp_path / "finetuned",
        cache_dir,
        max_train_steps=2,
        eval_steps=2,
        checkpointing_steps=2,
        learning_rate=1e-9,
        warmup_steps=0,
    )
    config.pop("model")
    config["model_name_or_path"] = args.output_dir
    results = train(TrainingArguments(**config))
    saved = ConvLSTMForFramePrediction.from_pretrained(args.output_dir).state_dict()
    tuned = results["model"].state_dict()
    assert saved.keys() == tuned.keys()
    for name, tensor in saved.items():
        torch.testing.assert_close(tuned[name], tensor, rtol=0, atol=1e-6)
    fresh = ConvLSTMForFramePrediction(args.model_config()).state_dict()
    assert any(not torch.allclose(fresh[name], tensor) for name, tensor in saved.items())


def test_push_to_hub_at_the_end_of_training(local_hub, tmp_path, cache_dir):
    config = tiny_config(
        tmp_path / "pushed",
        cache_dir,
        max_train_steps=2,
        eval_steps=2,
        checkpointing_steps=2,
        push_to_hub=True,
        hub_model_id="test-user/tiny-convlstm",
    )
    config_path = _write_config(tmp_path / "push.yaml", config)
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=local_hub.client_env(tmp_path / "hf_home"),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    files = local_hub.files("test-user/tiny-convlstm")
    assert {
        "config.json",
        "model.safetensors",
        "README.md",
        "modeling_convlstm.py",
        "convlstm.py",
        "convlstm_fused.py",
        "preprocessor_config.json",
        "pipeline_convlstm.py",
        "prediction.png",
        "eval/metrics.json",
    } <= set(files)
    assert not any(name.startswith("checkpoints/") for name in files)
    assert files["model.safetensors"] == (tmp_path / "pushed" / "model.safetensors").read_bytes()
    assert "test-user/tiny-convlstm" in files["README.md"].decode()


def test_resume_from_a_folder_that_is_not_a_checkpoint_fails_before_training(tmp_path):
    """A run's output folder (weights but no trainer_state.json) or an empty folder: named, with what a checkpoint
    holds, instead of accelerate's FileNotFoundError on pytorch_model.bin after the data is built."""
    from bidirectional_conv_lstm.training import checkpoints
    from bidirectional_conv_lstm.training.arguments import CHECKPOINT_STATE_FILE

    assert checkpoints.STATE_FILE == CHECKPOINT_STATE_FILE
    config_path = _write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "out", tmp_path / "cache"))
    output = tmp_path / "a_run_output"
    output.mkdir()
    (output / "model.safetensors").write_bytes(b"weights")
    for folder, missing in (
        (output, "no trainer_state.json."),
        (tmp_path / "out", "no trainer_state.json and no"),
    ):
        folder.mkdir(exist_ok=True)
        with pytest.raises(FileNotFoundError) as error:
            parse_command_line(["--config", str(config_path), "--resume_from_checkpoint", str(folder)])
        message = str(error.value)
        assert f"resume_from_checkpoint={str(folder)!r} is not a training checkpoint" in message
        assert missing in message and "model.safetensors, optimizer.bin" in message
    assert not (tmp_path / "cache").exists()  # no data was generated


def _fine_tune_command(pretrained: Path, sequences: Path, output_dir: Path) -> list[str]:
    """The README's fine-tune command (the Moving MNIST config, ``--model null``, a saved model, a folder of
    sequences) with tiny settings."""
    tiny = {
        "num_input_frames": "2",
        "num_output_frames": "2",
        "max_train_steps": "2",
        "max_train_minutes": "null",
        "warmup_steps": "0",
        "eval_steps": "2",
        "checkpointing_steps": "2",
        "eval_num_samples": "2",
        "test_num_samples": "2",
        "per_device_train_batch_size": "2",
        "per_device_eval_batch_size": "2",
        "mixed_precision": "no",
        "adapt_num_threads": "false",
    }
    command = ["--config", str(ROOT / "configs" / "moving_mnist_cpu.yaml"), "--model", "null"]
    command += ["--model_name_or_path", str(pretrained), "--dataset", str(sequences)]
    command += ["--output_dir", str(output_dir)]
    return command + [item for name, value in tiny.items() for item in (f"--{name}", value)]


def test_readme_fine_tune_command_drops_the_config_files_moving_mnist_options(tmp_path, caplog, capsys):
    """The config's Moving MNIST options (num_train, ...) do not stop a fine-tuning run on a folder of sequences:
    they are dropped with a note that names them, and the run trains, tests and saves."""
    import runpy

    sequences = tmp_path / "my_sequences"
    sequences.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        np.save(sequences / f"sequence_{index}.npy", rng.integers(0, 256, (4, 16, 16), dtype=np.uint8))
    pretrained = tmp_path / "pretrained"
    config = ConvLSTMConfig(
        num_channels=1, patch_size=4, hidden_sizes=[4], kernel_size=3, num_input_frames=2, num_output_frames=2
    )
    ConvLSTMForFramePrediction(config).save_pretrained(pretrained)
    command = _fine_tune_command(pretrained, sequences, tmp_path / "finetuned")
    command += ["--data.cache_dir", str(tmp_path / "cache")]
    script = runpy.run_path(str(ROOT / "scripts" / "train.py"), run_name="train_script")
    with caplog.at_level("WARNING", logger="bidirectional_conv_lstm.training.arguments"):
        script["main"](command)
    notes = [
        record.getMessage() for record in caplog.records if "dropped the data options" in record.getMessage()
    ]
    assert len(notes) == 1
    assert "['num_test', 'num_train', 'num_validation']" in notes[0]
    assert (
        "dataset='moving_mnist'" in notes[0] and f"dataset={str(sequences)!r} does not take them" in notes[0]
    )
    out = capsys.readouterr().out
    summary = json.loads(out[out.index('{\n  "output_dir"') :])
    assert summary["steps"] == 2 and summary["output_dir"] == str(tmp_path / "finetuned")
    saved = yaml.safe_load((tmp_path / "finetuned" / "training_config.yaml").read_text())
    assert saved["data"] == {"cache_dir": str(tmp_path / "cache")} and saved["model"] == {}
    assert saved["mixed_precision"] == "no"  # `--mixed_precision no`, which YAML 1.1 reads as false
    tuned = ConvLSTMForFramePrediction.from_pretrained(tmp_path / "finetuned")
    assert tuned.config.hidden_sizes == [4]


def test_options_of_another_dataset_are_dropped_only_when_they_come_from_the_file(tmp_path, caplog):
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    moving_mnist = _write_config(tmp_path / "mnist.yaml", tiny_config(tmp_path / "out", tmp_path / "cache"))
    with caplog.at_level("WARNING", logger="bidirectional_conv_lstm.training.arguments"):
        args = load_training_arguments(moving_mnist, {"dataset": str(sequences)})
    assert args.data == {"cache_dir": str(tmp_path / "cache")}
    (note,) = [record.getMessage() for record in caplog.records]
    assert "['digit_size', 'image_size', 'num_frames', 'num_test', 'num_train', 'num_validation']" in note
    assert str(moving_mnist) in note and "written for dataset='moving_mnist'" in note
    # An option set for the chosen dataset on the command line is checked, not dropped.
    with pytest.raises(ValueError, match=r"data has unknown options \['num_train'\] for dataset="):
        parse_command_line(
            ["--config", str(moving_mnist), "--dataset", str(sequences), "--data.num_train", "4"]
        )
    # So is an unknown option in a config file written for this dataset.
    folder_config = tiny_config(tmp_path / "out", tmp_path / "cache", dataset=str(sequences))
    with pytest.raises(ValueError, match=r"data has unknown options \['digit_size', "):
        load_training_arguments(_write_config(tmp_path / "folder.yaml", folder_config))
    with pytest.raises(ValueError, match=r"unknown Moving MNIST options \['frames_column'\]"):
        load_training_arguments(moving_mnist, {"data": {"frames_column": "video"}})
    # The other way round: a folder config's frame options do not apply to Moving MNIST.
    folder_config["data"] = {"frames_column": "video", "cache_dir": str(tmp_path / "cache")}
    caplog.clear()
    with caplog.at_level("WARNING", logger="bidirectional_conv_lstm.training.arguments"):
        args = load_training_arguments(
            _write_config(tmp_path / "folder.yaml", folder_config), {"dataset": "moving_mnist"}
        )
    assert args.data == {"cache_dir": str(tmp_path / "cache")}
    assert "['frames_column']" in caplog.records[0].getMessage()
    assert not (tmp_path / "cache").exists()


def test_data_null_means_no_data_options(tmp_path, caplog):
    moving_mnist = _write_config(tmp_path / "mnist.yaml", tiny_config(tmp_path / "out", tmp_path / "cache"))
    args = parse_command_line(["--config", str(moving_mnist), "--data", "null"])
    assert args.data == {} and args.dataset == "moving_mnist"
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    with caplog.at_level("WARNING", logger="bidirectional_conv_lstm.training.arguments"):
        args = parse_command_line(
            ["--config", str(moving_mnist), "--dataset", str(sequences), "--data", "null"]
        )
    assert args.data == {} and args.dataset == str(sequences)
    assert not caplog.records  # nothing left to drop, nothing to note
