"""The stochastic model behind :mod:`~bidirectional_conv_lstm.data.rain.synthetic` (its docstring describes it):
AR(1) power-law Fourier noise, semi-Lagrangian advection by smooth motion, thresholding to log-normal rain.

Everything works on a chunk of ``n`` sequences at once (float32 torch tensors, scipy's FFT).
"""

from __future__ import annotations

import dataclasses
import math
from statistics import NormalDist

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F

from ...models.convlstm.argument_checks import check_int

_COARSE_STEP = 8  # pixels between the points where back-trajectories are integrated
_LIFETIME_WAVELENGTH = 64.0  # pixels: the wavelength whose e-folding time is `lifetime`
# The stream function uses the wavevectors with 1 <= |k| <= 2 (one of each +-k pair), in cycles per noise grid.
_MOTION_MODES = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2))


@dataclasses.dataclass(frozen=True)
class RainFieldParameters:
    """The generator's parameters (see :func:`~bidirectional_conv_lstm.data.generate_synthetic_rain`), checked."""

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
        check_int("num_frames", self.num_frames, minimum=1)
        check_int("size", self.size, minimum=8)
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


def noise_grid_size(params: RainFieldParameters) -> int:
    # A back-trajectory moves at most about (1 + 2 x motion_perturbation) x speed x (T - 1) pixels along an axis
    # (1.50 at the defaults over 2,000 sequences); a noise grid that much larger than the frame keeps rain that
    # left the frame from wrapping around into it (past the bound, a thin strip would).
    reach = params.speed_range[1] * (1 + 2 * params.motion_perturbation) * (params.num_frames - 1)
    return _fft_size(params.size + math.ceil(reach) + 2)


