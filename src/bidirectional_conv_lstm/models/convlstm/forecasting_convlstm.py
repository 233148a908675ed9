"""Rain-rate forecasts in mm/h from a ConvLSTM frame-prediction model whose config records a rain-rate transform.

:func:`forecast_rain_rate` (also :meth:`ConvLSTMForFramePrediction.forecast_rain_rate`) takes observed frames in
mm/h of any size, with no-data pixels, and returns the forecast in mm/h:

1. no-data pixels (NaN, or ``valid`` False) are filled with 0 mm/h, as ``RainRateCollator`` fills them for
   training (the model saw no rain there, never a hole);
2. the frames are padded with 0 mm/h on the bottom and right to a multiple of ``config.patch_size``;
3. ``config.rain_rate_transform`` maps them to model space, the model forecasts, the transform's inverse maps
   the predictions back to mm/h (>= 0; below the transform's threshold exactly 0), and the padding is cropped;
4. with ``probability_matching="mean"`` (``config.probability_matching`` by default), each forecast frame's wet
   pixels (>= 0.1 mm/h) are scaled so that their geometric mean rain rate equals the last observed frame's, the
   "mean" probability matching of pysteps' S-PROG (an additive shift in dBR): a model trained with a
   mean-seeking loss fades uncertain rain with lead time, and this restores its intensity from what was observed
   without moving or growing any rain area;
5. observed frames without rain (no pixel at or above the transform's threshold or 0.1 mm/h) give exactly 0 mm/h
   everywhere: a network's faint haze is no forecast of rain;
6. pixels with no data in the *last observed frame* get ``no_data_value`` (NaN by default) at every lead time:
   the model has nothing to say where the radar saw nothing. (Rain advected in from a no-data area is not
   known either, but a forecast there is still the model's best guess, so only the last frame's mask is used.)

An **ensemble model** (``config.ensemble_noise_channels > 0``) draws members: with ``num_members=N`` the forecast
is ``(B, N, T, H, W)``, each member through steps 3 to 6, reproducible by ``seed`` (a CPU ``torch.Generator``;
members are drawn :data:`MEMBERS_PER_CALL` at a time, so at most ``B * MEMBERS_PER_CALL`` sequences run through
the forecaster at once). Without ``num_members`` it returns ``config.ensemble_product`` (mean, median or
probability-matched mean, :mod:`ensemble_convlstm`) of ``config.ensemble_members`` members, taken in mm/h after
step 5. :func:`forecast_exceedance_probability` gives the fraction of members at or above rain-rate thresholds.

An ``xarray.DataArray`` ``(time, y, x)`` goes in and comes out with its coordinates: see
:mod:`georeferencing_convlstm` (block averaging to ``config.pixel_size``, the ``config.time_step`` check, valid
times and the projection carried through).

It has the signature of the baselines of :mod:`bidirectional_conv_lstm.nowcasting.baselines`, so a model is
scored beside them by :mod:`bidirectional_conv_lstm.nowcasting.evaluation` (pass ``no_data_value=0.0`` there, as
the baselines forecast 0 where they know nothing).

This file travels with ``push_to_hub`` as remote code (``modeling_convlstm.py`` imports it relatively): it
imports only numpy, torch and its siblings.
"""

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from .argument_checks import check_int
from .ensemble_convlstm import check_thresholds, ensemble_product, exceedance_probability
from .georeferencing_convlstm import (
    OUTPUT_GRIDS,
    forecast_to_data_array,
    frames_from_data_array,
    is_data_array,
)
from .rain_rate import RainRateTransform

__all__ = [
    "MEMBERS_PER_CALL",
    "PROBABILITY_MATCHING",
    "WET_THRESHOLD",
    "forecast_exceedance_probability",
    "forecast_rain_rate",
    "match_observed_mean",
    "pad_to_patch_size",
]

PROBABILITY_MATCHING = (None, "mean")
WET_THRESHOLD = 0.1  # mm/h: rain for the mean matching (pysteps' usual precipitation threshold)
#: Members drawn per model call: at most `B * MEMBERS_PER_CALL` sequences run through the forecaster at once.
MEMBERS_PER_CALL = 8


def pad_to_patch_size(frames: torch.Tensor, patch_size: int, value: float = 0.0) -> torch.Tensor:
    """`frames` `(..., H, W)` padded with `value` on the bottom and right to multiples of `patch_size` (the one
    padding of every path that takes any grid: this function, the motion check, the ONNX graph). The padded sizes
    are written as multiples of the patch, so that `torch.export` proves the model's divisibility checks."""
    height, width = frames.shape[-2:]
    padded_height = (height + patch_size - 1) // patch_size * patch_size
    padded_width = (width + patch_size - 1) // patch_size * patch_size
    return F.pad(frames, (0, padded_width - width, 0, padded_height - height), value=value)


