"""Synthetic advecting rain fields: an embedded rain-rate dataset that needs no radar archive.

Each sequence is built the way stochastic nowcasting models (S-PROG, STEPS; Seed 2003, Bowler et al. 2006)
describe radar rain, vectorised over sequences (scipy's FFT, torch's ``grid_sample``):

1. **Power-law noise in a Lagrangian frame.** Fourier coefficients ``F_t(k)`` on a periodic ``S x S`` grid follow
   an AR(1) process in time, ``F_t = phi(k) F_{t-1} + sqrt(1 - phi(k)^2) eps_t`` (``eps`` white, unit variance),
   and the field is ``L_t = irfft2(|k|^(spectral_slope / 2) F_t)``, so its power spectrum falls as
   ``|k|^spectral_slope`` (about -3 for radar rain). The lag-1 correlation depends on scale as in S-PROG:
   ``phi(k) = exp(-1 / tau)`` with a lifetime ``tau`` proportional to the wavelength (``lifetime`` frames at 64
   pixels), so small structures decorrelate within a few frames while the large ones persist.
2. **Advection.** A smooth motion field per sequence, constant in time: a uniform velocity (speed drawn in
   ``speed_range`` pixels per frame, direction uniform) plus a divergence-free perturbation (a stream function of
   the lowest Fourier modes; RMS ``motion_perturbation`` times the speed). Frame ``t`` samples the noise of time
   ``t`` at the back-trajectory of each pixel, ``E_t(x) = L_t(x_t)``, with ``x_0 = x`` and the semi-Lagrangian
   step ``x_t = x_{t-1} - V(x_{t-1} - V(x_{t-1}) / 2)`` (midpoint rule), computed on a coarse grid (the motion is
   smooth) and interpolated. Each frame is interpolated once from the un-advected noise, so advection adds no
   numerical diffusion over time. The noise grid is larger than the frames by the farthest displacement, so rain
   that leaves the frame does not wrap around into it.
3. **Rain.** ``E`` is standardised per sequence; pixels above the Gaussian quantile ``1 - wet_fraction`` rain,
   with rates mapped through the Gaussian CDF to a log-normal distribution (median ``median_rain_rate`` mm/h,
   ``log_std_rain_rate`` the standard deviation of ``ln R``), capped at ``max_rain_rate``; the rest is 0 mm/h. The
   rates therefore grow smoothly from the edge of a rain area to its cores.

Every sequence has its own random stream derived from ``(seed, index)``, so a sequence does not depend on how many
are generated with it. 1,000 sequences of 20 frames of 128 x 128 take about 22 s of CPU time on one thread
(``scripts/generate_synthetic_rain.py --benchmark 1000``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np
import torch

from ...models.convlstm.argument_checks import check_int
from ..cache import cached_build, numpy_format, write_arrow
from ..splits import SPLITS
from .fields import (
    RainFieldParameters,
    advected_gaussian_fields,
    noise_grid_size,
    rain_from_gaussian,
    sequence_draws,
    step_motion,
)
from .storage import encode_rain_rate, rain_window_features

__all__ = ["SyntheticRainConfig", "generate_synthetic_rain", "iter_synthetic_rain", "load_synthetic_rain"]

# Bump when the generated fields change for the same parameters, so old caches are not reused.
GENERATOR_VERSION = 2  # 2: the motion column
_CHUNK_SIZE = 50


def iter_synthetic_rain(
    num_sequences: int,
    *,
    seed: int = 0,
    start_index: int = 0,
    chunk_size: int = _CHUNK_SIZE,
    return_noise: bool = False,
    return_motion: bool = False,
    **field_parameters,
) -> Iterator[np.ndarray] | Iterator[tuple[np.ndarray, ...]]:
    """Generate synthetic rain in chunks; the concatenated chunks equal :func:`generate_synthetic_rain`'s output.

    ``start_index`` offsets the sequences' indices (sequence ``i`` is drawn from ``(seed, start_index + i)``).
    Other keyword arguments: as :func:`generate_synthetic_rain`.

    Yields:
        float32 arrays (n, T, H, W) in mm/h with n <= chunk_size; with ``return_noise`` and / or
        ``return_motion``, tuples ``(rain, noise, motion)`` of those asked for: ``noise`` the standardised
        advected Gaussian field the rain was thresholded from, ``motion`` float32 (n, 2, H, W) each pixel's
        displacement per frame (x then y; frame ``t`` at ``x`` is frame ``t - 1`` at ``x - motion(x)``).
    """
    check_int("num_sequences", num_sequences, minimum=0)
    check_int("seed", seed, minimum=0)
    check_int("start_index", start_index, minimum=0)
    check_int("chunk_size", chunk_size, minimum=1)
    known = {field.name for field in dataclasses.fields(RainFieldParameters)}
    unknown = sorted(set(field_parameters) - known)
    if unknown:
        raise TypeError(f"iter_synthetic_rain got unknown parameters {unknown}; known: {sorted(known)}")
    params = RainFieldParameters(**field_parameters)
    # Checked above, generated lazily below: bad arguments raise at the call, not at the first chunk.
    return _chunks(num_sequences, seed, start_index, chunk_size, return_noise, return_motion, params)


def _chunks(num_sequences, seed, start_index, chunk_size, return_noise, return_motion, params):
    noise_size = noise_grid_size(params)
    for start in range(0, num_sequences, chunk_size):
        indices = range(start_index + start, start_index + min(start + chunk_size, num_sequences))
        # Not around the yield: the caller's code between chunks must not run in inference mode.
        with torch.inference_mode():
            draws = [sequence_draws(seed, index, params) for index in indices]
            fields = advected_gaussian_fields(draws, params, noise_size)
            rain = rain_from_gaussian(fields, params).numpy()
        extras = [fields.numpy()] if return_noise else []
        if return_motion:
            extras.append(step_motion(draws, params, noise_size))
        yield (rain, *extras) if extras else rain


def generate_synthetic_rain(
    num_sequences: int,
    num_frames: int = 20,
    size: int = 128,
    seed: int = 0,
    *,
    wet_fraction: float = 0.25,
    spectral_slope: float = -3.0,
    lifetime: float = 40.0,
    speed_range: tuple[float, float] = (0.5, 3.0),
    motion_perturbation: float = 0.25,
    median_rain_rate: float = 1.0,
    log_std_rain_rate: float = 1.0,
    max_rain_rate: float = 200.0,
    return_noise: bool = False,
):
    """Synthetic advecting rain-rate sequences (the algorithm is in the module docstring).

    Args:
        num_sequences: N.
        num_frames: T, frames per sequence.
        size: H = W, the frame side in pixels (>= 8).
        seed: the same seed and arguments give the same sequences; sequence ``i`` depends only on ``(seed, i)``
            and the other arguments, not on ``num_sequences``.
        wet_fraction: the share of raining pixels, in (0, 1) (over each sequence's frames, approximately).
        spectral_slope: exponent of the noise's power spectrum ``P(k) ~ |k|^slope``, < 0 (radar rain: about -3).
        lifetime: e-folding time in frames of 64-pixel structures (> 0); proportional to the wavelength.
        speed_range: (min, max) speed of the uniform motion, pixels per frame.
        motion_perturbation: RMS of the divergence-free part of the motion, as a fraction of the speed.
        median_rain_rate: median rate of the wet pixels, mm/h.
        log_std_rain_rate: standard deviation of ``ln R`` over the wet pixels.
        max_rain_rate: the cap in mm/h (< 655.34, the storage limit).
        return_noise: also return the standardised advected Gaussian field the rain was thresholded from.

    Returns:
        float32 array (N, T, H, W) in mm/h: 0 where dry, > 0 where wet; with ``return_noise``, ``(rain, noise)``,
        both float32 (N, T, H, W).

    Raises:
        TypeError / ValueError: an argument of the wrong type or out of range (named in the message).
    """
    params = {
        "num_frames": num_frames,
        "size": size,
        "wet_fraction": wet_fraction,
        "spectral_slope": spectral_slope,
        "lifetime": lifetime,
        "speed_range": speed_range,
        "motion_perturbation": motion_perturbation,
        "median_rain_rate": median_rain_rate,
        "log_std_rain_rate": log_std_rain_rate,
        "max_rain_rate": max_rain_rate,
    }
    chunks = iter_synthetic_rain(num_sequences, seed=seed, return_noise=True, **params)
    rain = np.empty((num_sequences, num_frames, size, size), dtype=np.float32)
    noise = np.empty_like(rain) if return_noise else None
    start = 0
    for rain_chunk, noise_chunk in chunks:
        rain[start : start + len(rain_chunk)] = rain_chunk
        if noise is not None:
            noise[start : start + len(noise_chunk)] = noise_chunk
        start += len(rain_chunk)
    return (rain, noise) if return_noise else rain


@dataclasses.dataclass(frozen=True)
class SyntheticRainConfig(RainFieldParameters):
    """Parameters of the synthetic rain dataset (train / validation / test): the generator's
    (:func:`generate_synthetic_rain`, same names and defaults) plus the split sizes and the seed.

    Args:
        num_frames (`int`, *optional*, defaults to 20): frames per window.
        size (`int`, *optional*, defaults to 128): frame side in pixels.
        wet_fraction (`float`, *optional*, defaults to 0.25): share of raining pixels.
        spectral_slope (`float`, *optional*, defaults to -3.0): power-spectrum exponent of the noise.
        lifetime (`float`, *optional*, defaults to 40.0): e-folding time in frames of 64-pixel structures.
        speed_range (`tuple[float, float]`, *optional*, defaults to ``(0.5, 3.0)``): pixels per frame.
        motion_perturbation (`float`, *optional*, defaults to 0.25): RMS of the motion's divergence-free part
            as a fraction of the speed.
        median_rain_rate (`float`, *optional*, defaults to 1.0): mm/h, over wet pixels.
        log_std_rain_rate (`float`, *optional*, defaults to 1.0): standard deviation of ``ln R`` over wet pixels.
        max_rain_rate (`float`, *optional*, defaults to 200.0): cap in mm/h.
        num_train (`int`, *optional*, defaults to 1000): training windows.
        num_validation (`int`, *optional*, defaults to 100): validation windows.
        num_test (`int`, *optional*, defaults to 200): test windows.
        seed (`int`, *optional*, defaults to 0): each split has its own stream derived from it, so the
            validation and test windows do not change with ``num_train``.

    Example:
        ```python
        >>> from bidirectional_conv_lstm.data import SyntheticRainConfig, load_synthetic_rain
        >>> splits = load_synthetic_rain(SyntheticRainConfig(num_train=200, size=64), cache_dir="data_cache")
        >>> splits["train"][0]["rain_rate"].shape  # (T, 1, H, W), uint16 in 0.01 mm/h (read as int64)
        (20, 1, 64, 64)
        ```
    """

    num_train: int = 1000
    num_validation: int = 100
    num_test: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_train", "num_validation", "num_test"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("seed", self.seed, minimum=0)
        # Plain Python values, so equal configs hash (and cache) alike whatever types they were given in.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "speed_range":
                value = tuple(float(speed) for speed in value)
            else:
                value = int(value) if field.type in ("int", int) else float(value)
            object.__setattr__(self, field.name, value)

    def split_sizes(self) -> dict[str, int]:
        """``{"train": num_train, "validation": num_validation, "test": num_test}``."""
        return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}

    def field_parameters(self) -> dict:
        """The keyword arguments of :func:`iter_synthetic_rain` / :func:`generate_synthetic_rain` (no seed)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(RainFieldParameters)}

    def to_dict(self) -> dict:
        """The fields as JSON-friendly values."""
        values = dataclasses.asdict(self)
        values["speed_range"] = list(self.speed_range)
        return values


