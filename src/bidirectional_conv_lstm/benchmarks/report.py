"""The markdown report of a ``scripts/benchmark.py`` run, from its results dict (the JSON it writes): the machine,
then one table per section ((a)-(c) layers, (d) streaming, (e) model), the loss check and the extra measurements.

Every table row also gives its throughput as a share of the limit of its precision measured in the same run
(the faster of ``limit fp32`` (channels_last) and ``limit fp32 nchw`` for fp32 rows, likewise for bf16); the header names the CPU's instruction sets (AMX,
avx512_bf16, AVX-512, AVX2), what oneDNN reports it uses, and the precision ``mixed_precision: auto`` picks here.
"""

from __future__ import annotations


def share(value: float | None) -> str:
    """A fraction as a whole percentage ("42%"), "n/a" for None."""
    return "n/a" if value is None else f"{100 * value:.0f}%"


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    """``value`` with ``digits`` decimals and ``suffix``, "n/a" for None."""
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{suffix}"


def _note(row: dict) -> str:
    return row["note"] + (f" (compile {row['setup_s']:.0f} s)" if row["setup_s"] else "")


def header_lines(results: dict) -> list[str]:
    """The machine, its instruction sets and precision, the command, and what ``% limit`` means."""
    machine = results["machine"]
    return [
        f"Machine: {machine}",
        f"CPU instruction sets: {machine['isa']}; torch kernels {machine['cpu_capability']}; oneDNN reports "
        f'"{machine["onednn_isa"]}"; `mixed_precision: auto` picks {machine["auto_precision"][0]!r} here '
        f"({machine['auto_precision'][1]}).",
        f"Command: `{results['command']}`",
        "",
        "`% limit`: the row's GFLOP/s as a share of the faster `limit` row of its precision (fp32 rows against "
        "the faster of `limit fp32` (channels_last) and `limit fp32 nchw` (contiguous), bf16 rows likewise), "
        "measured in the same run.",
        "",
        *memory_format_lines(results.get("memory_formats", [])),
    ]


def memory_format_lines(choices: list[dict]) -> list[str]:
    """What the layer's `memory_format="auto"` measured and chose, one line per convolution shape."""
    if not choices:
        return []
    lines = ['`memory_format="auto"` chose, per recurrent convolution (measured once per process):', ""]
    for entry in choices:
        kind = "forward + backward" if entry["backward"] else "forward"
        lines.append(
            f"- {entry['shape']}, {entry['dtype']}, {kind}: **{entry['choice']}** (channels_last "
            f"{entry['channels_last_ms']} ms, contiguous {entry['contiguous_ms']} ms)"
        )
    return [*lines, ""]


def layer_lines(key: str, section: dict) -> list[str]:
    """The table of layer section ``key`` ((a)-(c)): times, GFLOP/s, shares of the limit, memory."""
    lines = [f"### ({key}) {section['title']}", "", section["shape"], ""]
    lines += [
        "| variant | train ms | infer ms | train GFLOP/s | infer GFLOP/s | train % limit | infer % limit | "
        "train vs concat | peak MiB | peak vs concat | saved MiB | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in section["rows"]:
        lines.append(
            f"| {row['variant']} | {fmt(row['train_ms'])} | {fmt(row['infer_ms'])} | "
            f"{fmt(row['train_gflops'], 0)} | {fmt(row['infer_gflops'], 0)} | "
            f"{share(row['train_limit_share'])} | {share(row['infer_limit_share'])} | "
            f"{fmt(row['speedup_vs_concat'], 2, 'x')} | {fmt(row['peak_mib'])} | "
            f"{fmt(row['peak_vs_concat'], 2, 'x')} | {fmt(row['saved_mib'])} | {_note(row)} |"
        )
    return [*lines, ""]


def streaming_lines(section: dict) -> list[str]:
    """The table of the streaming section (d): milliseconds per step."""
    lines = [f"### (d) {section['title']}", "", section["shape"], ""]
    lines += ["| variant | ms per step | GFLOP/s | note |", "|---|---:|---:|---|"]
    for row in section["rows"]:
        lines.append(
            f"| {row['variant']} | {fmt(row['infer_ms'], 2)} | {fmt(row['infer_gflops'], 0)} | {_note(row)} |"
        )
    return [*lines, ""]


def model_lines(section: dict) -> list[str]:
    """The table of the model section (e): seconds per step and sequences per second."""
    lines = [f"### (e) {section['title']}", "", section["shape"], ""]
    lines += [
        "| variant | train s/step | train seq/s | infer s | infer seq/s | train GFLOP/s | train % limit | "
        "infer % limit | peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in section["rows"]:
        lines.append(
            f"| {row['variant']} | {fmt(row['train_ms'] / 1e3, 3)} | {fmt(row['train_seq_s'], 2)} | "
            f"{fmt(row['infer_ms'] / 1e3, 3)} | {fmt(row['infer_seq_s'], 2)} | "
            f"{fmt(row['train_gflops'], 0)} | {share(row['train_limit_share'])} | "
            f"{share(row['infer_limit_share'])} | {fmt(row['peak_mib'])} |"
        )
    return [*lines, ""]


def loss_check_lines(check: dict) -> list[str]:
    """The bf16-vs-fp32 loss check in one paragraph."""
    return [
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


def markdown(results: dict) -> str:
    """The whole report: the header, then each section the results hold, in a fixed order."""
    lines = header_lines(results)
    for key, section in results["layers"].items():
        lines += layer_lines(key, section)
    if "streaming" in results:
        lines += streaming_lines(results["streaming"])
    if "model" in results:
        lines += model_lines(results["model"])
    if "loss_check" in results:
        lines += loss_check_lines(results["loss_check"])
    for key in ("under_load", "cuda_graphs"):
        if key in results:
            lines += [results[key]["markdown"], ""]
    return "\n".join(lines)
