"""Which Functions subscribe to which targets. Thread-safe; no I/O.

The watch loop writes here, the pollers read here. Every change answers with
the targets whose polling plan may have changed, so the caller can re-plan
exactly those.
"""

from __future__ import annotations

import threading

from revision_controller.function import FunctionRef, FunctionView
from revision_controller.targets import Subscription, Target


class SubscriptionBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[FunctionRef, Subscription] = {}
        self._views: dict[FunctionRef, FunctionView] = {}
        self._subscribers: dict[Target, set[FunctionRef]] = {}
        self._version = 0

    def subscribe(self, subscription: Subscription, view: FunctionView) -> set[Target]:
        with self._lock:
            ref = subscription.function
            old = self._subscriptions.get(ref)
            self._views[ref] = view
            if old == subscription:
                return set()
            if old is not None:
                self._remove(old)
            self._subscriptions[ref] = subscription
            self._subscribers.setdefault(subscription.target, set()).add(ref)
            self._version += 1
            return {subscription.target} | ({old.target} if old else set())

    def unsubscribe(self, ref: FunctionRef) -> set[Target]:
        with self._lock:
            old = self._subscriptions.pop(ref, None)
            self._views.pop(ref, None)
            if old is None:
                return set()
            self._remove(old)
            self._version += 1
            return {old.target}

    def _remove(self, subscription: Subscription) -> None:
        refs = self._subscribers[subscription.target]
        refs.discard(subscription.function)
        if not refs:
            del self._subscribers[subscription.target]

    def refresh(self, view: FunctionView) -> None:
        """Keep the newest view of a subscribed Function (after a patch, say)."""
        with self._lock:
            if view.ref in self._subscriptions:
                self._views[view.ref] = view

    def view(self, ref: FunctionRef) -> FunctionView | None:
        """The newest view of a subscribed Function."""
        with self._lock:
            return self._views.get(ref)

    @property
    def version(self) -> int:
        """Counts the changes of subscriptions, so that what is derived from all of them is
        derived again only when it may differ."""
        with self._lock:
            return self._version

    def interval(self, target: Target) -> float | None:
        """The shortest interval any subscriber asks for; None when nobody subscribes."""
        with self._lock:
            refs = self._subscribers.get(target, ())
            return min((self._subscriptions[ref].interval for ref in refs), default=None)

    def subscribers(self, target: Target) -> list[tuple[Subscription, FunctionView]]:
        with self._lock:
            refs = sorted(self._subscribers.get(target, ()))
            return [(self._subscriptions[ref], self._views[ref]) for ref in refs]

    def functions(self, namespace: str | None = None) -> set[FunctionRef]:
        with self._lock:
            return {ref for ref in self._subscriptions if namespace in (None, ref.namespace)}

    def targets(self) -> set[Target]:
        with self._lock:
            return set(self._subscribers)
