"""Data for frame prediction: generated Moving MNIST, loaders for real frame data, and the batch collator.

Every dataset here has a ``frames`` column, one sequence per row, (T, C, H, W), stored as uint8 (or float32 in
[0, 1]) and numpy formatted (``datasets`` reads integer arrays as int64); :class:`FramePredictionCollator` turns
rows into float32 ``pixel_values`` / ``labels`` batches.
"""

from ._cache import default_cache_dir
from .collate import FramePredictionCollator, frames_to_float
from .digits import load_bundled_digits, load_digit_pools, read_idx_images
from .loaders import load_frames_dataset, load_frames_folder, load_moving_mnist_test_file
from .moving_mnist import (
    MovingMNISTConfig,
    generate_moving_mnist,
    iter_moving_mnist,
    load_moving_mnist,
    moving_mnist_trajectories,
)
from .statistics import mean_pixel_value

__all__ = [
    "FramePredictionCollator",
    "MovingMNISTConfig",
    "default_cache_dir",
    "frames_to_float",
    "generate_moving_mnist",
    "iter_moving_mnist",
    "load_bundled_digits",
    "load_digit_pools",
    "load_frames_dataset",
    "load_frames_folder",
    "load_moving_mnist",
    "load_moving_mnist_test_file",
    "mean_pixel_value",
    "moving_mnist_trajectories",
    "read_idx_images",
]
