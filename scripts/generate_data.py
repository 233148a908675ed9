"""Generate (and cache) Moving MNIST; optionally time the generator and score the baselines on the test split.

    python scripts/generate_data.py                                  # default splits, into $BCL_CACHE or ~/.cache
    python scripts/generate_data.py --cache_dir data_cache --benchmark 10000 --baselines
    python scripts/generate_data.py --num_train 2000 --digit_source /data/mnist   # full MNIST idx files

Any field of MovingMNISTConfig can be set with --<field> value.
"""

import argparse
import dataclasses
import json
import sys
import time

from bidirectional_conv_lstm.data import (
    FramePredictionCollator,
    MovingMNISTConfig,
    generate_moving_mnist,
    load_digit_pools,
    load_moving_mnist,
    mean_pixel_value,
)
from bidirectional_conv_lstm.training.metrics import evaluate_baselines, format_metrics_table


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for field in dataclasses.fields(MovingMNISTConfig):
        if field.name == "digit_pool_fractions":
            parser.add_argument("--digit_pool_fractions", type=float, nargs=3, default=None)
            continue
        kind = type(field.default) if field.name != "digit_source" else str
        parser.add_argument(f"--{field.name}", type=kind, default=None)
    parser.add_argument("--cache_dir", default=None, help="cache root (default: $BCL_CACHE or ~/.cache/...)")
    parser.add_argument(
        "--benchmark", type=int, default=0, metavar="N", help="time generating N sequences in memory"
    )
    parser.add_argument("--baselines", action="store_true", help="score the baselines on the test split")
    parser.add_argument("--num_input_frames", type=int, default=10)
    parser.add_argument("--num_output_frames", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=100)
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_arguments(argv)
    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(MovingMNISTConfig)
        if getattr(args, field.name) is not None
    }
    try:
        config = MovingMNISTConfig(**overrides)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"generate_data.py: error: {error}") from None
    report: dict = {"config": config.to_dict()}

    if args.benchmark:
        pool = load_digit_pools(config.digit_source, config.digit_pool_fractions)["train"]
        started = time.perf_counter()
        generate_moving_mnist(
            args.benchmark,
            pool,
            num_frames=config.num_frames,
            image_size=config.image_size,
            digit_size=config.digit_size,
            num_digits=config.num_digits,
            speed=config.speed,
            seed=config.seed,
        )
        seconds = time.perf_counter() - started
        report["benchmark"] = {"sequences": args.benchmark, "seconds": round(seconds, 2)}

    started = time.perf_counter()
    dataset = load_moving_mnist(config, cache_dir=args.cache_dir)
    report["load_moving_mnist_seconds"] = round(time.perf_counter() - started, 2)
    report["cache_files"] = {split: dataset[split].cache_files[0]["filename"] for split in dataset}

    if args.baselines:
        from torch.utils.data import DataLoader

        mean_value = mean_pixel_value(dataset["train"])
        collator = FramePredictionCollator(args.num_input_frames, args.num_output_frames)
        loader = DataLoader(dataset["test"], batch_size=args.batch_size, collate_fn=collator)
        started = time.perf_counter()
        results = evaluate_baselines(loader, mean_value=mean_value)
        report["baselines_seconds"] = round(time.perf_counter() - started, 2)
        report["train_mean_pixel_value"] = mean_value
        report["baselines"] = {
            kind: {
                key: value
                for key, value in metrics.items()
                if key in ("mse", "mae", "psnr", "ssim", "ssim_openstl")
            }
            | {"mse_per_frame": [round(v, 1) for v in metrics["mse_per_frame"]]}
            for kind, metrics in results.items()
        }
        print(format_metrics_table(results), file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
