"""Every shell command the README and the documentation show runs in a test, so the front page cannot drift.

The commands are read from the ```bash / ```sh / ```console blocks of README.md and docs/**/*.md (with the files a
page includes through ``--8<-- "FILE"``, as the site's snippets extension does). ``COMMANDS`` says how each one is
checked:

- ``Run(extra, check)``: run here as documented with ``extra`` options appended (tiny settings), in this process,
  inside a folder laid out like the repository (``configs/`` and ``scripts/`` linked; the files a command names,
  such as ``frames.npy`` or ``path/to/my_sequences``, generated small); ``check`` asserts what it wrote;
- ``Make(extra, check)``: a make target that chains scripts: ``make -n`` prints its commands, and each runs as
  above with ``extra[script]`` appended;
- ``Via(target, added)``: a command that ``make TARGET`` runs verbatim (``added`` appended), and so its row runs;
- ``Covered(test, names)``: another test runs this command (the same script and options, its own tiny values);
  that test must exist and its module must name ``names``;
- ``InCI()``: ``.ci/run`` runs this very line; ``MakeInCI()``: ``.ci/run`` runs every command of this make target;
- ``Exempt(reason)``: it needs the network, GPUs or a person.

A documented command without a row fails ``test_every_documented_command_has_a_row``; a row no page shows any more
fails it too.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL_LANGUAGES = ("bash", "sh", "console")
FENCE = re.compile(r"^\s*```(\w*)\s*$")
SNIPPET = re.compile(r'^--8<--\s+"([^"]+)"\s*$')
PYTHON = (".venv/bin/python", "python")
RADAR_EVENTS = ("north", "south", "east")  # small generated stacks (see `folders`)


def _no_check(folder: Path, printed: str) -> None:
    raise AssertionError("a command that runs needs a check of what it wrote")


@dataclass(frozen=True)
class Run:
    extra: tuple[str, ...] = ()
    check: Callable[[Path, str], None] = _no_check
    folder: str = "repo"  # "repo", or "radar": a repository whose ../shared/radar exists but holds no archive
    after: str | None = None  # a documented command whose outputs this one reads
    needs: str | None = None  # a module the command needs (skipped without it)


@dataclass(frozen=True)
class Make:
    extra: dict = field(default_factory=dict)
    check: Callable[[Path, str], None] = _no_check
    needs: str | None = None
    folder: str = "repo"


@dataclass(frozen=True)
class Via:
    target: str
    added: tuple[str, ...] = ()


@dataclass(frozen=True)
class Covered:
    test: str
    names: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class InCI:
    pass


@dataclass(frozen=True)
class MakeInCI:
    """A make target whose every command ``.ci/run`` runs itself."""


@dataclass(frozen=True)
class Exempt:
    reason: str


def _options(values: dict) -> tuple[str, ...]:
    return tuple(token for name, value in values.items() for token in (f"--{name}", str(value)))


# ---- the tiny settings appended to the documented commands --------------------------------------------------

TINY_MOVING_MNIST_DATA = {
    "num_train": 16,
    "num_validation": 4,
    "num_test": 4,
    "image_size": 32,
    "digit_size": 14,
    "num_frames": 8,
}
TINY_TRAINING = {
    "max_train_steps": 2,
    "max_train_minutes": "null",
    "eval_steps": 2,
    "eval_num_samples": 4,
    "test_num_samples": 4,
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 4,
    "checkpointing_steps": 2,
    "warmup_steps": 0,
    "teacher_forcing_steps": 1,
    "adapt_num_threads": "false",
    "num_threads": 1,
}
TINY_MOVING_MNIST = _options(
    {
        **{f"data.{name}": value for name, value in TINY_MOVING_MNIST_DATA.items()},
        "num_input_frames": 4,
        "num_output_frames": 4,
        "model.hidden_sizes": "[8]",
        **TINY_TRAINING,
    }
)
TINY_FINE_TUNING = _options({**TINY_TRAINING, "num_input_frames": 4, "num_output_frames": 4})
TINY_SYNTHETIC_STAGE = _options(
    {
        "synthetic.data.num_train": 8,
        "synthetic.data.num_validation": 4,
        "synthetic.data.num_test": 4,
        "synthetic.data.num_frames": 6,
        "synthetic.data.size": 32,
        "synthetic.model.hidden_sizes": "[4]",
        "synthetic.num_input_frames": 3,
        "synthetic.num_output_frames": 3,
        **{f"synthetic.{name}": value for name, value in TINY_TRAINING.items()},
    }
)
TINY_RADAR_STAGE = _options(
    {
        "radar.data.sources": "["
        + ", ".join(f"{{name: {name}, path: stacks/{name}.npy, timestep: 5}}" for name in RADAR_EVENTS)
        + "]",
        "radar.data.events": f"[{', '.join(RADAR_EVENTS)}]",
        "radar.data.test_events": "[east]",
        "radar.data.validation_events": "[south]",
        "radar.data.time_block_fractions": "[1.0, 0.0, 0.0]",
        "radar.data.tile_size": 16,
        "radar.data.downsample": 1,
        "radar.data.train_crops_per_window": 2,
        **{
            f"{stage}.{name}": value
            for stage in ("radar", "ensemble")
            for name, value in TINY_TRAINING.items()
            if name != "teacher_forcing_steps"
        },
        "ensemble.model.ensemble_members": 3,
    }
)
# evaluate.py's documented --data names the archive (root) and an event: here a generated stack of that name,
# tiled small (see _radar_data_from_stacks).
TINY_RADAR_WINDOWS = {"tile_size": 16, "downsample": 1}
TINY_PUSH = _options(  # the frames of a window: 10 + 10 unless a config says otherwise
    {f"data.{name}": value for name, value in TINY_MOVING_MNIST_DATA.items() if name != "num_frames"}
)


# ---- what the commands that run must have written ----------------------------------------------------------


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _printed_json(printed: str) -> dict:
    """The JSON object a script printed last (train.py's summary)."""
    return json.loads(printed[printed.rindex("\n{") :])


def check_make_train(folder: Path, printed: str) -> None:
    run = folder / "outputs" / "moving_mnist_cpu"
    assert (run / "model.safetensors").is_file() and (run / "README.md").is_file()
    assert "baseline" in printed  # the evaluation table it ends with (cat eval/metrics.md)
    predictions = np.load(folder / "outputs" / "moving_mnist_cpu_prediction" / "predictions.npy")
    assert predictions.shape == (1, 10, 1, 32, 32)  # 10 frames predicted, at the (tiny) data's size


def check_resumed(folder: Path, printed: str) -> None:
    assert _printed_json(printed)["steps"] == 3  # one step more than the checkpoint of make train's 2


def check_fine_tuned(folder: Path, printed: str) -> None:
    assert _printed_json(printed)["steps"] == 2
    run = yaml.safe_load((folder / "outputs" / "finetuned" / "training_config.yaml").read_text())
    assert (
        run["dataset"] == "path/to/my_sequences" and run["model_name_or_path"] == "outputs/moving_mnist_cpu"
    )
    assert "num_train" not in run["data"]  # the config's Moving MNIST options were dropped


def check_evaluated(num_samples: int) -> Callable[[Path, str], None]:
    def check(folder: Path, printed: str) -> None:
        metrics = _json(folder / "outputs" / "evaluation" / "metrics.json")
        assert metrics["num_samples"] == num_samples and "baselines" in metrics

    return check


def check_predicted(folder: Path, printed: str) -> None:
    assert np.load(folder / "outputs" / "prediction" / "predictions.npy").shape == (1, 20, 1, 32, 32)


def check_nowcast(output: str, methods: set[str], *, radar: bool) -> Callable[[Path, str], None]:
    def check(folder: Path, printed: str) -> None:
        model = folder / output
        assert (model / "model.safetensors").is_file() and (model / "forecast.png").is_file()
        assert set(_json(model / "eval" / "metrics.json")["methods"]) == methods
        run = yaml.safe_load((model / "training_config.yaml").read_text())
        assert run["dataset"] == ("radar" if radar else "synthetic_rain")
        # With an archive, stages 1 and 2 (synthetic pretraining, radar) are kept beside the final model, an
        # ensemble fine-tuned from stage 2's, scored on the test events' whole domains beside STEPS.
        for stage in ("synthetic", "radar"):
            assert (model / stage / "model.safetensors").is_file() == radar
        if radar:
            assert run["model_name_or_path"] == str(Path(output) / "radar")
            assert run["model"]["ensemble_noise_channels"] > 0 and (model / "model_members.png").is_file()
            assert (
                "Whole radar domains of 1 held-out events (east: 32 x 32" in (model / "README.md").read_text()
            )

    return check


def check_scored(methods: list[str]) -> Callable[[Path, str], None]:
    def check(folder: Path, printed: str) -> None:
        assert list(_json(folder / "outputs" / "evaluation" / "metrics.json")["methods"]) == methods

    return check


def check_card(folder: Path, printed: str) -> None:
    assert printed.startswith("---\nlicense: cc-by-sa-3.0\n")  # the dataset card, nothing pushed
    assert "Moving MNIST (generated from real MNIST digits)" in printed


def check_loss_check(folder: Path, printed: str) -> None:
    assert "### bf16 vs fp32 loss" in printed and "relative difference" in printed


# ---- the documented commands -------------------------------------------------------------------------------

NETWORK = "needs the network (PyPI); the Makefile's setup runs the same installs"
GPU = "needs GPUs"
FIXED_STEPS = (
    ".venv/bin/python scripts/train_nowcasting.py --radar_root ../shared/radar --output_dir outputs/fixed "
    "--synthetic.max_train_minutes null --synthetic.max_train_steps 460 --synthetic.adapt_num_threads false "
    "--synthetic.num_threads 2 --radar.max_train_minutes null --radar.max_train_steps 670 "
    "--radar.adapt_num_threads false --radar.num_threads 2 --ensemble.max_train_minutes null "
    "--ensemble.max_train_steps 360 --ensemble.adapt_num_threads false --ensemble.num_threads 2"
)
RADAR_DATA = "'{root: ../shared/radar, events: [fmi_20170509], split: event, test_events: [fmi_20170509]}'"
MOVING_MNIST_CPU = ".venv/bin/python scripts/train.py --config configs/moving_mnist_cpu.yaml"

COMMANDS = {
    # Install (README, docs/index.md, docs/serving.md)
    "pip install torch==2.13.0": Exempt(NETWORK),
    "pip install -e '.[dev,nowcasting]'": Exempt(NETWORK),
    "pip install -e '.[onnx]'": Exempt(NETWORK),
    "pip install -e '.[demo]'": Exempt(NETWORK),
    "pip install -e '.[demo,nowcasting]'": Exempt(NETWORK),
    # The commands (README, docs/index.md, docs/training.md, docs/nowcasting/index.md, CONTRIBUTING.md)
    "make train": Make({"scripts/train.py": TINY_MOVING_MNIST}, check_make_train),
    "make nowcast": Make(
        {"scripts/train_nowcasting.py": TINY_SYNTHETIC_STAGE},
        check_nowcast("outputs/nowcasting", {"model", "persistence", "extrapolation", "sprog"}, radar=False),
        needs="pysteps",
    ),
    "make test": InCI(),
    "make lint": MakeInCI(),
    ".venv/bin/lint-imports": InCI(),
    ".venv/bin/mkdocs build --strict": InCI(),
    # Training (docs/training.md)
    MOVING_MNIST_CPU: Via("train", ("--output_dir", "outputs/moving_mnist_cpu")),
    f"{MOVING_MNIST_CPU} --resume_from_checkpoint latest": Run(
        (*TINY_MOVING_MNIST, "--max_train_steps", "3"), check_resumed, after="make train"
    ),
    f"{MOVING_MNIST_CPU} --model null --model_name_or_path outputs/moving_mnist_cpu --dataset path/to/my_sequences "
    "--output_dir outputs/finetuned": Run(TINY_FINE_TUNING, check_fine_tuned, after="make train"),
    ".venv/bin/accelerate launch --config_file configs/accelerate/cpu_2proc.yaml scripts/train.py --config "
    "configs/moving_mnist_cpu.yaml": Covered(
        "tests/test_training.py::test_two_cpu_processes_see_different_data_and_agree_on_weights",
        ("accelerate.commands.launch", "--num_processes", '"2"'),
        "two gloo CPU processes launched with cpu_2proc.yaml's settings as flags, each running the package's train()",
    ),
    ".venv/bin/accelerate launch scripts/train.py --config configs/moving_mnist_openstl_s.yaml": Exempt(GPU),
    ".venv/bin/accelerate launch --config_file configs/accelerate/multi_gpu.yaml scripts/train.py --config "
    "configs/moving_mnist_openstl_s.yaml": Exempt(GPU),
    ".venv/bin/accelerate launch --config_file configs/accelerate/fsdp.yaml scripts/train.py --config "
    "configs/moving_mnist_openstl_s.yaml": Exempt(GPU),
    ".venv/bin/accelerate launch --multi_gpu --num_machines 2 --machine_rank 0 --main_process_ip 10.0.0.1 "
    "--main_process_port 29500 --num_processes 16 scripts/train.py --config "
    "configs/moving_mnist_openstl_s.yaml": Exempt("needs two machines with GPUs"),
    ".venv/bin/python scripts/evaluate.py --model outputs/moving_mnist_cpu --data '{cache_dir: data_cache}' "
    "--output_dir outputs/evaluation": Run(
        ("--data", json.dumps({"cache_dir": "data_cache", **TINY_MOVING_MNIST_DATA}), "--batch_size", "4"),
        check_evaluated(4),
        after="make train",
    ),
    ".venv/bin/python scripts/evaluate.py --model outputs/moving_mnist_cpu --dataset "
    "moving_mnist_test_file:mnist_test_seq.npy": Run(
        ("--batch_size", "4"), check_evaluated(3), after="make train"
    ),
    ".venv/bin/python scripts/predict.py --model outputs/moving_mnist_cpu --input frames.npy "
    "--num_output_frames 20": Run((), check_predicted, after="make train"),
    # Nowcasting (docs/nowcasting/)
    FIXED_STEPS: Run(
        (*TINY_SYNTHETIC_STAGE, *TINY_RADAR_STAGE),
        # (ANVIL too with the recipe's 4 observed frames; the tiny run observes 3)
        check_nowcast(
            "outputs/fixed", {"model", "persistence", "extrapolation", "sprog", "steps"}, radar=True
        ),
        folder="radar",
        needs="pysteps",
    ),
    # bf16 for the recipe (docs/experiments/2026-12-06-nowcasting-bf16.md): every stage under mixed_precision auto
    "python scripts/train_nowcasting.py --radar_root ../shared/radar --output_dir outputs/nowcasting_bf16 "
    "--synthetic.mixed_precision auto --radar.mixed_precision auto": Run(
        (*TINY_SYNTHETIC_STAGE, *TINY_RADAR_STAGE),
        check_nowcast(
            "outputs/nowcasting_bf16", {"model", "persistence", "extrapolation", "sprog", "steps"}, radar=True
        ),
        folder="radar",
        needs="pysteps",
    ),
    ".venv/bin/python scripts/evaluate.py --dataset radar --baselines persistence extrapolation sprog --data "
    + RADAR_DATA: Run(
        ("--num_input_frames", "3", "--num_output_frames", "3", "--max_samples", "4"),
        check_scored(["persistence", "extrapolation", "sprog"]),
        folder="radar",
        needs="pysteps",
    ),
    ".venv/bin/python scripts/evaluate.py --model outputs/nowcasting --dataset radar --baselines persistence "
    "extrapolation --data " + RADAR_DATA: Run(
        ("--max_samples", "4"),
        check_scored(["model", "persistence", "extrapolation"]),
        folder="radar",
        after=FIXED_STEPS,  # its model stands in for make nowcast's (linked as outputs/nowcasting)
        needs="pysteps",
    ),
    # Forecast files (docs/nowcasting/forecast-files.md)
    ".venv/bin/convlstm-nowcast --model outputs/nowcasting --data-source fmi --root ../shared/radar/fmi/pgm --time "
    "2017-05-09T14:00 --output forecast.nc --png forecast.png": Covered(
        "tests/test_nowcast_command.py::test_the_documented_command_on_the_fmi_archive",
        ('"--data-source", "fmi", "--root"', '"--time", "2017-05-09T14:00"', '"--png"'),
        "the same options on the FMI archive with a tiny model; the written file checked against forecast_rain_rate",
    ),
    # Serving (docs/serving.md)
    ".venv/bin/python scripts/export_onnx.py --model outputs/moving_mnist_cpu --output "
    "outputs/moving_mnist_cpu/model.onnx --num_input_frames 10 --num_output_frames 10": Covered(
        "tests/test_onnx_export.py::test_script_exports_fixed_frames_dynamic_sizes_matching_pytorch",
        ("export_onnx.py", "--model", "--output", "--num_input_frames", "--num_output_frames"),
        "the script's main() on a tiny saved model (an export takes 15 s or more)",
    ),
    ".venv/bin/python space/app.py --model outputs/moving_mnist_cpu": Covered(
        "tests/test_space.py::test_gradio_client_gets_a_prediction_of_the_right_shape",
        ("space", "app.py", "load_predictor", "build_demo", "launch"),
        "it serves until stopped; the test launches the same app on a loopback port and drives it",
    ),
    "MODEL_ID=you/convlstm-moving-mnist .venv/bin/python space/app.py": Exempt(
        "needs the Hub (a model repo)"
    ),
    # The nowcasting Space (docs/nowcasting/space.md)
    ".venv/bin/python space_nowcasting/app.py --model outputs/nowcasting": Covered(
        "tests/test_space_nowcasting.py::test_gradio_client_forecasts_a_sample_and_uploaded_stacks",
        ("space_nowcasting", "app", "load_model", "build_demo", "launch"),
        "it serves until stopped; the test launches the same app with a tiny rain model and drives it",
    ),
    "MODEL_ID=you/convlstm-nowcasting .venv/bin/python space_nowcasting/app.py": Exempt(
        "needs the Hub (a model repo)"
    ),
    ".venv/bin/python space_nowcasting/make_examples.py --radar_root ../shared/radar": Covered(
        "tests/test_space_nowcasting.py::test_make_examples_writes_the_committed_sample",
        ("make_examples", "--radar_root", "identical"),
        "writes the KNMI sample from ../shared/radar and compares it with the committed one",
    ),
    # The Hub (docs/hub.md)
    ".venv/bin/hf auth login": Exempt("needs the Hub and a person's token"),
    f"{MOVING_MNIST_CPU} --push_to_hub --hub_model_id you/convlstm-moving-mnist": Covered(
        "tests/test_training.py::test_push_to_hub_at_the_end_of_training",
        ("scripts", "train.py", "push_to_hub", "hub_model_id"),
        "pushes to the tests' local stand-in for the Hub",
    ),
    # The upload itself is tests/test_hub_datasets.py's, to the local stand-in for the Hub.
    ".venv/bin/python scripts/push_dataset.py --repo_id you/moving-mnist --config configs/moving_mnist_cpu.yaml": Run(
        (*TINY_PUSH, "--dry_run"), check_card
    ),
    ".venv/bin/python scripts/push_dataset.py --repo_id you/moving-mnist --dry_run": Run(
        TINY_PUSH, check_card
    ),
    # Training at scale (docs/training-at-scale.md)
    ".venv/bin/python scripts/push_dataset.py --repo_id you/radar-windows --config radar_windows.yaml "
    "--license cc-by-4.0 --max-shard-size 200MB --num-shards train=64": Covered(
        "tests/test_hub_datasets.py::test_radar_windows_pushed_as_shards_stream_back_row_for_row",
        ("push_dataset", "--license", "--max-shard-size", "--num-shards", "streaming=True"),
        "the same options on small generated radar stacks, pushed to the local stand-in for the Hub and streamed back",
    ),
    ".venv/bin/hf download you/radar-windows --repo-type dataset --local-dir /scratch/radar-windows": Exempt(
        "needs the Hub and a pushed dataset"
    ),
    ".venv/bin/accelerate launch --multi_gpu --num_processes 8 scripts/train.py --config radar_hub.yaml": Exempt(
        "needs 8 GPUs and the pushed dataset on the Hub"
    ),
    ".venv/bin/accelerate launch --multi_gpu --num_machines 2 --machine_rank 0 --main_process_ip 10.0.0.1 "
    "--main_process_port 29500 --num_processes 16 scripts/train.py --config radar_hub.yaml": Exempt(
        "needs two machines of GPUs and the pushed dataset on the Hub"
    ),
    # Benchmarks (docs/benchmarks.md, docs/hardware.md)
    "python scripts/benchmark.py --output BENCHMARKS-run.md --output-json run.json": Covered(
        "tests/test_benchmark.py::test_quick_run_reports_every_variant",
        ("--quick", "--output", "--output-json"),
        "the same run with --quick (tiny shapes)",
    ),
    "python scripts/benchmark.py --configs '' --loss-check": Run(
        ("--quick", "--loss-steps", "1"), check_loss_check
    ),
    "python scripts/benchmark.py --quick": Covered(
        "tests/test_benchmark.py::test_quick_run_reports_every_variant", ("--quick",)
    ),
    "python scripts/benchmark.py --device cuda": Exempt(GPU),
    "python scripts/benchmark_ensemble.py": Covered(
        "tests/test_benchmark_ensemble.py::test_quick_run_times_model_members_beside_steps",
        ("benchmark_ensemble.py", "--quick"),
        "the same script on a small domain; the full run takes minutes",
    ),
    "python scripts/benchmark_ensemble.py --quick": Covered(
        "tests/test_benchmark_ensemble.py::test_quick_run_times_model_members_beside_steps",
        ("benchmark_ensemble.py", "--quick"),
    ),
    # Ensembles (docs/nowcasting/ensembles.md)
    ".venv/bin/convlstm-train --config configs/nowcasting_radar.yaml --model_name_or_path outputs/nowcasting/radar "
    "--output_dir outputs/nowcasting_ensemble --model.ensemble_noise_channels 8 --model.ensemble_train_members 4 "
    "--learning_rate 3e-4 --noise_learning_rate 2e-3": Covered(
        "tests/test_ensemble_training.py::test_fine_tuning_a_deterministic_model_into_an_ensemble_adds_the_noise_injection",
        ("model_name_or_path", "ensemble_noise_channels", "ensemble_train_members"),
        "the same fine-tuning fields on a small saved model (the recipe's model and radar data take minutes); "
        "noise_learning_rate in test_noise_learning_rate_puts_the_noise_injection_in_groups_of_its_own",
    ),
    "python scripts/benchmark_loader.py": Covered(
        "tests/test_benchmark_loader.py::test_quick_run_reports_loader_and_model",
        ("benchmark_loader.py", "--quick"),
        "the same script with --quick (192 windows, one timed step)",
    ),
    "python scripts/benchmark_loader.py --quick": Covered(
        "tests/test_benchmark_loader.py::test_quick_run_reports_loader_and_model",
        ("benchmark_loader.py", "--quick"),
    ),
    "python scripts/benchmark.py --configs '' --under-load": Covered(
        "tests/test_benchmark.py::test_under_load_child_and_report",
        ("under_load.run_child",),
        "the measurement the option runs (benchmarks.under_load's child process), with a tiny model",
    ),
    "scripts/gpu_check.sh": Covered(
        "tests/test_gpu_check.py::test_dry_run_writes_the_report",
        ("gpu_check.sh", "--dry-run"),
        "the same script with --dry-run: every step but the CUDA parts, on CPU",
    ),
}


def _key(command: str) -> str:
    return shlex.join(shlex.split(command))


def _short(command: str) -> str:
    """A test id: the command without the interpreter, cut at 80 characters."""
    for prefix in (".venv/bin/python ", "python "):
        command = command.removeprefix(prefix)
    return command if len(command) <= 80 else command[:77] + "..."


ROWS = {_key(command): row for command, row in COMMANDS.items()}


# ---- reading the pages -------------------------------------------------------------------------------------


def _page_lines(path: Path):
    for line in path.read_text().splitlines():
        included = SNIPPET.match(line.strip())
        if included:
            yield from _page_lines(ROOT / included.group(1))
        else:
            yield line


def shell_commands(path: Path) -> list[str]:
    """The commands of a page's shell blocks: continuation lines joined, comments and ``$`` prompts dropped, each
    command in ``shlex.join`` form."""
    commands, block, language = [], None, None
    for line in _page_lines(path):
        fence = FENCE.match(line)
        if fence and block is None:
            block, language = [], fence.group(1)
        elif fence:
            if language in SHELL_LANGUAGES:
                for logical in "\n".join(block).replace("\\\n", " ").splitlines():
                    text = logical.strip()
                    if language == "console":
                        if not text.startswith("$ "):
                            continue
                        text = text[2:]
                    tokens = shlex.split(text, comments=True)
                    if tokens:
                        commands.append(shlex.join(tokens))
            block = None
        elif block is not None:
            block.append(line)
    return commands


def documented_commands() -> dict[str, list[str]]:
    """``{command: [pages showing it]}``."""
    found: dict[str, list[str]] = {}
    for page in PAGES:
        for command in shell_commands(page):
            found.setdefault(command, []).append(str(page.relative_to(ROOT)))
    return found


def test_every_documented_command_has_a_row():
    documented = documented_commands()
    assert "make train" in documented and len(documented) > 10  # the pages were read
    missing = {command: pages for command, pages in documented.items() if command not in ROWS}
    assert missing == {}, f"documented commands without a row in COMMANDS (how they are tested): {missing}"
    stale = sorted(set(ROWS) - set(documented))
    assert stale == [], f"rows of COMMANDS that no page shows any more: {stale}"


def test_the_extractor_reads_blocks_as_a_shell_would(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\nmake train   # a comment\n.venv/bin/python a.py --x '{a: 1}' \\\n    --y 2\n# a comment alone\n```\n"
        "```python\nprint('not a shell command')\n```\n"
        "```console\n$ ls -l\noutput line\n```\n"
    )
    assert shell_commands(page) == ["make train", ".venv/bin/python a.py --x '{a: 1}' --y 2", "ls -l"]


def test_documented_files_exist():
    """Every configs/, scripts/, space/, space_nowcasting/ or tests/ path a command names is in the repository."""
    for command in documented_commands():
        for token in shlex.split(command):
            value = token.split("=", 1)[-1]
            if value.startswith(("configs/", "scripts/", "space/", "space_nowcasting/", "tests/")):
                assert (ROOT / value).exists(), f"{command!r} names {value}, which does not exist"


def test_the_documented_install_is_the_makefiles():
    makefile = (ROOT / "Makefile").read_text()
    pin = re.search(r"^TORCH_VERSION \?= (\S+)$", makefile, re.MULTILINE).group(1)
    assert _key(f"pip install torch=={pin}") in ROWS
    setup = set(re.search(r'pip install -q -e "\.\[([\w,]+)\]"', makefile).group(1).split(","))
    assert {"dev", "nowcasting"} <= setup


def test_installed_extras_exist():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for command in ROWS:
        tokens = shlex.split(command)
        if tokens[:3] == ["pip", "install", "-e"]:
            named = re.fullmatch(r"\.\[([\w,]+)\]", tokens[3]).group(1).split(",")
            assert set(named) <= set(extras), command


@pytest.mark.parametrize("command", [c for c, row in ROWS.items() if isinstance(row, Covered)], ids=_short)
def test_covering_test_exists_and_names_the_command(command):
    row = ROWS[command]
    path, name = row.test.split("::")
    source = (ROOT / path).read_text()
    functions = {node.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef)}
    assert name in functions, f"{command!r} is said to be run by {row.test}, which does not exist"
    for word in row.names:
        assert word in source, f"{row.test} does not name {word!r} of {command!r}"


