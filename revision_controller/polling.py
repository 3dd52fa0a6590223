"""One poll of one target: observe its value once, then decide for every subscriber.

The value is a branch's head commit for a git target and a manifest digest
for an image target. A failing target is reported as a `PollFailed` Event on
each subscribing Function once per distinct error, not at every poll, and
logged likewise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from providers import (GitProvider, GitSource, ImageProvider, NotFound, ProviderError, RegistryAuth,
                       open_provider, open_registry)
from revision_controller.credentials import CredentialsError, CredentialStore
from revision_controller.events import WARNING, EventRecorder
from revision_controller.function import FunctionRef
from revision_controller.metrics import Metrics
from revision_controller.patching import StatusPatcher, involved
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import GitTarget, ImageTarget, Target

log = logging.getLogger(__name__)

GitFactory = Callable[[GitSource, str | None], GitProvider]
RegistryFactory = Callable[[str, RegistryAuth | None, bool], ImageProvider]


P = TypeVar("P", GitProvider, ImageProvider)


@dataclass
class _Connection(Generic[P]):
    """A provider kept across polls, and the credential it was opened with."""

    credential: object
    provider: P
    default_branch: str = ""


@dataclass
class _Failure:
    """A target's current error, and the subscribers already told of it."""

    message: str
    told: set[FunctionRef] = field(default_factory=set)


class TargetPoller:
    def __init__(self, book: SubscriptionBook, credentials: CredentialStore, patcher: StatusPatcher,
                 events: EventRecorder, metrics: Metrics, api_version: str,
                 may_act: Callable[[], bool] = lambda: True, git_factory: GitFactory = open_provider,
                 registry_factory: RegistryFactory = open_registry) -> None:
        self._book = book
        self._metrics = metrics
        self._may_act = may_act
        self._credentials = credentials
        self._patcher = patcher
        self._events = events
        self._api_version = api_version
        self._git_factory = git_factory
        self._registry_factory = registry_factory
        self._lock = threading.Lock()
        self._connections: dict[Target, _Connection[Any]] = {}
        self._failures: dict[Target, _Failure] = {}

    def poll(self, target: Target) -> None:
        if not self._may_act():
            return
        provider = target.source.repo_type if isinstance(target, GitTarget) else "registry"
        started = time.monotonic()
        try:
            observed = self._head(target) if isinstance(target, GitTarget) else self._digest(target)
        except (ProviderError, CredentialsError) as error:
            self._metrics.polled(provider, target.describe(), False, time.monotonic() - started)
            self._credentials.forget(target.credentials)
            self._failed(target, str(error))
            return
        self._metrics.polled(provider, target.describe(), True, time.monotonic() - started)
        self._recovered(target)
        for subscription, view in self._book.subscribers(target):
            try:
                self._patcher.apply(subscription.type, view, observed)
            except Exception as error:  # one Function never stops the others
                log.error("could not update Function %s after polling %s: %s", view.ref,
                          target.describe(), error)

    def forget(self, target: Target) -> None:
        with self._lock:
            connection = self._connections.pop(target, None)
            self._failures.pop(target, None)
        self._metrics.forget_target(target.describe())
        if connection:
            connection.provider.close()

    def _head(self, target: GitTarget) -> str:
        token = self._credentials.token(target.credentials)
        connection = self._connect(target, token, lambda: self._git_factory(target.source, token))
        branch = target.branch or connection.default_branch
        if not branch:
            branch = connection.default_branch = connection.provider.default_branch()
        try:
            return connection.provider.head(branch)
        except NotFound:
            connection.default_branch = ""  # the default branch may have been renamed
            raise

    def _digest(self, target: ImageTarget) -> str:
        registry = target.reference.registry
        auth = self._credentials.registry_auth(target.credentials, registry)
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
