"""The baselines every precipitation nowcast is judged against: persistence, optical-flow extrapolation,
S-PROG and ANVIL, and STEPS as the ensemble to beat.

All forecasters here share one signature, the one :mod:`bidirectional_conv_lstm.nowcasting.evaluation` calls for every method (the
model included)::

    forecast = forecaster(observed, valid=None, *, num_output_frames=12)

- ``observed``: rain rate in mm/h, (B, T_in, H, W), numpy or torch, oldest frame first; NaN marks no data.
- ``valid``: optional bool (B, T_in, H, W), False marks no data (on top of NaN).
- returns rain rate in mm/h, numpy float32 (B, T_out, H, W), finite and >= 0. A pixel a method has nothing to
  say about (no data in its input, or advected in from outside the grid) is forecast as 0 mm/h: scores are
  computed on the pixels where the *observation* is valid, the same pixels for every method.
- an ensemble forecaster says so in a ``num_members`` attribute (N >= 2) and returns its members, float32
  (B, N, T_out, H, W); the evaluation scores the members as an ensemble and their mean beside the other methods.
- any H x W; a forecaster that needs more than one observed frame says so in a ``min_input_frames`` attribute
  (:func:`min_input_frames`), which the evaluation checks before any forecast.

Persistence is numpy only. The others are pysteps' (the ``nowcasting`` extra), run as pysteps' own examples run
them: rain rate to dBR with ``pysteps.utils.transformation.dB_transform`` (threshold 0.1 mm/h, no-rain value
-15 dBR), a Lucas-Kanade motion field (``pysteps.motion.get_method("LK")``) from all the observed frames (no-data
pixels NaN, which pysteps masks so no features are tracked there; :func:`get_baselines` computes it once per
batch for all of them), then

- extrapolation: the last frame (no data filled with the no-rain value) carried along the motion field by
  pysteps' semi-Lagrangian scheme (``pysteps.nowcasts.get_method("extrapolation")``);
- S-PROG (Seed 2003): ``pysteps.nowcasts.get_method("sprog")`` on the last ``ar_order + 1`` frames (an AR(2)
  model per cascade level of an FFT band-pass decomposition, scales losing predictability smoothed away;
  no data left NaN, as S-PROG takes its domain mask from them; the "mean" probability matching of pysteps'
  S-PROG example);
- STEPS (Bowler et al. 2006, Seed et al. 2013): ``pysteps.nowcasts.get_method("steps")`` on the last
  ``ar_order + 1`` frames, S-PROG's cascade with stochastic noise ("nonparametric", its default) and perturbed
  motion ("bps") driving 20 members, "cdf" probability matching and an "incremental" rain mask (its defaults),
  reproducible with ``seed``;
- ANVIL (Pulkkinen et al. 2020): ``pysteps.nowcasts.get_method("anvil")`` on the last ``ar_order + 2`` frames
  *in mm/h* (an ARI(2, 1) model of the time derivative per cascade level, localized), no dBR transform;

and back to mm/h with the inverse ``dB_transform`` (below 0.1 mm/h is 0; ANVIL's mm/h below 0.1 is 0 too). No
data left NaN by a method becomes 0. S-PROG, STEPS and ANVIL cannot fit their AR models on a (nearly) dry window
("Singular matrix"); there they give the extrapolation of the last frame (every STEPS member the same). Optical
flow is per sample, so a batch is a loop over samples.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable, Iterable

import numpy as np
import torch

from ..models.convlstm.argument_checks import check_int
from ..models.convlstm.ensemble_convlstm import ensemble_product

__all__ = [
    "BASELINE_NAMES",
    "anvil_forecast",
    "extrapolation_forecast",
    "get_baseline",
    "get_baselines",
    "lucas_kanade_motion",
    "min_input_frames",
    "model_forecaster",
    "persistence_forecast",
    "sprog_forecast",
    "steps_forecast",
    "steps_beside",
    "steps_forecaster",
]

BASELINE_NAMES = ("persistence", "extrapolation", "sprog", "steps", "anvil")
_ALIASES = {"lucas_kanade": "extrapolation"}

RAIN_THRESHOLD = 0.1  # mm/h: below it is "no rain" in dBR (pysteps' examples)
ZERO_VALUE_DBR = -15.0  # the dBR value given to no rain (pysteps' examples)


def _pysteps():
    """Import pysteps (quietly: it prints where its configuration file is) or say how to install it."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import pysteps
            import pysteps.motion
            import pysteps.nowcasts
            import pysteps.utils.transformation
    except ImportError as error:
        raise ImportError(
            'optical-flow extrapolation and S-PROG need pysteps: pip install -e ".[nowcasting]" '
            f"(or pip install 'bidirectional-conv-lstm[nowcasting]'); import failed with: {error}"
        ) from error
    return pysteps


