"""The daemon: watch Functions, keep subscriptions, schedule targets, poll, patch.

A Function's journey: the watcher hands its view to `Controller.changed`,
planning turns it into a subscription to a target (or a reason it is not
watched, told in an Event), the book re-plans that target's job on the
scheduler, and each poll of the target reads the head once and patches every
subscriber whose recorded commit differs.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kubernetes.client import ApiClient
from kubernetes.config import ConfigException

from revision_controller.batching import DEFAULT_CEILING_PER_MINUTE
from revision_controller.credentials import CredentialStore
from revision_controller.events import WARNING, EventRecorder
from revision_controller.function import FunctionRef, FunctionView
from revision_controller.kube import FunctionsApi, api_client
from revision_controller.leadership import LeaderElector, LeaseConfig
from revision_controller.metrics import Metrics
from revision_controller.params import DEFAULT_POLLING_INTERVAL, REQUESTED_AT_ANNOTATION
from revision_controller.patching import StatusPatcher, involved
from revision_controller.planning import Notice, Plan, plan_function
from revision_controller.polling import TargetPoller
from revision_controller.probes import Check, EndpointServer, metrics_route, parse_address, probe_routes
from revision_controller.prompts import Prompts
from revision_controller.receiver import Reception, SecretFile, WebhookReceiver
from revision_controller.scheduling import TargetScheduler
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import Target
from revision_controller.watching import FunctionWatcher

log = logging.getLogger(__name__)

MEND_SECONDS = 1.0


def default_identity() -> str:
    """The pod's name in a cluster; elsewhere the host name with a random suffix, so that two
    processes on one machine never share an identity."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class DaemonConfig:
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()
    function_version: str = "v1beta2"
    default_polling_interval: float = DEFAULT_POLLING_INTERVAL
    workers: int = 4
    leader_elect: bool = False
    lease_namespace: str = field(default_factory=lambda: os.environ.get("POD_NAMESPACE", "openfunction"))
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    health_probe_address: str = ":8081"
    metrics_address: str = ":8080"
    graphql_batch_above: float = DEFAULT_CEILING_PER_MINUTE
    webhook_address: str = ":8090"
    webhook_secret_file: str = ""


class Controller:
    """Turns Function changes into target plans. Called from the watch threads."""

    def __init__(self, config: DaemonConfig, functions: FunctionsApi, events: EventRecorder,
                 book: SubscriptionBook, scheduler: TargetScheduler, prompts: Prompts,
                 on_dropped: Callable[[FunctionRef], None]) -> None:
        self._config = config
        self._on_dropped = on_dropped
        self._prompts = prompts
        self._functions = functions
        self._events = events
        self._book = book
        self._scheduler = scheduler
        self._lock = threading.Lock()
        self._notices: dict[FunctionRef, Notice] = {}

    def changed(self, view: FunctionView) -> None:
        before = self._book.view(view.ref)
        try:
            plan = plan_function(view, self._config.default_polling_interval)
        except Exception as error:  # a bug, which must cost this Function only, never the watch
            log.exception("planning Function %s failed", view.ref)
            plan = Plan(notice=Notice(WARNING, "InvalidParameters",
                                      f"this Function could not be planned ({type(error).__name__}), a bug "
                                      "in the revision controller: please report it with its log"))
        if plan.subscription:
            changed = self._book.subscribe(plan.subscription, view)
            self._replan(changed)
            if changed:  # what the Function asks for changed: a failing target may be mended now
                self._scheduler.wake(plan.subscription.target)
            if before is not None and view.requested_at not in ("", before.requested_at):
                log.info("Function %s asks for a check now: polling %s", view.ref, plan.subscription.target.describe())
                self._prompts.requested(plan.subscription.target, view.requested_at)
        else:
            self._drop(view.ref, "it is no longer watched")
        self._tell(view, plan.notice)

    def deleted(self, ref: FunctionRef) -> None:
        with self._lock:
            self._notices.pop(ref, None)
        self._drop(ref, "it was deleted")

    def _drop(self, ref: FunctionRef, why: str) -> None:
        targets = self._book.unsubscribe(ref)
        if targets:  # else it was not watched: nothing was said to it, nothing to forget
            log.info("Function %s unsubscribed: %s", ref, why)
            self._on_dropped(ref)
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
        if not self._events.record(involved(view, self._functions.api_version), notice.type, notice.reason,
                                   notice.message):
            with self._lock:  # not told: told at the Function's next change
                if self._notices.get(view.ref) == notice:
                    del self._notices[view.ref]


