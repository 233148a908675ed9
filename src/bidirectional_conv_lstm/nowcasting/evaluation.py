"""Score nowcasts (the model and the baselines) on rain-rate windows, the way weather services verify them.

Every method goes through the same code: each batch of windows (the ``rain_rate`` column of the
:mod:`bidirectional_conv_lstm.data.rain.storage` schema) is decoded to mm/h once, split into the observed frames and the future, every
forecaster is called as ``forecaster(observed, valid=observed_valid, num_output_frames=T_out)`` (the signature
of :mod:`bidirectional_conv_lstm.nowcasting.baselines`; a model is wrapped in a callable with that signature) and its forecast goes to
its own :class:`~.verification.NowcastVerifier` with the future's no-data mask. Scores are therefore pooled
over the same windows and the same valid pixels for every method.

An **ensemble** forecaster (one with a ``num_members`` attribute, N >= 2, e.g.
:func:`~.baselines.steps_forecast`) returns its members (B, N, T_out, H, W): they go to an
:class:`~.ensemble_verification.EnsembleVerifier` (CRPS, rank histogram, Brier / reliability, ROC, spread / skill)
and its deterministic product (:func:`deterministic_forecast`: the members' mean, or what the forecaster's
``deterministic(members)`` returns) to the usual ``NowcastVerifier`` under the same name, so the deterministic
tables compare every method (:class:`EnsembleNowcastVerifier` holds the pair).

Results are a plain dict (written as ``metrics.json``)::

    {"num_windows": N, "num_input_frames": 4, "num_output_frames": 12, "timestep_minutes": 5 | None,
     "thresholds": [...], "fss_windows": [...], "context": pixels seen around each tile, not scored (if any),
     "methods": {name: {"overall": {"csi@1": ..., "fss@1/16": ..., "mae": ...},
                        "per_lead_time": {...}, "seconds_per_window": ...}},
     an ensemble method's entry also: "num_members": N, "probabilistic": {"overall": {"crps": ..., "bss@1": ...},
         "per_lead_time": {...}, "curves": {"overall": {"rank_histogram": [...], ...}, "per_lead_time": ...},
         "num_samples": ...}; then the results have "probability_thresholds": [...] too}

and as Markdown tables (:mod:`bidirectional_conv_lstm.nowcasting.tables`: methods as rows; CSI at each threshold, CSI-M, FSS at 1 mm/h
per window, MAE, MSE; overall or at one lead time; a second table for the ensemble methods).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from ..data import SPLITS
from ..data.rain.storage import crop_context, decode_windows
from ..models.convlstm.argument_checks import check_int
from ..models.convlstm.configuration_convlstm import ConvLSTMConfig
from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction
from ..utils.hardware import make_accelerator
from .baselines import get_baselines, min_input_frames, model_forecaster, steps_beside
from .data import RAIN_RATE_DATASETS, eval_context, load_rain_datasets, scoring_arguments, timestep_minutes
from .ensemble_pictures import plot_rank_histograms, plot_reliability_diagram
from .ensemble_verification import DEFAULT_PROBABILITY_THRESHOLDS, EnsembleVerifier
from .motion import motion_check
from .pictures import plot_scores_by_lead_time
from .tables import ensemble_methods, format_scores_table, nowcast_report, score_value
from .verification import NowcastVerifier

__all__ = [
    "EnsembleNowcastVerifier",
    "deterministic_forecast",
    "ensemble_size",
    "evaluate_nowcasts",
    "evaluate_rain_dataset",
    "format_scores_table",
    "nowcast_report",
    "resolve_forecasters",
    "results_from_verifiers",
    "score_nowcasts",
    "score_value",
    "write_nowcast_evaluation",
]

Forecaster = Callable[..., object]


def resolve_forecasters(methods) -> dict[str, Forecaster]:
    """``methods`` as ``{name: forecaster}``.

    Args:
        methods: baseline names (``["persistence", "extrapolation", "sprog"]``), or a mapping from a name to a
            baseline name or to a callable ``forecaster(observed, valid=None, *, num_output_frames)`` returning
            mm/h (B, T_out, H, W) (numpy or torch), e.g. ``{"model": model_forecaster, "persistence":
            "persistence"}``; a callable with a ``num_members`` attribute N >= 2 returns (B, N, T_out, H, W)
            members (:func:`ensemble_size`), as the ``"steps"`` baseline does.
    """
    if isinstance(methods, str):
        methods = [methods]
    if not isinstance(methods, Mapping):
        if not isinstance(methods, Iterable):
            raise TypeError(f"methods must be names or a mapping of name -> forecaster, got {methods!r}")
        methods = {name: name for name in methods}
    if not methods:
        raise ValueError("methods is empty; expected at least one forecaster")
    # Baselines named together share one Lucas-Kanade motion field per batch (same forecasts, less time).
    baselines = get_baselines(dict.fromkeys(m for m in methods.values() if isinstance(m, str)))
    forecasters = {}
    for name, method in methods.items():
        if isinstance(method, str):
            forecasters[str(name)] = baselines[method]
        elif callable(method):
            forecasters[str(name)] = method
        else:
            raise TypeError(
                f"method {name!r} must be a baseline name or a callable, got {type(method).__name__}"
            )
    return forecasters


def ensemble_size(name: str, forecaster: Forecaster) -> int | None:
    """The members N of an ensemble forecaster (its ``num_members`` attribute), None for a deterministic one.

    Raises:
        ValueError: ``num_members`` is no int >= 2.
    """
    members = getattr(forecaster, "num_members", None)
    if members is None:
        return None
    if isinstance(members, bool) or not isinstance(members, (int, np.integer)) or members < 2:
        raise ValueError(
            f"forecaster {name!r} has num_members={members!r}; expected an int >= 2 (an ensemble returning "
            "(B, N, T, H, W) members) or no num_members attribute (a single forecast (B, T, H, W))"
        )
    return int(members)


def deterministic_forecast(forecaster: Forecaster, members) -> torch.Tensor:
    """The single forecast an ensemble stands for in the deterministic scores: ``forecaster.deterministic(members)``
    when the forecaster offers one, else the members' mean.

    Args:
        forecaster: an ensemble forecaster (see :func:`ensemble_size`).
        members: mm/h (B, N, T, H, W), numpy or torch.

    Returns:
        CPU float32 tensor (B, T, H, W) (its shape is the caller's to check).
    """
    members = torch.as_tensor(members.detach().cpu() if isinstance(members, torch.Tensor) else members)
    product = getattr(forecaster, "deterministic", None)
    if product is None:
        return members.float().mean(1)
    product = product(members)
    return torch.as_tensor(product.detach().cpu() if isinstance(product, torch.Tensor) else product).float()


class EnsembleNowcastVerifier:
    """The two verifiers of one ensemble method: an :class:`EnsembleVerifier` for its members and a
    :class:`NowcastVerifier` for its deterministic product (:func:`deterministic_forecast`), updated, merged and
    computed together (so it pools over events as a ``NowcastVerifier`` does).

    Args:
        deterministic: the verifier of the deterministic product.
        ensemble: the verifier of the members.
    """

    def __init__(self, deterministic: NowcastVerifier, ensemble: EnsembleVerifier):
        self.deterministic, self.ensemble = deterministic, ensemble

    def __repr__(self) -> str:
        return f"EnsembleNowcastVerifier({self.deterministic!r}, {self.ensemble!r})"

    def update(self, members, forecast, observed, valid=None) -> None:
        """Add a batch: members (B, N, T, H, W), their deterministic product and the observation (B, T, H, W)."""
        self.deterministic.update(forecast, observed, valid)
        self.ensemble.update(members, observed, valid)

    def merge(self, other: EnsembleNowcastVerifier) -> EnsembleNowcastVerifier:
        """Add ``other``'s sums to this one's; returns self."""
        if not isinstance(other, EnsembleNowcastVerifier):
            raise TypeError(f"other must be an EnsembleNowcastVerifier, got {type(other).__name__}")
        self.deterministic.merge(other.deterministic)
        self.ensemble.merge(other.ensemble)
        return self

    def compute(self) -> dict:
        """``NowcastVerifier.compute()``'s dict with ``"probabilistic"`` (``EnsembleVerifier.compute()`` without
        its ``num_members``) and ``"num_members"``."""
        probabilistic = self.ensemble.compute()
        num_members = probabilistic.pop("num_members")
        return {**self.deterministic.compute(), "probabilistic": probabilistic, "num_members": num_members}


def _make_verifiers(sizes: Mapping[str, int | None], thresholds, fss_windows, probability_thresholds, gather):
    """``{name: NowcastVerifier}``, an :class:`EnsembleNowcastVerifier` for the ensembles (``sizes`` not None)."""
    verifiers = {}
    for name, size in sizes.items():
        deterministic = NowcastVerifier(thresholds=thresholds, fss_windows=fss_windows, gather=gather)
        if size is None:
            verifiers[name] = deterministic
        else:
            ensemble = EnsembleVerifier(thresholds=probability_thresholds, gather=gather)
            verifiers[name] = EnsembleNowcastVerifier(deterministic, ensemble)
    return verifiers


def _check_input_frames(forecasters: Mapping[str, Forecaster], num_input_frames: int) -> None:
    """Every forecaster gets the observed frames it needs (:func:`~.baselines.min_input_frames`), else a
    ValueError naming them, before any forecast."""
    short = {
        name: needed
        for name, forecaster in forecasters.items()
        if (needed := min_input_frames(forecaster)) > num_input_frames
    }
    if short:
        raise ValueError(
            f"num_input_frames={num_input_frames} is too few for {short} (the observed frames each method needs "
            "at least); give more input frames or leave those methods out"
        )


def _check_context(context, shape) -> int:
    context = check_int("context", context, minimum=0)  # pixels around each tile
    if 2 * context >= min(shape[-2:]):
        raise ValueError(
            f"context={context} leaves nothing of windows {shape[-2]} x {shape[-1]} pixels to score; expected "
            f"less than half the smaller side"
        )
    return int(context)


def _collate(rows: list[Mapping]) -> torch.Tensor:
    return torch.stack([torch.as_tensor(np.asarray(row["rain_rate"])) for row in rows])


def _check_frames(name: str, value) -> int:
    return check_int(name, value)


def score_nowcasts(
    windows,
    methods,
    *,
    num_input_frames: int,
    num_output_frames: int,
    thresholds: Iterable[float] = (0.5, 1, 2, 5, 10),
    fss_windows: Iterable[int] = (1, 4, 16),
    batch_size: int = 8,
    accelerator=None,
    max_windows: int | None = None,
    progress: bool = False,
    context: int = 0,
    probability_thresholds: Iterable[float] = DEFAULT_PROBABILITY_THRESHOLDS,
) -> tuple[dict, dict[str, float], int]:
    """Stream ``windows`` through every forecaster into one :class:`NowcastVerifier` per method (an
    :class:`EnsembleNowcastVerifier` per ensemble method).

    Args:
        windows: a map-style dataset of rows with ``rain_rate`` (T, 1, H, W) in the stored uint16 form (a
            ``datasets.Dataset`` in the :mod:`bidirectional_conv_lstm.data.rain.storage` schema, any other torch-style dataset).
        methods: see :func:`resolve_forecasters`.
        num_input_frames, num_output_frames: frames given to the forecasters and frames scored.
        thresholds, fss_windows: rain-rate thresholds (mm/h) and FSS window sizes (pixels) of the verifiers.
        batch_size: windows per forecaster call.
        accelerator: optional ``accelerate.Accelerator``: windows are shared out over its processes and the
            verifiers gather them (every process ends with the same scores).
        max_windows: score only the first windows.
        progress: a progress bar (main process).
        context: pixels on every side of each window that the forecasters see but that are not scored (the
            surroundings of ``RadarWindowsConfig.eval_context``): forecasts and the future are cropped to the
            tile before verification.
        probability_thresholds: rain rates (mm/h) of the ensembles' exceedance probabilities (Brier,
            reliability, ROC); unused without an ensemble method.

    Returns:
        ``({name: NowcastVerifier or EnsembleNowcastVerifier}, {name: seconds in the forecaster per window},
        number of windows scored)``; the seconds are this process's.
    """
    num_input_frames = _check_frames("num_input_frames", num_input_frames)
    num_output_frames = _check_frames("num_output_frames", num_output_frames)
    batch_size = _check_frames("batch_size", batch_size)
    forecasters = resolve_forecasters(methods)
    _check_input_frames(forecasters, num_input_frames)
    sizes = {name: ensemble_size(name, forecaster) for name, forecaster in forecasters.items()}
    windows, context = _checked_windows(windows, num_input_frames, num_output_frames, context, max_windows)
    verifiers = _make_verifiers(
        sizes, tuple(thresholds), tuple(fss_windows), tuple(probability_thresholds), accelerator
    )
    seconds = dict.fromkeys(forecasters, 0.0)
    count = 0
    for stored in _window_batches(windows, batch_size, accelerator, progress):
        observed, observed_valid, future, future_valid = decode_windows(
            stored.cpu(), num_input_frames, num_output_frames
        )
        count += observed.shape[0]
        expected = tuple(future.shape)  # forecasts come with the context; the scores leave it out
        future, future_valid = crop_context(future, context), crop_context(future_valid, context)
        for name, forecaster in forecasters.items():
            start = time.perf_counter()
            forecast = forecaster(observed, valid=observed_valid, num_output_frames=num_output_frames)
            seconds[name] += time.perf_counter() - start
            if sizes[name] is None:
                forecast = _checked_forecast(name, forecast, expected)
                verifiers[name].update(crop_context(forecast, context), future, future_valid)
                continue
            members = _checked_forecast(name, forecast, (expected[0], sizes[name], *expected[1:]))
            product = deterministic_forecast(forecaster, members)
            product = _checked_forecast(f"{name}.deterministic", product, expected)
            verifiers[name].update(
                crop_context(members, context), crop_context(product, context), future, future_valid
            )
    return verifiers, {name: value / max(count, 1) for name, value in seconds.items()}, len(windows)


def _checked_windows(windows, num_input_frames: int, num_output_frames: int, context, max_windows):
    """``windows`` (the first ``max_windows``) handing out numpy ``rain_rate`` arrays, and the checked context;
    the first window's shape is checked before any forecaster runs."""
    from torch.utils.data import Subset

    if len(windows) == 0:
        raise ValueError("windows is empty; expected at least one rain-rate window")
    if hasattr(windows, "with_format"):  # a datasets.Dataset: hand out arrays, not nested lists
        windows = windows.with_format("numpy", columns=["rain_rate"])
    first = np.asarray(windows[0]["rain_rate"])[None]
    decode_windows(first, num_input_frames, num_output_frames)  # shape check before any heavy work
    context = _check_context(context, first.shape)
    if max_windows is not None:
        windows = Subset(windows, range(min(_check_frames("max_windows", max_windows), len(windows))))
    return windows, context


