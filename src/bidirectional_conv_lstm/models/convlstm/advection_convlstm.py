"""The advection head of the ConvLSTM forecaster (``config.advection``): each predicted frame is the previous frame
moved along a motion field the network predicts, blended with the frame the network draws.

Optical-flow extrapolation beats a plain ConvLSTM on radar because it moves rain without blurring it; a ConvLSTM
that must *draw* every future pixel from patch-level states blurs it. This head lets the network move rain the way
extrapolation does (a backward, semi-Lagrangian warp of the full-resolution previous frame, ``grid_sample``) and keep
its own frame only where it does better (growth, decay, new cells), with a per-pixel gate:

    prediction = gate * drawn + (1 - gate) * warp(previous, motion)

or, with ``config.advection_warp = "origin"``, ``warp(origin, displacement)``: the last observed frame moved once
along the displacement summed over the steps so far (``displacement_k(x) = displacement_{k-1}(x - motion_k(x)) +
motion_k(x)``, the trajectory's), so the moved rain is interpolated once, not once per step.

The motion field (pixels per frame step, x then y) and the gate come from a 1x1 convolution of the forecaster's
hidden states at patch resolution; the motion is upsampled bilinearly to full resolution, the gate is un-patched
like the frame. The convolution starts at zero weights, so an untrained model moves nothing and keeps
``sigmoid(gate_bias)`` of its drawn frame: it starts as (mostly) persistence and learns the motion.

This file travels with ``push_to_hub`` as remote code (``modeling_convlstm.py`` imports it relatively): it imports
only torch.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PADDING_MODES", "AdvectionHead", "advect"]


PADDING_MODES = ("zeros", "border", "persistence")


def advect(frames: torch.Tensor, motion: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Move `frames` along `motion` by one backward (semi-Lagrangian) step: `out(x) = frames(x - motion(x))`.

    Args:
        frames: `(B, C, H, W)`.
        motion: `(B, 2, H, W)`, displacement in pixels per step, x (columns) then y (rows).
        padding_mode: what comes from outside the frame: `"zeros"` (0, e.g. no rain), `"border"` (the nearest
            edge pixel, e.g. a motion field that goes on beyond the frame) or `"persistence"` (the pixel's own
            value: where the source lies beyond the edge, nothing is known of what arrives, and the pixel keeps
            what it has, as persistence forecasts; the share of the bilinear footprint beyond the edge is taken
            from the pixel itself, so the result is continuous in the motion).

    Returns:
        `(B, C, H, W)`, bilinearly interpolated.
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    batch, _, height, width = frames.shape
    rows = torch.arange(height, device=frames.device, dtype=motion.dtype)
    cols = torch.arange(width, device=frames.device, dtype=motion.dtype)
    grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
    source_x = grid_x - motion[:, 0]
    source_y = grid_y - motion[:, 1]
    # grid_sample's normalised coordinates with align_corners=True: -1 and 1 are the first and last pixel centres.
    grid = torch.stack((2 * source_x / max(width - 1, 1) - 1, 2 * source_y / max(height - 1, 1) - 1), dim=-1)
    moved = F.grid_sample(
        frames,
        grid.to(frames.dtype),
        mode="bilinear",
        padding_mode="zeros" if padding_mode == "persistence" else padding_mode,
        align_corners=True,
    )
    if padding_mode != "persistence":
        return moved
    # The bilinear weight of the footprint's pixels inside the frame, per axis: 1 from the first pixel centre to
    # the last, falling linearly to 0 one pixel beyond either.
    inside = _inside_weight(source_x, width) * _inside_weight(source_y, height)
    return moved + (1 - inside[:, None].to(frames.dtype)) * frames


def _inside_weight(source: torch.Tensor, size: int) -> torch.Tensor:
    return (1 + source).clamp(0, 1) * (size - source).clamp(0, 1)


class AdvectionHead(nn.Module):
    """Predicts a motion field and a gate from the forecaster's features and blends the advected previous frame with
    the drawn one (see the module docstring).

    Args:
        in_channels: channels of the forecaster's features (all layers' hidden states).
        num_channels: channels of a frame.
        patch_size: the space-to-depth factor of the model.
        gate_bias: the initial gate logit: `sigmoid(gate_bias)` is the share of the drawn frame before training.

    Inputs: `features (B, in_channels, h, w)`, `previous (B, C*p*p, h, w)` and `drawn (B, C*p*p, h, w)` patches in
    `[0, 1]`, and the warp's `padding_mode` (the model passes `ConvLSTMConfig.advection_padding`). Output (see
    `forward`): the blended frame's patches `(B, C*p*p, h, w)` in `[0, 1]`, the motion, the displacement.
    """

    def __init__(
        self,
        in_channels: int,
        num_channels: int,
        patch_size: int,
        gate_bias: float = -2.0,
    ):
        super().__init__()
        self.patch_size = patch_size
        self.gate_bias = gate_bias
        self.conv = nn.Conv2d(in_channels, 2 + num_channels * patch_size**2, 1)

    def forward(
        self,
        features: torch.Tensor,
        previous: torch.Tensor,
        drawn: torch.Tensor,
        origin: torch.Tensor | None = None,
        displacement: torch.Tensor | None = None,
        padding_mode: str = "zeros",
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """`(blended frame's patches, motion, new displacement)`: the motion `(B, 2, H, W)` in pixels per step (x,
        y) at full resolution, float32. With `origin` (the last observed frame's patches) and `displacement` (the
        summed motion so far, `(B, 2, H, W)`, zeros at the first step), the origin is moved instead of `previous`
        and the new displacement is returned; without them it is None. `padding_mode`: what the frame warp brings
        in from beyond the edge, one of `PADDING_MODES` (read from the config at every call, so a fine-tuning run
        may change it)."""
        patch = self.patch_size
        out = self.conv(features.to(self.conv.weight.dtype)).float()
        motion = out[:, :2]
        if patch > 1:
            motion = F.interpolate(motion, scale_factor=patch, mode="bilinear", align_corners=False)
        gate = torch.sigmoid(F.pixel_shuffle(out[:, 2:], patch))
        if origin is None:
            warped = advect(F.pixel_shuffle(previous.float(), patch), motion, padding_mode)
        else:
            # Trajectories from beyond the frame carry on with the edge's displacement.
            displacement = advect(displacement.float(), motion, padding_mode="border") + motion
            warped = advect(F.pixel_shuffle(origin.float(), patch), displacement, padding_mode)
        blended = F.pixel_unshuffle(gate * F.pixel_shuffle(drawn.float(), patch) + (1 - gate) * warped, patch)
        return blended.to(drawn.dtype), motion, displacement
