"""Train (or fine-tune) a ConvLSTM frame-prediction model.

    python scripts/train.py --config configs/moving_mnist_cpu.yaml
    accelerate launch scripts/train.py --config configs/moving_mnist_cpu.yaml --output_dir outputs/run2
    python scripts/train.py --config configs/moving_mnist_cpu.yaml --resume_from_checkpoint latest
    python scripts/train.py --config configs/moving_mnist_cpu.yaml --model_name_or_path outputs/moving_mnist_cpu

Any field of the config can be overridden with --name value (nested: --model.hidden_sizes [32,32]).
"""

import json
import sys

from ..training.arguments import parse_command_line
from ..training.loop import train
from . import program_name


def main(argv: list[str] | None = None) -> None:
    """Run the command with `argv` (default: ``sys.argv[1:]``)."""
    try:
        args = parse_command_line(sys.argv[1:] if argv is None else argv)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise SystemExit(f"{program_name('train.py')}: error: {error}") from None
    results = train(args)
    test = results["test"]
    # rain rate: nowcast scores of the model and the baselines (eval/metrics.md has all)
    if "methods" in test:
        keys = ("csi@0.5", "csi@1", "csi@2", "fss@1/16", "mae")
        summary = {
            name: {k: scores["overall"][k] for k in keys if k in scores["overall"]}
            for name, scores in test["methods"].items()
        }
    else:
        summary = {k: test[k] for k in ("mse", "mae", "ssim", "psnr")}
        summary["baselines"] = {
            kind: {k: v[k] for k in ("mse", "ssim")} for kind, v in test.get("baselines", {}).items()
        }
    print(
        json.dumps(
            {
                "output_dir": results["output_dir"],
                "train_minutes": round(results["train_minutes"], 4),
                "steps": results["global_step"],
                "test": summary,
            },
            indent=2,
        )
    )