def _window_batches(windows, batch_size: int, accelerator, progress: bool) -> Iterable[torch.Tensor]:
    """Batches of stored windows (uint16 (B, T, 1, H, W)), shared out over ``accelerator``'s processes."""
    from torch.utils.data import DataLoader

    loader = DataLoader(windows, batch_size=batch_size, collate_fn=_collate)
    if accelerator is not None:
        loader = accelerator.prepare(loader)
    if progress and (accelerator is None or accelerator.is_main_process):
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="nowcasts", unit="batch")
    return loader


def _checked_forecast(name: str, forecast, expected: tuple[int, ...]) -> torch.Tensor:
    """A forecaster's output (numpy or torch) as a CPU float32 tensor, once its shape is the future's (B, T, H, W),
    or (B, N, T, H, W) for an ensemble of N members."""
    if tuple(forecast.shape) != expected:
        layout = "(B, N, T, H, W) members" if len(expected) == 5 else "(B, T, H, W)"
        hint = ""
        if len(expected) == 4 and len(forecast.shape) == 5:
            hint = " (an ensemble forecaster says so in a num_members attribute, e.g. forecaster.num_members = N)"
        raise ValueError(
            f"forecaster {name!r} returned shape {tuple(forecast.shape)}, expected {layout} = {expected}{hint}"
        )
    # One kind of array for the verifier: CPU float32 tensors, as the decoded future.
    forecast = torch.as_tensor(forecast.detach().cpu() if isinstance(forecast, torch.Tensor) else forecast)
    return forecast.float()


