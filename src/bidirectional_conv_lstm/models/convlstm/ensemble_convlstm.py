"""Ensembles from one ConvLSTM: the noise injection that makes members differ, and what is made of the members.

- :class:`NoiseInjection` (``config.ensemble_noise_channels > 0``): at every forecast step a new standard-normal
  tensor ``(B, K, h, w)`` on the forecaster's patch grid goes through a 3x3 convolution whose output is added to the
  input gates of the first forecaster layer. Each draw of the noise is one member; trained with a fair CRPS over a
  few members per window (``losses_convlstm.almost_fair_crps``), the members learn to spread as the future does.
- :func:`repeat_members`: a batch's tensors repeated member by member (the encoder runs once; its states are
  repeated for the members).
- :func:`ensemble_product`: one deterministic field from members (the mean, the median or the probability-matched
  mean); :func:`exceedance_probability`: the fraction of members at or above rain-rate thresholds.

This file travels with ``push_to_hub`` as remote code (``modeling_convlstm.py`` and ``forecasting_convlstm.py``
import it relatively): it imports only torch and its siblings.
"""

import math

import torch
from torch import nn

from .configuration_convlstm import ENSEMBLE_PRODUCTS

__all__ = [
    "ENSEMBLE_PRODUCTS",
    "NOISE_INIT_STD",
    "NoiseInjection",
    "check_thresholds",
    "ensemble_product",
    "exceedance_probability",
    "member_fractions",
    "probability_matched_mean",
    "repeat_members",
]

NOISE_INIT_STD = 0.02  # the noise convolution's initial weights: members start close together