def load_synthetic_rain(
    config: SyntheticRainConfig | None = None, cache_dir: str | os.PathLike | None = None, **overrides
) -> datasets.DatasetDict:
    """The synthetic rain windows as a ``DatasetDict`` (train / validation / test), cached on disk.

    The first call generates the splits (each with its own seed stream) and saves them with ``save_to_disk``
    under ``<cache_dir>/synthetic_rain/<hash of the parameters>/``; later calls with the same parameters load that
    folder (memory-mapped) instead.

    Args:
        config: the parameters; None for the defaults.
        cache_dir: the cache root; None for ``$BCL_CACHE`` or ``~/.cache/bidirectional_conv_lstm``.
        **overrides: fields of :class:`SyntheticRainConfig` replacing the config's (e.g. ``num_train=200``).

    Returns:
        ``DatasetDict`` with splits ``train``, ``validation``, ``test`` in the rain-window schema of
        :mod:`~bidirectional_conv_lstm.data.rain.storage`: ``rain_rate`` (T, 1, H, W) uint16 in 0.01 mm/h
        (no no-data pixels here), ``motion`` (2, H, W) float32, the true displacement of every pixel per frame
        (x then y, as ``iter_synthetic_rain(return_motion=True)`` gives it), ``event`` ``"synthetic-<index>"`` (indices unique over the three splits: train
        first, then validation, then test), ``origin`` ``""``, ``y = x = 0``; numpy formatted (``rain_rate``
        reads as int64; :func:`~bidirectional_conv_lstm.data.rain.storage.decode_rain_rate` gives mm/h).

    Raises:
        TypeError: a config of the wrong type or an unknown override. ValueError: a field out of range.
    """
    config = config if config is not None else SyntheticRainConfig()
    if not isinstance(config, SyntheticRainConfig):
        raise TypeError(f"config must be a SyntheticRainConfig or None, got {type(config).__name__}")
    known = {field.name for field in dataclasses.fields(SyntheticRainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"load_synthetic_rain got unknown parameters {unknown}; known: {sorted(known)}")
    config = dataclasses.replace(config, **overrides)
    params = {"generator_version": GENERATOR_VERSION, "config": config.to_dict()}

    def build(scratch: Path) -> datasets.DatasetDict:
        features = rain_window_features(config.num_frames, config.size, config.size, motion=True)
        splits, first_event = {}, 0
        for split_index, split in enumerate(SPLITS):
            count = config.split_sizes()[split]
            chunks = iter_synthetic_rain(
                count,
                seed=int(np.random.SeedSequence([config.seed, split_index]).generate_state(1)[0]),
                return_motion=True,
                **config.field_parameters(),
            )
            splits[split] = write_arrow(scratch / f"{split}.arrow", features, _rows(chunks, first_event))
            first_event += count
        return datasets.DatasetDict(splits)

    return numpy_format(cached_build("synthetic_rain", params, build, cache_dir))


def _rows(chunks: Iterator[tuple[np.ndarray, np.ndarray]], first_event: int) -> Iterator[dict]:
    """Column batches of the rain-window schema from chunks of float32 (n, T, H, W) mm/h and their motion."""
    event = first_event
    for rain, motion in chunks:
        n = len(rain)
        yield {
            "rain_rate": encode_rain_rate(rain[:, :, None]),
            "motion": motion,
            "event": [f"synthetic-{event + i}" for i in range(n)],
            "origin": [""] * n,
            "y": np.zeros(n, dtype=np.int32),
            "x": np.zeros(n, dtype=np.int32),
        }
        event += n
