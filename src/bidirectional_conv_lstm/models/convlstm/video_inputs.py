"""Videos as people have them, read into one layout: the input side of the ConvLSTM processor, and video files.

:func:`read_video` reads the frames stored in a file or folder (an animated GIF, image frames, ``.npy`` / ``.npz``)
and :func:`frames_to_gif` writes frames as an animated GIF: the package's one frame reader and one GIF encoder.
:func:`split_videos` tells one video from a batch; :func:`video_array` turns a video (array, tensor or list of
frames) into one numpy array; :func:`to_channels_first` finds its channel axis from the model's channel count and
returns ``(T, C, H, W)`` with the layout it found, converting RGB(A) to grey for a grey model.
:func:`positive_int` is the check of counts (frames, channels, patch size) that the processor and the pipeline take.

This file travels with ``push_to_hub`` as remote code (``processing_convlstm.py`` and ``pipeline_convlstm.py``
import it relatively): it imports only numpy, torch and PIL.
"""

import io
import numbers
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence, UnidentifiedImageError

# How a video's channels were laid out, as the processor's `data_format` records it per video.
CHANNELS_FIRST, CHANNELS_LAST, NO_CHANNELS = "channels_first", "channels_last", "none"
DATA_FORMATS = (CHANNELS_FIRST, CHANNELS_LAST, NO_CHANNELS)
# ITU-R BT.601 luma, the weights of PIL's convert("L").
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# The files read_video reads: image frames in a folder, an animated GIF, a numpy array.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_FILE_TYPES = "a .gif, a .npy/.npz file or a folder of image frames"
# 16-bit and float images would be clipped to 8 bits on conversion: refused instead.
_HIGH_DEPTH_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def read_video(
    path, num_channels: int | None = 1, *, name: str | None = None
) -> list[Image.Image] | np.ndarray:
    """The frames stored at `path`: an animated GIF (every frame, composited as a viewer shows it), a folder of
    image frames (sorted by name), or a ``.npy`` / ``.npz`` array (``.npz`` holding one array). Images come back as
    PIL frames in mode ``"L"`` (`num_channels` 1) or ``"RGB"`` (any other count, or None); arrays as they are
    stored. Never unpickles. `name` is how errors call the input (default ``inputs '<path>'``).

    Raises:
        FileNotFoundError: no such file or folder, or a folder without images.
        ValueError: another kind of file, an image that cannot be read, a 16-bit or float image, or an ``.npz``
            with several arrays.
    """
    path = Path(path)
    name = f"inputs {os.fspath(path)!r}" if name is None else name
    if not path.exists():
        raise FileNotFoundError(f"{name} does not exist; give {VIDEO_FILE_TYPES}")
    mode = "L" if num_channels == 1 else "RGB"
    if path.is_dir():
        return _read_image_folder(path, mode, name)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        try:
            with Image.open(path) as image:
                return [frame.convert(mode) for frame in ImageSequence.Iterator(image)]
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{name} cannot be read as a GIF ({error})") from error
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if len(archive.files) != 1:
                raise ValueError(f"{name} must hold exactly one array, has {archive.files}")
            return archive[archive.files[0]]
    file_type = repr(suffix) if suffix else "(no suffix)"
    raise ValueError(f"{name} has an unknown file type {file_type}; give {VIDEO_FILE_TYPES}")


def _read_image_folder(folder: Path, mode: str, name: str) -> list[Image.Image]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(
            f"{name} is a folder that holds no image frames ({', '.join(IMAGE_SUFFIXES)})"
        )
    frames = []
    for file in files:
        try:
            with Image.open(file) as image:
                if image.mode in _HIGH_DEPTH_MODES:
                    raise ValueError(
                        f"{name}: {file.name} is a {image.mode!r} image (16-bit or float), which is not "
                        "supported; save 8-bit frames"
                    )
                frames.append(image.convert(mode))
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{name}: {file.name} cannot be read as an image ({error})") from error
    return frames


def frames_to_gif(frames: np.ndarray, duration_ms: int = 200, *, scale: int = 1) -> bytes:
    """An animated GIF (looping) of uint8 frames `(T, H, W)` or `(T, H, W, C)` (C = 1, 3 or 4), each frame shown
    `duration_ms` milliseconds and enlarged `scale` times (nearest neighbour)."""
    if frames.ndim == 4 and frames.shape[-1] == 1:
        frames = frames[..., 0]
    images = [Image.fromarray(frame) for frame in frames]
    if scale != 1:
        images = [
            image.resize((image.width * scale, image.height * scale), Image.NEAREST) for image in images
        ]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0
    )
    return buffer.getvalue()


def is_frame(value) -> bool:
    """Whether `value` is a single frame: a PIL image or a 2-D array / tensor."""
    return isinstance(value, Image.Image) or (
        isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 2
    )


