"""Export a saved frame-prediction model to ONNX and check it with ONNX Runtime against PyTorch.

    python scripts/export_onnx.py --model outputs/moving_mnist_cpu --output outputs/moving_mnist_cpu/model.onnx
    python scripts/export_onnx.py --model user/convlstm --output model.onnx --num_input_frames 10 --num_output_frames 20

The graph takes `pixel_values` (batch, T_in, C, H, W) float32 (as the processor prepares them) and returns
`predictions` (batch, T_out, C, H, W). Batch, height and width are dynamic (any height and width: the graph pads
them to the patch size and crops the predictions back); the frame counts are fixed at export (defaults: the model's
config). The script then runs the file with ONNX Runtime and PyTorch on random inputs of two sizes (one not a
multiple of the patch size) and fails if they differ by more than --atol.
Needs the onnx extra: pip install "bidirectional-conv-lstm[onnx]".
"""

import argparse

from bidirectional_conv_lstm.serving.onnx_export import ATOL, export_onnx


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a save_pretrained folder or a Hub repo id")
    parser.add_argument("--output", required=True, help="the .onnx file to write")
    parser.add_argument("--num_input_frames", type=int, help="observed frames (default: the model's)")
    parser.add_argument("--num_output_frames", type=int, help="predicted frames (default: the model's)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset version (default: 18)")
    parser.add_argument("--atol", type=float, default=ATOL, help=f"check tolerance (default: {ATOL:g})")
    args = parser.parse_args(argv)
    try:
        report = export_onnx(
            args.model,
            args.output,
            num_input_frames=args.num_input_frames,
            num_output_frames=args.num_output_frames,
            opset_version=args.opset,
            atol=args.atol,
        )
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        raise SystemExit(f"export_onnx.py: error: {error}") from None
    except RuntimeError as error:  # the ONNX Runtime check failed: the file is written but wrong
        raise SystemExit(f"export_onnx.py: error: {error}") from None
    print(
        f"wrote {report['path']} ({report['num_input_frames']} input frames -> {report['num_output_frames']})"
    )
    for shape, difference in report["max_abs_diff"].items():
        print(
            f"  onnxruntime vs pytorch, input {shape}: max abs difference {difference:.2e} (<= {args.atol:g})"
        )
