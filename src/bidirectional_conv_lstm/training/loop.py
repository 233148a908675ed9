"""The Accelerate training loop behind ``scripts/train.py``.

One code path for one CPU, several CPU processes (gloo), one or many GPUs and several machines: launch it with
``accelerate launch``. It follows transformers' ``run_*_no_trainer.py`` examples (``prepare``, ``accumulate``,
``save_state``/``load_state``, ``gather_for_metrics``, tqdm on the main process, ``save_pretrained``), resuming
from the step recorded inside the checkpoint rather than from the folder's name.

Output folder::

    output_dir/
      training_config.yaml      the resolved run configuration
      config.json, model.safetensors, *.py, README.md (model card), prediction.png   the best model
      eval/                     metrics.json, metrics.md, lead_time.png (final test evaluation)
      checkpoints/checkpoint-000250/   accelerate state + trainer_state.json (last K kept)
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, broadcast, set_seed
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction
from ..models.convlstm.pipeline_convlstm import save_frame_prediction_model
from ..utils.hardware import make_accelerator
from ..utils.hub_upload import upload_model_folder
from ..utils.loading import load_pretrained_model
from ..utils.threads import ThreadTuner
from ..utils.visualize import prediction_strip
from .arguments import ARCHITECTURE_FINE_TUNING_FIELDS, TrainingArguments
from .checkpoints import restored_state, save_checkpoint
from .data_sources import load_datasets
from .schedules import RunProgress, learning_rate_factor
from .streaming import process_stream, streamed_batches, streamed_train_batches
from .tasks import make_task, subset

__all__ = ["build_model", "train"]

# The clock of the time budget (max_train_minutes); tests replace it with a fake one.
_clock = time.perf_counter


# --------------------------------------------------------------------------- model
def build_model(args: TrainingArguments):
    """A new :class:`ConvLSTMForFramePrediction` from ``args.model``, or a pretrained one to fine-tune."""
    if args.model_name_or_path is not None:
        # fields that add modules (a noise injection) are given to from_pretrained, which builds and initialises them
        architecture = {key: args.model[key] for key in ARCHITECTURE_FINE_TUNING_FIELDS if key in args.model}
        model = load_pretrained_model(args.model_name_or_path, argument="model_name_or_path", **architecture)
        if args.model:  # the fine-tuning settings (training_args.FINE_TUNING_FIELDS)
            args.fine_tuning_config(model.config)
        return model
    return ConvLSTMForFramePrediction(args.model_config())


# --------------------------------------------------------------------------- loop
def _make_accelerator(args: TrainingArguments) -> tuple[Accelerator, TrainingArguments, str | None]:
    """The run's Accelerator, with ``mixed_precision: auto`` resolved (the returned ``args`` name the choice, and
    the note says why)."""
    accelerator, precision_note = make_accelerator(
        args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=args.output_dir,
        dataloader_config=DataLoaderConfiguration(
            use_seedable_sampler=True, data_seed=args.seed, non_blocking=torch.cuda.is_available()
        ),
    )
    args = dataclasses.replace(args, mixed_precision=accelerator.mixed_precision)
    return accelerator, args, precision_note


def _data_loaders(args: TrainingArguments, accelerator: Accelerator, splits: dict, task) -> tuple:
    """The training and validation DataLoaders, after checking that both splits can feed the loop. A streamed
    training split (``data.streaming``) is this process's share (:func:`process_stream`), its loader not
    prepared by accelerate (which would shard it again)."""
    streaming = args.data.get("streaming", False)
    for name in ("validation",) if streaming else ("train", "validation"):
        if len(splits[name]) == 0:
            raise ValueError(f"the {name} split of dataset={args.dataset!r} is empty; check the data options")
    needed = args.per_device_train_batch_size * accelerator.num_processes
    # drop_last would leave no batch at all, and the loop would never end (a stream checks it per epoch)
    if not streaming and len(splits["train"]) < needed:
        raise ValueError(
            f"the training split has {len(splits['train'])} samples, fewer than one batch "
            f"(per_device_train_batch_size={args.per_device_train_batch_size} x {accelerator.num_processes} "
            "processes); use more data or a smaller batch"
        )
    train = splits["train"]
    if streaming:
        train = process_stream(
            train, args, rank=accelerator.process_index, world_size=accelerator.num_processes
        )
    # On a GPU, batches go from pinned memory without blocking; workers live across epochs and evaluations.
    persistent = args.dataloader_num_workers > 0
    loader_options = dict(
        num_workers=args.dataloader_num_workers,
        pin_memory=accelerator.device.type == "cuda",
        persistent_workers=persistent,
    )
    train_collate = getattr(task, "train_collator", task.collator)  # a task may augment its training batches
    train_loader = DataLoader(
        train,
        batch_size=args.per_device_train_batch_size,
        shuffle=not streaming,  # a stream shuffles itself (process_stream)
        drop_last=True,
        collate_fn=train_collate,
        # A collator told the epoch (set_epoch) needs workers made afresh each epoch to see it.
        **dict(loader_options, persistent_workers=persistent and not hasattr(train_collate, "set_epoch")),
    )
    eval_loader = DataLoader(
        subset(splits["validation"], args.eval_num_samples),
        batch_size=args.per_device_eval_batch_size,
        collate_fn=task.collator,
        **loader_options,
    )
    return train_loader, eval_loader


def _optimizer(args: TrainingArguments, model) -> torch.optim.Optimizer:
    """AdamW, without weight decay on biases and norms; an ensemble model's noise injection at
    ``noise_learning_rate`` (when set) in groups of its own."""
    groups = {}
    for name, parameter in model.named_parameters():
        noise = args.noise_learning_rate is not None and ".noise_injection." in f".{name}"
        plain = parameter.ndim <= 1 or "norm" in name
        groups.setdefault((noise, plain), []).append(parameter)
    return torch.optim.AdamW(
        [
            {
                "params": parameters,
                "weight_decay": 0.0 if plain else args.weight_decay,
                "lr": args.noise_learning_rate if noise else args.learning_rate,
            }
            for (noise, plain), parameters in groups.items()
        ],
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
    )


def _test_best_model(
    args: TrainingArguments, accelerator: Accelerator, task, state: dict, train_minutes: float
):
    """The best model (reloaded from ``output_dir``): its test evaluation, card and pictures (the task's; none
    without ``args.do_test``), and the run's results, written to ``eval/results.json``."""
    output_dir = Path(args.output_dir)
    accelerator.wait_for_everyone()
    test_metrics = {}
    if args.do_test:
        best = ConvLSTMForFramePrediction.from_pretrained(output_dir).to(accelerator.device)
        test_metrics = task.test(best, accelerator, output_dir)
    results = {
        "global_step": state["global_step"],
        "metric_for_best_model": args.metric_for_best_model,
        "best_metric": state["best_metric"],
        "best_step": state["best_step"],
        "train_minutes": train_minutes,
        "test": test_metrics,
        "output_dir": str(output_dir),
    }
    if accelerator.is_main_process:
        accelerator.log(
            {f"test/{k}": v for k, v in test_metrics.items() if isinstance(v, float)},
            step=state["global_step"],
        )
        (output_dir / "eval").mkdir(exist_ok=True)
        (output_dir / "eval" / "results.json").write_text(json.dumps(results, indent=2, default=float))
    return results