def tensor_to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU numpy copy of `tensor` (float16 / bfloat16 as float32, which numpy lacks or computes badly)."""
    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()
    return tensor.numpy()


def _leading_item(value):
    while isinstance(value, (list, tuple)) and len(value) > 0:
        value = value[0]
    return value


def _frame_array(frame) -> np.ndarray:
    if isinstance(frame, Image.Image):
        if frame.mode in ("1", "LA", "La"):
            frame = frame.convert("L")
        elif frame.mode not in ("L", "I", "I;16", "F", "RGB", "RGBA"):
            frame = frame.convert("RGB")  # palette (GIF frames), CMYK, YCbCr, ...
        return np.asarray(frame)
    if isinstance(frame, torch.Tensor):
        return tensor_to_numpy(frame)
    return np.asarray(frame)


def split_videos(videos) -> list:
    """`videos` as a list of videos, each an array, a tensor or a list of frames.

    One video: a 3-D or 4-D array / tensor, or a list of frames (PIL images or 2-D arrays). A batch: a 5-D array /
    tensor, or a list of videos. Nested lists of numbers are read as an array.

    Raises:
        ValueError: an array of another rank, a single image, an empty list. TypeError: anything else.
    """
    if isinstance(videos, (list, tuple)) and isinstance(_leading_item(videos), numbers.Number):
        videos = np.asarray(videos)
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim == 5:
            return list(videos)
        if videos.ndim in (3, 4):
            return [videos]
        raise ValueError(
            f"videos must be one video (T, H, W), (T, H, W, C) or (T, C, H, W), or a batch (B, T, C, H, W), "
            f"got an array of shape {tuple(videos.shape)}"
        )
    if isinstance(videos, Image.Image):
        raise ValueError("videos must hold several frames: got a single PIL image; pass a list of frames")
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise ValueError("videos is empty: expected frames or videos")
        return [videos] if is_frame(videos[0]) else list(videos)
    raise TypeError(
        "videos must be a numpy array, a torch tensor, a list of frames (PIL images or 2-D arrays) or a list "
        f"of videos, got {type(videos).__name__}"
    )


def video_array(video, name: str) -> np.ndarray:
    """One video as a numpy array of numbers, 3-D or 4-D, its dtype kept (`name` is how errors call it).

    Raises:
        TypeError: not an array, tensor or list of frames; not numbers. ValueError: frames of different shapes,
            another rank, an empty axis.
    """
    if isinstance(video, torch.Tensor):
        array = tensor_to_numpy(video)
    elif isinstance(video, (list, tuple)):
        if len(video) == 0:
            raise ValueError(f"{name} holds no frames")
        frames = [_frame_array(frame) for frame in video]
        shapes = {frame.shape for frame in frames}
        if len(shapes) > 1:
            raise ValueError(f"{name}: frames have different shapes {sorted(shapes)}")
        array = np.stack(frames)
    elif isinstance(video, np.ndarray):
        array = video
    else:
        raise TypeError(
            f"{name} must be a numpy array, a torch tensor or a list of frames, got {type(video).__name__}"
        )
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"{name} must hold numbers (uint8 or float), got dtype {array.dtype}")
    if array.ndim not in (3, 4) or 0 in array.shape:
        raise ValueError(
            f"{name} must be one video (T, H, W), (T, H, W, C) or (T, C, H, W) with no empty axis, got shape "
            f"{array.shape}"
        )
    return array


def to_channels_first(
    array: np.ndarray, name: str, num_channels: int, convert_grayscale: bool = True
) -> tuple[np.ndarray, str]:
    """`(T, C, H, W)` float32 in the input's units (C = `num_channels`), and the layout the input had.

    The channel axis of a 4-D video is the one of size `num_channels` (the last one first). For a grey model, an
    RGB(A) video (3 or 4 channels, last or first) becomes grey with PIL's `convert("L")` weights (rounded for
    integer input, alpha dropped) when `convert_grayscale`; for an RGB model, RGBA loses its alpha.

    Raises:
        ValueError: no axis of the right size (the message says what to give), or RGB for a grey model without
            `convert_grayscale`.
    """
    integer = np.issubdtype(array.dtype, np.integer)
    array = array.astype(np.float32, copy=False)
    if array.ndim == 3:
        if num_channels != 1:
            raise ValueError(
                f"{name} of shape {array.shape} has no channel axis, but the model takes num_channels="
                f"{num_channels}: give (T, H, W, {num_channels}) or (T, {num_channels}, H, W)"
            )
        return array[:, None], NO_CHANNELS
    if array.shape[-1] == num_channels:
        return np.moveaxis(array, -1, 1), CHANNELS_LAST
    if array.shape[1] == num_channels:
        return array, CHANNELS_FIRST
    colour_last, colour_first = array.shape[-1] in (3, 4), array.shape[1] in (3, 4)
    layout = CHANNELS_LAST if colour_last else CHANNELS_FIRST
    colour = np.moveaxis(array, -1, 1) if colour_last else array
    if num_channels == 1 and (colour_last or colour_first):
        if not convert_grayscale:
            raise ValueError(
                f"{name} of shape {array.shape} is an RGB(A) video ({layout}), but the model takes grey "
                "frames (num_channels=1) and do_convert_grayscale=False"
            )
        grey = np.tensordot(_LUMA, colour[:, :3], axes=([0], [1]))[:, None]
        return (np.round(grey) if integer else grey), layout
    if num_channels == 3 and (colour_last or colour_first):  # RGBA into an RGB model: drop alpha
        return colour[:, :3], layout
    expected = f"(T, H, W, {num_channels}) or (T, {num_channels}, H, W)" + (
        " (or RGB(A), converted to grey)" if num_channels == 1 else ""
    )
    raise ValueError(
        f"{name} of shape {array.shape} has no channel axis of size num_channels={num_channels}: expected "
        f"{expected}; for a batch of grey videos (B, T, H, W) add the channel axis: (B, T, 1, H, W)"
    )


__all__ = [
    "CHANNELS_FIRST",
    "CHANNELS_LAST",
    "DATA_FORMATS",
    "IMAGE_SUFFIXES",
    "NO_CHANNELS",
    "VIDEO_FILE_TYPES",
    "frames_to_gif",
    "is_frame",
    "read_video",
    "split_videos",
    "tensor_to_numpy",
    "to_channels_first",
    "video_array",
]
