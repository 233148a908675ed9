"""The rain-rate data of a training run (``TrainingArguments.dataset`` ``"synthetic_rain"`` or ``"radar"``): its
``data`` options checked before anything is read, then the train / validation / test window tables.

- ``"synthetic_rain"``: the fields of :class:`~bidirectional_conv_lstm.data.SyntheticRainConfig`.
- ``"radar"``: the fields of :class:`~bidirectional_conv_lstm.data.RadarWindowsConfig` plus the archive, the
  events, whole held-out events and per-event overrides (see :func:`load_rain_datasets`).

Both take ``cache_dir`` and ``augment`` (read by :class:`~bidirectional_conv_lstm.nowcasting.task.RainRateTask`).

Or both read windows already cut: ``windows`` names a Hub dataset id, a local folder of Parquet shards (as
``convlstm-push-dataset`` pushes them) or a ``save_to_disk`` folder, whose train / validation / test splits are read
instead of being built (:func:`load_rain_windows`); with ``streaming: true`` (and ``shuffle_buffer``,
``num_train_windows``, see :mod:`bidirectional_conv_lstm.training.streaming`) the training split streams.
"""

from __future__ import annotations

import dataclasses
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..data import (
    SPLITS,
    RadarSource,
    RadarWindowsConfig,
    SyntheticRainConfig,
    example_radar_sources,
    load_radar_windows,
    load_synthetic_rain,
    radar_windows_info,
)
from ..data.cache import numpy_format
from ..data.loaders import is_saved_dataset
from ..data.rain.storage import decode_windows
from ..models.convlstm.argument_checks import check_int
from ..training.arguments import TrainingArguments
from ..training.data_sources import split_data_files
from .baselines import lucas_kanade_motion

__all__ = [
    "split_options",
    "RAIN_RATE_DATASETS",
    "add_lucas_kanade_motion",
    "load_rain_windows",
    "windows_source",
    "check_rain_data",
    "eval_context",
    "event_names",
    "load_rain_datasets",
    "pretraining_info",
    "radar_sources",
    "scoring_arguments",
    "source_config",
    "timestep_minutes",
    "whole_domain_test",
]

# The run datasets (TrainingArguments.dataset) of rain-rate windows (the data.rain.storage schema).
RAIN_RATE_DATASETS = ("synthetic_rain", "radar")
DATA_OPTIONS = ("cache_dir", "augment")
# Radar options of this module, on top of RadarWindowsConfig's (whose split / validation_events / test_events
# are read per event here, see load_rain_datasets).
RADAR_OPTIONS = (
    "root",
    "sources",
    "events",
    "event_overrides",
    "cache_events",
    "train_motion",
    "whole_domain_test",
)
TRAIN_MOTIONS = (None, "lucas_kanade")
# Options of a run that reads windows already cut (data.windows): the streamed training split's
# (training.streaming), and eval_context, which says how the pushed validation / test tiles were cut (the scores
# leave that border out). Every other option only makes sense when building the windows.
WINDOWS_OPTIONS = ("windows", "streaming", "shuffle_buffer", "num_train_windows")
WINDOWS_KEEPS = (*DATA_OPTIONS, *WINDOWS_OPTIONS, "eval_context")


def split_options(args: TrainingArguments) -> tuple[dict, dict]:
    """``args.data`` as (the data source's own fields, the options of this module)."""
    own = (*DATA_OPTIONS, *WINDOWS_OPTIONS, *(RADAR_OPTIONS if args.dataset == "radar" else ()))
    options = {key: value for key, value in args.data.items() if key in own}
    fields = {key: value for key, value in args.data.items() if key not in own}
    return fields, options


