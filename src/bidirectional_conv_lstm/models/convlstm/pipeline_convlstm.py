"""The `frame-prediction` pipeline: observed frames (a GIF, PNGs, a .npy file, an array) in, predicted frames out.

```python
from transformers import pipeline

predictor = pipeline("frame-prediction", model="user/convlstm-moving-mnist", trust_remote_code=True)
result = predictor("observed.gif", num_output_frames=10, return_gif=True)
result["predictions"]  # uint8 (10, 64, 64), or mm/h for a radar model; result["gif"]: the animation's bytes
```

:class:`FramePredictionPipeline` is registered with transformers' `PIPELINE_REGISTRY` when this module is imported
(``import bidirectional_conv_lstm`` does it), so `pipeline("frame-prediction", model=...)` needs no remote code where
the package is installed. :func:`save_frame_prediction_model` saves a model with everything the pipeline needs
elsewhere: ``config.json``'s ``custom_pipelines``, this file and the processor (``preprocessor_config.json`` and its
code), so `pipeline("frame-prediction", model=repo, trust_remote_code=True)` works without the package.

Reading the input files and writing the GIF are :func:`~.video_inputs.read_video` and
:func:`~.video_inputs.frames_to_gif` (re-exported here).

This file travels with the model as remote code: it imports only numpy, torch, transformers and its siblings
``processing_convlstm.py`` and ``video_inputs.py`` (relatively).
"""

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, Pipeline
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines import PIPELINE_REGISTRY

from .argument_checks import check_int
from .georeferencing_convlstm import is_data_array
from .processing_convlstm import OUTPUT_TYPES, ConvLSTMImageProcessor
from .video_inputs import DATA_FORMATS, frames_to_gif, is_frame, read_video

TASK = "frame-prediction"


class FramePredictionPipeline(Pipeline):
    r"""Predict future frames of a video with a ConvLSTM frame-prediction model.

    Call it with one video or a list of videos; a video is a path (an animated GIF, a folder of image frames sorted by
    name, a ``.npy`` / ``.npz`` array), a numpy array or torch tensor `(T, H, W)`, `(T, H, W, C)` or `(T, C, H, W)`
    (uint8, floats in `[0, 1]`, or mm/h for a radar model), or a list of PIL images (one frame each). A 5-D array
    is a batch. Any frame size works: the processor pads to the patch size and the output is cropped back.
    A radar model also takes an `xarray.DataArray` `(time, y, x)` in mm/h with a `time` coordinate and returns
    `{"predictions": DataArray}` on the model's grid with valid times and the input's projection (see
    `forecasting_convlstm.forecast_rain_rate`; keyword arguments `num_output_frames`, `num_input_frames`,
    `output_grid`, `check_time_step`).

    Args (keyword arguments of the call, or of `pipeline(...)` for every call):
        num_output_frames (`int`, *optional*): frames to predict; defaults to the model's `config.num_output_frames`.
        num_input_frames (`int`, *optional*): observe only the last this many frames; defaults to the model's
            `config.num_input_frames` (a shorter video is used whole).
        output_type (`str`, *optional*): `"uint8"`, `"float"` (model space, `[0, 1]` for images) or `"rain_rate"`
            (mm/h); defaults to `"rain_rate"` for radar models, else `"uint8"`.
        data_format (`str`, *optional*): the layout of the returned frames: `"channels_first"`, `"channels_last"` or
            `"none"` (no channel axis); defaults to the input's own layout (`(T, H, W)` for a GIF of a grey model).
        return_gif (`bool`, *optional*, defaults to `False`): also return an animated GIF of the prediction.
        gif_path (`str`, *optional*): write that GIF there (a batch writes `<stem>_<index><suffix>`).
        gif_duration (`int`, *optional*, defaults to 200): milliseconds per GIF frame.

    Returns:
        For one video a dict (a list of them for a batch) with `"predictions"`: a numpy array `(T_out, ...)` in the
        input's channel layout; with `return_gif` or `gif_path`, `"gif"`: the GIF's bytes; with `gif_path`,
        `"gif_path"`.
    """

    _load_processor = False
    _load_image_processor = None  # optional: a model saved without one gets one from its config
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.image_processor is None:
            self.image_processor = ConvLSTMImageProcessor.from_model_config(self.model.config)

    def __call__(self, inputs, **kwargs):
        if is_data_array(inputs):
            return self._forecast_data_array(inputs, **kwargs)
        gif_path = kwargs.pop("gif_path", None)
        if gif_path is not None:
            kwargs["return_gif"] = True
        # transformers reads any list as a batch: a list of frames is one video (a tuple reaches preprocess whole).
        if isinstance(inputs, (np.ndarray, torch.Tensor)) and inputs.ndim == 5:
            inputs = list(inputs)
        elif isinstance(inputs, (list, tuple)):
            if len(inputs) == 0:
                raise ValueError("inputs is an empty list: expected frames or videos")
            inputs = tuple(inputs) if is_frame(inputs[0]) else list(inputs)
        results = super().__call__(inputs, **kwargs)
        if gif_path is not None:
            batch = isinstance(results, list)
            path = Path(gif_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            for index, result in enumerate(results if batch else [results]):
                target = path.with_name(f"{path.stem}_{index}{path.suffix}") if batch else path
                target.write_bytes(result["gif"])
                result["gif_path"] = str(target)
        return results

    def _forecast_data_array(
        self,
        inputs,
        num_output_frames=None,
        num_input_frames=None,
        output_grid="model",
        check_time_step=True,
        **rest,
    ):
        """A radar model's forecast of an `xarray.DataArray` `(time, y, x)` in mm/h: `{"predictions": DataArray}`
        with valid times and the input's coordinates (`forecast_rain_rate` of the model; see its arguments)."""
        if rest:
            raise TypeError(
                f"with an xarray.DataArray the pipeline takes num_output_frames, num_input_frames, output_grid and "
                f"check_time_step; got {sorted(rest)}"
            )
        if self.model.config.rain_rate_transform is None:
            raise ValueError("an xarray.DataArray of rain rate needs a radar model (a rain_rate_transform)")
        keep = check_int("num_input_frames", num_input_frames or self.model.config.num_input_frames)
        forecast = self.model.forecast_rain_rate(
            inputs.isel(time=slice(-keep, None)),
            num_output_frames=num_output_frames,
            output_grid=output_grid,
            check_time_step=check_time_step,
        )
        return {"predictions": forecast}

    def _sanitize_parameters(
        self,
        num_output_frames=None,
        num_input_frames=None,
        output_type=None,
        data_format=None,
        return_gif=None,
        gif_duration=None,
    ):
        # Checked here, before any file is read or the model runs.
        preprocess, forward, postprocess = {}, {}, {}
        if num_input_frames is not None:
            preprocess["num_input_frames"] = check_int("num_input_frames", num_input_frames)
        if num_output_frames is not None:
            forward["num_output_frames"] = check_int("num_output_frames", num_output_frames)
        if output_type is not None:
            if output_type not in OUTPUT_TYPES:
                raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
            processor = getattr(self, "image_processor", None)  # None while transformers builds the pipeline
            if output_type == "rain_rate" and processor is not None and processor.rain_rate_transform is None:
                raise ValueError(
                    "output_type='rain_rate' needs a radar model (a rain_rate_transform); use 'uint8'"
                )
            postprocess["output_type"] = output_type
        if data_format is not None:
            if data_format not in DATA_FORMATS:
                raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}")
            postprocess["data_format"] = data_format
        if return_gif is not None:
            postprocess["return_gif"] = bool(return_gif)
        if gif_duration is not None:
            postprocess["gif_duration"] = check_int("gif_duration", gif_duration)
        return preprocess, forward, postprocess

    def preprocess(self, inputs, num_input_frames=None):
        if isinstance(inputs, (str, os.PathLike)):
            inputs = read_video(inputs, num_channels=self.model.config.num_channels)
        elif not isinstance(inputs, (np.ndarray, torch.Tensor, tuple, list)):
            raise TypeError(
                "inputs must be a path (GIF, folder of PNGs, .npy/.npz), a numpy array, a torch tensor or a list of "
                f"PIL images, got {type(inputs).__name__}"
            )
        processed = self.image_processor(inputs, return_tensors="pt")
        keep = num_input_frames or self.model.config.num_input_frames
        processed["pixel_values"] = processed["pixel_values"][:, -keep:]
        return processed

    def _forward(self, model_inputs, num_output_frames=None):
        pixel_values = model_inputs["pixel_values"].to(self.model.dtype)
        outputs = self.model(pixel_values=pixel_values, num_output_frames=num_output_frames)
        passed_on = ("original_sizes", "data_format", "last_frame_valid")
        return {
            "predictions": outputs.predictions,
            **{k: model_inputs[k] for k in passed_on if k in model_inputs},
        }

    def postprocess(
        self, model_outputs, output_type=None, data_format=None, return_gif=False, gif_duration=200
    ):
        post_process = self.image_processor.post_process_frame_prediction
        predictions, sizes = model_outputs["predictions"], model_outputs["original_sizes"]
        layout = data_format or model_outputs["data_format"]
        frames = post_process(
            predictions,
            sizes,
            output_type=output_type,
            data_format=layout,
            last_frame_valid=model_outputs.get("last_frame_valid"),
        )
        result = {"predictions": frames[0]}
        if return_gif:
            frames = post_process(predictions, sizes, output_type="uint8", data_format="channels_last")[0]
            result["gif"] = frames_to_gif(frames, gif_duration)
        return result


