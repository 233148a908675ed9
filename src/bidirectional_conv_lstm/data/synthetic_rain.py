"""Synthetic advecting rain fields: an embedded rain-rate dataset that needs no radar archive.

Each sequence is built the way stochastic nowcasting models (S-PROG, STEPS; Seed 2003, Bowler et al. 2006)
describe radar rain, all vectorised over sequences with torch's FFT and ``grid_sample``:

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
are generated with it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path
from statistics import NormalDist

import datasets
import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F

from ._cache import cached_build, numpy_format, write_arrow
from .rain_storage import encode_rain_rate, rain_window_features

__all__ = ["SyntheticRainConfig", "generate_synthetic_rain", "iter_synthetic_rain", "load_synthetic_rain"]

# Bump when the generated fields change for the same parameters, so old caches are not reused.
GENERATOR_VERSION = 1
SPLITS = ("train", "validation", "test")
_CHUNK_SIZE = 50
_COARSE_STEP = 8  # pixels between the points where back-trajectories are integrated
_LIFETIME_WAVELENGTH = 64.0  # pixels: the wavelength whose e-folding time is `lifetime`
# The stream function uses the wavevectors with 1 <= |k| <= 2 (one of each +-k pair), in cycles per noise grid.
_MOTION_MODES = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2))


@dataclasses.dataclass(frozen=True)
class _FieldParameters:
    num_frames: int = 20
    size: int = 128
    wet_fraction: float = 0.25
    spectral_slope: float = -3.0
    lifetime: float = 40.0
    speed_range: tuple[float, float] = (0.5, 3.0)
    motion_perturbation: float = 0.25
    median_rain_rate: float = 1.0
    log_std_rain_rate: float = 1.0
    max_rain_rate: float = 200.0

    def __post_init__(self) -> None:
        _check_int("num_frames", self.num_frames, minimum=1)
        _check_int("size", self.size, minimum=8)
        _check_number("wet_fraction", self.wet_fraction, low=0.0, high=1.0, closed=False)
        _check_number("spectral_slope", self.spectral_slope, high=0.0, closed=False)
        _check_number("lifetime", self.lifetime, low=0.0, closed=False)
        _check_number("motion_perturbation", self.motion_perturbation, low=0.0)
        _check_number("median_rain_rate", self.median_rain_rate, low=0.0, closed=False)
        _check_number("log_std_rain_rate", self.log_std_rain_rate, low=0.0, closed=False)
        _check_number("max_rain_rate", self.max_rain_rate, low=0.0, high=655.34, closed=False)
        speeds = tuple(self.speed_range) if isinstance(self.speed_range, (tuple, list)) else ()
        if len(speeds) != 2:
            raise ValueError(f"speed_range must be (min, max) in pixels per frame, got {self.speed_range!r}")
        for speed in speeds:
            _check_number("speed_range", speed, low=0.0)
        if speeds[0] > speeds[1]:
            raise ValueError(f"speed_range must be (min, max) with min <= max, got {self.speed_range!r}")
        if self.max_rain_rate <= self.median_rain_rate:
            raise ValueError(
                f"max_rain_rate ({self.max_rain_rate}) must exceed median_rain_rate ({self.median_rain_rate})"
            )


def _check_int(name: str, value, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_number(name, value, *, low=-math.inf, high=math.inf, closed=True) -> None:
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    inside = is_number and math.isfinite(value) and (low <= value <= high if closed else low < value < high)
    if not inside:
        brackets = "[]" if closed else "()"
        raise ValueError(
            f"{name} must be a finite number in {brackets[0]}{low}, {high}{brackets[1]}, got {value!r}"
        )


def _fft_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (fast FFT sizes)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _noise_size(params: _FieldParameters) -> int:
    # A back-trajectory moves at most about (1 + 2 x motion_perturbation) x speed x (T - 1) pixels along an axis
    # (1.50 at the defaults over 2,000 sequences); a noise grid that much larger than the frame keeps rain that
    # left the frame from wrapping around into it (past the bound, a thin strip would).
    reach = params.speed_range[1] * (1 + 2 * params.motion_perturbation) * (params.num_frames - 1)
    return _fft_size(params.size + math.ceil(reach) + 2)


def _sequence_draws(seed: int, index: int, params: _FieldParameters) -> tuple:
    """One sequence's motion parameters and the torch generator of its Fourier innovations."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    speed = rng.uniform(*params.speed_range)
    direction = rng.uniform(0, 2 * math.pi)
    mode_amplitudes = rng.standard_normal(len(_MOTION_MODES))
    mode_phases = rng.uniform(0, 2 * math.pi, len(_MOTION_MODES))
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    return speed, direction, mode_amplitudes, mode_phases, generator