def source_config(args: TrainingArguments):
    """The data source's config object built from ``args.data`` (checked by its own constructor): a
    ``SyntheticRainConfig``, or for radar the ``RadarWindowsConfig`` every event starts from (held-out events and
    per-event overrides are applied by :func:`load_rain_datasets`)."""
    fields, _ = split_options(args)
    config_class = SyntheticRainConfig if args.dataset == "synthetic_rain" else RadarWindowsConfig
    known = {field.name for field in dataclasses.fields(config_class)}
    own = (*DATA_OPTIONS, *WINDOWS_OPTIONS, *(RADAR_OPTIONS if args.dataset == "radar" else ()))
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(
            f"data has unknown {args.dataset} options {unknown}; known: {sorted(known | set(own))}"
        )
    if args.dataset == "radar":  # whole held-out events are applied per event by _event_configs
        fields = {k: v for k, v in fields.items() if k not in ("split", "validation_events", "test_events")}
        fields.setdefault("num_input_frames", args.num_input_frames)
        fields.setdefault("num_output_frames", args.num_output_frames)
    try:
        return config_class(**fields)
    except (TypeError, ValueError) as error:
        raise ValueError(f"data: {error}") from error


def _window_frames(config) -> int | None:
    """Frames per window of a source config (``num_frames`` or ``num_input_frames + num_output_frames``)."""
    for names in (("num_frames",), ("window_frames",), ("num_input_frames", "num_output_frames")):
        if all(hasattr(config, name) for name in names):
            return sum(int(getattr(config, name)) for name in names)
    return None


def windows_source(args: TrainingArguments) -> str | None:
    """``data.windows`` of a run that reads windows already cut (a Hub id, a folder), else None."""
    source = args.data.get("windows")
    return None if source is None else os.fspath(source)


def _check_windows_options(args: TrainingArguments) -> None:
    """``data.windows``: a Hub id or a folder, and no option that only makes sense when building the windows."""
    source = args.data["windows"]
    if not isinstance(source, (str, os.PathLike)) or not os.fspath(source):
        raise ValueError(
            f"data.windows must be a Hub dataset id or a folder of rain-rate windows, got {source!r}"
        )
    building = sorted(set(args.data) - set(WINDOWS_KEEPS))
    if building:
        raise ValueError(
            f"data.windows={os.fspath(source)!r} reads windows already cut, and data.{building[0]} only applies "
            "when building them; drop one"
        )


def _check_data_options(args: TrainingArguments, *, training: bool) -> None:
    """The data options, the window length and (radar) every source and event config, before any file is read."""
    _, options = split_options(args)
    if not isinstance(options.get("augment", True), bool):
        raise TypeError(f"data.augment must be true or false, got {options['augment']!r}")
    if "windows" in args.data:
        _check_windows_options(args)
        check_int("data.eval_context", args.data.get("eval_context", 0), minimum=0)
        return
    if options.get("train_motion") not in TRAIN_MOTIONS:
        raise ValueError(
            f"data.train_motion must be one of {list(TRAIN_MOTIONS)}, got {options['train_motion']!r}"
        )
    config = source_config(args)
    frames = _window_frames(config)
    needed = args.num_input_frames + args.num_output_frames
    if frames is not None and frames < needed:
        raise ValueError(
            f"the {args.dataset} windows hold {frames} frames, fewer than num_input_frames + num_output_frames "
            f"= {needed}"
        )
    if args.dataset == "radar":
        _event_configs(args, training=training)
        whole_domain_test(args)


# data.whole_domain_test: window fields it may set (the tile is the event's grid; the frame counts are the run's).
WHOLE_DOMAIN_FIELDS = ("stride", "downsample", "timestep", "min_valid_fraction")


def whole_domain_test(args: TrainingArguments) -> dict | None:
    """``data.whole_domain_test`` of a radar run, checked, or None: a mapping of :data:`WHOLE_DOMAIN_FIELDS` (e.g.
    ``{stride: 4}``) under which each test event is scored on its whole grid
    (:mod:`~bidirectional_conv_lstm.nowcasting.whole_domains`).

    Raises:
        ValueError: not a mapping; another field (e.g. ``tile_size``: the tile is the grid); no ``test_events``.
    """
    value = args.data.get("whole_domain_test") if args.dataset == "radar" else None
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(
            f"data.whole_domain_test must be a mapping of window fields (e.g. {{stride: 4}}) or null, got {value!r}"
        )
    others = sorted(set(value) - set(WHOLE_DOMAIN_FIELDS))
    if others:
        raise ValueError(
            f"data.whole_domain_test may set {list(WHOLE_DOMAIN_FIELDS)}, not {others} (the tile is each test "
            "event's whole grid)"
        )
    if not event_names(args, "test_events"):
        raise ValueError(
            "data.whole_domain_test scores the test events on their whole grids: name them in data.test_events"
        )
    return dict(value)


