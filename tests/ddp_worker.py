"""Run by tests/test_training.py under ``accelerate launch`` with two CPU processes (gloo).

Trains the tiny config given as JSON in argv[1] and writes, per process, the hashes of the training batches it
saw and of its final weights to ``argv[2]/rank<N>.json``.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

from accelerate import PartialState

import bidirectional_conv_lstm.training.tasks as tasks
from bidirectional_conv_lstm.training import train
from bidirectional_conv_lstm.training.arguments import TrainingArguments


def main(config_json: str, report_dir: str) -> None:
    seen = []
    original = tasks.FramePredictionCollator

    class RecordingCollator(original):
        def __call__(self, examples):
            batch = super().__call__(examples)
            seen.append(hashlib.sha256(batch["pixel_values"].numpy().tobytes()).hexdigest())
            return batch

    tasks.FramePredictionCollator = RecordingCollator
    results = train(TrainingArguments(**json.loads(config_json)))
    digest = hashlib.sha256()
    for name, tensor in sorted(results["model"].state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    rank = PartialState().process_index
    report = {
        "batches": seen,
        "weights": digest.hexdigest(),
        "steps": results["global_step"],
        "world_size": PartialState().num_processes,
    }
    Path(report_dir, f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    # Once seen under heavy load: a finished worker waiting forever in interpreter shutdown. The report is
    # written, so leave without running shutdown hooks.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