def sequence_draws(seed: int, index: int, params: RainFieldParameters) -> tuple:
    """One sequence's motion parameters and the torch generator of its Fourier innovations."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    speed = rng.uniform(*params.speed_range)
    direction = rng.uniform(0, 2 * math.pi)
    mode_amplitudes = rng.standard_normal(len(_MOTION_MODES))
    mode_phases = rng.uniform(0, 2 * math.pi, len(_MOTION_MODES))
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    return speed, direction, mode_amplitudes, mode_phases, generator


def _spectral_filters(
    params: RainFieldParameters, noise_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


def _motion_fields(draws, params: RainFieldParameters, noise_size: int) -> tuple[np.ndarray, ...]:
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


def step_motion(draws, params: RainFieldParameters, noise_size: int) -> np.ndarray:
    """Each pixel's displacement over one frame step, the same at every step (the motion is constant in time):
    float32 (n, 2, size, size), pixels per frame, x then y.

    Frame ``t`` at ``x`` is frame ``t - 1`` at ``x - d(x)`` (up to the noise's own evolution), with the midpoint
    step of the back-trajectories, ``d(x) = V(x - V(x) / 2)``.
    """
    motion = _motion_fields(draws, params, noise_size)
    axis = np.arange(params.size, dtype=np.float64)
    grid_y, grid_x = np.meshgrid(axis, axis, indexing="ij")
    position = np.broadcast_to(np.stack([grid_x.ravel(), grid_y.ravel()]), (len(draws), 2, params.size**2))
    step = _velocity(position - _velocity(position, motion, noise_size) / 2, motion, noise_size)
    return step.reshape(len(draws), 2, params.size, params.size).astype(np.float32)


def _interpolation_matrix(size: int, count: int) -> torch.Tensor:
    """(size, count) float32: bilinear weights from ``count`` points spanning [0, size - 1] to every pixel."""
    coordinate = np.arange(size) * (count - 1) / (size - 1)
    left = np.minimum(np.floor(coordinate).astype(np.int64), count - 2)
    weight = coordinate - left
    matrix = np.zeros((size, count), dtype=np.float32)
    matrix[np.arange(size), left] = 1 - weight
    matrix[np.arange(size), left + 1] += weight
    return torch.from_numpy(matrix)


def _back_trajectories(motion, params: RainFieldParameters, noise_size: int) -> tuple[torch.Tensor, int]:
    """Sampling positions of every frame's pixels, integrated on a coarse grid (the motion is smooth).

    Returns:
        ``(coarse, extent)``: float32 (n, T, c, c, 2), the (x, y) back-trajectory positions of a ``c x c`` grid of
        points spanning the frame, each sequence shifted by a constant so that they are >= 0 (the noise is
        stationary, so where its window starts is arbitrary); ``extent`` the grid size they need (> their max).
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
    coarse = np.stack(positions, 1)  # (n, T, 2, c * c)
    coarse -= coarse.min(axis=(1, 3), keepdims=True)
    extent = math.floor(coarse.max()) + 2
    coarse = coarse.reshape(n, params.num_frames, 2, count, count).transpose(0, 1, 3, 4, 2)
    return torch.from_numpy(np.ascontiguousarray(coarse, dtype=np.float32)), extent


def sample_periodic(noise: torch.Tensor, positions: torch.Tensor, extent: int) -> torch.Tensor:
    """Bilinear samples of periodic fields at arbitrary positions.

    Args:
        noise: float32 (n, S, S), one period of each field.
        positions: float32 (n, H, W, 2), (x, y) in pixels, in [0, extent - 1).
        extent: bounds the positions; past ``S`` the fields' periodic continuation is read (the grid is tiled).

    Returns:
        float32 (n, H, W).
    """
    size = noise.shape[-1]
    noise = noise[:, None]
    if extent > size:
        tiles = math.ceil(extent / size)
        noise = noise.repeat(1, 1, tiles, tiles)[:, :, :extent, :extent]
    extent = max(extent, size)
    grid = positions.mul(2.0 / (extent - 1)).sub_(1.0)  # grid_sample's -1 .. 1 (align_corners: pixel centres)
    return F.grid_sample(noise, grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]


def advected_gaussian_fields(draws, params: RainFieldParameters, noise_size: int) -> torch.Tensor:
    """The advected Gaussian fields, standardised per sequence: float32 (n, T, size, size)."""
    phi, innovation_weight, initial_weight = _spectral_filters(params, noise_size)
    coarse, extent = _back_trajectories(_motion_fields(draws, params, noise_size), params, noise_size)
    # Positions past the noise grid (only if the motion outruns the margin noise_grid_size allowed for) read the
    # noise's periodic continuation: rain that left the frame would re-enter it.
    grid_extent = max(extent, noise_size)
    interpolation = _interpolation_matrix(params.size, coarse.shape[2])
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
            torch.mul(
                torch.view_as_real(innovations),
                initial_weight[..., None],
                out=torch.view_as_real(coefficients),
            )
        else:
            real = torch.view_as_real(coefficients)
            real.mul_(phi[..., None]).addcmul_(torch.view_as_real(innovations), innovation_weight[..., None])
        # scipy's pocketfft is about twice as fast as torch's CPU FFT at these sizes; both are zero-copy here.
        noise = torch.from_numpy(
            scipy.fft.irfft2(
                coefficients.numpy(), s=(noise_size, noise_size), workers=torch.get_num_threads()
            )
        )
        # Bilinear upsampling of the coarse positions: along x on the coarse rows (small), then along y as one
        # (size x c) @ (c x 2 size) product per sequence.
        columns = torch.matmul(interpolation, coarse[:, t]).view(n, coarse.shape[2], -1)  # (n, c, 2 size)
        positions = torch.matmul(interpolation, columns).view(n, params.size, params.size, 2)
        fields[:, t] = sample_periodic(noise, positions, grid_extent)
    # Spatially correlated fields: every 4th pixel estimates the sequence's mean and spread just as well.
    std, mean = torch.std_mean(fields[:, :, ::4, ::4], dim=(1, 2, 3), keepdim=True)
    return fields.sub_(mean).div_(std.clamp_(min=1e-12))


def rain_from_gaussian(fields: torch.Tensor, params: RainFieldParameters) -> torch.Tensor:
    """Threshold at the wet fraction and map the wet tail to log-normal rates: float32 mm/h, same shape."""
    # Over the wet pixels P(X > E) / wet_fraction is uniform on (0, 1), so its ndtri is N(0, 1) and
    # ln R = ln(median) - sigma * ndtri(...) is normal. The upper tail keeps float32 precision at the cores; the
    # clamp keeps the rain at the edge of a wet area > 0 (about median x exp(-4.75 sigma)).
    # Gather the wet pixels by index (cheaper than boolean-mask indexing, and the CDFs only run on them).
    flat = fields.view(-1)
    wet = (flat > NormalDist().inv_cdf(1 - params.wet_fraction)).nonzero().squeeze(1)
    tail = (
        torch.special.ndtr(-flat.index_select(0, wet))
        .div_(params.wet_fraction)
        .clamp_(min=1e-30, max=1 - 1e-6)
    )
    rates = torch.special.ndtri(tail).mul_(-params.log_std_rain_rate).add_(math.log(params.median_rain_rate))
    rain = torch.zeros_like(flat).index_copy_(0, wet, rates.exp_().clamp_(max=params.max_rain_rate))
    return rain.view_as(fields)
