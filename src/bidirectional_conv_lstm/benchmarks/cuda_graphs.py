"""Model (e), the OpenSTL ConvLSTM-S shape, on a GPU: eager against CUDA graphs, inference and training steps.

A recurrence of small convolutions launches thousands of kernels per batch; a CUDA graph
(:mod:`bidirectional_conv_lstm.serving.cuda_graphs`) replays them with one call. For each batch and precision (fp32,
bf16 autocast) this times, after warm-up, the median of ``repeats`` calls of: eager inference, graphed inference,
an eager training step (AdamW) and a graphed one (AdamW with ``capturable=True``). A capture that fails is reported
with its error and the others still run.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from ..models.convlstm.configuration_convlstm import ConvLSTMConfig
from ..models.convlstm.modeling_convlstm import ConvLSTMForFramePrediction
from ..serving.cuda_graphs import GraphedFramePrediction, GraphedTrainingStep
from .report import fmt


def median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls, waiting for the GPU after each."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def graphs_model(quick: bool) -> tuple[ConvLSTMForFramePrediction, int]:
    """(model (e) or a tiny one, seeded 0; its frame size)."""
    torch.manual_seed(0)
    if quick:
        config = ConvLSTMConfig(
            hidden_sizes=[8], patch_size=4, kernel_size=3, num_input_frames=3, num_output_frames=2
        )
        return ConvLSTMForFramePrediction(config), 16
    config = ConvLSTMConfig(
        hidden_sizes=[128, 128, 128, 128],
        patch_size=4,
        kernel_size=5,
        num_input_frames=10,
        num_output_frames=10,
    )
    return ConvLSTMForFramePrediction(config), 64


def _time_eager_and_graphed(row, model, pixels, labels, dtype, repeats) -> None:
    """Fill ``row`` with the seconds of eager / graphed inference and training (or a capture's error)."""
    autocast = dict(device_type="cuda", dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    def eager_infer():
        with torch.no_grad(), torch.autocast(**autocast):
            model(pixels)

    eager_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def eager_train():
        with torch.autocast(**autocast):
            loss = model(pixels, labels=labels).loss
        eager_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        eager_optimizer.step()

    model.eval()
    row["eager_infer_s"] = median_seconds(eager_infer, repeats)
    try:
        graphed = GraphedFramePrediction(model, pixels, autocast_dtype=dtype)
        row["graph_infer_s"] = median_seconds(lambda: graphed(pixels), repeats)
    except Exception as error:  # noqa: BLE001  (reported in the table; the other measurements go on)
        row["graph_infer_error"] = f"{type(error).__name__}: {error}"
    model.train()
    row["eager_train_s"] = median_seconds(eager_train, repeats)
    try:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, capturable=True)
        step = GraphedTrainingStep(model, optimizer, pixels, labels, autocast_dtype=dtype, max_grad_norm=1.0)
        row["graph_train_s"] = median_seconds(lambda: step(pixels, labels), repeats)
    except Exception as error:  # noqa: BLE001
        row["graph_train_error"] = f"{type(error).__name__}: {error}"


def measure_one(device: str, batch: int, dtype, repeats: int, quick: bool) -> dict:
    """Seconds per call of eager / graphed inference and training for one batch size and precision."""
    model, size = graphs_model(quick)
    model = model.to(device)
    config = model.config
    pixels = torch.rand(batch, config.num_input_frames, 1, size, size, device=device)
    labels = torch.rand(batch, config.num_output_frames, 1, size, size, device=device)
    row = dict(batch=batch, precision="bf16" if dtype is not None else "fp32")
    _time_eager_and_graphed(row, model, pixels, labels, dtype, repeats)
    for kind in ("infer", "train"):
        for mode in ("eager", "graph"):
            seconds = row.get(f"{mode}_{kind}_s")
            row[f"{mode}_{kind}_seq_s"] = None if seconds is None else batch / seconds
        graph = row.get(f"graph_{kind}_s")
        row[f"{kind}_speedup"] = None if graph is None else row[f"eager_{kind}_s"] / graph
    torch.cuda.empty_cache()
    return row


def measure(device: str, batches, repeats: int = 5, quick: bool = False) -> dict:
    """Every batch size in both precisions; returns ``{"rows": [...], "markdown": str, "gpu": name}``."""
    if not torch.cuda.is_available() or not str(device).startswith("cuda"):
        raise ValueError(f"the CUDA-graphs measurement needs a CUDA device, got device={device!r}")
    rows = []
    for batch in batches:
        for dtype in (None, torch.bfloat16):
            rows.append(measure_one(device, batch, dtype, repeats, quick))
            print(f"(cuda graphs) batch {batch} {rows[-1]['precision']} done", file=sys.stderr)
    result = dict(gpu=torch.cuda.get_device_name(), quick=quick, repeats=repeats, rows=rows)
    result["markdown"] = markdown(result)
    return result


def markdown(result: dict) -> str:
    """The CUDA-graphs table: sequences per second eager and graphed, and the speed-ups; failed captures after."""
    shape = "tiny model" if result["quick"] else "4 x 128 hidden, kernel 5, patch 4, 10 -> 10 frames of 64x64"
    lines = [
        "### CUDA graphs: model (e) eager and replayed",
        "",
        f"{result['gpu']}; ConvLSTMForFramePrediction, {shape}; median of {result['repeats']} calls after "
        "warm-up; a training step is forward, loss, backward and AdamW (the graphed one also clips gradients).",
        "",
        "| batch | precision | infer seq/s eager | infer seq/s graph | speedup | train seq/s eager | "
        "train seq/s graph | speedup |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    errors = []
    for row in result["rows"]:
        lines.append(
            f"| {row['batch']} | {row['precision']} | {fmt(row['eager_infer_seq_s'])} | "
            f"{fmt(row['graph_infer_seq_s'])} | {fmt(row['infer_speedup'], 2, 'x')} | "
            f"{fmt(row['eager_train_seq_s'])} | {fmt(row['graph_train_seq_s'])} | "
            f"{fmt(row['train_speedup'], 2, 'x')} |"
        )
        for kind in ("infer", "train"):
            if f"graph_{kind}_error" in row:
                errors.append(
                    f"- batch {row['batch']} {row['precision']} {kind}: {row[f'graph_{kind}_error']}"
                )
    if errors:
        lines += ["", "Captures that failed:", *errors]
    return "\n".join(lines)
