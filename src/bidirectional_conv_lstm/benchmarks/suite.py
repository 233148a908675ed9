"""One run of ``scripts/benchmark.py``: the chosen sections measured in turn, the results dict (written as JSON)
and its markdown report."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, replace

import torch

from ..models.convlstm import convlstm_fused
from .cuda_graphs import measure as measure_cuda_graphs
from .layer_variants import build_layer_variants
from .loss_check import loss_check
from .machine import machine_description
from .measurement import measure_memory, run_rounds
from .model_variants import model_section
from .report import markdown
from .shapes import LAYER_CONFIGS, QUICK_CONFIGS
from .streaming import build_streaming_variants, streaming_section
from .summary import summarize
from .under_load import measure as measure_under_load

CONFIGURATIONS = "abcde"


@dataclass
class BenchmarkSettings:
    """What one run measures (the options of ``scripts/benchmark.py``).

    Args:
        configs: the sections to run, a subset of "a".."e" in any order ((a)-(c) layers, (d) streaming, (e) model).
        command: the command line, as the report quotes it.
        variants: the variant names to run (None: every default one); exclude: names never to run.
        repeats: timed rounds (median reported), 1 when ``quick``; quick: tiny shapes, a smoke test in seconds.
        device: "cpu" or "cuda"; batch: the batch of (a)-(c) and (e) (None: the shape's own, for (e) 1 on CPU
            and 64 on a GPU); model_batch: the batch of (e) alone.
        loss_check / loss_steps: also run the bf16-vs-fp32 loss check for this many steps (4 when ``quick``).
        under_load / under_load_steps / recipe: also time the training step of ``recipe`` (the CPU recipe's config
            file) alone and beside a busy core, this many timed steps per condition (2 when ``quick``).
        cuda_graphs: also time model (e) eagerly and as CUDA graphs (a CUDA ``device``).
        model_recipe: model (e) is the model of ``recipe`` (its config, frames and training batch) instead of the
            OpenSTL ConvLSTM-S shape.
    """

    configs: list[str]
    command: str
    variants: set[str] | None = None
    exclude: set[str] = frozenset()
    repeats: int = 5
    quick: bool = False
    device: str = "cpu"
    batch: int | None = None
    model_batch: int | None = None
    loss_check: bool = False
    loss_steps: int = 50
    under_load: bool = False
    under_load_steps: int = 8
    recipe: str | os.PathLike | None = None
    cuda_graphs: bool = False
    model_recipe: bool = False

    def __post_init__(self):
        unknown = set(self.configs) - set(CONFIGURATIONS)
        if unknown:
            raise ValueError(f"configs: unknown configuration(s) {sorted(unknown)}; choose from a,b,c,d,e")
        for name in ("under_load", "model_recipe"):
            if getattr(self, name) and self.recipe is None:
                raise ValueError(f"{name} needs recipe, the training config file whose model is timed")


def layer_section(settings: BenchmarkSettings, key: str) -> dict:
    """Time layer shape ``key`` ((a)-(c)) round-robin and measure its memory; returns the report's section."""
    table = QUICK_CONFIGS if settings.quick else LAYER_CONFIGS
    config = table[key] if settings.batch is None else replace(table[key], batch=settings.batch)
    start = time.perf_counter()
    variants = build_layer_variants(config, settings.device, settings.variants, settings.exclude)
    run_rounds(variants, _repeats(settings))
    measure_memory(variants)
    return dict(
        title=config.title,
        shape=config.describe(),
        rows=summarize(variants),
        seconds=time.perf_counter() - start,
    )


def streaming_results(settings: BenchmarkSettings) -> dict:
    """Section (d): layer (a)'s cell one step at a time, with more rounds than the others (the steps are short)."""
    config = (QUICK_CONFIGS if settings.quick else LAYER_CONFIGS)["a"]
    variants = build_streaming_variants(config, settings.device, settings.variants, settings.exclude)
    run_rounds(variants, max(_repeats(settings), 5) * (1 if settings.quick else 4))
    return streaming_section(config, summarize(variants))


