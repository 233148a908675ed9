"""The CPU recipe's training step alone, then beside a process busy on one core: how training degrades under load.

    python scripts/benchmark.py --configs "" --under-load          # the same, as part of the benchmark report
    python scripts/benchmark_under_load.py --steps 8 --output under_load.md

Each thread policy runs in a fresh Python process, since OpenMP reads its wait policy when torch is imported:

  torch default              all threads, libgomp's default wait (spin up to 300,000 iterations, then sleep)
  OMP_WAIT_POLICY=PASSIVE    all threads; a waiting thread sleeps at once
  1 thread                   torch.set_num_threads(1)
  adaptive                   ThreadTuner chooses the count from step times, as `make train` does
                             (adapt_num_threads: true)

Each process builds the model of configs/moving_mnist_cpu.yaml, takes warm-up steps, times ``--steps`` training steps
(forward with teacher forcing, backward, gradient clipping, AdamW) alone, starts ``python -c "while True: pass"``
pinned to the last CPU (a CPU-bound process busy on one core), takes a few settling steps (the adaptive policy
notices the load there), times ``--steps`` more, and stops the busy process. Reported: the median seconds per step
in each condition and their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "moving_mnist_cpu.yaml"
POLICIES = {
    "torch default": {},
    "OMP_WAIT_POLICY=PASSIVE": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}},
    "1 thread": {"threads": 1},
    "adaptive (ThreadTuner, make train)": {"adaptive": True},
}
QUICK_POLICIES = ("adaptive (ThreadTuner, make train)",)
WARMUP_STEPS = 8  # untimed steps before the quiet measurement (the tuner warms up and probes within them)
SETTLE_STEPS = 6  # untimed steps after the busy process starts (the tuner notices the load and re-probes)


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


def _training_step_factory(quick: bool):
    """(step function, description) for the CPU recipe's model on a fixed random batch."""
    import torch

    from bidirectional_conv_lstm import ConvLSTMForFramePrediction
    from bidirectional_conv_lstm.training.arguments import load_training_arguments

    args = load_training_arguments(RECIPE)
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


def run_child(policy: dict, steps: int, quick: bool) -> dict:
    """In this (fresh) process: time ``steps`` steps alone and ``steps`` beside a busy core."""
    import torch

    from bidirectional_conv_lstm.utils.threads import ThreadTuner

    if policy.get("threads"):
        torch.set_num_threads(policy["threads"])
    step, description = _training_step_factory(quick)
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


def measure(steps: int = 8, quick: bool = False, policies=None) -> dict:
    """Run every policy in its own process; returns ``{"rows": [...], "markdown": str, ...}``."""
    names = policies or (QUICK_POLICIES if quick else tuple(POLICIES))
    rows, description, busy_cpu = [], "", None
    for name in names:
        policy = POLICIES[name]
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        env.update(policy.get("env", {}))
        env["PYTHONWARNINGS"] = "ignore"
        command = [
            sys.executable,
            __file__,
            "--child",
            json.dumps({"policy": name, "steps": steps, "quick": quick}),
        ]
        completed = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=1800, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(f"under-load child for {name!r} failed:\n{completed.stderr[-3000:]}")
        report = json.loads(completed.stdout.strip().splitlines()[-1])
        description, busy_cpu = report["description"], report["busy_cpu"]
        alone = statistics.median(report["alone"])
        busy = statistics.median(report["busy"]) if report["busy"] else None
        rows.append(
            dict(
                policy=name,
                threads=report["threads"],
                alone_s=alone,
                busy_s=busy,
                slowdown=None if busy is None else busy / alone,
                tuner_changes=report["tuner_changes"],
                alone_samples=report["alone"],
                busy_samples=report["busy"],
            )
        )
        print(f"(under load) {name} done", file=sys.stderr)
    reference = rows[0]["alone_s"]
    for row in rows:
        row["busy_vs_first_alone"] = None if row["busy_s"] is None else row["busy_s"] / reference
    result = dict(description=description, busy_cpu=busy_cpu, cpus=len(os.sched_getaffinity(0)), rows=rows)
    result["markdown"] = markdown(result, steps)
    return result


def _fmt(value, digits=2, suffix=""):
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def markdown(result: dict, steps: int) -> str:
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
            f"| {row['policy']} | {' / '.join(map(str, row['threads']))} | {_fmt(row['alone_s'], 3)} | "
            f"{_fmt(row['busy_s'], 3)} | {_fmt(row['slowdown'], 1, 'x')} | "
            f"{_fmt(row['busy_vs_first_alone'], 1, 'x')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per condition (median reported)")
    parser.add_argument("--quick", action="store_true", help="a tiny model and the adaptive policy only")
    parser.add_argument("--policies", default=None, help=f"comma-separated subset of: {', '.join(POLICIES)}")
    parser.add_argument("--output", default=None, help="write the markdown table to this file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        spec = json.loads(args.child)
        print(json.dumps(run_child(POLICIES[spec["policy"]], spec["steps"], spec["quick"])))
        return None
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    policies = None
    if args.policies:
        policies = tuple(name.strip() for name in args.policies.split(","))
        unknown = sorted(set(policies) - set(POLICIES))
        if unknown:
            parser.error(f"--policies: unknown {unknown}; choose from {list(POLICIES)}")
    result = measure(args.steps, args.quick, policies)
    print(result["markdown"])
    if args.output:
        Path(args.output).write_text(result["markdown"] + "\n")
    return result


if __name__ == "__main__":
    main()
