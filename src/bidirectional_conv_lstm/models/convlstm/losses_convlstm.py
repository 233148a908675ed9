"""Training losses of the ConvLSTM frame-prediction model: plain, masked and intensity-weighted.

* ``"mse"``, ``"l1"``, ``"mse+l1"``, ``"bce"``, ``"mse+ssim"``: the image losses (see `ConvLSTMConfig.loss`).
* ``"weighted_mse"``, ``"weighted_mae"``, ``"weighted_mse+mae"``: the balanced losses of Shi et al. 2017
  ("Deep Learning for Precipitation Nowcasting: A Benchmark and A New Model", arXiv:1706.03458, B-MSE and
  B-MAE): each pixel's error is multiplied by a weight that steps up with the *target's* rain rate (1 below
  2 mm/h, then 2, 5, 10, 30 from 2, 5, 10, 30 mm/h by default), so the rare heavy rain is not drowned by the
  common drizzle and dry ground.

A rain-rate model may add ``fss_loss_weight`` times a **fractions skill score term** (:func:`fractions_skill_loss`),
``1 - FSS`` of the batch at rain-rate thresholds and window sizes (Roberts and Lean 2008), with the forecast's
events thresholded softly so the term has a gradient (Lagerquist and Ebert-Uphoff 2022, "Can we integrate spatial
verification methods into neural network loss functions for atmospheric science?"). A pixel-wise loss scores each
pixel alone; the FSS term scores the rain's coverage over neighbourhoods, as the verification does.

An ensemble model may train on :func:`almost_fair_crps`, the "almost fair" CRPS of the AIFS-CRPS work over its
members (M >= 2 per window): a score that rewards members drawn from the observation's distribution.

An advection model may add ``motion_loss_weight`` times a **motion term** (:func:`motion_loss`): the mean squared
end-point error of its motion fields against a known motion (the synthetic rain's own velocities), so the head is
told the motion instead of finding it through the warp's gradient alone.

Every loss is a mean over the *valid* pixels when a `loss_mask` is given (radar pixels with no data never
count; the model's `forward` takes it as `loss_mask`, from the collator's `labels_mask`). The error is taken in the model's output space (the rain-rate transform's space, e.g. scaled dBR), as
Shi et al. took it on radar-image pixel values; only the weights are read in mm/h, through the transform's
inverse.

This file travels with ``push_to_hub`` as remote code (``modeling_convlstm.py`` imports it relatively), so it
imports only torch.
"""

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "THRESHOLD_TOLERANCE",
    "WEIGHTED_LOSSES",
    "almost_fair_crps",
    "frame_prediction_loss",
    "fractions_skill_loss",
    "masked_mean",
    "motion_loss",
    "rain_rate_weights",
    "structural_similarity",
]

WEIGHTED_LOSSES = ("weighted_mse", "weighted_mae", "weighted_mse+mae")
THRESHOLD_TOLERANCE = 1e-4  # relative; see rain_rate_weights
# Width of the forecast's soft threshold in fractions_skill_loss, in natural-log rain rate: a forecast at
# threshold x e**0.3 (x 1.35) counts as 0.95 of an event, at threshold / 1.35 as 0.05.
FSS_SOFTNESS = 0.1


