"""The CPU recipe's training step alone, then beside a process busy on one core: how training degrades under load.

Each thread policy runs in a fresh Python process, since OpenMP reads its wait policy when torch is imported:

  torch default              all threads, libgomp's default wait (spin up to 300,000 iterations, then sleep)
  OMP_WAIT_POLICY=PASSIVE    all threads; a waiting thread sleeps at once
  1 thread                   torch.set_num_threads(1)
  adaptive                   ThreadTuner chooses the count from step times, as `make train` does
                             (adapt_num_threads: true)

Each process builds the model of the recipe (configs/moving_mnist_cpu.yaml), takes warm-up steps, times ``steps``
training steps (forward with teacher forcing, backward, gradient clipping, AdamW) alone, starts
``python -c "while True: pass"`` pinned to the last CPU (a CPU-bound process busy on one core), takes a few settling
steps (the adaptive policy notices the load there), times ``steps`` more, and stops the busy process. Reported: the
median seconds per step in each condition and their ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

import torch

from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction
from ..training.arguments import load_training_arguments
from ..utils.threads import ThreadTuner
from .report import fmt

POLICIES = {
    "torch default": {},
    "OMP_WAIT_POLICY=PASSIVE": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}},
    "1 thread": {"threads": 1},
    "adaptive (ThreadTuner, make train)": {"adaptive": True},
}
QUICK_POLICIES = ("adaptive (ThreadTuner, make train)",)
WARMUP_STEPS = 8  # untimed steps before the quiet measurement (the tuner warms up and probes within them)
SETTLE_STEPS = 6  # untimed steps after the busy process starts (the tuner notices the load and re-probes)
# What a policy's fresh process runs: child_main, with its JSON spec as the first argument.
CHILD_CODE = "from bidirectional_conv_lstm.benchmarks.under_load import child_main; child_main()"


@contextmanager
def busy_core():
    """A CPU-bound Python process pinned to the last CPU this process may use; yields that CPU (None: one CPU)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        yield None
        return
    cpu = cpus[-1]
    process = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"], preexec_fn=lambda: os.sched_setaffinity(0, {cpu})
    )
    try:
        time.sleep(0.2)  # let it start spinning
        yield cpu
    finally:
        process.kill()
        process.wait()


