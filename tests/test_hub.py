"""Tests of `bidirectional_conv_lstm.hub.push`: the model card, and push / load through the Hub API end to end.

The Hub is `LocalHub` (tests/hub_server.py), a local stand-in on 127.0.0.1. `huggingface_hub` reads HF_ENDPOINT,
HF_TOKEN and HF_HOME when it is imported, so every client runs in a fresh interpreter (`run_client`) whose
environment points at the stand-in and whose socket lookups are limited to loopback addresses.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import save_file

from bidirectional_conv_lstm import (
    ConvLSTMConfig,
    ConvLSTMForFramePrediction,
    hub,
    save_frame_prediction_model,
)
from bidirectional_conv_lstm.utils import hub_upload
from bidirectional_conv_lstm.utils.cards import MODEL_ID_PLACEHOLDER, create_model_card, save_model_card
from hub_server import card_metadata_problems

TINY = {"hidden_sizes": [4], "patch_size": 2, "kernel_size": 3, "num_input_frames": 3, "num_output_frames": 2}
RESULTS = {
    "mse": 12.5,
    "mae": 40.25,
    "psnr": float("inf"),  # a perfect frame: kept out of the model-index, shown in the table
    "ssim": 0.875,
    "ssim_openstl": 0.9375,
    "num_samples": 16,
    "mse_per_frame": [10.0, 15.0],
    "ssim_per_frame": [0.9, 0.85],
    "baselines": {"copy_last": {"mse": 30.0, "ssim": 0.5}},
}
MODEL_INDEX = {"mse": 12.5, "mae": 40.25, "ssim": 0.875, "ssim_openstl": 0.9375}

# Prepended to every client script: the client may only ever resolve loopback names.
NETWORK_GUARD = """
import socket
_getaddrinfo = socket.getaddrinfo
def _loopback_only(host, *args, **kwargs):
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise OSError(f"test blocked a lookup of {host!r}: the tests must not reach the network")
    return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = _loopback_only
"""
# Makes `bidirectional_conv_lstm` impossible to import, to prove a load used the repo's remote code alone.
BLOCK_PACKAGE = """
import importlib.abc, sys
class _BlockPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "bidirectional_conv_lstm":
            raise ImportError(f"{name} is blocked in this process")
sys.meta_path.insert(0, _BlockPackage())
"""
# Client-side helpers, defined in every client script.
HELPERS = """
import json

def check_predictions(model, reference_path):
    \"\"\"Assert that `model` predicts exactly the saved reference predictions from the saved frames.\"\"\"
    import torch
    from safetensors.torch import load_file

    reference = load_file(reference_path)
    with torch.no_grad():
        predictions = model(pixel_values=reference["frames"]).predictions
    difference = (predictions - reference["predictions"]).abs().max().item()
    assert torch.equal(predictions, reference["predictions"]), f"predictions differ by up to {difference}"