def structural_similarity(
    predictions: torch.Tensor, targets: torch.Tensor, data_range: float = 1.0
) -> torch.Tensor:
    """Differentiable SSIM (Wang et al. 2004) of each frame, equal to scikit-image's ``structural_similarity`` with its
    defaults (a 7x7 uniform window, sample covariances, K1 = 0.01, K2 = 0.03, the mean over the windows that fit
    inside the frame, channels averaged): the metric the evaluation reports, so it can be trained on.

    `predictions` and `targets` are `(..., C, H, W)`; returns `(...)` in float32 or wider. A frame smaller than 7 pixels uses the largest
    odd window that fits.
    """
    *lead, channels, height, width = predictions.shape
    window = min(7, height, width)
    window -= 1 - window % 2
    dtype = torch.promote_types(predictions.dtype, torch.float32)  # float32 at least: c1 is 1e-4
    x = predictions.reshape(-1, channels, height, width).to(dtype)
    y = targets.reshape(-1, channels, height, width).to(dtype)
    means = F.avg_pool2d(torch.cat([x, y, x * x, y * y, x * y]), window, stride=1)
    mean_x, mean_y, mean_xx, mean_yy, mean_xy = means.chunk(5)
    norm = window * window / max(window * window - 1, 1)  # sample covariance
    var_x = (mean_xx - mean_x * mean_x) * norm
    var_y = (mean_yy - mean_y * mean_y) * norm
    cov = (mean_xy - mean_x * mean_y) * norm
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / (
        (mean_x * mean_x + mean_y * mean_y + c1) * (var_x + var_y + c2)
    )
    return ssim.mean(dim=(1, 2, 3)).reshape(lead)