def match_observed_mean(forecast: torch.Tensor, observed: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Scale each forecast frame's wet pixels so their geometric mean equals the observed frame's.

    Args:
        forecast: mm/h `(B, T, H, W)`; observed: mm/h `(B, H, W)` (the last observed frame); valid: bool
            `(B, H, W)`, the pixels of `observed` with data (only they count, in both fields).

    Returns:
        The scaled forecast, `(B, T, H, W)`: pixels below :data:`WET_THRESHOLD` are unchanged, and so is a frame
        when it or the observation has no wet pixel.
    """
    floor = torch.tensor(WET_THRESHOLD, dtype=forecast.dtype, device=forecast.device)
    observed_wet = (observed >= WET_THRESHOLD) & valid
    forecast_wet = (forecast >= WET_THRESHOLD) & valid[:, None]
    observed_count, forecast_count = observed_wet.sum((-1, -2)), forecast_wet.sum((-1, -2))
    observed_log = torch.where(observed_wet, torch.log(torch.maximum(observed, floor)), 0.0).sum((-1, -2))
    forecast_log = torch.where(forecast_wet, torch.log(torch.maximum(forecast, floor)), 0.0).sum((-1, -2))
    observed_mean = observed_log / observed_count.clamp_min(1)  # (B,): mean log rain rate of the wet pixels
    forecast_mean = forecast_log / forecast_count.clamp_min(1)  # (B, T)
    shift = observed_mean[:, None] - forecast_mean
    both = (observed_count > 0)[:, None] & (forecast_count > 0)
    factor = torch.where(both, torch.exp(shift), torch.ones_like(shift))
    return torch.where(forecast_wet, forecast * factor[..., None, None], forecast)


def _as_tensor(value, name: str) -> tuple[torch.Tensor, bool]:
    """`value` as a tensor, and whether it came as numpy (so the result goes back as numpy)."""
    if isinstance(value, torch.Tensor):
        return value, False
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value)), True
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(value).__name__}")


def _check(rain_rate, valid, num_output_frames, config) -> tuple[torch.Tensor, torch.Tensor, bool, bool, int]:
    """Checked `(rain (B, T, H, W) float, valid (B, T, H, W) bool, as numpy, had a channel axis, horizon)`."""
    if config.rain_rate_transform is None:
        raise ValueError(
            "this model has no rain-rate transform (config.rain_rate_transform is None): it was trained on "
            "images, not rain rate; call the model on pixel_values instead"
        )
    rain, as_numpy = _as_tensor(rain_rate, "rain_rate")
    shape = tuple(rain.shape)
    channel_axis = rain.ndim == 5
    if channel_axis and shape[2] != 1:
        raise ValueError(f"rain_rate (B, T, 1, H, W) must have 1 channel, got shape {shape}")
    if rain.ndim not in (4, 5) or 0 in shape:
        raise ValueError(
            f"rain_rate must be mm/h of shape (B, T, H, W) or (B, T, 1, H, W), not empty, got shape {shape}"
        )
    if not (rain.is_floating_point() or rain.dtype in (torch.uint8, torch.int16, torch.int32, torch.int64)):
        raise TypeError(f"rain_rate must hold real numbers (mm/h), got dtype {rain.dtype}")
    if channel_axis:
        rain = rain[:, :, 0]
    if num_output_frames is None:
        num_output_frames = config.num_output_frames
    check_int("num_output_frames", num_output_frames)
    rain = rain.float() if not rain.is_floating_point() else rain
    mask = ~torch.isnan(rain)
    if valid is not None:
        valid, _ = _as_tensor(valid, "valid")
        if tuple(valid.shape) != shape:
            raise ValueError(f"valid must have rain_rate's shape {shape}, got {tuple(valid.shape)}")
        if valid.dtype != torch.bool:
            raise TypeError(f"valid must be a bool mask (True = data), got dtype {valid.dtype}")
        mask = mask & (valid[:, :, 0] if channel_axis else valid).to(mask.device)
    if bool(torch.isinf(rain).any()):
        raise ValueError(
            f"rain_rate has {int(torch.isinf(rain).sum())} infinite values; expected finite mm/h (NaN for no data)"
        )
    empty = (~mask.flatten(1).any(1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"rain_rate has no data at all in sample(s) {empty} (every pixel NaN or valid=False): nothing to forecast"
        )
    if bool((rain[mask] < 0).any()):
        raise ValueError(f"rain_rate has negative values (min {rain[mask].min().item()}); expected mm/h >= 0")
    return rain, mask, as_numpy, channel_axis, int(num_output_frames)


def _check_members(model, num_members, seed) -> int | None:
    """`num_members` as an int (None stays None) once it and `seed` are valid for `model`."""
    if seed is not None:
        check_int("seed", seed, minimum=0)
    if num_members is None:
        return None
    count = check_int("num_members", num_members)
    if count > 1 and not getattr(model.config, "ensemble_noise_channels", 0):
        raise ValueError(
            f"num_members={count} asks for ensemble members, but this model has no noise "
            "(config.ensemble_noise_channels=0): every member would be the same forecast; pass num_members=1 "
            "or None, or use an ensemble model"
        )
    return count


def _check_grid(output_grid, probability_matching, config) -> str | None:
    """`probability_matching` resolved (`"config"` -> the config's), once it and `output_grid` are valid."""
    if output_grid not in OUTPUT_GRIDS:
        raise ValueError(f"output_grid must be one of {OUTPUT_GRIDS}, got {output_grid!r}")
    if probability_matching == "config":
        probability_matching = getattr(config, "probability_matching", None)
    if probability_matching not in PROBABILITY_MATCHING:
        raise ValueError(
            f"probability_matching must be one of {PROBABILITY_MATCHING}, got {probability_matching!r}"
        )
    return probability_matching


@torch.no_grad()
def forecast_rain_rate(
    model,
    rain_rate,
    valid=None,
    *,
    num_output_frames: int | None = None,
    no_data_value: float = float("nan"),
    probability_matching: str | None = "config",
    output_grid: str = "model",
    check_time_step: bool = True,
    num_members: int | None = None,
    seed: int | None = None,
):
    """Forecast rain rate in mm/h with `model` (see the module docstring for the steps).

    Args:
        model: a `ConvLSTMForFramePrediction` whose `config.rain_rate_transform` is set. It runs as it is (call
            `model.eval()` first; `from_pretrained` returns it in eval mode), without gradients.
        rain_rate: observed rain rate in mm/h, oldest frame first: `(B, T_in, H, W)` or `(B, T_in, 1, H, W)`, any
            `H x W`, a float torch tensor (any device: it is moved to the model's) or numpy array, taken to be on
            the model's grid and time step; or an `xarray.DataArray` `(time, y, x)` with a `time` coordinate (and
            `x` / `y` coordinates or `xpixelsize` / `ypixelsize` attributes telling its pixel size), which is
            checked against the model's `config.time_step` and block-averaged to its `config.pixel_size` (see
            `georeferencing_convlstm`). NaN = no data; no infinite values; at least one pixel with data.
        valid: optional bool mask of `rain_rate`'s shape, False = no data (on top of NaN); not with a DataArray.
        num_output_frames: how many frames to forecast (one frame step apart, the step of the observed frames
            and of the training data); defaults to `config.num_output_frames`.
        no_data_value: the forecast at pixels with no data in the last observed frame (NaN by default; 0.0 to
            match the baselines).
        probability_matching: `"mean"` (see the module docstring) or None; by default `config.probability_matching`.
        output_grid: for a DataArray, `"model"` (the forecast on the model's grid) or `"input"` (each model pixel
            repeated over the input pixels it averaged; rows and columns no whole block covered get
            `no_data_value`).
        check_time_step: for a DataArray, refuse frames whose time step differs from `config.time_step`.
        num_members: an int `N >= 1`: return `N` ensemble members, each post-processed as a single forecast
            (steps 3 to 6 of the module docstring). More than 1 needs an ensemble model
            (`config.ensemble_noise_channels > 0`). None (the default): one forecast; for an ensemble model that
            is `config.ensemble_product` (the mean, the median or the probability-matched mean) of
            `config.ensemble_members` members, computed in mm/h over the pixels with data.
        seed: an int >= 0 makes the members reproducible (the noise comes from a CPU `torch.Generator` seeded
            with it, drawn `MEMBERS_PER_CALL` members per model call); None draws from torch's global generator.

    Returns:
        mm/h `(B, T_out, H, W)` (or `(B, T_out, 1, H, W)` when `rain_rate` had a channel axis), float32, a numpy
        array for numpy input, else a tensor on `rain_rate`'s device; with `num_members`, `(B, N, T_out, H, W)`
        (or `(B, N, T_out, 1, H, W)`). For a DataArray, a DataArray `precip_intensity` `(time, y, x)` (with
        `num_members`, `(member, time, y, x)`) with valid times, `forecast_reference_time`, `forecast_period`,
        units and the input's projection (its attributes and 0-d coordinates). Observed frames without any rain
        (nothing at or above the transform's threshold, or 0.1 mm/h) give a forecast of exactly 0 mm/h.

    Raises:
        ValueError / TypeError: a model without a rain-rate transform, a bad shape, dtype, mask, horizon, member
            count or seed, an infinite value or a sample without data, a DataArray of another time step or a
            coarser grid; `num_members > 1` for a model without noise.
    """
    probability_matching = _check_grid(output_grid, probability_matching, model.config)
    count = _check_members(model, num_members, seed)
    options = dict(probability_matching=probability_matching, seed=seed)
    if not is_data_array(rain_rate):
        observed = _observe(model, rain_rate, valid, num_output_frames)
        return observed.finish(_rain_rate(model, observed, count, **options), no_data_value)
    if valid is not None:
        raise TypeError("valid is not taken with a DataArray: mark the pixels without data as NaN")
    frames, context = frames_from_data_array(rain_rate, model.config, check_time_step=check_time_step)
    observed = _observe(model, frames, None, num_output_frames)
    forecast = observed.finish(_rain_rate(model, observed, count, **options), no_data_value)
    leading = None if count is None else ("member", np.arange(count), {})
    return forecast_to_data_array(
        forecast[0], context, output_grid=output_grid, no_data_value=no_data_value, leading=leading
    )


@torch.no_grad()
def forecast_exceedance_probability(
    model,
    rain_rate,
    thresholds=(0.5, 1.0, 2.0, 5.0),
    valid=None,
    *,
    num_output_frames: int | None = None,
    num_members: int | None = None,
    seed: int | None = None,
    probability_matching: str | None = "config",
    output_grid: str = "model",
    check_time_step: bool = True,
):
    """The probability of rain rate at or above each threshold: the fraction of the members that reach it.

    Args:
        model, rain_rate, valid, num_output_frames, probability_matching, output_grid, check_time_step: as
            :func:`forecast_rain_rate`.
        thresholds: rain rates in mm/h, a non-empty sequence of strictly increasing numbers > 0 (`K` of them).
        num_members: the members drawn (`config.ensemble_members` for an ensemble model by default; a model
            without noise has one member, and its probabilities are 0 or 1).
        seed: as :func:`forecast_rain_rate`: the same seed gives the same probabilities.

    Returns:
        float32 `(B, K, T_out, H, W)` in `[0, 1]` (`(B, K, T_out, 1, H, W)` for input with a channel axis),
        non-increasing along `K`, NaN where the last observed frame has no data; numpy for numpy input. For a
        DataArray, a DataArray `exceedance_probability` `(threshold, time, y, x)` (threshold in mm/h).

    Raises:
        ValueError / TypeError: as :func:`forecast_rain_rate`, and thresholds that are not increasing rain rates.
    """
    thresholds = check_thresholds(thresholds)
    probability_matching = _check_grid(output_grid, probability_matching, model.config)
    count = _check_members(model, num_members, seed)
    if count is None:
        count = model.config.ensemble_members if getattr(model.config, "ensemble_noise_channels", 0) else 1
    options = dict(probability_matching=probability_matching, seed=seed)
    data_array = is_data_array(rain_rate)
    if data_array:
        if valid is not None:
            raise TypeError("valid is not taken with a DataArray: mark the pixels without data as NaN")
        rain_rate, context = frames_from_data_array(rain_rate, model.config, check_time_step=check_time_step)
    observed = _observe(model, rain_rate, valid, num_output_frames)
    members = _rain_rate(model, observed, count, **options)
    probabilities = observed.finish(exceedance_probability(members, thresholds), float("nan"))
    if not data_array:
        return probabilities
    leading = ("threshold", np.asarray(thresholds), {"units": "mm h-1", "long_name": "rain rate threshold"})
    variable = (
        "exceedance_probability",
        {"units": "1", "long_name": "probability of rain rate >= threshold"},
    )
    return forecast_to_data_array(
        probabilities[0],
        context,
        output_grid=output_grid,
        no_data_value=float("nan"),
        leading=leading,
        variable=variable,
    )


@dataclasses.dataclass
class _Observed:
    """The checked observation, ready for the model, and what post-processing needs of it."""

    pixel_values: torch.Tensor  # (B, T_in, 1, H', W') model space, the model's device and dtype, padded
    last_frame: torch.Tensor  # (B, H, W) mm/h, no data filled with 0
    last_valid: torch.Tensor  # (B, H, W) bool
    dry: torch.Tensor  # (B,) bool: no rain observed at all
    horizon: int
    as_numpy: bool
    channel_axis: bool
    output_device: torch.device

    def finish(self, forecast: torch.Tensor, no_data_value: float):
        """`forecast` `(B, ..., T, H, W)` with `no_data_value` where the last observed frame has no data, a channel
        axis before `H` if the input had one, on the input's device (numpy for numpy input)."""
        last_valid = self.last_valid.view(
            self.last_valid.shape[0], *[1] * (forecast.ndim - 3), *forecast.shape[-2:]
        )
        forecast = torch.where(last_valid, forecast, torch.full_like(forecast, float(no_data_value)))
        if self.channel_axis:
            forecast = forecast.unsqueeze(-3)
        forecast = forecast.to(self.output_device)
        return forecast.numpy() if self.as_numpy else forecast


def _observe(model, rain_rate, valid, num_output_frames) -> _Observed:
    """Steps 1 and 2 of the module docstring, and the transform to model space."""
    config = model.config
    rain, mask, as_numpy, channel_axis, horizon = _check(rain_rate, valid, num_output_frames, config)
    transform = RainRateTransform.from_dict(config.rain_rate_transform)
    device, output_device = next(model.parameters()).device, rain.device
    dtype = next(model.parameters()).dtype
    rain, mask = rain.to(device), mask.to(device)
    height, width = rain.shape[-2:]
    filled = torch.where(mask, rain, torch.zeros((), dtype=rain.dtype, device=device)).float()
    padded = pad_to_patch_size(filled, config.patch_size)  # 0 mm/h: "no rain" beyond the edge
    pixel_values = transform.forward(padded).unsqueeze(2).to(dtype)  # (B, T, 1, H', W')
    wet = filled >= max(transform.threshold, WET_THRESHOLD)
    dry = ~wet.flatten(1).any(1)  # (B,): nothing observed rains: nothing is forecast (no faint haze)
    return _Observed(
        pixel_values, filled[:, -1], mask[:, -1], dry, horizon, as_numpy, channel_axis, output_device
    )


def _rain_rate(model, observed: _Observed, count, *, probability_matching, seed):
    """The forecast in mm/h before the no-data fill: `(B, T, H, W)` for `count` None (an ensemble model's
    `config.ensemble_product` of `config.ensemble_members` members), else `count` members `(B, N, T, H, W)`."""
    config = model.config
    product = None
    if count is None and getattr(config, "ensemble_noise_channels", 0):
        count, product = config.ensemble_members, config.ensemble_product
    if count is None:
        predictions = model(
            pixel_values=observed.pixel_values, num_output_frames=observed.horizon
        ).predictions
        return _to_rain_rate(predictions, observed, 1, config, probability_matching)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, count, MEMBERS_PER_CALL):
        size = min(MEMBERS_PER_CALL, count - start)
        output = model(
            pixel_values=observed.pixel_values,
            num_output_frames=observed.horizon,
            num_members=size,
            generator=generator,
        )
        forecast = _to_rain_rate(output.members.flatten(0, 1), observed, size, config, probability_matching)
        chunks.append(forecast.unflatten(0, (-1, size)))
    members = torch.cat(chunks, dim=1)  # (B, N, T, H, W)
    return members if product is None else ensemble_product(members, product, observed.last_valid[:, None])


def _to_rain_rate(predictions, observed: _Observed, count: int, config, probability_matching) -> torch.Tensor:
    """Steps 3 to 5 of the module docstring: model-space `predictions` `(B * count, T, 1, H', W')` (each sample's
    `count` members in a row) to mm/h `(B * count, T, H, W)`."""
    transform = RainRateTransform.from_dict(config.rain_rate_transform)
    height, width = observed.last_frame.shape[-2:]
    forecast = transform.inverse(predictions[:, :, 0, :height, :width].float())
    dry = observed.dry.repeat_interleave(count)
    if probability_matching == "mean":
        last_frame = observed.last_frame.repeat_interleave(count, dim=0)
        last_valid = observed.last_valid.repeat_interleave(count, dim=0)
        forecast = match_observed_mean(forecast, last_frame, last_valid)
    return torch.where(dry[:, None, None, None], torch.zeros_like(forecast), forecast)
