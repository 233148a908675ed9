"""RunProgress: schedules driven by steps or by the share of the time budget spent (a fake clock, no timing)."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch
import yaml
from transformers import get_scheduler

from bidirectional_conv_lstm.training import loop as training
from bidirectional_conv_lstm.training.arguments import TrainingArguments
from bidirectional_conv_lstm.training.schedules import RunProgress, learning_rate_factor
from bidirectional_conv_lstm.utils.hardware import resolve_mixed_precision
from test_training import tiny_config


class FakeClock:
    """Returns 0, 1, 2, ... seconds, one more at every call."""

    def __init__(self):
        self.now = -1.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def never_called() -> float:
    raise AssertionError("a run without a time budget must not read the clock")


def test_without_a_budget_the_position_is_the_step():
    progress = RunProgress(100, clock=never_called)
    progress.start()
    assert [progress.update(step) for step in (0, 7, 100, 150)] == [0.0, 7.0, 100.0, 100.0]
    assert not progress.out_of_time and not progress.budget_driven


def test_budget_moves_the_schedules_when_it_runs_ahead_of_the_steps():
    clock = FakeClock()
    progress = RunProgress(100, budget_seconds=10.0, clock=clock)
    progress.start()  # t = 0
    assert progress.update(0) == 10.0  # t = 1: a tenth of the budget is a tenth of the schedule
    assert progress.update(50) == 50.0  # t = 2: the steps are ahead (20 < 50)
    clock.now = 8.0
    assert progress.update(3) == 90.0 and not progress.out_of_time  # t = 9
    assert progress.update(4) == 100.0 and progress.out_of_time  # t = 10: spent, schedules at their ends


def test_budget_can_only_stop_the_run():
    progress = RunProgress(100, budget_seconds=2.0, follow_budget=False, clock=FakeClock())
    progress.start()
    assert progress.update(5) == 5.0 and not progress.out_of_time
    assert progress.update(6) == 6.0 and progress.out_of_time


def test_resumed_run_keeps_the_time_it_had_spent_and_processes_agree():
    agreed = []

    def agree(seconds):  # the main process's clock wins
        agreed.append(seconds)
        return seconds + 1.0

    progress = RunProgress(100, budget_seconds=20.0, clock=FakeClock(), agree=agree)
    progress.start(elapsed_before=8.0)
    assert progress.elapsed == 8.0
    assert progress.update(0) == pytest.approx(100 * 10.0 / 20.0)  # 8 before + 1 now, agreed as 10
    assert agreed == [9.0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_steps"):
        RunProgress(0)
    with pytest.raises(ValueError, match="budget_seconds"):
        RunProgress(10, budget_seconds=0)
    with pytest.raises(RuntimeError, match="start"):
        RunProgress(10, budget_seconds=5).update(0)


@pytest.mark.parametrize(
    "kind", ["linear", "cosine", "cosine_with_restarts", "polynomial", "constant_with_warmup"]
)
def test_learning_rate_factor_is_transformers_schedule(kind):
    factor = learning_rate_factor(kind, 3e-3, warmup_steps=5, max_steps=40)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3e-3)
    reference = get_scheduler(kind, optimizer, num_warmup_steps=5, num_training_steps=40)
    expected = []
    for _ in range(41):
        expected.append(reference.get_last_lr()[0] / 3e-3)
        optimizer.step()
        reference.step()
    assert [factor(step) for step in range(41)] == pytest.approx(expected, abs=1e-12)
    if kind == "cosine":  # between steps it lies between their values
        assert factor(20) > factor(20.5) > factor(21)


@pytest.fixture
def fresh_accelerate_state():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def test_budget_driven_run_finishes_its_schedules_and_prints_scores_on_their_own_lines(
    tmp_path, monkeypatch, fresh_accelerate_state
):
    """40 steps planned, a budget of 10 fake seconds (one per clock reading, one reading per step): the run stops
    after 9 steps with every schedule at its end, prints each validation on a line of its own, and records the
    precision `auto` chose."""
    monkeypatch.setattr(training, "_clock", FakeClock())
    positions = []
    original = TrainingArguments.teacher_forcing_ratio

    def recording(self, step):
        positions.append(step)
        return original(self, step)

    monkeypatch.setattr(TrainingArguments, "teacher_forcing_ratio", recording)
    args = TrainingArguments(
        **tiny_config(
            tmp_path / "out",
            tmp_path / "cache",
            max_train_steps=40,
            max_train_minutes=10 / 60,
            eval_steps=3,
            checkpointing_steps=100,
            teacher_forcing_steps=40,
            mixed_precision="auto",
            adapt_num_threads=True,  # whatever it picks, the caller's thread count comes back
        )
    )
    output, threads = io.StringIO(), torch.get_num_threads()
    with redirect_stdout(output), redirect_stderr(output):
        results = training.train(args)
    text = output.getvalue()
    assert torch.get_num_threads() == threads
    # start() reads t = 0; the position of step k is read at t = k + 1: 40 * (k + 1) / 10 steps.
    assert results["global_step"] == 9
    assert positions == [4.0 * (k + 1) for k in range(9)]
    assert re.findall(r"lr=([0-9.e+-]+)", text)[-1] == "0.00e+00"  # the cosine reached its end
    # Validation scores at steps 3, 6, 9: each starts a line (after the progress bar's carriage returns).
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    assert [line.split(":")[0] for line in lines if "validation mse" in line] == [
        "step 3",
        "step 6",
        "step 9",
    ]
    precision, reason = resolve_mixed_precision("auto", "cpu")
    assert f"mixed_precision: auto -> {precision!r} on cpu: {reason}" in text
    written = Path(args.output_dir, "training_config.yaml").read_text()
    assert written.startswith("# mixed_precision: auto -> ")
    assert yaml.safe_load(written)["mixed_precision"] == precision