class StartupError(Exception):
    """The daemon cannot start; the message names the cause and the flag that fixes it."""


def _connect(kubeconfig: str | None) -> ApiClient:
    try:
        return api_client(kubeconfig)
    except (ConfigException, OSError) as error:
        where = kubeconfig or "the in-cluster service account"
        hint = "check the file given to --kubeconfig" if kubeconfig else "outside a cluster, pass --kubeconfig PATH"
        raise StartupError(f"cannot configure the Kubernetes client from {where}: {error} ({hint})") from None


class _Server(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


Listener = tuple[str, str, Callable[[tuple[str, int]], _Server]]  # address, its flag, how to serve it


def _listen(address: str, flag: str, serve: Callable[[tuple[str, int]], _Server]) -> _Server | None:
    bound = parse_address(address)
    if bound is None:
        return None
    try:
        return serve(bound)
    except OSError as error:
        host, port = bound
        if error.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} for {flag} is in use (another revision controller on this "
                               f"machine?): pass {flag} with a free port, or 0 to disable it") from None
        raise StartupError(f"cannot listen on {host}:{port} for {flag}: {error.strerror or error}: pass "
                           f"{flag} with an address this machine has") from None


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        api = _connect(config.kubeconfig)
        self.metrics = Metrics()
        self.functions = FunctionsApi(api, config.function_version)
        self.events = EventRecorder(api, config.identity)
        self.book = SubscriptionBook()
        self.metrics.count_from(lambda: len(self.book.functions()), lambda: len(self.book.targets()))
        self.stopping = threading.Event()
        self.elector = self._elector(api) if config.leader_elect else None
        patcher = StatusPatcher(self.functions, self.events, self.metrics, self.book.refresh, self.may_act)
        self.prompts = Prompts(self.book, self._poll_now, self.may_act,
                               lambda ref, value: self.functions.annotate(ref, REQUESTED_AT_ANNOTATION, value))
        self.poller = TargetPoller(self.book, CredentialStore(api), patcher, self.events, self.metrics,
                                   self.functions.api_version, self.may_act,
                                   batch_above=config.graphql_batch_above, prompts=self.prompts)
        self.scheduler = TargetScheduler(self.poller.poll, self.poller.forget, config.workers,
                                         stretch=self.poller.stretch, on_late=self._late,
                                         on_overlap=self._overlapped)
        self.controller = Controller(config, self.functions, self.events, self.book, self.scheduler, self.prompts,
                                     self.poller.unsubscribed)
        self.watchers = [
            FunctionWatcher(self.functions, namespace, self.controller.changed, self.controller.deleted,
                            self.controller.resynced, self.stopping)
            for namespace in (config.namespaces or (None,))
        ]
        self._threads: list[threading.Thread] = []
        self._overlap_lock = threading.Lock()
        self._overlapping: set[Target] = set()
        self._servers = self._endpoint_servers()

    def _mend(self) -> None:
        """Poll at once a target refused for its credentials when its Secret changes, rather than
        after its ten-minute back-off."""
        while not self.stopping.wait(MEND_SECONDS):
            try:
                for target in self.poller.refusals.mended(time.monotonic()):
                    log.info("the Secret of %s changed: polling it now", target.describe())
                    self.scheduler.wake(target)
            except Exception:  # a bug here must not stop the loop, nor go unseen
                log.exception("checking whether refused credentials changed failed")

    def _poll_now(self, target: Target) -> bool:
        return self.scheduler.poll_now(target)  # made after the prompts, which the poller needs

    def _late(self, target: Target, seconds: float) -> None:
        self.metrics.late()
        log.debug("polling %s started %.1fs late: every worker was busy (raise --workers)",
                  target.describe(), seconds)

    def _overlapped(self, target: Target) -> None:
        """Said once per target: a poll that outlasts its interval would otherwise say it each time."""
        self.metrics.skipped()
        with self._overlap_lock:
            first = target not in self._overlapping
            self._overlapping.add(target)
        if first:
            log.warning("polling %s takes longer than its interval: skipping turns until it ends "
                        "(counted in revision_controller_polls_skipped_total)", target.describe())

    def may_act(self) -> bool:
        """Only a leader polls and patches; without leader election, always."""
        return self.elector is None or self.elector.is_leader

    def run(self) -> None:
        """Serve until `stop()` is called, then finish the polls under way and step down."""
        log.info("revision controller %s starting: Functions %s in %s%s", self.config.identity,
                 self.functions.api_version, ", ".join(watcher.scope for watcher in self.watchers),
                 "; waiting to lead" if self.elector else "")
        for server in self._servers:
            server.start()
        self.scheduler.start(paused=self.elector is not None)
        self.metrics.leading(self.elector is None)
        for watcher in self.watchers:
            self._spawn(watcher.run, f"watch {watcher.scope}")
        self._spawn(self._mend, "credential recheck")
        self._spawn(lambda: self.poller.batcher.run(self.stopping), "graphql batches")
        elector, elector_stop = self.elector, threading.Event()
        election = self._spawn(lambda: elector.run(elector_stop), "leader election") if elector else None
        self.stopping.wait()
        log.info("revision controller stopping: finishing the polls under way")
        self.scheduler.shutdown()
        elector_stop.set()  # steps down and releases the lease, now that nothing is in flight
        if election:
            election.join()
        for server in self._servers:
            server.stop()
        log.info("revision controller stopped")

    def stop(self) -> None:
        self.stopping.set()

    def _spawn(self, loop: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=loop, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _elector(self, api: ApiClient) -> LeaderElector:
        lease = LeaseConfig(namespace=self.config.lease_namespace, identity=self.config.identity,
                            lease_duration=self.config.lease_duration,
                            renew_deadline=self.config.renew_deadline, retry_period=self.config.retry_period)
        return LeaderElector(api, lease, self._started_leading, self._stopped_leading)

    def _started_leading(self) -> None:
        self.metrics.leading(True)
        self.scheduler.resume()

    def _stopped_leading(self) -> None:
        self.metrics.leading(False)
        self.scheduler.pause()

    def _endpoint_servers(self) -> list[_Server]:
        servers: list[_Server] = []
        try:
            for address, flag, serve in self._listeners():
                server = _listen(address, flag, serve)
                if server:
                    servers.append(server)
        except StartupError:
            for server in servers:
                server.stop()
            raise
        return servers

    def _listeners(self) -> list[Listener]:
        probes = probe_routes({"/healthz": self._liveness(), "/readyz": self._readiness()})
        listeners: list[Listener] = [
            (self.config.health_probe_address, "--health-probe-bind-address",
             lambda bound: EndpointServer(bound, probes)),
            (self.config.metrics_address, "--metrics-bind-address",
             lambda bound: EndpointServer(bound, metrics_route(self.metrics.registry)))]
        secret = self._webhook_secret()
        if secret:
            reception = Reception(secret, self.prompts.announced)
            listeners.append((self.config.webhook_address, "--webhook-bind-address",
                              lambda bound: WebhookReceiver(bound, reception, self.metrics.webhook)))
        return listeners

    def _webhook_secret(self) -> SecretFile | None:
        """The webhook secret, or None (said once in the log) when webhooks are off."""
        address, path = self.config.webhook_address, self.config.webhook_secret_file
        if parse_address(address) is None:
            return None
        if not path:
            log.info("webhooks are off: pass --webhook-secret-file with the shared secret to receive them "
                     "on %s", address)
            return None
        secret = SecretFile(Path(path))
        if not secret.read():
            log.warning("webhooks are off: the secret file %s is missing or empty; put the shared secret in "
                        "the Secret revision-controller-webhook (key 'secret') and restart", path)
            return None
        return secret

    def _liveness(self) -> dict[str, Check]:
        """Alive: every loop thread still turns and the scheduler has not died."""
        return {
            "loops": lambda: _all_alive(self._threads),
            "scheduler": lambda: (self.scheduler.running or self.stopping.is_set(), "the scheduler stopped"),
        }

    def _readiness(self) -> dict[str, Check]:
        """Ready: the watch is established and, when leading, the scheduler polls."""
        return {
            "watch": lambda: (all(w.connected for w in self.watchers), "the watch of Functions is not established"),
            "scheduler": lambda: (self.scheduler.polling or not self.may_act(),
                                  "leading, but the scheduler is not polling"),
        }


def _all_alive(threads: list[threading.Thread]) -> tuple[bool, str]:
    dead = [thread.name for thread in threads if not thread.is_alive()]
    return (not dead and bool(threads)), f"stopped: {', '.join(dead) or 'not started'}"