@dataclasses.dataclass(eq=False)
class _Run:
    """One training run's prepared objects and counters, handed from each step of :func:`train` to the next."""

    args: TrainingArguments
    accelerator: Accelerator
    task: Any  # FramePredictionTask, or the task of a registered kind of data (see .kinds)
    model: torch.nn.Module | None  # prepared by accelerate (wrapped in DDP with several processes)
    unwrapped_model: ConvLSTMForFramePrediction
    averaged: AveragedModel | None  # the moving average of the weights (ema_decay), or None
    optimizer: torch.optim.Optimizer | None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    train_loader: DataLoader | None
    eval_loader: DataLoader | None
    run_progress: RunProgress
    max_steps: int
    state: dict  # the position and the best model so far, saved in every checkpoint
    picture_batch: dict | None  # a few validation sequences drawn at every evaluation (with a tracker)
    # The loop's counters, set by _start_training.
    progress: tqdm | None = None
    tuner: ThreadTuner | None = None
    started: float = 0.0
    step_seconds: float = 0.0  # in forward, backward and the optimizer since the last optimizer step
    window_start: float = 0.0  # the logging window: when it started, and the samples seen since
    window_samples: int = 0
    step_loss: torch.Tensor | None = None

    @property
    def output_dir(self) -> Path:
        return Path(self.args.output_dir)

    @property
    def streaming(self) -> bool:
        """Whether the training split is streamed (``data.streaming``; see :mod:`.streaming`)."""
        return self.args.data.get("streaming", False)

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """What is validated, kept as the best model and tested: the weights, or their moving average."""
        return self.unwrapped_model if self.averaged is None else self.averaged.module

    @property
    def kept_model(self) -> torch.nn.Module:
        """What is saved as the best model (the prepared model saves through accelerate)."""
        return self.model if self.averaged is None else self.averaged.module


