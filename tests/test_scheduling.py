import threading
import time
from collections.abc import Callable

from providers.base import GitSource
from revision_controller.scheduling import TargetScheduler, jitter_for
from revision_controller.targets import GitTarget

A = GitTarget(GitSource("git", "", "http://127.0.0.1/a.git"), "main")
B = GitTarget(GitSource("git", "", "http://127.0.0.1/b.git"), "main")


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Recorder:
    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.polls: list[tuple[GitTarget, float]] = []
        self.dropped: list[GitTarget] = []
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def poll(self, target: GitTarget) -> None:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.polls.append((target, time.monotonic()))
        time.sleep(self.hold)
        with self._lock:
            self.running -= 1

    def count(self, target: GitTarget) -> int:
        return sum(1 for polled, _ in self.polls if polled == target)


def scheduler(recorder: Recorder, workers: int = 4) -> TargetScheduler:
    planned = TargetScheduler(recorder.poll, recorder.dropped.append, workers)
    planned.start()
    return planned


def test_a_new_target_is_polled_at_once_then_every_interval() -> None:
    recorder = Recorder()
    planned = scheduler(recorder)
    try:
        started = time.monotonic()
        planned.replan(A, 0.2)
        wait_for(lambda: recorder.count(A) >= 1)
        assert recorder.polls[0][1] - started < 0.5
        wait_for(lambda: recorder.count(A) >= 4)
        gaps = [b - a for (_, a), (_, b) in zip(recorder.polls, recorder.polls[1:])]
        assert all(0.15 < gap < 0.2 + jitter_for(0.2) + 0.15 for gap in gaps), gaps
    finally:
        planned.shutdown()


def test_shortening_the_interval_takes_effect_without_waiting_for_the_old_one() -> None:
    recorder = Recorder()
    planned = scheduler(recorder)
    try:
        planned.replan(A, 3600)
        wait_for(lambda: recorder.count(A) == 1)
        planned.replan(A, 0.1)
        assert planned.planned() == {A: 0.1}
        wait_for(lambda: recorder.count(A) >= 3, seconds=2)
    finally:
        planned.shutdown()


def test_a_target_nobody_wants_stops_being_polled_and_is_dropped() -> None:
    recorder = Recorder()
    planned = scheduler(recorder)
    try:
        planned.replan(A, 0.1)
        wait_for(lambda: recorder.count(A) >= 2)
        planned.replan(A, None)
        assert recorder.dropped == [A] and planned.planned() == {}
        settled = recorder.count(A)
        planned.replan(B, 0.1)  # proves the scheduler kept running while A stayed quiet
        wait_for(lambda: recorder.count(B) >= 3)
        assert recorder.count(A) <= settled + 1  # at most the run already under way
    finally:
        planned.shutdown()


def test_a_slow_target_is_never_polled_twice_at_once() -> None:
    recorder = Recorder(hold=0.35)
    planned = scheduler(recorder)
    try:
        planned.replan(A, 0.1)
        wait_for(lambda: recorder.count(A) >= 3, seconds=5)
        assert recorder.most_at_once == 1
    finally:
        planned.shutdown()


def test_the_worker_pool_bounds_polls_across_targets() -> None:
    recorder = Recorder(hold=0.3)
    planned = scheduler(recorder, workers=1)
    try:
        planned.replan(A, 0.1)
        planned.replan(B, 0.1)
        wait_for(lambda: recorder.count(A) >= 2 and recorder.count(B) >= 2, seconds=5)
        assert recorder.most_at_once == 1
    finally:
        planned.shutdown()


def test_jitter_is_small_next_to_the_interval() -> None:
    assert jitter_for(2) == 0.2
    assert jitter_for(3600) == 1.0
