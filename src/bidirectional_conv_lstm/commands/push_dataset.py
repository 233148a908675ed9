"""Push the data a run config trains on to a Hub dataset repo, with a dataset card.

    hf auth login
    python scripts/push_dataset.py --repo_id you/moving-mnist                        # generated Moving MNIST
    python scripts/push_dataset.py --repo_id you/moving-mnist --config configs/moving_mnist_cpu.yaml
    python scripts/push_dataset.py --repo_id you/moving-mnist-small --data.num_train 1000 --data.num_test 200
    python scripts/push_dataset.py --repo_id you/synthetic-rain --dataset synthetic_rain
    python scripts/push_dataset.py --repo_id you/radar-windows --dataset radar --data.root ../shared/radar \\
        --license cc-by-4.0 --max-shard-size 50MB --num-shards train=16

The data is built (or read from the cache) exactly as scripts/train.py builds it from the same `dataset:` and
`data:` settings (a training config, then --name value overrides). Train on the pushed data with
`dataset: you/moving-mnist` in a run config. Radar windows and your own sequences need --license (the data
providers' terms); generated data defaults to cc-by-sa-3.0 (Moving MNIST, made of MNIST digits) or apache-2.0.
Radar windows are num_input_frames + num_output_frames long (the config's, or 10 + 10); a training config trains
on pushed rain windows with `dataset: radar` (or synthetic_rain) and `data: {windows: you/radar-windows}`.

The splits go up as Parquet shards: --max-shard-size (e.g. 50MB, in datasets' in-memory estimate; default 500MB)
or --num-shards (16 for every split, or train=16,validation=2: the other splits by size). load_dataset(repo,
split="train", streaming=True) reads them shard by shard; training with data.streaming on N processes wants the
train split in at least N shards (a multiple of N). The card says the sources, their attribution, the licence, the
window config and each split's rows and shards.
"""

import argparse

from ..hub.datasets_push import (
    build_dataset_splits,
    check_push_arguments,
    create_dataset_card,
    dataset_arguments,
    push_dataset_to_hub,
    shard_counts,
)
from ..training.arguments import parse_overrides
from . import program_name


def _pairs(tokens: list[str]) -> list[str]:
    """``["--data.num_train", "100", "--dataset=moving_mnist"]`` -> ``["data.num_train=100", "dataset=moving_mnist"]``."""
    pairs, index = [], 0
    while index < len(tokens):
        name, has_value, value = tokens[index].partition("=")
        if not name.startswith("--"):
            raise ValueError(f"unexpected argument {tokens[index]!r}; use --name value overrides")
        if not has_value:
            if index + 1 >= len(tokens) or tokens[index + 1].startswith("--"):
                raise ValueError(f"{name} needs a value")
            value, index = tokens[index + 1], index + 1
        pairs.append(f"{name[2:]}={value}")
        index += 1
    return pairs


def main(argv: list[str] | None = None) -> None:
    """Run the command with `argv` (default: ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        prog=program_name("push_dataset.py"),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repo_id", required=True, help="the dataset repo: 'name' or 'namespace/name'")
    parser.add_argument("--config", help="a training config (YAML) whose dataset / data settings to use")
    parser.add_argument("--license", help="Hub licence id of the data (needed for radar and your own data)")
    parser.add_argument("--pretty_name", help="the card's title")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument(
        "--max_shard_size",
        "--max-shard-size",
        help="most bytes of a Parquet shard, e.g. 50MB (default 500MB)",
    )
    parser.add_argument(
        "--num_shards", "--num-shards", help="shards per split: 16 (every split) or train=16,validation=2"
    )
    parser.add_argument("--dry_run", action="store_true", help="build the splits and print the card only")
    args, rest = parser.parse_known_args(argv)
    try:
        run = dataset_arguments(args.config, parse_overrides(_pairs(rest)))
        license = check_push_arguments(
            run,
            args.repo_id,
            license=args.license,
            max_shard_size=args.max_shard_size,
            num_shards=args.num_shards,
        )
        splits, info = build_dataset_splits(run, with_info=True)
        shards = shard_counts(splits, max_shard_size=args.max_shard_size, num_shards=args.num_shards)
        card = create_dataset_card(
            splits, run, license=license, pretty_name=args.pretty_name, info=info, num_shards=shards
        )
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise SystemExit(f"{parser.prog}: error: {error}") from None
    if args.dry_run:
        print(card)
        return
    commit = push_dataset_to_hub(splits, args.repo_id, card, private=args.private, num_shards=shards)
    rows = sum(len(split) for split in splits.values())
    print(
        f"pushed {rows} rows in {sum(shards.values())} Parquet shards to {commit.repo_url}: {commit.commit_url}"
    )
