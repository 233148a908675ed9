"""Does the streaming loader keep up with the model? Windows/s the streamed training path (Parquet shards read with
``streaming=True``, the shuffle buffer, the augmenting rain-rate collator, a DataLoader with 0, 1 and 2 workers)
delivers against windows/s a training step of the CPU recipe's model consumes (64 x 64 tiles, 4 -> 12 frames,
batch 16, fp32); see :mod:`bidirectional_conv_lstm.benchmarks.loader_throughput`.

Usage::

    python scripts/benchmark_loader.py                   # 2,048 windows in 16 shards, 0 / 1 / 2 workers
    python scripts/benchmark_loader.py --quick           # 192 windows in 4 shards, 1 timed step
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bidirectional_conv_lstm.benchmarks.loader_throughput import benchmark_loader, loader_table
from bidirectional_conv_lstm.benchmarks.machine import cpu_model_name

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "nowcasting_synthetic.yaml"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=2048, help="synthetic windows written")
    parser.add_argument("--shards", type=int, default=16, help="Parquet shards they are written in")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader num_workers")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (after one warm-up)")
    parser.add_argument(
        "--shuffle-buffer", type=int, default=256, help="the stream's shuffle buffer (windows)"
    )
    parser.add_argument("--config", default=str(CONFIG), help="the recipe's run config")
    parser.add_argument("--quick", action="store_true", help="192 windows in 4 shards, buffer 16, 1 step")
    parser.add_argument("--output-json", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.windows, args.shards, args.shuffle_buffer, args.steps = 192, 4, 16, 1
    workers = tuple(int(count) for count in args.workers.split(",") if count.strip())
    if not workers or min(workers) < 0 or args.windows < 1 or args.shards < 1 or args.steps < 1:
        parser.error("--workers must be counts >= 0, and --windows, --shards, --steps >= 1")
    with tempfile.TemporaryDirectory() as folder:
        report = benchmark_loader(
            folder,
            num_windows=args.windows,
            num_shards=args.shards,
            workers=workers,
            steps=args.steps,
            shuffle_buffer=args.shuffle_buffer,
            config=args.config,
        )
    report = {"cpu": cpu_model_name(), **report}
    print(
        f"CPU: {report['cpu']}; {report['shape']}; {report['windows']} windows in {report['shards']} shards, "
        f"shuffle buffer {report['shuffle_buffer']}\n"
    )
    print(loader_table(report))
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(report, handle, indent=2)
    return report


if __name__ == "__main__":
    main()
