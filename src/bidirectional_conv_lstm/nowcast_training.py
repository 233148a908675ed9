"""Precipitation nowcasting in the Accelerate loop of :mod:`.training`: rain-rate data, validation, test.

``train(args)`` with ``args.dataset`` ``"synthetic_rain"`` or ``"radar"`` trains on rain-rate windows (the
:mod:`.data.rain_storage` schema) through :class:`RainRateTask`:

- **data** (``args.data``): for ``"synthetic_rain"`` the fields of
  :class:`~bidirectional_conv_lstm.data.SyntheticRainConfig`; for ``"radar"`` see
  :func:`load_rain_datasets` (the fields of :class:`~bidirectional_conv_lstm.data.RadarWindowsConfig`
  plus the archive folder, the events, whole held-out events and per-event overrides). Both take ``cache_dir``,
  and ``augment`` (random flips and quarter turns of each training window, default true: rain moves and grows
  the same way in every direction, and a few radar events hold few directions of motion);
- **batches**: :class:`~bidirectional_conv_lstm.data.RainRateCollator` maps rain rate to the model's space with
  the model's ``rain_rate_transform``; its ``labels_mask`` goes to the model as ``loss_mask``, so no-data pixels never count in the
  loss;
- **validation**: the loss and the verification scores in mm/h (CSI at the thresholds, CSI-M, MAE, MSE, FSS at
  1 mm/h on 4-pixel windows), ``metric_for_best_model`` one of ``loss``, ``csi_m``, ``mse``, ``mae``;
- **test**: :func:`~bidirectional_conv_lstm.nowcast_evaluation.evaluate_nowcasts` of the best model beside
  persistence, Lucas-Kanade extrapolation and S-PROG (the last two need pysteps, the ``nowcasting`` extra;
  without it only persistence is scored): ``eval/metrics.{json,md}``, ``eval/scores_by_lead_time.png``, a
  forecast strip ``forecast.png`` and GIF ``forecast.gif`` of the rainiest test window, and the model card.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from .training_args import TrainingArguments

__all__ = ["RainRateTask", "check_rain_data", "load_rain_datasets", "model_forecaster"]

DATA_OPTIONS = ("cache_dir", "augment")
# Radar options of this module, on top of RadarWindowsConfig's (whose split / validation_events / test_events
# are read per event here, see load_rain_datasets).
RADAR_OPTIONS = ("root", "sources", "events", "event_overrides")
VALIDATION_THRESHOLDS = (0.5, 1.0, 2.0, 5.0, 10.0)
VALIDATION_FSS_WINDOWS = (4,)
# Lead times (frames) of the per-lead-time tables of the test report: +15, +30, +60 minutes at 5-minute steps.
REPORT_LEAD_TIMES = (3, 6, 12)


# --------------------------------------------------------------------------- data
def _split_options(args: TrainingArguments) -> tuple[dict, dict]:
    """``args.data`` as (the data source's own fields, the options of this module)."""
    own = (*DATA_OPTIONS, *RADAR_OPTIONS) if args.dataset == "radar" else DATA_OPTIONS
    options = {key: value for key, value in args.data.items() if key in own}
    fields = {key: value for key, value in args.data.items() if key not in own}
    return fields, options


def _source_config(args: TrainingArguments):
    """The data source's config object built from ``args.data`` (checked by its own constructor)."""
    fields, _ = _split_options(args)
    if args.dataset == "synthetic_rain":
        from .data import SyntheticRainConfig as config_class
    else:
        from .data import RadarWindowsConfig as config_class
    known = {field.name for field in dataclasses.fields(config_class)}
    own = DATA_OPTIONS + (RADAR_OPTIONS if args.dataset == "radar" else ())
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


def check_rain_data(args: TrainingArguments) -> None:
    """Check ``args.data`` of a rain-rate run before any data is read (``TrainingArguments`` calls it).

    Raises:
        ValueError / TypeError: an unknown option or a bad value, named; a model without a rain-rate transform.
        FileNotFoundError: ``data.root`` of a radar run is not a folder.
    """
    _, options = _split_options(args)
    if not isinstance(options.get("augment", True), bool):
        raise TypeError(f"data.augment must be true or false, got {options['augment']!r}")
    config = _source_config(args)
    frames = _window_frames(config)
    needed = args.num_input_frames + args.num_output_frames
    if frames is not None and frames < needed:
        raise ValueError(
            f"the {args.dataset} windows hold {frames} frames, fewer than num_input_frames + num_output_frames "
            f"= {needed}"
        )
    if args.dataset == "radar":
        _event_configs(args)  # every source and event config is checked here, before any file is read
    if args.model_name_or_path is None and args.model_config().rain_rate_transform is None:
        raise ValueError(
            f"dataset={args.dataset!r} trains in rain rate: set model.rain_rate_transform (e.g. "
            "{kind: dbr}) so the model maps mm/h to its inputs and its predictions back"
        )


def _names(args: TrainingArguments, key: str) -> list[str]:
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


def _radar_sources(args: TrainingArguments) -> dict:
    """``{event name: RadarSource}`` from ``data.root`` (the example events' layout) and ``data.sources``."""
    from .data import RadarSource, example_radar_sources

    _, options = _split_options(args)
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


def _event_configs(args: TrainingArguments) -> dict:
    """``{event name: RadarWindowsConfig}`` of a radar run (see :func:`load_rain_datasets`)."""
    _, options = _split_options(args)
    known = sorted(_radar_sources(args))
    events = _names(args, "events") or known
    test, validation = _names(args, "test_events"), _names(args, "validation_events")
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
    base = _source_config(args)
    split = args.data.get("split", "time_block")
    if split not in ("event", "time_block"):
        raise ValueError(f"data.split must be 'event' or 'time_block', got {split!r}")
    configs = {}
    for name in events:
        fields = dict(overrides.get(name, {}))
        frozen = sorted(set(fields) & {"num_input_frames", "num_output_frames", "tile_size"})
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
    if not any(name not in test and name not in validation for name in events):
        raise ValueError(f"every event of data.events {events} is held out; none is left to train on")
    return configs


def load_rain_datasets(args: TrainingArguments) -> dict:
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
      ``downsample: 8`` for a 0.5 km grid among 1 km ones, so every event has 4 km pixels; ``stride``).

    Each event is cut (and cached) on its own, then the splits are concatenated.
    """
    _, options = _split_options(args)
    cache_dir = options.get("cache_dir")
    if args.dataset == "synthetic_rain":
        from .data import load_synthetic_rain

        splits = load_synthetic_rain(_source_config(args), cache_dir=cache_dir)
        splits = {name: splits[name] for name in ("train", "validation", "test")}
        splits["info"] = {"dataset": "synthetic_rain"}
        return splits
    import datasets

    from .data import load_radar_windows, radar_windows_info

    sources = _radar_sources(args)
    parts = {name: [] for name in ("train", "validation", "test")}
    info = {"dataset": "radar", "events": {}}
    test, validation = _names(args, "test_events"), _names(args, "validation_events")
    for name, config in _event_configs(args).items():
        # Two reader processes: reading the archive (once, then cached) is a good share of a short run.
        workers = min(2, os.cpu_count() or 1)
        event_splits = load_radar_windows([sources[name]], config, cache_dir=cache_dir, num_workers=workers)
        role = "test" if name in test else "validation" if name in validation else "train"
        info["events"][name] = {"role": role, **radar_windows_info(event_splits)["events"][name]}
        for split, rows in parts.items():
            if len(event_splits[split]):
                rows.append(event_splits[split])
    for split, rows in parts.items():
        if not rows:
            raise ValueError(
                f"the radar events give no {split} windows; hold out an event (data.test_events, "
                "data.validation_events) or give the time blocks a share (data.time_block_fractions)"
            )
    splits = {split: datasets.concatenate_datasets(rows) for split, rows in parts.items()}
    splits["info"] = info
    return splits


def _timestep_minutes(args: TrainingArguments) -> float | None:
    if args.dataset != "radar":
        return None  # synthetic fields have no clock
    steps = {config.timestep for config in _event_configs(args).values()}
    return float(steps.pop()) if len(steps) == 1 and None not in steps else None


# --------------------------------------------------------------------------- the model as a forecaster
def model_forecaster(model, *, no_data_value: float = 0.0):
    """``forecaster(observed, valid=None, *, num_output_frames)`` of :mod:`.nowcasting_baselines` for a rain-rate
    model: mm/h in, mm/h out (``no_data_value`` where the last observed frame has no data, 0 as the baselines)."""

    def forecaster(observed, valid=None, *, num_output_frames: int):
        return model.forecast_rain_rate(
            observed, valid, num_output_frames=num_output_frames, no_data_value=no_data_value
        )

    return forecaster


def augment_windows(batch: dict) -> dict:
    """Each sample of a batch turned by a random quarter turn (half turns only for non-square tiles) and flipped
    left-right at random, its frames and masks alike (uses torch's global generator)."""
    keys = [key for key in ("pixel_values", "labels", "loss_mask") if key in batch]
    height, width = batch["pixel_values"].shape[-2:]
    turns = torch.randint(0, 4, (batch["pixel_values"].shape[0],)) if height == width else None
    if turns is None:
        turns = 2 * torch.randint(0, 2, (batch["pixel_values"].shape[0],))
    flips = torch.rand(batch["pixel_values"].shape[0]) < 0.5
    out = dict(batch)
    for key in keys:
        samples = []
        for index, sample in enumerate(batch[key]):
            sample = torch.rot90(sample, int(turns[index]), dims=(-2, -1))
            samples.append(sample.flip(-1) if flips[index] else sample)
        out[key] = torch.stack(samples)
    return out


# --------------------------------------------------------------------------- the task
class RainRateTask:
    """The rain-rate counterpart of :class:`~bidirectional_conv_lstm.training.FramePredictionTask` (same
    methods: ``collator``, ``model_inputs``, ``validate``, ``test``); see the module docstring."""

    def __init__(self, args: TrainingArguments, splits: dict):
        from .data import RainRateCollator
        from .rain_rate import RainRateTransform

        self.args, self.splits = args, splits
        _, options = _split_options(args)
        self.augment = options.get("augment", True)
        if args.model_name_or_path is None:
            transform = args.model_config().rain_rate_transform
        else:
            from .configuration_convlstm import ConvLSTMConfig

            transform = ConvLSTMConfig.from_pretrained(args.model_name_or_path).rain_rate_transform
            if transform is None:
                raise ValueError(
                    f"model_name_or_path={args.model_name_or_path!r} has no rain_rate_transform; fine-tune a "
                    "rain-rate model (one trained on synthetic_rain or radar) on rain-rate data"
                )
        self.transform = RainRateTransform.from_dict(transform)
        self.collator = RainRateCollator(args.num_input_frames, args.num_output_frames, self.transform)
        self.timestep_minutes = _timestep_minutes(args)

    def model_inputs(self, batch: dict) -> dict:
        """``pixel_values``, ``labels`` and ``loss_mask`` (the collator's ``labels_mask``) of a training batch,
        augmented when asked."""
        inputs = {
            "pixel_values": batch["pixel_values"],
            "labels": batch["labels"],
            "loss_mask": batch["labels_mask"],
        }
        return augment_windows(inputs) if self.augment else inputs

    @torch.no_grad()
    def validate(self, model, loader, accelerator: Accelerator, step: int) -> dict:
        """The validation loss and scores in mm/h (:class:`~bidirectional_conv_lstm.verification.NowcastVerifier`,
        gathered over processes), logged and printed."""
        from .verification import NowcastVerifier

        was_training = model.training
        model.eval()
        verifier = NowcastVerifier(
            thresholds=VALIDATION_THRESHOLDS, fss_windows=VALIDATION_FSS_WINDOWS, gather=accelerator
        )
        loss_sum = torch.zeros((), device=accelerator.device)
        count = torch.zeros((), device=accelerator.device)
        for batch in loader:
            labels, mask = batch["labels"], batch["labels_mask"]
            with accelerator.autocast():
                out = model(pixel_values=batch["pixel_values"], labels=labels, loss_mask=mask)
            loss_sum += out.loss.float() * labels.shape[0]
            count += labels.shape[0]
            forecast = self.transform.inverse(out.predictions.float())[:, :, 0]
            first = self.args.num_input_frames
            truth = batch["rain_rate"][:, first : first + labels.shape[1], 0]
            verifier.update(forecast, truth, mask[:, :, 0])
        model.train(was_training)
        loss_sum, count = accelerator.reduce(loss_sum, reduction="sum"), accelerator.reduce(count, "sum")
        overall = verifier.compute()["overall"]
        metrics = {"loss": (loss_sum / count.clamp_min(1)).item()}
        metrics.update({key: float(value) for key, value in overall.items()})
        accelerator.log({f"validation/{key}": value for key, value in metrics.items()}, step=step)
        accelerator.print(
            f"step {step}: validation loss {metrics['loss']:.4f} csi@0.5 {metrics.get('csi@0.5', math.nan):.3f} "
            f"csi@2 {metrics.get('csi@2', math.nan):.3f} csi_m {metrics.get('csi_m', math.nan):.3f} "
            f"mae {metrics.get('mae', math.nan):.3f} mm/h"
        )
        return metrics

    def methods(self, model) -> dict:
        """The forecasters scored at the end: the model, persistence, and (with pysteps) extrapolation, S-PROG."""
        import importlib.util

        methods = {"model": model_forecaster(model), "persistence": "persistence"}
        if importlib.util.find_spec("pysteps") is None:
            print('pysteps is not installed: scoring persistence only (pip install -e ".[nowcasting]")')
        else:
            methods.update(extrapolation="extrapolation", sprog="sprog")
        return methods

    def test(self, model, accelerator: Accelerator, output_dir: Path) -> dict:
        """Score ``model`` and the baselines on the test split (:func:`evaluate_nowcasts`); on the main process
        write ``eval/``, ``forecast.png``, ``forecast.gif`` and the model card. Returns the results dict."""
        from .nowcast_evaluation import evaluate_nowcasts, write_nowcast_evaluation
        from .nowcasting_card import save_nowcasting_card

        args = self.args
        model.eval()
        windows = self.splits["test"]
        results = evaluate_nowcasts(
            windows,
            self.methods(model),
            num_input_frames=args.num_input_frames,
            num_output_frames=args.num_output_frames,
            timestep_minutes=self.timestep_minutes,
            batch_size=args.per_device_eval_batch_size,
            accelerator=accelerator,
            max_windows=args.test_num_samples,
            progress=True,
        )
        if accelerator.is_main_process:
            lead_times = [t for t in REPORT_LEAD_TIMES if t <= args.num_output_frames]
            write_nowcast_evaluation(results, output_dir / "eval", lead_times=lead_times)
            self.save_pictures(model, output_dir)
            save_nowcasting_card(
                output_dir,
                config=model.config,
                results=results,
                data_info=self.splits.get("info"),
                training_config=args.to_dict(),
                base_model=args.model_name_or_path,
                lead_times=lead_times,
            )
        return results

    def save_pictures(self, model, output_dir: Path, *, max_candidates: int = 64) -> dict[str, Path]:
        """``forecast.png`` (strip) and ``forecast.gif`` of the test window with the most rain (>= 1 mm/h) in its
        future among the first `max_candidates`: observed, truth, and every method's forecast."""
        from .nowcast_evaluation import decode_windows, resolve_forecasters
        from .visualize_radar import save_radar_gif, save_radar_strip

        args, windows = self.args, self.splits["test"]
        count = min(len(windows), max_candidates)
        stored = np.asarray(windows.select(range(count)).with_format("numpy")["rain_rate"])
        observed, observed_valid, future, future_valid = decode_windows(
            stored, args.num_input_frames, args.num_output_frames
        )
        index = int(np.argmax(((future >= 1.0) & future_valid).sum(axis=(1, 2, 3))))
        pick = slice(index, index + 1)
        forecasts = {
            name: np.asarray(
                forecaster(
                    observed[pick], valid=observed_valid[pick], num_output_frames=args.num_output_frames
                )
            )[0]
            for name, forecaster in resolve_forecasters(self.methods(model)).items()
        }
        options = dict(
            observed_valid=observed_valid[index],
            truth_valid=future_valid[index],
            timestep_minutes=self.timestep_minutes,
        )
        return {
            "strip": save_radar_strip(
                observed[index], future[index], forecasts, output_dir / "forecast.png", scale=2, **options
            ),
            "gif": save_radar_gif(
                observed[index], future[index], forecasts, output_dir / "forecast.gif", **options
            ),
        }