def _as_numpy(array, name: str) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(array).__name__}")
    return array


def _prepare(observed, valid, num_output_frames, min_input_frames: int) -> np.ndarray:
    """Checked float64 (B, T_in, H, W) mm/h with NaN at every no-data pixel."""
    observed = _as_numpy(observed, "observed")
    if observed.ndim != 4:
        raise ValueError(f"observed must be rain rate (B, T_in, H, W), got shape {observed.shape}")
    if observed.shape[1] < min_input_frames:
        raise ValueError(
            f"observed has {observed.shape[1]} frames, this forecaster needs at least {min_input_frames}"
        )
    check_int("num_output_frames", num_output_frames)
    rain = observed.astype(np.float64)  # a copy: the caller's array is never written
    if valid is not None:
        valid = _as_numpy(valid, "valid").astype(bool)
        if valid.shape != observed.shape:
            raise ValueError(f"valid has shape {valid.shape}, expected observed's {observed.shape}")
        rain[~valid] = np.nan
    if np.any(rain < 0):  # NaN compares False
        raise ValueError(f"observed has negative rain rates (min {np.nanmin(rain)}); expected mm/h >= 0")
    return rain


def _to_dbr(rain_mm_h: np.ndarray, threshold: float, zero_value: float) -> np.ndarray:
    """mm/h -> dBR; below ``threshold`` -> ``zero_value``; NaN (no data) stays NaN."""
    transformation = _pysteps().utils.transformation
    return transformation.dB_transform(rain_mm_h, threshold=threshold, zerovalue=zero_value)[0]


def _from_dbr(dbr: np.ndarray, threshold: float) -> np.ndarray:
    """dBR -> mm/h, 0 below ``threshold`` and where unknown (NaN), as float32."""
    transformation = _pysteps().utils.transformation
    rain = transformation.dB_transform(dbr, threshold=10.0 * np.log10(threshold), inverse=True)[0]
    return np.clip(np.nan_to_num(rain, nan=0.0, posinf=0.0), 0.0, None).astype(np.float32)


def persistence_forecast(observed, valid=None, *, num_output_frames: int) -> np.ndarray:
    """The last observed frame, repeated: (B, T_out, H, W) float32 mm/h (no data in it -> 0)."""
    rain = _prepare(observed, valid, num_output_frames, min_input_frames=1)
    last = np.nan_to_num(rain[:, -1:], nan=0.0).astype(np.float32)
    return np.repeat(last, num_output_frames, axis=1)


def lucas_kanade_motion(
    observed,
    valid=None,
    *,
    threshold: float = RAIN_THRESHOLD,
    zero_value: float = ZERO_VALUE_DBR,
    lk_kwargs: dict | None = None,
) -> np.ndarray:
    """pysteps' dense Lucas-Kanade motion field of each sample's observed frames (in dBR).

    Args:
        observed: mm/h (B, T_in, H, W), T_in >= 2; NaN / ``valid`` False = no data (masked: no features there).
        threshold, zero_value: the dBR transform (mm/h below ``threshold`` -> ``zero_value`` dBR).
        lk_kwargs: keyword arguments of ``pysteps.motion.lucaskanade.dense_lucaskanade``.

    Returns:
        float64 (B, 2, H, W): x (column) and y (row) displacement in pixels per frame step.
    """
    rain = _prepare(observed, valid, 1, min_input_frames=2)
    oflow = _pysteps().motion.get_method("LK")
    return np.stack([oflow(_to_dbr(sample, threshold, zero_value), **(lk_kwargs or {})) for sample in rain])