def rain_rate_weights(
    rain_rate: torch.Tensor, thresholds: Sequence[float], weights: Sequence[float]
) -> torch.Tensor:
    """The balanced-loss weight of each pixel from its rain rate.

    Args:
        rain_rate: float tensor of any shape, mm/h.
        thresholds: increasing rain rates (mm/h), `K` of them.
        weights: `K + 1` weights: `weights[0]` below `thresholds[0]`, `weights[k]` for
            `thresholds[k - 1] <= R < thresholds[k]`, `weights[K]` from `thresholds[K - 1]` up (`>=`, so a pixel
            exactly at 2 mm/h gets the second weight).

    A threshold is compared with a relative tolerance of :data:`THRESHOLD_TOLERANCE` (1e-4): rain stored as
    exactly 2.00 mm/h comes back from the float32 transform and its inverse as 1.9999998 or 2.0000002, and must
    count as 2 mm/h either way (far below the 0.01 mm/h storage resolution).

    Returns:
        A tensor of `rain_rate`'s shape, dtype and device.
    """
    if len(weights) != len(thresholds) + 1:
        raise ValueError(
            f"weights must have one more entry than thresholds, got {len(weights)} weights for "
            f"{len(thresholds)} thresholds"
        )
    boundaries = torch.as_tensor(list(thresholds), dtype=rain_rate.dtype, device=rain_rate.device)
    boundaries = boundaries * (1.0 - THRESHOLD_TOLERANCE)
    table = torch.as_tensor(list(weights), dtype=rain_rate.dtype, device=rain_rate.device)
    return table[torch.bucketize(rain_rate, boundaries, right=True)]


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of `values` over the elements where `mask` (bool, broadcastable to `values`) is True.

    Without a mask, the plain mean. With no True element the result is 0 (with a zero gradient), not NaN.
    """
    if mask is None:
        return values.mean()
    mask = mask.expand_as(values).to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def _window_sums(fields: torch.Tensor, window: int, outside: float) -> torch.Tensor:
    """Sums over the `window x window` neighbourhood of each pixel of `(N, 1, H, W)` fields, the outside of the
    field being `outside`; the window of pixel `i` covers `i - window // 2 ... i - window // 2 + window - 1`, as
    scipy's `uniform_filter` (and so pysteps' and the verification's FSS) places it. Separable running sums: the
    cost does not grow with the window."""
    if window == 1:
        return fields
    low, high = window // 2, window - 1 - window // 2
    padded = F.pad(fields, (low + 1, high, low + 1, high), value=outside)
    padded[..., 0, :] = 0.0
    padded[..., :, 0] = 0.0
    sums = padded.cumsum(-2)
    sums = sums[..., window:, :] - sums[..., :-window, :]
    sums = sums.cumsum(-1)
    return sums[..., window:] - sums[..., :-window]


def fractions_skill_loss(
    rain_rate: torch.Tensor,
    observed: torch.Tensor,
    *,
    thresholds: Sequence[float],
    windows: Sequence[int],
    valid: torch.Tensor | None = None,
    softness: float = FSS_SOFTNESS,
) -> torch.Tensor:
    """`1 - FSS` of a batch, averaged over `thresholds` x `windows`, differentiable in the forecast.

    The sums of the FSS are pooled over the whole batch (every sample, lead time and pixel), as the verification
    pools them, and laid out as :mod:`.verification` lays them out: the outside of the field counts as no event;
    with `valid`, a window's fraction is over its valid pixels (and the outside) and windows centred on invalid
    pixels are left out. The observed events are `observed >= threshold`; the forecast's are soft,
    `sigmoid(ln(rain_rate / threshold) / softness)`, so with a small `softness` the term is the verification's
    `1 - FSS` exactly.

    Args:
        rain_rate: the forecast in mm/h (>= 0), `(..., H, W)`, differentiable.
        observed: the observed rain rate in mm/h, `rain_rate`'s shape.
        thresholds: rain rates in mm/h (> 0); windows: window sizes in pixels (>= 1).
        valid: bool, `rain_rate`'s shape, the pixels that count.
        softness: the soft threshold's width in natural-log rain rate.

    Returns:
        A float32 scalar in `[0, 1]`; 0 when neither field has an event anywhere.
    """
    height, width = rain_rate.shape[-2:]
    forecast = rain_rate.float().reshape(-1, 1, height, width)
    observed = observed.float().reshape(-1, 1, height, width)
    counted = None if valid is None else valid.reshape(-1, 1, height, width).float()
    log_forecast = torch.log(forecast.clamp_min(0.0) + 1e-6)
    terms = []
    for threshold in thresholds:
        forecast_events = torch.sigmoid((log_forecast - math.log(threshold)) / softness)
        observed_events = (observed >= threshold * (1.0 - THRESHOLD_TOLERANCE)).float()
        if counted is not None:
            forecast_events, observed_events = forecast_events * counted, observed_events * counted
        for window in windows:
            forecast_fraction = _window_sums(forecast_events, window, 0.0)
            observed_fraction = _window_sums(observed_events, window, 0.0)
            if counted is None:
                scale = 1.0 / float(window * window)
            else:
                scale = counted / _window_sums(counted, window, 1.0).clamp_min(1.0)
            forecast_fraction, observed_fraction = forecast_fraction * scale, observed_fraction * scale
            numerator = (forecast_fraction - observed_fraction).square().sum()
            denominator = forecast_fraction.square().sum() + observed_fraction.square().sum()
            terms.append(numerator / denominator.clamp_min(1e-12))
    return torch.stack(terms).mean()


def motion_loss(motion: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared end-point error, float32: `|motion - target|^2` (pixels per step, squared, x and y summed),
    averaged over the batch, steps and the pixels where `mask` is True (all without it; 0 where none is).

    Args:
        motion: `(B, T, 2, H, W)`, the advection head's motion at each step.
        target: `(B, T, 2, H, W)`, or `(B, 2, H, W)` for a motion that holds at every step.
        mask: optional bool `(B, T, H, W)`: the pixels whose motion counts. A model leaves out the pixels with no
            rain to move there (the motion of a dry area cannot be seen in the frames, and taught there it only
            pulls the head towards the average motion, no motion at all).
    """
    if target.dim() == motion.dim() - 1:
        target = target.unsqueeze(1)
    return masked_mean((motion.float() - target.float()).square().sum(dim=2), mask)