def train(args: TrainingArguments) -> dict:
    """Train, evaluate and save a frame-prediction model as ``args`` says; returns the final results.

    Steps: set up (the accelerator and precision; the data, its task and loaders; the model, optimizer and the
    schedules' position, :class:`RunProgress`; the state, fresh or resumed); epochs of optimizer steps, each
    followed by the logging, validation (keeping the best model) and checkpoint it is due, until the step or time
    budget; finish (the best model's test, card and pictures; the teardown; the upload).

    Returns:
        ``{"global_step", "metric_for_best_model", "best_metric", "best_step", "train_minutes", "test": {metric: value, ..., "baselines": ...},
        "output_dir", "model"}``; ``model`` is the model after the last step (the best one is in ``output_dir``).
    """
    run = _set_up(args)
    _start_training(run)
    stop = run.state["global_step"] >= run.max_steps
    while not stop:
        stop = _train_epoch(run)
    return _finish(run)


# --------------------------------------------------------------------------- set up
def _set_up(args: TrainingArguments) -> _Run:
    """The run's accelerator, data, task, loaders, model, optimizer and learning-rate schedule, prepared by
    accelerate, with its state (fresh, or restored from a checkpoint)."""
    accelerator, args = _set_up_process(args)
    streaming = args.data.get("streaming", False)
    # A stream has no len(): an epoch's batches come from its metadata, checked before any window is read.
    train_batches = streamed_train_batches(args, accelerator.num_processes) if streaming else None
    with accelerator.main_process_first():
        splits = load_datasets(args, stream_train=streaming)
    task = make_task(args, splits)
    train_loader, eval_loader = _data_loaders(args, accelerator, splits, task)
    model = _new_model(args)
    task.describe_data(model.config)  # e.g. a radar run's pixel size and time step, saved with the model
    optimizer = _optimizer(args, model)
    if not streaming:
        train_batches = len(train_loader)
    max_steps, run_progress, scheduler = _schedules(args, accelerator, optimizer, train_batches)
    if streaming:  # each process already reads its own shards (training.streaming)
        model, optimizer, eval_loader, scheduler = accelerator.prepare(
            model, optimizer, eval_loader, scheduler
        )
    else:
        model, optimizer, train_loader, eval_loader, scheduler = accelerator.prepare(
            model, optimizer, train_loader, eval_loader, scheduler
        )
    unwrapped_model = accelerator.unwrap_model(model)
    averaged = _weight_average(args, accelerator, unwrapped_model)
    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers("convlstm", config=_flat(args.to_dict()))
    state = restored_state(args, accelerator)
    picture_batch = None
    if args.report_to != "none":
        validation = splits["validation"]
        picture_batch = task.collator([validation[i] for i in range(min(2, len(validation)))])
    return _Run(
        args=args,
        accelerator=accelerator,
        task=task,
        model=model,
        unwrapped_model=unwrapped_model,
        averaged=averaged,
        optimizer=optimizer,
        scheduler=scheduler,
        train_loader=train_loader,
        eval_loader=eval_loader,
        run_progress=run_progress,
        max_steps=max_steps,
        state=state,
        picture_batch=picture_batch,
    )


