"""ThreadTuner: the CPU thread count chosen from step times, driven here by synthetic step times (no clock)."""

from __future__ import annotations

import pytest

from bidirectional_conv_lstm.utils.threads import ThreadTuner


class FakeMachine:
    """Step times by thread count, which a test changes to model load arriving or leaving."""

    def __init__(self, seconds: dict[int, float]):
        self.seconds, self.threads, self.history = dict(seconds), None, []

    def set_num_threads(self, threads: int) -> None:
        self.threads = threads

    def run(self, tuner: ThreadTuner, steps: int) -> list[int]:
        """``steps`` steps; returns the thread count each ran at."""
        used = []
        for _ in range(steps):
            used.append(self.threads)
            tuner.record(self.seconds[self.threads])
        self.history += used
        return used


QUIET = {2: 0.4, 1: 0.7}  # two threads ~1.75x one
BUSY = {2: 15.0, 1: 0.75}  # a process busy on one of the two cores: two threads wait for time slices


def tuner_for(machine: FakeMachine, **options) -> ThreadTuner:
    return ThreadTuner(2, set_num_threads=machine.set_num_threads, **options)


def test_quiet_machine_keeps_all_threads_after_one_short_probe():
    machine = FakeMachine(QUIET)
    tuner = tuner_for(machine)
    used = machine.run(tuner, 500)
    # warm-up 3 steps and 2 probe steps at 2 threads, then 1 thread for a single step (1.75x slower: dropped)
    assert used[:6] == [2, 2, 2, 2, 2, 1]
    assert used[6:] == [2] * 494 and tuner.threads == 2 and tuner.changes == []


def test_busy_core_from_the_start_moves_to_one_thread():
    machine = FakeMachine(BUSY)
    tuner = tuner_for(machine)
    used = machine.run(tuner, 100)
    assert used[5:] == [1] * 95
    assert tuner.changes[0][:2] == (7, 1) and "2: 15 s" in tuner.changes[0][2]


def test_load_arriving_mid_run_is_noticed_within_a_window():
    machine = FakeMachine(QUIET)
    tuner = tuner_for(machine, window=5)
    machine.run(tuner, 50)
    machine.seconds = BUSY
    used = machine.run(tuner, 20)
    # three slow steps make the median of the last five slow; they measure 2 threads, so 1 thread is tried at once
    assert used[:3] == [2] * 3 and used[3:] == [1] * 17
    assert tuner.threads == 1


def test_load_leaving_is_found_by_rechecks_that_come_less_often_while_it_stays():
    machine = FakeMachine(BUSY)
    tuner = tuner_for(machine, recheck_steps=100)
    machine.run(tuner, 400)
    # each recheck costs one slow step at 2 threads; the second comes 200 steps after the first
    two_thread_steps = [index for index, threads in enumerate(machine.history) if threads == 2]
    rechecks = [index for index in two_thread_steps if index > 10]
    assert len(rechecks) == 2 and rechecks[1] - rechecks[0] > 150
    machine.seconds = QUIET
    machine.run(tuner, 500)
    assert tuner.threads == 2 and machine.history[-1] == 2


def test_candidates_and_a_single_thread_machine():
    assert ThreadTuner(8, set_num_threads=lambda n: None).candidates == [8, 7, 4, 1]
    calls = []
    single = ThreadTuner(1, set_num_threads=calls.append)
    for _ in range(20):
        single.record(1.0)
    assert not single.active and calls == [1] and single.threads == 1


def test_log_names_the_change():
    lines, machine = [], FakeMachine(BUSY)
    machine.run(ThreadTuner(2, set_num_threads=machine.set_num_threads, log=lines.append), 10)
    assert lines == [lines[0]] and lines[0].startswith("CPU threads 2 -> 1 at step 7")


@pytest.mark.parametrize(
    "options, name",
    [
        (dict(max_threads=0), "max_threads"),
        (dict(probe_steps=0), "probe_steps"),
        (dict(warmup_steps=-1), "warmup_steps"),
        (dict(slowdown=1.0), "slowdown"),
        (dict(tolerance=-0.1), "tolerance"),
    ],
)
def test_bad_arguments_name_themselves(options, name):
    with pytest.raises(ValueError, match=name):
        ThreadTuner(**{"max_threads": 2, **options}, set_num_threads=lambda n: None)