def evaluate_nowcasts(
    windows,
    methods,
    *,
    num_input_frames: int,
    num_output_frames: int,
    thresholds: Iterable[float] = (0.5, 1, 2, 5, 10),
    fss_windows: Iterable[int] = (1, 4, 16),
    timestep_minutes: float | None = None,
    batch_size: int = 8,
    accelerator=None,
    max_windows: int | None = None,
    output_dir: str | os.PathLike | None = None,
    progress: bool = False,
    context: int = 0,
    probability_thresholds: Iterable[float] = DEFAULT_PROBABILITY_THRESHOLDS,
) -> dict:
    """Score every method on ``windows`` (see :func:`score_nowcasts`) and, with ``output_dir``, write
    metrics.json, metrics.md and the pictures of :func:`write_nowcast_evaluation` (main process).

    Returns:
        the results dict described in the module docstring.
    """
    thresholds, fss_windows = tuple(thresholds), tuple(fss_windows)
    verifiers, seconds, num_windows = score_nowcasts(
        windows,
        methods,
        num_input_frames=num_input_frames,
        num_output_frames=num_output_frames,
        thresholds=thresholds,
        fss_windows=fss_windows,
        batch_size=batch_size,
        accelerator=accelerator,
        max_windows=max_windows,
        progress=progress,
        context=context,
        probability_thresholds=probability_thresholds,
    )
    results = results_from_verifiers(
        verifiers,
        num_windows=num_windows,
        num_input_frames=num_input_frames,
        num_output_frames=num_output_frames,
        thresholds=thresholds,
        fss_windows=fss_windows,
        timestep_minutes=timestep_minutes,
        seconds_per_window=seconds,
    )
    if context:
        results["context"] = context
    if output_dir is not None and (accelerator is None or accelerator.is_main_process):
        write_nowcast_evaluation(results, output_dir)
    return results


