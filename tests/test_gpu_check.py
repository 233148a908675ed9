"""scripts/gpu_check.sh --dry-run: the GPU check's every step but the CUDA parts, on CPU with tiny sizes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


@pytest.mark.slow
def test_dry_run_writes_the_report(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "check"), "PYTHON": sys.executable}
    completed = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=env, timeout=240
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = (tmp_path / "check" / "report.md").read_text()
    assert report.startswith("# GPU check (DRY RUN on CPU: no figure here is a GPU figure)")
    steps = [line for line in report.splitlines() if line.startswith("| ") and line.endswith(" |")][:6]
    outcomes = {line.split(" | ")[0][2:]: line.split(" | ")[1] for line in steps if " | " in line}
    assert outcomes["benchmark, batch 2"] == "ok"
    assert outcomes["training, 2 min of moving_mnist_openstl_s"] == "ok"
    for cuda_part in ("install", "CUDA tests", "CUDA graphs"):
        assert outcomes[cuda_part].startswith("skipped: dry run")
    assert "| ours | " in report and "| limit bf16 | " in report and "train % limit" in report
    assert "2 steps of 4 sequences" in report and "sequences/s" in report


def test_unknown_argument_is_refused():
    completed = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True, timeout=30)
    assert completed.returncode == 2 and "unknown argument '--gpu'" in completed.stderr
