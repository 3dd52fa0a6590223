import itertools
import logging
import threading
import time
from collections.abc import Callable

import pytest

from providers.base import GitSource
from revision_controller.cadence import PollOutcome, phase_fraction
from revision_controller.scheduling import TargetScheduler
from revision_controller.targets import GitTarget, Target


def target(name: str) -> GitTarget:
    return GitTarget(GitSource("git", "", f"http://127.0.0.1/{name}.git"), "main")


def prompt(name: str) -> GitTarget:
    """A target early in its interval: first polled within 0.2 s of planning even on a long interval."""
    for number in itertools.count():
        candidate = target(f"{name}-{number}")
        if phase_fraction(candidate) < 0.02:
            return candidate
    raise AssertionError("unreachable")


A, B = prompt("a"), prompt("b")


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


class Recorder:
    """A poll that records when it ran; it can hold each poll, or block it until released."""

    def __init__(self, hold: float = 0.0, outcome: Callable[[Target], PollOutcome] = lambda _: PollOutcome.OK) -> None:
        self.hold = hold
        self.outcome = outcome
        self.released = threading.Event()
        self.released.set()
        self.polls: list[tuple[Target, float]] = []
        self.finished: list[Target] = []
        self.dropped: list[Target] = []
        self.late: list[tuple[Target, float]] = []
        self.overlaps: list[Target] = []
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def poll(self, polled: Target) -> PollOutcome:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.polls.append((polled, time.monotonic()))
        self.released.wait(10)
        time.sleep(self.hold)  # the poll's own work, e.g. a slow server
        with self._lock:
            self.running -= 1
            self.finished.append(polled)
        return self.outcome(polled)

    def count(self, polled: Target) -> int:
        with self._lock:
            return sum(1 for one, _ in self.polls if one == polled)

    def times(self, polled: Target) -> list[float]:
        with self._lock:
            return [at for one, at in self.polls if one == polled]


def scheduler(recorder: Recorder, workers: int = 4, poll: Callable[[Target], PollOutcome] | None = None,
              **options: object) -> TargetScheduler:
    planned = TargetScheduler(poll or recorder.poll, recorder.dropped.append, workers,
                              on_late=lambda late, seconds: recorder.late.append((late, seconds)),
                              on_overlap=recorder.overlaps.append, **options)  # type: ignore[arg-type]
    planned.start()
    return planned


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_a_new_target_is_polled_within_its_interval_then_on_its_phase() -> None:
    interval, phased = 0.4, target("phase")
    recorder, wall_times = Recorder(hold=0.15), []

    def poll(polled: Target) -> PollOutcome:
        wall_times.append(time.time())
        return recorder.poll(polled)

    planned = scheduler(recorder, poll=poll)
    try:
        planned_at = time.monotonic()
        planned.replan(phased, interval)
        wait_for(lambda: recorder.count(phased) >= 5)
        first, *rest = recorder.times(phased)
        assert first - planned_at < interval + 0.2
        gaps = [later - earlier for earlier, later in itertools.pairwise(rest)]
        assert all(interval - 0.15 < gap < interval + 0.15 for gap in gaps), gaps
        # the phase is a fixed point of each interval on the wall clock, the same after a restart
        offsets = [(at - phase_fraction(phased) * interval) % interval for at in wall_times[1:]]
        assert all(min(offset, interval - offset) < 0.12 for offset in offsets), offsets
    finally:
        planned.shutdown()


def test_a_stretch_lengthens_the_interval(recorder: Recorder) -> None:
    planned = scheduler(recorder, stretch=lambda _: 3.0)
    try:
        planned.replan(A, 0.1)
        wait_for(lambda: recorder.count(A) >= 4)
        times = recorder.times(A)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times[1:])]
        assert all(0.25 < gap < 0.45 for gap in gaps), gaps
        assert planned.planned() == {A: 0.1}
    finally:
        planned.shutdown()


def test_shortening_the_interval_takes_effect_without_waiting_for_the_old_one(recorder: Recorder) -> None:
    planned = scheduler(recorder)
    try:
        planned.replan(A, 3600)
        wait_for(lambda: recorder.count(A) == 1)
        planned.replan(A, 0.1)
        assert planned.planned() == {A: 0.1}
        wait_for(lambda: recorder.count(A) >= 3, seconds=2)
    finally:
        planned.shutdown()


