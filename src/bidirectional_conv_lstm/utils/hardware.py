"""What this machine runs fast: the CPU's instruction sets, and the precision a training run should use.

bf16 pays only where the hardware multiplies bf16 faster than fp32:

* a CUDA GPU with native bf16 (compute capability >= 8.0: Ampere, Hopper and later);
* a CPU with AMX tiles (``amx_bf16``: Intel Xeon from Sapphire Rapids on), on which oneDNN runs bf16 convolutions
  with ``avx512_core_amx`` kernels, about twice as fast as fp32.

A CPU with ``avx512_bf16`` but no AMX is the undecided case: on one Intel Xeon without AMX exposed, bf16
convolutions ran at about 0.6x fp32, while on an AMD EPYC (Zen 4) they ran at 1.96x (docs/benchmarks.md). There
``mixed_precision: auto`` measures: one convolution's forward and backward in both precisions (about a second, once
per process, :func:`cpu_bf16_speedup`), and bf16 is chosen when it is at least 1.2x faster. Other CPUs keep fp32.

    from bidirectional_conv_lstm.utils.hardware import resolve_mixed_precision
    resolve_mixed_precision("auto", "cpu")   # on a CPU with avx512_bf16 and no AMX, e.g.:
    # ('bf16', 'CPU without AMX but with avx512_bf16 (...): bf16 convolutions measured 1.9x fp32 here')
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import torch

__all__ = [
    "accelerator_precision",
    "make_accelerator",
    "CPU_FEATURES",
    "cpu_amx_bf16",
    "cpu_bf16_speedup",
    "cpu_features",
    "describe_cpu",
    "onednn_isa",
    "resolve_mixed_precision",
]

# The instruction sets that decide convolution speed, fastest first (names as torch.cpu.get_capabilities() spells
# them; /proc/cpuinfo's spelling differs for a few, see _CPUINFO_NAMES).
CPU_FEATURES = (
    "amx_bf16",
    "amx_tile",
    "amx_fp16",
    "avx512_fp16",
    "avx512_bf16",
    "avx512_vnni",
    "avx512_f",
    "avx_vnni",
    "avx2",
)
_CPUINFO_NAMES = {"avx512_f": "avx512f"}
# ONEDNN_MAX_CPU_ISA values that still let oneDNN use AMX (any value naming AMX, or no cap at all).
_UNCAPPED = ("", "ALL", "DEFAULT")


def _proc_cpuinfo_flags(path: str | os.PathLike = "/proc/cpuinfo") -> set[str]:
    """The ``flags`` of the first processor in ``/proc/cpuinfo`` (empty where the file does not exist)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@lru_cache(maxsize=1)
def cpu_features() -> dict[str, bool]:
    """Which of :data:`CPU_FEATURES` this CPU has.

    torch's own view first (``torch.cpu.get_capabilities()``, from cpuinfo, what its kernels dispatch on); where
    this torch lacks it, the flags of ``/proc/cpuinfo``. Returns ``{name: bool}`` for every name of
    :data:`CPU_FEATURES`.
    """
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is not None:
        try:
            capabilities = dict(get_capabilities())
            return {name: bool(capabilities.get(name, False)) for name in CPU_FEATURES}
        except (RuntimeError, AttributeError):  # an older or non-x86 build without the query
            pass
    flags = _proc_cpuinfo_flags()
    return {name: _CPUINFO_NAMES.get(name, name) in flags for name in CPU_FEATURES}


def _onednn_isa_cap() -> str:
    return os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).strip().upper()


def _amx_permitted() -> bool:
    """Whether the kernel grants this process AMX tile state (Linux asks for it per process, arch_prctl)."""
    init_amx = getattr(torch.cpu, "_init_amx", None)
    if init_amx is None:
        return True
    try:
        return bool(init_amx())
    except RuntimeError:
        return False


