"""hardware.py: the CPU's instruction sets and the precision `mixed_precision: auto` picks."""

from __future__ import annotations

import pytest
import torch

from bidirectional_conv_lstm.utils import hardware
from bidirectional_conv_lstm.utils.hardware import CPU_FEATURES, resolve_mixed_precision


@pytest.fixture
def features(monkeypatch):
    """Replace the CPU's features: ``features(amx_bf16=True, ...)``; every other feature is absent."""

    def set_features(**present):
        fake = {name: bool(present.get(name, False)) for name in CPU_FEATURES}
        monkeypatch.setattr(hardware, "cpu_features", lambda: fake)

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(hardware, "_amx_permitted", lambda: True)
    monkeypatch.setattr(
        hardware, "cpu_bf16_speedup", lambda: 0.6
    )  # a CPU where bf16 is slower, unless a test says
    return set_features


def test_auto_on_this_machine_agrees_with_proc_cpuinfo():
    """The choice here follows the kernel's own flags (read independently of torch's cpuinfo): bf16 with AMX bf16
    tiles; with avx512_bf16 alone, what the measurement says (the development machines differ: bf16 0.6x fp32 on
    one, 1.9x on another); fp32 without either."""
    flags = hardware._proc_cpuinfo_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags to compare with")
    precision, reason = resolve_mixed_precision("auto", "cpu")
    if {"amx_bf16", "amx_tile"} <= flags and hardware.cpu_amx_bf16()[0]:
        assert precision == "bf16" and "AMX" in reason
    elif "avx512_bf16" in flags:
        speedup = hardware.cpu_bf16_speedup()  # cached: the very measurement the choice used
        assert f"measured {speedup:.2f}x fp32" in reason and "avx512_bf16" in reason
        assert precision == ("bf16" if speedup >= hardware.BF16_MIN_SPEEDUP else "no")
    else:
        assert precision == "no" and "no AMX bf16" in reason
    assert hardware.cpu_features()["avx2"] == ("avx2" in flags)


def test_auto_picks_bf16_on_a_cpu_with_amx(features):
    features(amx_bf16=True, amx_tile=True, avx512_bf16=True, avx512_f=True, avx2=True)
    precision, reason = resolve_mixed_precision("auto", torch.device("cpu"))
    assert precision == "bf16" and "AMX bf16" in reason


@pytest.mark.parametrize(
    "present, cap, permitted, expected_reason",
    [
        (dict(avx512_bf16=True, avx512_f=True, avx2=True), None, True, "measured 0.60x fp32"),
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


def test_auto_picks_bf16_where_avx512_bf16_measures_fast(features, monkeypatch):
    features(avx512_bf16=True, avx512_f=True, avx2=True)
    monkeypatch.setattr(hardware, "cpu_bf16_speedup", lambda: 1.93)
    precision, reason = resolve_mixed_precision("auto", "cpu")
    assert precision == "bf16" and "measured 1.93x fp32" in reason
    monkeypatch.setattr(hardware, "cpu_bf16_speedup", lambda: hardware.BF16_MIN_SPEEDUP - 0.01)
    assert resolve_mixed_precision("auto", "cpu")[0] == "no"


def test_bf16_speedup_is_a_positive_ratio():
    speedup = hardware.cpu_bf16_speedup.__wrapped__(
        repeats=1
    )  # not the cached one: a fresh, short measurement
    assert 0.05 < speedup < 20


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


def test_accelerator_precision_resolves_auto_for_the_run_device_and_keeps_explicit_choices():
    from bidirectional_conv_lstm.utils.hardware import accelerator_precision

    assert accelerator_precision("bf16") == ("bf16", None) and accelerator_precision("no") == ("no", None)
    precision, note = accelerator_precision("auto")
    assert precision == resolve_mixed_precision("auto", "cpu")[0]  # no GPU in the test run
    assert note.startswith(f"mixed_precision: auto -> {precision!r} on cpu: ")
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        accelerator_precision("fp8")
