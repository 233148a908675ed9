"""The two-stage precipitation-nowcasting recipe behind ``scripts/train_nowcasting.py``.

1. **Synthetic pretraining** (``configs/nowcasting_synthetic.yaml``): the model learns to move and evolve rain on
   generated advecting fields, as many and as varied as wanted, with no archive.
2. **Radar fine-tuning** (``configs/nowcasting_radar.yaml``), when an archive folder is given: the pretrained model
   trains on the real events, whole events held out for the test, and is scored there beside persistence,
   Lucas-Kanade extrapolation and S-PROG.

Without an archive the recipe stops after stage 1, whose test is the synthetic test split. Both stages are the
ordinary training loop (:func:`bidirectional_conv_lstm.training.loop.train`), time-budgeted by their
``max_train_minutes``; every value of either config can be overridden. Stage 2 takes stage 1's model whole; its
config's ``model`` may only change the fine-tuning settings
(:data:`~bidirectional_conv_lstm.training.arguments.FINE_TUNING_FIELDS`: the loss, ``boundary_padding``).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..training.arguments import FINE_TUNING_FIELDS, TrainingArguments, load_training_arguments
from ..training.loop import train

__all__ = ["nowcasting_stages", "run_nowcasting_recipe"]


def nowcasting_stages(
    synthetic_config: str | os.PathLike,
    radar_config: str | os.PathLike,
    *,
    output_dir: str | os.PathLike,
    radar_root: str | os.PathLike | None = None,
    synthetic_overrides: dict | None = None,
    radar_overrides: dict | None = None,
) -> tuple[TrainingArguments, TrainingArguments | None]:
    """The two stages' checked arguments, before anything runs.

    Stage 1 writes to ``output_dir`` (synthetic only) or ``output_dir/synthetic``; stage 2 to ``output_dir``,
    starting from stage 1's model, with ``data.root = radar_root``. Stage 2 is checked with stage 1's model
    settings and its own fine-tuning settings over them (its ``model_name_or_path`` only exists once stage 1 has
    run); its ``model`` holds the merged settings, of which :func:`run_nowcasting_recipe` passes on the
    fine-tuning ones.

    Raises:
        FileNotFoundError / ValueError / TypeError: a missing config or archive, a bad value (named).
    """
    output_dir = Path(output_dir)
    if radar_root is not None and not Path(radar_root).expanduser().is_dir():
        raise FileNotFoundError(
            f"radar_root={str(radar_root)!r} is not a folder; give the radar archive (e.g. ../shared/radar) or "
            "leave it out to train on the synthetic data alone"
        )
    first_dir = output_dir / "synthetic" if radar_root is not None else output_dir
    first = load_training_arguments(
        synthetic_config, {**(synthetic_overrides or {}), "output_dir": str(first_dir)}
    )
    if radar_root is None:
        return first, None
    overrides = dict(radar_overrides or {})
    data = {**overrides.pop("data", {}), "root": str(radar_root)}
    tuning = {**(_config_model(radar_config) or {}), **(overrides.pop("model", None) or {})}
    others = sorted(set(tuning) - set(FINE_TUNING_FIELDS))
    if others:
        raise ValueError(
            f"the radar stage fine-tunes stage 1's model: its model settings may only change "
            f"{list(FINE_TUNING_FIELDS)}, not {others} (set those in the synthetic stage's config)"
        )
    second = load_training_arguments(
        radar_config,
        {
            **overrides,
            "data": data,
            "output_dir": str(output_dir),
            "model_name_or_path": None,
            "model": {**first.model, **tuning},
            "num_input_frames": first.num_input_frames,
            "num_output_frames": first.num_output_frames,
        },
    )
    return first, second


def _config_model(config_path) -> dict | None:
    """The ``model`` mapping of a YAML run config (None when absent); missing files are reported later."""
    path = Path(config_path)
    if not path.is_file():
        return None
    loaded = yaml.safe_load(path.read_text()) or {}
    return loaded.get("model") if isinstance(loaded, dict) else None


def run_nowcasting_recipe(
    synthetic_config: str | os.PathLike,
    radar_config: str | os.PathLike,
    *,
    output_dir: str | os.PathLike,
    radar_root: str | os.PathLike | None = None,
    synthetic_overrides: dict | None = None,
    radar_overrides: dict | None = None,
) -> dict:
    """Run the recipe (see the module docstring); arguments as :func:`nowcasting_stages`.

    Returns:
        ``{"synthetic": results of stage 1, "radar": results of stage 2 or None, "output_dir": the final model's
        folder}`` (results as :func:`~bidirectional_conv_lstm.training.loop.train` returns them, without the model).
    """
    import dataclasses

    first, second = nowcasting_stages(
        synthetic_config,
        radar_config,
        output_dir=output_dir,
        radar_root=radar_root,
        synthetic_overrides=synthetic_overrides,
        radar_overrides=radar_overrides,
    )
    results = {"synthetic": train(first), "radar": None, "output_dir": first.output_dir}
    results["synthetic"].pop("model", None)
    if second is not None:
        # The model now exists: fine-tune it (its config, transform included, comes from stage 1's folder).
        tuning = {name: value for name, value in second.model.items() if name in FINE_TUNING_FIELDS}
        second = dataclasses.replace(second, model=tuning, model_name_or_path=first.output_dir)
        results["radar"] = train(second)
        results["radar"].pop("model", None)
        results["output_dir"] = second.output_dir
    return results