def almost_fair_crps(
    members: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, alpha: float = 0.95
) -> torch.Tensor:
    """The "almost fair" CRPS of an ensemble (AIFS-CRPS, Lang et al. 2024, arXiv:2412.15832), the mean over the
    valid elements, differentiable in the members.

    For `M >= 2` members `x_1 .. x_M` and an observation `y`, with `eps = (1 - alpha) / M`:

        afCRPS = (1/M) sum_j |x_j - y| - (1 - eps) / (2 M (M - 1)) sum_{j != k} |x_j - x_k|

    `alpha = 0` is the plain ensemble CRPS (`1/(2 M**2)` on the pair term), `alpha = 1` the fair CRPS (Ferro
    2014): its expectation over members drawn from a distribution is that distribution's CRPS whatever `M`, so it
    rewards members that are samples of the observation's distribution (the plain ensemble CRPS rewards too little
    spread for small `M`). The fair score has degenerate minima (with 2 members, one on the observation scores 0
    wherever the other is); an `alpha` a little below 1 keeps a small weight on each member's own error, which
    removes them. The pair term is taken through the sorted members,
    `sum_{j<k} |x_j - x_k| = sum_i (2 i - M + 1) x_(i)` (`i` from 0): `O(M log M)` time and the members' memory.

    Args:
        members: `(B, M, ...)`, float, the ensemble on dim 1 (e.g. `(B, M, T, C, H, W)`).
        target: `(B, ...)`, the observation, `members`' shape without dim 1.
        mask: optional bool broadcastable to `target`: the elements that count (no-data elements of `target`,
            even NaN, are ignored and pass no gradient). No True element gives 0.
        alpha: in `[0, 1]`; 1 is the fair CRPS, AIFS-CRPS trains with 0.95.

    Returns:
        A scalar in `members`' floating dtype, float32 at least.

    Raises:
        ValueError: fewer than 2 members, shapes that do not fit, an `alpha` outside `[0, 1]`.
    """
    if members.dim() < 2 or members.shape[1] < 2:
        raise ValueError(
            f"members must hold M >= 2 ensemble members on dim 1 (B, M, ...), got shape {tuple(members.shape)}"
        )
    if target.shape != members.shape[:1] + members.shape[2:]:
        raise ValueError(
            f"target must be members' shape without the member dim 1, {tuple(members.shape[:1] + members.shape[2:])}"
            f", got {tuple(target.shape)}"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    count = members.shape[1]
    dtype = torch.promote_types(members.dtype, torch.float32)
    members, target = members.to(dtype), target.to(dtype)
    if mask is not None:
        mask = mask.to(device=target.device, dtype=torch.bool)
        target = torch.where(mask, target, torch.zeros((), dtype=dtype, device=target.device))
    skill = (members - target.unsqueeze(1)).abs().mean(1)
    weights = torch.arange(count, dtype=dtype, device=members.device) * 2.0 - (count - 1)
    weights = weights.view(1, count, *([1] * (members.dim() - 2)))
    pairs = (members.sort(dim=1).values * weights).sum(1)  # sum over j < k of |x_j - x_k|
    epsilon = (1.0 - alpha) / count
    # sum over j != k is twice the sum over j < k
    score = skill - (1.0 - epsilon) * pairs / (count * (count - 1))
    if mask is not None:
        score = torch.where(mask, score, torch.zeros((), dtype=dtype, device=score.device))
    return masked_mean(score, mask)


def _binary_cross_entropy(predictions, labels, logits, loss_mask) -> torch.Tensor:
    """The ``"bce"`` loss, exact from the pre-sigmoid `logits` when given."""
    if logits is not None:
        elementwise = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none")
    else:
        # Autocast refuses binary_cross_entropy on probabilities; the inputs are float32 already.
        with torch.autocast(predictions.device.type, enabled=False):
            elementwise = F.binary_cross_entropy(predictions, labels, reduction="none")
    return masked_mean(elementwise, loss_mask)


def _rain_rate_weighted_loss(
    predictions, labels, loss, loss_mask, rain_rate_inverse, thresholds, weights, mae_weight
) -> torch.Tensor:
    """``"weighted_mse"``, ``"weighted_mae"`` or ``"weighted_mse+mae"`` (`mae_weight` on its MAE term), each
    pixel weighted by the labels' rain rate (:func:`rain_rate_weights`)."""
    error = predictions - labels
    with torch.no_grad():
        pixel_weights = rain_rate_weights(rain_rate_inverse(labels.detach()).float(), thresholds, weights)
    squared = masked_mean(pixel_weights * error.square(), loss_mask)
    absolute = masked_mean(pixel_weights * error.abs(), loss_mask)
    return {
        "weighted_mse": squared,
        "weighted_mae": absolute,
        "weighted_mse+mae": squared + mae_weight * absolute,
    }[loss]


def frame_prediction_loss(
    predictions: torch.Tensor,
    labels: torch.Tensor,
    loss: str,
    *,
    loss_mask: torch.Tensor | None = None,
    logits: torch.Tensor | None = None,
    rain_rate_inverse: Callable[[torch.Tensor], torch.Tensor] | None = None,
    thresholds: Sequence[float] = (2.0, 5.0, 10.0, 30.0),
    weights: Sequence[float] = (1.0, 2.0, 5.0, 10.0, 30.0),
    l1_weight: float = 1.0,
    ssim_weight: float = 1.0,
    auxiliary_scale: float = 1.0,
    fss_weight: float = 0.0,
    fss_thresholds: Sequence[float] = (1.0,),
    fss_windows: Sequence[int] = (16,),
) -> torch.Tensor:
    """The training loss `loss` between `predictions` and `labels`, in float32.

    Args:
        predictions, labels: `(B, T, C, H, W)` (any equal shapes for the pixel-wise losses), model space.
        loss: one of `ConvLSTMConfig`'s losses (see the module docstring).
        loss_mask: bool, `labels`' shape: the valid pixels; the loss is their mean. For ``"mse+ssim"`` the
            invalid pixels of `predictions` are replaced by the labels', so they add no error to the SSIM term.
        logits: the pre-sigmoid logits of `predictions`, for an exact ``"bce"``.
        rain_rate_inverse: model space -> mm/h (the rain-rate transform's inverse); the weighted losses need it.
        thresholds, weights: the balanced-loss steps, see :func:`rain_rate_weights`.
        l1_weight: weight of the L1 term of ``"mse+l1"`` and of the B-MAE term of ``"weighted_mse+mae"``.
        ssim_weight: weight of the `1 - SSIM` term of ``"mse+ssim"``.
        auxiliary_scale: a factor on that second term (a training loop's ramp); 0 drops it.
        fss_weight, fss_thresholds, fss_windows: with a weight > 0, the weighted losses add `fss_weight` times
            :func:`fractions_skill_loss` at these rain rates (mm/h) and window sizes (pixels), on the forecast and
            labels in mm/h.

    Returns:
        A float32 scalar. With weights, it is `sum(w * error * valid) / sum(valid)`: the weights are not
        normalised away, so a batch with heavy rain has a larger loss, as in Shi et al. 2017.
    """
    predictions, labels = predictions.float(), labels.float()
    if loss_mask is not None:
        loss_mask = loss_mask.to(device=labels.device, dtype=torch.bool)
    if loss == "bce":
        return _binary_cross_entropy(predictions, labels, logits, loss_mask)
    if loss in WEIGHTED_LOSSES:
        if rain_rate_inverse is None:
            raise ValueError(f"loss={loss!r} needs rain_rate_inverse (the weights are read in mm/h)")
        mae_weight = auxiliary_scale * l1_weight
        total = _rain_rate_weighted_loss(
            predictions, labels, loss, loss_mask, rain_rate_inverse, thresholds, weights, mae_weight
        )
        if fss_weight:
            total = total + fss_weight * fractions_skill_loss(
                rain_rate_inverse(predictions),
                rain_rate_inverse(labels.detach()),
                thresholds=fss_thresholds,
                windows=fss_windows,
                valid=loss_mask,
            )
        return total
    error = predictions - labels
    if loss == "l1":
        return masked_mean(error.abs(), loss_mask)
    mse = masked_mean(error.square(), loss_mask)
    if loss == "mse" or not auxiliary_scale:
        return mse
    if loss == "mse+ssim":
        if loss_mask is not None:
            predictions = torch.where(loss_mask, predictions, labels)
        return mse + auxiliary_scale * ssim_weight * (1.0 - structural_similarity(predictions, labels).mean())
    if loss == "mse+l1":
        return mse + auxiliary_scale * l1_weight * masked_mean(error.abs(), loss_mask)
    raise ValueError(f"unknown loss {loss!r}")
