"""From stored frames to model batches: uint8 (or [0, 1] float) sequences -> float32 ``pixel_values`` / ``labels``.

Works on examples from any of this package's datasets (map-style or streaming, numpy, torch or python
formatted), in DataLoader worker processes (the collator is a small picklable object), and after
``datasets.distributed.split_dataset_by_node``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..models.convlstm.argument_checks import check_int

__all__ = ["FramePredictionCollator", "frames_to_float"]


def frames_to_float(frames, *, name: str = "frames") -> torch.Tensor:
    """One sequence, or a batch of them, as float32 in [0, 1], with a channel axis.

    Args:
        frames: one sequence (T, H, W) or (T, C, H, W), or a batch (B, T, C, H, W): a numpy array, torch tensor
            or nested lists; integers in [0, 255] (divided by 255) or floats in [0, 1].
        name: how the error messages call the input.

    Returns:
        float32 tensor (T, C, H, W) (a 3-D input gets C = 1), or (B, T, C, H, W) for a 5-D input.

    Raises:
        TypeError: not numbers (bool, object, strings).
        ValueError: fewer than 3 or more than 5 dims, integers outside [0, 255], floats outside [0, 1] or not finite.
    """
    if isinstance(frames, torch.Tensor):
        tensor = frames.detach().cpu()
    else:
        array = np.asarray(frames)
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
        ):
            raise TypeError(
                f"{name} must be an array of numbers (T, H, W) or (T, C, H, W), got dtype {array.dtype} and shape {array.shape}"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(
            f"{name} must hold integers in [0, 255] or floats in [0, 1], got dtype {tensor.dtype}"
        )
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(1)
    if tensor.dim() not in (4, 5):
        raise ValueError(f"{name} must be (T, H, W) or (T, C, H, W), got shape {tuple(tensor.shape)}")
    if tensor.dtype == torch.uint8:
        return tensor.float().div_(255.0)
    if not tensor.is_floating_point():
        low, high = int(tensor.min()), int(tensor.max())
        if low < 0 or high > 255:
            raise ValueError(f"{name}: integer frames must lie in [0, 255], found values in [{low}, {high}]")
        return tensor.float().div_(255.0)
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name}: frames contain NaN or infinite values")
    low, high = float(tensor.min()), float(tensor.max())
    if low < 0 or high > 1:
        raise ValueError(f"{name}: float frames must lie in [0, 1], found values in [{low:g}, {high:g}]")
    return tensor


class FramePredictionCollator:
    """Turn sequences into ``{"pixel_values", "labels"}`` batches for frame prediction.

    Each sequence's first ``num_input_frames`` frames become the input and the next ``num_output_frames`` the
    target; longer sequences are cut, shorter ones raise. uint8 (and other integer) frames are divided by 255;
    float frames must already lie in [0, 1].

    Two ways to use it:

    - as a DataLoader ``collate_fn`` on examples ``{"frames": (T, C, H, W) or (T, H, W)}``:
      ``DataLoader(dataset, batch_size=16, collate_fn=FramePredictionCollator(10, 10))``;
    - as a ``datasets`` transform, so that indexing already gives model inputs:
      ``dataset.with_transform(collator.transform)`` (or ``set_transform``), then the default collate.

    Args:
        num_input_frames (`int`, *optional*, defaults to 10): T_in, observed frames.
        num_output_frames (`int`, *optional*, defaults to 10): T_out, frames to predict; 0 gives no ``labels``.
        frames_column (`str`, *optional*, defaults to ``"frames"``): the examples' key holding the sequence.

    Returns (from a call):
        ``pixel_values``: float32 (B, T_in, C, H, W) in [0, 1]; ``labels``: float32 (B, T_out, C, H, W).
    """

    def __init__(
        self, num_input_frames: int = 10, num_output_frames: int = 10, *, frames_column: str = "frames"
    ):
        for arg, value, minimum in (
            ("num_input_frames", num_input_frames, 1),
            ("num_output_frames", num_output_frames, 0),
        ):
            check_int(arg, value, minimum=minimum)
        self.num_input_frames = num_input_frames
        self.num_output_frames = num_output_frames
        self.frames_column = frames_column

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_input_frames={self.num_input_frames}, "
            f"num_output_frames={self.num_output_frames}, frames_column={self.frames_column!r})"
        )

    @property
    def num_frames(self) -> int:
        """T_in + T_out, the frames used from each sequence."""
        return self.num_input_frames + self.num_output_frames

    def _split(self, sequences: Sequence) -> dict[str, torch.Tensor]:
        tensors = []
        for index, frames in enumerate(sequences):
            tensor = frames_to_float(frames, name=f"{self.frames_column}[{index}]")
            if tensor.dim() != 4:
                raise ValueError(
                    f"{self.frames_column}[{index}] must be one sequence (T, H, W) or (T, C, H, W), got shape {tuple(tensor.shape)}"
                )
            if tensor.shape[0] < self.num_frames:
                raise ValueError(
                    f"{self.frames_column}[{index}] has {tensor.shape[0]} frames; num_input_frames + num_output_frames "
                    f"= {self.num_frames} are needed"
                )
            if tensors and tensor.shape[1:] != tensors[0].shape[1:]:
                raise ValueError(
                    f"{self.frames_column}[{index}] has frames of (C, H, W) {tuple(tensor.shape[1:])}, "
                    f"{self.frames_column}[0] has {tuple(tensors[0].shape[1:])}; a batch needs one frame size"
                )
            tensors.append(tensor[: self.num_frames])
        if not tensors:
            raise ValueError("cannot collate an empty batch")
        batch = torch.stack(tensors)
        output = {"pixel_values": batch[:, : self.num_input_frames].contiguous()}
        if self.num_output_frames:
            output["labels"] = batch[:, self.num_input_frames :].contiguous()
        return output

    def __call__(self, examples: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        """Collate a list of examples, each a mapping with the frames column, into one batch."""
        sequences = []
        for index, example in enumerate(examples):
            if not isinstance(example, Mapping) or self.frames_column not in example:
                keys = list(example) if isinstance(example, Mapping) else type(example).__name__
                raise ValueError(f"example {index} has no {self.frames_column!r} key (it has {keys})")
            sequences.append(example[self.frames_column])
        return self._split(sequences)

    def transform(self, batch: Mapping[str, Sequence]) -> dict[str, torch.Tensor]:
        """``datasets`` transform (``with_transform`` / ``set_transform``): a batch of columns -> model inputs.

        Returns ``{"pixel_values": float32 (B, T_in, C, H, W), "labels": float32 (B, T_out, C, H, W)}``; other
        columns are dropped.
        """
        if self.frames_column not in batch:
            raise ValueError(f"the batch has no {self.frames_column!r} column (it has {list(batch)})")
        return self._split(batch[self.frames_column])
