"""When a target is polled next: pure decisions, the time always passed in.

Each target polls at a fixed phase in its interval, a fraction of the interval taken
from a stable hash of the target, so that a thousand targets on one interval spread
evenly over it instead of firing together, and keep their places across restarts.
A failing target backs off exponentially; a host that asks us to wait is obeyed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from revision_controller.targets import Target

# A start (list, plan) takes a few seconds: five more to spread the first polls over keeps
# every target polled within ten seconds of a restart.
FIRST_POLL_WITHIN = 5.0
BACKOFF_CAP = 600.0
PERMANENT_WAIT = 600.0
BACKOFF_JITTER = 0.1
# 2**32 times any sensible interval is far beyond the cap; the bound keeps floats finite.
MAX_BACKOFF_EXPONENT = 32

OutcomeKind = Literal["ok", "transient", "permanent", "deferred"]


@dataclass(frozen=True)
class PollOutcome:
    """What one poll of a target reports, for deciding when to poll it next.

    `transient` failures may mend soon, `permanent` ones (refused credentials, no such
    repository) will not; `deferred` means the host asked us to wait `retry_after`
    seconds, which is not a failure. A transient failure may ask for a wait too (a
    throttled request): its backoff is then at least `retry_after`."""

    kind: OutcomeKind
    retry_after: float = 0.0

    OK: ClassVar[PollOutcome]
    TRANSIENT: ClassVar[PollOutcome]
    PERMANENT: ClassVar[PollOutcome]

    @staticmethod
    def deferred(retry_after: float) -> PollOutcome:
        return PollOutcome("deferred", retry_after)

    @property
    def failed(self) -> bool:
        return self.kind in ("transient", "permanent")


PollOutcome.OK = PollOutcome("ok")
PollOutcome.TRANSIENT = PollOutcome("transient")
PollOutcome.PERMANENT = PollOutcome("permanent")


def phase_fraction(target: Target) -> float:
    """Where in its interval a target polls, in [0, 1): the same in every process.

    Python's own `hash` is salted per process, so the fields' text is hashed instead."""
    digest = hashlib.blake2b(repr(target).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Cadence:
    """How one target is polled: its interval, its phase, its stretch and its failures in a row."""

    interval: float
    fraction: float
    stretch: float = 1.0
    failures: int = 0

    @classmethod
    def of(cls, target: Target, interval: float) -> Cadence:
        return cls(interval, phase_fraction(target))

    @property
    def period(self) -> float:
        """The interval in effect: the planned one, stretched (never shrunk)."""
        return self.interval * max(1.0, self.stretch)

    @property
    def backing_off(self) -> bool:
        return self.failures > 0

    def first_due(self, now: float) -> float:
        """The first poll after planning or after a pause: soon, but spread over up to
        FIRST_POLL_WITHIN seconds."""
        return now + self.fraction * min(FIRST_POLL_WITHIN, self.period)

    def phase_point(self, after: float) -> float:
        """The first time at or after `after` that falls on this target's phase."""
        offset = self.fraction * self.period
        return offset + math.ceil((after - offset) / self.period) * self.period

    def locked_due(self, started: float, finished: float) -> float:
        """The next phase point at least half a period after a poll started, and not before it ended."""
        return self.phase_point(max(started + self.period / 2, finished))

    def after(self, outcome: PollOutcome, started: float, finished: float,
              draw: float) -> tuple[Cadence, float]:
        """The cadence and due time after a poll; `draw` in [-1, 1] picks the jitter of a backoff."""
        if outcome.kind == "ok":
            return replace(self, failures=0), self.locked_due(started, finished)
        if outcome.kind == "deferred":
            return self, max(finished + outcome.retry_after, self.locked_due(started, finished))
        failing = replace(self, failures=self.failures + 1)
        if outcome.kind == "permanent":
            return failing, finished + max(PERMANENT_WAIT, self.period)
        return failing, finished + max(outcome.retry_after, failing.backoff() * (1 + BACKOFF_JITTER * draw))

    def backoff(self) -> float:
        """The wait after this many transient failures in a row, before jitter."""
        doubled = self.period * 2.0 ** min(self.failures, MAX_BACKOFF_EXPONENT)
        return max(self.period, min(BACKOFF_CAP, doubled))
