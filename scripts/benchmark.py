"""Speed and memory of ConvLSTM against two reference designs and the machine's convolution limit.

Every variant of a configuration is timed in the same run, round-robin (one training step and one
inference pass of each variant per round), so machine noise hits all of them alike; figures are the
median over ``--repeats`` rounds after one warm-up round. The variants, FLOP counts and memory figures are
described in :mod:`bidirectional_conv_lstm.benchmarks` (``layer_variants``, ``shapes``, ``measurement``), where
the measurement lives; this script parses the options and calls it.

Usage::

    python scripts/benchmark.py                       # a-e, writes BENCHMARKS-run.md / .json
    python scripts/benchmark.py --configs a --repeats 7 --output-json run.json
    python scripts/benchmark.py --quick               # tiny shapes, seconds (CI smoke test)
    python scripts/benchmark.py --loss-check          # bf16 vs fp32 loss, 50 steps on Moving MNIST
    python scripts/benchmark.py --configs "" --under-load          # training step alone vs beside a busy core
    python scripts/benchmark.py --configs e --model-recipe         # (e) as the CPU recipe's model, batch 16
    python scripts/benchmark.py --device cuda --configs a,b,e --batch 64   # on a GPU (scripts/gpu_check.sh)
    python scripts/benchmark.py --device cuda --configs "" --cuda-graphs   # eager vs CUDA graphs, model (e)

Every table row also gives its throughput as a share of the limit of its precision measured in the same run
(``limit fp32`` for fp32 rows, ``limit bf16`` for bf16 rows); the header names the CPU's instruction sets (AMX,
avx512_bf16, AVX-512, AVX2), what oneDNN reports it uses, and the precision ``mixed_precision: auto`` picks here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bidirectional_conv_lstm.benchmarks.layer_variants import COMPILE_VARIANTS
from bidirectional_conv_lstm.benchmarks.suite import BenchmarkSettings, run_benchmark, write_report

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "moving_mnist_cpu.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="a,b,c,d,e", help="comma-separated subset of a,b,c,d,e")
    parser.add_argument(
        "--variants", default=None, help="comma-separated subset of variant names (default all)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported); >= 1")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 repeat: a smoke test in seconds")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--batch", type=int, default=None, help="batch of (a)-(c) and (e) (default: 16 for (a)-(c))"
    )
    parser.add_argument(
        "--model-batch",
        type=int,
        default=None,
        help="batch for (e); default --batch, else 1 on CPU, 64 on GPU",
    )
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="skip the torch.compile variants (ours+compile, ours+*pointwise)",
    )
    parser.add_argument(
        "--model-recipe",
        action="store_true",
        help="model (e) is the CPU recipe's model (configs/moving_mnist_cpu.yaml: its config, frames, batch 16)",
    )
    parser.add_argument("--loss-check", action="store_true", help="also run the bf16-vs-fp32 loss check")
    parser.add_argument("--loss-steps", type=int, default=50)
    parser.add_argument(
        "--under-load",
        action="store_true",
        help="also time the CPU recipe's training step alone and beside a process busy on one core "
        "(scripts/benchmark_under_load.py)",
    )
    parser.add_argument("--under-load-steps", type=int, default=8, help="timed steps per condition")
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="also time model (e) eagerly and as CUDA graphs (scripts/benchmark_cuda_graphs.py; --device cuda)",
    )
    parser.add_argument("--output", default=None, help="write the markdown table to this file")
    parser.add_argument("--output-json", default=None, help="write all figures as JSON to this file")
    return parser


def parse_settings(argv: list[str] | None) -> tuple[BenchmarkSettings, argparse.Namespace]:
    """The run's settings from the command line (exits with a usage error on a bad option)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    for name in ("batch", "model_batch", "under_load_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.cuda_graphs and not args.device.startswith("cuda"):
        parser.error(f"--cuda-graphs needs --device cuda, got --device {args.device}")
    try:
        settings = BenchmarkSettings(
            configs=[c.strip() for c in args.configs.split(",") if c.strip()],
            command=" ".join(
                ["python", "scripts/benchmark.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            variants=None if args.variants is None else {v.strip() for v in args.variants.split(",")},
            exclude=set(COMPILE_VARIANTS) if args.no_compile else set(),
            repeats=args.repeats,
            quick=args.quick,
            device=args.device,
            batch=args.batch,
            model_batch=args.model_batch,
            loss_check=args.loss_check,
            loss_steps=args.loss_steps,
            under_load=args.under_load,
            under_load_steps=args.under_load_steps,
            recipe=RECIPE,
            cuda_graphs=args.cuda_graphs,
            model_recipe=args.model_recipe,
        )
    except ValueError as error:
        parser.error(f"--{error}")
    return settings, args


def main(argv: list[str] | None = None) -> dict:
    settings, args = parse_settings(argv)
    results = run_benchmark(settings)
    print(write_report(results, args.output, args.output_json))
    return results


if __name__ == "__main__":
    main()
