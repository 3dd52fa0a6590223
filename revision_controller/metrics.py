"""Prometheus metrics: what was polled, what changed, what was patched, who leads.

Each daemon has its own registry, so several daemons in one process (tests,
the demo) never share counters.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "revision_controller"
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PROMPT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._polls = Counter(f"{PREFIX}_polls_total", "Polls of targets, by provider and outcome",
                              ["provider", "outcome"], registry=self.registry)
        self._poll_seconds = Histogram(f"{PREFIX}_poll_duration_seconds", "Time one poll of a target took",
                                       ["provider"], buckets=POLL_BUCKETS, registry=self.registry)
        self._changes = Counter(f"{PREFIX}_changes_detected_total",
                                "Moved heads or digests that called for a status patch, by type",
                                ["type"], registry=self.registry)
        self._patches = Counter(f"{PREFIX}_patches_total", "Status patches, by result",
                                ["result"], registry=self.registry)
        self._last_success = Gauge(f"{PREFIX}_last_successful_poll_timestamp_seconds",
                                   "Unix time of the last successful poll, by target", ["target"],
                                   registry=self.registry)
        self._leader = Gauge(f"{PREFIX}_leader", "1 while this replica leads and acts, else 0",
                             registry=self.registry)
        self._functions = Gauge(f"{PREFIX}_watched_functions", "Functions subscribed to a target",
                                registry=self.registry)
        self._targets = Gauge(f"{PREFIX}_targets", "Targets being polled", registry=self.registry)
        self._remaining = Gauge(f"{PREFIX}_rate_limit_remaining",
                                "Requests left until the budget is refilled, fewest of any credential, by host",
                                ["host"], registry=self.registry)
        self._stretch = Gauge(f"{PREFIX}_interval_stretch_ratio",
                              "How much longer than asked targets are polled so that a rate limit lasts, "
                              "by host", ["host"], registry=self.registry)
        self._late = Counter(f"{PREFIX}_polls_late_total",
                             "Polls started later than due by more than the jitter (all workers busy)",
                             registry=self.registry)
        self._skipped = Counter(f"{PREFIX}_polls_skipped_total",
                                "Polls skipped because the target's previous poll was still running",
                                registry=self.registry)
        self._comparisons = Counter(f"{PREFIX}_comparisons_total",
                                    "Changed files asked of a provider for Functions with paths (once per "
                                    "target, recorded commit and head), by outcome: certain or uncertain",
                                    ["outcome"], registry=self.registry)
        self._webhooks = Counter(f"{PREFIX}_webhooks_total", "Webhook deliveries, by provider and outcome",
                                 ["provider", "outcome"], registry=self.registry)
        self._prompted = Histogram(f"{PREFIX}_prompt_to_patch_seconds",
                                   "From a webhook's receipt or a check-now annotation to the status patch "
                                   "it led to", buckets=PROMPT_BUCKETS, registry=self.registry)

    def count_from(self, functions: Callable[[], int], targets: Callable[[], int]) -> None:
        """Read the watched Functions and targets at scrape time."""
        self._functions.set_function(functions)
        self._targets.set_function(targets)

    def polled(self, provider: str, target: str, succeeded: bool, seconds: float) -> None:
        self._polls.labels(provider, "success" if succeeded else "failure").inc()
        self._poll_seconds.labels(provider).observe(seconds)
        if succeeded:
            self._last_success.labels(target).set(time.time())

    def forget_target(self, target: str) -> None:
        with contextlib.suppress(KeyError):
            self._last_success.remove(target)

    def budget(self, host: str, remaining: int, stretch: float) -> None:
        self._remaining.labels(host).set(remaining)
        self._stretch.labels(host).set(stretch)

    def webhook(self, provider: str, outcome: str) -> None:
        self._webhooks.labels(provider, outcome).inc()

    def compared(self, certain: bool) -> None:
        self._comparisons.labels("certain" if certain else "uncertain").inc()

    def prompted_patch(self, seconds: float) -> None:
        self._prompted.observe(seconds)

    def late(self) -> None:
        self._late.inc()

    def skipped(self) -> None:
        self._skipped.inc()

    def changed(self, type_: str) -> None:
        self._changes.labels(type_).inc()

    def patched(self, result: str) -> None:
        self._patches.labels(result).inc()

    def leading(self, leads: bool) -> None:
        self._leader.set(1 if leads else 0)