def test_a_target_nobody_wants_stops_being_polled_and_is_dropped_once(recorder: Recorder) -> None:
    planned = scheduler(recorder)
    try:
        planned.replan(A, 0.1)
        wait_for(lambda: recorder.count(A) >= 2)
        planned.replan(A, None)
        planned.replan(A, None)
        assert recorder.dropped == [A] and planned.planned() == {}
        settled = recorder.count(A)
        planned.replan(B, 0.1)  # a witness: proves the scheduler kept running while A stayed quiet
        wait_for(lambda: recorder.count(B) >= 4)
        assert recorder.count(A) <= settled + 1  # at most the poll already handed over
    finally:
        planned.shutdown()


def test_a_target_dropped_during_its_poll_is_not_planned_again(recorder: Recorder) -> None:
    planned = scheduler(recorder)
    try:
        recorder.released.clear()
        planned.replan(A, 0.1)
        wait_for(lambda: recorder.running == 1)
        planned.replan(A, None)
        recorder.released.set()
        planned.replan(B, 0.1)
        wait_for(lambda: recorder.count(B) >= 4)
        assert recorder.count(A) == 1 and planned.planned() == {B: 0.1}
    finally:
        planned.shutdown()


def test_a_slow_target_is_never_polled_twice_at_once_and_the_skipped_turn_is_reported() -> None:
    recorder = Recorder(hold=0.35)
    planned = scheduler(recorder)
    try:
        planned.replan(A, 0.1)
        wait_for(lambda: recorder.count(A) >= 3)
        assert recorder.most_at_once == 1
        assert recorder.overlaps and set(recorder.overlaps) == {A}
    finally:
        planned.shutdown()


def test_a_failing_overlap_callback_does_not_stop_the_scheduler() -> None:
    recorder = Recorder(hold=0.15)

    def overlap(_: Target) -> None:
        raise RuntimeError("a bug in the callback")

    planned = TargetScheduler(recorder.poll, recorder.dropped.append, 2, on_overlap=overlap)
    planned.start()
    try:
        planned.replan(A, 0.1)
        wait_for(lambda: recorder.count(A) >= 3)
        assert planned.running
    finally:
        planned.shutdown()


def test_the_worker_pool_bounds_polls_across_targets() -> None:
    recorder = Recorder(hold=0.2)
    planned = scheduler(recorder, workers=1)
    try:
        planned.replan(A, 0.1)
        planned.replan(B, 0.1)
        wait_for(lambda: recorder.count(A) >= 2 and recorder.count(B) >= 2)
        assert recorder.most_at_once == 1
    finally:
        planned.shutdown()


def test_a_poll_that_starts_late_because_the_workers_are_busy_is_reported() -> None:
    recorder, slow_started = Recorder(), threading.Event()

    def poll(polled: Target) -> PollOutcome:
        if polled == A:
            slow_started.set()
            time.sleep(1.4)  # a slow server, keeping the only worker busy
        return recorder.poll(polled)

    planned = scheduler(recorder, workers=1, poll=poll)
    try:
        planned.replan(A, 5.0)
        assert slow_started.wait(5)
        planned.replan(B, 5.0)
        wait_for(lambda: recorder.count(B) == 1)
        assert [late for late, _ in recorder.late] == [B]
        assert recorder.late[0][1] > 1.0
    finally:
        planned.shutdown()


def test_a_paused_scheduler_polls_nothing_and_catches_up_on_resume(recorder: Recorder) -> None:
    planned = TargetScheduler(recorder.poll, recorder.dropped.append, 2)
    planned.replan(A, 0.1)
    planned.start(paused=True)
    try:
        assert planned.running and not planned.polling
        time.sleep(0.3)  # three intervals in which A must stay quiet
        assert recorder.count(A) == 0
        planned.resume()
        assert planned.polling
        wait_for(lambda: recorder.count(A) >= 2, seconds=2)
        planned.pause()
        assert not planned.polling
        wait_for(lambda: recorder.running == 0)
        paused_at, settled = time.monotonic(), recorder.count(A)
        time.sleep(0.3)
        assert recorder.count(A) <= settled + 1  # at most a poll handed over as the pause came
        planned.resume()
        wait_for(lambda: recorder.count(A) > settled + 1, seconds=2)
        assert recorder.times(A)[-1] - paused_at < 1.0
    finally:
        planned.shutdown()
    assert not planned.running and not planned.polling


