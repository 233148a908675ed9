"""Model cards and uploads to the Hugging Face Hub.

- :func:`create_model_card` / :func:`save_model_card` render the card (``README.md``) from the template in the
  repository's ``model_cards/`` folder with huggingface_hub's ``ModelCard`` / ``ModelCardData``: library, tags,
  datasets, metrics, a ``model-index`` with the evaluation results, a usage snippet and the training configuration.
- :func:`upload_folder_to_hub` uploads a saved model folder (``save_pretrained`` output, card, evaluation) in one
  atomic commit; :func:`push_to_hub` saves a model and its card to a temporary folder and uploads that.

Uploads never write into the folder they read, so a failed upload leaves it as it was.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import CommitInfo, CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError

from .configuration_convlstm import ConvLSTMConfig

__all__ = [
    "DEFAULT_UPLOAD_PATTERNS",
    "MODEL_CARD_TEMPLATE",
    "MODEL_ID_PLACEHOLDER",
    "create_model_card",
    "model_card_template_path",
    "push_to_hub",
    "save_model_card",
    "upload_folder_to_hub",
]

MODEL_CARD_TEMPLATE = "convlstm_frame_prediction.md"
# Stands for the repo id in cards written before the model has one; uploads replace it with the real id.
MODEL_ID_PLACEHOLDER = "<model-id>"
# What `upload_folder_to_hub` takes from a training output folder: patterns without "/" match files at the top
# level only, so checkpoints/ (accelerate states, optimizer pickles) never leave the machine.
DEFAULT_UPLOAD_PATTERNS = (
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "*.py",
    "README.md",
    "training_config.yaml",
    "*.png",
    "*.gif",
    "eval/*.json",
    "eval/*.md",
    "eval/*.png",
)
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


def model_card_template_path(name: str = MODEL_CARD_TEMPLATE) -> Path:
    """The model card template: ``model_cards/<name>`` of the source tree (or a copy packaged beside this module).

    Raises:
        FileNotFoundError: the template is in neither place (a non-editable install without the packaged copy).
    """
    here = Path(__file__).resolve().parent
    candidates = (here.parents[1] / "model_cards" / name, here / "model_cards" / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"model card template {name!r} not found; looked in {[str(c) for c in candidates]}. Pass template_path= "
        "or install the package from a source checkout (pip install -e .)."
    )


def _as_config(config: ConvLSTMConfig | Mapping) -> ConvLSTMConfig:
    if isinstance(config, ConvLSTMConfig):
        return config
    if isinstance(config, Mapping):
        return ConvLSTMConfig.from_dict(dict(config))  # validates every field
    raise TypeError(f"config must be a ConvLSTMConfig or a dict (config.json), got {type(config).__name__}")


def _yaml_block(data: Mapping) -> str:
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
        results: evaluation results as :func:`bidirectional_conv_lstm.evaluation.evaluate_dataloader` returns
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
        template_path: another Jinja2 template; defaults to :func:`model_card_template_path`.

    Returns:
        A `huggingface_hub.ModelCard`; ``card.save(path)`` writes it, ``ModelCard.load(path)`` reads it back.

    Raises:
        TypeError / ValueError: a bad `config`, `results` or `frame_size`, naming the argument.
    """
    config = _as_config(config)
    if results is not None and not isinstance(results, Mapping):
        raise TypeError(f"results must be a dict of metric name -> value, got {type(results).__name__}")
    if training_config is not None and not isinstance(training_config, Mapping):
        raise TypeError(f"training_config must be a dict, got {type(training_config).__name__}")
    scalars, per_frame, baselines = _scalar_metrics(results or {})

    patch = config.patch_size
    if frame_size is None:
        side = ((training_config or {}).get("data") or {}).get("image_size", 64)
        side = side if isinstance(side, int) and not isinstance(side, bool) and side > 0 else 64
        side = patch * math.ceil(side / patch)
        frame_size = (side, side)
    height, width = frame_size
    if not all(isinstance(s, int) and s > 0 and s % patch == 0 for s in (height, width)):
        raise ValueError(
            f"frame_size must be two positive ints divisible by patch_size={patch}, got {frame_size!r}"
        )

    # "user/moving-mnist" is a Hub dataset id (named in the card's metadata), not a folder, unless it exists here.
    is_local = (
        dataset_name.startswith((".", "/", "~"))
        or dataset_name.count("/") > 1
        or (os.sep != "/" and os.sep in dataset_name)
        or Path(dataset_name).expanduser().exists()
    )
    hub_dataset = None if is_local or not _HUB_ID.fullmatch(dataset_name) else dataset_name
    pretty_dataset = DATASET_PRETTY_NAMES.get(
        dataset_name, Path(dataset_name).name if is_local else dataset_name
    )
    if base_model is not None and (Path(base_model).exists() or not _HUB_ID.fullmatch(base_model)):
        base_model = None  # a local folder means nothing on the Hub
    model_name = model_id.split("/")[-1] if model_id else "convlstm-frame-prediction"

    metric_types = [m for m, v in scalars.items() if m != "num_samples" and math.isfinite(v)]
    eval_results = [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=TASK_NAME,
            dataset_type=hub_dataset or pretty_dataset,
            dataset_name=pretty_dataset,
            dataset_split=dataset_split,
            metric_type=metric,
            metric_name=METRIC_PRETTY_NAMES.get(metric, metric),
            metric_value=scalars[metric],
        )
        for metric in metric_types
    ]
    card_data = ModelCardData(
        library_name="transformers",
        license=license,
        tags=[*DEFAULT_TAGS, *(tags or ())],
        datasets=[hub_dataset] if hub_dataset else None,
        metrics=metric_types or None,
        base_model=base_model,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    model_config = {"model_type": config.model_type}
    model_config.update({name: getattr(config, name) for name in ConvLSTMConfig.__annotations__})
    template = template_path if template_path is not None else model_card_template_path()
    return ModelCard.from_template(
        card_data,
        template_path=str(template),
        model_id=model_id or MODEL_ID_PLACEHOLDER,
        model_name=model_name,
        library_url=LIBRARY_URL,
        dataset_name=dataset_name if not is_local else pretty_dataset,
        dataset_pretty_name=pretty_dataset,
        dataset_split=dataset_split,
        base_model=base_model,
        bidirectional=config.bidirectional,
        num_layers=len(config.hidden_sizes),
        hidden_sizes=list(config.hidden_sizes),
        kernel_size=config.kernel_size,
        patch_size=patch,
        loss=config.loss,
        output_threshold=config.output_threshold,
        num_channels=config.num_channels,
        num_input_frames=config.num_input_frames,
        num_output_frames=config.num_output_frames,
        num_output_frames_evaluated=len(next(iter(per_frame.values()), [])) or None,
        frame_height=height,
        frame_width=width,
        num_samples=int(scalars["num_samples"]) if "num_samples" in scalars else None,
        results_table=_results_table(scalars, baselines) if set(scalars) - {"num_samples"} else "",
        lead_time_table=_lead_time_table(per_frame),
        model_config_yaml=_yaml_block(model_config),
        training_config_yaml=_yaml_block(training_config) if training_config else "",
    )


def _card_function(config: ConvLSTMConfig | Mapping):
    """The card renderer for a model: the nowcasting card for a rain-rate model, else :func:`create_model_card`."""
    transform = (
        config.get("rain_rate_transform") if isinstance(config, Mapping) else config.rain_rate_transform
    )
    if transform is not None:
        from .nowcasting_card import create_nowcasting_model_card

        return create_nowcasting_model_card
    return create_model_card


def save_model_card(save_directory: str | os.PathLike, **card_kwargs) -> Path:
    """Write ``README.md`` into `save_directory` (created if needed); `card_kwargs` go to `create_model_card`.

    Returns:
        The path of the card.
    """
    path = Path(save_directory) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    create_model_card(**card_kwargs).save(path)
    return path


def _selected_files(folder: Path, patterns: Iterable[str]) -> list[str]:
    patterns = list(patterns)
    selected = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and any(
            fnmatch.fnmatchcase(relative, p) and ("/" in p or "/" not in relative) for p in patterns
        ):
            selected.append(relative)
    return selected


def _check_repo_id(repo_id) -> None:
    if not isinstance(repo_id, str) or not _HUB_ID.fullmatch(repo_id):
        raise ValueError(
            f"repo_id must be 'name' or 'namespace/name' (letters, digits, '-', '_', '.'), got {repo_id!r}"
        )


def upload_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload ConvLSTM frame-prediction model",
    allow_patterns: Iterable[str] = DEFAULT_UPLOAD_PATTERNS,
    revision: str | None = None,
) -> CommitInfo:
    """Upload a saved model folder to the Hub repo `repo_id` (created if needed) in one commit.

    Only files matching `allow_patterns` are sent (see `DEFAULT_UPLOAD_PATTERNS`: a pattern without "/" matches
    top-level files only). A card in the folder is sent with `MODEL_ID_PLACEHOLDER` replaced by the repo id; a
    folder without ``README.md`` gets one made from its ``config.json``. The folder itself is only read: when the
    upload fails, it is left exactly as it was and the error says so.

    Args:
        folder: a ``save_pretrained`` folder (``config.json`` and ``*.safetensors``), e.g. a training output.
        repo_id: ``"user/name"`` (or ``"name"`` for the token's user).
        private: make a new repo private (an existing repo keeps its visibility).
        token: a Hub token; defaults to the logged-in one (``HF_TOKEN`` / ``hf auth login``).
        commit_message: the commit's title.
        allow_patterns: which files to send.
        revision: the branch to commit to (``"main"`` by default).

    Returns:
        The `huggingface_hub.CommitInfo` (a str: the commit URL; ``.oid``, ``.repo_url``).

    Raises:
        FileNotFoundError: `folder` is not a saved model.
        ValueError: `repo_id` is not a repo id.
        huggingface_hub.errors.HfHubHTTPError: the Hub refused or failed the upload.
    """
    _check_repo_id(repo_id)
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
        raise FileNotFoundError(
            f"folder={str(folder)!r} must be a saved model (config.json and *.safetensors from save_pretrained)"
        )
    from . import __version__

    api = HfApi(token=token, library_name="bidirectional-conv-lstm", library_version=__version__)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    selected = _selected_files(folder, allow_patterns)
    operations = [
        CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(folder / p))
        for p in selected
        if p != "README.md"
    ]
    if "README.md" in selected:
        card = (folder / "README.md").read_text(encoding="utf-8").replace(MODEL_ID_PLACEHOLDER, repo_id)
    else:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        card = str(_card_function(config)(config, model_id=repo_id))
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8")))
    try:
        return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision)
    except HfHubHTTPError as error:
        error.append_to_message(
            f"\n\nUploading {str(folder)!r} to the Hub repo {repo_id!r} failed, so nothing was committed; the "
            "local folder was not modified. Retry once the Hub is reachable."
        )
        raise


