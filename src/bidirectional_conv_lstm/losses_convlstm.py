"""Training losses of the ConvLSTM frame-prediction model: plain, masked and intensity-weighted.

* ``"mse"``, ``"l1"``, ``"mse+l1"``, ``"bce"``, ``"mse+ssim"``: the image losses (see `ConvLSTMConfig.loss`).
* ``"weighted_mse"``, ``"weighted_mae"``, ``"weighted_mse+mae"``: the balanced losses of Shi et al. 2017
  ("Deep Learning for Precipitation Nowcasting: A Benchmark and A New Model", arXiv:1706.03458, B-MSE and
  B-MAE): each pixel's error is multiplied by a weight that steps up with the *target's* rain rate (1 below
  2 mm/h, then 2, 5, 10, 30 from 2, 5, 10, 30 mm/h by default), so the rare heavy rain is not drowned by the
  common drizzle and dry ground.

Every loss is a mean over the *valid* pixels when a `loss_mask` is given (radar pixels with no data never
count; the model's `forward` takes it as `loss_mask`, from the collator's `labels_mask`). The error is taken in the model's output space (the rain-rate transform's space, e.g. scaled dBR), as
Shi et al. took it on radar-image pixel values; only the weights are read in mm/h, through the transform's
inverse.

This file travels with ``push_to_hub`` as remote code (``modeling_convlstm.py`` imports it relatively), so it
imports only torch.
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "THRESHOLD_TOLERANCE",
    "WEIGHTED_LOSSES",
    "frame_prediction_loss",
    "masked_mean",
    "rain_rate_weights",
    "structural_similarity",
]

WEIGHTED_LOSSES = ("weighted_mse", "weighted_mae", "weighted_mse+mae")
THRESHOLD_TOLERANCE = 1e-4  # relative; see rain_rate_weights


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

    Returns:
        A float32 scalar. With weights, it is `sum(w * error * valid) / sum(valid)`: the weights are not
        normalised away, so a batch with heavy rain has a larger loss, as in Shi et al. 2017.
    """
    predictions, labels = predictions.float(), labels.float()
    if loss_mask is not None:
        loss_mask = loss_mask.to(device=labels.device, dtype=torch.bool)
    if loss == "bce":
        if logits is not None:
            elementwise = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none")
        else:
            # Autocast refuses binary_cross_entropy on probabilities; the inputs are float32 already.
            with torch.autocast(predictions.device.type, enabled=False):
                elementwise = F.binary_cross_entropy(predictions, labels, reduction="none")
        return masked_mean(elementwise, loss_mask)
    error = predictions - labels
    if loss in WEIGHTED_LOSSES:
        if rain_rate_inverse is None:
            raise ValueError(f"loss={loss!r} needs rain_rate_inverse (the weights are read in mm/h)")
        with torch.no_grad():
            pixel_weights = rain_rate_weights(rain_rate_inverse(labels.detach()).float(), thresholds, weights)
        squared = masked_mean(pixel_weights * error.square(), loss_mask)
        absolute = masked_mean(pixel_weights * error.abs(), loss_mask)
        if loss == "weighted_mse":
            return squared
        if loss == "weighted_mae":
            return absolute
        return squared + auxiliary_scale * l1_weight * absolute
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
