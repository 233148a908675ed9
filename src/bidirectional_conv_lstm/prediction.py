"""Frames in, predicted frames out: the library side of ``scripts/predict.py``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["read_frames", "predict_files"]


def read_frames(path: str | os.PathLike) -> torch.Tensor:
    """Read observed frames as float32 (B, T, C, H, W) in [0, 1].

    Args:
        path: a ``.npy`` / ``.npz`` file holding (T, H, W), (T, C, H, W) or (B, T, C, H, W) (uint8, or floats in
            [0, 1]; an ``.npz`` must hold one array), or a folder of PNG frames of one sequence, sorted by name.

    Raises:
        FileNotFoundError: the path does not exist or a folder has no PNG.
        ValueError / TypeError: wrong shape, dtype or value range (the message names the file).
    """
    from .data.collate import frames_to_float

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"input {os.fspath(path)!r} does not exist; give a .npy/.npz file or a PNG folder"
        )
    if path.is_dir():
        from PIL import Image

        files = sorted(path.glob("*.png"))
        if not files:
            raise FileNotFoundError(f"input folder {os.fspath(path)!r} holds no .png frames")
        images = [np.asarray(Image.open(file)) for file in files]
        shapes = {image.shape for image in images}
        if len(shapes) != 1:
            raise ValueError(
                f"input folder {os.fspath(path)!r}: frames have different sizes {sorted(shapes)}"
            )
        array = np.stack(images)
        array = array[:, None] if array.ndim == 3 else np.moveaxis(array, -1, 1)
    elif path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if len(archive.files) != 1:
                raise ValueError(
                    f"input {os.fspath(path)!r} must hold exactly one array, has {archive.files}"
                )
            array = archive[archive.files[0]]
    else:
        raise ValueError(f"input {os.fspath(path)!r} must be a .npy or .npz file or a folder of PNG frames")
    if array.ndim not in (3, 4, 5):
        raise ValueError(
            f"input {os.fspath(path)!r} must be (T, H, W), (T, C, H, W) or (B, T, C, H, W), "
            f"got shape {array.shape}"
        )
    frames = frames_to_float(array, name=f"input {os.fspath(path)!r}")
    return frames if frames.ndim == 5 else frames.unsqueeze(0)


def predict_files(
    model_name_or_path: str,
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    num_input_frames: int | None = None,
    num_output_frames: int | None = None,
) -> dict[str, Path]:
    """Load a model, predict from the frames at ``input_path``, write ``.npy``, GIF and PNG strip.

    Returns:
        ``{"predictions": .npy path, "gif": .gif path, "strip": .png path}``.
    """
    from .modeling_convlstm import ConvLSTMForFramePrediction
    from .visualize import save_gif, save_prediction_strip

    frames = read_frames(input_path)
    model = ConvLSTMForFramePrediction.from_pretrained(model_name_or_path).eval()
    num_input_frames = num_input_frames or model.config.num_input_frames
    num_output_frames = num_output_frames or model.config.num_output_frames
    if frames.shape[1] < num_input_frames:
        raise ValueError(
            f"input {os.fspath(input_path)!r} has {frames.shape[1]} frames; num_input_frames="
            f"{num_input_frames} are needed"
        )
    observed = frames[:, -num_input_frames:]
    with torch.no_grad():
        predictions = model(pixel_values=observed, num_output_frames=num_output_frames).predictions.float()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"predictions": output_dir / "predictions.npy"}
    np.save(paths["predictions"], predictions.numpy())
    paths["gif"] = save_gif(torch.cat([observed[0], predictions[0]]), output_dir / "prediction.gif")
    paths["strip"] = save_prediction_strip(observed, None, predictions, output_dir / "prediction.png")
    return paths
