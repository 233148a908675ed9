"""Model cards (``README.md`` of a saved model), rendered from the Jinja2 templates packaged in
``card_templates/`` with huggingface_hub's ``ModelCard`` / ``ModelCardData``.

- :func:`card_template_path`: a packaged template, found with ``importlib.resources``;
- :func:`model_card_values`: the template values every model card shares (the architecture, the usage snippet's
  frame size, the configuration as YAML): the frame-prediction card here and the nowcasting card
  (:mod:`bidirectional_conv_lstm.nowcasting.card`) both start from it;
- :func:`create_model_card` / :func:`save_model_card`: the card of a frame-prediction model: library, tags,
  datasets, metrics, a ``model-index`` with the evaluation results, a usage snippet and the training configuration.

The Hub uploads (:mod:`bidirectional_conv_lstm.hub`) send these cards; the training loop writes them.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..models.convlstm.configuration_convlstm import ConvLSTMConfig

__all__ = [
    "LIBRARY_URL",
    "MODEL_CARD_TEMPLATE",
    "MODEL_ID_PLACEHOLDER",
    "TASK_TYPE",
    "as_config",
    "card_template_path",
    "create_model_card",
    "is_hub_id",
    "model_card_values",
    "save_model_card",
    "yaml_block",
]

MODEL_CARD_TEMPLATE = "convlstm_frame_prediction.md"
# Stands for the repo id in cards written before the model has one; uploads replace it with the real id.
MODEL_ID_PLACEHOLDER = "<model-id>"
# What `upload_folder_to_hub` takes from a training output folder: patterns without "/" match files at the top
LIBRARY_URL = "https://github.com/bidirectional-conv-lstm/bidirectional-conv-lstm"
TASK_TYPE, TASK_NAME = "video-prediction", "Video Frame Prediction"
DEFAULT_TAGS = (
    "bidirectional-conv-lstm",
    "convlstm",
    "video-prediction",
    "frame-prediction",
    "spatiotemporal",
)
DATASET_PRETTY_NAMES = {"moving_mnist": "Moving MNIST"}
METRIC_PRETTY_NAMES = {
    "mse": "MSE",
    "mae": "MAE",
    "psnr": "PSNR",
    "ssim": "SSIM",
    "ssim_openstl": "SSIM (OpenSTL data range)",
}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_SECRET_KEY = re.compile(r"token|secret|password|api_key", re.IGNORECASE)


def card_template_path(name: str = MODEL_CARD_TEMPLATE) -> Path:
    """The packaged card template ``card_templates/<name>`` (read with ``importlib.resources``).

    Raises:
        FileNotFoundError: no template of that name is packaged.
    """
    template = resources.files(__package__) / "card_templates" / name
    if not template.is_file():
        known = sorted(entry.name for entry in (resources.files(__package__) / "card_templates").iterdir())
        raise FileNotFoundError(f"card template {name!r} is not packaged; the templates are {known}")
    return Path(str(template))


def is_hub_id(value: str) -> bool:
    """Whether ``value`` is shaped like a Hub repo id (``"name"`` or ``"namespace/name"``)."""
    return isinstance(value, str) and _HUB_ID.fullmatch(value) is not None


def as_config(config: ConvLSTMConfig | Mapping) -> ConvLSTMConfig:
    """`config` as a `ConvLSTMConfig` (a dict, e.g. a ``config.json``, is validated by the constructor)."""
    if isinstance(config, ConvLSTMConfig):
        return config
    if isinstance(config, Mapping):
        return ConvLSTMConfig.from_dict(dict(config))  # validates every field
    raise TypeError(f"config must be a ConvLSTMConfig or a dict (config.json), got {type(config).__name__}")


def yaml_block(data: Mapping) -> str:
    """`data` as YAML, with secrets redacted and non-YAML values (paths, tuples, ...) as plain strings."""

    def clean(value):
        if isinstance(value, Mapping):
            return {
                str(k): "<redacted>" if _SECRET_KEY.search(str(k)) else clean(v) for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        return str(value)

    return yaml.safe_dump(clean(data), sort_keys=False, allow_unicode=True).strip()


def _scalar_metrics(results: Mapping) -> tuple[dict[str, float], dict[str, list], dict[str, Mapping]]:
    """Split evaluation results into scalar metrics, per-lead-time lists and baselines; reject anything else."""
    scalars, per_frame, baselines = {}, {}, {}
    for key, value in results.items():
        if not isinstance(key, str):
            raise TypeError(f"results keys must be metric names (str), got {key!r}")
        if key == "baselines" and isinstance(value, Mapping):
            baselines = {
                str(kind): metrics for kind, metrics in value.items() if isinstance(metrics, Mapping)
            }
        elif key.endswith("_per_frame") and isinstance(value, (list, tuple)):
            per_frame[key[: -len("_per_frame")]] = list(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            scalars[key] = float(value)
        else:
            raise TypeError(
                f"results[{key!r}] must be a number, a list under a '*_per_frame' key or the 'baselines' "
                f"mapping, got {type(value).__name__}"
            )
    return scalars, per_frame, baselines


def _format(value) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "inf" if math.isinf(value) else f"{value:.4g}"
    return "–"


def _results_table(scalars: Mapping[str, float], baselines: Mapping[str, Mapping]) -> str:
    metrics = [m for m in scalars if m != "num_samples"]
    columns = ["this model", *(f"baseline: {kind}" for kind in baselines)]
    lines = ["| metric | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for metric in metrics:
        values = [scalars[metric], *(baseline.get(metric) for baseline in baselines.values())]
        lines.append(
            f"| {METRIC_PRETTY_NAMES.get(metric, metric)} | " + " | ".join(map(_format, values)) + " |"
        )
    return "\n".join(lines)


def _lead_time_table(per_frame: Mapping[str, list]) -> str:
    metrics = [m for m in per_frame if per_frame[m]]
    if not metrics:
        return ""
    lines = ["| frame | " + " | ".join(METRIC_PRETTY_NAMES.get(m, m) for m in metrics) + " |"]
    lines.append("|---" * (len(metrics) + 1) + "|")
    for index in range(max(len(per_frame[m]) for m in metrics)):
        values = [per_frame[m][index] if index < len(per_frame[m]) else None for m in metrics]
        lines.append(f"| {index + 1} | " + " | ".join(map(_format, values)) + " |")
    return "\n".join(lines)


def model_card_values(
    config: ConvLSTMConfig,
    *,
    model_id: str | None,
    model_name: str,
    frame_size: tuple[int, int],
    training_config: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The template values every model card shares: the repo id (or `MODEL_ID_PLACEHOLDER`), the architecture,
    the frame counts, the usage snippet's ``(height, width)`` and the model and training configurations as YAML
    (secrets redacted)."""
    height, width = frame_size
    model_config = {"model_type": config.model_type}
    model_config.update({name: getattr(config, name) for name in ConvLSTMConfig.__annotations__})
    return dict(
        model_id=model_id or MODEL_ID_PLACEHOLDER,
        model_name=model_name,
        library_url=LIBRARY_URL,
        bidirectional=config.bidirectional,
        num_layers=len(config.hidden_sizes),
        hidden_sizes=list(config.hidden_sizes),
        kernel_size=config.kernel_size,
        patch_size=config.patch_size,
        loss=config.loss,
        num_input_frames=config.num_input_frames,
        num_output_frames=config.num_output_frames,
        frame_height=height,
        frame_width=width,
        model_config_yaml=yaml_block(model_config),
        training_config_yaml=yaml_block(training_config) if training_config else "",
    )