"""


def run_client(
    hub, script: str, hf_home: Path, *, block_package: bool = False, timeout: float = 180, **env
) -> dict:
    """Run `script` in a fresh interpreter talking to `hub`; return the JSON it prints on its last line.

    `block_package` makes `bidirectional_conv_lstm` unimportable there; `env` adds environment variables.
    """
    prelude = NETWORK_GUARD + (BLOCK_PACKAGE if block_package else "") + HELPERS
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        env=hub.client_env(hf_home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        pytest.fail(f"client script failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> dict:
    """A tiny trained-looking output folder (weights, card, evaluation, a checkpoint) and reference predictions."""
    root = tmp_path_factory.mktemp("saved_model")
    torch.manual_seed(0)
    config = ConvLSTMConfig(**TINY)
    model = ConvLSTMForFramePrediction(config).eval()
    output_dir = root / "output"
    save_frame_prediction_model(model, output_dir)  # what training saves: model, processor, pipeline
    save_model_card(output_dir, config=config, results=RESULTS, training_config={"seed": 1234, "data": {}})
    (output_dir / "eval").mkdir()
    (output_dir / "eval" / "metrics.json").write_text(json.dumps({"mse": RESULTS["mse"]}))
    (output_dir / "checkpoints" / "checkpoint-000001").mkdir(parents=True)
    (output_dir / "checkpoints" / "checkpoint-000001" / "model.safetensors").write_bytes(b"\0" * 64)
    frames = torch.rand(2, TINY["num_input_frames"], 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        predictions = model(pixel_values=frames).predictions
    save_file({"frames": frames, "predictions": predictions.contiguous()}, root / "reference.safetensors")
    return {"dir": output_dir, "reference": str(root / "reference.safetensors")}


# ----------------------------------------------------------------------------------------------- the stand-in
def test_stand_in_serves_the_hub_api_to_plain_huggingface_hub(local_hub, tmp_path):
    """Repo create, regular + LFS uploads, info, tree, resolve, snapshot and the Hub's errors, via the real client."""
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    (tmp_path / "folder" / "weights.safetensors").write_bytes(os.urandom(4096))
    (tmp_path / "folder" / "sub" / "notes.txt").write_text("hello")
    mark = len(local_hub.requests)
    out = run_client(
        local_hub,
        f"""
        import json, pathlib, tempfile
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError
        api = HfApi()
        folder = pathlib.Path({str(tmp_path / "folder")!r})
        repo_id = api.create_repo("plain").repo_id
        assert api.create_repo(repo_id, exist_ok=True).repo_id == repo_id
        try:
            api.create_repo(repo_id)
            raise AssertionError("creating an existing repo must fail")
        except HfHubHTTPError as error:
            assert error.response.status_code == 409
        api.upload_file(path_or_fileobj=b"---\\nlibrary_name: transformers\\n---\\n# card\\n",
                        path_in_repo="README.md", repo_id=repo_id)
        commit = api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="folder")
        info = api.model_info(repo_id, files_metadata=True)
        assert info.sha == commit.oid and info.card_data["library_name"] == "transformers"
        lfs = {{s.rfilename: s.lfs is not None for s in info.siblings}}
        assert lfs == {{".gitattributes": False, "README.md": False, "sub/notes.txt": False,
                       "weights.safetensors": True}}, lfs
        assert sorted(api.list_repo_files(repo_id)) == sorted(lfs)
        assert [f.path for f in api.list_repo_tree(repo_id, path_in_repo="sub")] == ["sub/notes.txt"]
        assert api.model_info(repo_id, revision=commit.oid).sha == commit.oid
        path = hf_hub_download(repo_id, "weights.safetensors")
        assert pathlib.Path(path).read_bytes() == (folder / "weights.safetensors").read_bytes()
        snapshot = pathlib.Path(snapshot_download(repo_id, cache_dir=tempfile.mkdtemp()))
        assert (snapshot / "sub" / "notes.txt").read_text() == "hello"
        assert not api.file_exists(repo_id, "missing.txt") and api.file_exists(repo_id, "sub/notes.txt")
        errors = []
        for call, expected in ((lambda: hf_hub_download(repo_id, "missing.txt"), EntryNotFoundError),
                               (lambda: api.model_info("test-user/nope"), RepositoryNotFoundError)):
            try:
                call()
            except expected as error:
                errors.append(type(error).__name__)
        try:
            api.upload_file(path_or_fileobj=b"---\\nmodel-index: oops\\n---\\n", path_in_repo="README.md",
                            repo_id=repo_id)
        except ValueError as error:
            errors.append("invalid metadata: " + str(error).splitlines()[0])
        print(json.dumps({{"repo_id": repo_id, "errors": errors}}))
        """,
        tmp_path / "hf_home",
    )
    assert out["repo_id"] == f"{local_hub.user}/plain"  # a repo created without namespace goes to the user
    assert out["errors"] == [
        "RemoteEntryNotFoundError",
        "RepositoryNotFoundError",
        "invalid metadata: Invalid metadata in README.md.",
    ]
    routes = local_hub.routes_called(since=mark)
    for route in (
        "create_repo",
        "validate_yaml",
        "preupload",
        "lfs_batch",
        "lfs_verify",
        "commit",
        "tree",
        "resolve",
    ):
        assert route in routes, route
    assert (
        local_hub.routes_called("storage", since=mark).count("storage_put") == 1
    )  # the .safetensors file only
    # The storage host is another origin (the Hub's CDN): the token must never be sent there.
    assert not [r for r in local_hub.requests[mark:] if r.server == "storage" and r.authorized]
    assert local_hub.unhandled == []


