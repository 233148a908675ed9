"""Evaluation of a frame-prediction model against the trivial baselines, with tables, JSON and plots."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from ..data import SPLITS, FramePredictionCollator, load_moving_mnist_test_file, mean_pixel_value
from ..utils.hardware import make_accelerator
from ..utils.loading import load_pretrained_model
from ..utils.visualize import plot_lead_time
from .arguments import TrainingArguments
from .data_sources import load_datasets
from .metrics import BASELINES, FrameMetricsAccumulator, baseline_predictions, format_metrics_table

__all__ = ["evaluate_dataloader", "write_evaluation", "evaluate"]


@torch.no_grad()
def evaluate_dataloader(
    model,
    dataloader: Iterable[Mapping],
    accelerator=None,
    *,
    mean_value: float | None = None,
    baselines: bool = True,
    max_batches: int | None = None,
) -> dict:
    """Score ``model`` (and, when asked, the baselines) on batches of ``pixel_values`` / ``labels``.

    The metrics stream: only per-lead-time sums are kept. With an ``accelerate.Accelerator`` the per-sample
    metrics of all processes are gathered (``gather_for_metrics``), and predictions run under its autocast.

    Args:
        model: a :class:`ConvLSTMForFramePrediction` (or anything returning ``.predictions``).
        dataloader: batches ``{"pixel_values": (B, T_in, C, H, W), "labels": (B, T_out, C, H, W)}`` in [0, 1].
        accelerator: optional ``accelerate.Accelerator``.
        mean_value: the training set's mean pixel value (the "mean" baseline); without it that baseline is skipped.
        baselines: also score copy-last-frame, all-zero and mean-frame predictions.
        max_batches: stop after this many batches.

    Returns:
        the model's metrics (``mse``, ``mae``, ``psnr``, ``ssim``, ``ssim_openstl``, each with ``*_per_frame``,
        and ``num_samples``), plus ``"baselines": {kind: metrics}`` when ``baselines``.
    """
    was_training = model.training
    model.eval()
    model_metrics = FrameMetricsAccumulator(gather=accelerator)
    kinds = [k for k in BASELINES if k != "mean" or mean_value is not None] if baselines else []
    baseline_metrics = {kind: FrameMetricsAccumulator(gather=accelerator) for kind in kinds}
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    for index, batch in enumerate(dataloader):
        if max_batches is not None and index >= max_batches:
            break
        pixel_values = batch["pixel_values"].to(device)
        labels = batch["labels"].to(device)
        if accelerator is not None:
            with accelerator.autocast():
                predictions = model(pixel_values=pixel_values, num_output_frames=labels.shape[1]).predictions
        else:
            predictions = model(pixel_values=pixel_values, num_output_frames=labels.shape[1]).predictions
        model_metrics.update(predictions.float(), labels)
        for kind, accumulator in baseline_metrics.items():
            accumulator.update(baseline_predictions(pixel_values, labels.shape[1], kind, mean_value), labels)
    model.train(was_training)
    results = model_metrics.compute()
    if baseline_metrics:
        results["baselines"] = {kind: accumulator.compute() for kind, accumulator in baseline_metrics.items()}
    return results


def write_evaluation(results: Mapping, output_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``metrics.json``, ``metrics.md`` (model beside baselines, with ratios) and ``lead_time.png``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": output_dir / "metrics.json",
        "table": output_dir / "metrics.md",
        "plot": output_dir / "lead_time.png",
    }
    paths["json"].write_text(json.dumps(results, indent=2))
    paths["table"].write_text(metrics_report(results) + "\n")
    plot_lead_time(results, paths["plot"])
    return paths


def metrics_report(results: Mapping) -> str:
    """A Markdown table of the model and its baselines, and how the model's MSE compares with the best one."""
    rows = {"model": results}
    rows.update({f"baseline: {kind}": values for kind, values in results.get("baselines", {}).items()})
    text = format_metrics_table(rows)
    baselines = results.get("baselines", {})
    if baselines:
        best_kind = min(baselines, key=lambda kind: baselines[kind]["mse"])
        ratio = results["mse"] / baselines[best_kind]["mse"]
        text += (
            f"\n\nModel MSE / best baseline MSE ({best_kind}): {ratio:.3f}; "
            f"evaluated on {results['num_samples']} sequences."
        )
    return text


def evaluate(
    model_name_or_path: str,
    *,
    dataset: str = "moving_mnist",
    split: str = "test",
    data: Mapping | None = None,
    num_input_frames: int | None = None,
    num_output_frames: int | None = None,
    batch_size: int = 32,
    max_samples: int | None = None,
    output_dir: str | os.PathLike | None = None,
    mixed_precision: str = "no",
) -> dict:
    """Evaluate a saved model (folder or Hub id) on a dataset split; write the report when ``output_dir``.

    Args:
        model_name_or_path: a ``save_pretrained`` folder or a Hub repo id.
        dataset: ``"moving_mnist"``, ``"moving_mnist_test_file:<path to mnist_test_seq.npy>"``, a folder of
            sequences, or a ``datasets`` name/path with a ``frames`` column.
        split: which split (train / validation / test).
        data: data options as in the training config (e.g. Moving MNIST generation fields, ``cache_dir``).
        num_input_frames, num_output_frames: default to the model config's.
        batch_size, max_samples: evaluation batch size and an optional cap on sequences.
        output_dir: where to write metrics.json, metrics.md and lead_time.png.
        mixed_precision: "no", "fp16", "bf16" or "auto" (as training resolves it: bf16 where it is faster).

    Returns:
        the results dict of :func:`evaluate_dataloader` (with baselines).
    """
    from torch.utils.data import DataLoader

    if split not in SPLITS:
        raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}")
    model = load_pretrained_model(model_name_or_path)  # clear errors for a missing folder / repo, bad weights
    num_input_frames = num_input_frames or model.config.num_input_frames
    num_output_frames = num_output_frames or model.config.num_output_frames
    accelerator, _ = make_accelerator(mixed_precision)
    if dataset.startswith("moving_mnist_test_file:"):
        evaluation_set = load_moving_mnist_test_file(dataset.split(":", 1)[1])
        mean_value = mean_pixel_value(evaluation_set, max_sequences=1000)
    else:
        args = TrainingArguments(
            dataset=dataset,
            data=dict(data or {}),
            model_name_or_path=model_name_or_path,
            num_input_frames=num_input_frames,
            num_output_frames=num_output_frames,
        )
        splits = load_datasets(args)
        evaluation_set = splits[split]
        mean_value = mean_pixel_value(splits["train"], max_sequences=1000)
    if max_samples is not None and hasattr(evaluation_set, "select"):
        evaluation_set = evaluation_set.select(range(min(max_samples, len(evaluation_set))))
    loader = DataLoader(
        evaluation_set,
        batch_size=batch_size,
        collate_fn=FramePredictionCollator(num_input_frames, num_output_frames),
    )
    model, loader = accelerator.prepare(model, loader)
    results = evaluate_dataloader(accelerator.unwrap_model(model), loader, accelerator, mean_value=mean_value)
    if output_dir is not None and accelerator.is_main_process:
        write_evaluation(results, output_dir)
    return results
