"""Tests of `bidirectional_conv_lstm.utils.loading` and the model's own `from_pretrained`: what a person is told when a model cannot be loaded.

The script-level cases (a truncated weights file, a missing folder, a name that is no repo id) are in
tests/test_prediction.py; a repo the loopback Hub does not have is in tests/test_hub_datasets.py. Here: the
mapping of the Hub client's errors, without any network (transformers' loader is replaced by one that raises).
"""

from __future__ import annotations

import pytest
from huggingface_hub import constants
from huggingface_hub.errors import LocalEntryNotFoundError
from transformers import PreTrainedModel

from bidirectional_conv_lstm import ConvLSTMForFramePrediction
from bidirectional_conv_lstm.utils.loading import check_model_name_or_path, load_pretrained_model


def _raises(cause: Exception):
    def from_pretrained(*args, **kwargs):
        try:
            raise cause
        except Exception as error:
            raise OSError("We couldn't connect to the Hub. Check your internet connection") from error

    return classmethod(lambda cls, *args, **kwargs: from_pretrained(*args, **kwargs))


def test_an_unreachable_hub_is_said_so_with_the_name_and_what_to_give(monkeypatch):
    monkeypatch.setattr(PreTrainedModel, "from_pretrained", _raises(LocalEntryNotFoundError("no cache")))
    with pytest.raises(FileNotFoundError) as error:
        load_pretrained_model("nowhere", argument="--model")
    message = str(error.value)
    assert message.startswith("--model='nowhere': no such folder, the Hub at ")
    assert (
        "could not be reached to look for a repo of that name, and the local cache has no repo 'nowhere'"
        in message
    )
    assert "internet connection" not in message
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="no such folder, HF_HUB_OFFLINE is set, and the local cache"):
        load_pretrained_model("someone/nowhere")


def test_errors_we_do_not_know_pass_through(monkeypatch):
    monkeypatch.setattr(PreTrainedModel, "from_pretrained", _raises(RuntimeError("disk on fire")))
    with pytest.raises(OSError, match="Check your internet connection"):
        load_pretrained_model("someone/model")


def test_local_checks(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(
        FileNotFoundError, match=r"model='.*weights.safetensors' is a file, not a model folder"
    ):
        check_model_name_or_path(tmp_path / "weights.safetensors")
    with pytest.raises(TypeError, match="must be a folder or a Hub repo id"):
        check_model_name_or_path(3)
    for not_an_id in ("./model", "a/b/c", "bad--name", "~/models/x"):
        with pytest.raises(FileNotFoundError, match="not a Hub repo id"):
            check_model_name_or_path(not_an_id)
    assert check_model_name_or_path("someone/model") is None  # to be looked up on the Hub
    (tmp_path / "config.json").write_text("{}")
    assert check_model_name_or_path(tmp_path) == tmp_path


def test_the_models_own_from_pretrained_says_what_is_wrong(monkeypatch, tmp_path):
    """`ConvLSTMForFramePrediction.from_pretrained("outputs/run")` from the wrong folder: no "check your internet
    connection" but which folder is missing; a name that can only be a path fails before any network call."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(PreTrainedModel, "from_pretrained", _raises(LocalEntryNotFoundError("no cache")))
    with pytest.raises(FileNotFoundError) as error:
        ConvLSTMForFramePrediction.from_pretrained("outputs/nowcasting")
    message = str(error.value)
    assert message.startswith("pretrained_model_name_or_path='outputs/nowcasting': no such folder")
    assert "internet connection" not in message and "\n" not in message

    def no_network(*args, **kwargs):
        raise AssertionError("a path-like name must fail before transformers is asked")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(no_network))
    for path_like in ("./outputs/nowcasting", "outputs/nowcasting/", "a/b/c"):
        with pytest.raises(FileNotFoundError, match=r"no such folder, and not a Hub repo id"):
            ConvLSTMForFramePrediction.from_pretrained(path_like)
