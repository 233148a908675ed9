"""Run configuration of the training script: a YAML file plus command-line overrides, checked up front.

Every value is validated before any data is generated or any model is built, so a bad value stops the run
with a message that names the key, the value and what was expected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from ..data import MovingMNISTConfig
from ..data.loaders import is_sequence_folder
from ..models.convlstm.argument_checks import check_int
from ..models.convlstm.configuration_convlstm import ConvLSTMConfig, check_config
from .kinds import DatasetKind, dataset_kind

__all__ = [
    "BEST_MODEL_METRICS",
    "CHECKPOINT_STATE_FILE",
    "ARCHITECTURE_FINE_TUNING_FIELDS",
    "FINE_TUNING_FIELDS",
    "TrainingArguments",
    "load_training_arguments",
    "merge_config",
    "parse_command_line",
    "parse_overrides",
]

_LOGGER = logging.getLogger(__name__)
_MIXED_PRECISION = ("no", "fp16", "bf16", "auto")
# Written into every checkpoint folder after accelerate's save_state has finished (training.STATE_FILE): a
# folder without it is not a complete checkpoint.
CHECKPOINT_STATE_FILE = "trainer_state.json"
# Validation metrics the best model can be chosen by, and whether more is better.
BEST_MODEL_METRICS = {"mse": False, "mae": False, "psnr": True, "ssim": True}
# (Other kinds of data name their own: training.kinds.DatasetKind.best_model_metrics.)
# The config fields a fine-tuning run may change (``model`` beside ``model_name_or_path``): how the model is
# trained and how it treats the frame's edge, never the shapes of its weights or what its outputs mean.
FINE_TUNING_FIELDS = (
    "boundary_padding",
    "advection_padding",
    "advection_warp",
    "probability_matching",
    "loss",
    "l1_weight",
    "ssim_weight",
    "loss_thresholds",
    "loss_weights",
    "fss_loss_weight",
    "motion_loss_weight",
    "fss_loss_thresholds",
    "fss_loss_windows",
    "ensemble_noise_channels",
    "ensemble_train_members",
    "crps_alpha",
    "ensemble_members",
    "ensemble_product",
)
# Fine-tuning fields that change the model's modules: given to from_pretrained, which builds the new modules and
# initialises their weights (a noise injection added to a deterministic model).
ARCHITECTURE_FINE_TUNING_FIELDS = ("ensemble_noise_channels",)
_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
_TRACKERS = ("none", "tensorboard", "all")
_POSITIVE = (
    "num_input_frames",
    "num_output_frames",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "max_train_steps",
    "gradient_accumulation_steps",
    "eval_steps",
    "eval_num_samples",
    "checkpointing_steps",
    "checkpoints_total_limit",
    "logging_steps",
)
_POSITIVE_OR_NULL = ("num_train_epochs", "test_num_samples", "max_train_minutes", "num_threads")
_NON_NEGATIVE = (
    "warmup_steps",
    "teacher_forcing_steps",
    "auxiliary_loss_start_step",
    "auxiliary_loss_ramp_steps",
    "dataloader_num_workers",
    "weight_decay",
    "max_grad_norm",
)
# The ``data`` options of frames read from a folder, a ``datasets`` folder or a Hub dataset (the loop's own kind
# besides Moving MNIST, whose options are MovingMNISTConfig's fields and ``cache_dir``).
# ``streaming``, ``shuffle_buffer`` and ``num_train_windows``: training on a streamed split (training.streaming).
_FRAMES_OPTIONS = (
    "frames_column",
    "train_split",
    "validation_split",
    "test_split",
    "cache_dir",
    "streaming",
    "shuffle_buffer",
    "num_train_windows",
)
_STREAMING_COUNTS = ("shuffle_buffer", "num_train_windows")
_MOVING_MNIST_FIELDS = tuple(field.name for field in dataclasses.fields(MovingMNISTConfig))


@dataclasses.dataclass
class TrainingArguments:
    """Everything a training run needs; the YAML files in ``configs/`` set these fields.

    Args:
        output_dir (`str`): where the model (``save_pretrained``), its card, pictures, evaluation and
            checkpoints go.
        seed (`int`, defaults to 42): seeds data order, initialisation and scheduled sampling.
        dataset (`str`, defaults to ``"moving_mnist"``): ``"moving_mnist"`` (generated from real MNIST digits),
            a folder of ``.npy``/``.npz``/PNG sequences, or a ``datasets`` name or path with a frames column —
            e.g. a Hub dataset id such as ``"you/moving-mnist"`` (pushed with ``scripts/push_dataset.py``), read
            with ``datasets.load_dataset`` and named by its id in the model card;
            for precipitation nowcasting ``"synthetic_rain"`` (generated advecting rain fields) or ``"radar"``
            (windows of real radar archives), trained in rain rate (see :mod:`.nowcast_training`).
        data (`dict`): options of the data source: for Moving MNIST the fields of
            :class:`~bidirectional_conv_lstm.data.MovingMNISTConfig` plus ``cache_dir``; for other sources
            ``frames_column``, ``train_split``, ``validation_split``, ``test_split``, and for a Hub id or a folder of
            Parquet shards ``streaming`` (read the training split as a stream, each process its own shards),
            ``shuffle_buffer`` and ``num_train_windows`` (see :mod:`.streaming`); for the rain-rate sources
            see :func:`bidirectional_conv_lstm.nowcasting.task.check_rain_data`.
        model (`dict`): fields of :class:`~bidirectional_conv_lstm.ConvLSTMConfig` for a new model; with
            ``model_name_or_path``, only the settings of :data:`FINE_TUNING_FIELDS` (the loss and its options,
            ``boundary_padding``, ``probability_matching``), which replace the pretrained model's.
        model_name_or_path (`str`, *optional*): fine-tune from this folder or Hub id instead.
        num_input_frames, num_output_frames (`int`, defaults to 10): frames observed and predicted.
        per_device_train_batch_size, per_device_eval_batch_size (`int`): batch sizes per process.
        learning_rate (`float`), weight_decay (`float`), adam_beta1/adam_beta2 (`float`): AdamW.
        noise_learning_rate (`float`, *optional*): the learning rate of an ensemble model's noise injection
            (``forecaster.noise_injection``; default ``learning_rate``): fine-tuning a deterministic model into an
            ensemble wants the new noise convolution to learn faster than the rest (e.g. 2e-3 against 3e-4).
        lr_scheduler_type (`str`, defaults to ``"cosine"``), warmup_steps (`int`): learning-rate schedule
            (transformers' ``get_scheduler``).
        max_train_steps (`int`): optimizer steps; ``num_train_epochs`` caps it too when set.
        max_train_minutes (`float`, *optional*): stop early (and save) when this wall-clock budget is spent (time
            spent before a resume counts).
        schedules_follow_budget (`bool`, defaults to `True`): with ``max_train_minutes``, the learning rate,
            teacher forcing and auxiliary-loss ramp advance by the larger of the share of ``max_train_steps`` taken
            and the share of the budget spent (:class:`~bidirectional_conv_lstm.training.schedules.RunProgress`), so a
            machine too slow for every step still finishes every schedule; ``false``: by steps only.
        gradient_accumulation_steps (`int`): batches per optimizer step.
        max_grad_norm (`float`): the gradient norm clipped to, 0 for no clipping.
        ema_decay (`float`, *optional*): keep an exponential moving average of the weights, ``average = decay *
            average + (1 - decay) * weights`` after every optimizer step (torch's ``AveragedModel``); validation,
            the best model, the test and the saved model are then the average's (checkpoints hold it too, so a
            resumed run goes on with it). 0.99 averages over about the last 100 steps.
        mixed_precision (`str`): ``"no"``, ``"fp16"``, ``"bf16"``, or ``"auto"``: bf16 where the hardware runs it
            fast (a CUDA GPU with native bf16, a CPU with AMX bf16), else fp32
            (:func:`~bidirectional_conv_lstm.utils.hardware.resolve_mixed_precision`); the choice and its reason are
            printed and written into ``training_config.yaml``.
        num_threads (`int`, *optional*): CPU threads for torch (``torch.set_num_threads``); torch's default
            (one per core) when unset.
        adapt_num_threads (`bool`, defaults to `False`): on CPU, let
            :class:`~bidirectional_conv_lstm.utils.threads.ThreadTuner` choose the thread count (at most ``num_threads``)
            from measured step times while training, so a process busy on one of the cores slows training ~2x
            instead of ~30x; runs whose thread counts differ are not bit-identical.
        teacher_forcing_start, teacher_forcing_end (`float`), teacher_forcing_steps (`int`): scheduled
            sampling: the probability of feeding the forecaster the true previous frame decays linearly from
            start to end over that many steps.
        auxiliary_loss_start_step, auxiliary_loss_ramp_steps (`int`): the model's auxiliary loss term (the L1 of
            ``"mse+l1"``, the ``1 - SSIM`` of ``"mse+ssim"``) is off before the start step, then its weight rises
            linearly to the config's ``l1_weight`` / ``ssim_weight`` over the ramp steps. These terms sharpen a model
            that has learnt the motion, but from the first step they drive it to all-dark frames.
        eval_steps (`int`), eval_num_samples (`int`): periodic validation; the best model is kept.
        metric_for_best_model (`str`, defaults to ``"mse"``): the validation metric that picks the best model:
            ``"mse"`` or ``"mae"`` (lower is better), ``"psnr"`` or ``"ssim"`` (higher is better); for rain rate
            ``"loss"``, ``"csi_m"`` (mean CSI over the thresholds, higher is better), ``"mse"`` or ``"mae"`` (mm/h).
        test_num_samples (`int`, *optional*): test sequences for the final evaluation (all when unset).
        do_test (`bool`, defaults to true): run the final evaluation (and write the card); false for a stage
            whose model a later stage fine-tunes and tests (the nowcasting recipe's radar stage).
        checkpointing_steps (`int`), checkpoints_total_limit (`int`): ``save_state`` every N steps, keep K.
        resume_from_checkpoint (`str`, *optional*): ``"latest"`` or a checkpoint folder.
        logging_steps (`int`), report_to (`str`): tracker for loss, metrics and pictures.
        gradient_checkpointing (`bool`): recompute activations across time in the backward pass.
        dataloader_num_workers (`int`): DataLoader worker processes.
        push_to_hub (`bool`), hub_model_id (`str`), hub_private (`bool`): upload the final model.
    """

    output_dir: str = "outputs/run"
    seed: int = 42
    dataset: str = "moving_mnist"
    data: dict = dataclasses.field(default_factory=dict)
    model: dict = dataclasses.field(default_factory=dict)
    model_name_or_path: str | None = None
    num_input_frames: int = 10
    num_output_frames: int = 10
    per_device_train_batch_size: int = 16
    per_device_eval_batch_size: int = 32
    learning_rate: float = 1e-3
    noise_learning_rate: float | None = None
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    lr_scheduler_type: str = "cosine"
    warmup_steps: int = 100
    max_train_steps: int = 1000
    num_train_epochs: int | None = None
    max_train_minutes: float | None = None
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    ema_decay: float | None = None
    mixed_precision: str = "no"
    schedules_follow_budget: bool = True
    num_threads: int | None = None
    adapt_num_threads: bool = False
    teacher_forcing_start: float = 0.0
    teacher_forcing_end: float = 0.0
    teacher_forcing_steps: int = 0
    auxiliary_loss_start_step: int = 0
    auxiliary_loss_ramp_steps: int = 0
    eval_steps: int = 250
    eval_num_samples: int = 256
    metric_for_best_model: str = "mse"
    test_num_samples: int | None = None
    do_test: bool = True
    checkpointing_steps: int = 250
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: str | None = None
    logging_steps: int = 10
    report_to: str = "none"
    gradient_checkpointing: bool = False
    dataloader_num_workers: int = 0
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``ValueError``/``TypeError``/``FileNotFoundError`` naming the first bad value."""
        for field in dataclasses.fields(self):
            _check_type(field.name, getattr(self, field.name), field.type)
        self._check_ranges()
        self._check_choices()
        self._check_model()
        if self.resume_from_checkpoint not in (None, "latest"):
            self._check_checkpoint(Path(self.resume_from_checkpoint))
        self._check_data()

    def _check_ranges(self) -> None:
        """Counts, rates and probabilities inside the ranges they mean something in."""
        for name in _POSITIVE:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in _POSITIVE_OR_NULL:
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or null, got {value!r}")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1) or null, got {self.ema_decay!r}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if self.noise_learning_rate is not None and not 0 < self.noise_learning_rate < 1:
            raise ValueError(
                f"noise_learning_rate must be in (0, 1) or null, got {self.noise_learning_rate!r}"
            )
        for name in ("adam_beta1", "adam_beta2", "teacher_forcing_start", "teacher_forcing_end"):
            value = getattr(self, name)
            if not 0 <= value <= 1 or (name.startswith("adam") and value == 1):
                raise ValueError(
                    f"{name} must be in [0, 1{')' if name.startswith('adam') else ']'}, got {value!r}"
                )

    def _check_choices(self) -> None:
        """Named choices, and what a choice needs (tensorboard installed, a Hub repo to push to)."""
        _check_choice("mixed_precision", self.mixed_precision, _MIXED_PRECISION)
        _check_choice("lr_scheduler_type", self.lr_scheduler_type, _SCHEDULERS)
        _check_choice("report_to", self.report_to, _TRACKERS)
        _check_choice("metric_for_best_model", self.metric_for_best_model, tuple(self.best_model_metrics))
        if self.report_to == "tensorboard":
            try:
                import tensorboard  # noqa: F401
            except ImportError as error:
                raise ValueError(
                    "report_to='tensorboard' needs tensorboard: pip install 'bidirectional-conv-lstm[tensorboard]'"
                ) from error
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("push_to_hub=true needs hub_model_id (e.g. 'your-name/convlstm-moving-mnist')")

    def _check_model(self) -> None:
        """A new model's config, or the pretrained model and the fine-tuning settings ``model`` may change."""
        if self.model_name_or_path is not None and self.model:
            others = sorted(set(self.model) - set(FINE_TUNING_FIELDS))
            if others:
                raise ValueError(
                    f"model={dict(self.model)!r} with model_name_or_path={self.model_name_or_path!r}: a fine-tuning "
                    f"run keeps the pretrained architecture and may only change {list(FINE_TUNING_FIELDS)}, not "
                    f"{others}; drop them, or leave out model_name_or_path to train a new model"
                )
        if self.model_name_or_path is None:
            self.model_config()  # ConvLSTMConfig checks its own fields
        else:
            self._check_pretrained()

    def _check_checkpoint(self, folder: Path) -> None:
        example = f"give 'latest' or a folder such as {self.output_dir}/checkpoints/checkpoint-000100"
        if not folder.is_dir():
            raise FileNotFoundError(f"resume_from_checkpoint={str(folder)!r} is not a folder; {example}")
        has_state = (folder / CHECKPOINT_STATE_FILE).is_file()
        has_weights = any(folder.glob("model*.safetensors")) or any(folder.glob("pytorch_model*"))
        if not (has_state and has_weights):
            missing = [CHECKPOINT_STATE_FILE] if not has_state else []
            missing += [] if has_weights else ["the model weights (model.safetensors)"]
            raise FileNotFoundError(
                f"resume_from_checkpoint={str(folder)!r} is not a training checkpoint: it has no "
                f"{' and no '.join(missing)}. A checkpoint holds {CHECKPOINT_STATE_FILE} beside accelerate's "
                f"state (model.safetensors, optimizer.bin, scheduler.bin, random_states_*.pkl); {example}"
            )

    def _check_pretrained(self) -> None:
        path = Path(self.model_name_or_path)
        looks_local = path.exists() or self.model_name_or_path.startswith((".", "/", "~"))
        if looks_local and not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"model_name_or_path={self.model_name_or_path!r} has no config.json; give a folder written by "
                "save_pretrained (e.g. a training run's output_dir) or a Hub id such as 'user/model'"
            )
        if looks_local and self.model:
            self.fine_tuning_config(ConvLSTMConfig.from_pretrained(str(path)))

    def fine_tuning_config(self, config):
        """The pretrained model's ``config`` with the fine-tuning settings of ``model`` applied (in place), checked.

        Raises:
            ValueError: a value the config refuses (e.g. a weighted loss for a model without a rain-rate transform).
        """
        for name, value in self.model.items():
            setattr(config, name, list(value) if isinstance(value, tuple) else value)
        try:
            check_config(config)
        except (TypeError, ValueError) as error:
            raise ValueError(f"model (fine-tuning {self.model_name_or_path!r}): {error}") from error
        return config

    @property
    def kind(self) -> DatasetKind | None:
        """The registered kind of data ``dataset`` names (:mod:`.kinds`, e.g. rain-rate windows), or None for
        frames in [0, 1], the loop's own."""
        return dataset_kind(self.dataset)

    @property
    def best_model_metrics(self) -> dict[str, bool]:
        """The validation metrics ``metric_for_best_model`` may name, each with whether more is better."""
        kind = self.kind
        return dict(BEST_MODEL_METRICS if kind is None else kind.best_model_metrics)

    def _check_streaming(self) -> None:
        """``data.streaming`` (a bool) and its counts, and a source that can stream: one read with
        ``datasets.load_dataset`` (a Hub id, a folder of Parquet shards), not generated, nor built by a kind (a
        kind streams what its ``stream_source`` names)."""
        streaming = self.data.get("streaming", False)
        if not isinstance(streaming, bool):
            raise TypeError(f"data.streaming must be true or false, got {streaming!r}")
        for name in _STREAMING_COUNTS:
            if name in self.data and not streaming:
                raise ValueError(
                    f"data.{name}={self.data[name]!r} applies only to a streamed training split; set "
                    "data.streaming: true, or drop it"
                )
            if name in self.data:
                check_int(f"data.{name}", self.data[name])
        if not streaming:
            return
        remedy = (
            "push it as Parquet shards (scripts/push_dataset.py) and name that, or set data.streaming: false"
        )
        kind = self.kind
        if kind is not None:
            if kind.stream_source is not None and kind.stream_source(self) is not None:
                return  # the kind reads this run's data with datasets.load_dataset
            source = "is built by its own dataset kind, which reads no stream"
            remedy = "set data.streaming: false, or name data the kind streams (see its data options)"
        elif self.dataset == "moving_mnist":
            source = "is generated in memory"
        elif is_sequence_folder(self.dataset):
            source = "is a folder of .npy/.npz/PNG sequences"
        else:
            return
        raise ValueError(
            "data.streaming=true needs a dataset read with datasets.load_dataset (a Hub dataset id, or a folder "
            f"of Parquet shards), but dataset={self.dataset!r} {source}; {remedy}"
        )

    def _check_data(self) -> None:
        self._check_streaming()
        kind = self.kind
        if kind is not None:
            kind.check(self)
            return
        if self.dataset == "moving_mnist":
            options = {k: v for k, v in self.data.items() if k != "cache_dir"}
            known = set(_MOVING_MNIST_FIELDS)
            unknown = sorted(set(options) - known)
            if unknown:
                raise ValueError(
                    f"data has unknown Moving MNIST options {unknown}; known: {sorted(known) + ['cache_dir']}"
                )
            try:
                config = MovingMNISTConfig(**options)
            except (TypeError, ValueError) as error:
                raise ValueError(f"data: {error}") from error
            needed = self.num_input_frames + self.num_output_frames
            if config.num_frames < needed:
                raise ValueError(
                    f"data.num_frames={config.num_frames} is shorter than num_input_frames + num_output_frames "
                    f"= {needed}"
                )
            return
        looks_local = self.dataset.startswith((".", "/", "~")) or os.sep + os.sep in self.dataset
        if looks_local and not Path(self.dataset).expanduser().exists():
            raise FileNotFoundError(
                f"dataset={self.dataset!r} does not exist; give 'moving_mnist', a folder of .npy/.npz/PNG "
                "sequences, a datasets folder, or a Hub dataset id"
            )
        known = set(_FRAMES_OPTIONS)
        unknown = sorted(set(self.data) - known)
        if unknown:
            raise ValueError(
                f"data has unknown options {unknown} for dataset={self.dataset!r}; known: {sorted(known)}"
            )

    # ------------------------------------------------------------------ derived
    def model_config(self):
        """A new model's :class:`ConvLSTMConfig` from ``model``, with the run's frame counts."""
        options = dict(self.model)
        options.setdefault("num_input_frames", self.num_input_frames)
        options.setdefault("num_output_frames", self.num_output_frames)
        try:
            return ConvLSTMConfig(**options)
        except (TypeError, ValueError) as error:
            raise ValueError(f"model: {error}") from error

    def teacher_forcing_ratio(self, step: float) -> float:
        """Scheduled sampling: the chance of feeding the true previous frame at optimizer step ``step`` (a float
        position on the schedules when the time budget drives them, see ``schedules_follow_budget``)."""
        if self.teacher_forcing_steps == 0:
            return self.teacher_forcing_end
        progress = min(step / self.teacher_forcing_steps, 1.0)
        return self.teacher_forcing_start + (self.teacher_forcing_end - self.teacher_forcing_start) * progress

    def auxiliary_loss_scale(self, step: float) -> float:
        """The factor on the auxiliary loss term's weight at optimizer step ``step`` (or position), in ``[0, 1]``."""
        if step < self.auxiliary_loss_start_step:
            return 0.0
        if self.auxiliary_loss_ramp_steps == 0:
            return 1.0
        return min((step - self.auxiliary_loss_start_step + 1) / self.auxiliary_loss_ramp_steps, 1.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike, comment: str | None = None) -> None:
        """Write the resolved configuration as YAML, after ``comment`` (lines of ``# ...``) when given."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        header = "".join(f"# {line}\n" for line in comment.splitlines()) if comment else ""
        Path(path).write_text(header + yaml.safe_dump(self.to_dict(), sort_keys=False))


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_type(name: str, value, annotation: str) -> None:
    """Check a field against its (string) annotation: int, float, str, bool, dict, optional variants."""
    optional = "None" in annotation
    if value is None:
        if optional:
            return
        raise TypeError(f"{name} must not be null")
    base = annotation.replace(" | None", "").strip()
    expected = {"int": int, "float": (int, float), "str": str, "bool": bool, "dict": dict}[base]
    if base != "bool" and isinstance(value, bool) or not isinstance(value, expected):
        raise TypeError(
            f"{name} must be {base}{' or null' if optional else ''}, got {value!r} ({type(value).__name__})"
        )


def parse_overrides(pairs: list[str]) -> dict:
    """``["learning_rate=3e-3", "model.hidden_sizes=[32,32]"]`` -> nested dict; values parsed as YAML."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"override {pair!r} must look like key=value (e.g. learning_rate=0.001)")
        key, text = pair.split("=", 1)
        value = yaml.safe_load(text) if text else None
        target = overrides
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return overrides


