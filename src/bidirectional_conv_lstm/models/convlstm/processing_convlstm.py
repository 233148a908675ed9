"""The ConvLSTM image processor: videos as people have them in, the model's `pixel_values` out, and back.

:class:`ConvLSTMImageProcessor` (saved as ``preprocessor_config.json``) turns one video or a batch of them (numpy
arrays, torch tensors or lists of PIL images; uint8 or float; ``(T, H, W)``, ``(T, H, W, C)`` or
``(T, C, H, W)``) into float32 ``pixel_values`` ``(B, T, C, H', W')``: scaled to ``[0, 1]`` (image models) or
mapped from mm/h through the model's rain-rate transform (radar models), padded to a multiple of ``patch_size``.
:meth:`ConvLSTMImageProcessor.post_process_frame_prediction` undoes it on the predictions.

This file travels with ``push_to_hub`` as remote code: it imports only numpy, torch, transformers and its siblings
``video_inputs.py`` (the input layouts; numpy, torch, PIL) and ``rain_rate.py``, relatively, so
``AutoImageProcessor.from_pretrained(repo, trust_remote_code=True)`` works where ``bidirectional_conv_lstm`` is not
installed.
"""

import math
import numbers

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.processing_utils import ImagesKwargs

from .argument_checks import check_int
from .rain_rate import RainRateTransform
from .video_inputs import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    DATA_FORMATS,
    NO_CHANNELS,
    split_videos,
    tensor_to_numpy,
    to_channels_first,
    video_array,
)

OUTPUT_TYPES = ("uint8", "float", "rain_rate")


class ConvLSTMImageProcessorKwargs(ImagesKwargs, total=False):
    """The processor's own settings, on top of transformers' image keyword arguments."""

    num_channels: int | None
    patch_size: int | None
    do_convert_grayscale: bool | None
    rain_rate_transform: dict | None


