import collections
import itertools
import math
import random
import subprocess
import sys

import pytest

from providers.base import GitSource, ImageReference
from revision_controller.cadence import (
    BACKOFF_CAP,
    BACKOFF_JITTER,
    FIRST_POLL_WITHIN,
    PERMANENT_WAIT,
    Cadence,
    PollOutcome,
    phase_fraction,
)
from revision_controller.targets import GitTarget, ImageTarget, SecretRef

NOW = 1_700_000_000.0  # an epoch-sized clock, as the scheduler's
POLL_SECONDS = 0.3


def git_target(number: int) -> GitTarget:
    return GitTarget(GitSource("github", "https://api.github.com", f"owner-{number}/repo"), "main")


def busiest_second(times: list[float]) -> int:
    return max(collections.Counter(math.floor(time) for time in times).values())


def steady_polls(cadence: Cadence, start: float, until: float) -> list[float]:
    """When a target that always answers is polled, from its planning at `start` until `until`."""
    times, due = [], cadence.first_due(start)
    while due < until:
        times.append(due)
        cadence, due = cadence.after(PollOutcome.OK, due, due + POLL_SECONDS, 0.0)
    return times


def off_phase(cadence: Cadence, time: float) -> float:
    """How far `time` is from the nearest of the target's phase points."""
    return abs(time - cadence.phase_point(time - cadence.period / 2))


def test_a_thousand_targets_spread_evenly_over_their_interval() -> None:
    interval, hour = 60.0, 3600.0
    polls = [time for number in range(1000)
             for time in steady_polls(Cadence.of(git_target(number), interval), NOW, NOW + hour)]
    steady = [time for time in polls if time >= NOW + interval]
    mean_per_second = len(steady) / (hour - interval)
    assert mean_per_second == pytest.approx(1000 / interval, rel=0.01)
    assert busiest_second(steady) <= 2 * mean_per_second


def test_first_polls_come_within_ten_seconds_and_spread() -> None:
    firsts = [Cadence.of(git_target(number), 3600).first_due(NOW) - NOW for number in range(1000)]
    assert all(0 <= delay < FIRST_POLL_WITHIN for delay in firsts)
    assert busiest_second([NOW + delay for delay in firsts]) <= 2 * 1000 / FIRST_POLL_WITHIN


def test_a_short_interval_is_first_polled_within_it() -> None:
    cadence = Cadence.of(git_target(1), 2.0)
    assert NOW <= cadence.first_due(NOW) < NOW + 2.0


def test_the_phase_is_the_same_in_another_process() -> None:
    target = ImageTarget(ImageReference("ghcr.io", "openfunction/sample"), credentials=SecretRef("default", "pull"))
    script = ("from providers.base import ImageReference\n"
              "from revision_controller.cadence import phase_fraction\n"
              "from revision_controller.targets import ImageTarget, SecretRef\n"
              "print(repr(phase_fraction(ImageTarget(ImageReference('ghcr.io', 'openfunction/sample'),"
              " credentials=SecretRef('default', 'pull')))))")
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30,
                           env={"PYTHONHASHSEED": "12345"})
    assert float(other.stdout) == phase_fraction(target)


def test_targets_that_differ_poll_at_different_phases() -> None:
    fractions = {phase_fraction(git_target(number)) for number in range(100)}
    assert len(fractions) == 100 and all(0 <= fraction < 1 for fraction in fractions)
    with_secret = GitTarget(git_target(1).source, "main", SecretRef("default", "token"))
    assert phase_fraction(with_secret) != phase_fraction(git_target(1))


def test_after_the_first_poll_polls_lock_onto_the_phase_one_interval_apart() -> None:
    cadence = Cadence.of(git_target(7), 30.0)
    polls = steady_polls(cadence, NOW, NOW + 600)
    assert all(off_phase(cadence, time) < 1e-6 for time in polls[1:])
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    assert 15.0 <= gaps[0] < 45.0
    assert gaps[1:] == pytest.approx([30.0] * (len(gaps) - 1))


def test_a_poll_longer_than_half_the_interval_still_keeps_the_phase() -> None:
    cadence = Cadence.of(git_target(3), 10.0)
    start = cadence.phase_point(NOW)
    _, due = cadence.after(PollOutcome.OK, start, start + 7.0, 0.0)
    assert due == pytest.approx(start + 10.0)
    _, overrun = cadence.after(PollOutcome.OK, start, start + 12.0, 0.0)
    assert overrun == pytest.approx(start + 20.0)


