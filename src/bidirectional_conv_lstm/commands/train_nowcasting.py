"""Train a precipitation nowcasting model: synthetic pretraining, then (with an archive) the real radar events,
then an ensemble of the radar model, scored on the held-out events' whole radar domains.

    python scripts/train_nowcasting.py --radar_root ../shared/radar --output_dir outputs/nowcasting
    python scripts/train_nowcasting.py --output_dir outputs/nowcasting_synthetic        # no archive: synthetic only
    python scripts/train_nowcasting.py --radar_root ../shared/radar --ensemble_config none \\
        --output_dir outputs/nowcasting_deterministic                                    # no ensemble stage
    python scripts/train_nowcasting.py --radar_root ../shared/radar --synthetic.max_train_minutes 0.5 \\
        --radar.max_train_minutes 0.5 --ensemble.max_train_minutes 0.5 \\
        --output_dir outputs/nowcasting_smoke                                             # a quick end-to-end check

Options:
    --radar_root DIR          the radar archive (laid out as the pysteps-data example events); none: synthetic only
    --output_dir DIR          where the final model, its evaluation, pictures and card go (default outputs/nowcasting)
    --synthetic_config FILE   stage 1 config (default configs/nowcasting_synthetic.yaml)
    --radar_config FILE       stage 2 config (default configs/nowcasting_radar.yaml)
    --ensemble_config FILE    stage 3 config, what changes over stage 2's (default configs/nowcasting_ensemble.yaml;
                              none: stop after stage 2, whose model is then the one tested)
    --synthetic.NAME VALUE    override a stage-1 field (nested with dots: --synthetic.data.num_train 500)
    --radar.NAME VALUE        override a stage-2 field (--radar.max_train_minutes 3); stage 3 inherits it
    --ensemble.NAME VALUE     override a stage-3 field (--ensemble.model.ensemble_members 10)
"""

import sys
import time
from pathlib import Path

from ..nowcasting.recipe import STAGES, run_nowcasting_recipe
from ..nowcasting.tables import ensemble_methods, format_ensemble_table, format_scores_table
from ..training.arguments import parse_overrides
from . import program_name


def configs_folder() -> Path:
    """The repository's ``configs/`` (the recipe's default configs): beside the package in a clone (an editable
    install), else ``configs/`` under the current folder."""
    beside = Path(__file__).resolve().parents[3] / "configs"
    return beside if beside.is_dir() else Path("configs")


def parse(argv: list[str]) -> dict:
    """The options and the two stages' overrides of a command line (``--help`` prints the usage and exits)."""
    options = {
        "radar_root": None,
        "output_dir": "outputs/nowcasting",
        "synthetic_config": str(configs_folder() / "nowcasting_synthetic.yaml"),
        "radar_config": str(configs_folder() / "nowcasting_radar.yaml"),
        "ensemble_config": str(configs_folder() / "nowcasting_ensemble.yaml"),
    }
    stage_pairs = {"synthetic": [], "radar": [], "ensemble": []}
    index = 0
    while index < len(argv):
        token = argv[index]
        if token in ("-h", "--help"):
            print(__doc__)
            raise SystemExit(0)
        if not token.startswith("--"):
            raise ValueError(f"unexpected argument {token!r}; see --help")
        name, has_value, value = token[2:].partition("=")
        if not has_value:
            if index + 1 >= len(argv):
                raise ValueError(f"--{name} needs a value")
            value, index = argv[index + 1], index + 1
        stage, _, field = name.partition(".")
        if stage in stage_pairs and field:
            stage_pairs[stage].append(f"{field}={value}")
        elif name in options:
            options[name] = value
        else:
            raise ValueError(f"unknown option --{name}; see --help")
        index += 1
    options["synthetic_overrides"] = parse_overrides(stage_pairs["synthetic"])
    options["radar_overrides"] = parse_overrides(stage_pairs["radar"])
    options["ensemble_overrides"] = parse_overrides(stage_pairs["ensemble"])
    if str(options["ensemble_config"]).lower() in ("none", "null", ""):
        options["ensemble_config"] = None
    return options


def main(argv: list[str] | None = None) -> None:
    """Run the command with `argv` (default: ``sys.argv[1:]``)."""
    started = time.perf_counter()
    try:
        options = parse(sys.argv[1:] if argv is None else argv)
        synthetic_config = options.pop("synthetic_config")
        radar_config = options.pop("radar_config")
        results = run_nowcasting_recipe(synthetic_config, radar_config, **options)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise SystemExit(f"{program_name('train_nowcasting.py')}: error: {error}") from None
    final = results["ensemble"] or results["radar"] or results["synthetic"]
    for name in STAGES:
        stage = results[name]
        if stage is not None:
            print(
                f"{name}: {stage['global_step']} steps in {stage['train_minutes']:.1f} min -> {stage['output_dir']}"
            )
    print(f"\nTest scores ({final['output_dir']}/eval/metrics.md), all lead times pooled:\n")
    print(format_scores_table(final["test"]))
    if ensemble_methods(final["test"]):
        print("\n" + format_ensemble_table(final["test"]))
    print(f"\nwhole run: {(time.perf_counter() - started) / 60:.1f} min; model: {results['output_dir']}")