def check_rain_data(args: TrainingArguments) -> None:
    """Check ``args.data`` of a rain-rate run before any data is read (``TrainingArguments`` calls it).

    Raises:
        ValueError / TypeError: an unknown option or a bad value, named; a model without a rain-rate transform.
        FileNotFoundError: ``data.root`` of a radar run is not a folder.
    """
    _check_data_options(args, training=True)
    if args.model_name_or_path is None and args.model_config().rain_rate_transform is None:
        raise ValueError(
            f"dataset={args.dataset!r} trains in rain rate: set model.rain_rate_transform (e.g. "
            "{kind: dbr}) so the model maps mm/h to its inputs and its predictions back"
        )


def event_names(args: TrainingArguments, key: str) -> list[str]:
    """The event names of ``data.<key>`` (``events``, ``test_events``, ``validation_events``); [] when unset."""
    value = args.data.get(key)
    if value is None:
        return []
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or not all(isinstance(v, str) for v in value)
    ):
        raise ValueError(f"data.{key} must be a list of event names, got {value!r}")
    return list(value)


def radar_sources(args: TrainingArguments) -> dict:
    """``{event name: RadarSource}`` from ``data.root`` (the example events' layout) and ``data.sources``."""
    _, options = split_options(args)
    root, listed = options.get("root"), options.get("sources")
    if root is None and not listed:
        raise ValueError(
            "a radar run needs data.root (an archive laid out as the pysteps-data example events, e.g. "
            "../shared/radar) or data.sources (a list of RadarSource fields, one per event)"
        )
    sources = {}
    if root is not None:
        if not isinstance(root, (str, os.PathLike)) or not Path(root).expanduser().is_dir():
            raise FileNotFoundError(
                f"data.root={root!r} is not a folder; give the radar archive folder (e.g. ../shared/radar, laid "
                "out as the pysteps-data example events)"
            )
        sources.update(example_radar_sources(Path(root).expanduser()))
    if listed is not None and (not isinstance(listed, list) or not all(isinstance(s, dict) for s in listed)):
        raise ValueError(f"data.sources must be a list of RadarSource fields (dicts), got {listed!r}")
    for index, fields in enumerate(listed or []):
        try:
            source = RadarSource(**fields)
        except (TypeError, ValueError) as error:
            raise ValueError(f"data.sources[{index}]: {error}") from error
        if source.name in sources:
            raise ValueError(f"data.sources[{index}]: the event name {source.name!r} is used twice")
        sources[source.name] = source
    return sources


def _event_configs(args: TrainingArguments, *, training: bool = True) -> dict:
    """``{event name: RadarWindowsConfig}`` of a radar run (see :func:`load_rain_datasets`); ``training=False``
    (scoring only) allows every event to be held out."""
    _, options = split_options(args)
    known = sorted(radar_sources(args))
    events = event_names(args, "events") or known
    test, validation = event_names(args, "test_events"), event_names(args, "validation_events")
    overrides = options.get("event_overrides") or {}
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise ValueError(f"data.event_overrides must map event names to option dicts, got {overrides!r}")
    for key, names in (
        ("events", events),
        ("test_events", test),
        ("validation_events", validation),
        ("event_overrides", overrides),
    ):
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ValueError(f"data.{key} names unknown events {unknown}; the archive has {known}")
    for key, names in (("test_events", test), ("validation_events", validation)):
        outside = sorted(set(names) - set(events))
        if outside:
            raise ValueError(f"data.{key} {outside} are not among data.events {events}")
    both = sorted(set(test) & set(validation))
    if both:
        raise ValueError(f"events {both} are in both data.test_events and data.validation_events")
    base = source_config(args)
    split = args.data.get("split", "time_block")
    if split not in ("event", "time_block"):
        raise ValueError(f"data.split must be 'event' or 'time_block', got {split!r}")
    configs = {}
    for name in events:
        fields = dict(overrides.get(name, {}))
        frozen = sorted(set(fields) & {"num_input_frames", "num_output_frames", "tile_size", "eval_context"})
        if frozen:
            raise ValueError(
                f"data.event_overrides[{name!r}] may not change {frozen}: every window must match"
            )
        if name in test:
            fields.update(split="event", test_events=(name,), validation_events=())
        elif name in validation:
            fields.update(split="event", validation_events=(name,), test_events=())
        elif split == "event":  # held-out events are named; this one trains whole
            fields.update(split="time_block", time_block_fractions=(1.0, 0.0, 0.0))
        try:
            configs[name] = dataclasses.replace(base, **fields)
        except (TypeError, ValueError) as error:
            raise ValueError(f"data.event_overrides[{name!r}]: {error}") from error
    if training and not any(name not in test and name not in validation for name in events):
        raise ValueError(f"every event of data.events {events} is held out; none is left to train on")
    return configs


