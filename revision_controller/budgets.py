"""Request budgets: make each credential's rate limit last until it is refilled.

Servers say in every answer how many requests a credential has left and when
the budget is refilled. When, at the pace observed lately, the budget would
run out before then, the targets that spend it are polled less often, all by
the same ratio, just enough that it lasts. A host that asked for a pause
(`Retry-After`, a secondary limit) gets no request before the time it named.

Pure bookkeeping: the caller passes the time in, so that every decision is
tested without clocks or servers.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from dataclasses import dataclass, field

from providers.base import RateLimit

# The pace is measured over this many seconds of recent answers, and not before they
# span the shorter time: a few seconds say nothing of an hour.
PACE_WINDOW_SECONDS = 300.0
MIN_PACE_SPAN_SECONDS = 30.0
# Keep this share of the budget in reserve, for Functions created meanwhile and for people.
RESERVE = 0.1
MAX_STRETCH = 60.0
# A new ratio is only adopted when it differs this much, so intervals do not wobble.
HYSTERESIS = 0.1


@dataclass(frozen=True)
class BudgetKey:
    """One credential on one host; the token itself is kept only as a short digest."""

    host: str
    credential: str

    @classmethod
    def of(cls, host: str, token: str | None) -> BudgetKey:
        digest = hashlib.sha256(token.encode()).hexdigest()[:12] if token else "anonymous"
        return cls(host, digest)


@dataclass
class Pace:
    """Units spent over the recent answers of one budget window, kept as a running sum so
    that each answer costs the same however many came before it.

    Units spent under a stretch count that many times over: the pace that matters
    is the one at the targets' own intervals."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)  # (time, remaining)
    stretches: deque[float] = field(default_factory=deque)  # in effect up to each sample
    spent: float = 0.0

    def add(self, now: float, remaining: int, stretch: float) -> None:
        if self.samples:
            self.spent += max(0, self.samples[-1][1] - remaining) * stretch
        self.samples.append((now, remaining))
        self.stretches.append(stretch)

    def trim(self, since: float) -> None:
        while len(self.samples) > 1 and self.samples[0][0] < since:
            _, before = self.samples.popleft()
            self.stretches.popleft()
            self.spent -= max(0, before - self.samples[0][1]) * self.stretches[0]

    def clear(self) -> None:
        self.samples.clear()
        self.stretches.clear()
        self.spent = 0.0

    @property
    def elapsed(self) -> float:
        return self.samples[-1][0] - self.samples[0][0] if self.samples else 0.0


@dataclass
class _Budget:
    reset_at: float = 0.0
    limit: int = 0
    remaining: int = 0
    pace: Pace = field(default_factory=Pace)
    stretch: float = 1.0


def stretch_needed(spent: float, elapsed: float, remaining: int, limit: int, reset_at: float,
                   now: float) -> float:
    """The ratio by which to lengthen intervals so that `remaining` lasts until `reset_at`,
    when `spent` units (at the targets' own intervals) went in the last `elapsed` seconds."""
    if elapsed < MIN_PACE_SPAN_SECONDS or spent <= 0 or now >= reset_at:
        return 1.0
    affordable = max(0.0, remaining - RESERVE * limit) / (reset_at - now)
    if affordable <= 0:
        return MAX_STRETCH
    return min(MAX_STRETCH, max(1.0, spent / elapsed / affordable))


class Budgets:
    """Thread-safe: polls on every worker report what they saw."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._budgets: dict[BudgetKey, _Budget] = {}
        self._paused_until: dict[str, float] = {}

    def observed(self, key: BudgetKey, rate_limit: RateLimit, now: float) -> float:
        """Record one answer's rate-limit headers; returns the key's stretch ratio."""
        with self._lock:
            budget = self._budgets.setdefault(key, _Budget())
            if rate_limit.reset_at != budget.reset_at:
                budget.pace.clear()  # a new window: the old pace says nothing of it
            budget.reset_at, budget.limit = rate_limit.reset_at, rate_limit.limit
            budget.remaining = rate_limit.remaining
            budget.pace.add(now, rate_limit.remaining, budget.stretch)
            budget.pace.trim(now - PACE_WINDOW_SECONDS)
            needed = stretch_needed(budget.pace.spent, budget.pace.elapsed, budget.remaining,
                                    budget.limit, budget.reset_at, now)
            if abs(needed - budget.stretch) > HYSTERESIS * budget.stretch or needed == 1.0:
                budget.stretch = needed
            return budget.stretch

    def stretch(self, key: BudgetKey, now: float) -> float:
        with self._lock:
            budget = self._budgets.get(key)
            if budget is None or now >= budget.reset_at:
                return 1.0
            return budget.stretch

    def pause(self, host: str, until: float) -> None:
        """The host asked for no request before `until` (Unix time)."""
        with self._lock:
            self._paused_until[host] = max(until, self._paused_until.get(host, 0.0))

    def paused_for(self, host: str, now: float) -> float:
        """Seconds to wait before the next request to `host`; 0 when it may be asked now."""
        with self._lock:
            until = self._paused_until.get(host, 0.0)
            if until <= now:
                self._paused_until.pop(host, None)
                return 0.0
            return until - now

    def by_host(self, now: float) -> dict[str, tuple[int, float]]:
        """Per host: the fewest requests left on any of its credentials, and the largest stretch."""
        hosts: dict[str, tuple[int, float]] = {}
        with self._lock:
            for key, budget in self._budgets.items():
                stretch = budget.stretch if now < budget.reset_at else 1.0
                left, most = hosts.get(key.host, (budget.remaining, 1.0))
                hosts[key.host] = (min(left, budget.remaining), max(most, stretch))
        return hosts
