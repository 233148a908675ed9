"""Load a saved model from a folder or a Hub repo, with errors a person can act on (the model's `from_pretrained`).

`transformers`' ``from_pretrained`` answers a mistyped folder name with "Check your internet connection" (it
takes any string that is not a folder for a Hub repo id) and a truncated weights file with a safetensors
traceback. :func:`load_pretrained_model` looks at the name first (an existing folder; something that can only be
a path; a valid repo id) and turns what the Hub client raises into one ``FileNotFoundError`` / ``ValueError``
that names the argument, the value and what was expected. ``ConvLSTMPreTrainedModel.from_pretrained`` loads
through it, so ``ConvLSTMForFramePrediction.from_pretrained("outputs/run")`` from the wrong folder says so.

This file travels with the model as remote code: it imports only huggingface_hub and safetensors (both
dependencies of transformers).
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors import SafetensorError

__all__ = ["check_model_name_or_path", "load_clearly"]

_WHAT_TO_GIVE = (
    "give a folder written by save_pretrained (e.g. a training run's output_dir) or a Hub model repo id"
)


def _looks_like_path(value: str) -> bool:
    """Only a path, never a repo id: starts like a path, ends with a separator, or has more than one "/"."""
    return (
        value.startswith((".", "/", "~"))
        or value.endswith(("/", os.sep))
        or value.count("/") > 1
        or (os.sep != "/" and os.sep in value)
    )


def check_model_name_or_path(model_name_or_path, *, argument: str = "model") -> Path | None:
    """Check a model folder or Hub repo id without touching the network.

    Args:
        model_name_or_path: a folder written by ``save_pretrained`` or a Hub repo id (``"name"`` or
            ``"namespace/name"``).
        argument: how error messages call the value (the script's option, e.g. ``"--model"``).

    Returns:
        The folder as a `Path` when it is a local folder; `None` for a Hub repo id (to be looked up).

    Raises:
        TypeError: not a string or path.
        FileNotFoundError: a folder without ``config.json``; a file; a path that does not exist and cannot be a
            repo id.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(model_name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"{argument} must be a folder or a Hub repo id (str), got {type(model_name_or_path).__name__}"
        )
    value = os.fspath(model_name_or_path)
    path = Path(value).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{argument}={value!r} is a folder without config.json; {_WHAT_TO_GIVE}")
        return path
    if path.exists():
        raise FileNotFoundError(f"{argument}={value!r} is a file, not a model folder; {_WHAT_TO_GIVE}")
    not_a_repo_id = _looks_like_path(value)
    if not not_a_repo_id:
        try:
            validate_repo_id(value)
        except HFValidationError:
            not_a_repo_id = True
    if not_a_repo_id:
        raise FileNotFoundError(
            f"{argument}={value!r}: no such folder, and not a Hub repo id ('name' or 'namespace/name' of "
            f"letters, digits, '-', '_', '.'); {_WHAT_TO_GIVE}"
        )
    return None


def _causes(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _broken_safetensors(folder: Path) -> list[str]:
    """``"path (reason)"`` for each ``*.safetensors`` file of `folder` whose header cannot be read."""
    from safetensors import safe_open

    broken = []
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except Exception as error:  # safetensors raises its own SafetensorError (and OSError for I/O)
            broken.append(f"{file} ({error})")
    return broken


def _snapshot_folder(repo_id: str, revision: str | None) -> Path | None:
    """The cached snapshot folder of a Hub repo, if its config.json is in the cache."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return Path(cached).parent if isinstance(cached, str) else None


def _is_transport_error(error: BaseException) -> bool:
    """A connection failure of httpx (or of the httpx2 fork some huggingface_hub builds use)."""
    return any(
        kind.__name__ == "TransportError" and kind.__module__.split(".")[0].startswith("httpx")
        for kind in type(error).__mro__
    )


def _explain(
    error: BaseException, value: str, argument: str, folder: Path | None, revision
) -> Exception | None:
    """The clear error for what `from_pretrained` raised, or None when it is not one we know."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    for cause in _causes(error):
        if isinstance(cause, SafetensorError):
            where = folder if folder is not None else _snapshot_folder(value, revision)
            files = _broken_safetensors(where) if where is not None else []
            named = "; ".join(files) if files else f"a safetensors file of {value!r} ({cause})"
            return ValueError(
                f"{argument}={value!r}: the weights file is truncated or corrupted: {named}; save or download "
                "the model again"
            )
        if isinstance(cause, GatedRepoError):
            return None  # transformers' message says how to ask for access
        if isinstance(cause, RepositoryNotFoundError):
            return FileNotFoundError(
                f"{argument}={value!r}: no such folder, and no model repo {value!r} on the Hub at "
                f"{constants.ENDPOINT} (a private repo needs a token: hf auth login); {_WHAT_TO_GIVE}"
            )
        if isinstance(cause, RevisionNotFoundError):
            return ValueError(f"revision={revision!r} does not exist in the Hub repo {value!r}")
        if isinstance(cause, (LocalEntryNotFoundError, OfflineModeIsEnabled)) or _is_transport_error(cause):
            hub = (
                "HF_HUB_OFFLINE is set"
                if constants.HF_HUB_OFFLINE
                else f"the Hub at {constants.ENDPOINT} could not be reached to look for a repo of that name"
            )
            return FileNotFoundError(
                f"{argument}={value!r}: no such folder, {hub}, and the local cache has no repo {value!r}; "
                f"{_WHAT_TO_GIVE}"
            )
        if isinstance(cause, EntryNotFoundError):
            return FileNotFoundError(
                f"{argument}={value!r}: the Hub repo has no config.json, so it is not a saved model; {_WHAT_TO_GIVE}"
            )
    return None


def load_clearly(load, model_name_or_path, *, argument: str = "model", revision: str | None = None, **kwargs):
    """``load(model_name_or_path, **kwargs)`` (transformers' `from_pretrained`), with errors that say what is wrong
    and what to give.

    Args:
        load: the loader, called with the folder (or the repo id) and `kwargs`.
        model_name_or_path: a folder written by ``save_pretrained`` or a Hub repo id.
        argument: how error messages call the value (e.g. ``"--model"``).
        revision: the Hub revision (branch, tag or commit).
        **kwargs: passed to `load` (``dtype=``, ``device_map=``, ...).

    Raises:
        FileNotFoundError: no such folder and no such Hub repo (or the Hub could not be asked and the repo is not
            cached); a folder or repo without ``config.json``.
        ValueError: a truncated or corrupted weights file (named in the message); a missing revision.
        TypeError: `model_name_or_path` is not a string or path.
    """
    folder = check_model_name_or_path(model_name_or_path, argument=argument)
    value = os.fspath(model_name_or_path)
    if revision is not None:
        kwargs["revision"] = revision
    try:
        return load(str(folder) if folder else value, **kwargs)
    except (OSError, SafetensorError) as error:
        clear = _explain(error, value, argument, folder, revision)
        if clear is None:
            raise
        raise clear from error
