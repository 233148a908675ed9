"""On-disk cache of built datasets: one ``save_to_disk`` folder per set of build parameters.

A folder is published by an atomic rename once complete, so an interrupted build never leaves a half-written
cache behind and two processes building the same key at once both end up reading one complete copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import datasets
from datasets.arrow_writer import ArrowWriter

CACHE_ENV = "BCL_CACHE"
_PARAMS_FILE = "bcl_build_parameters.json"


def default_cache_dir() -> Path:
    """``$BCL_CACHE`` when set, else ``~/.cache/bidirectional_conv_lstm``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "bidirectional_conv_lstm").expanduser()


def cache_key(params: dict) -> str:
    """A 16-hex-digit hash of JSON-serialisable ``params`` (key order does not matter)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Within the block, ``datasets`` shows no progress bars (as it was before, after it)."""
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def write_arrow(path: Path, features: datasets.Features, batches: Iterable[dict]) -> datasets.Dataset:
    """Stream column batches into one Arrow file and map it as a Dataset (memory stays one batch large)."""
    with ArrowWriter(features=features, path=str(path)) as writer:
        for batch in batches:
            writer.write_batch(batch)
        writer.finalize()
    return datasets.Dataset.from_file(str(path))


def cached_build(
    kind: str,
    params: dict,
    build: Callable[[Path], datasets.Dataset | datasets.DatasetDict],
    cache_dir: str | os.PathLike | None,
) -> datasets.Dataset | datasets.DatasetDict:
    """Load ``<cache_dir>/<kind>/<key>`` if present; else build it, ``save_to_disk`` it there, and load it.

    Args:
        kind: the subfolder for this family of datasets (e.g. ``"moving_mnist"``).
        params: everything the built data depends on; hashed into the folder name and saved next to the data.
        build: called with a scratch folder (deleted afterwards) for the Arrow files it writes.
        cache_dir: the cache root; None for :func:`default_cache_dir`.

    Returns:
        the memory-mapped Dataset / DatasetDict loaded from the cache folder.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = root / kind / cache_key(params)
    built_here = False
    if not (folder / _PARAMS_FILE).is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"
        scratch = staging.with_suffix(".scratch")
        try:
            scratch.mkdir()
            built = build(scratch)
            with quiet_progress_bars():
                built.save_to_disk(str(staging), **_empty_split_shards(built))
            del built
            (staging / _PARAMS_FILE).write_text(json.dumps(params, indent=2, sort_keys=True, default=str))
            try:
                os.rename(staging, folder)
                built_here = True
            except OSError:
                # Another process published the same key first; keep theirs.
                if not (folder / _PARAMS_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
    try:
        return datasets.load_from_disk(str(folder))
    except Exception:
        if built_here:  # never leave a cache entry behind that cannot be read
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _empty_split_shards(built: datasets.Dataset | datasets.DatasetDict) -> dict:
    """``save_to_disk`` arguments giving an empty split one shard: by default ``datasets`` writes it as zero
    shards, which ``load_from_disk`` cannot read back (an IndexError)."""
    if isinstance(built, datasets.DatasetDict):
        empty = {name: 1 for name, split in built.items() if len(split) == 0}
        return {"num_shards": empty} if empty else {}
    return {"num_shards": 1} if len(built) == 0 else {}


def numpy_format(dataset):
    """Set plain numpy output on a Dataset / DatasetDict.

    ``datasets``' numpy format returns integer arrays as int64 (the storage stays uint8); the collator takes
    them as they come. ``with_format("numpy", dtype=np.uint8)`` would give uint8 arrays, but a format with
    arguments makes ``to_iterable_dataset`` (streaming, sharding) refuse the dataset, so it is not the default.
    """
    return dataset.with_format("numpy")
