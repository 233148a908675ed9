"""Speed and memory of ConvLSTM against two reference designs and the machine's convolution limit.

Every variant of a configuration is timed in the same run, round-robin (one training step and one
inference pass of each variant per round), so machine noise hits all of them alike; figures are the
median over ``--repeats`` rounds after one warm-up round.

Variants (configurations a-c):
  ours / ours+plain      our ConvLSTM, fused sequence path (default) / the plain per-step loop
  ours+bf16              our ConvLSTM under bf16 autocast (cell state float32)
  ours+channels_last     ``module.to(memory_format=torch.channels_last)``
  ours+compile           ``torch.compile(module)`` (traces the plain loop; compile time reported)
  ours+checkpoint        ``gradient_checkpointing=True`` (memory lever)
  concat                 reference: conv over ``cat([x_t, h])``, one convolution per step
  concat+bf16            the same under bf16 autocast
  two-conv               reference: ``W_x * x_t + W_h * h`` per step, nothing hoisted
  limit fp32/bf16        one large conv2d of the recurrent convolution's shape over all ``B*T`` frames
                         (channels_last fp32, channels_last bf16)

FLOPs count the convolutions: ``2 * B * H' * W' * k^2 * C_in * C_out`` each; a training step counts
three times the forward (forward, input gradient, weight gradient), inference once. The same nominal
count is used for every variant of a configuration, so GFLOP/s ratios are speed ratios.

Memory: ``peak MiB`` is the peak of torch's CPU allocator (bytes allocated, from the profiler's
allocation events) during one training step above what was allocated before it (parameters, input);
``saved MiB`` is the unique storage bytes autograd saved for backward (saved-tensors hooks).

Usage::

    python scripts/benchmark.py                       # a-e, writes BENCHMARKS-run.md / .json
    python scripts/benchmark.py --configs a --repeats 7 --output-json run.json
    python scripts/benchmark.py --quick               # tiny shapes, seconds (CI smoke test)
    python scripts/benchmark.py --loss-check          # bf16 vs fp32 loss, 50 steps on Moving MNIST
    python scripts/benchmark.py --configs "" --under-load          # training step alone vs beside a busy core
    python scripts/benchmark.py --device cuda --configs a,b,e --batch 64   # on a GPU (scripts/gpu_check.sh)
    python scripts/benchmark.py --device cuda --configs "" --cuda-graphs   # eager vs CUDA graphs, model (e)

Every table row also gives its throughput as a share of the limit of its precision measured in the same run
(``limit fp32`` for fp32 rows, ``limit bf16`` for bf16 rows); the header names the CPU's instruction sets (AMX,
avx512_bf16, AVX-512, AVX2), what oneDNN reports it uses, and the precision ``mixed_precision: auto`` picks here.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bidirectional_conv_lstm import ConvLSTM


# ----------------------------------------------------------------------------- reference designs
class ConcatConvLSTM(nn.Module):
    """Reference: one convolution over ``cat([x_t, h_{t-1}])`` per step (the design of the most used
    PyTorch ConvLSTM), multi-layer and bidirectional like ours; input ``(T, B, C, H, W)``."""

    def __init__(self, in_channels, hidden_channels, kernel_size, num_layers=1, bidirectional=False):
        super().__init__()
        self.hidden_channels, self.directions = hidden_channels, 2 if bidirectional else 1
        self.convs = nn.ModuleList()
        for layer in range(num_layers):
            channels = in_channels if layer == 0 else self.directions * hidden_channels
            for _ in range(self.directions):
                self.convs.append(
                    nn.Conv2d(
                        channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2
                    )
                )

    def load_from(self, ours: ConvLSTM) -> ConcatConvLSTM:
        """Copy the weights of our ``ConvLSTM`` (same shapes, ``padding="same"``, stride 1)."""
        with torch.no_grad():
            for conv, cell in zip(self.convs, ours.cells):
                gate = cell.gate
                conv.weight.copy_(torch.cat([gate.input_conv.weight, gate.hidden_conv.weight], dim=1))
                conv.bias.copy_(gate.input_conv.bias)
        return self

    def forward(self, x):
        for layer in range(len(self.convs) // self.directions):
            outputs = []
            for direction in range(self.directions):
                conv = self.convs[layer * self.directions + direction]
                steps = range(x.shape[0] - 1, -1, -1) if direction else range(x.shape[0])
                h = c = x.new_zeros(x.shape[1], self.hidden_channels, *x.shape[-2:])
                out = [None] * x.shape[0]
                for t in steps:
                    i, f, g, o = conv(torch.cat([x[t], h], dim=1)).chunk(4, dim=1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                    out[t] = h
                outputs.append(torch.stack(out))
            x = torch.cat(outputs, dim=2)
        return x


class TwoConvConvLSTM(nn.Module):
    """Reference: ``W_x * x_t + W_h * h_{t-1}`` per step, nothing hoisted out of the time loop."""

    def __init__(self, in_channels, hidden_channels, kernel_size, num_layers=1, bidirectional=False):
        super().__init__()
        self.hidden_channels, self.directions = hidden_channels, 2 if bidirectional else 1
        self.input_convs, self.hidden_convs = nn.ModuleList(), nn.ModuleList()
        for layer in range(num_layers):
            channels = in_channels if layer == 0 else self.directions * hidden_channels
            for _ in range(self.directions):
                self.input_convs.append(
                    nn.Conv2d(channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)
                )
                self.hidden_convs.append(
                    nn.Conv2d(
                        hidden_channels,
                        4 * hidden_channels,
                        kernel_size,
                        padding=kernel_size // 2,
                        bias=False,
                    )
                )

    def load_from(self, ours: ConvLSTM) -> TwoConvConvLSTM:
        with torch.no_grad():
            for x_conv, h_conv, cell in zip(self.input_convs, self.hidden_convs, ours.cells):
                x_conv.load_state_dict(cell.gate.input_conv.state_dict())
                h_conv.load_state_dict(cell.gate.hidden_conv.state_dict())
        return self

    def forward(self, x):
        for layer in range(len(self.input_convs) // self.directions):
            outputs = []
            for direction in range(self.directions):
                index = layer * self.directions + direction
                steps = range(x.shape[0] - 1, -1, -1) if direction else range(x.shape[0])
                h = c = x.new_zeros(x.shape[1], self.hidden_channels, *x.shape[-2:])
                out = [None] * x.shape[0]
                for t in steps:
                    gates = self.input_convs[index](x[t]) + self.hidden_convs[index](h)
                    i, f, g, o = gates.chunk(4, dim=1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                    out[t] = h
                outputs.append(torch.stack(out))
            x = torch.cat(outputs, dim=2)
        return x


# ----------------------------------------------------------------------------- configurations
@dataclass
class LayerConfig:
    name: str
    title: str
    batch: int
    steps: int
    in_channels: int
    size: int
    hidden: int
    kernel: int
    num_layers: int = 1
    bidirectional: bool = False

    def layer_kwargs(self) -> dict:
        return dict(
            kernel_size=self.kernel,
            padding=self.kernel // 2,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
        )

    def forward_flops(self) -> float:
        """Convolution FLOPs of one forward pass (nominal: the first step's recurrent conv counted)."""
        directions = 2 if self.bidirectional else 1
        pixels = self.batch * self.steps * self.size * self.size * self.kernel**2
        total = 0.0
        for layer in range(self.num_layers):
            channels = self.in_channels if layer == 0 else directions * self.hidden
            total += directions * 2 * pixels * (channels + self.hidden) * 4 * self.hidden
        return total


LAYER_CONFIGS = {
    "a": LayerConfig("a", "OpenSTL ConvLSTM-S layer", 16, 10, 16, 16, 128, 5),
    "b": LayerConfig("b", "bidirectional, 2 layers", 16, 10, 16, 16, 64, 5, num_layers=2, bidirectional=True),
    "c": LayerConfig("c", "full resolution 64x64", 16, 10, 1, 64, 32, 3),
}
QUICK_CONFIGS = {
    "a": LayerConfig("a", "tiny (a)", 2, 3, 4, 8, 8, 5),
    "b": LayerConfig("b", "tiny (b)", 2, 3, 4, 8, 4, 5, num_layers=2, bidirectional=True),
    "c": LayerConfig("c", "tiny (c)", 2, 3, 1, 8, 4, 3),
}


# ----------------------------------------------------------------------------- measurement
@dataclass
class Variant:
    name: str
    train: object  # () -> None, one forward + backward
    infer: object  # () -> None, one forward under no_grad
    flops: float  # FLOPs of one forward
    note: str = ""
    train_times: list = field(default_factory=list)
    infer_times: list = field(default_factory=list)
    peak_mib: float | None = None
    saved_mib: float | None = None
    setup_s: float = 0.0


def _no_sync() -> None:
    pass


# Waits for the device before and after each timed call (torch.cuda.synchronize on a GPU, whose kernels run
# asynchronously); set by main().
_synchronize = _no_sync


def _timed(fn) -> float:
    _synchronize()
    start = time.perf_counter()
    fn()
    _synchronize()
    return time.perf_counter() - start


def peak_allocated_mib(fn) -> float | None:
    """Peak bytes held by torch's allocator (CUDA's on a GPU, else the CPU's) while ``fn`` runs, above the level
    before it."""
    if _synchronize is not _no_sync:  # a CUDA run
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    try:
        from torch._C._profiler import _EventType
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()

        def walk(nodes):
            for node in nodes:
                yield node
                yield from walk(node.children)

        events = [
            n
            for n in walk(prof.profiler.kineto_results.experimental_event_tree())
            if n.tag == _EventType.Allocation
        ]
    except Exception:  # noqa: BLE001  (private profiler API: report "n/a" rather than fail)
        return None
    if not events:
        return 0.0
    events.sort(key=lambda n: n.start_time_ns)
    start = events[0].extra_fields.total_allocated - events[0].extra_fields.alloc_size
    return (max(e.extra_fields.total_allocated for e in events) - start) / 2**20


def saved_activation_mib(fn) -> float:
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(storages.values()) / 2**20


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _module_variant(name, module, x, flops, *, autocast=None, note="", grad_only=False):
    def forward():
        if autocast is None:
            return _first(module(x))
        with torch.autocast(x.device.type, dtype=autocast):
            return _first(module(x))

    gradient = []

    def train():
        # backward from a fixed output gradient (allocated once, outside the measurement), so the
        # memory figures are the layer's own and no loss function's temporaries
        module.zero_grad(set_to_none=True)
        output = forward()
        if not gradient:
            gradient.append(torch.randn(output.shape, device=output.device, dtype=output.dtype))
        output.backward(gradient[0])

    def infer():
        with torch.no_grad():
            forward()

    variant = Variant(name, train, infer, flops, note)
    variant.forward = forward
    train()  # allocates the output gradient before any measurement
    return variant


def build_layer_variants(
    config: LayerConfig, device: str, names: set[str] | None, exclude: set[str] = frozenset()
) -> list[Variant]:
    torch.manual_seed(0)
    kwargs = config.layer_kwargs()
    x = torch.randn(config.steps, config.batch, config.in_channels, config.size, config.size, device=device)
    ours = ConvLSTM(config.in_channels, config.hidden, **kwargs).to(device)
    flops = config.forward_flops()
    reference_args = (
        config.in_channels,
        config.hidden,
        config.kernel,
        config.num_layers,
        config.bidirectional,
    )
    variants = []

    def want(name):
        if name in exclude:
            return False
        if name in EXTRA_VARIANTS and config.name != "a":
            return names is not None and name in names  # only where a target needs them, unless asked
        return names is None or name in names

    if want("ours"):
        variants.append(_module_variant("ours", ours, x, flops, note="default: fused sequence path, fp32"))
    if want("ours+plain"):
        plain = copy.deepcopy(ours)
        plain.fused = False
        variants.append(
            _module_variant("ours+plain", plain, x, flops, note="plain per-step loop (fused=False)")
        )
    if want("ours+bf16"):
        variants.append(
            _module_variant("ours+bf16", ours, x, flops, autocast=torch.bfloat16, note="bf16 autocast")
        )
    if want("ours+channels_last"):
        channels_last = copy.deepcopy(ours).to(memory_format=torch.channels_last)
        variants.append(
            _module_variant("ours+channels_last", channels_last, x, flops, note="channels_last weights")
        )
    if want("ours+checkpoint"):
        checkpointed = copy.deepcopy(ours)
        checkpointed.gradient_checkpointing = True
        variants.append(
            _module_variant("ours+checkpoint", checkpointed, x, flops, note="gradient_checkpointing")
        )
    if want("ours+compile"):
        compiled = torch.compile(copy.deepcopy(ours))
        variant = _module_variant("ours+compile", compiled, x, flops, note="torch.compile(module)")
        variant.setup_s = _timed(variant.train) + _timed(variant.infer)  # compile time
        variants.append(variant)
    if want("concat"):
        concat = ConcatConvLSTM(*reference_args).to(device).load_from(ours)
        variants.append(_module_variant("concat", concat, x, flops, note="reference, cat([x, h]) conv"))
    if want("concat+bf16"):
        concat = ConcatConvLSTM(*reference_args).to(device).load_from(ours)
        variants.append(
            _module_variant("concat+bf16", concat, x, flops, autocast=torch.bfloat16, note="reference")
        )
    if want("two-conv"):
        two = TwoConvConvLSTM(*reference_args).to(device).load_from(ours)
        variants.append(_module_variant("two-conv", two, x, flops, note="reference, nothing hoisted"))
    for dtype, label in ((torch.float32, "limit fp32"), (torch.bfloat16, "limit bf16")):
        if want(label):
            variants.append(_limit_variant(label, config, device, dtype))
    return variants


def _limit_variant(name, config: LayerConfig, device, dtype) -> Variant:
    """One conv2d of the recurrent convolution's shape over all B*T frames, channels_last."""
    frames = config.batch * config.steps
    hidden = config.hidden
    x = torch.randn(frames, hidden, config.size, config.size, device=device, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    weight = torch.randn(4 * hidden, hidden, config.kernel, config.kernel, device=device, dtype=dtype)
    weight = (weight * 0.01).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    flops = 2 * frames * config.size**2 * config.kernel**2 * hidden * 4 * hidden

    gradient = torch.randn(frames, 4 * hidden, config.size, config.size, device=device, dtype=dtype)
    gradient = gradient.contiguous(memory_format=torch.channels_last)

    def train():
        x.grad = weight.grad = None
        F.conv2d(x, weight, padding=config.kernel // 2).backward(gradient)

    def infer():
        with torch.no_grad():
            F.conv2d(x, weight, padding=config.kernel // 2)

    variant = Variant(
        name, train, infer, flops, f"one conv2d {frames}x{hidden}->{4 * hidden}, channels_last {dtype}"
    )
    return variant


def run_rounds(variants: list[Variant], repeats: int, warmup: int = 1) -> None:
    for round_index in range(warmup + repeats):
        for variant in variants:
            train_s = _timed(variant.train)
            infer_s = _timed(variant.infer)
            if round_index >= warmup:
                variant.train_times.append(train_s)
                variant.infer_times.append(infer_s)


def measure_memory(variants: list[Variant]) -> None:
    for variant in variants:
        variant.peak_mib = peak_allocated_mib(variant.train)
        forward = getattr(variant, "forward", None)
        if forward is not None and "compile" not in variant.name:
            variant.saved_mib = saved_activation_mib(forward)


def summarize(variants: list[Variant], baseline: str = "concat") -> list[dict]:
    rows = []
    base = next((v for v in variants if v.name == baseline), None)
    base_train = statistics.median(base.train_times) if base else None
    base_peak = base.peak_mib if base else None
    for v in variants:
        train = statistics.median(v.train_times)
        infer = statistics.median(v.infer_times)
        rows.append(
            dict(
                variant=v.name,
                train_ms=1e3 * train,
                infer_ms=1e3 * infer,
                train_gflops=3 * v.flops / train / 1e9,
                infer_gflops=v.flops / infer / 1e9,
                speedup_vs_concat=(base_train / train) if base_train else None,
                peak_mib=v.peak_mib,
                peak_vs_concat=(v.peak_mib / base_peak) if base_peak and v.peak_mib is not None else None,
                saved_mib=v.saved_mib,
                setup_s=v.setup_s,
                note=v.note,
                train_samples=[round(1e3 * t, 2) for t in v.train_times],
            )
        )
    add_limit_shares(rows)
    # bf16 rows against the bf16 reference where it ran (the targets compare within a precision)
    concat_bf16 = next((row for row in rows if row["variant"] == "concat+bf16"), None)
    if concat_bf16 is not None:
        for row in rows:
            if row["precision"] == "bf16":
                row["speedup_vs_concat"] = concat_bf16["train_ms"] / row["train_ms"]
    return rows


def add_limit_shares(rows: list[dict]) -> None:
    """Each row's throughput as a share of the limit row of its precision (``limit fp32`` / ``limit bf16``)
    measured in the same run: ``train_limit_share``, ``infer_limit_share`` (None without such a row)."""
    limits = {row["variant"].split()[-1]: row for row in rows if row["variant"].startswith("limit ")}
    for row in rows:
        row["precision"] = "bf16" if "bf16" in row["variant"] else "fp32"
        limit = limits.get(row["precision"])
        for kind in ("train", "infer"):
            share = None
            if limit is not None and row[f"{kind}_gflops"] and limit[f"{kind}_gflops"]:
                share = row[f"{kind}_gflops"] / limit[f"{kind}_gflops"]
            row[f"{kind}_limit_share"] = share


# ----------------------------------------------------------------------------- streaming (d)
def build_streaming_variants(
    config: LayerConfig, device: str, names: set[str] | None, exclude: set[str] = frozenset()
) -> list[Variant]:
    """B=1, one step at a time: the cell API with its carried state; latency per step."""
    torch.manual_seed(0)
    ours = ConvLSTM(config.in_channels, config.hidden, config.kernel, config.kernel // 2).to(device)
    cell = ours.cells[0]
    x = torch.randn(1, config.in_channels, config.size, config.size, device=device)
    state = cell.zero_state(x)
    state = (torch.randn_like(state[0]), torch.randn_like(state[1]))
    concat = (
        ConcatConvLSTM(config.in_channels, config.hidden, config.kernel).to(device).load_from(ours).convs[0]
    )
    flops = 2 * config.size**2 * config.kernel**2 * (config.in_channels + config.hidden) * 4 * config.hidden

    def concat_step(x, state):
        h, c = state
        i, f, g, o = concat(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    candidates = {
        "ours": (cell, None, "ConvLSTMCell(x, state)"),
        "ours+bf16": (cell, torch.bfloat16, "bf16 autocast"),
        "ours+channels_last": (
            copy.deepcopy(cell).to(memory_format=torch.channels_last),
            None,
            "channels_last",
        ),
        "ours+compile": (torch.compile(copy.deepcopy(cell)), None, "torch.compile(cell)"),
        "concat": (concat_step, None, "reference"),
    }
    variants = []
    for name, (step, dtype, note) in candidates.items():
        if (names is not None and name not in names) or name in exclude:
            continue

        def infer(step=step, dtype=dtype):
            with (
                torch.no_grad(),
                torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None),
            ):
                step(x, state)

        variant = Variant(name, infer, infer, flops, note)
        if name == "ours+compile":
            variant.setup_s = _timed(infer)
        variants.append(variant)
    return variants


# ----------------------------------------------------------------------------- frame prediction (e)
def model_forward_flops(config, batch: int, size: int) -> float:
    """Convolution FLOPs of one forward pass of ``ConvLSTMForFramePrediction`` (nominal, as for the layers: every
    step's recurrent convolution counted): encoder and forecaster gates, the state bridges and the 1x1 head."""
    pixels = batch * (size // config.patch_size) ** 2
    kernel_area = config.kernel_size**2
    patch_channels = config.num_channels * config.patch_size**2
    directions = 2 if config.bidirectional else 1
    total, channels = 0.0, patch_channels
    for hidden in config.hidden_sizes:  # encoder, over the observed frames
        total += (
            config.num_input_frames * directions * 2 * pixels * kernel_area * (channels + hidden) * 4 * hidden
        )
        channels = directions * hidden
    channels = patch_channels
    for hidden in config.hidden_sizes:  # forecaster, over the predicted frames
        total += config.num_output_frames * 2 * pixels * kernel_area * (channels + hidden) * 4 * hidden
        channels = hidden
    if config.bidirectional:  # 1x1 bridges from both directions' (h, c) to the forecaster's
        total += sum(2 * pixels * (4 * hidden) * (2 * hidden) for hidden in config.hidden_sizes)
    total += config.num_output_frames * 2 * pixels * sum(config.hidden_sizes) * patch_channels  # head
    return total


def build_model_variants(device: str, batch: int, quick: bool, names: set[str] | None) -> list[Variant]:
    from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction

    torch.manual_seed(0)
    if quick:
        config = ConvLSTMConfig(
            hidden_sizes=[4], patch_size=4, kernel_size=3, num_input_frames=3, num_output_frames=2
        )
        frames, size = (3, 2), 16
    else:  # OpenSTL ConvLSTM-S on Moving MNIST: 4 x 128 hidden, kernel 5, patch 4, 10 -> 10 frames of 64x64
        config = ConvLSTMConfig(
            hidden_sizes=[128, 128, 128, 128],
            patch_size=4,
            kernel_size=5,
            num_input_frames=10,
            num_output_frames=10,
        )
        frames, size = (10, 10), 64
    model = ConvLSTMForFramePrediction(config).to(device)
    pixels = torch.rand(batch, frames[0], 1, size, size, device=device)
    labels = torch.rand(batch, frames[1], 1, size, size, device=device)
    flops = model_forward_flops(config, batch, size)
    variants = []
    for name, dtype in (("ours", None), ("ours+bf16", torch.bfloat16)):
        if names is not None and name not in names:
            continue

        def train(dtype=dtype):
            model.zero_grad(set_to_none=True)
            with torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                loss = model(pixels, labels=labels).loss
            loss.backward()

        def infer(dtype=dtype):
            with (
                torch.no_grad(),
                torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None),
            ):
                model(pixels, num_output_frames=frames[1])

        variants.append(Variant(name, train, infer, flops, "ConvLSTMForFramePrediction"))
    # The limit: one convolution of the model's widest recurrent shape over all B * (T_in + T_out) frames.
    shape = LayerConfig(
        "e",
        "model limit",
        batch,
        sum(frames),
        max(config.hidden_sizes),
        size // config.patch_size,
        max(config.hidden_sizes),
        config.kernel_size,
    )
    for dtype, label in ((torch.float32, "limit fp32"), (torch.bfloat16, "limit bf16")):
        if names is None or label in names:
            variants.append(_limit_variant(label, shape, device, dtype))
    return variants


# ----------------------------------------------------------------------------- loss check
def loss_check(steps: int, device: str, quick: bool) -> dict:
    """Train the frame-prediction model twice from the same weights on the same Moving MNIST batches,
    fp32 and bf16 autocast; compare the losses."""
    from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
    from bidirectional_conv_lstm.data import generate_moving_mnist, load_bundled_digits

    batch = 2 if quick else 8
    digits, _ = load_bundled_digits()
    data = generate_moving_mnist(steps * batch, digits, num_frames=20, seed=0)
    data = torch.from_numpy(data).float().div(255).reshape(steps, batch, 20, 1, 64, 64)
    config = ConvLSTMConfig(hidden_sizes=[8] if quick else [64, 64], patch_size=4, kernel_size=3)
    torch.manual_seed(0)
    initial = ConvLSTMForFramePrediction(config).state_dict()
    curves = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        model = ConvLSTMForFramePrediction(config).to(device)
        model.load_state_dict(initial)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses = []
        for step in range(steps):
            frames = data[step].to(device)
            with torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                loss = model(frames[:, :10], labels=frames[:, 10:]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        curves[name] = losses
    window = max(1, steps // 5)
    final = {name: statistics.mean(losses[-window:]) for name, losses in curves.items()}
    per_step = max(abs(b - a) / a for a, b in zip(curves["fp32"], curves["bf16"]))
    from bidirectional_conv_lstm.utils.hardware import resolve_mixed_precision

    return dict(
        device=device,
        auto_precision=list(resolve_mixed_precision("auto", device)),
        steps=steps,
        batch=batch,
        config=dict(hidden_sizes=config.hidden_sizes, patch_size=4, kernel_size=3),
        final_fp32=final["fp32"],
        final_bf16=final["bf16"],
        final_relative_difference=abs(final["bf16"] - final["fp32"]) / final["fp32"],
        max_per_step_relative_difference=per_step,
        curves=curves,
    )


# ----------------------------------------------------------------------------- report
def machine_description(device: str, query_onednn: bool = True) -> dict:
    from bidirectional_conv_lstm.utils.hardware import describe_cpu, resolve_mixed_precision

    model = platform.processor()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    info = dict(
        cpu=model,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        device=device,
        python=platform.python_version(),
    )
    cpu = describe_cpu(with_onednn=query_onednn)
    info["isa"] = cpu["summary"]
    info["onednn_isa"] = cpu["onednn_isa"] if query_onednn else "not queried (--quick)"
    info["auto_precision"] = list(cpu["auto_precision"])
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["auto_precision"] = list(resolve_mixed_precision("auto", "cuda"))
    return info


def _share(value) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _fmt(value, digits=1, suffix=""):
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{suffix}"


def markdown(results: dict) -> str:
    machine = results["machine"]
    lines = [
        f"Machine: {machine}",
        f"CPU instruction sets: {machine['isa']}; torch kernels {machine['cpu_capability']}; oneDNN reports "
        f'"{machine["onednn_isa"]}"; `mixed_precision: auto` picks {machine["auto_precision"][0]!r} here '
        f"({machine['auto_precision'][1]}).",
        f"Command: `{results['command']}`",
        "",
        "`% limit`: the row's GFLOP/s as a share of the `limit` row of its precision (fp32 rows against "
        "`limit fp32`, bf16 rows against `limit bf16`), measured in the same run.",
        "",
    ]
    for key, section in results["layers"].items():
        lines += [f"### ({key}) {section['title']}", "", section["shape"], ""]
        lines += [
            "| variant | train ms | infer ms | train GFLOP/s | infer GFLOP/s | train % limit | infer % limit | "
            "train vs concat | peak MiB | peak vs concat | saved MiB | note |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in section["rows"]:
            note = row["note"] + (f" (compile {row['setup_s']:.0f} s)" if row["setup_s"] else "")
            lines.append(
                f"| {row['variant']} | {_fmt(row['train_ms'])} | {_fmt(row['infer_ms'])} | "
                f"{_fmt(row['train_gflops'], 0)} | {_fmt(row['infer_gflops'], 0)} | "
                f"{_share(row['train_limit_share'])} | {_share(row['infer_limit_share'])} | "
                f"{_fmt(row['speedup_vs_concat'], 2, 'x')} | {_fmt(row['peak_mib'])} | "
                f"{_fmt(row['peak_vs_concat'], 2, 'x')} | {_fmt(row['saved_mib'])} | {note} |"
            )
        lines.append("")
    if "streaming" in results:
        section = results["streaming"]
        lines += [f"### (d) {section['title']}", "", section["shape"], ""]
        lines += ["| variant | ms per step | GFLOP/s | note |", "|---|---:|---:|---|"]
        for row in section["rows"]:
            note = row["note"] + (f" (compile {row['setup_s']:.0f} s)" if row["setup_s"] else "")
            lines.append(
                f"| {row['variant']} | {_fmt(row['infer_ms'], 2)} | {_fmt(row['infer_gflops'], 0)} | {note} |"
            )
        lines.append("")
    if "model" in results:
        section = results["model"]
        lines += [f"### (e) {section['title']}", "", section["shape"], ""]
        lines += [
            "| variant | train s/step | train seq/s | infer s | infer seq/s | train GFLOP/s | train % limit | "
            "infer % limit | peak MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in section["rows"]:
            lines.append(
                f"| {row['variant']} | {_fmt(row['train_ms'] / 1e3, 3)} | {_fmt(row['train_seq_s'], 2)} | "
                f"{_fmt(row['infer_ms'] / 1e3, 3)} | {_fmt(row['infer_seq_s'], 2)} | "
                f"{_fmt(row['train_gflops'], 0)} | {_share(row['train_limit_share'])} | "
                f"{_share(row['infer_limit_share'])} | {_fmt(row['peak_mib'])} |"
            )
        lines.append("")
    if "loss_check" in results:
        check = results["loss_check"]
        lines += [
            "### bf16 vs fp32 loss (frame-prediction model, Moving MNIST)",
            "",
            f"{check['steps']} Adam steps, batch {check['batch']}, {check['config']}: mean loss of the last "
            f"{max(1, check['steps'] // 5)} steps fp32 {check['final_fp32']:.5f}, bf16 {check['final_bf16']:.5f}, "
            f"relative difference {100 * check['final_relative_difference']:.2f}% "
            f"(largest per-step difference {100 * check['max_per_step_relative_difference']:.2f}%). "
            f"`mixed_precision: auto` picks {check['auto_precision'][0]!r} on this {check['device']} "
            f"({check['auto_precision'][1]}).",
            "",
        ]
    for key in ("under_load", "cuda_graphs"):
        if key in results:
            lines += [results[key]["markdown"], ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="a,b,c,d,e", help="comma-separated subset of a,b,c,d,e")
    parser.add_argument(
        "--variants", default=None, help="comma-separated subset of variant names (default all)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported); >= 1")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 repeat: a smoke test in seconds")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--batch", type=int, default=None, help="batch of (a)-(c) and (e) (default: 16 for (a)-(c))"
    )
    parser.add_argument(
        "--model-batch",
        type=int,
        default=None,
        help="batch for (e); default --batch, else 1 on CPU, 64 on GPU",
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    parser.add_argument("--loss-check", action="store_true", help="also run the bf16-vs-fp32 loss check")
    parser.add_argument("--loss-steps", type=int, default=50)
    parser.add_argument(
        "--under-load",
        action="store_true",
        help="also time the CPU recipe's training step alone and beside a process busy on one core "
        "(scripts/benchmark_under_load.py)",
    )
    parser.add_argument("--under-load-steps", type=int, default=8, help="timed steps per condition")
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="also time model (e) eagerly and as CUDA graphs (scripts/benchmark_cuda_graphs.py; --device cuda)",
    )
    parser.add_argument("--output", default=None, help="write the markdown table to this file")
    parser.add_argument("--output-json", default=None, help="write all figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    for name in ("batch", "model_batch", "under_load_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.cuda_graphs and not args.device.startswith("cuda"):
        parser.error(f"--cuda-graphs needs --device cuda, got --device {args.device}")
    global _synchronize
    _synchronize = torch.cuda.synchronize if args.device.startswith("cuda") else _no_sync
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(configs) - set("abcde")
    if unknown:
        parser.error(f"--configs: unknown configuration(s) {sorted(unknown)}; choose from a,b,c,d,e")
    names = None if args.variants is None else {v.strip() for v in args.variants.split(",")}
    exclude = {"ours+compile"} if args.no_compile else set()
    repeats = 1 if args.quick else args.repeats
    table = QUICK_CONFIGS if args.quick else LAYER_CONFIGS
    torch.manual_seed(0)
    results = dict(
        machine=machine_description(args.device, query_onednn=not args.quick),
        command=" ".join(["python", "scripts/benchmark.py", *(argv if argv is not None else sys.argv[1:])]),
        repeats=repeats,
        layers={},
    )
    for key in configs:
        if key not in table:
            continue
        config = table[key] if args.batch is None else replace(table[key], batch=args.batch)
        start = time.perf_counter()
        variants = build_layer_variants(config, args.device, names, exclude)
        run_rounds(variants, repeats)
        measure_memory(variants)
        results["layers"][key] = dict(
            title=config.title,
            shape=(
                f"B={config.batch}, T={config.steps}, {config.in_channels} ch at {config.size}x{config.size}, "
                f"{config.hidden} hidden, kernel {config.kernel}, {config.num_layers} layer(s), "
                f"{'bidirectional' if config.bidirectional else 'unidirectional'}; "
                f"{config.forward_flops() / 1e9:.1f} GFLOP forward"
            ),
            rows=summarize(variants),
            seconds=time.perf_counter() - start,
        )
        print(f"({key}) done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if "d" in configs:
        config = table["a"]
        variants = build_streaming_variants(config, args.device, names, exclude)
        run_rounds(variants, max(repeats, 5) * (1 if args.quick else 4))
        rows = summarize(variants)
        results["streaming"] = dict(
            title="streaming latency, B=1, one step at a time",
            shape=f"layer (a): {config.in_channels} ch at {config.size}x{config.size}, {config.hidden} hidden, "
            f"kernel {config.kernel}; state carried between calls",
            rows=rows,
        )
    if "e" in configs:
        batch = args.model_batch or args.batch or (64 if args.device.startswith("cuda") else 1)
        start = time.perf_counter()
        variants = build_model_variants(args.device, batch, args.quick, names)
        run_rounds(variants, repeats)
        for variant in variants:
            variant.peak_mib = peak_allocated_mib(variant.train)
        rows = summarize(variants, baseline="none")
        for row in rows:
            limit = row["variant"].startswith("limit ")  # one convolution: no sequences
            row["train_seq_s"] = None if limit else batch / (row["train_ms"] / 1e3)
            row["infer_seq_s"] = None if limit else batch / (row["infer_ms"] / 1e3)
        results["model"] = dict(
            title="ConvLSTMForFramePrediction, OpenSTL ConvLSTM-S shape",
            shape=(
                f"batch {batch}; 4 x 128 hidden, kernel 5, patch 4, 10 -> 10 frames of 64x64 (bidirectional encoder)"
                if not args.quick
                else f"batch {batch}; tiny"
            ),
            rows=rows,
        )
        print(f"(e) done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.loss_check:
        results["loss_check"] = loss_check(4 if args.quick else args.loss_steps, args.device, args.quick)
    if args.under_load:
        results["under_load"] = _sibling("benchmark_under_load").measure(
            steps=2 if args.quick else args.under_load_steps, quick=args.quick
        )
    if args.cuda_graphs:
        batches = [args.batch] if args.batch else [16, 64]
        results["cuda_graphs"] = _sibling("benchmark_cuda_graphs").measure(
            args.device, batches, repeats=repeats, quick=args.quick
        )
    text = markdown(results)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(results, handle, indent=1)
    return results


def _sibling(name: str):
    """The module of the script ``scripts/<name>.py`` beside this one (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"_benchmark_{name}", Path(__file__).with_name(f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# Run on configuration (a) only by default (targets and memory levers); their cost on (b) and (c)
# would break the ~10 minute budget of a full run on a 2-core CPU. ``--variants`` forces them.
EXTRA_VARIANTS = ("ours+plain", "ours+checkpoint", "ours+compile", "concat+bf16")

ALL_VARIANTS = (
    "ours",
    "ours+plain",
    "ours+bf16",
    "ours+channels_last",
    "ours+checkpoint",
    "ours+compile",
    "concat",
    "concat+bf16",
    "two-conv",
    "limit fp32",
    "limit bf16",
)

if __name__ == "__main__":
    main()