def test_waking_a_target_that_backs_off_polls_it_at_once() -> None:
    recorder = Recorder(outcome=lambda polled: PollOutcome.PERMANENT if polled == A else PollOutcome.OK)
    planned = scheduler(recorder)
    try:
        planned.replan(A, 0.1)
        planned.replan(B, 3600)
        wait_for(lambda: recorder.finished.count(A) == 1 and recorder.finished.count(B) == 1)
        planned.wake(B)  # healthy: it keeps its cadence
        planned.wake(A)
        planned.wake(target("never planned"))
        wait_for(lambda: recorder.count(A) == 2, seconds=2)
        planned.replan(target("witness"), 0.1)  # A and B must stay quiet while the witness polls on
        wait_for(lambda: recorder.count(target("witness")) >= 4)
        assert recorder.count(A) == 2 and recorder.count(B) == 1
    finally:
        planned.shutdown()


def assert_asked_during_its_poll_is_polled_again_after_it(recorder: Recorder,
                                                          ask: Callable[[TargetScheduler, Target], object]) -> None:
    """`ask` for A while its first poll is held: A is polled once more, never twice at once."""
    planned = scheduler(recorder)
    try:
        recorder.released.clear()
        planned.replan(A, 3600)
        wait_for(lambda: recorder.running == 1)
        ask(planned, A)
        recorder.released.set()
        wait_for(lambda: recorder.count(A) == 2, seconds=2)
        assert recorder.most_at_once == 1
    finally:
        planned.shutdown()


def test_waking_a_target_during_a_poll_that_then_fails_polls_it_again(recorder: Recorder) -> None:
    recorder.outcome = lambda _: PollOutcome.PERMANENT
    assert_asked_during_its_poll_is_polled_again_after_it(recorder, TargetScheduler.wake)


def test_poll_now_polls_at_once_then_keeps_the_cadence(recorder: Recorder) -> None:
    planned = scheduler(recorder)
    try:
        planned.replan(A, 3600)
        wait_for(lambda: recorder.count(A) == 1)
        assert planned.poll_now(A) is True
        wait_for(lambda: recorder.count(A) == 2, seconds=1)
        planned.replan(B, 0.1)  # a witness: A must stay quiet while B polls on
        wait_for(lambda: recorder.count(B) >= 5)
        assert recorder.count(A) == 2
        assert planned.poll_now(target("never planned")) is False
    finally:
        planned.shutdown()


def test_after_a_poll_out_of_turn_the_next_comes_a_full_period_later_not_at_the_next_phase_point(
        recorder: Recorder) -> None:
    period = 1.0
    planned = scheduler(recorder)
    try:
        planned.replan(A, period)
        wait_for(lambda: recorder.count(A) == 2, seconds=5)
        last = recorder.times(A)[-1]
        wait_for(lambda: time.monotonic() > last + 0.4 * period)  # the next phase point is 0.6 s away
        assert planned.poll_now(A) is True
        wait_for(lambda: recorder.count(A) == 4, seconds=5)
        prompted, after = recorder.times(A)[2:4]
        assert after - prompted >= 0.9 * period
    finally:
        planned.shutdown()


def test_poll_now_during_a_poll_polls_again_right_after_it(recorder: Recorder) -> None:
    assert_asked_during_its_poll_is_polled_again_after_it(recorder, TargetScheduler.poll_now)


def test_a_poll_that_raises_is_logged_and_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()

    def poll(polled: Target) -> PollOutcome:
        if polled == A:
            raise RuntimeError("a bug in the poll")
        return recorder.poll(polled)

    planned = TargetScheduler(poll, recorder.dropped.append, 1)
    planned.start()
    try:
        with caplog.at_level(logging.ERROR, logger="revision_controller.scheduling"):
            planned.replan(A, 0.1)
            planned.replan(B, 0.1)
            wait_for(lambda: recorder.count(B) >= 5)
        failures = [record for record in caplog.records if A.describe() in record.getMessage()]
        assert failures and failures[0].exc_info is not None
        assert len(failures) < recorder.count(B)  # A backs off as after a transient failure
    finally:
        planned.shutdown()


def test_shutdown_waits_for_the_polls_under_way() -> None:
    recorder = Recorder(hold=0.4)
    planned = scheduler(recorder)
    planned.replan(A, 0.1)
    wait_for(lambda: recorder.running == 1)
    planned.shutdown()
    assert recorder.running == 0 and recorder.finished == [A]
    assert not planned.running


def test_shutdown_gives_up_on_a_poll_that_hangs(recorder: Recorder) -> None:
    recorder.released.clear()
    planned = scheduler(recorder, shutdown_timeout=0.3)
    try:
        planned.replan(A, 0.1)
        wait_for(lambda: recorder.running == 1)
        asked = time.monotonic()
        planned.shutdown()
        assert time.monotonic() - asked < 2.0 and recorder.running == 1
    finally:
        recorder.released.set()