def load_rain_datasets(args: TrainingArguments, splits: Sequence[str] = SPLITS) -> dict:
    """``{"train", "validation", "test"}`` rain-rate window datasets (the ``rain_storage`` schema), and ``"info"``:
    what they hold (``{"dataset", "events": {name: {"role", time steps, pixel size, window counts}}}`` for radar,
    from :func:`~bidirectional_conv_lstm.data.radar_windows_info`), for the model card.

    For ``dataset: radar``, ``args.data`` holds the fields of
    :class:`~bidirectional_conv_lstm.data.RadarWindowsConfig` (tile size, downsampling, time step,
    stride, ...) and:

    - ``root``: the archive folder, laid out as the pysteps-data example events
      (:func:`~bidirectional_conv_lstm.data.example_radar_sources`), and/or ``sources``: a list of
      :class:`~bidirectional_conv_lstm.data.RadarSource` fields, one event each (any archive, importer, stack);
    - ``events``: which of them to use (all by default);
    - ``test_events``, ``validation_events``: whole events held out: every window of a test event is in the test
      split, none in training or validation;
    - ``split`` / ``time_block_fractions`` for the other events: ``"time_block"`` (default) cuts each event's
      timeline into train / validation / test blocks (a window straddling two blocks is dropped), ``"event"``
      trains on them whole;
    - ``event_overrides``: ``{event: {field: value}}`` per-event changes of the windows config (e.g.
      ``downsample: 8`` for a 0.5 km grid among 1 km ones, so every event has 4 km pixels; ``stride``);
    - ``cache_events``: also cache each decoded event (float32), so other window settings skip the importers;
    - ``train_motion: lucas_kanade``: give every training window a ``motion`` column, pysteps' dense Lucas-Kanade
      field of its observed frames (:func:`add_lucas_kanade_motion`, cached beside the windows), which the collator
      hands out as ``target_motion`` for a model's motion term (``motion_loss_weight``); needs pysteps.

    Each event is cut (and cached) on its own, then the splits are concatenated. ``splits`` names the splits
    wanted (each must get windows; the result holds them and ``"info"``): a training run wants all three, scoring
    one split (:func:`~bidirectional_conv_lstm.nowcasting.evaluation.evaluate_rain_dataset`) that split alone, so the events may all be held
    out.
    """
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or not splits:
        raise ValueError(f"splits must name some of {list(SPLITS)}, got {list(splits)!r}")
    if windows_source(args) is not None:
        return load_rain_windows(args, splits)
    _, options = split_options(args)
    cache_dir = options.get("cache_dir")
    if args.dataset == "synthetic_rain":
        tables = load_synthetic_rain(source_config(args), cache_dir=cache_dir)
        return {**{name: tables[name] for name in splits}, "info": {"dataset": "synthetic_rain"}}
    import datasets

    sources = radar_sources(args)
    parts = {name: [] for name in splits}
    info = {"dataset": "radar", "events": {}}
    test, validation = event_names(args, "test_events"), event_names(args, "validation_events")
    for name, config in _event_configs(args, training="train" in splits).items():
        # Two reader processes: reading the archive (once, then cached) is a good share of a short run.
        workers = min(2, os.cpu_count() or 1)
        event_splits = load_radar_windows(
            [sources[name]],
            config,
            cache_dir=cache_dir,
            num_workers=workers,
            cache_events=bool(options.get("cache_events", False)),
        )
        role = "test" if name in test else "validation" if name in validation else "train"
        info["events"][name] = {"role": role, **radar_windows_info(event_splits)["events"][name]}
        for split, rows in parts.items():
            if len(event_splits[split]):
                rows.append(event_splits[split])
    for split, rows in parts.items():  # every split asked for must hold windows
        if not rows:
            raise ValueError(
                f"the radar events give no {split} windows; hold out an event (data.test_events, "
                "data.validation_events) or give the time blocks a share (data.time_block_fractions)"
            )
    tables = {split: datasets.concatenate_datasets(rows) for split, rows in parts.items()}
    if options.get("train_motion") == "lucas_kanade" and "train" in tables:
        tables["train"] = add_lucas_kanade_motion(tables["train"], args.num_input_frames)
    return {**tables, "info": info}