def cpu_amx_bf16() -> tuple[bool, str]:
    """Whether oneDNN can run bf16 convolutions on AMX tiles in this process, and the reason in words.

    Needs the CPU's ``amx_bf16`` and ``amx_tile`` (:func:`cpu_features`), no ``ONEDNN_MAX_CPU_ISA`` cap below AMX,
    and the kernel's permission for AMX state (``torch.cpu._init_amx()``).
    """
    features = cpu_features()
    present = [name for name in ("avx512_bf16", "avx512_f", "avx2") if features[name]]
    if not (features["amx_bf16"] and features["amx_tile"]):
        return False, f"no AMX bf16; has {', '.join(present) or 'none of avx512_bf16, avx512_f, avx2'}"
    cap = _onednn_isa_cap()
    if cap not in _UNCAPPED and "AMX" not in cap:
        return False, f"the CPU has AMX bf16 but ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN below it"
    if not _amx_permitted():
        return False, "the CPU has AMX bf16 but the kernel did not grant this process AMX tile state"
    return True, "AMX bf16 tiles"


# bf16 is chosen on a CPU without AMX only when measured at least this much faster than fp32: below it the
# conversions around the convolutions and the noise of one short measurement eat the gain.
BF16_MIN_SPEEDUP = 1.2


@lru_cache(maxsize=1)
def cpu_bf16_speedup(repeats: int = 5) -> float:
    """fp32 time over bf16 time of one convolution's forward and backward on this CPU (> 1: bf16 is faster).

    The shape is the recurrent convolution class of the CPU recipes (a batch of 64 patch grids of 16 x 16, 64 -> 128
    channels, kernel 3, channels_last); the median of ``repeats`` timed passes after one warm-up, in this process's
    thread setting. Measured once per process (about a second); a busy machine makes it noisy, which
    :data:`BF16_MIN_SPEEDUP` absorbs.
    """
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 64, 16, 16, generator=generator).to(memory_format=torch.channels_last)
    weight = torch.randn(128, 64, 3, 3, generator=generator).to(memory_format=torch.channels_last)

    def seconds(dtype: torch.dtype) -> float:
        x = inputs.to(dtype).requires_grad_()
        w = weight.to(dtype).requires_grad_()
        times = []
        for index in range(repeats + 1):
            started = time.perf_counter()
            torch.nn.functional.conv2d(x, w, padding=1).sum().backward()
            if index:  # the first pass warms oneDNN's kernel cache up
                times.append(time.perf_counter() - started)
        return statistics.median(times)

    with torch.autocast("cpu", enabled=False):
        return seconds(torch.float32) / seconds(torch.bfloat16)


def _cuda_native_bf16(device: torch.device) -> bool:
    if torch.version.hip:  # every ROCm GPU torch supports computes bf16 natively
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def accelerator_precision(requested: str) -> tuple[str, str | None]:
    """``requested`` (``"auto"``, ``"no"``, ``"fp16"``, ``"bf16"``) resolved for the device Accelerate will use,
    before the ``Accelerator`` exists: ``(precision, note)``, the note saying what ``"auto"`` chose and why
    (None for an explicit precision)."""
    if requested != "auto":
        return resolve_mixed_precision(requested, "cpu")[0], None
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    device = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU")).device
    precision, reason = resolve_mixed_precision("auto", device)
    return precision, f"mixed_precision: auto -> {precision!r} on {device.type}: {reason}"


def make_accelerator(mixed_precision: str, **accelerator_kwargs):
    """An ``accelerate.Accelerator`` with ``mixed_precision`` resolved by :func:`accelerator_precision` (``"auto"``
    included), printing what ``"auto"`` chose and why; returns ``(accelerator, note)`` (note None for an explicit
    precision). ``accelerator.mixed_precision`` names the precision in use."""
    from accelerate import Accelerator

    precision, note = accelerator_precision(mixed_precision)
    accelerator = Accelerator(mixed_precision=precision, **accelerator_kwargs)
    if note is not None:
        accelerator.print(note)
    return accelerator, note


