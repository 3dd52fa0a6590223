"""One poll of one target: observe its value once, then decide for every subscriber.

The value is a branch's head commit for a git target and a manifest digest
for an image target. Whatever goes wrong in a poll is that target's failure,
never the scheduler's: it is reported as a `PollFailed` Event on each
subscribing Function once per distinct error, not at every poll, logged
likewise, and returned as the outcome the scheduler backs off by. The rate
limits servers report feed the credential's budget.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from providers import (
    GitProvider,
    GitSource,
    ImageProvider,
    NotFound,
    ProviderError,
    RateLimit,
    RegistryAuth,
    Throttled,
    endpoint,
    open_provider,
    open_registry,
)
from revision_controller.batching import DEFAULT_CEILING_PER_MINUTE, Ceiling, HeadBatcher
from revision_controller.budgets import BudgetKey, Budgets
from revision_controller.cadence import PollOutcome
from revision_controller.comparisons import Comparisons
from revision_controller.credentials import CredentialsError, CredentialStore
from revision_controller.decision import UNCHANGED_IN_PATHS, Change, screen
from revision_controller.duration import format_duration
from revision_controller.events import NORMAL, WARNING, EventRecorder
from revision_controller.function import FunctionRef, FunctionView
from revision_controller.kube import unreachable
from revision_controller.metrics import Metrics
from revision_controller.patching import Screen, StatusPatcher, involved
from revision_controller.prompts import Prompt, Prompts
from revision_controller.refusals import Refusals
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import GitTarget, ImageTarget, Subscription, Target

log = logging.getLogger(__name__)

GitFactory = Callable[[GitSource, str | None], GitProvider]
RegistryFactory = Callable[[str, RegistryAuth | None, bool], ImageProvider]


P = TypeVar("P", GitProvider, ImageProvider)


@dataclass
class _Connection(Generic[P]):
    """A provider kept across polls, the credential it was opened with, and the last head it
    read."""

    credential: object
    provider: P
    default_branch: str = ""
    head: str = ""


@dataclass
class _Failure:
    """A target's current error, and the subscribers already told of it."""

    message: str
    told: set[FunctionRef] = field(default_factory=set)


class _Batched(Exception):
    """The target's head will be read in the next GraphQL batch."""


