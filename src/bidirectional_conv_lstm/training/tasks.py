"""What the training loop trains on: the task object that knows the data's collator, the model's inputs, the
validation scores and the final test, for frames in [0, 1] (:class:`FramePredictionTask`); other kinds of data
bring their own through :mod:`.kinds`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from ..data import FramePredictionCollator, mean_pixel_value
from ..utils.cards import save_model_card
from ..utils.visualize import save_prediction_strip
from .arguments import TrainingArguments
from .evaluation import evaluate_dataloader, write_evaluation
from .metrics import evaluate_baselines

__all__ = ["FramePredictionTask", "make_task", "subset", "training_mean"]


def subset(dataset, count: int | None):
    """The first `count` rows of `dataset` (all of it when `count` is None or not smaller)."""
    if count is None or not hasattr(dataset, "select") or count >= len(dataset):
        return dataset
    return dataset.select(range(count))


def training_mean(dataset) -> float:
    """The mean pixel value of (up to 1000 sequences of) the training split: the "mean" baseline's frame."""
    return mean_pixel_value(dataset, max_sequences=1000)


class FramePredictionTask:
    """What the loop needs to know about its data, for frames in [0, 1] (Moving MNIST, video): the collator,
    the model's inputs in a batch, the validation scores and the final test evaluation.

    :class:`~bidirectional_conv_lstm.nowcasting.task.RainRateTask` is the rain-rate counterpart.
    """

    def __init__(self, args: TrainingArguments, splits: dict):
        self.args, self.splits = args, splits
        self.collator = FramePredictionCollator(args.num_input_frames, args.num_output_frames)
        self.mean_value = training_mean(splits["train"])
        self.validation_baselines = None

    def describe_data(self, config) -> None:
        """Record in the model's config what it learns from the data (frames carry no grid or clock here)."""

    def model_inputs(self, batch: dict) -> dict:
        """The batch entries the model's ``forward`` takes."""
        return batch

    def validate(self, model, loader, accelerator: Accelerator, step: int) -> dict:
        """Validation scores (with ``args.metric_for_best_model``), logged and printed."""

        metrics = evaluate_dataloader(model, loader, accelerator, mean_value=self.mean_value, baselines=False)
        baselines = self.validation_baselines
        if baselines is None:  # they do not change: score them once per run
            baselines = self.validation_baselines = evaluate_baselines(
                loader, mean_value=self.mean_value, gather=accelerator
            )
            accelerator.log(
                {
                    f"validation/baseline_{kind}/{name}": values[name]
                    for kind, values in baselines.items()
                    for name in ("mse", "mae", "psnr", "ssim")
                },
                step=step,
            )
        best_kind = min(baselines, key=lambda kind: baselines[kind]["mse"])
        metrics["mse_vs_best_baseline"] = metrics["mse"] / baselines[best_kind]["mse"]
        accelerator.log(
            {f"validation/{k}": v for k, v in metrics.items() if not isinstance(v, list)}, step=step
        )
        accelerator.print(
            f"step {step}: validation mse {metrics['mse']:.2f} ({metrics['mse_vs_best_baseline']:.3f}x "
            f"the {best_kind} baseline) ssim {metrics['ssim']:.4f}"
        )
        return metrics

    def test(self, model, accelerator: Accelerator, output_dir: Path) -> dict:
        """Score ``model`` (the best one) on the test split beside the baselines; on the main process write
        ``eval/``, ``prediction.png`` and the model card. Returns the test metrics."""

        args, splits, collator = self.args, self.splits, self.collator
        test_loader = accelerator.prepare(
            DataLoader(
                subset(splits["test"], args.test_num_samples),
                batch_size=args.per_device_eval_batch_size,
                collate_fn=collator,
            )
        )
        test_metrics = evaluate_dataloader(
            model, test_loader, accelerator, mean_value=self.mean_value, baselines=True
        )
        if accelerator.is_main_process:
            write_evaluation(test_metrics, output_dir / "eval")
            sample = collator([splits["test"][i] for i in range(min(4, len(splits["test"])))])
            with torch.no_grad():
                prediction = model(
                    pixel_values=sample["pixel_values"].to(accelerator.device)
                ).predictions.cpu()
            save_prediction_strip(
                sample["pixel_values"], sample["labels"], prediction, output_dir / "prediction.png"
            )
            save_model_card(
                output_dir,
                config=model.config,
                results=test_metrics,
                training_config=args.to_dict(),
                dataset_name=args.dataset,
                base_model=args.model_name_or_path,
            )
        return test_metrics


def make_task(args: TrainingArguments, splits: dict):
    """The task object for the run's data: the registered kind's (:mod:`.kinds`, e.g. rain-rate windows), else
    :class:`FramePredictionTask`."""
    kind = args.kind
    return FramePredictionTask(args, splits) if kind is None else kind.task(args, splits)
