"""A benchmarked variant (one training step and one inference pass), how it is timed and what memory it takes.

Every variant of a configuration is timed in the same run, round-robin (one training step and one inference pass
of each variant per round), so machine noise hits all of them alike; figures are the median over the timed rounds
after one warm-up round.

Memory: ``peak MiB`` is the peak of torch's allocator (CUDA's on a GPU; on a CPU, bytes allocated from the
profiler's allocation events) during one training step above what was allocated before it (parameters, input);
``saved MiB`` is the unique storage bytes autograd saved for backward (saved-tensors hooks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Variant:
    """One benchmarked variant on ``device``: ``train()`` runs one forward + backward, ``infer()`` one forward
    under ``no_grad``; ``flops`` is the nominal FLOP count of one forward. ``forward`` (when set) is the bare
    forward pass whose saved activations are measured. The lists and figures are filled in by the measurement."""

    name: str
    train: Callable[[], object]
    infer: Callable[[], object]
    flops: float
    note: str = ""
    device: str = "cpu"
    forward: Callable[[], object] | None = None
    train_times: list = field(default_factory=list)
    infer_times: list = field(default_factory=list)
    peak_mib: float | None = None
    saved_mib: float | None = None
    setup_s: float = 0.0


def on_cuda(device) -> bool:
    """Whether ``device`` (a string or ``torch.device``) is a CUDA device, whose kernels run asynchronously."""
    return str(device).startswith("cuda")


def timed(fn: Callable[[], object], device: str = "cpu") -> float:
    """Seconds one call of ``fn`` takes; on a GPU it waits for the device before and after the call."""
    if on_cuda(device):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if on_cuda(device):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _cuda_peak_mib(fn: Callable[[], object]) -> float:
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def _cpu_allocation_events(fn: Callable[[], object]) -> list:
    """The allocation events of torch's CPU allocator while ``fn`` runs (private profiler API: may raise)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()

    def walk(nodes):
        for node in nodes:
            yield node
            yield from walk(node.children)

    return [
        n
        for n in walk(prof.profiler.kineto_results.experimental_event_tree())
        if n.tag == _EventType.Allocation
    ]


def peak_allocated_mib(fn: Callable[[], object], device: str = "cpu") -> float | None:
    """Peak MiB held by torch's allocator (CUDA's on a GPU, else the CPU's) while ``fn`` runs, above the level
    before it; None where the CPU profiler's private API fails."""
    if on_cuda(device):
        return _cuda_peak_mib(fn)
    try:
        events = _cpu_allocation_events(fn)
    except Exception:  # noqa: BLE001  (private profiler API: report "n/a" rather than fail)
        return None
    if not events:
        return 0.0
    events.sort(key=lambda n: n.start_time_ns)
    start = events[0].extra_fields.total_allocated - events[0].extra_fields.alloc_size
    return (max(e.extra_fields.total_allocated for e in events) - start) / 2**20


def saved_activation_mib(fn: Callable[[], object]) -> float:
    """MiB of the unique storages autograd saves for backward while ``fn`` runs (saved-tensors hooks)."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(storages.values()) / 2**20


def run_rounds(variants: list[Variant], repeats: int, warmup: int = 1) -> None:
    """Time every variant round-robin, ``warmup`` untimed rounds then ``repeats`` timed ones: each round takes one
    training step and one inference pass of each variant, appended to its ``train_times`` / ``infer_times``."""
    for round_index in range(warmup + repeats):
        for variant in variants:
            train_s = timed(variant.train, variant.device)
            infer_s = timed(variant.infer, variant.device)
            if round_index >= warmup:
                variant.train_times.append(train_s)
                variant.infer_times.append(infer_s)


def measure_memory(variants: list[Variant]) -> None:
    """Fill in each variant's ``peak_mib`` and, where it has a bare forward (not compiled), its ``saved_mib``."""
    for variant in variants:
        variant.peak_mib = peak_allocated_mib(variant.train, variant.device)
        if variant.forward is not None and "compile" not in variant.name:
            variant.saved_mib = saved_activation_mib(variant.forward)
