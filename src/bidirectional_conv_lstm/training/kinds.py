"""Kinds of dataset the training loop can be told about: a small registry, filled by the packages that own them.

The loop trains on frames in [0, 1] by itself (Moving MNIST, a folder of sequences, a ``datasets`` folder or Hub
dataset with a frames column). Another kind of data registers a :class:`DatasetKind` under the names a run's
``dataset`` takes: how its ``data`` options are checked before anything is read, how its splits are loaded, the
task object the loop hands its batches to, and the validation metrics the best model may be chosen by.

A kind is found in two ways: registered in this process (:func:`register_dataset_kind`), or declared by an
installed package under the entry-point group :data:`ENTRY_POINT_GROUP` (``name = "module:KIND"``), loaded the first
time a run names it. This package declares ``"synthetic_rain"`` and ``"radar"`` (rain-rate windows,
:data:`bidirectional_conv_lstm.nowcasting.task.RAIN_RATE_KIND`) that way in its ``pyproject.toml``: training never
imports nowcasting, and importing the package does not load the nowcasting code (pandas, pyarrow, ...) until a run
asks for rain rate. Another package can plug its own kind of data in the same way.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

__all__ = [
    "ENTRY_POINT_GROUP",
    "DatasetKind",
    "dataset_kind",
    "register_dataset_kind",
    "registered_dataset_kinds",
]

ENTRY_POINT_GROUP = "bidirectional_conv_lstm.dataset_kinds"


@dataclasses.dataclass(frozen=True)
class DatasetKind:
    """What the training loop needs to know about one kind of data.

    Args:
        names (`tuple[str, ...]`): the values of ``TrainingArguments.dataset`` that select it.
        check (`Callable[[TrainingArguments], None]`): checks the run's ``data`` options (and anything else the
            kind needs of the run) before any data is read; raises ``ValueError`` / ``TypeError`` /
            ``FileNotFoundError`` naming the option.
        load (`Callable[[TrainingArguments], dict]`): the ``{"train", "validation", "test"}`` datasets (and any
            other entries the task reads, e.g. ``"info"``).
        task (`Callable[[TrainingArguments, dict], object]`): builds the task from the run and its splits: an
            object with ``collator`` (optionally ``train_collator``), ``model_inputs(batch)``,
            ``validate(model, loader, accelerator, step)`` and ``test(model, accelerator, output_dir)``, as
            :class:`~bidirectional_conv_lstm.training.tasks.FramePredictionTask` has.
        best_model_metrics (`Mapping[str, bool]`): validation metrics ``metric_for_best_model`` may name, each
            with whether more is better.
        stream_source (`Callable[[TrainingArguments], str | None]`, *optional*): where a run of this kind can
            stream its training split from (``data.streaming``, :mod:`.streaming`): a Hub dataset id or a folder
            that ``datasets.load_dataset`` reads, or None when this run's data cannot stream (it is built, say).
            ``load`` then returns the training split as a ``datasets.IterableDataset``. Without it the kind never
            streams.
    """

    names: tuple[str, ...]
    check: Callable[[Any], None]
    load: Callable[[Any], dict]
    task: Callable[[Any, dict], Any]
    best_model_metrics: Mapping[str, bool]
    stream_source: Callable[[Any], str | None] | None = None

    def __post_init__(self) -> None:
        if not self.names or not all(isinstance(name, str) and name for name in self.names):
            raise ValueError(f"names must be non-empty strings, got {self.names!r}")
        for field in ("check", "load", "task", "stream_source"):
            if field == "stream_source" and self.stream_source is None:
                continue
            if not callable(getattr(self, field)):
                raise TypeError(f"{field} must be callable, got {getattr(self, field)!r}")
        if not self.best_model_metrics:
            raise ValueError("best_model_metrics must name at least one metric")


_KINDS: dict[str, DatasetKind] = {}


def register_dataset_kind(kind: DatasetKind) -> None:
    """Make ``kind`` the one for each of ``kind.names`` (registering the same names again replaces them)."""
    if not isinstance(kind, DatasetKind):
        raise TypeError(f"kind must be a DatasetKind, got {type(kind).__name__}")
    for name in kind.names:
        _KINDS[name] = kind


def dataset_kind(name: str) -> DatasetKind | None:
    """The kind a run's ``dataset`` names: registered here, or declared by an installed package's entry point
    (loaded now, once); None for frames, the loop's own kind.

    Raises:
        TypeError: an entry point of :data:`ENTRY_POINT_GROUP` named ``name`` is not a :class:`DatasetKind`.
    """
    entry_point = _declared_kinds().get(name)
    if name not in _KINDS and entry_point is not None:
        kind = entry_point.load()
        if not isinstance(kind, DatasetKind):
            raise TypeError(
                f"the entry point {entry_point.value!r} of dataset kind {name!r} must be a DatasetKind, got "
                f"{type(kind).__name__}"
            )
        register_dataset_kind(kind)
    return _KINDS.get(name)


@functools.cache
def _declared_kinds() -> dict[str, metadata.EntryPoint]:
    """The installed packages' entry points of :data:`ENTRY_POINT_GROUP`, by name (read once per process: every
    run's arguments ask, most of them for a name no package declares)."""
    return {entry_point.name: entry_point for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def registered_dataset_kinds() -> tuple[str, ...]:
    """Every ``dataset`` name with a kind: registered here or declared by an installed package, sorted."""
    return tuple(sorted(set(_KINDS) | set(_declared_kinds())))
