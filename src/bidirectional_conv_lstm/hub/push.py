"""Models on the Hugging Face Hub: a model and its card in one commit.

- :func:`upload_folder_to_hub` uploads a saved model folder (``save_pretrained`` output, card, evaluation) in one
  atomic commit; a folder without a card gets one made from its ``config.json`` (the nowcasting card for a
  rain-rate model, the frame-prediction card otherwise).
- :func:`push_to_hub` saves a model and its card to a temporary folder and uploads that.

Uploads never write into the folder they read, so a failed upload leaves it as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

from huggingface_hub import CommitInfo

from ..models.convlstm.configuration_convlstm import ConvLSTMConfig
from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction
from ..models.convlstm.pipeline_convlstm import save_frame_prediction_model
from ..nowcasting.card import create_nowcasting_model_card, save_nowcasting_card
from ..utils.cards import create_model_card, save_model_card
from ..utils.hub_upload import DEFAULT_UPLOAD_PATTERNS, check_repo_id, check_saved_model, upload_model_folder

__all__ = ["card_function", "push_to_hub", "upload_folder_to_hub"]


def card_function(config: ConvLSTMConfig | Mapping):
    """The card renderer for a model: the nowcasting card for a rain-rate model, else :func:`create_model_card`."""
    transform = (
        config.get("rain_rate_transform") if isinstance(config, Mapping) else config.rain_rate_transform
    )
    return create_model_card if transform is None else create_nowcasting_model_card


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
    """Upload a saved model folder to the Hub repo `repo_id` (created if needed) in one commit, as
    :func:`~bidirectional_conv_lstm.utils.hub_upload.upload_model_folder` does (same arguments); a folder without
    ``README.md`` gets a card made from its ``config.json`` (:func:`card_function`).

    Raises:
        FileNotFoundError: `folder` is not a saved model.
        ValueError: `repo_id` is not a repo id.
        huggingface_hub.errors.HfHubHTTPError: the Hub refused or failed the upload.
    """
    check_repo_id(repo_id)
    folder = check_saved_model(folder)
    card = None
    if not (folder / "README.md").is_file():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        card = str(card_function(config)(config))
    return upload_model_folder(
        folder,
        repo_id,
        card=card,
        private=private,
        token=token,
        commit_message=commit_message,
        allow_patterns=allow_patterns,
        revision=revision,
    )


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
    (:func:`~bidirectional_conv_lstm.nowcasting.card.create_nowcasting_model_card`): ``results`` is then the dict of
    :func:`~bidirectional_conv_lstm.nowcasting.evaluation.evaluate_nowcasts` and ``dataset_name`` is not used.
    A `ConvLSTMForFramePrediction` goes with its processor (`image_processor`, by default the one matching its
    config) and the ``frame-prediction`` pipeline (:func:`~bidirectional_conv_lstm.save_frame_prediction_model`),
    so `AutoImageProcessor` and `pipeline("frame-prediction", ...)` load from the repo as remote code.

    Returns:
        The `huggingface_hub.CommitInfo` of the upload.

    Raises:
        TypeError: `model` is not a ConvLSTM model; ValueError: `repo_id` is not a repo id;
        huggingface_hub.errors.HfHubHTTPError: the Hub refused or failed the upload.
    """
    check_repo_id(repo_id)
    if not (hasattr(model, "save_pretrained") and isinstance(getattr(model, "config", None), ConvLSTMConfig)):
        raise TypeError(
            f"model must be a ConvLSTMForFramePrediction (or another ConvLSTM model), got {type(model).__name__}"
        )
    with tempfile.TemporaryDirectory(prefix="convlstm-push-") as staging:
        if isinstance(model, ConvLSTMForFramePrediction):
            # + the processor and the frame-prediction pipeline, so both load from the repo as remote code.
            save_frame_prediction_model(model, staging, image_processor=image_processor)
        else:
            model.save_pretrained(staging)
        if model.config.rain_rate_transform is not None:
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