def _ci_lines() -> list[list[str]]:
    lines = []
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        tokens = shlex.split(line, comments=True)
        while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):
            tokens = tokens[1:]  # environment settings in front of the command
        if tokens:
            lines.append(tokens)
    return lines


def ci_runs(command: str) -> bool:
    tokens = shlex.split(command)
    return any(line[: len(tokens)] == tokens for line in _ci_lines())


@pytest.mark.parametrize("command", [c for c, row in ROWS.items() if isinstance(row, InCI)])
def test_ci_runs_the_command(command):
    assert ci_runs(command), f".ci/run does not run {command!r}"


def make_commands(target: str, cwd: Path, **variables: str) -> list[str]:
    """The commands ``make TARGET`` runs after its setup, as ``make -n`` prints them (continuation lines joined)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # Run as a top-level make even when this suite runs under `make test` (as in CI): a nested make would print
    # "make[1]: Entering directory" lines among the commands.
    environment = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "setup", "-f", str(ROOT / "Makefile"), target]
        + [f"{name}={value}" for name, value in variables.items()],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [_key(line) for line in printed.replace("\\\n", " ").splitlines() if line.strip()]


@pytest.mark.parametrize("command", [c for c, row in ROWS.items() if isinstance(row, MakeInCI)])
def test_ci_runs_what_the_make_target_runs(command, tmp_path):
    lines = make_commands(shlex.split(command)[1], tmp_path)
    assert lines and all(ci_runs(line) for line in lines), lines


def test_make_test_is_this_suite(tmp_path):
    assert make_commands("test", tmp_path) == [".venv/bin/python -m pytest -q"]


@pytest.mark.parametrize("command", [c for c, row in ROWS.items() if isinstance(row, Via)])
def test_make_runs_the_documented_command(command, tmp_path):
    row = ROWS[command]
    config = yaml.safe_load((ROOT / "configs" / "moving_mnist_cpu.yaml").read_text())
    assert list(row.added) == ["--output_dir", config["output_dir"]]  # the config's own: the same run
    assert _key(f"{command} {shlex.join(row.added)}") in make_commands(row.target, tmp_path)


def test_make_nowcast_adds_the_radar_stage_where_the_archive_is(tmp_path):
    assert make_commands("nowcast", tmp_path) == [
        ".venv/bin/python scripts/train_nowcasting.py --output_dir outputs/nowcasting"
    ]
    archive = tmp_path / "archive"
    archive.mkdir()
    assert make_commands("nowcast", tmp_path, RADAR_ROOT=str(archive)) == [
        f".venv/bin/python scripts/train_nowcasting.py --radar_root {archive} --output_dir outputs/nowcasting"
    ]


# ---- running the commands ----------------------------------------------------------------------------------


def _make_repository(base: Path) -> Path:
    """A folder laid out like the repository for the documented relative paths, with the files they name."""
    repo = base / "repo"
    repo.mkdir(parents=True)
    for name in ("configs", "scripts"):
        (repo / name).symlink_to(ROOT / name)
    rng = np.random.default_rng(0)
    sequences = repo / "path" / "to" / "my_sequences"
    sequences.mkdir(parents=True)
    for index in range(8):
        np.save(sequences / f"sequence_{index}.npy", rng.integers(0, 256, (8, 32, 32), dtype=np.uint8))
    np.save(repo / "frames.npy", rng.integers(0, 256, (6, 32, 32), dtype=np.uint8))
    # The standard Moving MNIST test file's layout: time first, (20, N, 64, 64) uint8.
    np.save(repo / "mnist_test_seq.npy", rng.integers(0, 256, (20, 3, 64, 64), dtype=np.uint8))
    return repo


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    """``{"repo": ..., "radar": ...}``: the second one's ``../shared/radar`` exists but holds no archive, and its
    ``stacks/`` hold small generated events (mm/h, a no-data corner), which the commands get as ``data.sources``."""
    from bidirectional_conv_lstm.data import generate_synthetic_rain

    repo = _make_repository(tmp_path_factory.mktemp("docs"))
    radar = _make_repository(tmp_path_factory.mktemp("docs_radar"))
    (radar.parent / "shared" / "radar").mkdir(parents=True)
    (radar / "stacks").mkdir()
    rain = generate_synthetic_rain(len(RADAR_EVENTS), num_frames=12, size=32, seed=3, speed_range=(0.5, 1.5))
    for name, event in zip(RADAR_EVENTS, rain):
        event[:, :3, :5] = np.nan  # outside the radar's range
        np.save(radar / "stacks" / f"{name}.npy", event)
    np.save(radar / "stacks" / "fmi_20170509.npy", rain[2])  # the event the documented evaluation names
    return {"repo": repo, "radar": radar}


@contextlib.contextmanager
def _inside(folder: Path):
    """Work in ``folder``, with the package's cache there, on one thread (tiny tensors: OpenMP hand-offs would
    dominate, and stall beside a busy core); restore the working folder, threads and environment."""
    previous, threads, environment = Path.cwd(), torch.get_num_threads(), dict(os.environ)
    os.chdir(folder)
    os.environ["BCL_CACHE"] = str(folder / "cache")
    torch.set_num_threads(1)
    try:
        yield
    finally:
        os.chdir(previous)
        torch.set_num_threads(threads)
        os.environ.clear()
        os.environ.update(environment)


def run_python(argv: list[str], folder: Path) -> str:
    """``python SCRIPT ARGS`` in this process, as the interpreter runs a script; returns what it printed."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # each command is a process of its own, with its own precision
    printed = io.StringIO()
    saved_argv = sys.argv
    with _inside(folder), contextlib.redirect_stdout(printed):
        sys.argv = list(argv)
        try:
            runpy.run_path(argv[0], run_name="__main__")
        except SystemExit as exit:
            if exit.code not in (None, 0):
                pytest.fail(f"{shlex.join(argv)} exited with {exit.code!r}\n{printed.getvalue()[-3000:]}")
        finally:
            sys.argv = saved_argv
            AcceleratorState._reset_state(True)  # and leaves none behind for the tests after it
    return printed.getvalue()