def test_transient_failures_back_off_doubling_up_to_the_cap() -> None:
    cadence, finished, waits = Cadence.of(git_target(1), 5.0), NOW, []
    for _ in range(9):
        cadence, due = cadence.after(PollOutcome.TRANSIENT, finished - POLL_SECONDS, finished, 0.0)
        waits.append(due - finished)
    assert waits == pytest.approx([10, 20, 40, 80, 160, 320, BACKOFF_CAP, BACKOFF_CAP, BACKOFF_CAP])
    assert cadence.failures == 9


def test_a_backoff_is_never_shorter_than_the_interval() -> None:
    cadence = Cadence.of(git_target(1), 1200.0)
    for _ in range(3):
        cadence, due = cadence.after(PollOutcome.TRANSIENT, NOW, NOW, 0.0)
        assert due - NOW == pytest.approx(1200.0)


def test_a_backoff_is_jittered_by_at_most_a_tenth() -> None:
    cadence = Cadence.of(git_target(1), 5.0)
    draw = random.Random(5).uniform
    draws = [draw(-1, 1) for _ in range(200)]
    waits = [cadence.after(PollOutcome.TRANSIENT, NOW, NOW, draw)[1] - NOW for draw in draws]
    assert all(10 * (1 - BACKOFF_JITTER) - 1e-9 <= wait <= 10 * (1 + BACKOFF_JITTER) + 1e-9 for wait in waits)
    assert min(waits) < 9.2 and max(waits) > 10.8
    assert cadence.after(PollOutcome.TRANSIENT, NOW, NOW, -1.0)[1] - NOW == pytest.approx(9.0)
    assert cadence.after(PollOutcome.TRANSIENT, NOW, NOW, 1.0)[1] - NOW == pytest.approx(11.0)


def test_a_transient_failure_that_asks_for_a_wait_waits_at_least_that_long() -> None:
    cadence = Cadence.of(git_target(1), 5.0)
    _, due = cadence.after(PollOutcome("transient", 120.0), NOW, NOW, 1.0)
    assert due == pytest.approx(NOW + 120.0)
    failing, due = cadence.after(PollOutcome("transient", 1.0), NOW, NOW, 0.0)
    assert due == pytest.approx(NOW + 10.0) and failing.failures == 1


def test_a_permanent_failure_waits_ten_minutes_or_the_interval_if_longer() -> None:
    short, due = Cadence.of(git_target(1), 5.0).after(PollOutcome.PERMANENT, NOW, NOW + 1, 0.5)
    assert due == pytest.approx(NOW + 1 + PERMANENT_WAIT) and short.failures == 1
    _, due = Cadence.of(git_target(1), 3600.0).after(PollOutcome.PERMANENT, NOW, NOW + 1, 0.5)
    assert due == pytest.approx(NOW + 1 + 3600.0)


def test_a_deferred_poll_waits_as_asked_but_is_no_failure() -> None:
    cadence = Cadence.of(git_target(2), 30.0)
    start = cadence.phase_point(NOW)
    later, due = cadence.after(PollOutcome.deferred(95.0), start, start + 1, 0.0)
    assert due == pytest.approx(start + 1 + 95.0) and later.failures == 0
    _, due = cadence.after(PollOutcome.deferred(2.0), start, start + 1, 0.0)
    assert due == pytest.approx(start + 30.0)


def test_recovery_returns_to_the_phase() -> None:
    cadence = Cadence.of(git_target(5), 30.0)
    finished = NOW
    for _ in range(3):
        cadence, finished = cadence.after(PollOutcome.TRANSIENT, finished, finished, 0.7)
    assert cadence.backing_off
    cadence, due = cadence.after(PollOutcome.OK, finished, finished + 1, 0.0)
    assert not cadence.backing_off
    assert off_phase(cadence, due) < 1e-6 and finished + 15 <= due < finished + 45
    _, again = cadence.after(PollOutcome.TRANSIENT, due, due, 0.0)
    assert again - due == pytest.approx(60.0)  # the failures in a row start again from one


def test_a_stretch_lengthens_the_period_and_never_shortens_it() -> None:
    plain = Cadence.of(git_target(6), 30.0)
    stretched = Cadence(plain.interval, plain.fraction, stretch=3.0)
    assert stretched.period == 90.0
    assert Cadence(plain.interval, plain.fraction, stretch=0.5).period == 30.0
    polls = steady_polls(stretched, NOW, NOW + 900)
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls[1:])]
    assert gaps == pytest.approx([90.0] * len(gaps))
    _, due = stretched.after(PollOutcome.TRANSIENT, NOW, NOW, 0.0)
    assert due - NOW == pytest.approx(180.0)


def test_outcomes_say_whether_they_failed() -> None:
    assert [outcome.failed for outcome in (PollOutcome.OK, PollOutcome.deferred(1), PollOutcome.TRANSIENT,
                                           PollOutcome.PERMANENT)] == [False, False, True, True]