def _spectral_filters(params: _FieldParameters, noise_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """On the rfft2 grid (S, S // 2 + 1), float32: the AR(1) coefficient ``phi``, the innovation weight
    ``|k|^(slope/2) sqrt(1 - phi^2)`` and the initial weight ``|k|^(slope/2)`` (0 at k = 0)."""
    ky = torch.fft.fftfreq(noise_size, d=1.0 / noise_size, dtype=torch.float64)[:, None]
    kx = torch.fft.rfftfreq(noise_size, d=1.0 / noise_size, dtype=torch.float64)[None, :]
    radius = torch.sqrt(kx**2 + ky**2)
    safe = radius.clamp(min=1.0)
    amplitude = torch.where(radius > 0, safe ** (params.spectral_slope / 2), 0.0)
    wavelength = noise_size / safe
    phi = torch.exp(-_LIFETIME_WAVELENGTH / (params.lifetime * wavelength))
    return phi.float(), (amplitude * torch.sqrt(1 - phi**2)).float(), amplitude.float()


def _motion_fields(draws, params: _FieldParameters, noise_size: int) -> tuple[np.ndarray, ...]:
    """Per sequence: uniform velocity (n, 2), stream-function amplitudes and phases (n, M), float64."""
    speeds = np.array([d[0] for d in draws])
    directions = np.array([d[1] for d in draws])
    amplitudes = np.stack([d[2] for d in draws])
    phases = np.stack([d[3] for d in draws])
    uniform = np.stack([speeds * np.cos(directions), speeds * np.sin(directions)], 1)
    # RMS of the perturbation speed = motion_perturbation x speed (each mode contributes a^2 |k|^2 / 2).
    wave_norms = np.hypot(*np.array(_MOTION_MODES, dtype=np.float64).T) * (2 * math.pi / noise_size)
    rms = np.sqrt(((amplitudes * wave_norms) ** 2).sum(1) / 2)
    amplitudes = amplitudes * (params.motion_perturbation * speeds / np.maximum(rms, 1e-12))[:, None]
    return uniform, amplitudes, phases


def _velocity(positions: np.ndarray, motion: tuple[np.ndarray, ...], noise_size: int) -> np.ndarray:
    """Velocity (pixels per frame) at positions (n, 2, P) (x, y): the uniform part + the curl of the stream
    function ``psi = sum_m a_m cos(k_m . x + phase_m)``, ``V = (d psi / dy, -d psi / dx)`` (divergence-free)."""
    uniform, amplitudes, phases = motion
    waves = np.array(_MOTION_MODES, dtype=np.float64) * (2 * math.pi / noise_size)  # (M, 2): (kx, ky)
    angle = np.einsum("mc,ncp->nmp", waves, positions) + phases[:, :, None]  # (n, M, P)
    weight = -amplitudes[:, :, None] * np.sin(angle)
    velocity = np.stack(
        [np.einsum("nmp,m->np", weight, waves[:, 1]), -np.einsum("nmp,m->np", weight, waves[:, 0])], 1
    )
    return velocity + uniform[:, :, None]


def _back_trajectories(motion, params: _FieldParameters, noise_size: int) -> torch.Tensor:
    """Positions x_t of every frame pixel's back-trajectory: float32 (n, T, 2, size, size) (x, y), not wrapped.

    Integrated on a coarse grid (every ``_COARSE_STEP`` pixels; the motion is smooth) and interpolated
    bilinearly to every pixel.
    """
    size, n = params.size, len(motion[0])
    count = max(2, math.ceil((size - 1) / _COARSE_STEP) + 1)
    axis = np.linspace(0, size - 1, count)
    grid_y, grid_x = np.meshgrid(axis, axis, indexing="ij")
    position = np.broadcast_to(np.stack([grid_x.ravel(), grid_y.ravel()]), (n, 2, count * count))
    positions = [position]
    for _ in range(1, params.num_frames):
        midpoint = position - _velocity(position, motion, noise_size) / 2
        position = position - _velocity(midpoint, motion, noise_size)
        positions.append(position)
    coarse = torch.from_numpy(np.stack(positions, 1).astype(np.float32))  # (n, T, 2, count^2)
    coarse = coarse.view(n * params.num_frames, 2, count, count)
    fine = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)
    return fine.view(n, params.num_frames, 2, size, size)