def run_line(tokens: list[str], folder: Path, extra: tuple[str, ...] = ()) -> str:
    if tokens[0] in PYTHON:
        return run_python([*tokens[1:], *extra], folder)
    if tokens[:1] == ["cat"]:
        return (folder / tokens[1]).read_text()
    raise AssertionError(f"no way to run {shlex.join(tokens)!r} here")


def _radar_data_from_stacks(tokens: list[str]) -> list[str]:
    """The documented ``--data`` with the archive (``root``) replaced by generated stacks of the events it names."""
    index = tokens.index("--data") + 1
    data = yaml.safe_load(tokens[index])
    data.pop("root")
    data["sources"] = [{"name": name, "path": f"stacks/{name}.npy", "timestep": 5} for name in data["events"]]
    return [*tokens[:index], json.dumps({**data, **TINY_RADAR_WINDOWS}), *tokens[index + 1 :]]


_PRINTED: dict[
    str, str
] = {}  # command -> what it printed: each runs once, however many rows read its outputs


def run_documented(command: str, folders: dict) -> str:
    """Run a ``Run`` or ``Make`` row (first the row whose outputs it reads) and check what it wrote."""
    if command in _PRINTED:
        return _PRINTED[command]
    row = ROWS[command]
    if row.needs:
        pytest.importorskip(
            row.needs, reason=f"{command!r} needs {row.needs} (pip install -e '.[nowcasting]')"
        )
    folder = folders[row.folder]
    if isinstance(row, Make):
        lines = make_commands(shlex.split(command)[1], folder)
        printed = "\n".join(
            run_line(shlex.split(line), folder, row.extra.get(shlex.split(line)[1], ())) for line in lines
        )
    else:
        if row.after:
            run_documented(_key(row.after), folders)
        tokens = shlex.split(command)
        if "--data" in tokens and "root: ../shared/radar" in tokens[tokens.index("--data") + 1]:
            tokens = _radar_data_from_stacks(tokens)
        if "outputs/nowcasting" in tokens and row.after == FIXED_STEPS:
            link = folder / "outputs" / "nowcasting"
            if not link.exists():
                link.symlink_to(
                    folder / "outputs" / "fixed"
                )  # make nowcast's model, here the fixed-steps run's
        printed = run_line(tokens, folder, row.extra)
    row.check(folder, printed)
    _PRINTED[command] = printed
    return printed


@pytest.mark.parametrize(
    "command", [c for c, row in ROWS.items() if isinstance(row, (Run, Make))], ids=_short
)
def test_documented_command_runs(command, folders):
    run_documented(command, folders)
