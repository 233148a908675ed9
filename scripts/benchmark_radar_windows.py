"""Peak memory and frames/s of building radar windows out of core, on synthetic archives of one-frame netCDF files
(by default 200 and 2,000 frames of 128 x 128), each build in a fresh process; see
:mod:`bidirectional_conv_lstm.benchmarks.radar_windows`.

Usage::

    python scripts/benchmark_radar_windows.py                          # 200 and 2,000 frames
    python scripts/benchmark_radar_windows.py --frames 200,20000 --output-json windows.json
"""

from __future__ import annotations

import argparse
import json
import tempfile

from bidirectional_conv_lstm.benchmarks.machine import cpu_model_name
from bidirectional_conv_lstm.benchmarks.radar_windows import benchmark_radar_windows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", default="200,2000", help="comma-separated archive lengths")
    parser.add_argument("--size", type=int, default=128, help="frame height and width (pixels)")
    parser.add_argument("--output-json", default=None)
    args = parser.parse_args(argv)
    counts = [int(count) for count in args.frames.split(",") if count.strip()]
    if not counts or min(counts) < 16 or args.size < 64:
        parser.error(f"--frames must be lengths >= 16 and --size >= 64, got {args.frames!r}, {args.size}")
    with tempfile.TemporaryDirectory() as folder:
        report = {"cpu": cpu_model_name(), **benchmark_radar_windows(folder, counts, args.size)}
    print(json.dumps(report, indent=2))
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(report, handle, indent=2)
    return report


if __name__ == "__main__":
    main()