def merge_config(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` over it, nested mappings merged key by key (a run config and its overrides)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_training_arguments(
    config_path: str | os.PathLike | None = None, overrides: dict | None = None
) -> TrainingArguments:
    """Read a YAML run config, apply overrides, and check every value.

    ``model: null`` / ``data: null`` among the overrides (``--model null``, ``--data null``) drop the file's
    settings of that key. When the overrides choose another ``dataset`` than the file's, the file's ``data``
    options that the chosen dataset does not take are dropped with a note (logged once), so a config written for
    Moving MNIST can fine-tune on a folder of sequences; an unknown option set in the overrides, or in a file
    written for the chosen dataset, still raises.

    Raises:
        FileNotFoundError: the config file is missing.
        ValueError / TypeError: an unknown key or a bad value, named in the message.
    """
    overrides = overrides or {}
    from_file = _read_config_file(config_path) if config_path is not None else {}
    values = merge_config(from_file, overrides)
    for key in ("model", "data"):  # `--model null` / `--data null` drop the file's settings
        if key in values and values[key] is None:
            values[key] = {}
    known = {field.name for field in dataclasses.fields(TrainingArguments)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; known keys: {sorted(known)}")
    if from_file:
        _drop_options_of_another_dataset(values, from_file, overrides, config_path)
    for field in dataclasses.fields(TrainingArguments):
        value = values.get(field.name)
        if "float" in field.type and isinstance(value, str):
            # YAML 1.1 reads 1e-3 (no dot) as a string; accept it as the number it means.
            with contextlib.suppress(ValueError):
                values[field.name] = float(value)
    if values.get("mixed_precision") is False:  # YAML 1.1 reads `--mixed_precision no` as false
        values["mixed_precision"] = "no"
    return TrainingArguments(**values)


def _read_config_file(config_path: str | os.PathLike) -> dict:
    path = Path(config_path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {os.fspath(path)!r} does not exist (see configs/ for examples)")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"config file {os.fspath(path)!r} must hold a mapping of keys to values")
    return loaded


def _data_options(dataset: str) -> frozenset[str] | None:
    """The ``data`` options ``dataset`` takes; None for a registered kind of data, which checks its own."""
    if dataset_kind(dataset) is not None:
        return None
    if dataset == "moving_mnist":
        return frozenset((*_MOVING_MNIST_FIELDS, "cache_dir"))
    return frozenset(_FRAMES_OPTIONS)


def _drop_options_of_another_dataset(
    values: dict, from_file: dict, overrides: dict, config_path: str | os.PathLike
) -> None:
    """Drop (in ``values``, with a note) the config file's ``data`` options written for the file's dataset that
    the dataset chosen in ``overrides`` does not take. Options set in ``overrides`` are kept, to be checked."""
    dataset = values.get("dataset", TrainingArguments.dataset)
    file_dataset, file_data = from_file.get("dataset", TrainingArguments.dataset), from_file.get("data")
    data = values.get("data")
    if dataset == file_dataset or not isinstance(dataset, str):  # (a wrong type is named by validate)
        return
    if not (isinstance(file_data, dict) and isinstance(data, dict)):
        return
    applies = _data_options(dataset)  # None: a registered kind checks its own options
    if applies is None:
        return
    explicit = overrides.get("data") if isinstance(overrides.get("data"), dict) else {}
    dropped = sorted(key for key in file_data if key in data and key not in applies and key not in explicit)
    if not dropped:
        return
    values["data"] = {key: value for key, value in data.items() if key not in dropped}
    if os.environ.get("RANK", "0") == "0":  # one note per run, not one per process
        _LOGGER.warning(
            "note: dropped the data options %s of %s: they were written for dataset=%r, and dataset=%r does not "
            "take them (it takes %s; --data null drops all of the file's data options)",
            dropped,
            os.fspath(config_path),
            file_dataset,
            dataset,
            sorted(applies),
        )


def parse_command_line(argv: list[str]) -> TrainingArguments:
    """``--config FILE`` then any field as ``--name value``, ``--name=value`` or ``--flag`` (true).

    Nested fields use dots (``--model.hidden_sizes [32,32]``, ``--data.num_train 2000``); values are read as
    YAML (numbers, booleans, lists, null).
    """
    config_path, pairs, index = None, [], 0
    while index < len(argv):
        token = argv[index]
        if token in ("-h", "--help"):
            print(_help())
            raise SystemExit(0)
        if not token.startswith("--"):
            raise ValueError(f"unexpected argument {token!r}; use --config FILE and --name value overrides")
        name, has_value, value = token[2:].partition("=")
        if not has_value:
            following = argv[index + 1] if index + 1 < len(argv) else None
            if following is None or following.startswith("--"):
                value = "true"
            else:
                value = following
                index += 1
        if name == "config":
            config_path = value
        else:
            pairs.append(f"{name}={value}")
        index += 1
    return load_training_arguments(config_path, parse_overrides(pairs))


def _help() -> str:
    lines = ["usage: train.py [--config FILE] [--name value ...]", "", "Fields (defaults):"]
    for field in dataclasses.fields(TrainingArguments):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        lines.append(f"  --{field.name} ({field.type}, default {default!r})")
    return "\n".join(lines)
