"""How fast NowcastVerifier scores a test set: by default 1,000 forecasts of 12 x 128 x 128 frames at the
default 5 thresholds and 3 FSS windows, on 2 CPU threads (the issue's target: 10 s or less on 2 cores).

The fields are rain-like (log-normal rates, about 40 % dry, the forecast a displaced and perturbed copy of
the observation); a pool of ``--pool`` forecasts is generated once and its batches are scored in turn until
``--num-forecasts`` are scored, so the timing is the verifier's alone. Reported: wall time, the process's CPU time
(user + system; on a busy machine the wall time of a quiet one lies between CPU time / threads and CPU time) and
forecasts per second. Run it on a quiet machine for a figure to quote.

Usage::

    python scripts/benchmark_verification.py                      # the target's setting
    python scripts/benchmark_verification.py --masked             # with 10 % no-data pixels
    python scripts/benchmark_verification.py --device cuda --threads 16 --output-json verification.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np
import torch

from bidirectional_conv_lstm.nowcasting.verification import (
    DEFAULT_THRESHOLDS,
    DEFAULT_WINDOWS,
    NowcastVerifier,
)


def rain_like_pairs(num_forecasts: int, lead_times: int, size: int, seed: int = 0):
    """``(forecast, observed, valid)``: float32 (N, T, size, size) mm/h and a bool mask with 10 % no-data."""
    rng = np.random.default_rng(seed)
    shape = (num_forecasts, lead_times, size, size)
    observed = (rng.lognormal(0.0, 1.2, shape) * (rng.random(shape) < 0.6)).astype(np.float32)
    forecast = np.roll(observed, shift=(3, -2), axis=(2, 3)) * rng.lognormal(0.0, 0.3, shape).astype(
        np.float32
    )
    valid = rng.random(shape) >= 0.1
    return torch.from_numpy(forecast), torch.from_numpy(observed), torch.from_numpy(valid)


def benchmark_verification(
    num_forecasts: int = 1000,
    lead_times: int = 12,
    size: int = 128,
    batch_size: int = 16,
    pool: int = 32,
    masked: bool = False,
    device: str = "cpu",
    thresholds=DEFAULT_THRESHOLDS,
    windows=DEFAULT_WINDOWS,
) -> dict:
    """Score ``num_forecasts`` forecasts in batches of ``batch_size`` and time it (see the module docstring).

    Returns:
        a JSON-able dict: the setting, ``wall_s``, ``cpu_s``, ``forecasts_per_s`` and the overall ``csi@1``
        (a check that something was scored).
    """
    if min(num_forecasts, lead_times, size, batch_size, pool) < 1:
        raise ValueError("num_forecasts, lead_times, size, batch_size and pool must all be >= 1")
    forecast, observed, valid = (
        t.to(device) for t in rain_like_pairs(min(pool, num_forecasts), lead_times, size)
    )
    verifier = NowcastVerifier(thresholds, windows)
    verifier.update(forecast[:1], observed[:1], valid[:1] if masked else None)  # warm-up
    verifier.reset()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    usage, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    scored = 0
    while scored < num_forecasts:
        first = scored % forecast.shape[0]
        count = min(batch_size, num_forecasts - scored, forecast.shape[0] - first)
        part = slice(first, first + count)
        verifier.update(forecast[part], observed[part], valid[part] if masked else None)
        scored += count
    result = verifier.compute()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    end_usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (end_usage.ru_utime - usage.ru_utime) + (end_usage.ru_stime - usage.ru_stime)
    return {
        "num_forecasts": num_forecasts,
        "frames": f"{lead_times} x {size} x {size}",
        "thresholds": list(thresholds),
        "windows": list(windows),
        "masked": masked,
        "device": device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "forecasts_per_s": round(num_forecasts / wall, 1),
        "csi@1": result["overall"].get("csi@1"),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-forecasts", type=int, default=1000)
    parser.add_argument("--lead-times", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--pool", type=int, default=32, help="forecasts generated and cycled through")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (the target is for 2 cores)"
    )
    parser.add_argument("--masked", action="store_true", help="10 %% no-data pixels (the masked FSS path)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output-json", default=None)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    report = benchmark_verification(
        args.num_forecasts, args.lead_times, args.size, args.batch_size, args.pool, args.masked, args.device
    )
    print(json.dumps(report, indent=2))
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(report, handle, indent=2)
    return report


if __name__ == "__main__":
    main()