def model_batch(settings: BenchmarkSettings) -> int:
    """The batch of model (e): ``model_batch``, else ``batch``, else 64 on a GPU and 1 on a CPU."""
    return settings.model_batch or settings.batch or (64 if settings.device.startswith("cuda") else 1)


def _repeats(settings: BenchmarkSettings) -> int:
    return 1 if settings.quick else settings.repeats


def _extra_results(settings: BenchmarkSettings) -> dict:
    """The loss check, the under-load and the CUDA-graphs measurements, where asked for."""
    extra = {}
    if settings.loss_check:
        extra["loss_check"] = loss_check(
            4 if settings.quick else settings.loss_steps, settings.device, settings.quick
        )
    if settings.under_load:
        extra["under_load"] = measure_under_load(
            steps=2 if settings.quick else settings.under_load_steps,
            quick=settings.quick,
            recipe=settings.recipe,
        )
    if settings.cuda_graphs:
        batches = [settings.batch] if settings.batch else [16, 64]
        extra["cuda_graphs"] = measure_cuda_graphs(
            settings.device, batches, repeats=_repeats(settings), quick=settings.quick
        )
    return extra


def run_benchmark(settings: BenchmarkSettings) -> dict:
    """Measure every section of ``settings`` in turn; returns the results dict (``machine``, ``command``,
    ``repeats``, ``layers``, ``memory_formats`` (:func:`memory_format_choices`) and, where run, ``streaming``,
    ``model``, ``loss_check``, ``under_load``, ``cuda_graphs``), which :func:`~.report.markdown` turns into the report."""
    torch.manual_seed(0)
    results = dict(
        machine=machine_description(settings.device, query_onednn=not settings.quick),
        command=settings.command,
        repeats=_repeats(settings),
        layers={},
    )
    table = QUICK_CONFIGS if settings.quick else LAYER_CONFIGS
    for key in settings.configs:
        if key in table:
            start = time.perf_counter()
            results["layers"][key] = layer_section(settings, key)
            print(f"({key}) done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if "d" in settings.configs:
        results["streaming"] = streaming_results(settings)
    if "e" in settings.configs:
        start = time.perf_counter()
        recipe = settings.recipe if settings.model_recipe else None
        batch = model_batch(settings) if recipe is None else settings.model_batch or settings.batch
        results["model"] = model_section(
            settings.device, batch, settings.quick, settings.variants, _repeats(settings), recipe
        )
        print(f"(e) done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    results.update(_extra_results(settings))
    results["memory_formats"] = memory_format_choices()
    return results


def memory_format_choices() -> list[dict]:
    """What the layer's ``memory_format="auto"`` chose in this process, one entry per convolution shape measured:
    ``{"shape": "B x C_h -> 4C_h, k x k, H x W", "dtype", "backward", "choice", "channels_last_ms",
    "contiguous_ms"}``."""
    choices = []
    for key, (choice, last, contiguous) in convlstm_fused.MEMORY_FORMAT_CHOICES.items():
        (batch, channels, out_channels, kh, kw, height, width), _, dtype, _, backward, _ = key
        choices.append(
            dict(
                shape=f"{batch} x {channels} -> {out_channels}, {kh} x {kw}, {height} x {width}",
                dtype=str(dtype).removeprefix("torch."),
                backward=backward,
                choice=choice,
                channels_last_ms=round(1e3 * last, 2),
                contiguous_ms=round(1e3 * contiguous, 2),
            )
        )
    return choices


def write_report(
    results: dict, output: str | os.PathLike | None, output_json: str | os.PathLike | None
) -> str:
    """The markdown report of ``results``, also written to ``output`` (with a final newline) and the results as
    JSON to ``output_json`` where given; returns the report."""
    text = markdown(results)
    if output:
        with open(output, "w") as handle:
            handle.write(text + "\n")
    if output_json:
        with open(output_json, "w") as handle:
            json.dump(results, handle, indent=1)
    return text