def _motion_for(rain: np.ndarray, motion, threshold: float, zero_value: float) -> np.ndarray:
    if motion is None:
        oflow = _pysteps().motion.get_method("LK")
        return np.stack([oflow(_to_dbr(sample, threshold, zero_value)) for sample in rain])
    motion = _as_numpy(motion, "motion")
    expected = (rain.shape[0], 2, *rain.shape[2:])
    if motion.shape != expected or not np.all(np.isfinite(motion)):
        raise ValueError(f"motion must be a finite (B, 2, H, W) = {expected} field, got shape {motion.shape}")
    return motion


def extrapolation_forecast(
    observed,
    valid=None,
    *,
    num_output_frames: int,
    motion=None,
    threshold: float = RAIN_THRESHOLD,
    zero_value: float = ZERO_VALUE_DBR,
) -> np.ndarray:
    """Lucas-Kanade optical flow + semi-Lagrangian extrapolation of the last frame (pysteps).

    Args:
        observed: mm/h (B, T_in, H, W), T_in >= 2, oldest first; NaN / ``valid`` False = no data.
        valid: optional bool (B, T_in, H, W).
        num_output_frames: how many future frames (one frame step apart, as the observed ones).
        motion: optional precomputed :func:`lucas_kanade_motion` (B, 2, H, W), to share it with S-PROG.
        threshold, zero_value: the dBR transform (mm/h below ``threshold`` -> ``zero_value`` dBR).

    Returns:
        float32 (B, T_out, H, W) mm/h >= 0; rain advected in from outside the grid is unknown and forecast as 0.
    """
    rain = _prepare(observed, valid, num_output_frames, min_input_frames=2)
    motion = _motion_for(rain, motion, threshold, zero_value)
    extrapolate = _pysteps().nowcasts.get_method("extrapolation")
    forecasts = []
    for sample, velocity in zip(rain, motion):
        last = _to_dbr(sample[-1], threshold, zero_value)
        last[~np.isfinite(last)] = zero_value  # pysteps' example: no data takes the no-rain value
        forecasts.append(_from_dbr(extrapolate(last, velocity, num_output_frames), threshold))
    return np.stack(forecasts)


def sprog_forecast(
    observed,
    valid=None,
    *,
    num_output_frames: int,
    motion=None,
    n_cascade_levels: int = 6,
    ar_order: int = 2,
    threshold: float = RAIN_THRESHOLD,
    zero_value: float = ZERO_VALUE_DBR,
    probmatching_method: str = "mean",
) -> np.ndarray:
    """pysteps' S-PROG nowcast (Seed 2003), in dBR, driven by the Lucas-Kanade motion of the observed frames.

    Args:
        observed: mm/h (B, T_in, H, W), T_in >= ``ar_order + 1``, oldest first; NaN / ``valid`` False = no data.
        valid: optional bool (B, T_in, H, W).
        num_output_frames: how many future frames.
        motion: optional precomputed :func:`lucas_kanade_motion` (B, 2, H, W).
        n_cascade_levels: FFT band-pass cascade levels (pysteps' default 6; its examples use 6 or 8 on
            larger grids).
        ar_order: order of the autoregressive model of each level (2, as in S-PROG).
        threshold, zero_value: the dBR transform; ``threshold`` in dBR is S-PROG's rain threshold too.
        probmatching_method: ``"mean"`` (pysteps' S-PROG example), ``"cdf"`` or None.

    Returns:
        float32 (B, T_out, H, W) mm/h >= 0 (0 where S-PROG's domain mask, the input's no data, leaves it NaN).
        A window where S-PROG cannot fit its autoregressive model (nearly dry: "Singular matrix") gets the
        Lucas-Kanade extrapolation of its last frame instead.
    """
    check_int("n_cascade_levels", n_cascade_levels)
    check_int("ar_order", ar_order)
    rain = _prepare(observed, valid, num_output_frames, min_input_frames=max(2, ar_order + 1))
    motion = _motion_for(rain, motion, threshold, zero_value)
    sprog = _pysteps().nowcasts.get_method("sprog")
    precip_thr = 10.0 * np.log10(threshold)
    forecasts = []
    for sample, velocity in zip(rain, motion):
        dbr = _to_dbr(sample[-(ar_order + 1) :], threshold, zero_value)
        try:
            with contextlib.redirect_stdout(
                io.StringIO()
            ):  # S-PROG reports its settings and progress on stdout
                forecast = sprog(
                    dbr,
                    velocity,
                    num_output_frames,
                    precip_thr=precip_thr,
                    n_cascade_levels=n_cascade_levels,
                    ar_order=ar_order,
                    decomp_method="fft",
                    bandpass_filter_method="gaussian",
                    probmatching_method=probmatching_method,
                    fft_method="numpy",
                )
        except np.linalg.LinAlgError:
            # A (nearly) dry window leaves the cascade levels without variance, so S-PROG cannot fit its AR
            # model ("Singular matrix"); with nothing to decay, its forecast is the extrapolation of the last frame.
            forecasts.append(_extrapolated(sample, velocity, num_output_frames, threshold, zero_value))
            continue
        forecasts.append(_from_dbr(np.asarray(forecast), threshold))
    return np.stack(forecasts)