def training_step_factory(quick: bool, recipe: str | os.PathLike):
    """(step function, description) for the model of ``recipe`` (a training config file) on a fixed random
    batch; ``quick``: a tiny model, batch 2, 3 -> 2 frames of 16x16."""
    args = load_training_arguments(recipe)
    overrides = {}
    if quick:
        overrides = dict(hidden_sizes=[4], kernel_size=3)
    config = args.model_config()
    config.update(overrides)
    batch, size = (2, 16) if quick else (args.per_device_train_batch_size, 64)
    frames_in, frames_out = (3, 2) if quick else (args.num_input_frames, args.num_output_frames)
    torch.manual_seed(0)
    torch.set_flush_denormal(True)
    model = ConvLSTMForFramePrediction(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    pixels = torch.rand(batch, frames_in, config.num_channels, size, size)
    labels = torch.rand(batch, frames_out, config.num_channels, size, size)

    def step() -> None:
        loss = model(pixels, labels=labels, teacher_forcing_ratio=0.5).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()

    hidden = ", ".join(map(str, config.hidden_sizes))
    description = (
        f"the CPU recipe's model ([{hidden}] hidden, kernel {config.kernel_size}, patch {config.patch_size}), "
        f"batch {batch}, {frames_in} -> {frames_out} frames of {size}x{size}, AdamW, teacher forcing 0.5"
    )
    return step, description


def run_child(policy: dict, steps: int, quick: bool, recipe: str | os.PathLike) -> dict:
    """In this (fresh) process: time ``steps`` steps alone and ``steps`` beside a busy core."""
    if policy.get("threads"):
        torch.set_num_threads(policy["threads"])
    step, description = training_step_factory(quick, recipe)
    tuner = ThreadTuner() if policy.get("adaptive") else None
    start_threads = torch.get_num_threads()

    def timed(count: int) -> list[float]:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
            if tuner is not None:
                tuner.record(times[-1])
        return times

    timed(2 if quick else WARMUP_STEPS)
    alone = timed(steps)
    threads_alone = torch.get_num_threads()
    with busy_core() as cpu:
        timed(1 if quick else SETTLE_STEPS)
        busy = timed(steps) if cpu is not None else []
    return dict(
        description=description,
        busy_cpu=cpu,
        threads=[start_threads, threads_alone, torch.get_num_threads()],
        alone=alone,
        busy=busy,
        tuner_changes=[] if tuner is None else tuner.changes,
    )


def child_main(argv: list[str] | None = None) -> None:
    """A policy's process: run :func:`run_child` for the JSON spec ``argv[0]`` (``policy``, ``steps``, ``quick``,
    ``recipe``) and print its report as JSON on the last line of stdout."""
    spec = json.loads((sys.argv[1:] if argv is None else argv)[0])
    print(json.dumps(run_child(POLICIES[spec["policy"]], spec["steps"], spec["quick"], spec["recipe"])))


def _run_policy(name: str, steps: int, quick: bool, recipe: str | os.PathLike) -> dict:
    """The report of policy ``name`` from its own process (its environment set before torch is imported)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[name].get("env", {}))
    env["PYTHONWARNINGS"] = "ignore"
    spec = {"policy": name, "steps": steps, "quick": quick, "recipe": os.fspath(recipe)}
    command = [sys.executable, "-c", CHILD_CODE, json.dumps(spec)]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"under-load child for {name!r} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _policy_row(name: str, report: dict) -> dict:
    alone = statistics.median(report["alone"])
    busy = statistics.median(report["busy"]) if report["busy"] else None
    return dict(
        policy=name,
        threads=report["threads"],
        alone_s=alone,
        busy_s=busy,
        slowdown=None if busy is None else busy / alone,
        tuner_changes=report["tuner_changes"],
        alone_samples=report["alone"],
        busy_samples=report["busy"],
    )


def measure(steps: int = 8, quick: bool = False, policies=None, *, recipe: str | os.PathLike) -> dict:
    """Run every policy (``policies``; default all, or the adaptive one when ``quick``) in its own process on the
    model of ``recipe``; returns ``{"rows": [...], "markdown": str, ...}``."""
    names = policies or (QUICK_POLICIES if quick else tuple(POLICIES))
    rows, description, busy_cpu = [], "", None
    for name in names:
        report = _run_policy(name, steps, quick, recipe)
        description, busy_cpu = report["description"], report["busy_cpu"]
        rows.append(_policy_row(name, report))
        print(f"(under load) {name} done", file=sys.stderr)
    reference = rows[0]["alone_s"]
    for row in rows:
        row["busy_vs_first_alone"] = None if row["busy_s"] is None else row["busy_s"] / reference
    result = dict(description=description, busy_cpu=busy_cpu, cpus=len(os.sched_getaffinity(0)), rows=rows)
    result["markdown"] = markdown(result, steps)
    return result


def markdown(result: dict, steps: int) -> str:
    """The under-load table: each policy's threads, seconds per step alone and beside the busy core, ratios."""
    first = result["rows"][0]["policy"]
    lines = [
        "### Under load: the CPU recipe's training step alone and beside a busy core",
        "",
        f"{result['description']}; {result['cpus']} CPUs; median of {steps} timed steps per condition; the busy "
        f'process is `python -c "while True: pass"` pinned to CPU {result["busy_cpu"]}. Threads: at start, '
        "alone, beside the busy process.",
        "",
        f"| policy | threads | alone s/step | beside a busy core s/step | slowdown | busy vs {first} alone |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['policy']} | {' / '.join(map(str, row['threads']))} | {fmt(row['alone_s'], 3)} | "
            f"{fmt(row['busy_s'], 3)} | {fmt(row['slowdown'], 1, 'x')} | "
            f"{fmt(row['busy_vs_first_alone'], 1, 'x')} |"
        )
    return "\n".join(lines)
