"""Model (e), the OpenSTL ConvLSTM-S shape, on a GPU: eager against CUDA graphs, inference and training steps.

    python scripts/benchmark.py --device cuda --configs "" --cuda-graphs        # batches 16 and 64
    python scripts/benchmark_cuda_graphs.py --batches 16,64 --output graphs.md

What is timed: :mod:`bidirectional_conv_lstm.benchmarks.cuda_graphs`, where the measurement lives (eager and
graphed inference and training steps, fp32 and bf16 autocast, the median of ``--repeats`` calls after warm-up; a
capture that fails is reported with its error and the others still run); this script parses the options and
calls it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bidirectional_conv_lstm.benchmarks.cuda_graphs import measure


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="16,64", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tiny model")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--output", default=None, help="write the markdown table to this file")
    args = parser.parse_args(argv)
    batches = [int(value) for value in args.batches.split(",") if value.strip()]
    if not batches or min(batches) < 1 or args.repeats < 1:
        parser.error(
            f"--batches must be positive ints and --repeats >= 1, got {args.batches!r}, {args.repeats}"
        )
    try:
        result = measure(args.device, batches, args.repeats, args.quick)
    except ValueError as error:
        parser.error(str(error))
    print(result["markdown"])
    if args.output:
        Path(args.output).write_text(result["markdown"] + "\n")
    return result


if __name__ == "__main__":
    main()
