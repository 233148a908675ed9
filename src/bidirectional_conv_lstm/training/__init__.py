"""Training with Accelerate: the run's arguments, the loop, its tasks and schedules, the frame metrics and the
evaluation of a saved model.

Other kinds of data (rain-rate windows) plug in through :mod:`.kinds`; this package never imports them.
"""

from .arguments import TrainingArguments, load_training_arguments, parse_command_line
from .checkpoints import find_latest_checkpoint
from .kinds import DatasetKind, dataset_kind, register_dataset_kind
from .loop import train
from .tasks import FramePredictionTask, make_task

__all__ = [
    "DatasetKind",
    "FramePredictionTask",
    "TrainingArguments",
    "dataset_kind",
    "find_latest_checkpoint",
    "load_training_arguments",
    "make_task",
    "parse_command_line",
    "register_dataset_kind",
    "train",
]
