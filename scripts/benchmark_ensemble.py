"""20 members from the model against pysteps' STEPS on the same domain, timed side by side in one run; see
:mod:`bidirectional_conv_lstm.benchmarks.ensemble_speed`.

Usage::

    python scripts/benchmark_ensemble.py                          # 20 members, 12 frames of 256 x 256
    python scripts/benchmark_ensemble.py --model outputs/nowcasting   # a trained ensemble model instead
    python scripts/benchmark_ensemble.py --quick                  # 64 x 64, 3 members, 2 frames: a smoke test
"""

from __future__ import annotations

import argparse
import json

from bidirectional_conv_lstm.benchmarks.ensemble_speed import (
    benchmark_ensemble_speed,
    ensemble_speed_table,
    recipe_ensemble_model,
)
from bidirectional_conv_lstm.benchmarks.machine import cpu_model_name
from bidirectional_conv_lstm.models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=None, help="a trained ensemble model (default: the recipe's, random)"
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--frames", type=int, default=12, help="forecast frames")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="64 x 64, 3 members, 2 frames, 1 repeat")
    parser.add_argument("--output-json", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.members, args.frames, args.repeats = 64, 3, 2, 1
    if min(args.size, args.members, args.frames, args.repeats) < 1:
        parser.error("--size, --members, --frames and --repeats must be >= 1")
    if args.model is None:
        model = recipe_ensemble_model()
    else:
        model = ConvLSTMForFramePrediction.from_pretrained(args.model).eval()  # clear errors for a bad path
    result = benchmark_ensemble_speed(
        model,
        size=args.size,
        num_members=args.members,
        num_output_frames=args.frames,
        repeats=args.repeats,
    )
    result = {"cpu": cpu_model_name(), "model": args.model or "recipe config, random weights", **result}
    print(f"CPU: {result['cpu']}; model: {result['model']}\n")
    print(ensemble_speed_table(result))
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(result, handle, indent=2)
    return result


if __name__ == "__main__":
    main()
