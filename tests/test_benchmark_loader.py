"""scripts/benchmark_loader.py --quick (benchmarks/loader_throughput.py): the streamed loader's and the model's
windows/s at the CPU recipe's shape, on a few windows. No timing is asserted: the figures must only be there and
positive."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import datasets

from bidirectional_conv_lstm.benchmarks.loader_throughput import LOADER_COLUMNS

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_reports_loader_and_model(tmp_path, monkeypatch, capsys):
    # datasets waits 5 s at the end of every Parquet stream (see loader_throughput's docstring): not here.
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)
    script = runpy.run_path(str(ROOT / "scripts" / "benchmark_loader.py"))
    output = tmp_path / "loader.json"
    report = script["main"](["--quick", "--workers", "0,2", "--output-json", str(output)])
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("| what"))
    assert tuple(cell.strip() for cell in header.strip("|").split("|")) == LOADER_COLUMNS
    assert json.loads(output.read_text())["loader"] == report["loader"]
    assert [run["num_workers"] for run in report["loader"]] == [0, 2]
    assert report["model"]["batch"] == 16 and report["model"]["windows_per_s"] > 0
    for run in report["loader"]:
        assert run["windows"] > 0 and run["windows_per_s"] > 0 and run["ratio"] > 0
    rows = [line for line in printed.splitlines() if line.startswith("| ") and not line.startswith("| what")]
    assert len(rows) == 3 and all(len(row.strip("|").split("|")) == len(LOADER_COLUMNS) for row in rows)
    assert report["cpu"] and "64 x 64" in report["shape"]
