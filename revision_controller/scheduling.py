"""Polling targets on APScheduler: one interval job per target.

A job polls at the shortest interval its subscribers ask for, with a little
jitter so that targets added together do not poll in lock step; a target is
never polled twice at once; a bounded pool of workers runs the polls.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import threading
from collections.abc import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from apscheduler.triggers.interval import IntervalTrigger

from revision_controller.duration import format_duration
from revision_controller.targets import Target

MAX_JITTER_SECONDS = 1.0
JITTER_FRACTION = 0.1

log = logging.getLogger(__name__)


def jitter_for(interval: float) -> float:
    return min(MAX_JITTER_SECONDS, interval * JITTER_FRACTION)


class TargetScheduler:
    def __init__(self, poll: Callable[[Target], None], on_dropped: Callable[[Target], None],
                 workers: int) -> None:
        self._poll = poll
        self._on_dropped = on_dropped
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=datetime.timezone.utc)
        self._lock = threading.Lock()
        self._jobs: dict[Target, tuple[str, float]] = {}
        self._ids = itertools.count(1)

    def start(self, paused: bool = False) -> None:
        """Start the scheduler; a paused one (a standby replica) keeps its plan but polls nothing."""
        self._scheduler.start(paused=paused)

    def pause(self) -> None:
        if self._scheduler.state == STATE_RUNNING:
            self._scheduler.pause()

    def resume(self) -> None:
        """Poll again; targets whose time came while paused are polled at once."""
        if self._scheduler.state == STATE_PAUSED:
            self._scheduler.resume()

    def shutdown(self) -> None:
        """Stop scheduling and wait for the polls under way to finish."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    @property
    def polling(self) -> bool:
        return self._scheduler.state == STATE_RUNNING

    @property
    def running(self) -> bool:
        """Started and not shut down, polling or paused."""
        return self._scheduler.running

    def planned(self) -> dict[Target, float]:
        with self._lock:
            return {target: interval for target, (_, interval) in self._jobs.items()}

    def replan(self, target: Target, interval: float | None) -> None:
        """Poll `target` every `interval` seconds from now on, or stop polling it (None)."""
        with self._lock:
            job = self._jobs.get(target)
            if interval is None:
                if job:
                    del self._jobs[target]
                    self._scheduler.remove_job(job[0])
            elif job is None:
                job_id = f"target-{next(self._ids)}"
                self._jobs[target] = (job_id, interval)
                self._scheduler.add_job(self._poll, self._trigger(interval), args=[target], id=job_id,
                                        name=target.describe(),
                                        next_run_time=datetime.datetime.now(datetime.timezone.utc))
            elif job[1] != interval:
                self._jobs[target] = (job[0], interval)
                self._scheduler.reschedule_job(job[0], trigger=self._trigger(interval))
            else:
                return
        if interval is None:
            if job:
                self._on_dropped(target)
                log.info("stopped polling %s: no Function subscribes to it", target.describe())
        else:
            log.info("polling %s every %s", target.describe(), format_duration(interval))

    @staticmethod
    def _trigger(interval: float) -> IntervalTrigger:
        return IntervalTrigger(seconds=interval, jitter=jitter_for(interval),
                               timezone=datetime.timezone.utc)
