"""Data for frame prediction: generated Moving MNIST, loaders for real frame data, and the batch collator.

Every dataset here has a ``frames`` column, one sequence per row, (T, C, H, W), stored as uint8 (or float32 in
[0, 1]) and numpy formatted (``datasets`` reads integer arrays as int64); :class:`FramePredictionCollator` turns
rows into float32 ``pixel_values`` / ``labels`` batches.

Rain-rate windows (radar archives, the generated synthetic rain) share another schema, ``rain_rate`` (T, 1, H, W)
uint16 at 0.01 mm/h (:mod:`bidirectional_conv_lstm.data.rain.storage`); :class:`RainRateCollator` turns them into model-space batches.
"""

from .cache import default_cache_dir
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
from .radar.archive import RadarSequence, read_radar_archive
from .radar.examples import EXAMPLE_EVENTS, example_radar_sources
from .radar.sources import RadarSource, list_radar_files
from .radar.windows import RadarWindowsConfig, load_radar_windows, radar_windows_info
from .rain.collate import RainRateCollator, rain_rate_and_mask
from .rain.synthetic import (
    SyntheticRainConfig,
    generate_synthetic_rain,
    iter_synthetic_rain,
    load_synthetic_rain,
)
from .splits import SPLITS
from .statistics import mean_pixel_value

__all__ = [
    "EXAMPLE_EVENTS",
    "SPLITS",
    "FramePredictionCollator",
    "MovingMNISTConfig",
    "RadarSequence",
    "RadarSource",
    "RadarWindowsConfig",
    "RainRateCollator",
    "SyntheticRainConfig",
    "default_cache_dir",
    "example_radar_sources",
    "frames_to_float",
    "generate_moving_mnist",
    "generate_synthetic_rain",
    "iter_moving_mnist",
    "iter_synthetic_rain",
    "load_bundled_digits",
    "load_digit_pools",
    "load_frames_dataset",
    "load_frames_folder",
    "load_moving_mnist",
    "list_radar_files",
    "load_moving_mnist_test_file",
    "load_radar_windows",
    "load_synthetic_rain",
    "mean_pixel_value",
    "moving_mnist_trajectories",
    "radar_windows_info",
    "rain_rate_and_mask",
    "read_radar_archive",
    "read_idx_images",
]
