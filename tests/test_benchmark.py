"""bidirectional_conv_lstm.benchmarks and the thin scripts/benchmark.py over it: the reference designs compute our
function; a --quick run of the script reports every variant."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from bidirectional_conv_lstm import ConvLSTM
from bidirectional_conv_lstm.benchmarks import references, under_load
from bidirectional_conv_lstm.benchmarks.layer_variants import ALL_VARIANTS, COMPILE_VARIANTS, EXTRA_VARIANTS
from bidirectional_conv_lstm.benchmarks.shapes import LAYER_CONFIGS, model_forward_flops
from bidirectional_conv_lstm.benchmarks.suite import BenchmarkSettings
from bidirectional_conv_lstm.models.convlstm import convlstm_fused

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.mark.parametrize(
    "options",
    [dict(), dict(num_layers=2, bidirectional=True), dict(kernel_size=5, padding=2)],
    ids=["uni", "bi-2layers", "kernel5"],
)
@pytest.mark.parametrize("design", ["ConcatConvLSTM", "TwoConvConvLSTM"])
def test_reference_designs_compute_our_function(design, options):
    options = dict(kernel_size=3, padding=1) | options
    torch.manual_seed(0)
    ours = ConvLSTM(2, 4, **options)
    with torch.no_grad():
        for parameter in ours.parameters():
            parameter.normal_(0, 0.3)
    reference = getattr(references, design)(
        2, 4, options["kernel_size"], ours.num_layers, ours.bidirectional
    ).load_from(ours)
    x = torch.randn(5, 3, 2, 6, 7)
    expected, _ = ours(x)
    torch.testing.assert_close(reference(x), expected, rtol=1e-5, atol=1e-5)
    # and gradients reach the same place: the input gradient matches too
    x_ours, x_ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    gradient = torch.randn_like(expected)
    ours(x_ours)[0].backward(gradient)
    reference(x_ref).backward(gradient)
    torch.testing.assert_close(x_ref.grad, x_ours.grad, rtol=1e-4, atol=1e-5)


def test_flop_count_matches_the_formula():
    config = LAYER_CONFIGS["a"]
    # per step: input conv 16 -> 512 and recurrent conv 128 -> 512, 5x5, at 16x16, B = 16; T = 10
    per_step = 2 * 16 * 16 * 16 * 25 * (16 * 512 + 128 * 512)
    assert config.forward_flops() == 10 * per_step


def test_quick_run_reports_every_variant(benchmark, tmp_path, monkeypatch):
    # the quick shapes are below the work memory_format="auto" measures: measure them here, to see the report
    monkeypatch.setattr(convlstm_fused, "MEASURED_MIN_GFLOP", 0.0)
    markdown, json_path = tmp_path / "table.md", tmp_path / "run.json"
    results = benchmark.main(
        [
            "--quick",
            "--configs",
            "a,b,d,e",
            "--no-compile",
            "--output",
            str(markdown),
            "--output-json",
            str(json_path),
        ]
    )
    expected = set(ALL_VARIANTS) - set(COMPILE_VARIANTS)
    assert {row["variant"] for row in results["layers"]["a"]["rows"]} == expected
    assert {row["variant"] for row in results["layers"]["b"]["rows"]} == expected - set(EXTRA_VARIANTS)
    for row in results["layers"]["a"]["rows"]:
        assert row["train_ms"] > 0 and row["infer_ms"] > 0 and row["train_gflops"] > 0
        assert row["peak_mib"] is None or row["peak_mib"] >= 0
    assert {row["variant"] for row in results["streaming"]["rows"]} >= {"ours", "concat"}
    assert {row["variant"] for row in results["model"]["rows"]} == {
        "ours",
        "ours+bf16",
        "ours+plain-steps",
        "ours+bf16+plain-steps",
        "limit fp32",
        "limit fp32 nchw",
        "limit bf16",
        "limit bf16 nchw",
    }
    # Every row's share of the faster limit (channels_last or contiguous) of its own precision, same run.
    for section in (results["layers"]["a"], results["model"]):
        rows = {row["variant"]: row for row in section["rows"]}
        for row in rows.values():
            precision = row["precision"]
            assert precision == ("bf16" if "bf16" in row["variant"] else "fp32")
            for kind in ("train", "infer"):
                limit = max(
                    rows[f"limit {precision}"][f"{kind}_gflops"],
                    rows[f"limit {precision} nchw"][f"{kind}_gflops"],
                )
                assert row[f"{kind}_limit_share"] == pytest.approx(row[f"{kind}_gflops"] / limit)
        for precision in ("fp32", "bf16"):
            shares = [rows[f"limit {precision}{layout}"]["train_limit_share"] for layout in ("", " nchw")]
            assert max(shares) == 1.0 and min(shares) <= 1.0
    # what memory_format="auto" measured and chose for the layer's training steps, named in the report
    choices = results["memory_formats"]
    assert choices and all(entry["choice"] in ("channels_last", "contiguous") for entry in choices)
    assert any(entry["backward"] for entry in choices)
    machine = results["machine"]
    assert "AMX bf16:" in machine["isa"] and "avx512_bf16:" in machine["isa"]
    assert machine["auto_precision"][0] in ("no", "bf16")
    text = markdown.read_text()
    for name in expected:
        assert f"| {name} |" in text
    assert "train % limit" in text and f"CPU instruction sets: {machine['isa']}" in text
    assert 'memory_format="auto"` chose' in text and f"**{choices[0]['choice']}**" in text
    assert json.loads(json_path.read_text())["machine"]["torch"] == torch.__version__


def test_compiled_pointwise_rows_report_their_compile_time(benchmark, tmp_path):
    """The pointwise="compiled" rows run beside their eager rows, in their precision, with their compile time
    (``--no-compile`` leaves them out: the quick run above)."""
    markdown = tmp_path / "table.md"
    names = ["ours", "ours+bf16", "ours+pointwise", "ours+bf16+pointwise", "limit fp32", "limit bf16"]
    results = benchmark.main(
        ["--quick", "--configs", "a", "--variants", ",".join(names), "--output", str(markdown)]
    )
    rows = {row["variant"]: row for row in results["layers"]["a"]["rows"]}
    assert set(rows) == set(names)
    assert (
        rows["ours+pointwise"]["precision"] == "fp32" and rows["ours+bf16+pointwise"]["precision"] == "bf16"
    )
    for name in ("ours+pointwise", "ours+bf16+pointwise"):
        assert rows[name]["setup_s"] > 0 and rows[name]["train_ms"] > 0
        assert rows[name]["train_limit_share"] > 0
        assert f"| {name} |" in markdown.read_text()


def test_model_recipe_times_the_cpu_recipes_model_with_fused_and_plain_steps(benchmark):
    """--model-recipe: section (e) is the CPU recipe's model (2 x 32 hidden, kernel 3, patch 4, 10 -> 10 frames),
    its forecaster's steps fused and plain, beside the limit of its widest recurrent convolution."""
    names = ["ours", "ours+plain-steps", "limit fp32"]
    argv = [
        "--configs",
        "e",
        "--model-recipe",
        "--model-batch",
        "2",
        "--repeats",
        "1",
        "--variants",
        ",".join(names),
    ]
    section = benchmark.main(argv)["model"]
    assert "configs/moving_mnist_cpu.yaml" in section["title"]
    assert section["shape"] == (
        "batch 2; 2 x 32 hidden, kernel 3, patch 4, 10 -> 10 frames of 64x64 (unidirectional encoder)"
    )
    rows = {row["variant"]: row for row in section["rows"]}
    assert set(rows) == set(names)
    for name in ("ours", "ours+plain-steps"):
        assert rows[name]["train_ms"] > 0
        assert rows[name]["train_seq_s"] == pytest.approx(2e3 / rows[name]["train_ms"])


