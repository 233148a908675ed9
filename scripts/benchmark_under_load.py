"""The CPU recipe's training step alone, then beside a process busy on one core: how training degrades under load.

    python scripts/benchmark.py --configs "" --under-load          # the same, as part of the benchmark report
    python scripts/benchmark_under_load.py --steps 8 --output under_load.md

The policies and what is timed: :mod:`bidirectional_conv_lstm.benchmarks.under_load`, where the measurement lives
(each policy runs in a fresh Python process, since OpenMP reads its wait policy when torch is imported); this
script parses the options and calls it. Reported: the median seconds per step alone and beside the busy core, and
their ratios.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bidirectional_conv_lstm.benchmarks.under_load import POLICIES, child_main, measure

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "moving_mnist_cpu.yaml"


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per condition (median reported)")
    parser.add_argument("--quick", action="store_true", help="a tiny model and the adaptive policy only")
    parser.add_argument("--policies", default=None, help=f"comma-separated subset of: {', '.join(POLICIES)}")
    parser.add_argument("--output", default=None, help="write the markdown table to this file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:  # one policy's process (the package now starts them itself)
        child_main([json.dumps({"recipe": str(RECIPE), **json.loads(args.child)})])
        return None
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    policies = None
    if args.policies:
        policies = tuple(name.strip() for name in args.policies.split(","))
        unknown = sorted(set(policies) - set(POLICIES))
        if unknown:
            parser.error(f"--policies: unknown {unknown}; choose from {list(POLICIES)}")
    result = measure(args.steps, args.quick, policies, recipe=RECIPE)
    print(result["markdown"])
    if args.output:
        Path(args.output).write_text(result["markdown"] + "\n")
    return result


if __name__ == "__main__":
    main()
