"""Kinds of data the training loop is told about (training.kinds): found by registration or by entry point."""

from __future__ import annotations

import pytest

from bidirectional_conv_lstm.training import TrainingArguments, kinds


def test_rain_rate_kinds_come_from_the_packages_entry_points(monkeypatch):
    monkeypatch.setattr(kinds, "_KINDS", {})  # as in a fresh process that has not imported nowcasting
    assert {"radar", "synthetic_rain"} <= set(kinds.registered_dataset_kinds())
    radar = kinds.dataset_kind("radar")
    from bidirectional_conv_lstm.nowcasting.task import RAIN_RATE_KIND

    assert radar is RAIN_RATE_KIND and kinds.dataset_kind("synthetic_rain") is RAIN_RATE_KIND
    assert kinds.dataset_kind("moving_mnist") is None  # frames: the loop's own


def test_a_registered_kind_checks_the_run_and_names_its_metrics(monkeypatch, tmp_path):
    monkeypatch.setattr(kinds, "_KINDS", {})
    checked = []

    def check(args):
        if args.data.get("size") != 3:
            raise ValueError(f"data.size must be 3, got {args.data.get('size')!r}")
        checked.append(args.dataset)

    kinds.register_dataset_kind(
        kinds.DatasetKind(
            names=("toy_rivers",), check=check, load=dict, task=object, best_model_metrics={"error": False}
        )
    )
    args = TrainingArguments(
        output_dir=str(tmp_path), dataset="toy_rivers", data={"size": 3}, metric_for_best_model="error"
    )
    assert checked == ["toy_rivers"] and args.best_model_metrics == {"error": False}
    with pytest.raises(ValueError, match="data.size must be 3, got 4"):
        TrainingArguments(
            output_dir=str(tmp_path), dataset="toy_rivers", data={"size": 4}, metric_for_best_model="error"
        )
    with pytest.raises(ValueError, match="metric_for_best_model must be one of \\['error'\\]"):
        TrainingArguments(output_dir=str(tmp_path), dataset="toy_rivers", data={"size": 3})


def test_a_kind_must_be_whole():
    with pytest.raises(ValueError, match="names"):
        kinds.DatasetKind(names=(), check=print, load=dict, task=object, best_model_metrics={"loss": False})
    with pytest.raises(TypeError, match="load must be callable"):
        kinds.DatasetKind(
            names=("x",), check=print, load=None, task=object, best_model_metrics={"loss": False}
        )