# ------------------------------------------------------------------------------------------------ model card
def test_model_card_parses_back_with_results_and_training_config(tmp_path):
    config = ConvLSTMConfig(**TINY)
    path = save_model_card(
        tmp_path,
        config=config,
        model_id="someone/convlstm-tiny",
        results=RESULTS,
        training_config={
            "seed": 1234,
            "learning_rate": 0.001,
            "hub_token": "hf_secret",
            "output_dir": tmp_path,
        },
    )
    card = ModelCard.load(path)
    data = card.data
    assert data.library_name == "transformers"
    assert {"convlstm", "video-prediction", "bidirectional-conv-lstm"} <= set(data.tags)
    assert data.datasets == ["moving_mnist"]
    assert data.metrics == list(MODEL_INDEX)
    assert data.model_name == "convlstm-tiny"
    found = {r.metric_type: r.metric_value for r in data.eval_results}
    assert found == MODEL_INDEX  # psnr is infinite: in the table, not in the model-index
    assert {(r.task_type, r.dataset_type, r.dataset_split) for r in data.eval_results} == {
        ("video-prediction", "moving_mnist", "test")
    }
    assert card_metadata_problems(str(card))[1] == []  # the Hub stand-in's metadata validation accepts it
    text = card.text
    assert 'AutoModel.from_pretrained("someone/convlstm-tiny", trust_remote_code=True)' in text
    assert 'AutoImageProcessor.from_pretrained("someone/convlstm-tiny", trust_remote_code=True)' in text
    assert 'pipeline("frame-prediction", model="someone/convlstm-tiny", trust_remote_code=True)' in text
    assert "np.random.randint(0, 256, (3, 64, 64), dtype=np.uint8)" in text and "num_output_frames=2" in text
    assert "| MSE | 12.5 | 30 |" in text and "| PSNR | inf |" in text  # model beside the copy_last baseline
    assert "seed: 1234" in text and "learning_rate: 0.001" in text
    assert "hf_secret" not in text and "hub_token: <redacted>" in text
    assert "hidden_sizes:\n- 4" in text and "model_type: convlstm" in text
    assert "Output threshold" not in text
    thresholded = create_model_card(ConvLSTMConfig(**TINY, output_threshold=0.3), results=RESULTS).text
    assert "predicted values below 0.3 are set to exactly 0" in thresholded


def test_model_card_without_results_or_with_bad_arguments(tmp_path):
    card = create_model_card(
        ConvLSTMConfig(**TINY).to_dict(),  # a config.json dict works too
        dataset_name=str(tmp_path / "my_frames"),  # a local dataset: no Hub link, no local path in the card
        base_model=str(tmp_path),  # a local folder: not a Hub id, left out
    )
    card = ModelCard(str(card))
    assert card.data.eval_results is None and card.data.datasets is None and card.data.base_model is None
    assert "No evaluation results were recorded" in card.text and str(tmp_path) not in str(card)
    assert f'AutoModel.from_pretrained("{MODEL_ID_PLACEHOLDER}", trust_remote_code=True)' in card.text
    with pytest.raises(TypeError, match=r"results\['mse'\]"):
        create_model_card(ConvLSTMConfig(**TINY), results={"mse": "low"})
    with pytest.raises(ValueError, match="frame_size"):
        create_model_card(ConvLSTMConfig(**TINY), frame_size=(63, 64))
    with pytest.raises(TypeError, match="config"):
        create_model_card("convlstm")
    with pytest.raises(ValueError, match="hidden_sizes"):
        create_model_card({**TINY, "hidden_sizes": []})


