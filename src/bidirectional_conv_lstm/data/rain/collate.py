"""From stored rain-rate windows to model batches: mm/h -> the model's value space, with the no-data mask.

Rows come from any table in the :mod:`~bidirectional_conv_lstm.data.rain.storage` schema (radar windows, the
synthetic rain): ``rain_rate`` (T, 1, H, W) uint16 in 0.01 mm/h with 65535 = no data (``datasets``' numpy format
hands it out as int64), or float mm/h with NaN = no data (arrays a user made).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ...models.convlstm.argument_checks import check_int
from ...models.convlstm.rain_rate import RainRateTransform
from .storage import NO_DATA, decode_rain_rate

__all__ = ["RainRateCollator", "rain_rate_and_mask"]


def rain_rate_and_mask(window, *, name: str = "rain_rate") -> tuple[torch.Tensor, torch.Tensor]:
    """One stored window as ``(rain_rate, valid)``: float32 (T, 1, H, W) mm/h with 0 at no-data pixels, and bool.

    Args:
        window: (T, 1, H, W) or (T, H, W), a numpy array, tensor or nested lists: integers in the stored form
            (0.01 mm/h, 65535 = no data) or floats in mm/h (NaN = no data).
        name: how the error messages call the input.

    Raises:
        TypeError: not numbers.
        ValueError: the wrong number of dims or channels, integers outside [0, 65535], negative or infinite mm/h.
    """
    if isinstance(window, torch.Tensor):
        tensor = window.detach().cpu()
    else:
        array = np.asarray(window)
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise TypeError(f"{name} must hold numbers (stored uint16 or mm/h), got dtype {array.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must hold numbers (stored uint16 or mm/h), got dtype {tensor.dtype}")
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(1)
    if tensor.dim() != 4 or tensor.shape[1] != 1:
        raise ValueError(
            f"{name} must be one window (T, 1, H, W) or (T, H, W), got shape {tuple(tensor.shape)}"
        )
    if tensor.is_floating_point():
        rain = tensor.float()
        valid = ~torch.isnan(rain)
        known = rain[valid]
        if known.numel() and (not torch.isfinite(known).all() or known.min() < 0):
            raise ValueError(f"{name}: mm/h must be >= 0 and finite (NaN marks no data)")
        return torch.where(valid, rain, 0.0), valid
    tensor = tensor.to(torch.int64)  # uint16 tensors have no min / max
    if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) > NO_DATA):
        raise ValueError(
            f"{name}: stored rain rate must lie in [0, {NO_DATA}] (0.01 mm/h units, {NO_DATA} = no data), "
            f"found [{int(tensor.min())}, {int(tensor.max())}]"
        )
    return decode_rain_rate(tensor)


class RainRateCollator:
    """Turn rain-rate windows into model batches: ``pixel_values`` / ``labels`` in model space, the labels' valid
    mask and the rain rate in mm/h.

    Each window's first ``num_input_frames`` frames are the input and the next ``num_output_frames`` the target
    (longer windows are cut, shorter ones raise). ``transform.forward`` maps mm/h to model space.

    **No-data pixels** (stored 65535, or NaN) hold no number the network could take, so in ``pixel_values`` and
    ``labels`` they are filled with no rain, ``transform.no_rain_value`` (what 0 mm/h maps to): the network
    reads a hole in the radar as dry. ``labels_mask`` is False there so a loss (and any score) leaves them out;
    ``rain_rate`` keeps NaN there.

    Use it as a DataLoader ``collate_fn`` on rows ``{"rain_rate": ...}`` or as a ``datasets`` transform
    (``dataset.with_transform(collator.transform)``; the rain-rate transform itself is the attribute
    ``rain_rate_transform``).

    Args:
        num_input_frames (`int`): T_in, observed frames (>= 1).
        num_output_frames (`int`): T_out, frames to predict (>= 0; 0 gives no ``labels`` / ``labels_mask``).
        transform (`RainRateTransform` or `dict`): the model's transform (a dict as ``to_dict()`` writes it, e.g.
            ``config.rain_rate_transform``).
        augment (`bool`, *optional*, defaults to False): turn each window by a random quarter turn (half turns
            only for non-square tiles) and flip it left-right at random, all its frames and masks alike.
        seed (`int`, *optional*, defaults to 0): with the epoch (:meth:`set_epoch`) and the window's content, it
            decides each window's turn and flip. The draws keep no state: a window is turned the same way in the
            same epoch whichever DataLoader worker collates it, in whatever batch, and in a run resumed from a
            checkpoint, and another way in the next epoch.
        rain_rate_column (`str`, *optional*, defaults to ``"rain_rate"``): the rows' key holding the window.
        motion_column (`str`, *optional*, defaults to ``"motion"``): the rows' key holding a known motion (2, H, W)
            in pixels per frame, x then y (the synthetic rain's); rows without it give no ``target_motion``.

    Returns (from a call), for B windows of (T, 1, H, W), T = T_in + T_out:
        ``pixel_values``: float32 (B, T_in, 1, H, W), model space; ``labels``: float32 (B, T_out, 1, H, W), model
        space; ``labels_mask``: bool (B, T_out, 1, H, W), True where the labels have data; ``rain_rate``: float32
        (B, T, 1, H, W) mm/h of every frame used, NaN at no-data pixels; for rows with a motion, ``target_motion``:
        float32 (B, 2, H, W), turned and flipped with its window (the vectors too).
    """

    def __init__(
        self,
        num_input_frames: int,
        num_output_frames: int,
        transform: RainRateTransform | Mapping,
        *,
        augment: bool = False,
        seed: int = 0,
        rain_rate_column: str = "rain_rate",
        motion_column: str = "motion",
    ):
        for arg, value, minimum in (
            ("num_input_frames", num_input_frames, 1),
            ("num_output_frames", num_output_frames, 0),
            ("seed", seed, 0),
        ):
            check_int(arg, value, minimum=minimum)
        if isinstance(transform, Mapping):
            transform = RainRateTransform.from_dict(transform)
        if not isinstance(transform, RainRateTransform):
            raise TypeError(
                f"transform must be a RainRateTransform (or its to_dict()), got {type(transform).__name__}"
            )
        if not isinstance(augment, bool):
            raise TypeError(f"augment must be True or False, got {augment!r}")
        self.num_input_frames = num_input_frames
        self.num_output_frames = num_output_frames
        self.rain_rate_transform = transform
        self.augment = augment
        self.seed = seed
        self.rain_rate_column = rain_rate_column
        self.motion_column = motion_column
        self.epoch = 0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_input_frames={self.num_input_frames}, "
            f"num_output_frames={self.num_output_frames}, transform={self.rain_rate_transform!r}, "
            f"augment={self.augment}, seed={self.seed})"
        )

    @property
    def num_frames(self) -> int:
        """T_in + T_out, the frames used from each window."""
        return self.num_input_frames + self.num_output_frames

    def set_epoch(self, epoch: int) -> None:
        """The training epoch about to be drawn (the training loop calls it, as a sampler's ``set_epoch``), so
        each epoch turns the windows anew."""
        self.epoch = check_int("epoch", epoch, minimum=0)

    def _augmented(self, rain: torch.Tensor, valid: torch.Tensor, motion: torch.Tensor | None):
        content = zlib.crc32(rain.numpy().tobytes())  # the window itself (0 at no data) names its draw
        draw = int(np.random.SeedSequence([self.seed, self.epoch, content]).generate_state(1)[0])
        square = rain.shape[-1] == rain.shape[-2]
        turns = draw % 4 if square else 2 * (draw % 2)
        flip = bool(draw >> 2 & 1)
        rain, valid = (torch.rot90(x, turns, dims=(-2, -1)) for x in (rain, valid))
        if flip:
            rain, valid = rain.flip(-1), valid.flip(-1)
        if motion is not None:
            # A quarter turn takes pixel (row, col) to (W - 1 - col, row), so a vector (x, y) to (y, -x).
            motion = torch.rot90(motion, turns, dims=(-2, -1))
            for _ in range(turns):
                motion = torch.stack((motion[1], -motion[0]))
            if flip:
                motion = torch.stack((-motion[0], motion[1])).flip(-1)
        return rain, valid, motion

    def _motion(self, motion, index: int, shape: torch.Size) -> torch.Tensor:
        name = f"{self.motion_column}[{index}]"
        tensor = torch.as_tensor(np.asarray(motion, dtype=np.float32))
        if tuple(tensor.shape) != (2, *shape[-2:]):
            raise ValueError(
                f"{name} must be (2, H, W) = (2, {shape[-2]}, {shape[-1]}) pixels per frame (x then y) to match "
                f"its window, got shape {tuple(tensor.shape)}"
            )
        if not torch.isfinite(tensor).all():
            raise ValueError(
                f"{name} holds NaN or infinite values; the motion must be finite pixels per frame"
            )
        return tensor

    def _collate(self, windows: Sequence, motions: Sequence | None = None) -> dict[str, torch.Tensor]:
        rains, masks, kept_motions = [], [], []
        for index, window in enumerate(windows):
            rain, valid = rain_rate_and_mask(window, name=f"{self.rain_rate_column}[{index}]")
            if rain.shape[0] < self.num_frames:
                raise ValueError(
                    f"{self.rain_rate_column}[{index}] has {rain.shape[0]} frames; num_input_frames + "
                    f"num_output_frames = {self.num_frames} are needed"
                )
            rain, valid = rain[: self.num_frames], valid[: self.num_frames]
            motion = None if motions is None else self._motion(motions[index], index, rain.shape)
            if self.augment:
                rain, valid, motion = self._augmented(rain, valid, motion)
            if rains and rain.shape != rains[0].shape:
                raise ValueError(
                    f"{self.rain_rate_column}[{index}] has frames of {tuple(rain.shape[-2:])} pixels, "
                    f"{self.rain_rate_column}[0] has {tuple(rains[0].shape[-2:])}; a batch needs one size"
                )
            rains.append(rain)
            masks.append(valid)
            kept_motions.append(motion)
        if not rains:
            raise ValueError("cannot collate an empty batch")
        rain, valid = torch.stack(rains), torch.stack(masks)
        # rain is 0 mm/h at no-data pixels (decode_rain_rate), so the model sees no rain there (no_rain_value).
        values = self.rain_rate_transform.forward(rain)
        batch = {"pixel_values": values[:, : self.num_input_frames].contiguous()}
        if self.num_output_frames:
            batch["labels"] = values[:, self.num_input_frames :].contiguous()
            batch["labels_mask"] = valid[:, self.num_input_frames :].contiguous()
        batch["rain_rate"] = rain.masked_fill_(~valid, float("nan"))
        if motions is not None:
            batch["target_motion"] = torch.stack(kept_motions)
        return batch

    def __call__(self, examples: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        """Collate a list of rows, each a mapping with the rain-rate column, into one batch."""
        windows = []
        for index, example in enumerate(examples):
            if not isinstance(example, Mapping) or self.rain_rate_column not in example:
                keys = list(example) if isinstance(example, Mapping) else type(example).__name__
                raise ValueError(f"example {index} has no {self.rain_rate_column!r} key (it has {keys})")
            windows.append(example[self.rain_rate_column])
        with_motion = [self.motion_column in example for example in examples]
        if any(with_motion) and not all(with_motion):
            raise ValueError(
                f"examples {[i for i, has in enumerate(with_motion) if not has]} have no {self.motion_column!r} key "
                "and others have one; a batch has a motion for every window or for none"
            )
        motions = (
            [example[self.motion_column] for example in examples] if all(with_motion) and examples else None
        )
        return self._collate(windows, motions)

    def transform(self, batch: Mapping[str, Sequence]) -> dict[str, torch.Tensor]:
        """``datasets`` transform (``with_transform`` / ``set_transform``): a batch of columns -> model inputs
        (the other columns are dropped)."""
        if self.rain_rate_column not in batch:
            raise ValueError(f"the batch has no {self.rain_rate_column!r} column (it has {list(batch)})")
        return self._collate(batch[self.rain_rate_column], batch.get(self.motion_column))
