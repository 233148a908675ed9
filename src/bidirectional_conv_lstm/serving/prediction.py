"""Frames in, predicted frames out: the library side of ``scripts/predict.py``.

:func:`read_frames` reads what a person has — a ``.npy`` / ``.npz`` array in any usual layout, a GIF, a folder
of PNG frames, all read by the pipeline's ``read_video`` — as float32 ``(B, T, C, H, W)`` in [0, 1], matching the
channel count a model takes;
:func:`predict_files` loads a model, predicts and writes the results.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..data.collate import frames_to_float
from ..models.convlstm.processing_convlstm import ConvLSTMImageProcessor
from ..models.convlstm.video_inputs import read_video, video_array
from ..utils.loading import load_pretrained_model
from ..utils.visualize import save_gif, save_prediction_strip

__all__ = ["FRAME_FILE_TYPES", "match_channels", "predict_files", "read_frames", "to_channels_first"]

FRAME_FILE_TYPES = ".npy / .npz array, .gif, or a folder of .png frames"
# ITU-R 601-2 luma, the weights PIL's convert("L") uses, so arrays and images turn grey alike.
_LUMA = (0.299, 0.587, 0.114)
# Channel counts a frame stack commonly has: grey, grey + alpha (images only), RGB, RGBA.
_USUAL_CHANNELS = (1, 3, 4)


def to_channels_first(
    array: np.ndarray, *, num_channels: int | None = None, name: str = "frames"
) -> np.ndarray:
    """Put the channel axis of a frame stack third from the end: ``(..., C, H, W)``.

    Args:
        array: one sequence (T, H, W), (T, C, H, W) or (T, H, W, C), or a batch (B, T, C, H, W) or
            (B, T, H, W, C).
        num_channels: the channel count the frames should have (a model's ``config.num_channels``). It decides
            between ``(T, C, H, W)`` and ``(T, H, W, C)``: the axis holding it is the channel axis. Without it,
            a last axis of 1, 3 or 4 is the channel axis unless axis -3 is one of those too.
        name: how error messages call the input.

    Returns:
        (T, C, H, W) (a 3-D input gets C = 1) or (B, T, C, H, W); a view where possible.

    Raises:
        ValueError: not 3-, 4- or 5-D.
    """
    if array.ndim == 3:
        return array[:, None]
    if array.ndim not in (4, 5):
        raise ValueError(
            f"{name} must be (T, H, W), (T, C, H, W), (T, H, W, C) or a batch (B, T, C, H, W) / (B, T, H, W, C), "
            f"got shape {array.shape}"
        )
    first, last = array.shape[-3], array.shape[-1]
    if num_channels is not None:
        channels_last = last == num_channels and first != num_channels
        if first != num_channels and last != num_channels:
            # Neither axis matches: a conversion (grey <-> RGB) follows; take the usual channel counts' axis.
            channels_last = last in _USUAL_CHANNELS and first not in _USUAL_CHANNELS
    else:
        channels_last = last in _USUAL_CHANNELS and first not in _USUAL_CHANNELS
    return np.moveaxis(array, -1, -3) if channels_last else array


def match_channels(frames: torch.Tensor, num_channels: int | None, *, name: str = "frames") -> torch.Tensor:
    """Convert float frames ``(..., C, H, W)`` to `num_channels` channels where the conversion is unambiguous.

    Grey to RGB repeats the channel; RGB (or RGBA) to grey takes the ITU-R 601-2 luma, as PIL does; RGBA to
    RGB drops the alpha channel. `None` keeps the frames as they are.

    Raises:
        ValueError: any other mismatch (the message names both counts).
    """
    have = frames.shape[-3]
    if num_channels is None or have == num_channels:
        return frames
    if have == 4 and num_channels in (1, 3):
        frames, have = frames[..., :3, :, :], 3
        if num_channels == 3:
            return frames
    if have == 1 and num_channels == 3:
        return frames.expand(*frames.shape[:-3], 3, *frames.shape[-2:]).contiguous()
    if have == 3 and num_channels == 1:
        weights = torch.tensor(_LUMA, dtype=frames.dtype).view(3, 1, 1)
        return (frames * weights).sum(dim=-3, keepdim=True).clamp_(0, 1)
    raise ValueError(
        f"{name} has {have} channels per frame but the model takes num_channels={num_channels}; "
        "give frames with that many channels (grey, RGB and RGBA convert to each other)"
    )


def _images_to_array(images, num_channels: int | None, name: str) -> np.ndarray:
    """PIL images (as :func:`read_video` gives them: grey for a 1-channel model, else RGB) -> uint8 (T, C, H, W);
    with no model, grey if every frame is grey."""
    array = video_array(images, name)  # (T, H, W) or (T, H, W, 3)
    if array.ndim == 3:
        return array[:, None]
    array = np.ascontiguousarray(array.transpose(0, 3, 1, 2))
    if num_channels is None and (array == array[:, :1]).all():
        return array[:, :1]  # grey content in an RGB container (e.g. a GIF palette)
    return array


def read_frames(path: str | os.PathLike, *, num_channels: int | None = None) -> torch.Tensor:
    """Read observed frames as float32 (B, T, C, H, W) in [0, 1].

    Args:
        path: a ``.npy`` / ``.npz`` file holding (T, H, W), (T, C, H, W), (T, H, W, C) or a batch
            (B, T, C, H, W) / (B, T, H, W, C) (uint8, integers in [0, 255] or floats in [0, 1]; an ``.npz`` must
            hold one array), a ``.gif`` (every frame, composited), or a folder of 8-bit image frames (PNG, ...) of
            one sequence, sorted by name: what the pipeline's :func:`read_video` reads.
        num_channels: the channel count the model takes (``config.num_channels``): it decides the layout of a
            4-D array, and frames with another count are converted (grey <-> RGB, RGBA -> RGB / grey; see
            :func:`match_channels`). `None` reads images as grey when every frame is grey, else RGB.

    Returns:
        float32 tensor (B, T, C, H, W) in [0, 1] (B = 1 for one sequence).

    Raises:
        FileNotFoundError: the path does not exist or a folder has no image frames.
        ValueError / TypeError: an unknown file type, wrong shape, dtype, value range or channel count (the
            message names the file).
    """
    name = f"input {os.fspath(path)!r}"
    video = read_video(path, num_channels, name=name)
    array = video if isinstance(video, np.ndarray) else _images_to_array(video, num_channels, name)
    array = to_channels_first(array, num_channels=num_channels, name=name)
    frames = match_channels(frames_to_float(array, name=name), num_channels, name=name)
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

    Args:
        model_name_or_path: a ``save_pretrained`` folder or a Hub repo id.
        input_path: frames as :func:`read_frames` reads them.
        output_dir: created if needed.
        num_input_frames: use the last this many frames (default: the model's ``config.num_input_frames``).
        num_output_frames: frames to predict (default: the model's ``config.num_output_frames``).

    Returns:
        ``{"predictions": .npy path (float32 (B, T_out, C, H, W) in [0, 1]), "gif": .gif path, "strip": .png
        path}``.

    Raises:
        FileNotFoundError / ValueError / TypeError: a missing input, model folder or Hub repo, a corrupted weights
            file, or frames the model cannot take, before anything is written.
    """

    if not Path(input_path).exists():
        raise FileNotFoundError(f"input {os.fspath(input_path)!r} does not exist; give a {FRAME_FILE_TYPES}")
    model = load_pretrained_model(model_name_or_path, argument="model").eval()
    try:  # the model's saved processor; a model saved without one gets the one its config describes
        processor = ConvLSTMImageProcessor.from_pretrained(model_name_or_path)
    except OSError:
        processor = ConvLSTMImageProcessor.from_model_config(model.config)
    frames = read_frames(input_path, num_channels=model.config.num_channels)
    num_input_frames = num_input_frames or model.config.num_input_frames
    num_output_frames = num_output_frames or model.config.num_output_frames
    if frames.shape[1] < num_input_frames:
        raise ValueError(
            f"input {os.fspath(input_path)!r} has {frames.shape[1]} frames; num_input_frames="
            f"{num_input_frames} are needed"
        )
    observed = frames[:, -num_input_frames:]
    inputs = processor(observed)  # pads the frames to a multiple of the patch size
    with torch.no_grad():
        outputs = model(
            pixel_values=inputs["pixel_values"].to(model.dtype), num_output_frames=num_output_frames
        )
    cropped = processor.post_process_frame_prediction(outputs, inputs["original_sizes"], output_type="float")
    predictions = torch.from_numpy(np.stack(cropped))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"predictions": output_dir / "predictions.npy"}
    np.save(paths["predictions"], predictions.numpy())
    paths["gif"] = save_gif(torch.cat([observed[0], predictions[0]]), output_dir / "prediction.gif")
    paths["strip"] = save_prediction_strip(observed, None, predictions, output_dir / "prediction.png")
    return paths
