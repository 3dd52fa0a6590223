"""The daemon: watch Functions, keep subscriptions, schedule targets, poll, patch.

A Function's journey: the watcher hands its view to `Controller.changed`,
planning turns it into a subscription to a target (or a reason it is not
watched, told in an Event), the book re-plans that target's job on the
scheduler, and each poll of the target reads the head once and patches every
subscriber whose recorded commit differs.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field

from revision_controller.credentials import CredentialStore
from revision_controller.events import EventRecorder
from revision_controller.function import FunctionRef, FunctionView
from revision_controller.kube import FunctionsApi, api_client
from revision_controller.params import DEFAULT_POLLING_INTERVAL
from revision_controller.patching import StatusPatcher, involved
from revision_controller.planning import Notice, plan_function
from revision_controller.polling import TargetPoller
from revision_controller.scheduling import TargetScheduler
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import Target
from revision_controller.watching import FunctionWatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaemonConfig:
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()
    function_version: str = "v1beta2"
    default_polling_interval: float = DEFAULT_POLLING_INTERVAL
    workers: int = 4
    identity: str = field(default_factory=socket.gethostname)


class Controller:
    """Turns Function changes into target plans. Called from the watch threads."""

    def __init__(self, config: DaemonConfig, functions: FunctionsApi, events: EventRecorder,
                 book: SubscriptionBook, scheduler: TargetScheduler) -> None:
        self._config = config
        self._functions = functions
        self._events = events
        self._book = book
        self._scheduler = scheduler
        self._lock = threading.Lock()
        self._notices: dict[FunctionRef, Notice] = {}

    def changed(self, view: FunctionView) -> None:
        plan = plan_function(view, self._config.default_polling_interval)
        if plan.subscription:
            self._replan(self._book.subscribe(plan.subscription, view))
        else:
            self._drop(view.ref, "it is no longer watched")
        self._tell(view, plan.notice)

    def deleted(self, ref: FunctionRef) -> None:
        with self._lock:
            self._notices.pop(ref, None)
        self._drop(ref, "it was deleted")

    def _drop(self, ref: FunctionRef, why: str) -> None:
        targets = self._book.unsubscribe(ref)
        if targets:
            log.info("Function %s unsubscribed: %s", ref, why)
        self._replan(targets)

    def resynced(self, namespace: str | None, views: list[FunctionView]) -> None:
        present = {view.ref for view in views}
        for ref in self._book.functions(namespace) - present:
            self.deleted(ref)
        for view in views:
            self.changed(view)

    def _replan(self, targets: set[Target]) -> None:
        for target in targets:
            self._scheduler.replan(target, self._book.interval(target))

    def _tell(self, view: FunctionView, notice: Notice | None) -> None:
        """Say what a Function's owner should know about its plan, once each time it changes.

        Only Functions with something to say are remembered, so a cluster of
        switched-off Functions costs no memory here."""
        with self._lock:
            before = self._notices.pop(view.ref, None)
            if notice is not None:
                self._notices[view.ref] = notice
        if notice is None or notice == before:
            return
        log.info("Function %s: %s", view.ref, notice.message)
        self._events.record(involved(view, self._functions.api_version), notice.type, notice.reason,
                            notice.message)


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        api = api_client(config.kubeconfig)
        self.functions = FunctionsApi(api, config.function_version)
        self.events = EventRecorder(api, config.identity)
        self.book = SubscriptionBook()
        patcher = StatusPatcher(self.functions, self.events, self.book.refresh)
        self.poller = TargetPoller(self.book, CredentialStore(api), patcher, self.events,
                                   self.functions.api_version)
        self.scheduler = TargetScheduler(self.poller.poll, self.poller.forget, config.workers)
        self.controller = Controller(config, self.functions, self.events, self.book, self.scheduler)
        self.stopping = threading.Event()
        self.watchers = [
            FunctionWatcher(self.functions, namespace, self.controller.changed, self.controller.deleted,
                            self.controller.resynced, self.stopping)
            for namespace in (config.namespaces or (None,))
        ]

    def run(self) -> None:
        """Serve until `stop()` is called, then finish the polls under way."""
        log.info("revision controller starting: Functions %s in %s", self.functions.api_version,
                 ", ".join(watcher.scope for watcher in self.watchers))
        self.scheduler.start()
        for watcher in self.watchers:
            threading.Thread(target=watcher.run, name=f"watch {watcher.scope}", daemon=True).start()
        self.stopping.wait()
        log.info("revision controller stopping: finishing the polls under way")
        self.scheduler.shutdown()
        log.info("revision controller stopped")

    def stop(self) -> None:
        self.stopping.set()