class NoiseInjection(nn.Module):
    """Standard-normal noise on the patch grid through a 3x3 convolution, for the first forecaster layer's gates.

    Args:
        noise_channels: `K`, the channels of the noise drawn at each step.
        gate_channels: the channels of the gates it is added to (`4 * hidden_sizes[0]`).

    `forward(noise (B, K, h, w)) -> (B, gate_channels, h, w)`; :meth:`draw` draws the noise. The convolution
    starts at normal(0, `NOISE_INIT_STD`) weights and zero bias (`ConvLSTMPreTrainedModel._init_weights`).
    """

    def __init__(self, noise_channels: int, gate_channels: int):
        super().__init__()
        self.noise_channels = noise_channels
        self.conv = nn.Conv2d(noise_channels, gate_channels, 3, padding=1)

    def draw(
        self, batch: int, height: int, width: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Standard-normal noise `(batch, K, height, width)` on the convolution's device, in float32.

        With a `generator`, it is drawn on the generator's device and moved to the convolution's (a CPU generator
        gives the same noise whatever the model's device); without one, from torch's global generator of the
        convolution's device."""
        shape = (batch, self.noise_channels, height, width)
        device = self.conv.weight.device
        if generator is None:
            return torch.randn(shape, device=device)
        return torch.randn(shape, generator=generator, device=generator.device).to(device)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.conv(noise.to(self.conv.weight.dtype))

    def extra_repr(self) -> str:
        return f"noise_channels={self.noise_channels}"


def repeat_members(tensor: torch.Tensor, count: int, dim: int = 0) -> torch.Tensor:
    """`tensor` with each entry of the batch axis `dim` repeated `count` times in a row: `(B, ...)` -> `(B * count,
    ...)`, sample `b`'s members at `b * count ... b * count + count - 1` (so `.unflatten(dim, (B, count))` gives
    `(B, count, ...)`)."""
    return tensor if count == 1 else tensor.repeat_interleave(count, dim=dim)


def median_of_members(members: torch.Tensor) -> torch.Tensor:
    """The median over dim 1 of `(B, N, ...)`, the mean of the two middle values for an even `N`."""
    ordered = members.sort(dim=1).values
    count = members.shape[1]
    return (ordered[:, (count - 1) // 2] + ordered[:, count // 2]) / 2


def probability_matched_mean(members: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """The probability-matched ensemble mean (Ebert 2001, Mon. Wea. Rev. 129, 2461-2480), frame by frame.

    The members' mean gives the pattern, the pooled members give the values: in each frame `(b, t)` with `P` valid
    pixels, the `N * P` members' values there are sorted ascending (`v_0 <= ... <= v_{NP-1}`), every `N`-th value is
    kept, starting at `N // 2` (`v_{N // 2}, v_{N + N // 2}, ...`: `P` values, the pooled distribution subsampled),
    and the pixel whose mean is the `k`-th smallest (ties in pixel order) gets the `k`-th of them. The mean keeps
    where it rains and how much relative to elsewhere; the pooled values restore the intensities a mean smooths
    away.

    Args:
        members: `(B, N, T, H, W)` float, finite where valid.
        valid: optional bool, broadcastable to `(B, T, H, W)`: the pixels that count (others keep the plain mean).

    Returns:
        `(B, T, H, W)`, `members`' dtype.
    """
    count = members.shape[1]
    mean = members.mean(dim=1)
    valid = torch.ones_like(mean, dtype=torch.bool) if valid is None else valid.expand_as(mean)
    matched = mean.clone()
    for b in range(mean.shape[0]):
        for t in range(mean.shape[1]):
            keep = valid[b, t]
            if not bool(keep.any()):
                continue
            pooled = members[b, :, t][:, keep].flatten().sort().values
            order = mean[b, t][keep].argsort(stable=True)
            frame = torch.empty_like(order, dtype=members.dtype)
            frame[order] = pooled[count // 2 :: count]
            matched[b, t][keep] = frame
    return matched


def ensemble_product(members: torch.Tensor, product: str, valid: torch.Tensor | None = None) -> torch.Tensor:
    """One field from `(B, N, T, H, W)` members: `product` `"mean"`, `"median"` (:func:`median_of_members`) or
    `"probability_matched_mean"` (:func:`probability_matched_mean`, over the `valid` pixels). Returns `(B, T, H,
    W)`."""
    if product == "mean":
        return members.mean(dim=1)
    if product == "median":
        return median_of_members(members)
    if product == "probability_matched_mean":
        return probability_matched_mean(members, valid)
    raise ValueError(f"product must be one of {ENSEMBLE_PRODUCTS}, got {product!r}")


def check_thresholds(thresholds) -> list[float]:
    """`thresholds` as a list of floats, once it is a non-empty sequence of strictly increasing finite numbers > 0
    (rain rates in mm/h); a `ValueError` naming it otherwise."""
    try:
        values = [float(value) for value in thresholds]
    except (TypeError, ValueError):
        values = None
    if (
        isinstance(thresholds, (str, bytes))
        or not values
        or not all(math.isfinite(value) and value > 0 for value in values)
        or any(high <= low for low, high in zip(values, values[1:]))
    ):
        raise ValueError(
            f"thresholds must be a non-empty sequence of strictly increasing rain rates > 0 (mm/h), got {thresholds!r}"
        )
    return values


def member_fractions(members: torch.Tensor, levels) -> torch.Tensor:
    """The one count of members at or above levels: the fraction of the members (dim -4 of `members`, `(..., N, T,
    H, W)`) at or above each of `levels` (checked floats), `(..., K, T, H, W)` in `members`' floating dtype
    (float32 for others). NaN members count as below every level. One level at a time: no `(..., N, K, ...)`
    buffer."""
    dtype = members.dtype if members.is_floating_point() else torch.float32
    fractions = [(members >= level).to(dtype).mean(dim=-4) for level in levels]
    return torch.stack(fractions, dim=-4)


def exceedance_probability(members: torch.Tensor, thresholds) -> torch.Tensor:
    """The fraction of members at or above each threshold: `(B, N, T, H, W)` -> `(B, K, T, H, W)` in `[0, 1]`
    (float32 members: float32), non-increasing in the threshold (`thresholds`: see :func:`check_thresholds`). NaN
    members count as below every threshold; masking no-data pixels is the caller's job."""
    return member_fractions(members, check_thresholds(thresholds))
