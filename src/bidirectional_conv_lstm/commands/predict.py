"""Predict future frames from observed ones with a saved model (folder or Hub id).

    python scripts/predict.py --model outputs/moving_mnist_cpu --input frames.npy --output_dir outputs/prediction
    python scripts/predict.py --model outputs/moving_mnist_cpu --input my_png_frames/ --num_output_frames 20
    python scripts/predict.py --model you/convlstm-moving-mnist --input clip.gif

Input: a .npy/.npz array (T, H, W), (T, C, H, W), (T, H, W, C) or a batch of them, uint8 or floats in [0, 1], a
GIF, or a folder of PNG frames (sorted by name); grey and RGB frames are converted to the model's channel count.
Writes predictions.npy (float32 (B, T_out, C, H, W) in [0, 1]), prediction.gif (observed then predicted frames of the first sequence) and prediction.png (a strip).
"""

import argparse

from ..serving.prediction import predict_files
from . import program_name


def main(argv: list[str] | None = None) -> None:
    """Run the command with `argv` (default: ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        prog=program_name("predict.py"),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a save_pretrained folder or a Hub repo id")
    parser.add_argument("--input", required=True, help=".npy / .npz file, a .gif, or a folder of PNG frames")
    parser.add_argument(
        "--num_input_frames", type=int, help="use the last this many frames (default: the model's)"
    )
    parser.add_argument("--num_output_frames", type=int, help="frames to predict (default: the model's)")
    parser.add_argument("--output_dir", default="outputs/prediction")
    args = parser.parse_args(argv)
    try:
        paths = predict_files(
            args.model,
            args.input,
            args.output_dir,
            num_input_frames=args.num_input_frames,
            num_output_frames=args.num_output_frames,
        )
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise SystemExit(f"{parser.prog}: error: {error}") from None
    for name, path in paths.items():
        print(f"{name}: {path}")
