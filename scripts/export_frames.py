"""Write sequences of a run's dataset to a .npy file (e.g. to try scripts/predict.py on unseen frames).

    python scripts/export_frames.py --config outputs/moving_mnist_cpu/training_config.yaml --split test \
        --index 0 --num_frames 10 --output outputs/sample_frames.npy
"""

import argparse
from pathlib import Path

import numpy as np

from bidirectional_conv_lstm.data import SPLITS
from bidirectional_conv_lstm.training.arguments import load_training_arguments
from bidirectional_conv_lstm.training.data_sources import load_datasets


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", required=True, help="a run config (configs/*.yaml or a run's training_config.yaml)"
    )
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--index", type=int, default=0, help="the first sequence to write")
    parser.add_argument("--count", type=int, default=1, help="how many sequences")
    parser.add_argument("--num_frames", type=int, help="keep only the first this many frames")
    parser.add_argument(
        "--output", required=True, help="the .npy file: uint8 (T, C, H, W), or (N, T, C, H, W)"
    )
    args = parser.parse_args()
    try:
        run = load_training_arguments(args.config, {"resume_from_checkpoint": None})
        dataset = load_datasets(run)[args.split]
    except (ValueError, TypeError, FileNotFoundError) as error:
        parser.error(str(error))
    if not 0 <= args.index < len(dataset) or args.count < 1:
        parser.error(
            f"--index {args.index} --count {args.count} is outside the {len(dataset)} sequences of {args.split}"
        )
    rows = dataset.select(range(args.index, min(args.index + args.count, len(dataset))))
    frames = np.stack([np.asarray(row["frames"], dtype=np.uint8) for row in rows])[:, : args.num_frames]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.output, frames[0] if args.count == 1 else frames)
    print(f"wrote {args.output}: {frames.shape[1:] if args.count == 1 else frames.shape} uint8")


if __name__ == "__main__":
    main()