def evaluate_rain_dataset(
    dataset: str,
    *,
    data: Mapping | None = None,
    split: str = "test",
    baselines: Iterable[str] = (),
    model_name_or_path: str | None = None,
    num_input_frames: int | None = None,
    num_output_frames: int | None = None,
    batch_size: int = 8,
    max_samples: int | None = None,
    output_dir: str | os.PathLike | None = None,
    mixed_precision: str = "no",
) -> dict:
    """Score a saved rain-rate model and/or baselines on a split of ``"synthetic_rain"`` or ``"radar"`` windows.

    Args:
        dataset: ``"synthetic_rain"`` or ``"radar"``; ``data`` holds their options as in a training config
            (see :func:`~bidirectional_conv_lstm.nowcasting.task.load_rain_datasets`: e.g. ``root``, ``events``, ``test_events``).
        split: train / validation / test.
        baselines: baseline names (:func:`~bidirectional_conv_lstm.nowcasting.baselines.get_baseline`).
        model_name_or_path: a saved rain-rate model (folder or Hub id), scored as ``"model"``.
        num_input_frames, num_output_frames: default to the model's, else 4 and 12.
        batch_size, max_samples, output_dir, mixed_precision: as in :func:`.evaluation.evaluate`.

    Returns:
        the results dict of :func:`evaluate_nowcasts` (written to ``output_dir`` when given), with ``"motion"``
        for a model with an advection head when pysteps is installed (its motion beside Lucas-Kanade's,
        :func:`~bidirectional_conv_lstm.nowcasting.motion.motion_check`).
    """
    _check_rain_evaluation(dataset, split, model_name_or_path, baselines)
    methods = resolve_forecasters(list(baselines)) if baselines else {}
    config = None
    if model_name_or_path is not None:  # its config first (small): the frame counts the data is checked with
        config = ConvLSTMConfig.from_pretrained(model_name_or_path)
        num_input_frames = num_input_frames or config.num_input_frames
        num_output_frames = num_output_frames or config.num_output_frames
    # The data options are read and checked as a training run's, but only the scored split needs windows.
    args = scoring_arguments(dataset, data or {}, num_input_frames or 4, num_output_frames or 12)
    _check_input_frames(methods, args.num_input_frames)
    accelerator, _ = make_accelerator(mixed_precision)
    model = None
    if config is not None:
        model = ConvLSTMForFramePrediction.from_pretrained(model_name_or_path).eval()
        methods = _with_model(model, methods, accelerator)
    # Every check the options and the model's config allow is done: the windows (the slow part) come last.
    loaded = load_rain_datasets(args, splits=(split,))  # and "info" (windows already cut: their clock)
    if model is not None:
        model.to(accelerator.device)
    results = evaluate_nowcasts(
        loaded[split],
        methods,
        num_input_frames=args.num_input_frames,
        num_output_frames=args.num_output_frames,
        timestep_minutes=timestep_minutes(args, loaded.get("info")),
        batch_size=batch_size,
        accelerator=accelerator,
        max_windows=max_samples,
        progress=True,
        context=eval_context(args),
    )
    if model is not None and accelerator.is_main_process:
        motion = motion_check(
            model,
            loaded[split],
            num_input_frames=args.num_input_frames,
            batch_size=batch_size,
            max_windows=max_samples,
            context=eval_context(args),
            autocast=accelerator.autocast,
        )
        if motion is not None:
            results["motion"] = motion
    if output_dir is not None and accelerator.is_main_process:
        write_nowcast_evaluation(results, output_dir)
    return results


