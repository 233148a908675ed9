"""Precipitation nowcasting in the Accelerate loop of :mod:`bidirectional_conv_lstm.training`: rain-rate data, validation, test.

``train(args)`` with ``args.dataset`` ``"synthetic_rain"`` or ``"radar"`` trains on rain-rate windows (the
:mod:`bidirectional_conv_lstm.data.rain.storage` schema) through :class:`RainRateTask`:

- **data** (``args.data``, :mod:`bidirectional_conv_lstm.nowcasting.data`): for ``"synthetic_rain"`` the fields of
  :class:`~bidirectional_conv_lstm.data.SyntheticRainConfig`; for ``"radar"`` see
  :func:`~bidirectional_conv_lstm.nowcasting.data.load_rain_datasets` (the fields of
  :class:`~bidirectional_conv_lstm.data.RadarWindowsConfig` plus the archive folder, the events, whole held-out
  events and per-event overrides). Both take ``cache_dir``, and ``augment`` (random flips and quarter turns of
  each training window, default true: rain moves and grows the same way in every direction, and a few radar events
  hold few directions of motion; drawn from the seed, the epoch and the window, so a resumed run turns its windows
  as the uninterrupted one did);
- **batches**: :class:`~bidirectional_conv_lstm.data.RainRateCollator` maps rain rate to the model's space with
  the model's ``rain_rate_transform``; its ``labels_mask`` goes to the model as ``loss_mask``, so no-data pixels never count in the
  loss;
- **validation**: the loss and the verification scores in mm/h (CSI at the thresholds, CSI-M, MAE, MSE, FSS at
  1 mm/h on 4-pixel windows), ``metric_for_best_model`` one of ``loss``, ``csi_m``, ``mse``, ``mae``;
- **test**: :func:`~bidirectional_conv_lstm.nowcasting.evaluation.evaluate_nowcasts` of the best model beside
  persistence, Lucas-Kanade extrapolation and S-PROG (the last two need pysteps, the ``nowcasting`` extra;
  without it only persistence is scored): ``eval/metrics.{json,md}``, ``eval/scores_by_lead_time.png``, a
  forecast strip ``forecast.png`` and GIF ``forecast.gif`` of the rainiest test window, and the model card.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from ..data import RainRateCollator
from ..data.rain.storage import crop_context, decode_windows
from ..models.convlstm.configuration_convlstm import ConvLSTMConfig
from ..models.convlstm.georeferencing_convlstm import METRES_PER
from ..models.convlstm.rain_rate import RainRateTransform
from ..training.arguments import TrainingArguments
from ..training.kinds import DatasetKind, register_dataset_kind
from .baselines import min_input_frames, model_forecaster, steps_beside
from .card import save_nowcasting_card
from .data import (
    RAIN_RATE_DATASETS,
    check_rain_data,
    eval_context,
    event_names,
    load_rain_datasets,
    pretraining_info,
    split_options,
    timestep_minutes,
    whole_domain_test,
    windows_source,
)
from .ensemble_pictures import save_ensemble_pictures
from .evaluation import (
    deterministic_forecast,
    ensemble_size,
    evaluate_nowcasts,
    resolve_forecasters,
    write_nowcast_evaluation,
)
from .motion import motion_check
from .pictures import save_radar_gif, save_radar_strip
from .verification import NowcastVerifier
from .whole_domains import mean_results, whole_domain_arguments

__all__ = ["RAIN_BEST_MODEL_METRICS", "RAIN_RATE_KIND", "RainRateTask"]

# Validation metrics a rain-rate run's best model may be chosen by (the loss, verification scores in mm/h), and
# whether more is better.
RAIN_BEST_MODEL_METRICS = {"loss": False, "csi_m": True, "mse": False, "mae": False}
VALIDATION_THRESHOLDS = (0.5, 1.0, 2.0, 5.0, 10.0)
VALIDATION_FSS_WINDOWS = (4,)
# Lead times (frames) of the per-lead-time tables of the test report: +15, +30, +60 minutes at 5-minute steps.
REPORT_LEAD_TIMES = (3, 6, 12)


# --------------------------------------------------------------------------- the task
class RainRateTask:
    """The rain-rate counterpart of :class:`~bidirectional_conv_lstm.training.loop.FramePredictionTask` (same
    methods: ``collator``, ``model_inputs``, ``validate``, ``test``); see the module docstring."""

    def __init__(self, args: TrainingArguments, splits: dict):

        self.args, self.splits = args, splits
        _, options = split_options(args)
        self.augment = options.get("augment", True)
        if args.model_name_or_path is None:
            config = args.model_config()
        else:
            config = args.fine_tuning_config(ConvLSTMConfig.from_pretrained(args.model_name_or_path))
        transform = config.rain_rate_transform
        if transform is None:  # a new model's config always has one (TrainingArguments checks it)
            raise ValueError(
                f"model_name_or_path={args.model_name_or_path!r} has no rain_rate_transform; fine-tune a "
                "rain-rate model (one trained on synthetic_rain or radar) on rain-rate data"
            )
        self.transform = RainRateTransform.from_dict(transform)
        # A known motion (synthetic rain, data.train_motion) goes to the model when its loss has a motion term
        # (check_config allows one only with an advection head).
        self.supervise_motion = bool(config.motion_loss_weight)
        self.collator = RainRateCollator(args.num_input_frames, args.num_output_frames, self.transform)
        # Training batches alone are augmented, in the DataLoader's workers, from the run's seed.
        self.train_collator = RainRateCollator(
            args.num_input_frames,
            args.num_output_frames,
            self.transform,
            augment=self.augment,
            seed=args.seed,
        )
        self.timestep_minutes = timestep_minutes(args, splits.get("info"))
        self.eval_context = eval_context(args)

    def describe_data(self, config) -> None:
        """Record the radar windows' pixel size (metres) and time step (minutes) in the model's config, so that
        ``forecast_rain_rate`` checks frames with coordinates against them; synthetic fields have neither."""
        events = (self.splits.get("info") or {}).get("events") or {}
        sizes = [_metres(event) for event in events.values()]
        # One grid, give or take a service's rounding (FMI's 1 km pixels are 999.674 m): the median size.
        if sizes and None not in sizes and max(sizes) - min(sizes) <= 1e-3 * max(sizes):
            config.pixel_size = float(np.median(sizes))
        steps = {event.get("timestep_minutes") for event in events.values()}
        if len(steps) == 1 and None not in steps:
            config.time_step = float(steps.pop())

    def model_inputs(self, batch: dict) -> dict:
        """``pixel_values``, ``labels`` and ``loss_mask`` (the collator's ``labels_mask``) of a training batch
        (augmented by ``train_collator`` when ``data.augment``), and ``target_motion`` when the batch has the
        motion (synthetic rain) and the model's ``motion_loss_weight`` is > 0."""
        inputs = {
            "pixel_values": batch["pixel_values"],
            "labels": batch["labels"],
            "loss_mask": batch["labels_mask"],
        }
        if self.supervise_motion and "target_motion" in batch:
            inputs["target_motion"] = batch["target_motion"]
        return inputs

    @torch.no_grad()
    def validate(self, model, loader, accelerator: Accelerator, step: int) -> dict:
        """The validation loss and scores in mm/h (:class:`~bidirectional_conv_lstm.nowcasting.verification.NowcastVerifier`,
        gathered over processes), logged and printed."""
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

    def methods(self, model, accelerator: Accelerator | None = None) -> dict:
        """The forecasters scored at the end: the model (under ``accelerator``'s autocast; an ensemble model's
        ``config.ensemble_members`` members), persistence, and (with pysteps) extrapolation, S-PROG, ANVIL on whole
        domains (``data.whole_domain_test``: few windows, and growth and decay wants the domain) where there are
        the observed frames it needs, and for an ensemble model STEPS with as many members on the model's grid and
        time step."""
        import importlib.util

        autocast = accelerator.autocast if accelerator is not None else None
        forecaster = model_forecaster(model, autocast=autocast)
        methods = {"model": forecaster, "persistence": "persistence"}
        if importlib.util.find_spec("pysteps") is None:
            print('pysteps is not installed: scoring persistence only (pip install -e ".[nowcasting]")')
            return methods
        methods.update(extrapolation="extrapolation", sprog="sprog")
        anvil = resolve_forecasters(["anvil"])["anvil"]
        if whole_domain_test(self.args) is not None and min_input_frames(anvil) <= self.args.num_input_frames:
            methods["anvil"] = anvil
        if getattr(forecaster, "num_members", None) is not None:
            methods["steps"] = steps_beside(forecaster, model.config, self.timestep_minutes)
        return methods

    def test(self, model, accelerator: Accelerator, output_dir: Path) -> dict:
        """Score ``model`` and the baselines on the test split (:func:`evaluate_nowcasts`), or with
        ``data.whole_domain_test`` on each test event's whole grid and then the mean over events
        (:mod:`~bidirectional_conv_lstm.nowcasting.whole_domains`; each event's figures in ``eval/<event>/``); on
        the main process write ``eval/``, ``forecast.png``, ``forecast.gif`` and the model card. Returns the
        results dict."""
        args = self.args
        model.eval()
        by_event = {}  # whole domains: each test event's results
        if whole_domain_test(args) is None:
            tests = {"test": (self.splits["test"], self.eval_context)}
            results = self.score(model, accelerator, *tests["test"])
        else:
            tests, grids = {}, {}
            for event in event_names(args, "test_events"):
                event_args = whole_domain_arguments(args, event)
                grids[event] = event_args.data["tile_size"]
                tests[event] = (load_rain_datasets(event_args, splits=("test",))["test"], 0)
                by_event[event] = self.score(model, accelerator, *tests[event])
            results = mean_results(by_event, grids)
        if accelerator.is_main_process:
            lead_times = [t for t in REPORT_LEAD_TIMES if t <= args.num_output_frames]
            for event, event_results in by_event.items():
                write_nowcast_evaluation(event_results, output_dir / "eval" / event, lead_times=lead_times)
            write_nowcast_evaluation(results, output_dir / "eval", lead_times=lead_times)
            self.save_pictures(model, output_dir, accelerator=accelerator, tests=tests)
            save_nowcasting_card(
                output_dir,
                config=model.config,
                results=results,
                data_info={**(self.splits.get("info") or {}), "pretrained_on": pretraining_info(args)},
                training_config=args.to_dict(),
                base_model=args.model_name_or_path,
                lead_times=lead_times,
            )
        return results

    def score(self, model, accelerator: Accelerator, windows, context: int) -> dict:
        """:func:`evaluate_nowcasts` of the model and the baselines on `windows` (with `context` pixels of
        surroundings), and on the main process the model's motion beside Lucas-Kanade's (``"motion"``)."""
        args = self.args
        results = evaluate_nowcasts(
            windows,
            self.methods(model, accelerator),
            num_input_frames=args.num_input_frames,
            num_output_frames=args.num_output_frames,
            timestep_minutes=self.timestep_minutes,
            batch_size=args.per_device_eval_batch_size,
            accelerator=accelerator,
            max_windows=args.test_num_samples,
            progress=True,
            context=context,
        )
        if accelerator.is_main_process:
            motion = self.motion_check(model, windows, context, accelerator)
            if motion is not None:
                results["motion"] = motion
        return results

    def motion_check(
        self, model, windows, context: int, accelerator: Accelerator | None = None
    ) -> dict | None:
        """The advection head's motion beside Lucas-Kanade's on test `windows`
        (:func:`~bidirectional_conv_lstm.nowcasting.motion.motion_check`); None for a model without an advection head
        or without pysteps."""
        return motion_check(
            model,
            windows,
            num_input_frames=self.args.num_input_frames,
            batch_size=self.args.per_device_eval_batch_size,
            max_windows=self.args.test_num_samples,
            context=context,
            autocast=accelerator.autocast if accelerator is not None else None,
        )

    def save_pictures(
        self,
        model,
        output_dir: Path,
        *,
        max_candidates: int = 64,
        accelerator: Accelerator | None = None,
        tests: dict | None = None,
    ) -> dict[str, Path]:
        """``forecast.png`` (strip) and ``forecast.gif`` of the test window with the most rain (>= 1 mm/h) in its
        future among the first `max_candidates` of each of `tests` (``{name: (windows, context)}``, default the
        test split): observed, truth, and every method's forecast (an ensemble's deterministic product), on the
        scored tile (the forecasters see its context); for each ensemble method also ``<name>_members.png`` and
        ``<name>_exceedance.png``."""
        args = self.args
        tests = tests or {"test": (self.splits["test"], self.eval_context)}
        observed, observed_valid, future, future_valid, context = _rainiest_window(
            tests, args.num_input_frames, args.num_output_frames, max_candidates
        )
        forecasts, ensembles = {}, {}
        for name, forecaster in resolve_forecasters(self.methods(model, accelerator)).items():
            forecast = forecaster(observed, valid=observed_valid, num_output_frames=args.num_output_frames)
            if (
                ensemble_size(name, forecaster) is not None
            ):  # members: their product in the strip, then pictures
                ensembles[name] = crop_context(np.asarray(forecast)[0], context)
                forecast = deterministic_forecast(forecaster, forecast).numpy()
            forecasts[name] = crop_context(np.asarray(forecast)[0], context)
        observed, observed_valid, future, future_valid = (
            crop_context(frames, context)[0] for frames in (observed, observed_valid, future, future_valid)
        )
        options = dict(
            observed_valid=observed_valid, truth_valid=future_valid, timestep_minutes=self.timestep_minutes
        )
        pictures = {}
        for name, members in ensembles.items():  # <name>_members.png, <name>_exceedance.png
            leads = range(0, args.num_output_frames, max(1, args.num_output_frames // 4))
            paths = save_ensemble_pictures(name, members, observed, future, output_dir, leads, **options)
            pictures.update({f"{name}_{kind}": path for kind, path in paths.items()})
        return pictures | {
            "strip": save_radar_strip(
                observed, future, forecasts, output_dir / "forecast.png", scale=2, **options
            ),
            "gif": save_radar_gif(observed, future, forecasts, output_dir / "forecast.gif", **options),
        }


def _rainiest_window(tests: dict, num_input_frames: int, num_output_frames: int, max_candidates: int):
    """``(observed, observed_valid, future, future_valid, context)`` of the window with the most rain (>= 1 mm/h)
    in its future among the first `max_candidates` of each ``(windows, context)`` of `tests`; arrays of one
    window, ``(1, T, H, W)``."""
    best = None
    for windows, context in tests.values():
        count = min(len(windows), max_candidates)
        stored = np.asarray(windows.select(range(count)).with_format("numpy")["rain_rate"])
        decoded = decode_windows(stored, num_input_frames, num_output_frames)
        wet = ((decoded[2] >= 1.0) & decoded[3]).sum(axis=(1, 2, 3))
        index = int(np.argmax(wet))
        if best is None or wet[index] > best[0]:
            best = (wet[index], [frames[index : index + 1] for frames in decoded], context)
    return (*best[1], best[2])


# What the training loop knows of rain-rate windows (training.kinds). pyproject.toml declares it as the entry point
# of "synthetic_rain" and "radar", so a run that names them loads this module; importing it registers them too.
RAIN_RATE_KIND = DatasetKind(
    names=RAIN_RATE_DATASETS,
    check=check_rain_data,
    load=load_rain_datasets,
    task=RainRateTask,
    stream_source=windows_source,  # windows already cut (data.windows) stream; built ones do not
    best_model_metrics=RAIN_BEST_MODEL_METRICS,
)
register_dataset_kind(RAIN_RATE_KIND)


def _metres(event: dict) -> float | None:
    """An event's window pixel size in metres (from :func:`~bidirectional_conv_lstm.data.radar_windows_info`; the
    mean of y and x, which differ by a rounding for FMI's grid), or None when it is unknown or not square."""
    scale = METRES_PER.get(event.get("cartesian_unit") or "m")
    sizes = event.get("pixel_size") or [None, None]
    if scale is None or None in sizes or abs(sizes[0] - sizes[1]) > 1e-3 * max(sizes):
        return None
    return float(sizes[0] + sizes[1]) / 2 * scale
