"""Polling targets: a heap of due times, one dispatcher thread, a bounded pool of workers.

When each target is due is decided in `cadence`; here the decisions are carried out.
The dispatcher hands the earliest due target to an idle worker; a target is never
polled twice at once, and a poll whose time comes while the previous one still runs
is skipped. Due times read a monotonic clock shifted to the epoch once, so that
phases line up with wall-clock time (and so survive restarts) while a clock step
never disturbs them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from revision_controller.cadence import Cadence, PollOutcome
from revision_controller.duration import format_duration
from revision_controller.targets import Target

DEFAULT_SHUTDOWN_TIMEOUT = 30.0
LATE_AFTER_SECONDS = 1.0
LATE_AFTER_FRACTION = 0.1

log = logging.getLogger(__name__)

State = Literal["new", "polling", "paused", "stopped"]


def _no_stretch(target: Target) -> float:
    return 1.0


def _ignore_late(target: Target, seconds_late: float) -> None:
    pass


def _ignore_overlap(target: Target) -> None:
    pass


def epoch_clock() -> Callable[[], float]:
    offset = time.time() - time.monotonic()
    return lambda: time.monotonic() + offset


def late_after(period: float) -> float:
    return max(LATE_AFTER_SECONDS, LATE_AFTER_FRACTION * period)


@dataclass(slots=True)
class _Plan:
    """One target's place in the schedule. `entry` names its one live heap entry; older
    entries are skipped when they surface."""

    cadence: Cadence
    due: float
    entry: int
    running: bool = False
    again: bool = False  # poll_now() during a poll: poll once more when it ends
    woken: bool = False  # wake() during a poll: if it fails, poll again at once
    out_of_turn: bool = False  # poll_now(): the next poll is out of turn, the one after a full period later


@dataclass(frozen=True, slots=True)
class _Job:
    target: Target
    plan: _Plan
    due: float
    out_of_turn: bool = False


class TargetScheduler:
    def __init__(self, poll: Callable[[Target], PollOutcome], on_dropped: Callable[[Target], None],
                 workers: int, *, stretch: Callable[[Target], float] = _no_stretch,
                 on_late: Callable[[Target, float], None] = _ignore_late,
                 on_overlap: Callable[[Target], None] = _ignore_overlap,
                 shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        self._poll = poll
        self._on_dropped = on_dropped
        self._stretch = stretch
        self._on_late = on_late
        self._on_overlap = on_overlap
        self._workers = workers
        self._shutdown_timeout = shutdown_timeout
        self._clock = epoch_clock()
        self._random = random.Random()
        self._changed = threading.Condition()
        self._state: State = "new"
        self._plans: dict[Target, _Plan] = {}
        self._heap: list[tuple[float, int, Target]] = []
        self._entries = itertools.count()
        self._idle = workers
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self, paused: bool = False) -> None:
        """Start the scheduler; a paused one (a standby replica) keeps its plan but polls nothing."""
        with self._changed:
            if self._state != "new":
                raise RuntimeError("the scheduler was already started")
            self._state = "paused" if paused else "polling"
            self._spread_overdue()
        self._threads = [threading.Thread(target=self._dispatch, name="scheduler", daemon=True)]
        self._threads += [threading.Thread(target=self._work, name=f"poller-{number}", daemon=True)
                          for number in range(1, self._workers + 1)]
        for thread in self._threads:
            thread.start()

    def pause(self) -> None:
        with self._changed:
            if self._state == "polling":
                self._state = "paused"

    def resume(self) -> None:
        """Poll again; targets whose time came while paused are polled at once, spread over a few
        seconds."""
        with self._changed:
            if self._state == "paused":
                self._state = "polling"
                self._spread_overdue()
                self._changed.notify_all()

    def shutdown(self) -> None:
        """Stop scheduling and wait, for a bounded time, for the polls under way to finish."""
        with self._changed:
            was = self._state
            self._state = "stopped"
            self._changed.notify_all()
        if was not in ("polling", "paused"):
            return
        for _ in range(self._workers):
            self._jobs.put(None)
        deadline = time.monotonic() + self._shutdown_timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        unfinished = sum(thread.is_alive() for thread in self._threads)
        if unfinished:
            log.warning("stopped waiting for %d polls still under way after %s", unfinished,
                        format_duration(self._shutdown_timeout))

    @property
    def polling(self) -> bool:
        return self._state == "polling" and self._dispatcher_alive()

    @property
    def running(self) -> bool:
        """Started and not shut down, polling or paused."""
        return self._state in ("polling", "paused") and self._dispatcher_alive()

    def _dispatcher_alive(self) -> bool:
        return bool(self._threads) and self._threads[0].is_alive()

    def planned(self) -> dict[Target, float]:
        with self._changed:
            return {target: plan.cadence.interval for target, plan in self._plans.items()}

    def replan(self, target: Target, interval: float | None) -> None:
        """Poll `target` every `interval` seconds from now on, or stop polling it (None).

        A new target is polled within a few seconds; a changed interval moves it to its phase in the new one."""
        with self._changed:
            plan = self._plans.get(target)
            if interval is None:
                if plan:
                    del self._plans[target]
            elif plan is None:
                cadence = Cadence.of(target, interval)
                self._plans[target] = plan = _Plan(cadence, 0.0, 0)
                self._schedule(target, plan, cadence.first_due(self._clock()))
            elif plan.cadence.interval != interval:
                plan.cadence = replace(plan.cadence, interval=interval)
                self._schedule(target, plan, plan.cadence.phase_point(self._clock()))
            else:
                return
        if interval is None:
            if plan:
                self._on_dropped(target)
                log.info("stopped polling %s: no Function subscribes to it", target.describe())
        else:
            log.info("polling %s every %s", target.describe(), format_duration(interval))

    def wake(self, target: Target) -> None:
        """Poll now a target that is backing off after failures (its Function or Secret changed);
        one polled at this moment is polled again at once if this poll fails."""
        with self._changed:
            plan = self._plans.get(target)
            if plan is None:
                return
            if plan.running:
                plan.woken = True
            elif plan.cadence.backing_off:
                self._schedule(target, plan, self._clock())

    def poll_now(self, target: Target) -> bool:
        """Poll a planned target at once (after the poll under way, if any), and the next time a full
        period after that poll; then on its phase again. False when the target is not planned."""
        with self._changed:
            plan = self._plans.get(target)
            if plan is None:
                return False
            plan.out_of_turn = True
            if plan.running:
                plan.again = True
            else:
                self._schedule(target, plan, self._clock())
            return True

    def _schedule(self, target: Target, plan: _Plan, due: float) -> None:
        """Set a plan's due time. Call with the lock held."""
        plan.due, plan.entry = due, next(self._entries)
        heapq.heappush(self._heap, (due, plan.entry, target))
        if len(self._heap) > 2 * len(self._plans) + 64:
            self._heap = [(plan.due, plan.entry, target) for target, plan in self._plans.items()]
            heapq.heapify(self._heap)
        self._changed.notify_all()

    def _spread_overdue(self) -> None:
        now = self._clock()
        for target, plan in self._plans.items():
            if plan.due <= now and not plan.running:
                self._schedule(target, plan, plan.cadence.first_due(now))

    def _dispatch(self) -> None:
        while True:
            with self._changed:
                overlapped = self._next_job()
                if self._state == "stopped":
                    return
            if overlapped is not None:
                self._safely(self._on_overlap, overlapped)

    def _next_job(self) -> Target | None:
        """Wait until a target is due and a worker idle, then hand it over; returns a target whose
        turn was skipped because its previous poll still runs. Call with the lock held."""
        while self._state != "stopped":
            self._drop_stale_entries()
            if self._state == "paused" or self._idle == 0 or not self._heap:
                self._changed.wait()
                continue
            now = self._clock()
            due, _, target = self._heap[0]
            if due > now:
                self._changed.wait(due - now)
                continue
            heapq.heappop(self._heap)
            plan = self._plans[target]
            self._schedule(target, plan, plan.cadence.locked_due(now, now))
            if plan.running:
                return target
            self._idle -= 1
            self._jobs.put(_Job(target, plan, due, plan.out_of_turn))
            plan.running, plan.again, plan.woken, plan.out_of_turn = True, False, False, False
        return None

    def _drop_stale_entries(self) -> None:
        while self._heap:
            _, entry, target = self._heap[0]
            plan = self._plans.get(target)
            if plan is not None and plan.entry == entry:
                return
            heapq.heappop(self._heap)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._begin(job):
                started = self._clock()
                if started - job.due > late_after(job.plan.cadence.period):
                    self._safely(self._on_late, job.target, started - job.due)
                outcome = self._poll_safely(job.target)
                self._finish(job, started, outcome)

    def _begin(self, job: _Job) -> bool:
        """Whether a handed-over poll may start: not if the target was dropped or the scheduler
        paused or stopped meanwhile (then it is put back, as overdue)."""
        with self._changed:
            current = self._plans.get(job.target) is job.plan
            if self._state == "polling" and current:
                return True
            self._idle += 1
            job.plan.running = False
            if current:
                self._schedule(job.target, job.plan, job.due)
            self._changed.notify_all()
            return False

    def _poll_safely(self, target: Target) -> PollOutcome:
        try:
            return self._poll(target)
        except Exception:  # a bug in the poll: it must not stop this worker, nor go unseen
            log.exception("polling %s failed unexpectedly; trying again later", target.describe())
            return PollOutcome.TRANSIENT

    def _finish(self, job: _Job, started: float, outcome: PollOutcome) -> None:
        stretch = self._stretch_of(job.target)
        draw = self._random.uniform(-1.0, 1.0)
        with self._changed:
            self._idle += 1
            plan = job.plan
            if self._plans.get(job.target) is plan:
                plan.running = False
                finished = self._clock()
                stretched = replace(plan.cadence, stretch=stretch)
                plan.cadence, due = stretched.after(outcome, started, finished, draw)
                if job.out_of_turn and not outcome.failed:
                    due = started + stretched.period
                if plan.again or (plan.woken and outcome.failed):
                    due = finished
                self._schedule(job.target, plan, due)
            self._changed.notify_all()

    def _stretch_of(self, target: Target) -> float:
        try:
            return self._stretch(target)
        except Exception:
            log.exception("stretching the interval of %s failed; keeping it as planned", target.describe())
            return 1.0

    @staticmethod
    def _safely(callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("a scheduler callback failed")