def push_to_hub(
    model,
    repo_id: str,
    *,
    results: Mapping[str, Any] | None = None,
    dataset_name: str = "moving_mnist",
    dataset_split: str = "test",
    training_config: Mapping[str, Any] | None = None,
    base_model: str | None = None,
    frame_size: tuple[int, int] | None = None,
    tags: Iterable[str] | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload ConvLSTM frame-prediction model",
    revision: str | None = None,
    image_processor=None,
) -> CommitInfo:
    """Save `model` (``save_pretrained``: config, safetensors weights, modeling code) and its card to a temporary
    folder and upload it to `repo_id` with :func:`upload_folder_to_hub`.

    Unlike ``model.push_to_hub`` (which keeps the repo's old card or writes a generic one), the card carries the
    results, the dataset and the training configuration given here; see :func:`create_model_card` for those. A
    rain-rate model (``config.rain_rate_transform`` set) gets the nowcasting card
    (:func:`~bidirectional_conv_lstm.nowcasting_card.create_nowcasting_model_card`): ``results`` is then the dict of
    :func:`~bidirectional_conv_lstm.nowcast_evaluation.evaluate_nowcasts` and ``dataset_name`` is not used.
    A `ConvLSTMForFramePrediction` goes with its processor (`image_processor`, by default the one matching its
    config) and the ``frame-prediction`` pipeline (:func:`~bidirectional_conv_lstm.save_frame_prediction_model`),
    so `AutoImageProcessor` and `pipeline("frame-prediction", ...)` load from the repo as remote code.

    Returns:
        The `huggingface_hub.CommitInfo` of the upload.

    Raises:
        TypeError: `model` is not a ConvLSTM model; ValueError: `repo_id` is not a repo id;
        huggingface_hub.errors.HfHubHTTPError: the Hub refused or failed the upload.
    """
    _check_repo_id(repo_id)
    if not (hasattr(model, "save_pretrained") and isinstance(getattr(model, "config", None), ConvLSTMConfig)):
        raise TypeError(
            f"model must be a ConvLSTMForFramePrediction (or another ConvLSTM model), got {type(model).__name__}"
        )
    with tempfile.TemporaryDirectory(prefix="convlstm-push-") as staging:
        from .modeling_convlstm import ConvLSTMForFramePrediction

        if isinstance(model, ConvLSTMForFramePrediction):
            from .pipeline_convlstm import save_frame_prediction_model

            # + the processor and the frame-prediction pipeline, so both load from the repo as remote code.
            save_frame_prediction_model(model, staging, image_processor=image_processor)
        else:
            model.save_pretrained(staging)
        if model.config.rain_rate_transform is not None:
            from .nowcasting_card import save_nowcasting_card

            save_nowcasting_card(
                staging,
                config=model.config,
                results=results,
                training_config=training_config,
                base_model=base_model,
                frame_size=frame_size,
                tags=tags,
            )
        else:
            save_model_card(
                staging,
                config=model.config,
                results=results,
                dataset_name=dataset_name,
                dataset_split=dataset_split,
                training_config=training_config,
                base_model=base_model,
                frame_size=frame_size,
                tags=tags,
            )
        return upload_folder_to_hub(
            staging, repo_id, private=private, token=token, commit_message=commit_message, revision=revision
        )