def test_upload_helpers_check_their_arguments_before_calling_the_hub(tmp_path, monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("bad arguments must be caught before any Hub call")

    monkeypatch.setattr(hub_upload, "HfApi", no_hub)
    with pytest.raises(FileNotFoundError, match="folder="):
        hub.upload_folder_to_hub(tmp_path, "someone/model")  # no config.json / weights
    with pytest.raises(ValueError, match="repo_id"):
        hub.upload_folder_to_hub(tmp_path, "not a/valid/id")
    with pytest.raises(TypeError, match="model must be"):
        hub.push_to_hub(torch.nn.Linear(2, 2), "someone/model")


# ------------------------------------------------------------------------------------------ push and load
FOLDER_REPO, HELPER_REPO, NATIVE_REPO = (
    "test-user/convlstm-tiny",
    "test-user/convlstm-helper",
    "test-user/convlstm-native",
)


@pytest.fixture(scope="module")
def pushed(local_hub, saved_model, tmp_path_factory) -> dict:
    """The push side, in one client (each fresh interpreter pays seconds of torch / transformers imports):

    1. `upload_folder_to_hub` of the saved output folder while the Hub fails the commit (HTTP 500), keeping the
       error; then again, the Hub being back, to a repo named without namespace;
    2. `hub.push_to_hub(model, ...)` with evaluation results for the card;
    3. transformers' own `model.push_to_hub(...)`.

    Returns the client's report plus digests of the output folder before and after.
    """
    folder = saved_model["dir"]
    before = tree_digest(folder)
    local_hub.inject_failure("commit", 500, "Internal Error - simulated outage")
    out = run_client(
        local_hub,
        f"""
        from huggingface_hub.errors import HfHubHTTPError
        from bidirectional_conv_lstm import ConvLSTMForFramePrediction
        from bidirectional_conv_lstm.hub.push import push_to_hub, upload_folder_to_hub
        folder = {str(folder)!r}
        try:
            upload_folder_to_hub(folder, "convlstm-tiny")
            raise AssertionError("the upload should have failed")
        except HfHubHTTPError as error:
            failure = {{"type": type(error).__name__, "status": error.response.status_code, "message": str(error)}}
        retry = upload_folder_to_hub(folder, "convlstm-tiny")
        source = ConvLSTMForFramePrediction.from_pretrained(folder).eval()
        helper = push_to_hub(source, "convlstm-helper", results=json.loads({json.dumps(RESULTS)!r}),
                             training_config={{"seed": 7}})
        native = source.push_to_hub({NATIVE_REPO!r})
        print(json.dumps({{"failure": failure, "folder": {{"oid": retry.oid, "repo_id": retry.repo_url.repo_id}},
                          "helper": helper.repo_url.repo_id, "native": native.repo_url.repo_id}}))
        """,
        tmp_path_factory.mktemp("hf_home_push"),
    )
    return {**out, "before": before, "after": tree_digest(folder)}


@pytest.mark.slow
def test_failed_commit_raises_clearly_and_leaves_the_local_folder_untouched(local_hub, pushed, saved_model):
    failure = pushed["failure"]
    assert failure["type"] == "HfHubHTTPError" and failure["status"] == 500
    assert "Internal Error - simulated outage" in failure["message"]  # the Hub's own message
    assert "nothing was committed" in failure["message"] and str(saved_model["dir"]) in failure["message"]
    assert pushed["after"] == pushed["before"]  # same files, same bytes, through the failure and the retry
    commits = local_hub.repos[("model", FOLDER_REPO)].commits
    assert len(commits) == 2  # the repo's initial commit and the retry: the failed commit left nothing


@pytest.mark.slow
def test_upload_folder_sends_the_model_files_in_one_commit(local_hub, pushed, saved_model):
    assert pushed["folder"]["repo_id"] == FOLDER_REPO  # "convlstm-tiny" went to the token's user
    assert local_hub.head(FOLDER_REPO) == pushed["folder"]["oid"]
    files = local_hub.files(FOLDER_REPO)
    code_files = sorted(path.name for path in saved_model["dir"].glob("*.py"))
    assert {"modeling_convlstm.py", "processing_convlstm.py", "pipeline_convlstm.py"} <= set(code_files)
    assert sorted(files) == sorted(
        [
            ".gitattributes",
            "README.md",
            "config.json",
            "eval/metrics.json",
            "model.safetensors",
            "preprocessor_config.json",
            *code_files,
        ]
    )  # checkpoints/ stays home
    stored = local_hub.repos[("model", FOLDER_REPO)].commits[pushed["folder"]["oid"]].files
    assert stored["model.safetensors"].sha256 is not None  # went through the LFS batch API and storage
    assert files["model.safetensors"] == (saved_model["dir"] / "model.safetensors").read_bytes()
    readme = files["README.md"].decode()
    assert f'AutoModel.from_pretrained("{FOLDER_REPO}", trust_remote_code=True)' in readme
    assert MODEL_ID_PLACEHOLDER not in readme
    assert (
        MODEL_ID_PLACEHOLDER in (saved_model["dir"] / "README.md").read_text()
    )  # the local card is unchanged
    assert local_hub.unhandled == []


@pytest.mark.slow
def test_load_in_fresh_cache_then_offline_from_that_cache(local_hub, pushed, saved_model, tmp_path):
    """Every pushed repo loads from an empty cache with identical predictions, then again with HF_HUB_OFFLINE=1."""
    assert (pushed["helper"], pushed["native"]) == (HELPER_REPO, NATIVE_REPO)
    hf_home = tmp_path / "hf_home"
    load = f"""
        from huggingface_hub import ModelCard
        from bidirectional_conv_lstm import ConvLSTMForFramePrediction
        report = {{}}
        for repo_id in {[FOLDER_REPO, HELPER_REPO, NATIVE_REPO]!r}:
            model = ConvLSTMForFramePrediction.from_pretrained(repo_id).eval()
            check_predictions(model, {saved_model["reference"]!r})
            card = ModelCard.load(repo_id)
            report[repo_id] = {{r.metric_type: r.metric_value for r in card.data.eval_results or []}}
        print(json.dumps(report))
        """
    online = run_client(local_hub, load, hf_home)
    assert online == {
        FOLDER_REPO: MODEL_INDEX,
        HELPER_REPO: MODEL_INDEX,
        NATIVE_REPO: {},
    }  # transformers' card
    assert len(list((hf_home / "hub").rglob("model.safetensors"))) == 3  # they came through this fresh cache

    mark = len(local_hub.requests)
    offline = run_client(local_hub, load, hf_home, HF_HUB_OFFLINE="1")
    assert offline == online
    assert local_hub.requests[mark:] == []  # offline: nothing reached the Hub
    assert local_hub.unhandled == []


@pytest.mark.slow
def test_remote_code_load_without_the_package_and_the_card_snippet_runs(
    local_hub, pushed, saved_model, tmp_path
):
    out = run_client(
        local_hub,
        f"""
        import re, sys
        from huggingface_hub import ModelCard
        from transformers import AutoModel
        model = AutoModel.from_pretrained({FOLDER_REPO!r}, trust_remote_code=True).eval()
        check_predictions(model, {saved_model["reference"]!r})
        import numpy as np
        from safetensors.torch import load_file
        snippets = re.findall(r"```python\\n(.*?)```", ModelCard.load({FOLDER_REPO!r}).text, re.DOTALL)
        processor_and_model, with_pipeline = {{}}, {{}}
        exec(snippets[0], processor_and_model)  # the card's usage examples, verbatim
        exec(snippets[1], with_pipeline)
        predictor = with_pipeline["predictor"]
        reference = load_file({saved_model["reference"]!r})
        frames = reference["frames"][0].numpy()  # (T, 1, H, W) floats in [0, 1]
        again = predictor(frames, output_type="float")["predictions"]
        difference = float(np.abs(again - reference["predictions"][0].numpy()).max())
        assert "bidirectional_conv_lstm" not in sys.modules
        print(json.dumps({{
            "modules": [type(x).__module__ for x in (model, processor_and_model["processor"], predictor)],
            "snippet_shapes": [list(processor_and_model["predicted"].shape), list(with_pipeline["result"]["predictions"].shape)],
            "gif": with_pipeline["result"]["gif"][:4].decode(),
            "pipeline_difference": difference,
        }}))
        """,
        tmp_path / "hf_home",
        block_package=True,
    )
    # The repo's code (model, processor, pipeline), not the (blocked) package.
    assert all(module.startswith("transformers_modules.") for module in out["modules"]), out["modules"]
    assert out["snippet_shapes"] == [[TINY["num_output_frames"], 64, 64]] * 2
    assert out["gif"] == "GIF8"
    assert out["pipeline_difference"] < 1e-5  # the pipeline predicts what the model predicts
    assert local_hub.unhandled == []