def _boolean(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


class ConvLSTMImageProcessor(BaseImageProcessor):
    r"""
    Prepares videos for [`ConvLSTMForFramePrediction`] and turns its predictions back into frames.

    Args:
        num_channels (`int`, *optional*, defaults to 1):
            The model's channels per frame (`config.num_channels`); the channel axis of a 4-D video is the one of
            this size.
        patch_size (`int`, *optional*, defaults to 4):
            The model's `config.patch_size`: frames are padded (bottom and right; black, or no rain) to a
            multiple of it.
        do_rescale (`bool`, *optional*, defaults to `True`):
            Whether integer frames (uint8) are multiplied by `rescale_factor`; float frames are taken as they are
            and must lie in `[0, 1]`. Ignored by radar models, whose input is a rain rate.
        rescale_factor (`float`, *optional*, defaults to `1 / 255`):
            The factor for integer frames.
        do_pad (`bool`, *optional*, defaults to `True`):
            Whether to pad frames to a multiple of `patch_size`; without it, other sizes raise a `ValueError`.
        do_convert_grayscale (`bool`, *optional*, defaults to `True`):
            For a single-channel model, whether an RGB(A) video (3 or 4 channels) is converted to grey (ITU-R
            BT.601 luma, as PIL's `convert("L")`, alpha dropped) instead of being refused.
        rain_rate_transform (`dict`, *optional*):
            For radar models, the model's rain-rate transform (`RainRateTransform.to_dict()`, as in
            `config.rain_rate_transform`): the input is then a rain rate in mm/h (>= 0; NaN = no data), and
            post-processing returns mm/h by default. `None` for image models.

    Inputs (`__call__` / `preprocess`): one video as a numpy array or torch tensor `(T, H, W)`, `(T, H, W, C)` or
    `(T, C, H, W)`, or as a list of frames (PIL images or 2-D arrays); or a batch: a 5-D array `(B, T, C, H, W)` /
    `(B, T, H, W, C)`, or a list of videos (sizes may differ, frame counts may not). The channel axis of a 4-D video
    is the one of size `num_channels` (or 3 / 4 for RGB(A) into a grey model); a batch of grey videos needs its
    channel axis, `(B, T, 1, H, W)`, since `(B, T, H, W)` reads as one video.

    It returns a [`BatchFeature`] with
        - `pixel_values`: `(B, T, C, H', W')` float32, `H'` and `W'` the largest height and width rounded up to a
          multiple of `patch_size`;
        - `original_sizes`: `(B, 2)` int64, each video's `(H, W)` before padding;
        - `data_format`: one of `"channels_first"`, `"channels_last"`, `"none"` per video: its channel layout, for
          `post_process_frame_prediction`;
        - radar models only, `last_frame_valid`: `(B, H', W')` bool, False where the last frame had no data (NaN).
          No-data pixels are filled with 0 mm/h for the model (as the training data was); post-processing puts
          `no_data_value` (NaN) back where the last observed frame had none, as `model.forecast_rain_rate` does.

    Example:

    ```python
    >>> processor = ConvLSTMImageProcessor(num_channels=1, patch_size=4)
    >>> inputs = processor(np.zeros((10, 62, 64), dtype=np.uint8), return_tensors="pt")
    >>> inputs["pixel_values"].shape, inputs["original_sizes"].tolist(), inputs["data_format"]
    (torch.Size([1, 10, 1, 64, 64]), [[62, 64]], ['none'])
    >>> predictions = model(pixel_values=inputs["pixel_values"]).predictions
    >>> frames = processor.post_process_frame_prediction(
    ...     predictions, original_sizes=inputs["original_sizes"], data_format=inputs["data_format"]
    ... )  # [uint8 (10, 62, 64)]
    ```
    """

    model_input_names = ["pixel_values"]
    valid_kwargs = ConvLSTMImageProcessorKwargs

    num_channels = 1
    patch_size = 4
    do_rescale = True
    rescale_factor = 1 / 255
    do_pad = True
    do_convert_grayscale = True
    rain_rate_transform = None

    def __init__(
        self,
        num_channels: int = 1,
        patch_size: int = 4,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_pad: bool = True,
        do_convert_grayscale: bool = True,
        rain_rate_transform: dict | RainRateTransform | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_channels = check_int("num_channels", num_channels)
        self.patch_size = check_int("patch_size", patch_size)
        self.do_rescale = _boolean("do_rescale", do_rescale)
        self.rescale_factor = self._check_rescale_factor(rescale_factor)
        self.do_pad = _boolean("do_pad", do_pad)
        self.do_convert_grayscale = _boolean("do_convert_grayscale", do_convert_grayscale)
        if rain_rate_transform is not None:
            try:  # kept as its dict (JSON); validated now, not at the first call
                rain_rate_transform = RainRateTransform.from_dict(rain_rate_transform).to_dict()
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"rain_rate_transform={rain_rate_transform!r} is not a valid transform: {error}"
                ) from error
        self.rain_rate_transform = rain_rate_transform

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "ConvLSTMImageProcessor":
        """The processor matching a `ConvLSTMConfig`: its `num_channels`, `patch_size` and `rain_rate_transform`
        (`kwargs` override them or set the other options)."""
        settings = {
            "num_channels": config.num_channels,
            "patch_size": config.patch_size,
            "rain_rate_transform": getattr(config, "rain_rate_transform", None),
        }
        settings.update(kwargs)
        return cls(**settings)

    @staticmethod
    def _check_rescale_factor(value) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not (math.isfinite(value) and value > 0)
        ):
            raise ValueError(f"rescale_factor must be a finite float > 0, got {value!r}")
        return float(value)

    @property
    def transform(self) -> RainRateTransform | None:
        """The `RainRateTransform` of a radar model, `None` for an image model."""
        return (
            None
            if self.rain_rate_transform is None
            else RainRateTransform.from_dict(self.rain_rate_transform)
        )

    # ------------------------------------------------------------------------------------------ preprocessing
    def preprocess(
        self,
        videos,
        do_rescale: bool | None = None,
        rescale_factor: float | None = None,
        do_pad: bool | None = None,
        do_convert_grayscale: bool | None = None,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """Videos to `pixel_values` `(B, T, C, H', W')` float32 (see the class docstring for inputs and outputs).

        The arguments other than `videos` override the processor's settings for this call; `return_tensors` is
        `"pt"` (torch, the default), `"np"` or `None` (numpy).

        Raises:
            TypeError: `videos` is not arrays, tensors or PIL images, or holds non-numbers.
            ValueError: a shape the model cannot take (named with the video's index), values outside `[0, 1]` /
                negative rain rates, NaN in image frames, videos of different lengths in one batch.
        """
        do_rescale = self.do_rescale if do_rescale is None else _boolean("do_rescale", do_rescale)
        rescale_factor = (
            self.rescale_factor if rescale_factor is None else self._check_rescale_factor(rescale_factor)
        )
        do_pad = self.do_pad if do_pad is None else _boolean("do_pad", do_pad)
        convert = (
            self.do_convert_grayscale
            if do_convert_grayscale is None
            else _boolean("do_convert_grayscale", do_convert_grayscale)
        )
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        arrays, formats, last_valid = self._model_space_videos(videos, convert, do_rescale, rescale_factor)
        pixel_values, sizes, last_frame_valid = self._padded_batch(arrays, last_valid, do_pad)
        data = {"pixel_values": pixel_values, "original_sizes": sizes, "data_format": formats}
        if last_frame_valid is not None:
            data["last_frame_valid"] = last_frame_valid
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _model_space_videos(
        self, videos, convert: bool, do_rescale: bool, rescale_factor: float
    ) -> tuple[list[np.ndarray], list[str], list[np.ndarray]]:
        """Each video as float32 `(T, C, H, W)` in model space, its layout, and (radar models) the valid pixels
        `(H, W)` of its last frame; checks that all videos have one length."""
        videos = split_videos(videos)
        transform = self.transform
        arrays, formats, last_valid = [], [], []
        for index, video in enumerate(videos):
            name = "videos" if len(videos) == 1 else f"videos[{index}]"
            array = video_array(video, name)
            integer = np.issubdtype(array.dtype, np.integer)
            array, data_format = to_channels_first(array, name, self.num_channels, convert)
            if transform is not None:
                # No data (NaN) becomes 0 mm/h, as the training data filled it; its mask goes to post-processing.
                valid = ~np.isnan(array)
                last_valid.append(valid[-1].all(axis=0))
                array = np.where(valid, array, np.float32(0.0))
            arrays.append(self._scale(array, name, integer, transform, do_rescale, rescale_factor))
            formats.append(data_format)
        steps = {array.shape[0] for array in arrays}
        if len(steps) > 1:
            raise ValueError(
                f"videos of one batch must have the same number of frames, got {[a.shape[0] for a in arrays]}; "
                "pass them one at a time or cut them to the same length"
            )
        return arrays, formats, last_valid

    def _padded_batch(
        self, arrays: list[np.ndarray], last_valid: list[np.ndarray], do_pad: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """`pixel_values` `(B, T, C, H', W')`, padded to the largest size (a multiple of `patch_size` with
        `do_pad`), the original sizes `(B, 2)` and, for radar models, `last_frame_valid` `(B, H', W')` (else
        None)."""
        sizes = np.array([array.shape[-2:] for array in arrays], dtype=np.int64)
        height, width = (int(size) for size in sizes.max(axis=0))
        patch = self.patch_size
        if do_pad:
            height, width = patch * math.ceil(height / patch), patch * math.ceil(width / patch)
        elif height % patch or width % patch or len({tuple(s) for s in sizes.tolist()}) > 1:
            raise ValueError(
                f"with do_pad=False, frames must all have one size divisible by patch_size={patch}, got sizes "
                f"{sizes.tolist()}"
            )
        transform = self.transform
        # Padding is added in model space with the value of "nothing": 0 for images, no rain for radar.
        fill = 0.0 if transform is None else float(transform.no_rain_value)
        pixel_values = np.full(
            (len(arrays), arrays[0].shape[0], self.num_channels, height, width), fill, np.float32
        )
        for index, array in enumerate(arrays):
            pixel_values[index, :, :, : array.shape[-2], : array.shape[-1]] = array
        if transform is None:
            return pixel_values, sizes, None
        valid_mask = np.ones((len(arrays), height, width), dtype=bool)
        for index, valid in enumerate(last_valid):
            valid_mask[index, : valid.shape[0], : valid.shape[1]] = valid
        return pixel_values, sizes, valid_mask

    @staticmethod
    def _scale(
        array, name: str, integer: bool, transform, do_rescale: bool, rescale_factor: float
    ) -> np.ndarray:
        """Input units to model space: `[0, 1]` for images, the rain-rate transform for radar."""
        if not np.isfinite(array).all():
            raise ValueError(
                f"{name} contains NaN or infinite values; image frames must be complete (only a radar model's "
                "rain rate may have NaN for no data)"
            )
        low, high = float(array.min()), float(array.max())
        if transform is not None:
            if low < 0:
                raise ValueError(f"{name}: rain rates must be >= 0 mm/h, found a minimum of {low:g}")
            return np.asarray(transform.forward(array), dtype=np.float32)
        if integer and do_rescale:
            array = array * np.float32(rescale_factor)
            low, high = low * rescale_factor, high * rescale_factor
        if low < 0 or high > 1:
            if integer:
                hint = f"integer frames are multiplied by rescale_factor={rescale_factor:g} (do_rescale={do_rescale})"
            else:
                hint = "float frames are taken as they are: give uint8 frames, or floats divided by 255"
            raise ValueError(
                f"{name}: values must lie in [0, 1] after scaling, found [{low:g}, {high:g}]; {hint}"
            )
        return array

    # ----------------------------------------------------------------------------------------- postprocessing
    def post_process_frame_prediction(
        self,
        outputs,
        original_sizes=None,
        output_type: str | None = None,
        data_format=CHANNELS_FIRST,
        last_frame_valid=None,
        no_data_value: float = float("nan"),
    ) -> list[np.ndarray]:
        """The model's predictions as frames: cropped to each video's size, in uint8, model space or mm/h.

        Args:
            outputs: the model's output (a `FramePredictionOutput` or a dict with `predictions`) or the predictions
                themselves, `(B, T_out, C, H', W')` (torch or numpy).
            original_sizes: `(B, 2)` `(H, W)` per video (the `original_sizes` of `preprocess`'s output); `None`
                keeps the padded size.
            output_type: `"uint8"` (values in `[0, 1]` times 255, rounded), `"float"` (float32 model space: `[0, 1]`
                intensities for images) or `"rain_rate"` (float32 mm/h, radar models). Defaults to `"rain_rate"`
                for a processor with a `rain_rate_transform`, else `"uint8"`.
            data_format: the layout of each returned video, one for all or one per video (the `data_format` of
                `preprocess`'s output gives each video its input's layout): `"channels_first"` `(T, C, H, W)`,
                `"channels_last"` `(T, H, W, C)` or `"none"` `(T, H, W)` (single-channel models only).
            last_frame_valid: radar models: `(B, H', W')` bool, False where the last observed frame had no data (the
                `last_frame_valid` of `preprocess`'s output); those pixels get `no_data_value` at every lead time
                in `"rain_rate"` and `"float"` output (the model has nothing to say where the radar saw nothing).
            no_data_value: see `last_frame_valid`; NaN by default.

        Returns:
            A list of `B` numpy arrays, one per video.
        """
        predictions = _predictions_array(outputs)
        batch, _, channels, height, width = predictions.shape
        output_type = self._output_type(output_type)
        sizes = _crop_sizes(original_sizes, batch, height, width)
        formats = _data_formats(data_format, batch, channels)
        if last_frame_valid is not None:
            if isinstance(last_frame_valid, torch.Tensor):
                last_frame_valid = tensor_to_numpy(last_frame_valid)
            last_frame_valid = np.asarray(last_frame_valid, dtype=bool)
            if last_frame_valid.shape != (batch, height, width):
                raise ValueError(
                    f"last_frame_valid must have shape (B, H, W) = {(batch, height, width)}, got "
                    f"{last_frame_valid.shape}"
                )
        transform = self.transform
        frames = []
        for index, (video, (h, w), layout) in enumerate(zip(predictions, sizes, formats)):
            video = video[..., :h, :w]
            if output_type == "uint8":
                video = np.round(np.clip(video, 0.0, 1.0) * 255.0).astype(np.uint8)
            else:
                if output_type == "rain_rate":
                    video = np.asarray(transform.inverse(video), dtype=np.float32)
                if last_frame_valid is not None:
                    video = np.where(last_frame_valid[index, :h, :w], video, np.float32(no_data_value))
            if layout == CHANNELS_LAST:
                video = np.moveaxis(video, 1, -1)
            elif layout == NO_CHANNELS:
                video = video[:, 0]
            frames.append(np.ascontiguousarray(video))
        return frames

    def _output_type(self, output_type: str | None) -> str:
        """`output_type`, checked; None: `"rain_rate"` for a radar model, else `"uint8"`."""
        if output_type is None:
            output_type = "uint8" if self.rain_rate_transform is None else "rain_rate"
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if output_type == "rain_rate" and self.rain_rate_transform is None:
            raise ValueError(
                "output_type='rain_rate' needs a processor with a rain_rate_transform (a radar model); this one "
                "has none: use 'uint8' or 'float'"
            )
        return output_type


def _predictions_array(outputs) -> np.ndarray:
    """The predictions `(B, T_out, C, H', W')` float32 numpy, from the model's output or the predictions."""
    predictions = outputs
    if isinstance(outputs, dict) or hasattr(outputs, "predictions"):
        predictions = outputs["predictions"] if isinstance(outputs, dict) else outputs.predictions
    if isinstance(predictions, torch.Tensor):
        predictions = tensor_to_numpy(predictions)
    if not isinstance(predictions, np.ndarray) or predictions.ndim != 5:
        raise ValueError(
            "outputs must be the model's output or its predictions (B, T_out, C, H, W), got "
            f"{type(predictions).__name__} of shape {getattr(predictions, 'shape', None)}"
        )
    return predictions.astype(np.float32, copy=False)


def _crop_sizes(original_sizes, batch: int, height: int, width: int) -> list[tuple[int, int]]:
    """Each video's `(H, W)` to crop back to (the padded size without `original_sizes`)."""
    if original_sizes is None:
        return [(height, width)] * batch
    if isinstance(original_sizes, torch.Tensor):
        original_sizes = original_sizes.tolist()
    sizes = [tuple(int(v) for v in size) for size in np.asarray(original_sizes).reshape(-1, 2)]
    if len(sizes) != batch or any(not (0 < h <= height and 0 < w <= width) for h, w in sizes):
        raise ValueError(
            f"original_sizes must give (H, W) <= ({height}, {width}) for each of the {batch} videos, got {sizes}"
        )
    return sizes


def _data_formats(data_format, batch: int, channels: int) -> list[str]:
    """One layout per video from `data_format` (one for all, or a list)."""
    formats = [data_format] * batch if isinstance(data_format, str) else list(data_format)
    if len(formats) != batch or any(f not in DATA_FORMATS for f in formats):
        raise ValueError(
            f"data_format must be one of {DATA_FORMATS} or a list of them, one per video ({batch}), got "
            f"{data_format!r}"
        )
    if channels != 1 and NO_CHANNELS in formats:
        raise ValueError(f"data_format='none' drops the channel axis, which needs 1 channel, got {channels}")
    return formats


ConvLSTMImageProcessor.register_for_auto_class()

__all__ = ["ConvLSTMImageProcessor"]
