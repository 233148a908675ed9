"""Where a training run stands on its schedules: by steps, or by the share of its time budget spent.

A recipe with a time budget (``max_train_minutes``) that its machine cannot fit ``max_train_steps`` into used to
stop mid-schedule: learning rate still high, teacher forcing not yet off, and a worse model than a shorter but
complete schedule gives. :class:`RunProgress` gives the schedules (learning rate, teacher forcing, auxiliary-loss
ramp) a *position* in optimizer steps instead of the raw step: the step itself, or, when the budget drives them,
the larger of the step and the same share of ``max_train_steps`` as the share of the budget spent. A machine fast
enough to take every step within the budget trains exactly as before; a slower one walks the same schedules in
fewer steps and reaches their ends when the budget runs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..models.convlstm.argument_checks import check_int

__all__ = ["RunProgress", "learning_rate_factor"]


class RunProgress:
    """The run's position on its schedules, a float in ``[0, max_steps]`` (in optimizer steps).

    Args:
        max_steps (`int`): the run's optimizer steps when nothing stops it earlier.
        budget_seconds (`float`, *optional*): the wall-clock budget; ``None`` for none.
        follow_budget (`bool`, defaults to `True`): with a budget, the position is
            ``max(step, max_steps * spent / budget)``; ``False`` keeps it at ``step`` (the budget then only stops
            the run).
        clock (`callable`, defaults to ``time.perf_counter``): seconds, for the budget (tests pass a fake).
        agree (`callable`, *optional*): maps this process's elapsed seconds to the value every process uses (the
            main process's), so that processes keep the same learning rate and stop at the same step.

    Call :meth:`start` when training starts (with the seconds a resumed run had already spent), then
    :meth:`update` with the index of the step about to run; :attr:`position` and :attr:`out_of_time` then hold.
    """

    def __init__(
        self,
        max_steps: int,
        budget_seconds: float | None = None,
        *,
        follow_budget: bool = True,
        clock: Callable[[], float] = time.perf_counter,
        agree: Callable[[float], float] | None = None,
    ):
        check_int("max_steps", max_steps)
        if budget_seconds is not None and not budget_seconds > 0:
            raise ValueError(f"budget_seconds must be > 0 or None, got {budget_seconds!r}")
        self.max_steps, self.budget_seconds, self.follow_budget = max_steps, budget_seconds, follow_budget
        self._clock, self._agree = clock, agree
        self._started: float | None = None
        self.elapsed = 0.0  # seconds spent, as of the last update (all processes agree on it)
        self.position = 0.0

    @property
    def budget_driven(self) -> bool:
        """Whether the time budget moves the schedules."""
        return self.budget_seconds is not None and self.follow_budget

    def start(self, elapsed_before: float = 0.0) -> None:
        """Start the clock; ``elapsed_before`` is the time a resumed run had already spent."""
        if self.budget_seconds is not None:  # without a budget the clock is never read
            self._started = self._clock() - elapsed_before
        self.elapsed = elapsed_before

    def update(self, step: int) -> float:
        """The position for optimizer step ``step`` (0-based: the step about to run), stored in :attr:`position`."""
        position = float(step)
        if self.budget_seconds is not None:
            if self._started is None:
                raise RuntimeError("RunProgress.update() before start()")
            elapsed = self._clock() - self._started
            self.elapsed = elapsed if self._agree is None else self._agree(elapsed)
            if self.follow_budget:
                position = max(position, self.max_steps * self.elapsed / self.budget_seconds)
        self.position = min(position, float(self.max_steps))
        return self.position

    @property
    def out_of_time(self) -> bool:
        """Whether the budget was spent at the last :meth:`update`."""
        return self.budget_seconds is not None and self.elapsed >= self.budget_seconds


def learning_rate_factor(
    scheduler_type: str, learning_rate: float, warmup_steps: int, max_steps: int
) -> Callable[[float], float]:
    """transformers' learning-rate schedule ``scheduler_type`` as a function of a (float) position in steps.

    Returns ``factor(position)``, the multiple of the base learning rate at that position: exactly what
    ``transformers.get_scheduler(scheduler_type, ...)`` gives at the integer steps, so a step-driven run keeps
    transformers' schedule, and a budget-driven one follows it by :class:`RunProgress`'s position.
    """
    from transformers import get_scheduler

    # The schedules are LambdaLR multipliers that depend on nothing but their arguments (polynomial decay reads
    # the optimizer's base learning rate, hence the real one).
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=learning_rate)
    scheduler = get_scheduler(
        scheduler_type, probe, num_warmup_steps=warmup_steps, num_training_steps=max_steps
    )
    return scheduler.lr_lambdas[0]
