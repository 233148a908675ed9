"""Evaluate a saved model (folder or Hub id) on a dataset split, beside the trivial baselines.

    python scripts/evaluate.py --model outputs/moving_mnist_cpu --output_dir outputs/eval
    python scripts/evaluate.py --model outputs/moving_mnist_cpu --dataset moving_mnist_test_file:mnist_test_seq.npy

Writes metrics.json, metrics.md (the table) and lead_time.png (each metric against lead time).

Rain-rate data (--dataset synthetic_rain or radar, --data as in a training config) is scored with the
nowcasting verification (CSI, POD, FAR, HSS, ETS, CSI-M, FSS, MAE, MSE in mm/h), the model (if given) beside
the baselines named with --baselines (persistence, extrapolation / lucas_kanade, sprog):

    python scripts/evaluate.py --dataset radar --baselines persistence extrapolation sprog \
        --data '{root: ../shared/radar, events: [fmi_20170509], split: event, test_events: [fmi_20170509]}'

Writes metrics.json, metrics.md and scores_by_lead_time.png.
"""

import argparse
import json

import yaml

from bidirectional_conv_lstm.data import SPLITS
from bidirectional_conv_lstm.nowcasting.baselines import BASELINE_NAMES
from bidirectional_conv_lstm.nowcasting.data import RAIN_RATE_DATASETS
from bidirectional_conv_lstm.training.evaluation import evaluate, metrics_report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="a save_pretrained folder or a Hub repo id")
    parser.add_argument(
        "--dataset",
        default="moving_mnist",
        help="moving_mnist, moving_mnist_test_file:PATH, a folder of sequences, or a datasets name",
    )
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument(
        "--data", default="{}", help="data options as YAML, e.g. '{num_test: 1000, cache_dir: data_cache}'"
    )
    parser.add_argument("--num_input_frames", type=int)
    parser.add_argument("--num_output_frames", type=int)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_samples", type=int)
    parser.add_argument("--mixed_precision", default="no", choices=["no", "fp16", "bf16", "auto"])
    parser.add_argument("--output_dir", default="outputs/evaluation")
    parser.add_argument(
        "--baselines",
        nargs="+",
        default=[],
        choices=[*BASELINE_NAMES, "lucas_kanade"],
        help="rain-rate data only: nowcasting baselines scored beside the model (or alone)",
    )
    args = parser.parse_args()
    data = yaml.safe_load(args.data) or {}
    if not isinstance(data, dict):
        parser.error(f"--data must be a YAML mapping, got {args.data!r}")
    if args.dataset in RAIN_RATE_DATASETS:
        evaluate_rain(args, data)
        return
    if args.model is None:
        parser.error("--model is required (only rain-rate datasets can score --baselines alone)")
    if args.baselines:
        parser.error(f"--baselines applies to rain-rate datasets {RAIN_RATE_DATASETS}, not {args.dataset!r}")
    try:
        results = evaluate(
            args.model,
            dataset=args.dataset,
            split=args.split,
            data=data,
            num_input_frames=args.num_input_frames,
            num_output_frames=args.num_output_frames,
            batch_size=args.batch_size,
            max_samples=args.max_samples,
            output_dir=args.output_dir,
            mixed_precision=args.mixed_precision,
        )
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise SystemExit(f"evaluate.py: error: {error}") from None
    print(metrics_report(results))
    print(json.dumps({"output_dir": args.output_dir, "mse": results["mse"], "ssim": results["ssim"]}))


def evaluate_rain(args: argparse.Namespace, data: dict) -> None:
    from bidirectional_conv_lstm.nowcasting.evaluation import evaluate_rain_dataset, nowcast_report

    try:
        results = evaluate_rain_dataset(
            args.dataset,
            data=data,
            split=args.split,
            baselines=args.baselines,
            model_name_or_path=args.model,
            num_input_frames=args.num_input_frames,
            num_output_frames=args.num_output_frames,
            batch_size=args.batch_size,
            max_samples=args.max_samples,
            output_dir=args.output_dir,
            mixed_precision=args.mixed_precision,
        )
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        raise SystemExit(f"evaluate.py: error: {error}") from None
    print(nowcast_report(results))
    summary = {name: values["overall"].get("csi_m") for name, values in results["methods"].items()}
    print(json.dumps({"output_dir": args.output_dir, "csi_m": summary}))