def _with_model(model, methods: dict, accelerator) -> dict:
    """The model's forecaster first, then the baselines; a ``"steps"`` among them becomes the STEPS the model is
    scored beside (as many members as its ensemble, on its grid: :func:`~.baselines.steps_beside`)."""
    forecaster = model_forecaster(model, autocast=accelerator.autocast)
    methods = {"model": forecaster, **methods}
    if "steps" in methods:
        methods["steps"] = steps_beside(forecaster, model.config)
    return methods


def _check_rain_evaluation(dataset: str, split: str, model_name_or_path: str | None, baselines) -> None:
    """A rain-rate dataset, a split, and something to score, before anything is loaded."""
    if dataset not in RAIN_RATE_DATASETS:
        raise ValueError(
            f"dataset must be one of {RAIN_RATE_DATASETS} for nowcast evaluation, got {dataset!r}"
        )
    if split not in SPLITS:
        raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}")
    if model_name_or_path is None and not baselines:
        raise ValueError("nothing to evaluate: give model_name_or_path and/or baselines")


def results_from_verifiers(
    verifiers: Mapping,
    *,
    num_windows: int,
    num_input_frames: int,
    num_output_frames: int,
    thresholds,
    fss_windows,
    timestep_minutes: float | None = None,
    seconds_per_window: Mapping[str, float] | None = None,
) -> dict:
    """The results dict (module docstring) from ``{name: NowcastVerifier or EnsembleNowcastVerifier}`` (e.g.
    merged over events)."""
    methods, probability_thresholds = {}, None
    for name, verifier in verifiers.items():
        scores = verifier.compute()
        methods[name] = {"overall": scores["overall"], "per_lead_time": scores["per_lead_time"]}
        if "probabilistic" in scores:
            methods[name]["num_members"] = scores["num_members"]
            methods[name]["probabilistic"] = scores["probabilistic"]
            probability_thresholds = [float(t) for t in verifier.ensemble.thresholds]
        if seconds_per_window is not None and name in seconds_per_window:
            methods[name]["seconds_per_window"] = seconds_per_window[name]
    results = {
        "num_windows": num_windows,
        "num_input_frames": num_input_frames,
        "num_output_frames": num_output_frames,
        "timestep_minutes": timestep_minutes,
        "thresholds": [float(t) for t in thresholds],
        "fss_windows": [int(w) for w in fss_windows],
        "methods": methods,
    }
    if probability_thresholds is not None:
        results["probability_thresholds"] = probability_thresholds
    return results


