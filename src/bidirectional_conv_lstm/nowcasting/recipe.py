"""The precipitation-nowcasting recipe behind ``scripts/train_nowcasting.py`` (``make nowcast``).

1. **Synthetic pretraining** (``configs/nowcasting_synthetic.yaml``): the model learns to move and evolve rain on
   generated advecting fields, as many and as varied as wanted, with no archive.
2. **Radar fine-tuning** (``configs/nowcasting_radar.yaml``), when an archive folder is given: the pretrained model
   trains on the real events, whole events held out for the test.
3. **Ensemble fine-tuning** (``configs/nowcasting_ensemble.yaml``: what changes over stage 2's config), when an
   ensemble config is given too: stage 2's model gets a noise injection and trains its members with the fair CRPS
   (``docs/nowcasting/ensembles.md``); it is the recipe's model, scored on the held-out events' whole radar
   domains beside persistence, extrapolation, S-PROG, ANVIL and STEPS with as many members.

Without an archive the recipe stops after stage 1, whose test is the synthetic test split; a stage that a later
stage fine-tunes is not tested (``do_test: false``). Every stage is the ordinary training loop
(:func:`bidirectional_conv_lstm.training.loop.train`), time-budgeted by its ``max_train_minutes``; every value of
every config can be overridden. A later stage takes the earlier stage's model whole; its config's ``model`` may
only change the fine-tuning settings (:data:`~bidirectional_conv_lstm.training.arguments.FINE_TUNING_FIELDS`: the
loss, the advection's warp and padding, the ensemble).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import yaml

from ..training.arguments import (
    FINE_TUNING_FIELDS,
    TrainingArguments,
    load_training_arguments,
    merge_config,
)
from ..training.loop import train

__all__ = ["STAGES", "nowcasting_stages", "run_nowcasting_recipe"]

STAGES = ("synthetic", "radar", "ensemble")


def nowcasting_stages(
    synthetic_config: str | os.PathLike,
    radar_config: str | os.PathLike,
    *,
    output_dir: str | os.PathLike,
    radar_root: str | os.PathLike | None = None,
    ensemble_config: str | os.PathLike | None = None,
    synthetic_overrides: dict | None = None,
    radar_overrides: dict | None = None,
    ensemble_overrides: dict | None = None,
) -> dict[str, TrainingArguments]:
    """The stages' checked arguments, before anything runs: ``{"synthetic": ..., "radar": ..., "ensemble":
    ...}``, the stages that will run, in order (radar with `radar_root`; ensemble with `radar_root` and
    `ensemble_config`, whose values, then `ensemble_overrides`, go over the radar stage's).

    The last stage writes to ``output_dir``, the others to ``output_dir/<stage>``; the radar stage reads
    ``data.root = radar_root``. A later stage is checked with the earlier stage's model settings and its own
    fine-tuning settings over them (its ``model_name_or_path`` only exists once the earlier stage has run); its
    ``model`` holds the merged settings, of which :func:`run_nowcasting_recipe` passes on the fine-tuning ones.

    Raises:
        FileNotFoundError / ValueError / TypeError: a missing config or archive, a bad value (named).
    """
    output_dir = Path(output_dir)
    if radar_root is not None and not Path(radar_root).expanduser().is_dir():
        raise FileNotFoundError(
            f"radar_root={str(radar_root)!r} is not a folder; give the radar archive (e.g. ../shared/radar) or "
            "leave it out to train on the synthetic data alone"
        )
    names = ["synthetic"] + (["radar"] if radar_root is not None else [])
    names += ["ensemble"] if radar_root is not None and ensemble_config is not None else []
    folders = {name: output_dir if name == names[-1] else output_dir / name for name in names}
    stages = {
        "synthetic": load_training_arguments(
            synthetic_config, {**(synthetic_overrides or {}), "output_dir": str(folders["synthetic"])}
        )
    }
    radar = merge_config(radar_overrides or {}, {"data": {"root": str(radar_root)}})
    if "radar" in names:
        stages["radar"] = _fine_tuning_stage(
            "radar", radar_config, radar, stages["synthetic"], folders["radar"], last=names[-1] == "radar"
        )
    if "ensemble" in names:
        ensemble = merge_config(_config_values(ensemble_config), ensemble_overrides or {})
        stages["ensemble"] = _fine_tuning_stage(
            "ensemble",
            radar_config,
            merge_config(radar, ensemble),
            stages["radar"],
            folders["ensemble"],
            last=True,
        )
    return stages


def _fine_tuning_stage(
    name: str, config_path, overrides: dict, previous: TrainingArguments, output_dir: Path, *, last: bool
) -> TrainingArguments:
    """A stage that fine-tunes `previous`'s model: `config_path` with `overrides`, its model settings the
    previous stage's with its own fine-tuning ones over them, tested only when it is the `last` stage."""
    overrides = dict(overrides)
    tuning = merge_config(_config_values(config_path).get("model") or {}, overrides.pop("model", None) or {})
    others = sorted(set(tuning) - set(FINE_TUNING_FIELDS))
    if others:
        raise ValueError(
            f"the {name} stage fine-tunes the previous stage's model: its model settings may only change "
            f"{list(FINE_TUNING_FIELDS)}, not {others} (set those in the synthetic stage's config)"
        )
    values = {
        **overrides,
        "output_dir": str(output_dir),
        "model_name_or_path": None,
        "model": {**previous.model, **tuning},
        "num_input_frames": previous.num_input_frames,
        "num_output_frames": previous.num_output_frames,
    }
    if not last:
        values["do_test"] = False
    return load_training_arguments(config_path, values)


def _config_values(config_path) -> dict:
    """A YAML run config's values ({} when the file is absent: missing files are reported by the loader)."""
    path = Path(config_path)
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text()) or {}
    return loaded if isinstance(loaded, dict) else {}


def run_nowcasting_recipe(
    synthetic_config: str | os.PathLike,
    radar_config: str | os.PathLike,
    *,
    output_dir: str | os.PathLike,
    radar_root: str | os.PathLike | None = None,
    ensemble_config: str | os.PathLike | None = None,
    synthetic_overrides: dict | None = None,
    radar_overrides: dict | None = None,
    ensemble_overrides: dict | None = None,
) -> dict:
    """Run the recipe (see the module docstring); arguments as :func:`nowcasting_stages`.

    Returns:
        ``{"synthetic": results of stage 1, "radar": results of stage 2 or None, "ensemble": results of stage 3
        or None, "output_dir": the final model's folder}`` (results as
        :func:`~bidirectional_conv_lstm.training.loop.train` returns them, without the model).
    """
    stages = nowcasting_stages(
        synthetic_config,
        radar_config,
        output_dir=output_dir,
        radar_root=radar_root,
        ensemble_config=ensemble_config,
        synthetic_overrides=synthetic_overrides,
        radar_overrides=radar_overrides,
        ensemble_overrides=ensemble_overrides,
    )
    results = dict.fromkeys(STAGES)
    previous = None
    for name, stage in stages.items():
        if previous is not None:
            # The model now exists: fine-tune it (its config, transform included, comes from its folder).
            tuning = {key: value for key, value in stage.model.items() if key in FINE_TUNING_FIELDS}
            stage = dataclasses.replace(stage, model=tuning, model_name_or_path=previous)
        results[name] = train(stage)
        results[name].pop("model", None)
        previous = results["output_dir"] = stage.output_dir
    return results
