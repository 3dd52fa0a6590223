"""GitHub heads read in GraphQL batches once a token's REST pace passes a ceiling.

GitHub caps each token at 900 REST points a minute (its secondary limit),
304s possibly included, so 1,000 targets polled every minute with one token
are over it however cheap each request is. Past the ceiling, the polls of
that token's targets are gathered for a moment and their heads read in one
GraphQL query per 100 targets (1 point each): a poll then only joins the next
batch, and the batch delivers each head, or each error, to the poller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from providers import RateLimit, reads_over_git
from providers.base import DEFAULT_TIMEOUT_SECONDS, ProviderError
from providers.github import HeadQuery, read_heads
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import GitTarget

log = logging.getLogger(__name__)

# Requests a minute one token's targets may plan before their heads are batched.
DEFAULT_CEILING_PER_MINUTE = 500.0
FLUSH_SECONDS = 1.0

ReadHeads = Callable[[str, str, Sequence[HeadQuery], float],
                     tuple[dict[HeadQuery, str | ProviderError], RateLimit | None]]
Deliver = Callable[[GitTarget, str | ProviderError, RateLimit | None, float], None]


@dataclass(frozen=True)
class _Key:
    server: str
    token: str

    def __repr__(self) -> str:  # the token is never shown
        return f"_Key({self.server!r})"


# The planned pace is summed anew this often (a Secret may have changed), and at most this
# often while Functions come and go (as when a start lists them all).
PACE_REFRESH_SECONDS = 30.0
PACE_RECOUNT_SECONDS = 1.0


def rest_pace(targets: Sequence[tuple[GitTarget, str | None, float]]) -> dict[tuple[str, str], float]:
    """Planned REST requests a minute per (API server, token), for GitHub targets read with a
    token; `targets` are (target, token, interval in seconds)."""
    pace: dict[tuple[str, str], float] = {}
    for target, token, interval in targets:
        if target.source.repo_type == "github" and token and interval > 0:
            key = (target.source.server, token)
            pace[key] = pace.get(key, 0.0) + 60.0 / interval
    return pace


class Ceiling:
    """Which GitHub targets to batch: those of a token whose targets, at their intervals,
    would make more REST requests a minute than `per_minute`."""

    def __init__(self, book: SubscriptionBook, token_of: Callable[[GitTarget], str | None],
                 per_minute: float) -> None:
        self._book = book
        self._token_of = token_of
        self._per_minute = per_minute
        self._lock = threading.Lock()
        self._paces: dict[tuple[str, str], float] = {}
        self._summed_at = -PACE_REFRESH_SECONDS
        self._version = -1

    def exceeded(self, target: GitTarget, token: str) -> bool:
        if target.source.repo_type != "github" or reads_over_git(target.source, token):
            return False
        now, version = time.monotonic(), self._book.version
        with self._lock:
            stale = (now - self._summed_at > PACE_REFRESH_SECONDS
                     or (version != self._version and now - self._summed_at > PACE_RECOUNT_SECONDS))
            if stale:
                self._summed_at, self._version = now, version
        if stale:
            self._paces = rest_pace([(planned, self._token_of(planned), self._book.interval(planned) or 0.0)
                                     for planned in self._book.targets() if isinstance(planned, GitTarget)
                                     and planned.source.repo_type == "github"])
        return self._paces.get((target.source.server, token), 0.0) > self._per_minute


class HeadBatcher:
    """Gathers polls per (server, token) and reads them together every `FLUSH_SECONDS`."""

    def __init__(self, deliver: Deliver, read: ReadHeads = read_heads,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._deliver = deliver
        self._read = read
        self._timeout = timeout
        self._lock = threading.Lock()
        self._pending: dict[_Key, dict[HeadQuery, set[GitTarget]]] = {}

    def submit(self, target: GitTarget, token: str, branch: str) -> None:
        query = HeadQuery(target.source.repository, branch)
        with self._lock:
            queries = self._pending.setdefault(_Key(target.source.server, token), {})
            queries.setdefault(query, set()).add(target)

    def run(self, stopping: threading.Event) -> None:
        while not stopping.wait(FLUSH_SECONDS):
            self.flush()

    def flush(self) -> int:
        """Read every pending head now; returns how many queries were sent."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for key, queries in pending.items():
            started = time.monotonic()
            try:
                answers, rate_limit = self._read(key.server, key.token, list(queries), self._timeout)
            except Exception:  # a bug in reading must not lose the loop: the polls come back anyway
                log.exception("reading %d heads from %s in a batch failed", len(queries), key.server)
                continue
            seconds = time.monotonic() - started
            for query, targets in queries.items():
                answer = answers.get(query)
                if answer is None:
                    continue
                for target in targets:
                    try:
                        self._deliver(target, answer, rate_limit, seconds)
                    except Exception:  # one target's delivery never stops the others'
                        log.exception("delivering the head of %s failed", target.describe())
        return sum(len(queries) for queries in pending.values())
