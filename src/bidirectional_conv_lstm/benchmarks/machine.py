"""What the machine is, as a benchmark report's header states it."""

from __future__ import annotations

import platform
import subprocess

import torch

from ..utils.hardware import describe_cpu, resolve_mixed_precision


def cpu_model_name() -> str:
    """The CPU's model name (``lscpu``'s "Model name", else ``platform.processor()``)."""
    model = platform.processor()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return model


def machine_description(device: str, query_onednn: bool = True) -> dict:
    """A JSON-able dict: ``cpu``, ``threads``, ``torch``, ``cpu_capability``, ``device``, ``python``, ``isa`` (the
    CPU's instruction sets), ``onednn_isa`` (what oneDNN reports, queried in a subprocess unless
    ``query_onednn`` is false), ``auto_precision`` (what ``mixed_precision: auto`` picks on ``device``, and why)
    and, on a GPU, ``gpu``."""
    info = dict(
        cpu=cpu_model_name(),
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