def _gaussian_fields(draws, params: _FieldParameters, noise_size: int) -> torch.Tensor:
    """The advected Gaussian fields, standardised per sequence: float32 (n, T, size, size)."""
    phi, innovation_weight, initial_weight = _spectral_filters(params, noise_size)
    trajectories = _back_trajectories(_motion_fields(draws, params, noise_size), params, noise_size)
    generators = [d[4] for d in draws]
    n = len(draws)
    innovations = torch.empty((n, noise_size, noise_size // 2 + 1), dtype=torch.complex64)
    fields = torch.empty((n, params.num_frames, params.size, params.size), dtype=torch.float32)
    # The recursion runs on the amplitude-weighted coefficients G_t = |k|^(slope/2) F_t (same AR(1), weighted
    # innovations), multiplied through real views: complex x real would first promote the real factor.
    coefficients = torch.empty_like(innovations)
    for t in range(params.num_frames):
        for index, generator in enumerate(generators):
            innovations[index].normal_(generator=generator)
        if t == 0:
            torch.mul(torch.view_as_real(innovations), initial_weight[..., None], out=torch.view_as_real(coefficients))
        else:
            real = torch.view_as_real(coefficients)
            real.mul_(phi[..., None]).addcmul_(torch.view_as_real(innovations), innovation_weight[..., None])
        # scipy's pocketfft is about twice as fast as torch's CPU FFT at these sizes; both are zero-copy here.
        noise = torch.from_numpy(
            scipy.fft.irfft2(coefficients.numpy(), s=(noise_size, noise_size), workers=torch.get_num_threads())
        )
        # One extra row and column (periodic copies) so bilinear sampling of wrapped positions never clips.
        noise = F.pad(noise[:, None], (0, 1, 0, 1), mode="circular")
        wrapped = torch.remainder(trajectories[:, t], noise_size).mul_(2.0 / noise_size).sub_(1.0)
        fields[:, t] = F.grid_sample(noise, wrapped.permute(0, 2, 3, 1), mode="bilinear", align_corners=True)[:, 0]
    std, mean = torch.std_mean(fields, dim=(1, 2, 3), keepdim=True)
    return fields.sub_(mean).div_(std.clamp_(min=1e-12))


def _rain_from_gaussian(fields: torch.Tensor, params: _FieldParameters) -> torch.Tensor:
    """Threshold at the wet fraction and map the wet tail to log-normal rates: float32 mm/h, same shape."""
    wet = fields > NormalDist().inv_cdf(1 - params.wet_fraction)
    # Over the wet pixels P(X > E) / wet_fraction is uniform on (0, 1), so its ndtri is N(0, 1) and
    # ln R = ln(median) - sigma * ndtri(...) is normal. The upper tail keeps float32 precision at the cores; the
    # clamp keeps the rain at the edge of a wet area > 0 (about median x exp(-4.75 sigma)).
    tail = torch.special.ndtr(-fields[wet]).div_(params.wet_fraction).clamp_(min=1e-30, max=1 - 1e-6)
    rates = torch.special.ndtri(tail).mul_(-params.log_std_rain_rate).add_(math.log(params.median_rain_rate))
    rain = torch.zeros_like(fields)
    rain[wet] = rates.exp_().clamp_(max=params.max_rain_rate)
    return rain


def iter_synthetic_rain(
    num_sequences: int,
    *,
    seed: int = 0,
    start_index: int = 0,
    chunk_size: int = _CHUNK_SIZE,
    return_noise: bool = False,
    **field_parameters,
) -> Iterator[np.ndarray] | Iterator[tuple[np.ndarray, np.ndarray]]:
    """Generate synthetic rain in chunks; the concatenated chunks equal :func:`generate_synthetic_rain`'s output.

    ``start_index`` offsets the sequences' indices (sequence ``i`` is drawn from ``(seed, start_index + i)``).
    Other keyword arguments: as :func:`generate_synthetic_rain`.

    Yields:
        float32 arrays (n, T, H, W) in mm/h with n <= chunk_size (with ``return_noise``, pairs
        ``(rain, noise)``, ``noise`` the standardised advected Gaussian field the rain was thresholded from).
    """
    _check_int("num_sequences", num_sequences, minimum=0)
    _check_int("seed", seed, minimum=0)
    _check_int("start_index", start_index, minimum=0)
    _check_int("chunk_size", chunk_size, minimum=1)
    params = _FieldParameters(**field_parameters)
    noise_size = _noise_size(params)
    with torch.inference_mode():
        for start in range(0, num_sequences, chunk_size):
            indices = range(start_index + start, start_index + min(start + chunk_size, num_sequences))
            draws = [_sequence_draws(seed, index, params) for index in indices]
            fields = _gaussian_fields(draws, params, noise_size)
            rain = _rain_from_gaussian(fields, params).numpy()
            yield (rain, fields.numpy()) if return_noise else rain


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
        size: H = W, frame side in pixels (>= 8).
        seed: the same seed and arguments give the same sequences; sequence ``i`` depends only on
            ``(seed, i)`` and the other arguments, not on ``num_sequences``.
        wet_fraction: the share of raining pixels, in (0, 1) (per sequence, over all its frames, about).
        spectral_slope: exponent of the noise's power spectrum ``P(k) ~ |k|^slope``, < 0 (radar rain: about -3).
        lifetime: e-folding time in frames of 64-pixel structures (> 0); proportional to the wavelength.
        speed_range: (min, max) speed of the uniform motion, pixels per frame.
        motion_perturbation: RMS of the divergence-free perturbation of the motion, as a fraction of the speed.
        median_rain_rate: median rate of the wet pixels, mm/h.
        log_std_rain_rate: standard deviation of ``ln R`` over the wet pixels.
        max_rain_rate: cap in mm/h (< 655.34, the storage limit).
        return_noise: also return the standardised advected Gaussian field (N, T, H, W) float32.

    Returns:
        float32 array (N, T, H, W) in mm/h: 0 where dry, > 0 where wet; or ``(rain, noise)``.

    Raises:
        TypeError / ValueError: an argument of the wrong type or out of range (named in the message).
    """
    field_parameters = {
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
    chunks = list(
        iter_synthetic_rain(num_sequences, seed=seed, return_noise=return_noise, **field_parameters)
    )
    empty = np.zeros((0, num_frames, size, size), dtype=np.float32)
    if not return_noise:
        return np.concatenate(chunks) if chunks else empty
    if not chunks:
        return empty, empty.copy()
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])