def _set_up_process(args: TrainingArguments) -> tuple[Accelerator, TrainingArguments]:
    """Threads, the accelerator (``args`` comes back with the precision it chose), the seed, and the output folder
    with the resolved configuration."""
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    accelerator, args, precision_note = _make_accelerator(args)
    set_seed(args.seed)
    # Saturated sigmoids (a dark background pushed to exactly 0) produce denormal floats, which are ~100x slower
    # on x86 CPUs; flushing them to zero changes no result that matters.
    torch.set_flush_denormal(True)
    if accelerator.is_main_process:
        output_dir = Path(args.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        args.save(output_dir / "training_config.yaml", comment=precision_note)
    return accelerator, args


def _new_model(args: TrainingArguments) -> ConvLSTMForFramePrediction:
    """:func:`build_model`, with gradient checkpointing when ``args`` asks for it."""
    model = build_model(args)
    if args.gradient_checkpointing:
        # transformers 5 renamed gradient_checkpointing_enable (now deprecated) to activation_checkpointing_enable.
        enable = (
            getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        )
        enable()
    return model


def _schedules(
    args: TrainingArguments,
    accelerator: Accelerator,
    optimizer: torch.optim.Optimizer,
    train_batches: int | None,
) -> tuple[int, RunProgress, torch.optim.lr_scheduler.LambdaLR]:
    """The run's length in optimizer steps, its position on the schedules (steps or the time budget) and the
    learning-rate scheduler that follows that position; ``train_batches`` is the training loader's length (over
    all processes; None for a stream without ``num_train_epochs``, see :func:`streamed_train_batches`)."""
    max_steps = args.max_train_steps
    if args.num_train_epochs is not None:
        steps_per_epoch = math.ceil(
            train_batches / accelerator.num_processes / args.gradient_accumulation_steps
        )
        max_steps = min(max_steps, args.num_train_epochs * steps_per_epoch)
    run_progress = RunProgress(
        max_steps,
        None if args.max_train_minutes is None else 60 * args.max_train_minutes,
        follow_budget=args.schedules_follow_budget,
        clock=_clock,  # read here, at call time, so that a test's fake clock counts
        agree=_main_process_seconds(accelerator) if accelerator.num_processes > 1 else None,
    )
    # transformers' schedule at the run's position (the step, or the share of the time budget spent), not at the
    # scheduler's own counter, which accelerate advances once per process.
    lr_factor = learning_rate_factor(args.lr_scheduler_type, args.learning_rate, args.warmup_steps, max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: lr_factor(run_progress.position))
    return max_steps, run_progress, scheduler


def _start_training(run: _Run) -> None:
    """Start the progress bar, the clocks (a resumed run's budget goes on from what it had spent), the thread
    tuner and the logging window."""
    args, accelerator, state = run.args, run.accelerator, run.state
    run.progress = tqdm(
        total=run.max_steps,
        initial=state["global_step"],
        disable=not accelerator.is_local_main_process,
        desc="training",
        dynamic_ncols=True,
    )
    run.started = time.perf_counter()
    run.run_progress.start(elapsed_before=state.get("train_seconds", 0.0))
    run.run_progress.update(state["global_step"])
    if args.adapt_num_threads and accelerator.device.type == "cpu" and torch.get_num_threads() > 1:
        run.tuner = ThreadTuner(log=run.progress.write if accelerator.is_local_main_process else None)
    run.window_start, run.window_samples = time.perf_counter(), 0
    run.step_loss = torch.zeros((), device=accelerator.device)


# --------------------------------------------------------------------------- steps
def _train_epoch(run: _Run) -> bool:
    """One pass over the training data (what is left of it, for a run resumed within an epoch); returns whether
    the run stopped before the epoch's end."""
    state = run.state
    run.model.train()
    for batch in _epoch_batches(run):
        if _train_on_batch(run, batch) and _end_of_step(run):
            return True
    state["epoch"] += 1
    state["batches_in_epoch"] = 0
    return False


def _epoch_batches(run: _Run):
    """The training batches of epoch ``state["epoch"]`` in its order (the sampler's, or the stream's), after the
    ``state["batches_in_epoch"]`` a resumed run had trained on."""
    state, train_loader = run.state, run.train_loader
    if hasattr(train_loader.collate_fn, "set_epoch"):  # e.g. augmentation drawn per epoch
        train_loader.collate_fn.set_epoch(state["epoch"])
    if run.streaming:
        return streamed_batches(
            train_loader, run.accelerator, epoch=state["epoch"], skip=state["batches_in_epoch"]
        )
    train_loader.set_epoch(state["epoch"])
    if state["batches_in_epoch"]:
        return run.accelerator.skip_first_batches(train_loader, state["batches_in_epoch"])
    return train_loader


def _train_on_batch(run: _Run, batch: dict) -> bool:
    """Forward and backward on one batch, and the optimizer's step once ``gradient_accumulation_steps`` batches'
    gradients are in; returns whether the optimizer stepped."""
    args, accelerator, state, model = run.args, run.accelerator, run.state, run.model
    # The random numbers of a step (dropout, scheduled sampling) depend only on where the run is, so a resumed run
    # draws exactly what the uninterrupted one drew (DataLoader iterators also draw from the global generator,
    # and a resumed run creates one more of them).
    torch.manual_seed(_step_seed(args.seed, accelerator.process_index, state))
    state["batches_in_epoch"] += 1
    run.unwrapped_model.auxiliary_loss_scale = args.auxiliary_loss_scale(run.run_progress.position)
    step_started = time.perf_counter()
    with accelerator.accumulate(model):
        outputs = model(
            **run.task.model_inputs(batch),
            teacher_forcing_ratio=args.teacher_forcing_ratio(run.run_progress.position),
        )
        accelerator.backward(outputs.loss)
        if accelerator.sync_gradients and args.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        run.optimizer.step()
        if accelerator.sync_gradients:  # the next step's position, which scheduler.step() reads
            run.run_progress.update(state["global_step"] + 1)
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    run.step_seconds += time.perf_counter() - step_started
    run.step_loss += outputs.loss.detach() / args.gradient_accumulation_steps
    run.window_samples += batch["pixel_values"].shape[0] * accelerator.num_processes
    return accelerator.sync_gradients


def _end_of_step(run: _Run) -> bool:
    """Count the optimizer step just taken (weight average, progress bar, thread tuner), then log, validate and
    checkpoint as they are due; returns whether the run stops here (its steps or its time budget are spent)."""
    args, state = run.args, run.state
    if run.averaged is not None:
        run.averaged.update_parameters(run.unwrapped_model)
    state["global_step"] += 1
    state["train_seconds"] = run.run_progress.elapsed  # a resumed run's budget goes on from here
    step = state["global_step"]
    run.progress.update(1)
    if run.tuner is not None:
        run.tuner.record(run.step_seconds)
    run.step_seconds = 0.0
    if step % args.logging_steps == 0 or step == run.max_steps:
        _log_training(run, step)
    run.step_loss.zero_()
    out_of_time = run.run_progress.out_of_time
    if step % args.eval_steps == 0 or step >= run.max_steps or out_of_time:
        _validate_and_keep_best(run, step)
    if step % args.checkpointing_steps == 0:
        save_checkpoint(run.accelerator, args, state)
    return step >= run.max_steps or out_of_time


def _log_training(run: _Run, step: int) -> None:
    """The loss (averaged over processes), learning rate and speed since the last log: on the progress bar and to
    the trackers; starts the next logging window."""
    loss = run.accelerator.reduce(run.step_loss, reduction="mean").item()
    rate = run.window_samples / max(time.perf_counter() - run.window_start, 1e-9)
    learning_rate = run.scheduler.get_last_lr()[0]
    run.progress.set_postfix(loss=f"{loss:.4f}", lr=f"{learning_rate:.2e}", samples_s=f"{rate:.1f}")
    run.accelerator.log(
        {"train/loss": loss, "train/learning_rate": learning_rate, "train/samples_per_second": rate},
        step=step,
    )
    run.window_start, run.window_samples = time.perf_counter(), 0


def _validate_and_keep_best(run: _Run, step: int) -> None:
    """The task's validation of the evaluated model (pictures to the trackers); saves it to ``output_dir`` when it
    beats the best so far by ``metric_for_best_model``."""
    args, accelerator, state = run.args, run.accelerator, run.state
    evaluated_model = run.evaluated_model
    run.progress.clear()  # the scores go on a line of their own, not after the progress bar
    evaluated_model.auxiliary_loss_scale = run.unwrapped_model.auxiliary_loss_scale
    metrics = run.task.validate(evaluated_model, run.eval_loader, accelerator, step)
    sys.stdout.flush()  # now, also when stdout is a pipe (`make train | tee log`)
    run.progress.refresh()
    if args.report_to != "none" and accelerator.is_main_process:
        _log_pictures(accelerator, evaluated_model, run.picture_batch, step)
    value, best = metrics[args.metric_for_best_model], state["best_metric"]
    higher_is_better = args.best_model_metrics[args.metric_for_best_model]
    if best is None or (value > best if higher_is_better else value < best):
        state["best_metric"], state["best_step"] = value, step
        _save_model(accelerator, run.kept_model, run.output_dir)
    run.model.train()


# --------------------------------------------------------------------------- finish
def _finish(run: _Run) -> dict:
    """After the last step: the best model's test, the teardown and the upload; returns :func:`train`'s results."""
    args, accelerator = run.args, run.accelerator
    run.progress.close()
    train_minutes = (time.perf_counter() - run.started) / 60
    results = _test_best_model(args, accelerator, run.task, run.state, train_minutes)
    run.unwrapped_model.auxiliary_loss_scale = 1.0
    _tear_down(run)
    results["model"] = (
        run.unwrapped_model
    )  # the weights after the last step (the best ones are in output_dir)
    if args.push_to_hub and accelerator.is_main_process:
        url = upload_model_folder(run.output_dir, args.hub_model_id, private=args.hub_private)
        accelerator.print(f"uploaded to {url}")
    if run.tuner is not None:  # the caller gets torch's thread count back as it was
        torch.set_num_threads(run.tuner.max_threads)
    return results


def _tear_down(run: _Run) -> None:
    """Release the DDP wrapper and the prepared objects, then end the trackers and the process group."""
    # Released while the process group is alive: torn down after end_training() destroyed it, a process could
    # wait forever for its already finished peer.
    run.accelerator.wait_for_everyone()
    run.model = run.optimizer = run.scheduler = run.train_loader = run.eval_loader = None
    run.accelerator.free_memory()
    run.accelerator.end_training()


@torch.no_grad()
def _log_pictures(accelerator: Accelerator, model, batch: dict, step: int) -> None:
    """Send input / truth / prediction strips of a few validation sequences to the trackers that take images."""
    pixel_values, labels = batch["pixel_values"].to(accelerator.device), batch["labels"]
    was_training = model.training
    model.eval()
    with accelerator.autocast():
        predictions = model(pixel_values=pixel_values, num_output_frames=labels.shape[1]).predictions.float()
    model.train(was_training)
    image = np.asarray(prediction_strip(pixel_values, labels, predictions))  # (H, W, 3) uint8
    for tracker in accelerator.trackers:
        if hasattr(tracker, "log_images"):
            tracker.log_images({"validation/prediction": image}, step=step, dataformats="HWC")


def _weight_average(args: TrainingArguments, accelerator: Accelerator, model):
    """The exponential moving average of ``model``'s weights (``args.ema_decay``), registered for checkpointing,
    or None."""
    if args.ema_decay is None:
        return None
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay), use_buffers=True)
    accelerator.register_for_checkpointing(averaged)
    return averaged


def _save_model(accelerator: Accelerator, model, output_dir: Path) -> None:
    """Save ``model`` (prepared by accelerate, or a plain module such as the weight average) with its processor
    (from the model's config: channels, patch size, rain-rate transform) and the pipeline."""
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    save_frame_prediction_model(
        unwrapped,
        output_dir,
        is_main_process=accelerator.is_main_process,
        save_function=accelerator.save,
        state_dict=accelerator.get_state_dict(model),
    )


def _step_seed(seed: int, process_index: int, state: dict) -> int:
    return (
        seed * 1_000_003 + process_index * 7_919 + state["epoch"] * 100_003 + state["batches_in_epoch"]
    ) % 2**63


def _main_process_seconds(accelerator: Accelerator):
    """A function mapping this process's elapsed seconds to the main process's: every process then follows the
    same schedules and stops at the same step."""

    def agree(seconds: float) -> float:
        value = torch.tensor([seconds], dtype=torch.float64, device=accelerator.device)
        return float(broadcast(value, from_process=0).item())

    return agree


def _flat(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, str, bool)):
            flat[f"{prefix}{key}"] = value
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat
