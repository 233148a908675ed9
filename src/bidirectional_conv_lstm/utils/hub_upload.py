"""Upload a saved model folder to the Hugging Face Hub in one commit.

:func:`upload_model_folder` sends what ``save_pretrained`` wrote (weights, config, code files, card, evaluation)
and nothing else (accelerate checkpoints and optimizer pickles never leave the machine). It never writes into the
folder it reads, so a failed upload leaves it as it was. The training loop uses it for ``push_to_hub: true``;
:mod:`bidirectional_conv_lstm.hub` builds its model and card uploads on it.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from .cards import MODEL_ID_PLACEHOLDER, is_hub_id

__all__ = ["DEFAULT_UPLOAD_PATTERNS", "check_repo_id", "check_saved_model", "upload_model_folder"]

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


def check_repo_id(repo_id) -> None:
    """Raise ``ValueError`` unless `repo_id` is ``"name"`` or ``"namespace/name"``."""
    if not is_hub_id(repo_id):
        raise ValueError(
            f"repo_id must be 'name' or 'namespace/name' (letters, digits, '-', '_', '.'), got {repo_id!r}"
        )


def check_saved_model(folder: str | os.PathLike) -> Path:
    """`folder` as a Path, once it holds a saved model (``config.json`` and ``*.safetensors``).

    Raises:
        FileNotFoundError: it does not.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
        raise FileNotFoundError(
            f"folder={str(folder)!r} must be a saved model (config.json and *.safetensors from save_pretrained)"
        )
    return folder


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


def upload_model_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    card: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload ConvLSTM frame-prediction model",
    allow_patterns: Iterable[str] = DEFAULT_UPLOAD_PATTERNS,
    revision: str | None = None,
) -> CommitInfo:
    """Upload a saved model folder to the Hub repo `repo_id` (created if needed) in one commit.

    Only files matching `allow_patterns` are sent (see `DEFAULT_UPLOAD_PATTERNS`: a pattern without "/" matches
    top-level files only). The folder's ``README.md`` is sent with `MODEL_ID_PLACEHOLDER` replaced by the repo id;
    a folder without one sends `card` instead. The folder itself is only read: when the upload fails, it is left
    exactly as it was and the error says so.

    Args:
        folder: a ``save_pretrained`` folder (``config.json`` and ``*.safetensors``), e.g. a training output.
        repo_id: ``"user/name"`` (or ``"name"`` for the token's user).
        card: the model card's text, for a folder without ``README.md``.
        private: make a new repo private (an existing repo keeps its visibility).
        token: a Hub token; defaults to the logged-in one (``HF_TOKEN`` / ``hf auth login``).
        commit_message: the commit's title.
        allow_patterns: which files to send.
        revision: the branch to commit to (``"main"`` by default).

    Returns:
        The `huggingface_hub.CommitInfo` (a str: the commit URL; ``.oid``, ``.repo_url``).

    Raises:
        FileNotFoundError: `folder` is not a saved model, or has no card and `card` is None.
        ValueError: `repo_id` is not a repo id.
        huggingface_hub.errors.HfHubHTTPError: the Hub refused or failed the upload.
    """
    check_repo_id(repo_id)
    folder = check_saved_model(folder)
    selected = _selected_files(folder, allow_patterns)
    if "README.md" not in selected and card is None:
        raise FileNotFoundError(f"folder={str(folder)!r} has no README.md (model card) and no card was given")
    api = HfApi(
        token=token,
        library_name="bidirectional-conv-lstm",
        library_version=metadata.version("bidirectional-conv-lstm"),
    )
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    operations = [
        CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(folder / p))
        for p in selected
        if p != "README.md"
    ]
    if "README.md" in selected:
        card = (folder / "README.md").read_text(encoding="utf-8")
    card = card.replace(MODEL_ID_PLACEHOLDER, repo_id)
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8")))
    try:
        return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision)
    except HfHubHTTPError as error:
        error.append_to_message(
            f"\n\nUploading {str(folder)!r} to the Hub repo {repo_id!r} failed, so nothing was committed; the "
            "local folder was not modified. Retry once the Hub is reachable."
        )
        raise