def create_model_card(
    config: ConvLSTMConfig | Mapping,
    *,
    model_id: str | None = None,
    results: Mapping[str, Any] | None = None,
    dataset_name: str = "moving_mnist",
    dataset_split: str = "test",
    training_config: Mapping[str, Any] | None = None,
    base_model: str | None = None,
    frame_size: tuple[int, int] | None = None,
    tags: Iterable[str] | None = None,
    license: str = "apache-2.0",
    template_path: str | os.PathLike | None = None,
) -> ModelCard:
    """Render the model card (``README.md``) of a frame-prediction model.

    Args:
        config: the model's `ConvLSTMConfig`, or a dict of it (a ``config.json``); it is validated.
        model_id: the Hub repo id (``"user/name"``) used in the usage snippet and as the ``model-index`` name;
            `None` writes `MODEL_ID_PLACEHOLDER`, which the upload helpers replace with the real id.
        results: evaluation results as :func:`bidirectional_conv_lstm.training.evaluation.evaluate_dataloader` returns
            them: metric name -> number (``mse``, ``mae``, ``psnr``, ``ssim``, ``ssim_openstl``, ``num_samples``),
            optional ``<metric>_per_frame`` lists and a ``baselines`` mapping. Finite numbers (not
            ``num_samples``) go to the card's ``model-index`` metadata; all of it to tables in the text.
        dataset_name: the dataset trained and evaluated on: ``"moving_mnist"``, a Hub dataset id, or a local path
            (then only its folder name is shown and the ``datasets`` metadata is left out).
        dataset_split: the split `results` were measured on.
        training_config: the resolved run configuration (e.g. ``TrainingArguments.to_dict()``), shown as YAML;
            values of keys that look like secrets (token, password, ...) are redacted.
        base_model: the Hub id of the model this one was fine-tuned from; a local path is left out.
        frame_size: ``(height, width)`` of the snippet's example input; defaults to the training config's
            ``data.image_size`` or 64x64. Must be divisible by ``config.patch_size``.
        tags: extra Hub tags, after the library's own.
        license: the card's license id.
        template_path: another Jinja2 template; defaults to :func:`card_template_path`.

    Returns:
        A `huggingface_hub.ModelCard`; ``card.save(path)`` writes it, ``ModelCard.load(path)`` reads it back.

    Raises:
        TypeError / ValueError: a bad `config`, `results` or `frame_size`, naming the argument.
    """
    config = as_config(config)
    if results is not None and not isinstance(results, Mapping):
        raise TypeError(f"results must be a dict of metric name -> value, got {type(results).__name__}")
    if training_config is not None and not isinstance(training_config, Mapping):
        raise TypeError(f"training_config must be a dict, got {type(training_config).__name__}")
    scalars, per_frame, baselines = _scalar_metrics(results or {})
    frame_size = _snippet_frame_size(config.patch_size, frame_size, training_config)
    shown_name, pretty_dataset, hub_dataset = _dataset_names(dataset_name)
    if base_model is not None and (Path(base_model).exists() or not is_hub_id(base_model)):
        base_model = None  # a local folder means nothing on the Hub
    model_name = model_id.split("/")[-1] if model_id else "convlstm-frame-prediction"

    eval_results = _eval_results(scalars, hub_dataset or pretty_dataset, pretty_dataset, dataset_split)
    card_data = ModelCardData(
        library_name="transformers",
        license=license,
        tags=[*DEFAULT_TAGS, *(tags or ())],
        datasets=[hub_dataset] if hub_dataset else None,
        metrics=[result.metric_type for result in eval_results] or None,
        base_model=base_model,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    template = template_path if template_path is not None else card_template_path()
    return ModelCard.from_template(
        card_data,
        template_path=str(template),
        **model_card_values(
            config,
            model_id=model_id,
            model_name=model_name,
            frame_size=frame_size,
            training_config=training_config,
        ),
        dataset_name=shown_name,
        dataset_pretty_name=pretty_dataset,
        dataset_split=dataset_split,
        base_model=base_model,
        output_threshold=config.output_threshold,
        num_channels=config.num_channels,
        num_output_frames_evaluated=len(next(iter(per_frame.values()), [])) or None,
        num_samples=int(scalars["num_samples"]) if "num_samples" in scalars else None,
        results_table=_results_table(scalars, baselines) if set(scalars) - {"num_samples"} else "",
        lead_time_table=_lead_time_table(per_frame),
    )


def _eval_results(
    scalars: Mapping[str, float], dataset_type: str, dataset_name: str, dataset_split: str
) -> list[EvalResult]:
    """The ``model-index`` entries: one per finite scalar metric (``num_samples`` aside)."""
    return [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=TASK_NAME,
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_split=dataset_split,
            metric_type=metric,
            metric_name=METRIC_PRETTY_NAMES.get(metric, metric),
            metric_value=value,
        )
        for metric, value in scalars.items()
        if metric != "num_samples" and math.isfinite(value)
    ]


