"""Checkpoints of a training run: written whole or not at all, found by the step recorded inside, restored.

A checkpoint is accelerate's ``save_state`` folder (model, optimizer, scheduler, random states of every process)
plus :data:`STATE_FILE`, the loop's position and best model so far, written last: a folder without it is not a
complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from accelerate import Accelerator

from .arguments import CHECKPOINT_STATE_FILE, TrainingArguments

__all__ = ["STATE_FILE", "find_latest_checkpoint", "restored_state", "save_checkpoint"]

STATE_FILE = (
    CHECKPOINT_STATE_FILE  # written last into a checkpoint: its presence means the checkpoint is whole
)


def find_latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest recorded step under ``output_dir/checkpoints`` (complete ones only)."""
    root = Path(output_dir) / "checkpoints"
    best, best_step = None, -1
    for folder in root.glob("checkpoint-*") if root.is_dir() else []:
        state_file = folder / STATE_FILE
        if not state_file.is_file():
            continue  # a checkpoint interrupted while being written
        step = json.loads(state_file.read_text())["global_step"]
        if step > best_step:
            best, best_step = folder, step
    return best


def save_checkpoint(accelerator: Accelerator, args: TrainingArguments, state: dict) -> Path:
    """``save_state`` into a temporary folder, then rename, so a killed run never leaves half a checkpoint."""
    root = Path(args.output_dir) / "checkpoints"
    final = root / f"checkpoint-{state['global_step']:06d}"
    partial = root / f".partial-{final.name}"
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    # Every process writes its own random state into the folder (save_state ends with no barrier): rename it
    # only once all have, or a slower process's write finds the folder gone.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / STATE_FILE).write_text(json.dumps(state, indent=2))
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        complete = sorted(
            (p for p in root.glob("checkpoint-*") if (p / STATE_FILE).is_file()),
            key=lambda p: json.loads((p / STATE_FILE).read_text())["global_step"],
        )
        for old in complete[: -args.checkpoints_total_limit]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def restored_state(args: TrainingArguments, accelerator: Accelerator) -> dict:
    """The loop's position and best model so far: fresh, or loaded with the checkpoint ``resume_from_checkpoint``
    names (whose model, optimizer, scheduler and random states accelerate restores)."""
    state = {
        "global_step": 0,
        "epoch": 0,
        "batches_in_epoch": 0,
        "metric_for_best_model": args.metric_for_best_model,
        "best_metric": None,
        "best_step": None,
    }
    if args.resume_from_checkpoint is None:
        return state
    checkpoint = (
        find_latest_checkpoint(args.output_dir)
        if args.resume_from_checkpoint == "latest"
        else Path(args.resume_from_checkpoint)
    )
    if checkpoint is None:
        accelerator.print(
            f"no checkpoint under {Path(args.output_dir) / 'checkpoints'}; starting from scratch"
        )
        return state
    accelerator.load_state(str(checkpoint))
    state = json.loads((checkpoint / STATE_FILE).read_text())
    accelerator.print(f"resumed from {checkpoint} at step {state['global_step']}")
    if state.get("metric_for_best_model", "mse") != args.metric_for_best_model:
        accelerator.print(
            f"metric_for_best_model changed to {args.metric_for_best_model!r}: the next evaluation starts "
            "the search for the best model afresh"
        )
        state.update(best_metric=None, best_step=None)
    state["metric_for_best_model"] = args.metric_for_best_model
    return state