def load_rain_windows(args: TrainingArguments, splits: Sequence[str] = SPLITS) -> dict:
    """The splits of a run that reads windows already cut (``data.windows``: a Hub dataset id, a local folder of
    Parquet shards as ``convlstm-push-dataset`` pushes them, or a ``save_to_disk`` folder), numpy formatted as
    built windows are; with ``data.streaming`` the training split is a ``datasets.IterableDataset`` (the others
    are read from their own files only). ``"info"``: what the dataset says of itself (:func:`windows_info`).

    Raises:
        ValueError: a split is missing, the windows have no ``rain_rate`` column, or fewer frames than
            ``num_input_frames + num_output_frames``.
    """
    source = windows_source(args)
    streaming = bool(args.data.get("streaming", False))
    tables = {}
    for split in splits:
        table = _read_windows(source, split, streaming=streaming, stream=streaming and split == "train")
        _check_windows_table(args, source, split, table.features)
        tables[split] = numpy_format(table)
    return {**tables, "info": windows_info(args.dataset, source)}


def _read_windows(source: str, split: str, *, streaming: bool, stream: bool):
    """One split of ``data.windows``: streamed (``stream``), or map-style; a run that streams its training split
    reads the other splits from their own files only."""
    import datasets

    if is_saved_dataset(source):
        saved = datasets.load_from_disk(str(Path(source).expanduser()))
        if isinstance(saved, datasets.DatasetDict):
            if split not in saved:
                raise ValueError(f"data.windows={source!r} has no {split!r} split; it has {list(saved)}")
            saved = saved[split]
        return saved.to_iterable_dataset() if stream else saved
    files = split_data_files(source, split) if streaming and not stream else None
    try:
        return datasets.load_dataset(
            source, split=split, streaming=stream, data_files=None if files is None else {split: files}
        )
    except ValueError as error:  # an unknown split: datasets names the ones there are
        raise ValueError(f"data.windows={source!r}: {error}") from error


def _check_windows_table(args: TrainingArguments, source: str, split: str, features) -> None:
    """The rain-rate column and enough frames per window (a stream of unknown features is checked as read)."""
    if features is None:
        return
    if "rain_rate" not in features:
        raise ValueError(
            f"the {split} split of data.windows={source!r} has no 'rain_rate' column (it has {list(features)}); "
            "name rain-rate windows pushed with convlstm-push-dataset"
        )
    frames = features["rain_rate"].shape[0]
    needed = args.num_input_frames + args.num_output_frames
    if frames < needed:
        raise ValueError(
            f"data.windows={source!r} holds windows of {frames} frames, fewer than num_input_frames + "
            f"num_output_frames = {needed}"
        )


def windows_info(dataset: str, source: str) -> dict:
    """What windows already cut say of themselves, for the model card: the ``rain_windows`` entry of their dataset
    card's metadata (what ``convlstm-push-dataset`` recorded: the events, their roles, time steps and pixel sizes),
    else ``{"dataset", "windows"}``."""
    from huggingface_hub import DatasetCard, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    local = Path(source).expanduser()
    card_path = local / "README.md"
    if not local.is_dir():
        try:
            card_path = Path(hf_hub_download(source, "README.md", repo_type="dataset"))
        except (HfHubHTTPError, OSError, ValueError):  # no card: the id says what it is
            card_path = None
    recorded = {}
    if card_path is not None and card_path.is_file():
        recorded = DatasetCard.load(card_path).data.to_dict().get("rain_windows") or {}
    return {**recorded, "dataset": dataset, "windows": source}


def add_lucas_kanade_motion(windows, num_input_frames: int, *, batch_size: int = 64):
    """``windows`` (the rain-window schema) with a ``motion`` column: (2, H, W) float32, pysteps' dense
    Lucas-Kanade field of each window's first ``num_input_frames`` frames, pixels per frame step, x then y (the
    field the extrapolation baseline moves rain along, :func:`~bidirectional_conv_lstm.nowcasting.baselines.lucas_kanade_motion`).

    An estimate, not the truth: where the rain's motion cannot be seen (no rain, a single cell growing) it is
    interpolated. ``datasets`` caches the result beside the windows (by their fingerprint), so only the first
    run computes it (about 20 ms a 64 x 64 window on one core).
    """
    import datasets
    import numpy as np

    _, _, height, width = windows.features["rain_rate"].shape[-4:]
    features = datasets.Features(
        {**windows.features, "motion": datasets.Array3D(shape=(2, height, width), dtype="float32")}
    )

    def motion(batch):
        observed, valid, _, _ = decode_windows(np.asarray(batch["rain_rate"]), num_input_frames, 0)
        observed = np.where(valid, observed, np.nan)
        return {"motion": lucas_kanade_motion(observed).astype(np.float32)}

    return windows.map(
        motion, batched=True, batch_size=batch_size, features=features, desc="Lucas-Kanade motion"
    )


def timestep_minutes(args: TrainingArguments, info: Mapping | None = None) -> float | None:
    """The minutes between frames of a radar run's windows (one step for every event), else None; for windows
    already cut (``data.windows``), what their ``info`` (:func:`windows_info`) records."""
    if args.dataset != "radar":
        return None  # synthetic fields have no clock
    if windows_source(args) is not None:
        steps = {event.get("timestep_minutes") for event in ((info or {}).get("events") or {}).values()}
        return float(steps.pop()) if len(steps) == 1 and None not in steps else None
    steps = {config.timestep for config in _event_configs(args, training=False).values()}
    return float(steps.pop()) if len(steps) == 1 and None not in steps else None


def scoring_arguments(dataset: str, data: Mapping, num_input_frames: int, num_output_frames: int):
    """What this module's functions read of a run (``dataset``, ``data``, the frame counts) for scoring a split
    alone: the data options are checked as a training run's are (unknown options, bad values, missing archive,
    unknown events), except that every event may be held out."""
    args = types.SimpleNamespace(
        dataset=dataset,
        data=dict(data),
        num_input_frames=num_input_frames,
        num_output_frames=num_output_frames,
        model_name_or_path=None,
    )
    _check_data_options(args, training=False)
    return args


def eval_context(args: TrainingArguments) -> int:
    """Pixels of surroundings around each validation / test tile of a radar run (``data.eval_context``, see
    :class:`~bidirectional_conv_lstm.data.RadarWindowsConfig`): forecasters see them, scores leave them out."""
    if args.dataset != "radar":
        return 0
    if windows_source(args) is not None:  # how the windows were cut: the run says it
        return int(args.data.get("eval_context", 0))
    return source_config(args).eval_context


def pretraining_info(args: TrainingArguments) -> dict:
    """What the model fine-tuned here was trained on (a local run's ``training_config.yaml``), or ``{}``."""
    import yaml

    if args.model_name_or_path is None:
        return {}
    recorded = Path(args.model_name_or_path) / "training_config.yaml"
    if not recorded.is_file():
        return {}
    values = yaml.safe_load(recorded.read_text()) or {}
    return {"dataset": values.get("dataset"), "num_train": (values.get("data") or {}).get("num_train")}
