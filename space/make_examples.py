"""Write the demo's bundled example sequences (small GIFs of Moving MNIST test digits) into space/examples/.

    python space/make_examples.py

The frames come from the library's Moving MNIST generator with digits of the test pool, which no model trained
by the library has seen. Each GIF holds the observed frames only; the demo predicts what follows.
"""

import argparse
from pathlib import Path

from PIL import Image

from bidirectional_conv_lstm.data import generate_moving_mnist, load_digit_pools


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", default=str(Path(__file__).parent / "examples"))
    parser.add_argument("--num_frames", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2015)
    args = parser.parse_args()
    digits = load_digit_pools()["test"]
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    sequences = generate_moving_mnist(2, digits, num_frames=args.num_frames, seed=args.seed)
    for index, sequence in enumerate(sequences):
        frames = [Image.fromarray(frame[0]) for frame in sequence]  # (H, W) uint8, grey
        path = output_dir / f"moving_mnist_{index}.gif"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=200, loop=0, optimize=True)
        print(f"{path}: {len(frames)} frames, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
