"""Listing and watching Functions, the way an informer does.

List, then watch from the list's resourceVersion; when the stream ends,
resume from the last resourceVersion seen; when that is too old (410 Gone),
list again. Errors back off exponentially up to a cap, from the start again
once none came for a while (as client-go's reflector does). Each Function is
handed on as a small `FunctionView`; whole objects are not kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from revision_controller.function import FunctionRef, FunctionView, view_of
from revision_controller.kube import FunctionsApi, api_error_summary

INITIAL_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
# A failure this long after the previous one is a new outage, not the same one going on.
BACKOFF_RESET_SECONDS = 120.0

log = logging.getLogger(__name__)

OnChange = Callable[[FunctionView], None]
OnDelete = Callable[[FunctionRef], None]
OnResync = Callable[[str | None, list[FunctionView]], None]


class ResourceVersionExpired(Exception):
    pass


@dataclass
class Backoff:
    """How long to wait after each failure: doubling while failures follow each other, from the
    start again after a clean end or `BACKOFF_RESET_SECONDS` without one, so that a watch cut
    now and then (a load balancer's idle timeout) never waits as long as one in an outage."""

    delay: float = INITIAL_BACKOFF_SECONDS
    last_failure: float | None = None

    def failed(self, now: float) -> float:
        if self.last_failure is not None and now - self.last_failure > BACKOFF_RESET_SECONDS:
            self.delay = INITIAL_BACKOFF_SECONDS
        self.last_failure = now
        delay, self.delay = self.delay, min(self.delay * 2, MAX_BACKOFF_SECONDS)
        return delay

    def succeeded(self) -> None:
        self.delay, self.last_failure = INITIAL_BACKOFF_SECONDS, None


class FunctionWatcher:
    """Watches Functions in one namespace (or all, when `namespace` is None)."""

    def __init__(self, functions: FunctionsApi, namespace: str | None, on_change: OnChange,
                 on_delete: OnDelete, on_resync: OnResync, stop: threading.Event) -> None:
        self._functions = functions
        self._namespace = namespace
        self._on_change = on_change
        self._on_delete = on_delete
        self._on_resync = on_resync
        self._stop = stop
        self.connected = False

    @property
    def scope(self) -> str:
        return f"namespace {self._namespace}" if self._namespace else "all namespaces"

    def run(self) -> None:
        backoff = Backoff()
        resource_version = ""
        while not self._stop.is_set():
            try:
                if not resource_version:
                    resource_version = self._list()
                resource_version = self._watch(resource_version)
                backoff.succeeded()
            except ResourceVersionExpired:
                log.info("watch of Functions in %s expired; listing again", self.scope)
                resource_version = ""
            except Exception as error:  # noqa: BLE001 - the API server may be down; keep trying
                self.connected = False
                if self._stop.is_set():
                    return
                delay = backoff.failed(time.monotonic())
                log.warning("watching Functions in %s failed: %s; retrying in %.1fs", self.scope,
                            api_error_summary(error), delay)
                self._stop.wait(delay)

    def _list(self) -> str:
        views: list[FunctionView] = []
        continue_token = ""
        while True:
            page = self._functions.list_page(self._namespace, continue_token)
            views.extend(view_of(item) for item in page.get("items") or [])
            metadata = page.get("metadata") or {}
            continue_token = metadata.get("continue") or ""
            if not continue_token:
                break
        self._on_resync(self._namespace, views)
        self.connected = True
        log.info("listed %d Functions in %s", len(views), self.scope)
        listed_at: str = metadata.get("resourceVersion", "")
        return listed_at

    def _watch(self, resource_version: str) -> str:
        """Handle events until the stream ends; the resourceVersion to resume from."""
        try:
            events = self._functions.watch(self._namespace, resource_version)
        except ApiException as error:
            if error.status == 410:
                raise ResourceVersionExpired() from None
            raise
        self.connected = True
        for event in events:
            if self._stop.is_set():
                break
            resource_version = self._handle(event) or resource_version
        return resource_version

    def _handle(self, event: dict[str, Any]) -> str:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise ResourceVersionExpired()
            raise ApiException(status=obj.get("code"), reason=f"{obj.get('reason')}: {obj.get('message')}")
        if kind == "BOOKMARK":
            bookmark: str = (obj.get("metadata") or {}).get("resourceVersion", "")
            return bookmark
        view = view_of(obj)
        if kind == "DELETED":
            self._on_delete(view.ref)
        elif kind in ("ADDED", "MODIFIED"):
            self._on_change(view)
        return view.resource_version
