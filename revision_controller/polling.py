"""One poll of one target: read its head once, then decide for every subscriber.

A failing target is reported as a `PollFailed` Event on each subscribing
Function once per distinct error, not at every poll, and logged likewise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


from providers import GitProvider, GitSource, NotFound, ProviderError, open_provider
from revision_controller.credentials import CredentialsError, CredentialStore
from revision_controller.events import WARNING, EventRecorder
from revision_controller.function import FunctionRef
from revision_controller.patching import StatusPatcher, involved
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import Target

log = logging.getLogger(__name__)

ProviderFactory = Callable[[GitSource, str | None], GitProvider]


@dataclass
class _Failure:
    """A target's current error, and the subscribers already told of it."""

    message: str
    told: set[FunctionRef] = field(default_factory=set)


@dataclass
class _Connection:
    token: str | None
    provider: GitProvider
    default_branch: str = ""


class TargetPoller:
    def __init__(self, book: SubscriptionBook, credentials: CredentialStore, patcher: StatusPatcher,
                 events: EventRecorder, api_version: str,
                 provider_factory: ProviderFactory = open_provider) -> None:
        self._book = book
        self._credentials = credentials
        self._patcher = patcher
        self._events = events
        self._api_version = api_version
        self._provider_factory = provider_factory
        self._lock = threading.Lock()
        self._connections: dict[Target, _Connection] = {}
        self._failures: dict[Target, _Failure] = {}

    def poll(self, target: Target) -> None:
        try:
            head = self._head(target)
        except (ProviderError, CredentialsError) as error:
            self._credentials.forget(target.credentials)
            self._failed(target, str(error))
            return
        self._recovered(target)
        for _, view in self._book.subscribers(target):
            try:
                self._patcher.apply(view, head)
            except Exception as error:  # one Function never stops the others
                log.error("could not update Function %s after polling %s: %s", view.ref,
                          target.describe(), error)

    def forget(self, target: Target) -> None:
        with self._lock:
            connection = self._connections.pop(target, None)
            self._failures.pop(target, None)
        if connection:
            connection.provider.close()

    def _head(self, target: Target) -> str:
        connection = self._connect(target)
        branch = target.branch or connection.default_branch
        if not branch:
            branch = connection.default_branch = connection.provider.default_branch()
        try:
            return connection.provider.head(branch)
        except NotFound:
            connection.default_branch = ""  # the default branch may have been renamed
            raise

    def _connect(self, target: Target) -> _Connection:
        token = self._credentials.token(target.credentials)
        with self._lock:
            connection = self._connections.get(target)
            if connection and connection.token == token:
                return connection
            stale = connection
            connection = _Connection(token, self._provider_factory(target.source, token))
            self._connections[target] = connection
        if stale:
            stale.provider.close()
        return connection

    def _failed(self, target: Target, message: str) -> None:
        with self._lock:
            failure = self._failures.get(target)
            if failure is None or failure.message != message:
                failure = self._failures[target] = _Failure(message)
                log.warning("polling %s failed: %s", target.describe(), message)
        for _, view in self._book.subscribers(target):
            if view.ref in failure.told:
                continue
            failure.told.add(view.ref)
            self._events.record(involved(view, self._api_version), WARNING, "PollFailed",
                                f"polling {target.describe()} failed: {message}")

    def _recovered(self, target: Target) -> None:
        with self._lock:
            was_failing = self._failures.pop(target, None) is not None
        if was_failing:
            log.info("polling %s works again", target.describe())