class _Paused(Exception):
    """The target's host asked for no request yet: `seconds` more to wait."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class TargetPoller:
    def __init__(self, book: SubscriptionBook, credentials: CredentialStore, patcher: StatusPatcher,
                 events: EventRecorder, metrics: Metrics, api_version: str,
                 may_act: Callable[[], bool] = lambda: True, git_factory: GitFactory = open_provider,
                 registry_factory: RegistryFactory = open_registry, budgets: Budgets | None = None,
                 batch_above: float = DEFAULT_CEILING_PER_MINUTE, prompts: Prompts | None = None) -> None:
        self._book = book
        self._prompts = prompts
        self._metrics = metrics
        self._may_act = may_act
        self._credentials = credentials
        self._patcher = patcher
        self._events = events
        self._api_version = api_version
        self._git_factory = git_factory
        self._registry_factory = registry_factory
        self._budgets = budgets or Budgets()
        self._lock = threading.Lock()
        self._connections: dict[Target, _Connection[Any]] = {}
        self._failures: dict[Target, _Failure] = {}
        self._budget_keys: dict[Target, BudgetKey] = {}
        self._stretch_told: dict[FunctionRef, float] = {}
        self._unchanged_told: dict[FunctionRef, str] = {}
        self.comparisons = Comparisons(on_answer=metrics.compared)
        self.refusals = Refusals(credentials, book.interval)
        self._ceiling = Ceiling(book, self._token_or_none, batch_above)
        self.batcher = HeadBatcher(self._delivered)

    def poll(self, target: Target) -> PollOutcome:
        if not self._may_act():
            return PollOutcome.OK
        provider = target.source.repo_type if isinstance(target, GitTarget) else "registry"
        started = time.monotonic()
        prompt = self._prompts.take(target) if self._prompts else None
        try:
            observed = self._head(target) if isinstance(target, GitTarget) else self._digest(target)
        except _Paused as paused:
            return PollOutcome.deferred(paused.seconds)
        except _Batched:
            if self._prompts:
                self._prompts.put_back(target, prompt)
            return PollOutcome.OK  # the batch delivers the head, or the error, in a moment
        except Exception as error:  # noqa: BLE001 - any error is this target's, never the scheduler's
            self._metrics.polled(provider, target.describe(), False, time.monotonic() - started)
            return self._poll_failed(target, provider, error)
        self._observed(target, provider, observed, time.monotonic() - started, prompt)
        return PollOutcome.OK

    def _delivered(self, target: GitTarget, answer: str | ProviderError, rate_limit: RateLimit | None,
                   seconds: float) -> None:
        """A head, or an error, read for `target` in a GraphQL batch."""
        with self._lock:
            key = self._budget_keys.get(target)
        if rate_limit is not None and key is not None:
            self._metered(BudgetKey(f"{key.host} graphql", key.credential), rate_limit)
        if isinstance(answer, str):
            self._observed(target, "github", answer, seconds, self._prompts.take(target) if self._prompts else None)
        else:
            self._metrics.polled("github", target.describe(), False, seconds)
            self._poll_failed(target, "github", answer)

    def _observed(self, target: Target, provider: str, observed: str, seconds: float,
                  prompt: Prompt | None) -> None:
        self._metrics.polled(provider, target.describe(), True, seconds)
        self._recovered(target)
        subscribers = self._book.subscribers(target)
        for done, (subscription, view) in enumerate(subscribers, 1):
            try:
                result = self._patcher.apply(subscription.type, view, observed, prompt.why if prompt else "",
                                             self._screen(subscription, observed))
                if result == "patched" and prompt:
                    self._metrics.prompted_patch(time.monotonic() - prompt.since)
            except Exception as error:  # noqa: BLE001 - one Function never stops the others
                log.error("could not update Function %s after polling %s: %s", view.ref,
                          target.describe(), error)
                if unreachable(error) and done < len(subscribers):
                    # Each would wait as long for an answer, and keep this worker from other targets.
                    log.warning("the API server did not answer: the %d other Functions of %s are left for "
                                "its next poll", len(subscribers) - done, target.describe())
                    break
        self._tell_stretch(target, [view for _, view in subscribers])

    def _screen(self, subscription: Subscription, head: str) -> Screen | None:
        """For a Function with paths: whether a move to `head` changed any of its files."""
        paths, target = subscription.paths, subscription.target
        if paths is None or not isinstance(target, GitTarget):
            return None

        def screened(view: FunctionView, change: Change) -> Change | None:
            changed = self.comparisons.changed(target, view.commit_sha, head,
                                               lambda base, new: self._git_provider(target).changed_files(base, new))
            result = screen(change, head, paths, changed)
            if result.change is None:
                self._tell_unchanged(view, head, result.skipped)
            return result.change
        return screened

    def _git_provider(self, target: GitTarget) -> GitProvider:
        try:
            token = self._credentials.token(target.credentials)
        except CredentialsError as error:
            raise ProviderError(str(error)) from None
        return self._connect(target, token, lambda: self._git_factory(target.source, token)).provider

    def _tell_unchanged(self, view: FunctionView, head: str, message: str) -> None:
        """Say once per head that a Function's files did not change."""
        with self._lock:
            if self._unchanged_told.get(view.ref) == head:
                return
        log.info("Function %s: %s", view.ref, message)
        if self._events.record(involved(view, self._api_version), NORMAL, UNCHANGED_IN_PATHS, message):
            with self._lock:
                self._unchanged_told[view.ref] = head

    def stretch(self, target: Target) -> float:
        """How much longer than its interval `target` is polled, so that its budget lasts."""
        with self._lock:
            key = self._budget_keys.get(target)
        return self._budgets.stretch(key, time.time()) if key else 1.0

    def unsubscribed(self, ref: FunctionRef) -> None:
        """Forget what was said to a Function that is deleted or no longer watched."""
        with self._lock:
            self._stretch_told.pop(ref, None)
            self._unchanged_told.pop(ref, None)
            for failure in self._failures.values():
                failure.told.discard(ref)

    def forget(self, target: Target) -> None:
        with self._lock:
            connection = self._connections.pop(target, None)
            self._failures.pop(target, None)
            self._budget_keys.pop(target, None)
        self.refusals.cleared(target)
        if isinstance(target, GitTarget):
            self.comparisons.forget(target)
        if self._prompts:
            self._prompts.forget(target)
        self._metrics.forget_target(target.describe())
        if connection:
            connection.provider.close()

    def _head(self, target: GitTarget) -> str:
        token = self._credentials.token(target.credentials)
        key = self._budget_key(target, BudgetKey.of(endpoint(target.source, token), token))
        if token and self._ceiling.exceeded(target, token):
            self.batcher.submit(target, token, target.branch)
            raise _Batched
        connection = self._connect(target, token, lambda: self._git_factory(target.source, token))
        try:
            branch = target.branch or connection.default_branch
            if not branch:
                branch = connection.default_branch = connection.provider.default_branch()
            head = connection.provider.head(branch)
        except Exception as error:
            if isinstance(error, NotFound):
                connection.default_branch = ""  # the default branch may have been renamed
            self._meter(key, connection, steady=True)
            raise
        self._meter(key, connection, steady=head == connection.head)
        connection.head = head
        return head

    def _meter(self, key: BudgetKey, connection: _Connection[GitProvider], steady: bool) -> None:
        """Feed the budget what the server said, from the polls that show the pace it is spent
        at: not a target's first read, nor the read of a new head, which are one-offs (the first
        read of 1,000 targets would otherwise look like 1,000 units a minute, for ever)."""
        limit = connection.provider.rate_limit
        if limit is not None and steady and connection.head:
            self._metered(key, limit)

    def _digest(self, target: ImageTarget) -> str:
        registry = target.reference.registry
        auth = self._credentials.registry_auth(target.credentials, registry)
        self._budget_key(target, BudgetKey.of(registry, auth.password if auth else None))
        connection = self._connect(target, auth,
                                   lambda: self._registry_factory(registry, auth, target.insecure))
        return connection.provider.digest(target.reference)

    def _connect(self, target: Target, credential: object, open_: Callable[[], P]) -> _Connection[P]:
        """The target's provider, opened anew when its credential changed."""
        with self._lock:
            connection = self._connections.get(target)
            if connection and connection.credential == credential:
                return connection
            stale = connection
            connection = _Connection(credential, open_())
            self._connections[target] = connection
        if stale:
            stale.provider.close()
        return connection

    def _token_or_none(self, target: GitTarget) -> str | None:
        try:
            return self._credentials.token(target.credentials)
        except Exception:  # noqa: BLE001 - that target's own poll reports it
            return None

    def _budget_key(self, target: Target, key: BudgetKey) -> BudgetKey:
        """Remember whose budget the target spends; refuse to poll while its host asked for a pause."""
        with self._lock:
            self._budget_keys[target] = key
        wait = self._budgets.paused_for(key.host, time.time())
        if wait:
            raise _Paused(wait)
        return key

    def _metered(self, key: BudgetKey, rate_limit: RateLimit) -> None:
        now = time.time()
        self._budgets.observed(key, rate_limit, now)
        remaining, stretch = self._budgets.by_host(now)[key.host]
        self._metrics.budget(key.host, remaining, stretch)

    def _poll_failed(self, target: Target, provider: str, error: Exception) -> PollOutcome:
        permanent = isinstance(error, CredentialsError) or getattr(error, "permanent", False)
        if permanent and target.credentials is not None:
            # Before the Secret is forgotten and the Event told: what this poll used is compared
            # with the Secret later, even when its owner fixes it the moment the Event appears.
            self.refusals.refused(target, time.monotonic())
        self._credentials.forget(target.credentials)
        if isinstance(error, (ProviderError, CredentialsError)):
            message = str(error)
        else:
            message = (f"unexpected {type(error).__name__} in the {provider} provider; this is a bug "
                       "in the revision controller: please report it with the daemon's log at "
                       "--log-level debug")
        log.debug("polling %s failed", target.describe(), exc_info=error)
        self._failed(target, message)
        if isinstance(error, Throttled):
            with self._lock:
                key = self._budget_keys.get(target)
            if key:
                self._budgets.pause(key.host, time.time() + error.retry_after)
            return PollOutcome("transient", error.retry_after)
        return PollOutcome.PERMANENT if permanent else PollOutcome.TRANSIENT

    def _tell_stretch(self, target: Target, subscribers: list[FunctionView]) -> None:
        """Say once per Function that a budget stretches its interval, and again only when the
        ratio has since doubled or halved, or ended."""
        stretch = self.stretch(target)
        interval = self._book.interval(target)
        for view in subscribers:
            with self._lock:
                told = self._stretch_told.get(view.ref, 1.0)
            if told / 2 < stretch < told * 2 and (stretch > 1.0) == (told > 1.0):
                continue
            if stretch > 1.0 and interval and not self._events.record(
                    involved(view, self._api_version), WARNING, "RateLimited",
                    f"polling {target.describe()} every {format_duration(round(interval * stretch))} "
                    f"instead of {format_duration(interval)}: at the current pace the rate limit of "
                    "its credentials would run out before it is refilled (use a token of its own, "
                    "fewer Functions on it, or a longer polling-interval)"):
                continue  # not told: told at a later poll
            with self._lock:
                if stretch > 1.0:
                    self._stretch_told[view.ref] = stretch
                else:
                    self._stretch_told.pop(view.ref, None)

    def _failed(self, target: Target, message: str) -> None:
        with self._lock:
            failure = self._failures.get(target)
            if failure is None or failure.message != message:
                failure = self._failures[target] = _Failure(message)
                log.warning("polling %s failed: %s", target.describe(), message)
        for _, view in self._book.subscribers(target):
            if view.ref in failure.told:
                continue
            # Told once recorded: an Event the API server did not take is tried again at the next poll.
            if self._events.record(involved(view, self._api_version), WARNING, "PollFailed",
                                   f"polling {target.describe()} failed: {message}"):
                failure.told.add(view.ref)

    def _recovered(self, target: Target) -> None:
        with self._lock:
            was_failing = self._failures.pop(target, None) is not None
        self.refusals.cleared(target)
        if was_failing:
            log.info("polling %s works again", target.describe())
