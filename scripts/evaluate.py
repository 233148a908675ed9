"""Evaluate a saved model (folder or Hub id) on a dataset split, beside the trivial baselines.

    python scripts/evaluate.py --model outputs/moving_mnist_cpu --output_dir outputs/eval
    python scripts/evaluate.py --model outputs/moving_mnist_cpu --dataset moving_mnist_test_file:mnist_test_seq.npy

Writes metrics.json, metrics.md (the table) and lead_time.png (each metric against lead time).
"""

import argparse
import json

import yaml

from bidirectional_conv_lstm.evaluation import evaluate, metrics_report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a save_pretrained folder or a Hub repo id")
    parser.add_argument(
        "--dataset",
        default="moving_mnist",
        help="moving_mnist, moving_mnist_test_file:PATH, a folder of sequences, or a datasets name",
    )
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
    parser.add_argument(
        "--data", default="{}", help="data options as YAML, e.g. '{num_test: 1000, cache_dir: data_cache}'"
    )
    parser.add_argument("--num_input_frames", type=int)
    parser.add_argument("--num_output_frames", type=int)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_samples", type=int)
    parser.add_argument("--mixed_precision", default="no", choices=["no", "fp16", "bf16"])
    parser.add_argument("--output_dir", default="outputs/evaluation")
    args = parser.parse_args()
    data = yaml.safe_load(args.data) or {}
    if not isinstance(data, dict):
        parser.error(f"--data must be a YAML mapping, got {args.data!r}")
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
        parser.error(str(error))
    print(metrics_report(results))
    print(json.dumps({"output_dir": args.output_dir, "mse": results["mse"], "ssim": results["ssim"]}))


if __name__ == "__main__":
    main()