def write_nowcast_evaluation(
    results: Mapping, output_dir: str | os.PathLike, *, lead_times: Iterable[int] = ()
) -> dict[str, Path]:
    """Write ``metrics.json``, ``metrics.md`` (:func:`nowcast_report`) and ``scores_by_lead_time.png``; with an
    ensemble method also ``reliability.png`` (the reliability diagram at 1 mm/h, or the first probability
    threshold without 1) and ``rank_histograms.png``.

    Returns:
        ``{"json", "table", "plot"}`` (and ``"reliability"``, ``"rank_histograms"``) -> the paths written.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": output_dir / "metrics.json",
        "table": output_dir / "metrics.md",
        "plot": output_dir / "scores_by_lead_time.png",
    }
    paths["json"].write_text(json.dumps(results, indent=2, default=float))
    paths["table"].write_text(nowcast_report(results, lead_times=lead_times) + "\n")
    plot_scores_by_lead_time(results, paths["plot"])
    ensembles = ensemble_methods(results)
    if ensembles:
        thresholds = results.get("probability_thresholds") or [1.0]
        threshold = 1.0 if any(np.isclose(t, 1.0) for t in thresholds) else thresholds[0]
        paths["reliability"] = plot_reliability_diagram(ensembles, threshold, output_dir / "reliability.png")
        paths["rank_histograms"] = plot_rank_histograms(ensembles, output_dir / "rank_histograms.png")
    return paths