def resolve_mixed_precision(requested: str, device: str | torch.device) -> tuple[str, str]:
    """The precision a run on ``device`` uses, and why.

    Args:
        requested (`str`): ``"auto"``, or ``"no"``, ``"fp16"``, ``"bf16"`` (returned as they are).
        device (`str` or `torch.device`): where the model trains (``accelerator.device``).

    Returns:
        ``(precision, reason)``: ``precision`` is ``"no"``, ``"fp16"`` or ``"bf16"`` (Accelerate's names);
        for ``"auto"`` it is ``"bf16"`` on a CUDA GPU with native bf16, on a CPU with AMX bf16
        (:func:`cpu_amx_bf16`), and on a CPU with avx512_bf16 where bf16 convolutions measure at least
        :data:`BF16_MIN_SPEEDUP` times as fast as fp32 (:func:`cpu_bf16_speedup`), else ``"no"`` (fp32).

    Raises:
        ValueError: ``requested`` is not one of the four values.
    """
    if requested not in ("auto", "no", "fp16", "bf16"):
        raise ValueError(f"mixed_precision must be one of ['auto', 'no', 'fp16', 'bf16'], got {requested!r}")
    if requested != "auto":
        return requested, "set in the configuration"
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if _cuda_native_bf16(device):
            return (
                "bf16",
                f"CUDA GPU {name} computes bf16 natively (tensor cores at twice the fp32/tf32 rate)",
            )
        major, minor = torch.cuda.get_device_capability(device)
        return "no", f"CUDA GPU {name} (compute capability {major}.{minor} < 8.0) has no native bf16"
    if device.type == "cpu":
        amx, why = cpu_amx_bf16()
        if amx:
            return "bf16", f"CPU with {why}: oneDNN's bf16 convolutions run about twice as fast as fp32"
        if not cpu_features()["avx512_bf16"]:
            return "no", f"CPU without AMX bf16 or avx512_bf16 ({why}): bf16 is emulated, slower than fp32"
        speedup = cpu_bf16_speedup()
        if speedup >= BF16_MIN_SPEEDUP:
            return (
                "bf16",
                f"CPU without AMX but with avx512_bf16 ({why}): bf16 convolutions measured {speedup:.2f}x fp32 here",
            )
        return "no", (
            f"CPU without AMX bf16 ({why}): bf16 convolutions measured {speedup:.2f}x fp32 here "
            f"(bf16 needs >= {BF16_MIN_SPEEDUP}x)"
        )
    return "no", f"no measured fast bf16 path on device type {device.type!r}"


@lru_cache(maxsize=1)
def onednn_isa() -> str | None:
    """The instruction set oneDNN itself reports it uses (``ONEDNN_VERBOSE``'s ``isa:`` line), or ``None``.

    Runs one convolution in a child Python with ``ONEDNN_VERBOSE=1`` (the report is printed once per process, so it
    cannot be read back reliably from this one); about a second, for benchmark reports, not for training.
    """
    code = "import torch; torch.nn.functional.conv2d(torch.randn(8, 64, 16, 16), torch.randn(64, 64, 3, 3))"
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "OMP_NUM_THREADS": "1"}
    try:
        completed = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in completed.stdout.splitlines():
        if ",cpu,isa:" in line:
            return line.split(",cpu,isa:", 1)[1].strip()
    return None


def describe_cpu(with_onednn: bool = True) -> dict:
    """The CPU facts a benchmark report needs.

    Returns:
        ``{"features": {name: bool}, "summary": "AMX bf16: no; avx512_bf16: yes; ...", "torch_kernels": "AVX512",
        "onednn_isa": str | None, "amx_bf16": (bool, reason), "auto_precision": (precision, reason)}``.
    """
    features = cpu_features()
    labels = (
        ("AMX bf16", "amx_bf16"),
        ("avx512_bf16", "avx512_bf16"),
        ("AVX-512", "avx512_f"),
        ("AVX2", "avx2"),
    )
    summary = "; ".join(f"{label}: {'yes' if features[name] else 'no'}" for label, name in labels)
    return {
        "features": features,
        "summary": summary,
        "torch_kernels": torch.backends.cpu.get_cpu_capability(),
        "onednn_isa": onednn_isa() if with_onednn else None,
        "amx_bf16": cpu_amx_bf16(),
        "auto_precision": resolve_mixed_precision("auto", "cpu"),
    }
