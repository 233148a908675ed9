"""A Gradio demo of a ConvLSTM frame-prediction model: observed frames in, the predicted animation out.

    python space/app.py --model outputs/moving_mnist_cpu          # a folder written by the training script
    python space/app.py --model you/convlstm-moving-mnist         # a Hub repo
    MODEL_ID=you/convlstm-moving-mnist python space/app.py        # on a Hugging Face Space: set MODEL_ID

Upload a GIF, PNG frames (sorted by name) or a ``.npy`` / ``.npz`` array (T, H, W), (T, H, W, C) or (T, C, H, W),
or pick a bundled example; choose how many frames to predict; see the observed and the predicted animations side
by side, the mean absolute change from frame to frame, and download the predicted frames (``.npy``).

Predictions go through the model's ``frame-prediction`` pipeline: from the installed ``bidirectional_conv_lstm``
package where there is one, else from the code saved with the model (``trust_remote_code``), so a Space needs only
torch, transformers, gradio and matplotlib. Nothing here reaches the network besides the model download: Gradio's
analytics are off, no share link is made, the theme uses the system fonts.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: it reads it then

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
MAX_HORIZON = 30
FRAME_SUFFIXES = (".gif", ".png", ".npy", ".npz")
GIF_SCALE = 4  # small frames (64 x 64) are enlarged in the animations, pixel for pixel
GIF_DURATION_MS = 200


# --------------------------------------------------------------------------- the model
def load_predictor(model: str):
    """The ``frame-prediction`` pipeline of the model at `model` (a folder or a Hub repo id).

    With the package installed, the model loads through `bidirectional_conv_lstm.utils.loading` (an error that names
    the folder / repo and what was expected); without it, through transformers' remote code.

    Raises:
        FileNotFoundError / ValueError: no such folder or repo, or a corrupted weights file (package installed).
        OSError: transformers' loading errors (package not installed).
    """
    from transformers import pipeline

    try:
        import bidirectional_conv_lstm  # noqa: F401  registers the pipeline with transformers
        from bidirectional_conv_lstm.utils.loading import load_pretrained_model
    except ImportError:
        return pipeline("frame-prediction", model=model, trust_remote_code=True)
    from transformers import AutoImageProcessor

    loaded = load_pretrained_model(model, argument="--model")
    try:  # the processor saved beside the model (a radar model's rain-rate transform, ...)
        processor = AutoImageProcessor.from_pretrained(model)
    except (OSError, ValueError):
        processor = None  # a model saved without one: the pipeline builds it from the model's config
    return pipeline("frame-prediction", model=loaded, image_processor=processor)


# --------------------------------------------------------------------------- inputs
def read_upload(paths, num_channels: int):
    """Uploaded files -> one video the pipeline takes: a list of PIL frames (GIF, PNGs) or a numpy array.

    Args:
        paths: one path or a list: a GIF, a ``.npy`` / ``.npz`` file, or PNG frames (taken in name order).
        num_channels: the model's channel count: images are read grey (1) or RGB.

    Raises:
        ValueError: nothing uploaded, an unknown file type, or a mix of PNGs with other files.
    """
    from PIL import Image, ImageSequence

    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths or [])
    if not paths:
        raise ValueError("no frames: upload a GIF, PNG frames or a .npy file, or pick an example")
    paths = sorted((Path(p) for p in paths), key=lambda p: p.name)
    suffixes = {p.suffix.lower() for p in paths}
    unknown = suffixes - set(FRAME_SUFFIXES)
    if unknown:
        raise ValueError(
            f"files of type {sorted(unknown)} are not frames; upload {', '.join(FRAME_SUFFIXES)}"
        )
    mode = "L" if num_channels == 1 else "RGB"
    if suffixes == {".png"}:
        frames = []
        for path in paths:
            with Image.open(path) as image:
                frames.append(image.convert(mode))
        return frames
    if len(paths) != 1:
        raise ValueError("upload one GIF or .npy / .npz file, or several PNG frames (not a mix)")
    path = paths[0]
    if path.suffix.lower() == ".gif":
        with Image.open(path) as image:
            return [frame.convert(mode) for frame in ImageSequence.Iterator(image)]
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as archive:
        if len(archive.files) != 1:
            raise ValueError(f"{path.name} must hold one array, holds {archive.files}")
        return archive[archive.files[0]]


# --------------------------------------------------------------------------- outputs
def mean_absolute_change(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference between consecutive frames: float (T - 1,) from frames (T, ...)."""
    frames = np.asarray(frames, dtype=np.float32)
    return np.abs(np.diff(frames, axis=0)).reshape(len(frames) - 1, -1).mean(axis=1)


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    """Frames (T, C, H, W) in about [0, 1] -> uint8 (T, H, W) or (T, H, W, 3) for display."""
    frames = np.clip(np.asarray(frames, dtype=np.float32), 0.0, 1.0)
    frames = (frames * 255.0 + 0.5).astype(np.uint8)
    return frames[:, 0] if frames.shape[1] == 1 else frames[:, :3].transpose(0, 2, 3, 1)


def save_animation(frames: np.ndarray, path: Path) -> Path:
    """Write frames (T, C, H, W) in [0, 1] as a looping GIF, each frame enlarged `GIF_SCALE` times."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in _to_uint8(frames)]
    images = [
        image.resize((image.width * GIF_SCALE, image.height * GIF_SCALE), Image.NEAREST) for image in images
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=GIF_DURATION_MS, loop=0)
    return path


def change_figure(observed: np.ndarray, predicted: np.ndarray):
    """A matplotlib figure of the mean absolute change per frame, observed then predicted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    both = mean_absolute_change(np.concatenate([observed, predicted]))
    steps = np.arange(1, len(both) + 1) - (len(observed) - 1)  # 1 = the first predicted frame
    figure, axes = plt.subplots(figsize=(6, 2.6), dpi=100)
    split = len(observed) - 1
    axes.plot(steps[:split], both[:split], "o-", color="tab:blue", label="observed")
    axes.plot(steps[split:], both[split:], "o-", color="tab:orange", label="predicted")
    axes.axvline(0.5, color="grey", linewidth=0.8, linestyle="--")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("frame (1 = first predicted)")
    axes.set_ylabel("mean |frame - previous|")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    plt.close(figure)
    return figure