def test_bad_arguments_are_rejected(benchmark):
    for argv in (
        ["--configs", "z"],
        ["--repeats", "0"],
        ["--batch", "0"],
        ["--cuda-graphs", "--device", "cpu"],
    ):
        with pytest.raises(SystemExit):
            benchmark.main(argv)


def test_model_flop_count_matches_the_formula():
    from bidirectional_conv_lstm import ConvLSTMConfig

    config = ConvLSTMConfig(
        hidden_sizes=[8, 4], patch_size=2, kernel_size=3, num_input_frames=3, num_output_frames=2
    )
    # 8x8 frames -> 4x4 patches of 4 channels; batch 2: 32 positions; 9 taps
    encoder = 3 * 2 * 2 * 32 * 9 * ((4 + 8) * 32 + (16 + 4) * 16)  # 2 directions; layer 1 reads both (16 ch)
    forecaster = 2 * 2 * 32 * 9 * ((4 + 8) * 32 + (8 + 4) * 16)
    bridges = 2 * 32 * (32 * 16 + 16 * 8)
    head = 2 * 2 * 32 * 12 * 4
    assert model_forward_flops(config, batch=2, size=8) == encoder + forecaster + bridges + head


def test_under_load_child_and_report():
    """The under-load benchmark's measurement, in this process with a tiny model (the full run is the lead's)."""
    recipe = SCRIPT.parents[1] / "configs" / "moving_mnist_cpu.yaml"
    threads = torch.get_num_threads()
    try:
        report = under_load.run_child(
            under_load.POLICIES["adaptive (ThreadTuner, make train)"], steps=2, quick=True, recipe=recipe
        )
    finally:
        torch.set_num_threads(threads)
    assert len(report["alone"]) == 2 and all(seconds > 0 for seconds in report["alone"])
    if report["busy_cpu"] is not None:
        assert len(report["busy"]) == 2
    assert report["threads"][0] == threads and all(count >= 1 for count in report["threads"])
    row = dict(
        policy="p", threads=[2, 2, 1], alone_s=0.4, busy_s=0.9, slowdown=2.25, busy_vs_first_alone=2.25
    )
    text = under_load.markdown(dict(description="d", cpus=2, busy_cpu=1, rows=[row]), steps=2)
    assert "| p | 2 / 2 / 1 | 0.400 | 0.900 | 2.2x | 2.2x |" in text


def test_settings_refuse_what_cannot_run():
    with pytest.raises(ValueError, match=r"configs: unknown configuration\(s\) \['z'\]"):
        BenchmarkSettings(configs=["a", "z"], command="python scripts/benchmark.py")
    with pytest.raises(ValueError, match="under_load needs recipe"):
        BenchmarkSettings(configs=[], command="python scripts/benchmark.py", under_load=True)
    with pytest.raises(ValueError, match="model_recipe needs recipe"):
        BenchmarkSettings(configs=["e"], command="python scripts/benchmark.py", model_recipe=True)