def steps_forecast(
    observed,
    valid=None,
    *,
    num_output_frames: int,
    num_members: int = 20,
    seed: int | None = 0,
    motion=None,
    n_cascade_levels: int = 6,
    ar_order: int = 2,
    kmperpixel: float = 2.0,
    timestep_minutes: float = 5.0,
    threshold: float = RAIN_THRESHOLD,
    zero_value: float = ZERO_VALUE_DBR,
    noise_method: str = "nonparametric",
    vel_pert_method: str | None = "bps",
) -> np.ndarray:
    """pysteps' STEPS ensemble nowcast (Bowler et al. 2006), in dBR, driven by the Lucas-Kanade motion.

    Args:
        observed: mm/h (B, T_in, H, W), T_in >= ``ar_order + 1``, oldest first; NaN / ``valid`` False = no data
            (STEPS' domain mask).
        valid: optional bool (B, T_in, H, W).
        num_output_frames: how many future frames.
        num_members: ensemble members N (>= 1; the evaluation treats N >= 2 as an ensemble).
        seed: STEPS' seed, the same for every sample of the batch (a window's members do not depend on the
            other windows beside it); 0 by default, so an evaluation scores the same members every time; None
            draws fresh noise.
        motion: optional precomputed :func:`lucas_kanade_motion` (B, 2, H, W).
        n_cascade_levels, ar_order: STEPS' cascade levels and AR order (pysteps' defaults 6 and 2).
        kmperpixel, timestep_minutes: the grid's pixel size and frame step: they scale the velocity
            perturbations ("bps") and the growth of the "incremental" rain mask (pysteps' STEPS example: 2 km,
            5 min).
        threshold, zero_value: the dBR transform; ``threshold`` in dBR is STEPS' rain threshold too.
        noise_method, vel_pert_method: STEPS' cascade noise (default "nonparametric") and motion perturbation
            ("bps", or None for none).

    Returns:
        float32 (B, N, T_out, H, W) mm/h >= 0 (0 outside the domain mask). A window where STEPS cannot fit its
        AR model (nearly dry) gets N copies of the Lucas-Kanade extrapolation of its last frame instead. The
        probability matching is "cdf" and the rain mask "incremental" (STEPS' defaults), one worker, numpy FFT.
    """
    num_members = check_int("num_members", num_members)
    check_int("n_cascade_levels", n_cascade_levels)
    check_int("ar_order", ar_order)
    if seed is not None:
        seed = check_int("seed", seed, minimum=0)
    _check_positive(kmperpixel=kmperpixel, timestep_minutes=timestep_minutes)
    rain = _prepare(observed, valid, num_output_frames, min_input_frames=max(2, ar_order + 1))
    motion = _motion_for(rain, motion, threshold, zero_value)
    steps = _pysteps().nowcasts.get_method("steps")
    options = {
        "n_ens_members": num_members,
        "n_cascade_levels": n_cascade_levels,
        "precip_thr": 10.0 * np.log10(threshold),
        "kmperpixel": float(kmperpixel),
        "timestep": float(timestep_minutes),
        "ar_order": ar_order,
        "noise_method": noise_method,
        "vel_pert_method": vel_pert_method,
        "mask_method": "incremental",
        "probmatching_method": "cdf",
        "domain": "spatial",
        "num_workers": 1,
        "fft_method": "numpy",
        "seed": seed,
    }
    forecasts = []
    for sample, velocity in zip(rain, motion):
        dbr = _to_dbr(sample[-(ar_order + 1) :], threshold, zero_value)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # STEPS reports its settings on stdout
                members = steps(dbr, velocity, num_output_frames, **options)
        except np.linalg.LinAlgError:  # nearly dry: as in sprog_forecast, the extrapolation, N times
            members = None
        if members is None:
            fallback = _extrapolated(sample, velocity, num_output_frames, threshold, zero_value)
            forecasts.append(np.repeat(fallback[None], num_members, axis=0))
        else:
            forecasts.append(_from_dbr(np.asarray(members), threshold))
    return np.stack(forecasts)


