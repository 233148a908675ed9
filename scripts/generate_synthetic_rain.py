"""Generate (and cache) the synthetic rain windows; optionally time the generator.

    python scripts/generate_synthetic_rain.py                              # default splits, into $BCL_CACHE
    python scripts/generate_synthetic_rain.py --benchmark 1000 --threads 2 --no_cache   # the speed figure
    python scripts/generate_synthetic_rain.py --num_train 2000 --size 64 --speed_range 0.5 1.5 --cache_dir data_cache

Any field of SyntheticRainConfig can be set with --<field> value. Prints a JSON report.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import torch

from bidirectional_conv_lstm.data import SyntheticRainConfig, generate_synthetic_rain, load_synthetic_rain


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for field in dataclasses.fields(SyntheticRainConfig):
        if field.name == "speed_range":
            parser.add_argument("--speed_range", type=float, nargs=2, default=None, metavar=("MIN", "MAX"))
        else:
            parser.add_argument(f"--{field.name}", type=type(field.default), default=None)
    parser.add_argument("--cache_dir", default=None, help="cache root (default: $BCL_CACHE or ~/.cache/...)")
    parser.add_argument(
        "--benchmark", type=int, default=0, metavar="N", help="time generating N sequences in memory"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch / FFT threads (default: torch's)")
    parser.add_argument("--no_cache", action="store_true", help="only the benchmark; build no dataset")
    return parser.parse_args(argv)


def main(argv: list[str]) -> dict:
    args = parse_arguments(argv)
    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(SyntheticRainConfig)
        if getattr(args, field.name) is not None
    }
    try:
        config = SyntheticRainConfig(**overrides)
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        if args.benchmark < 0:
            raise ValueError(f"--benchmark must be >= 0, got {args.benchmark}")
    except (TypeError, ValueError) as error:
        raise SystemExit(f"generate_synthetic_rain.py: error: {error}") from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    report: dict = {"config": config.to_dict(), "threads": torch.get_num_threads()}

    if args.benchmark:
        generate_synthetic_rain(2, seed=config.seed, **config.field_parameters())  # warm-up (FFT plans)
        load_before = os.getloadavg()[0]
        started, cpu_started = time.perf_counter(), time.process_time()
        rain = generate_synthetic_rain(args.benchmark, seed=config.seed, **config.field_parameters())
        report["benchmark"] = {
            "sequences": args.benchmark,
            "seconds": round(time.perf_counter() - started, 2),
            "cpu_seconds": round(time.process_time() - cpu_started, 2),
            "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "wet_fraction": round(float((rain > 0).mean()), 4),
            "max_mm_h": round(float(rain.max()), 2),
        }
        del rain

    if not args.no_cache:
        started = time.perf_counter()
        dataset = load_synthetic_rain(config, cache_dir=args.cache_dir)
        report["load_synthetic_rain_seconds"] = round(time.perf_counter() - started, 2)
        report["cache_files"] = {split: dataset[split].cache_files[0]["filename"] for split in dataset}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
