"""How fast NowcastVerifier scores a test set: by default 1,000 forecasts of 12 x 128 x 128 frames at the
default 5 thresholds and 3 FSS windows, on 2 CPU threads (the issue's target: 10 s or less on 2 cores).

The fields are rain-like (log-normal rates, about 40 % dry, the forecast a displaced and perturbed copy of
the observation); a pool of ``--pool`` forecasts is generated once and its batches are scored in turn until
``--num-forecasts`` are scored, so the timing is the verifier's alone. Reported: wall time, the process's CPU time
(user + system; on a busy machine the wall time of a quiet one lies between CPU time / threads and CPU time) and
forecasts per second. Run it on a quiet machine for a figure to quote.

Usage::

    python scripts/benchmark_verification.py                      # the target's setting
    python scripts/benchmark_verification.py --masked             # with 10 % no-data pixels
    python scripts/benchmark_verification.py --device cuda --threads 16 --output-json verification.json
"""

from __future__ import annotations

import argparse
import json

import torch

from bidirectional_conv_lstm.benchmarks.verification import benchmark_verification


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-forecasts", type=int, default=1000)
    parser.add_argument("--lead-times", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--pool", type=int, default=32, help="forecasts generated and cycled through")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (the target is for 2 cores)"
    )
    parser.add_argument("--masked", action="store_true", help="10 %% no-data pixels (the masked FSS path)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output-json", default=None)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    report = benchmark_verification(
        args.num_forecasts, args.lead_times, args.size, args.batch_size, args.pool, args.masked, args.device
    )
    print(json.dumps(report, indent=2))
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(report, handle, indent=2)
    return report


if __name__ == "__main__":
    main()
