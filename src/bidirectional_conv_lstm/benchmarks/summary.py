"""Rows of figures from timed variants: medians, GFLOP/s, speed-ups and memory against a baseline, and each row's
throughput as a share of the limit of its precision measured in the same run."""

from __future__ import annotations

import statistics

from .measurement import Variant


def _row(variant: Variant, base_train: float | None, base_peak: float | None) -> dict:
    train = statistics.median(variant.train_times)
    infer = statistics.median(variant.infer_times)
    peak = variant.peak_mib
    return dict(
        variant=variant.name,
        train_ms=1e3 * train,
        infer_ms=1e3 * infer,
        train_gflops=3 * variant.flops / train / 1e9,
        infer_gflops=variant.flops / infer / 1e9,
        speedup_vs_concat=(base_train / train) if base_train else None,
        peak_mib=peak,
        peak_vs_concat=(peak / base_peak) if base_peak and peak is not None else None,
        saved_mib=variant.saved_mib,
        setup_s=variant.setup_s,
        note=variant.note,
        train_samples=[round(1e3 * t, 2) for t in variant.train_times],
    )


def summarize(variants: list[Variant], baseline: str = "concat") -> list[dict]:
    """One row per variant: median ``train_ms`` / ``infer_ms``, GFLOP/s (a training step counts three forwards),
    the training speed-up and peak memory against the ``baseline`` variant (bf16 rows against ``concat+bf16``
    where it ran), memory, and the shares of the limit (:func:`add_limit_shares`)."""
    base = next((v for v in variants if v.name == baseline), None)
    base_train = statistics.median(base.train_times) if base else None
    base_peak = base.peak_mib if base else None
    rows = [_row(variant, base_train, base_peak) for variant in variants]
    add_limit_shares(rows)
    # bf16 rows against the bf16 reference where it ran (the targets compare within a precision)
    concat_bf16 = next((row for row in rows if row["variant"] == "concat+bf16"), None)
    if concat_bf16 is not None:
        for row in rows:
            if row["precision"] == "bf16":
                row["speedup_vs_concat"] = concat_bf16["train_ms"] / row["train_ms"]
    return rows


def add_limit_shares(rows: list[dict]) -> None:
    """Each row's throughput as a share of the faster limit row of its precision (``limit fp32`` channels_last or
    ``limit fp32 nchw`` contiguous; likewise bf16), for training and inference apart, measured in the same run:
    ``train_limit_share``, ``infer_limit_share`` (None without such a row)."""
    for row in rows:
        row["precision"] = "bf16" if "bf16" in row["variant"] else "fp32"
    for kind in ("train", "infer"):
        best: dict[str, float] = {}
        for row in rows:
            if row["variant"].startswith("limit ") and row[f"{kind}_gflops"]:
                best[row["precision"]] = max(best.get(row["precision"], 0.0), row[f"{kind}_gflops"])
        for row in rows:
            limit = best.get(row["precision"])
            value = row[f"{kind}_gflops"]
            row[f"{kind}_limit_share"] = value / limit if limit and value else None


def add_sequence_rates(rows: list[dict], batch: int) -> None:
    """``train_seq_s`` / ``infer_seq_s``: sequences per second of each model row (None for a ``limit`` row, one
    convolution with no sequences)."""
    for row in rows:
        limit = row["variant"].startswith("limit ")
        row["train_seq_s"] = None if limit else batch / (row["train_ms"] / 1e3)
        row["infer_seq_s"] = None if limit else batch / (row["infer_ms"] / 1e3)
