"""Benchmarks: speed and memory of the layer and the model, and the cost of verification, measured the same way
each time; the top room of the house (it may import every other room, and none imports it).

The scripts ``scripts/benchmark*.py`` parse their options and call in here; docs/benchmarks.md reports their figures.

- :mod:`.references`: two reference ConvLSTM designs our layer is measured against
- :mod:`.shapes`: the benchmarked shapes (a)-(c) and the FLOP counts of the layer and the model
- :mod:`.measurement`: a variant (a training step and an inference pass), timing, memory
- :mod:`.summary`: rows of figures from timed variants (GFLOP/s, speed-ups, shares of the limit)
- :mod:`.layer_variants`, :mod:`.streaming`, :mod:`.model_variants`: what is timed in (a)-(c), (d) and (e)
- :mod:`.loss_check`: bf16 against fp32 training losses
- :mod:`.machine`: what the machine is
- :mod:`.report`: the markdown report; :mod:`.suite`: one run of ``scripts/benchmark.py``
- :mod:`.under_load`, :mod:`.cuda_graphs`, :mod:`.verification`: the other benchmark scripts' measurements
"""

from .references import ConcatConvLSTM, TwoConvConvLSTM
from .report import markdown
from .shapes import LAYER_CONFIGS, QUICK_CONFIGS, LayerConfig, model_forward_flops
from .suite import BenchmarkSettings, run_benchmark, write_report
from .verification import benchmark_verification

__all__ = [
    "LAYER_CONFIGS",
    "QUICK_CONFIGS",
    "BenchmarkSettings",
    "ConcatConvLSTM",
    "LayerConfig",
    "TwoConvConvLSTM",
    "benchmark_verification",
    "markdown",
    "model_forward_flops",
    "run_benchmark",
    "write_report",
]
