"""Tests of `bidirectional_conv_lstm.hub.datasets_push` and `scripts/push_dataset.py`: the dataset card, the checks made
before any data is built, and a push to the loopback Hub (tests/hub_server.py) that a training config reads back by
its id. The same client also asks the loopback Hub for a model repo that does not exist (`scripts/predict.py`)."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from bidirectional_conv_lstm import ConvLSTMConfig
from bidirectional_conv_lstm.hub.datasets_push import (
    build_dataset_splits,
    check_push_arguments,
    create_dataset_card,
    dataset_arguments,
)
from bidirectional_conv_lstm.utils.cards import create_model_card
from hub_server import card_metadata_problems
from test_hub import run_client

ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = {"num_train": 4, "num_validation": 2, "num_test": 2, "num_frames": 6, "image_size": 32}
REPO = "test-user/moving-mnist-tiny"


def test_moving_mnist_card_says_how_it_was_made(tmp_path):
    args = dataset_arguments(
        None,
        {"data": {**TINY_DATA, "cache_dir": str(tmp_path)}, "num_input_frames": 3, "num_output_frames": 3},
    )
    splits = build_dataset_splits(args)
    card = create_dataset_card(splits, args, repo_id="someone/mm")
    card = DatasetCard(str(card))  # parses back
    assert card.data.license == "cc-by-sa-3.0" and card.data.size_categories == ["n<1K"]
    assert {"moving-mnist", "video-prediction"} <= set(card.data.tags)
    assert card_metadata_problems(str(card))[1] == []
    text = card.text
    assert "| train | 4 |" in text and "| validation | 2 |" in text and "| test | 2 |" in text
    assert "uint8 array (6, 1, 32, 32)" in text
    # The digit pools: the 5,000 bundled MNIST digits, 70 / 10 / 20 %.
    assert "5,000 real MNIST digits" in text and "| train | 3,500 |" in text and "| test | 1,000 |" in text
    assert "Creative Commons" in text and "Attribution-Share Alike 3.0" in text
    assert 'load_dataset("someone/mm")' in text and "dataset: someone/mm" in text
    assert "num_train: 4" in text and "cache_dir" not in text and str(tmp_path) not in text


def test_push_arguments_are_checked_before_any_data_is_built(tmp_path):
    folder = tmp_path / "my_sequences"
    folder.mkdir()
    args = dataset_arguments(None, {"dataset": str(folder)})
    with pytest.raises(ValueError, match=r"license is needed for dataset="):
        check_push_arguments(args, "someone/data")
    assert check_push_arguments(args, "someone/data", license="cc-by-4.0") == "cc-by-4.0"
    moving_mnist = dataset_arguments(None, {"data": {"cache_dir": str(tmp_path / "cache")}})
    with pytest.raises(ValueError, match=r"repo_id must be 'name' or 'namespace/name'"):
        check_push_arguments(moving_mnist, "not/a/repo")
    with pytest.raises(TypeError, match="license must be"):
        check_push_arguments(moving_mnist, "someone/data", license=3)
    assert not (tmp_path / "cache").exists()


def test_model_card_names_a_hub_dataset_by_its_id():
    card = create_model_card(ConvLSTMConfig(hidden_sizes=[4], patch_size=2), dataset_name=REPO)
    assert card.data.datasets == [REPO]
    assert "trained on **test-user/moving-mnist-tiny**" in card.text


@pytest.mark.slow
def test_push_to_the_hub_then_train_config_reads_it_back(local_hub, tmp_path):
    cache = tmp_path / "cache"
    argv = ["--repo_id", REPO.split("/")[1], *[f"--data.{k}={v}" for k, v in TINY_DATA.items()]]
    out = run_client(
        local_hub,
        f"""
        import contextlib, io, runpy, sys
        import numpy as np
        from bidirectional_conv_lstm.hub.datasets_push import build_dataset_splits, dataset_arguments
        from bidirectional_conv_lstm.training.data_sources import load_datasets
        from bidirectional_conv_lstm.training.arguments import load_training_arguments

        def script(name, *argv):
            sys.argv = [name, *argv]
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    runpy.run_path({str(ROOT / "scripts")!r} + "/" + name, run_name="__main__")
            except SystemExit as exit:
                return str(exit.code)
            return printed.getvalue()

        pushed = script("push_dataset.py", *{argv!r}, "--data.cache_dir", {str(cache)!r})
        data = {{**{TINY_DATA!r}, "cache_dir": {str(cache)!r}}}
        local = build_dataset_splits(dataset_arguments(None, {{"data": data}}))
        run = load_training_arguments(None, {{"dataset": {REPO!r}, "num_input_frames": 3, "num_output_frames": 3}})
        loaded = load_datasets(run)
        same = {{split: bool(np.array_equal(np.stack(loaded[split]["frames"]), np.stack(local[split]["frames"])))
                for split in ("train", "validation", "test")}}
        missing_model = script("predict.py", "--model", "nowhere", "--input", {str(ROOT / "space/examples/moving_mnist_0.gif")!r})
        print(json.dumps({{"pushed": pushed, "same": same, "missing_model": missing_model}}))
        """,
        tmp_path / "hf_home",
    )
    assert f"to {local_hub.endpoint}/datasets/{REPO}" in out["pushed"]
    assert out["same"] == {
        "train": True,
        "validation": True,
        "test": True,
    }  # the training config read the Hub copy
    files = local_hub.files(REPO, repo_type="dataset")
    assert {f"data/{split}-00000-of-00001.parquet" for split in ("train", "validation", "test")} <= set(files)
    assert pq.read_table(io.BytesIO(files["data/test-00000-of-00001.parquet"])).num_rows == 2
    readme = files["README.md"].decode()
    metadata, errors, _ = card_metadata_problems(readme)
    assert errors == [] and metadata["license"] == "cc-by-sa-3.0"
    assert metadata["configs"][0]["data_files"][0] == {
        "split": "train",
        "path": "data/train-*",
    }  # datasets' own
    assert [split["name"] for split in metadata["dataset_info"]["splits"]] == ["train", "validation", "test"]
    assert f'load_dataset("{REPO}")' in readme and "<dataset-id>" not in readme  # the card names the full id
    assert len(local_hub.repos[("dataset", REPO)].commits) == 3  # created, the data, the card
    assert out["missing_model"] == (
        f"predict.py: error: model='nowhere': no such folder, and no model repo 'nowhere' on the Hub at "
        f"{local_hub.endpoint} (a private repo needs a token: hf auth login); give a folder written by "
        "save_pretrained (e.g. a training run's output_dir) or a Hub model repo id"
    )
    assert local_hub.unhandled == []


def test_synthetic_rain_card_describes_the_window_schema(tmp_path):
    data = {
        "num_train": 3,
        "num_validation": 1,
        "num_test": 1,
        "num_frames": 4,
        "size": 32,
        "cache_dir": str(tmp_path),
    }
    args = dataset_arguments(None, {"dataset": "synthetic_rain", "data": data})
    splits = build_dataset_splits(args)
    assert set(splits) == {"train", "validation", "test"} and splits["train"].num_rows == 3
    card = DatasetCard(str(create_dataset_card(splits, args)))
    assert card.data.license == "apache-2.0" and "precipitation-nowcasting" in card.data.tags
    assert (
        "uint16 array (4, 1, 32, 32)" in card.text and "65535 marks a pixel without radar data" in card.text
    )
    train_events = sorted(set(splits["train"].with_format("arrow")["event"].to_pylist()))
    assert f"- train: {', '.join(train_events)}" in card.text  # the split's sequences, by name
    assert "size: 32" in card.text and "No radar archive was used" in card.text