def predict(predictor, files, horizon, *, output_dir: str | os.PathLike | None = None) -> tuple:
    """One demo run: read the upload, predict `horizon` frames, make the animations, the plot and the download.

    Args:
        predictor: a ``frame-prediction`` pipeline (`load_predictor`).
        files: uploaded file path(s) (see `read_upload`).
        horizon: frames to predict, 1 to `MAX_HORIZON`.
        output_dir: where the GIFs and the ``.npy`` go (a new temporary folder when `None`).

    Returns:
        ``(observed GIF path, predicted GIF path, change figure, predictions .npy path)``; the ``.npy`` holds
        what the pipeline returns by default: uint8 frames, or mm/h for a radar model, (T_out, ...) in the
        upload's layout.

    Raises:
        ValueError: bad upload or horizon (shown in the page as an error).
    """
    if isinstance(horizon, float) and horizon.is_integer():
        horizon = int(horizon)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= MAX_HORIZON:
        raise ValueError(f"horizon must be a whole number of frames from 1 to {MAX_HORIZON}, got {horizon!r}")
    config = predictor.model.config
    video = read_upload(files, config.num_channels)
    processor = predictor.image_processor
    inputs = processor(video, return_tensors="pt")
    observed = inputs["pixel_values"][:, -config.num_input_frames :]
    observed = processor.post_process_frame_prediction(
        observed, inputs["original_sizes"], output_type="float", data_format="channels_first"
    )[0]
    predicted = predictor(
        video, num_output_frames=horizon, output_type="float", data_format="channels_first"
    )["predictions"]
    natural = predictor(video, num_output_frames=horizon)["predictions"]
    folder = Path(output_dir) if output_dir is not None else Path(tempfile.mkdtemp(prefix="convlstm-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "predictions.npy", natural)
    return (
        str(save_animation(observed, folder / "observed.gif")),
        str(save_animation(predicted, folder / "predicted.gif")),
        change_figure(observed, predicted),
        str(folder / "predictions.npy"),
    )


# --------------------------------------------------------------------------- the page
def build_demo(predictor, *, title: str = "ConvLSTM frame prediction"):
    """The Gradio app (``gr.Blocks``) around `predictor`; its prediction endpoint is ``/predict``."""
    import gradio as gr

    config = predictor.model.config
    examples = sorted(EXAMPLES_DIR.glob("*.gif")) if config.num_channels == 1 else []
    default_horizon = min(int(config.num_output_frames), MAX_HORIZON)

    def run(files, horizon):
        try:
            return predict(predictor, files, horizon)
        except (ValueError, TypeError, FileNotFoundError) as error:
            raise gr.Error(str(error)) from error

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {title}\n"
            f"Upload observed frames (a GIF, PNG frames or a `.npy` array) or pick an example, choose how many "
            f"frames to predict, and press **Predict**. The model reads the last {config.num_input_frames} frames "
            f"({config.num_channels} channel{'s' if config.num_channels > 1 else ''}); any frame size works."
        )
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(
                    label="Observed frames",
                    file_count="multiple",
                    file_types=list(FRAME_SUFFIXES),
                    elem_id="frames",
                )
                horizon = gr.Slider(
                    1,
                    MAX_HORIZON,
                    value=default_horizon,
                    step=1,
                    label="Frames to predict",
                    elem_id="horizon",
                )
                button = gr.Button("Predict", variant="primary", elem_id="predict")
                if examples:
                    gr.Examples(
                        examples=[[[str(path)], default_horizon] for path in examples],
                        inputs=[files, horizon],
                        label="Examples: Moving MNIST test digits",
                    )
            with gr.Column(scale=2):
                with gr.Row():
                    observed = gr.Image(
                        label="Observed", type="filepath", elem_id="observed", interactive=False
                    )
                    predicted = gr.Image(
                        label="Predicted", type="filepath", elem_id="predicted", interactive=False
                    )
                change = gr.Plot(label="Mean absolute change per frame", elem_id="change")
                download = gr.File(label="Predicted frames (.npy)", elem_id="download")
        button.click(
            run, inputs=[files, horizon], outputs=[observed, predicted, change, download], api_name="predict"
        )
    return demo


def launch_options() -> dict:
    """Keyword arguments of ``demo.launch`` that keep the demo off the network: no share link, no server-side
    rendering process, system fonts."""
    import gradio as gr

    font = ["ui-sans-serif", "system-ui", "sans-serif"]
    mono = ["ui-monospace", "monospace"]
    return {"share": False, "ssr_mode": False, "theme": gr.themes.Default(font=font, font_mono=mono)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("MODEL_ID"),
        help="a save_pretrained folder or a Hub repo id (env MODEL_ID)",
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args(argv)
    if not args.model:
        raise SystemExit("app.py: error: give --model DIR_OR_REPO or set MODEL_ID")
    try:
        predictor = load_predictor(args.model)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise SystemExit(f"app.py: error: {error}") from None
    build_demo(predictor).launch(server_name=args.host, server_port=args.port, **launch_options())


if __name__ == "__main__":
    main(sys.argv[1:])
