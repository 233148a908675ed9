"""Tests of `bidirectional_conv_lstm.hub.datasets_push` and `scripts/push_dataset.py`: the dataset card, the checks made
before any data is built, and a push to the loopback Hub (tests/hub_server.py) that a training config reads back by
its id. The same client also asks the loopback Hub for a model repo that does not exist (`scripts/predict.py`).
Radar windows (cut from small generated stacks) go up as several Parquet shards per split and stream back
(``load_dataset(..., streaming=True)``) row for row."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from bidirectional_conv_lstm import ConvLSTMConfig
from bidirectional_conv_lstm.commands.push_dataset import main as push_dataset_main
from bidirectional_conv_lstm.hub.datasets_push import (
    build_dataset_splits,
    check_push_arguments,
    check_shard_options,
    create_dataset_card,
    dataset_arguments,
    shard_counts,
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


# ---- sharded pushes, streaming back -------------------------------------------------------------------------

RADAR_EVENTS = ("north", "south", "east")


@pytest.fixture(scope="module")
def radar_stacks(tmp_path_factory) -> Path:
    """Three small generated events (mm/h, 12 frames of 32 x 32, a no-data corner) as .npy stacks."""
    from bidirectional_conv_lstm.data import generate_synthetic_rain

    folder = tmp_path_factory.mktemp("stacks")
    rain = generate_synthetic_rain(len(RADAR_EVENTS), num_frames=12, size=32, seed=3, speed_range=(0.5, 1.5))
    for name, event in zip(RADAR_EVENTS, rain):
        event[:, :3, :5] = np.nan
        np.save(folder / f"{name}.npy", event)
    return folder


def radar_overrides(stacks: Path, cache: Path) -> dict:
    """Windows of 2 + 2 frames, 16 px tiles: north trains, south validates, east tests."""
    sources = [{"name": name, "path": str(stacks / f"{name}.npy"), "timestep": 5} for name in RADAR_EVENTS]
    data = {
        "sources": sources,
        "validation_events": ["south"],
        "test_events": ["east"],
        "time_block_fractions": [1.0, 0.0, 0.0],
        "tile_size": 16,
        "train_crops_per_window": 2,
        "cache_dir": str(cache),
    }
    return {"dataset": "radar", "num_input_frames": 2, "num_output_frames": 2, "data": data}


@pytest.mark.parametrize(
    "options, error, message",
    [
        (
            ["--max-shard-size", "50XB"],
            ValueError,
            "max_shard_size must be a size such as '50MB', '1GiB' or a number of bytes, got '50XB'",
        ),
        (["--max_shard_size", "0"], ValueError, "max_shard_size must be a positive int, got 0"),
        (["--num-shards", "0"], ValueError, "num_shards must be a positive int, got 0"),
        (
            ["--num-shards", "train=4,dev=2"],
            ValueError,
            "num_shards names splits ['dev']; the splits are ['train', 'validation', 'test']",
        ),
        (
            ["--num-shards", "train=four"],
            ValueError,
            "num_shards must be a count for every split (e.g. 16) or counts per split (e.g. train=16,validation=2), got 'train=four'",
        ),
    ],
)
def test_shard_options_fail_before_any_data_is_built(tmp_path, capsys, options, error, message):
    cache = tmp_path / "cache"
    argv = [
        "--repo_id",
        "someone/rain",
        "--dataset",
        "synthetic_rain",
        "--data.cache_dir",
        str(cache),
        *options,
    ]
    with pytest.raises(SystemExit) as exit:
        push_dataset_main(argv)
    assert str(exit.value) == f"push_dataset.py: error: {message}"  # one line, the option and its value
    args = dataset_arguments(None, {"dataset": "synthetic_rain", "data": {"cache_dir": str(cache)}})
    name = "max_shard_size" if "max" in options[0] else "num_shards"
    with pytest.raises(error, match=r"^" + name):
        check_push_arguments(args, "someone/rain", **{name: options[1]})
    assert not cache.exists()  # nothing was generated
    assert check_shard_options("1KiB", "train=3, test=2") == (1024, {"train": 3, "test": 2})
    assert check_shard_options(None, 8) == (None, 8) and check_shard_options(" 5000 ") == (5000, None)
    with pytest.raises(TypeError, match=r"num_shards must be a positive int, got 2.5 \(float\)"):
        check_shard_options(num_shards=2.5)


def test_shard_counts_follow_size_or_count_and_hold_a_row_each(tmp_path):
    data = {
        "num_train": 6,
        "num_validation": 2,
        "num_test": 2,
        "num_frames": 4,
        "size": 32,
        "cache_dir": str(tmp_path),
    }
    splits = build_dataset_splits(dataset_arguments(None, {"dataset": "synthetic_rain", "data": data}))
    row_bytes = splits["train"].data.nbytes / 6  # about 4 x 32 x 32 x 2 bytes
    assert shard_counts(splits) == {"train": 1, "validation": 1, "test": 1}  # 500MB
    assert shard_counts(splits, max_shard_size=int(2.5 * row_bytes)) == {
        "train": 3,
        "validation": 1,
        "test": 1,
    }
    assert shard_counts(splits, max_shard_size="1KB") == {
        "train": 6,
        "validation": 2,
        "test": 2,
    }  # a row each
    assert shard_counts(splits, num_shards=2) == {"train": 2, "validation": 2, "test": 2}
    assert shard_counts(splits, max_shard_size="1KB", num_shards={"train": 4}) == {
        "train": 4,
        "validation": 2,
        "test": 2,
    }
    with pytest.raises(ValueError, match=r"num_shards=3 for split 'validation', which has 2 rows"):
        shard_counts(splits, num_shards=3)


def test_radar_card_says_sources_attribution_window_config_and_shards(radar_stacks, tmp_path):
    args = dataset_arguments(None, radar_overrides(radar_stacks, tmp_path / "cache"))
    splits, info = build_dataset_splits(args, with_info=True)
    assert set(info["events"]) == set(RADAR_EVENTS) and info["events"]["north"]["importer"] == "numpy"
    # What a build from the pysteps-data sample events records (tests/test_data_radar.py reads them), and a stack.
    sample = {
        "grid": [765, 700],
        "pixel_size": [1000.0, 1000.0],
        "cartesian_unit": "m",
        "windows": {"train": 3},
    }
    info = {
        "dataset": "radar",
        "events": {
            "knmi_20100826": {**sample, "role": "train", "importer": "knmi_hdf5", "timestep_minutes": 5.0},
            "fmi_20170509": {**sample, "role": "test", "importer": "fmi_pgm", "timestep_minutes": 5.0},
            "bom2_20180616": {
                **sample,
                "role": "validation",
                "importer": "bom_rf3",
                "timestep_minutes": 5.0,
                "native_timestep_minutes": 6.0,
            },
            "north": {**info["events"]["north"]},
        },
    }
    shards = {"train": 4, "validation": 2, "test": 1}
    card = create_dataset_card(
        splits, args, repo_id="someone/radar", license="cc-by-4.0", info=info, num_shards=shards
    )
    card = DatasetCard(str(card))
    assert card_metadata_problems(str(card))[1] == [] and card.data.license == "cc-by-4.0"
    text = card.text
    for split, rows in ("train", 18), ("validation", 36), ("test", 36):  # two crops per training window
        assert f"| {split} | {rows} | {shards[split]} |" in text and len(splits[split]) == rows
    assert "frames per window: 4 (2 observed, then 2 future)" in text
    assert "tile size: 16 x 16 pixels, after downsampling by 1" in text
    assert "validation events, held out whole: south" in text and "test events, held out whole: east" in text
    assert (
        "| knmi_20100826 | train | `knmi_hdf5` | KNMI (Royal Netherlands Meteorological Institute) (pysteps-data) | 5 min | 765 x 700 | 1000 m | train 3 |"
        in text
    )
    assert (
        "| bom2_20180616 | validation | `bom_rf3` | BoM (Australian Bureau of Meteorology) (pysteps-data) | 5 min (resampled from 6 min) |"
        in text
    )
    assert "| north | train | `numpy` | not recorded | 5 min | 32 x 32 | - | train 9 |" in text
    assert (
        "**Attribution.** Radar data: BoM (Australian Bureau of Meteorology), FMI (Finnish Meteorological "
        "Institute), KNMI (Royal Netherlands Meteorological Institute)." in text
    )
    assert "https://github.com/pySTEPS/pysteps-data" in text and "`cc-by-4.0`, as the radar archives'" in text
    assert 'load_dataset("someone/radar", split="train", streaming=True)' in text
    assert "dataset: radar\ndata: {windows: someone/radar, streaming: true}" in text
    # What a run training on the windows (data.windows) reads back: the events' roles, steps and grids.
    recorded = card.data.rain_windows["events"]
    assert (
        recorded["north"]["role"] == "train" and recorded["bom2_20180616"]["native_timestep_minutes"] == 6.0
    )
    assert str(radar_stacks) not in str(card) and str(tmp_path) not in str(card)
    assert str(radar_stacks) not in text and str(tmp_path) not in text  # no path of this machine


@pytest.mark.slow
def test_radar_windows_pushed_as_shards_stream_back_row_for_row(local_hub, radar_stacks, tmp_path):
    repo = "test-user/radar-windows-sharded"
    overrides = radar_overrides(radar_stacks, tmp_path / "cache")
    data = json.dumps(overrides["data"])
    argv = ["--repo_id", repo, "--dataset", "radar", "--num_input_frames", "2", "--num_output_frames", "2"]
    argv += ["--data", data, "--license", "cc-by-4.0", "--max-shard-size", "8KB", "--num-shards", "test=3"]
    out = run_client(
        local_hub,
        f"""
        import contextlib, io
        import datasets
        import numpy as np
        from bidirectional_conv_lstm.commands.push_dataset import main
        from bidirectional_conv_lstm.hub.datasets_push import build_dataset_splits, dataset_arguments

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            main({argv!r})
        local = build_dataset_splits(dataset_arguments(None, {overrides!r}))
        same, shards = {{}}, {{}}
        for split in ("train", "validation", "test"):
            streamed = datasets.load_dataset({repo!r}, split=split, streaming=True)
            assert isinstance(streamed, datasets.IterableDataset)
            shards[split] = streamed.n_shards
            rows = list(streamed.with_format("numpy"))
            table = local[split].with_format("numpy")
            same[split] = len(rows) == len(table) and all(
                row["event"] == want["event"] and row["origin"] == want["origin"]
                and (row["y"], row["x"]) == (want["y"], want["x"])
                and np.array_equal(row["rain_rate"], want["rain_rate"])
                for row, want in zip(rows, table)
            )
        print(json.dumps({{"pushed": printed.getvalue(), "same": same, "shards": shards}}))
        """,
        tmp_path / "hf_home",
    )
    files = local_hub.files(repo, repo_type="dataset")
    parquet = {
        path: pq.read_table(io.BytesIO(content))
        for path, content in files.items()
        if path.endswith(".parquet")
    }
    per_split = {
        split: sorted(p for p in parquet if p.startswith(f"data/{split}-"))
        for split in ("train", "validation", "test")
    }
    # 8 KB shards of 2 KB windows (18, 36 rows); test in exactly 3.
    assert len(per_split["train"]) >= 3 and len(per_split["validation"]) >= 6 and len(per_split["test"]) == 3
    assert all(parquet[path].num_rows >= 1 for path in parquet)  # no empty shard
    assert {split: sum(parquet[p].num_rows for p in paths) for split, paths in per_split.items()} == {
        "train": 18,
        "validation": 36,
        "test": 36,
    }
    assert out["shards"] == {
        split: len(paths) for split, paths in per_split.items()
    }  # streamed shard by shard
    assert out["same"] == {"train": True, "validation": True, "test": True}
    total = sum(len(paths) for paths in per_split.values())
    assert (
        f"pushed 90 rows in {total} Parquet shards to {local_hub.endpoint}/datasets/{repo}" in out["pushed"]
    )
    readme = files["README.md"].decode()
    assert f"| train | 18 | {len(per_split['train'])} |" in readme and "| test | 36 | 3 |" in readme
    assert "| north | train | `numpy` | not recorded |" in readme and "tile size: 16 x 16 pixels" in readme
    assert f'load_dataset("{repo}", split="train", streaming=True)' in readme
    assert local_hub.unhandled == []