def _snippet_frame_size(patch: int, frame_size, training_config: Mapping | None) -> tuple[int, int]:
    """The usage snippet's ``(height, width)``: `frame_size`, else the training config's ``data.image_size``
    (or 64) rounded up to the patch size.

    Raises:
        ValueError: `frame_size` is not two positive ints divisible by `patch`.
    """
    if frame_size is None:
        side = ((training_config or {}).get("data") or {}).get("image_size", 64)
        side = side if isinstance(side, int) and not isinstance(side, bool) and side > 0 else 64
        side = patch * math.ceil(side / patch)
        frame_size = (side, side)
    if len(frame_size) != 2 or not all(isinstance(s, int) and s > 0 and s % patch == 0 for s in frame_size):
        raise ValueError(
            f"frame_size must be two positive ints divisible by patch_size={patch}, got {frame_size!r}"
        )
    return tuple(frame_size)


def _dataset_names(dataset_name: str) -> tuple[str, str, str | None]:
    """``(name shown, pretty name, Hub dataset id or None)`` of a run's ``dataset``: "user/moving-mnist" is a Hub
    dataset id (named in the card's metadata), not a folder, unless it exists here; a local folder is shown by its
    name alone."""
    is_local = (
        dataset_name.startswith((".", "/", "~"))
        or dataset_name.count("/") > 1
        or (os.sep != "/" and os.sep in dataset_name)
        or Path(dataset_name).expanduser().exists()
    )
    hub_dataset = None if is_local or not is_hub_id(dataset_name) else dataset_name
    pretty = DATASET_PRETTY_NAMES.get(dataset_name, Path(dataset_name).name if is_local else dataset_name)
    return (pretty if is_local else dataset_name), pretty, hub_dataset


def save_model_card(save_directory: str | os.PathLike, **card_kwargs) -> Path:
    """Write ``README.md`` into `save_directory` (created if needed); `card_kwargs` go to `create_model_card`.

    Returns:
        The path of the card.
    """
    path = Path(save_directory) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    create_model_card(**card_kwargs).save(path)
    return path
