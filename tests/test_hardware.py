"""hardware.py: the CPU's instruction sets and the precision `mixed_precision: auto` picks."""

from __future__ import annotations

import pytest
import torch

from bidirectional_conv_lstm import hardware
from bidirectional_conv_lstm.hardware import CPU_FEATURES, resolve_mixed_precision


@pytest.fixture
def features(monkeypatch):
    """Replace the CPU's features: ``features(amx_bf16=True, ...)``; every other feature is absent."""

    def set_features(**present):
        fake = {name: bool(present.get(name, False)) for name in CPU_FEATURES}
        monkeypatch.setattr(hardware, "cpu_features", lambda: fake)

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(hardware, "_amx_permitted", lambda: True)
    return set_features


def test_auto_on_this_machine_agrees_with_proc_cpuinfo():
    """The choice here follows the kernel's own flags (read independently of torch's cpuinfo): bf16 only with AMX
    bf16 tiles. On a CPU with avx512_bf16 and no AMX (the development machines) that is fp32."""
    flags = hardware._proc_cpuinfo_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags to compare with")
    precision, reason = resolve_mixed_precision("auto", "cpu")
    if {"amx_bf16", "amx_tile"} <= flags and hardware.cpu_amx_bf16()[0]:
        assert precision == "bf16" and "AMX" in reason
    else:
        assert precision == "no"
        if "amx_bf16" not in flags:
            assert "no AMX bf16" in reason
            if "avx512_bf16" in flags:  # named, since it is the feature that would mislead
                assert "avx512_bf16" in reason
    assert hardware.cpu_features()["avx2"] == ("avx2" in flags)


def test_auto_picks_bf16_on_a_cpu_with_amx(features):
    features(amx_bf16=True, amx_tile=True, avx512_bf16=True, avx512_f=True, avx2=True)
    precision, reason = resolve_mixed_precision("auto", torch.device("cpu"))
    assert precision == "bf16" and "AMX bf16" in reason


@pytest.mark.parametrize(
    "present, cap, permitted, expected_reason",
    [
        (dict(avx512_bf16=True, avx512_f=True, avx2=True), None, True, "no AMX bf16; has avx512_bf16"),
        (dict(avx2=True), None, True, "no AMX bf16; has avx2"),
        (dict(amx_bf16=True, amx_tile=True), "AVX512_CORE_BF16", True, "ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16"),
        (dict(amx_bf16=True, amx_tile=True), None, False, "did not grant"),
    ],
    ids=["avx512_bf16-only", "avx2-only", "onednn-capped", "kernel-refuses-amx"],
)
def test_auto_keeps_fp32_without_usable_amx(features, monkeypatch, present, cap, permitted, expected_reason):
    features(**present)
    if cap is not None:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    monkeypatch.setattr(hardware, "_amx_permitted", lambda: permitted)
    precision, reason = resolve_mixed_precision("auto", "cpu")
    assert precision == "no" and expected_reason in reason


def test_an_amx_cap_still_allows_amx(features, monkeypatch):
    features(amx_bf16=True, amx_tile=True)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_amx")
    assert resolve_mixed_precision("auto", "cpu")[0] == "bf16"


@pytest.mark.parametrize("capability, expected", [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "no")])
def test_auto_on_a_cuda_gpu_follows_its_compute_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.version, "hip", None)
    precision, reason = resolve_mixed_precision("auto", torch.device("cuda", 0))
    assert precision == expected and "Test GPU" in reason


def test_explicit_precisions_pass_through_and_bad_ones_fail():
    for value in ("no", "fp16", "bf16"):
        assert resolve_mixed_precision(value, "cpu") == (value, "set in the configuration")
    with pytest.raises(ValueError, match="mixed_precision.*'fp8'"):
        resolve_mixed_precision("fp8", "cpu")


def test_features_fall_back_to_proc_cpuinfo(monkeypatch):
    monkeypatch.delattr(torch.cpu, "get_capabilities")
    monkeypatch.setattr(hardware, "_proc_cpuinfo_flags", lambda: {"avx2", "avx512f", "amx_bf16", "amx_tile"})
    hardware.cpu_features.cache_clear()
    try:
        found = hardware.cpu_features()
    finally:
        hardware.cpu_features.cache_clear()
    assert found["avx512_f"] and found["amx_bf16"] and found["avx2"] and not found["avx512_bf16"]


def test_proc_cpuinfo_parsing(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert hardware._proc_cpuinfo_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert hardware._proc_cpuinfo_flags(tmp_path / "missing") == set()
