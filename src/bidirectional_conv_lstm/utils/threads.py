"""How many CPU threads a training run uses, chosen from its measured step times while it runs.

Why: torch's CPU kernels split every operation across its OpenMP threads (one per core by default) and wait at a
barrier for the slowest. A training step of this model is thousands of such parallel regions. When another
process keeps one of the cores busy, the thread that shares that core runs only when the scheduler gives it a time
slice (milliseconds), while its partner spin-waits at the barrier (libgomp spins up to 300,000 iterations before
sleeping), holding the other core instead of yielding it: each region then costs a time slice instead of
microseconds, and a 0.4 s step takes 15 s. ``OMP_WAIT_POLICY=PASSIVE`` stops the spinning but is read only when
the OpenMP runtime loads (before ``import torch``), and it slows the quiet case (every region then wakes sleeping
threads). The thread count is the knob that works at run time: with one thread there is no barrier to wait at.

:class:`ThreadTuner` measures instead of guessing: after a few warm-up steps it times each candidate thread count
for a couple of steps, keeps the fastest, and probes again when steps become markedly slower than what it measured
(load arrived) or, while it runs on fewer threads than the machine has, every so often (load may have gone).
On a quiet machine that is one short probe (a single step on one thread), after which it runs on all threads as
before.

The thread count changes the order of floating-point sums (oneDNN's weight gradients, reductions), so runs whose
counts differ are not bit-identical; a run that must be, sets a fixed count (``num_threads``) instead.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable

import torch

from ..models.convlstm.argument_checks import check_int

__all__ = ["ThreadTuner"]


class ThreadTuner:
    """Chooses torch's intra-op thread count from the durations of training steps, as they are recorded.

    Args:
        max_threads (`int`, *optional*): the most threads to use; defaults to ``torch.get_num_threads()``.
        warmup_steps (`int`, defaults to 3): first steps not judged (allocations, caches, oneDNN primitives).
        probe_steps (`int`, defaults to 2): steps timed per candidate count; the fastest of them counts.
        window (`int`, defaults to 5): recent steps whose median is compared with the measured speed.
        slowdown (`float`, defaults to 1.5): a ratio of step times that means "markedly slower": it triggers a new
            probe, and ends a candidate's probe after one step.
        tolerance (`float`, defaults to 0.1): more threads are kept unless fewer are faster by more than this.
        recheck_steps (`int`, defaults to 200): steps on fewer than ``max_threads`` threads before probing again;
            doubles each time the probe keeps the same count.
        set_num_threads (`callable`, defaults to ``torch.set_num_threads``): applies a count (tests pass a fake).
        log (`callable`, *optional*): called with a sentence each time the count changes.

    Candidates are all threads, all but one (another process holds a core), half, and one. Use::

        tuner = ThreadTuner()
        for batch in loader:
            started = time.perf_counter()
            ...  # forward, backward, optimizer step
            tuner.record(time.perf_counter() - started)
    """

    def __init__(
        self,
        max_threads: int | None = None,
        *,
        warmup_steps: int = 3,
        probe_steps: int = 2,
        window: int = 5,
        slowdown: float = 1.5,
        tolerance: float = 0.1,
        recheck_steps: int = 200,
        set_num_threads: Callable[[int], None] = torch.set_num_threads,
        log: Callable[[str], None] | None = None,
    ):
        max_threads = torch.get_num_threads() if max_threads is None else max_threads
        for name, value in (
            ("max_threads", max_threads),
            ("probe_steps", probe_steps),
            ("window", window),
            ("recheck_steps", recheck_steps),
        ):
            check_int(name, value)
        check_int("warmup_steps", warmup_steps, minimum=0)
        if not slowdown > 1:
            raise ValueError(f"slowdown must be > 1, got {slowdown!r}")
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
        self.max_threads = max_threads
        self.candidates = sorted(
            {max_threads, max(1, max_threads - 1), max(1, max_threads // 2), 1}, reverse=True
        )
        self.warmup_steps, self.probe_steps, self.slowdown, self.tolerance = (
            warmup_steps,
            probe_steps,
            slowdown,
            tolerance,
        )
        self.recheck_steps = recheck_steps
        self._set_num_threads, self._log = set_num_threads, log
        self._recent: deque[float] = deque(maxlen=window)
        self.steps = 0  # steps recorded
        self.threads = max_threads
        self.reference: float | None = None  # seconds a step at the chosen count took when probed
        self.measured: dict[int, float] = {}  # the last probe's seconds per step, by thread count
        self.changes: list[tuple[int, int, str]] = []  # (step, threads, why)
        self._phase = "warmup" if warmup_steps else "probe"
        self._queue: list[int] = []
        self._samples: list[float] = []
        self._interval = recheck_steps
        self._next_recheck = 0
        self._set(max_threads)
        if self._phase == "probe":
            self._start_probe()

    @property
    def active(self) -> bool:
        """Whether there is a choice to make (more than one candidate count)."""
        return len(self.candidates) > 1

    def record(self, seconds: float) -> None:
        """Account for one training step that took ``seconds`` at the current thread count."""
        if not self.active:
            return
        self.steps += 1
        if self._phase == "warmup":
            if self.steps >= self.warmup_steps:
                self._start_probe()
        elif self._phase == "probe":
            self._probe(seconds)
        else:
            self._recent.append(seconds)
            slower = (
                len(self._recent) == self._recent.maxlen
                and statistics.median(self._recent) > self.slowdown * self.reference
            )
            if slower or (self.threads < self.max_threads and self.steps >= self._next_recheck):
                self._start_probe()

    # ------------------------------------------------------------------ internals
    def _set(self, threads: int) -> None:
        self._set_num_threads(threads)
        self._current = threads

    def _start_probe(self) -> None:
        # The current count is the yardstick that ends a hopeless candidate after one step. Its recent steps, when
        # there are enough, already measure it under today's conditions; else it is measured first.
        others = [count for count in self.candidates if count != self.threads]
        self.measured, self._samples, self._phase = {}, [], "probe"
        if len(self._recent) == self._recent.maxlen:
            self.measured[self.threads] = statistics.median(self._recent)
            self._queue = others
        else:
            self._queue = [self.threads, *others]
        self._set(self._queue[0])

    def _probe(self, seconds: float) -> None:
        self._samples.append(seconds)
        best = min(self.measured.values(), default=None)
        hopeless = best is not None and seconds > self.slowdown * best
        if not hopeless and len(self._samples) < self.probe_steps:
            return
        self.measured[self._queue.pop(0)] = min(self._samples)
        self._samples = []
        if self._queue:
            self._set(self._queue[0])
            return
        best = min(self.measured.values())
        choice = max(count for count, time in self.measured.items() if time <= best * (1 + self.tolerance))
        if choice == self.threads:
            self._interval *= 2  # the same answer again: ask less often
        else:
            self._interval = self.recheck_steps
            timings = ", ".join(f"{count}: {time:.3g} s" for count, time in sorted(self.measured.items()))
            why = f"step time by thread count {timings}"
            self.changes.append((self.steps, choice, why))
            if self._log is not None:
                self._log(f"CPU threads {self.threads} -> {choice} at step {self.steps} ({why})")
        self.threads, self.reference = choice, self.measured[choice]
        self._set(choice)
        self._recent.clear()
        self._next_recheck = self.steps + self._interval
        self._phase = "run"