def anvil_forecast(
    observed,
    valid=None,
    *,
    num_output_frames: int,
    motion=None,
    n_cascade_levels: int = 6,
    ar_order: int = 2,
    ar_window_radius: int | None = 50,
    threshold: float = RAIN_THRESHOLD,
    zero_value: float = ZERO_VALUE_DBR,
) -> np.ndarray:
    """pysteps' ANVIL nowcast (Pulkkinen et al. 2020), in rain rate, driven by the Lucas-Kanade motion.

    ANVIL models the time derivative of the rain-rate field (an ARI(p, 1) model per cascade level, localized in
    windows of ``ar_window_radius`` pixels) and works in mm/h directly, not in dBR; only the motion field is
    taken in dBR, as for the other baselines.

    Args:
        observed: mm/h (B, T_in, H, W), T_in >= ``ar_order + 2``, oldest first; NaN / ``valid`` False = no data
            (left NaN: ANVIL takes its domain mask from them).
        valid: optional bool (B, T_in, H, W).
        num_output_frames: how many future frames.
        motion: optional precomputed :func:`lucas_kanade_motion` (B, 2, H, W).
        n_cascade_levels, ar_order, ar_window_radius: ANVIL's (pysteps' defaults 6, 2 and 50; None: no
            localization).
        threshold, zero_value: the dBR transform of the motion field; below ``threshold`` mm/h the forecast is 0.

    Returns:
        float32 (B, T_out, H, W) mm/h >= 0 (0 outside the domain mask). A window where ANVIL cannot fit its
        model (nearly dry) gets the Lucas-Kanade extrapolation of its last frame instead.
    """
    check_int("n_cascade_levels", n_cascade_levels)
    check_int("ar_order", ar_order)
    if ar_window_radius is not None:
        check_int("ar_window_radius", ar_window_radius)
    rain = _prepare(observed, valid, num_output_frames, min_input_frames=ar_order + 2)
    motion = _motion_for(rain, motion, threshold, zero_value)
    anvil = _pysteps().nowcasts.get_method("anvil")
    forecasts = []
    for sample, velocity in zip(rain, motion):
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # ANVIL reports its settings on stdout
                forecast = anvil(
                    sample[-(ar_order + 2) :],
                    velocity,
                    num_output_frames,
                    n_cascade_levels=n_cascade_levels,
                    ar_order=ar_order,
                    ar_window_radius=ar_window_radius,
                    fft_method="numpy",
                    num_workers=1,
                )
        except np.linalg.LinAlgError:
            forecasts.append(_extrapolated(sample, velocity, num_output_frames, threshold, zero_value))
            continue
        forecast = np.nan_to_num(np.asarray(forecast, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        forecasts.append(np.where(forecast >= threshold, forecast, 0.0).astype(np.float32))
    return np.stack(forecasts)


def steps_forecaster(
    num_members: int = 20,
    *,
    kmperpixel: float | None = None,
    timestep_minutes: float | None = None,
    seed: int | None = 0,
):
    """:func:`steps_forecast` with ``num_members`` members and the grid's pixel size and time step (None: the
    function's defaults), as a forecaster of the evaluation (its ``num_members`` and ``min_input_frames`` attributes
    set): the ensemble an ensemble model is scored beside, with the same member count."""
    num_members = check_int("num_members", num_members, minimum=2)
    options = {"num_members": num_members, "seed": seed}
    if kmperpixel is not None:
        options["kmperpixel"] = kmperpixel
    if timestep_minutes is not None:
        options["timestep_minutes"] = timestep_minutes
    _check_positive(**{key: options[key] for key in ("kmperpixel", "timestep_minutes") if key in options})
    forecaster = functools.partial(steps_forecast, **options)
    forecaster.num_members = num_members
    forecaster.min_input_frames = steps_forecast.min_input_frames
    return forecaster


def steps_beside(model_forecaster_, config, timestep_minutes: float | None = None):
    """The STEPS a model is scored beside (:func:`steps_forecaster`): as many members as the model's ensemble
    forecaster (:func:`model_forecaster`; 20 for a single-forecast model), on the model's pixel size and time step
    (``config.pixel_size``, ``config.time_step``; else ``timestep_minutes``; else STEPS' defaults)."""
    pixel_size = getattr(config, "pixel_size", None)
    return steps_forecaster(
        getattr(model_forecaster_, "num_members", 20),
        kmperpixel=None if pixel_size is None else pixel_size / 1000.0,
        timestep_minutes=getattr(config, "time_step", None) or timestep_minutes,
    )


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not np.isfinite(value)
            or value <= 0
        ):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _extrapolated(
    sample, velocity, num_output_frames: int, threshold: float, zero_value: float
) -> np.ndarray:
    """The Lucas-Kanade extrapolation (T_out, H, W) of one sample's (T_in, H, W) last frame: the fallback of the
    AR-model baselines on (nearly) dry windows."""
    return extrapolation_forecast(
        sample[None],
        num_output_frames=num_output_frames,
        motion=velocity[None],
        threshold=threshold,
        zero_value=zero_value,
    )[0]


persistence_forecast.min_input_frames = 1
extrapolation_forecast.min_input_frames = 2  # a motion field needs two frames
sprog_forecast.min_input_frames = 3  # the AR(2) model of its default ar_order=2
steps_forecast.min_input_frames = 3  # the AR(2) model of its default ar_order=2
# its default: the evaluation scores its (B, N, T, H, W) members as an ensemble
steps_forecast.num_members = 20
anvil_forecast.min_input_frames = 4  # ar_order + 2: its ARI(2, 1) model differences the frames


def min_input_frames(forecaster) -> int:
    """The observed frames ``forecaster`` needs at least: its ``min_input_frames`` attribute (1 without one)."""
    return int(getattr(forecaster, "min_input_frames", 1))


def get_baseline(name: str) -> Callable[..., np.ndarray]:
    """The forecaster called ``name``: "persistence", "extrapolation" (alias "lucas_kanade"), "sprog", "steps"
    (an ensemble: (B, N, T, H, W)) or "anvil"."""
    functions = {
        "persistence": persistence_forecast,
        "extrapolation": extrapolation_forecast,
        "sprog": sprog_forecast,
        "steps": steps_forecast,
        "anvil": anvil_forecast,
    }
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in functions:
        names = ", ".join(repr(n) for n in (*BASELINE_NAMES, *_ALIASES))
        raise ValueError(f"unknown baseline {name!r}; expected one of {names}")
    return functions[key]


class _SharedMotion:
    """The Lucas-Kanade motion of the last ``(observed, valid)`` pair seen (compared by identity), so that the
    optical-flow baselines called one after the other on the same batch compute it once."""

    def __init__(self):
        self._key: tuple = (None, None)
        self._motion = None

    def __call__(self, observed, valid) -> np.ndarray:
        if self._key[0] is not observed or self._key[1] is not valid:
            self._motion = lucas_kanade_motion(observed, valid)
            self._key = (observed, valid)  # holding the arrays keeps their identities from being reused
        return self._motion


def _with_motion(function, shared: _SharedMotion):
    @functools.wraps(function)
    def forecaster(observed, valid=None, *, num_output_frames: int, **kwargs):
        if "motion" not in kwargs:
            _prepare(
                observed, valid, num_output_frames, min_input_frames=2
            )  # errors name the forecaster's input
            kwargs["motion"] = shared(observed, valid)
        return function(observed, valid, num_output_frames=num_output_frames, **kwargs)

    return forecaster


def get_baselines(names: Iterable[str], *, share_motion: bool = True) -> dict[str, Callable[..., np.ndarray]]:
    """``{name: forecaster}`` for several baselines (see :func:`get_baseline`).

    With ``share_motion`` the optical-flow ones (extrapolation, S-PROG, STEPS, ANVIL) compute the Lucas-Kanade motion field of
    a batch once between them: called in turn on the same ``observed`` object (as the evaluation does), the
    second reuses the first's field. Forecasts are unchanged; only the time differs.
    """
    names = [names] if isinstance(names, str) else list(names)
    functions = {name: get_baseline(name) for name in names}  # unknown names fail here
    flow = [name for name, function in functions.items() if function is not persistence_forecast]
    if share_motion and len(flow) > 1:
        shared = _SharedMotion()
        functions.update({name: _with_motion(functions[name], shared) for name in flow})
    return functions


def model_forecaster(
    model, *, no_data_value: float = 0.0, autocast=None, num_members: int | None = None, seed=0
):
    """``forecaster(observed, valid=None, *, num_output_frames)`` of :mod:`bidirectional_conv_lstm.nowcasting.baselines` for a rain-rate
    model: mm/h in, mm/h out (``no_data_value`` where the last observed frame has no data, 0 as the baselines), any
    H x W (``forecast_rain_rate`` pads to the patch size and crops back).
    ``autocast``: a context-manager factory the model runs under (``accelerator.autocast``, so a run's bf16 / fp16
    applies to its test forecasts as to its validation); None runs in the model's dtype.

    An ensemble model (``config.ensemble_noise_channels > 0``) gives an ensemble forecaster: ``num_members``
    members (``config.ensemble_members`` by default), (B, N, T_out, H, W), drawn with ``seed`` (the same members
    every run), with the ``num_members`` attribute the evaluation reads and ``deterministic(members)``, the model's
    ``config.ensemble_product`` of them. ``num_members=1`` forecasts one member (B, T_out, H, W).

    Raises:
        ValueError: the model is no one-channel rain-rate model, or ``num_members`` > 1 for a model without noise
            (checked here, before any forecast).
    """
    config = model.config
    if config.rain_rate_transform is None or config.num_channels != 1:
        raise ValueError(
            "the model must be a rain-rate model (config.rain_rate_transform set, num_channels=1) to forecast "
            f"rain-rate windows, got rain_rate_transform={config.rain_rate_transform!r}, "
            f"num_channels={config.num_channels}"
        )
    ensemble = bool(getattr(config, "ensemble_noise_channels", 0))
    if num_members is None:
        num_members = config.ensemble_members if ensemble else 1
    num_members = check_int("num_members", num_members)
    if num_members > 1 and not ensemble:
        raise ValueError(
            f"num_members={num_members} needs an ensemble model (config.ensemble_noise_channels > 0); this model "
            "has no noise"
        )
    members = num_members if num_members > 1 else None

    def forecaster(observed, valid=None, *, num_output_frames: int):
        with autocast() if autocast is not None else contextlib.nullcontext():
            return model.forecast_rain_rate(
                observed,
                valid,
                num_output_frames=num_output_frames,
                no_data_value=no_data_value,
                num_members=members,
                seed=seed if members else None,
            )

    forecaster.min_input_frames = 1
    if members:
        forecaster.num_members = members
        forecaster.deterministic = functools.partial(ensemble_product, product=config.ensemble_product)
    return forecaster
