"""Run by tests/test_streaming_training.py under ``accelerate launch`` with two CPU processes (gloo).

Trains the streamed tiny config given as JSON in argv[1] and writes, per process, the ids of the windows of every
batch the collator made (training batches first; validation and test windows have ids >= 1000) and the hash of
its final weights to ``argv[2]/rank<N>.json``.
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
    batches = []
    original = tasks.FramePredictionCollator

    class RecordingCollator(original):
        def __call__(self, examples):
            batches.append([int(example["id"]) for example in examples])
            return super().__call__(examples)

    tasks.FramePredictionCollator = RecordingCollator
    results = train(TrainingArguments(**json.loads(config_json)))
    digest = hashlib.sha256()
    for name, tensor in sorted(results["model"].state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    state = PartialState()
    report = {"batches": batches, "weights": digest.hexdigest(), "steps": results["global_step"]}
    Path(report_dir, f"rank{state.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    # As tests/ddp_worker.py: the report is written, so leave without running shutdown hooks.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