PIPELINE_REGISTRY.register_pipeline(
    TASK, pipeline_class=FramePredictionPipeline, pt_model=AutoModel, type="video"
)


def save_frame_prediction_model(model, save_directory, image_processor=None, **save_kwargs) -> None:
    """`model.save_pretrained(save_directory, **save_kwargs)` plus what `pipeline("frame-prediction", ...)` and
    `AutoImageProcessor` need where this package is not installed: ``config.json``'s ``custom_pipelines``, this
    file and the processor (``preprocessor_config.json``, ``processing_convlstm.py`` and what it imports).

    Args:
        model: a `ConvLSTMForFramePrediction`.
        save_directory: the folder (created if needed).
        image_processor: the `ConvLSTMImageProcessor` to save; defaults to the one matching the model's config
            (`ConvLSTMImageProcessor.from_model_config`).
        save_kwargs: for `save_pretrained` (e.g. `is_main_process`, `save_function`, `state_dict` under
            Accelerate); only the main process writes the processor and the pipeline code.
    """
    if image_processor is None:
        image_processor = ConvLSTMImageProcessor.from_model_config(model.config)
    # As transformers' Pipeline.save_pretrained records a registered pipeline, without building a Pipeline (which
    # would move the model to the default device).
    model.config.custom_pipelines = {
        TASK: {"impl": f"{__name__.split('.')[-1]}.{FramePredictionPipeline.__name__}", "pt": ["AutoModel"]}
    }
    model.save_pretrained(save_directory, **save_kwargs)
    if save_kwargs.get("is_main_process", True):
        image_processor.save_pretrained(save_directory)
        custom_object_save(FramePredictionPipeline, save_directory)


__all__ = ["FramePredictionPipeline", "frames_to_gif", "read_video", "save_frame_prediction_model"]
