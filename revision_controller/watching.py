"""Listing and watching Functions, the way an informer does.

List, then watch from the list's resourceVersion; when the stream ends,
resume from the last resourceVersion seen; when that is too old (410 Gone),
list again. Errors back off exponentially up to a cap. Each Function is
handed on as a small `FunctionView`; whole objects are not kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from revision_controller.function import FunctionRef, FunctionView, view_of
from revision_controller.kube import FunctionsApi, api_error_summary

INITIAL_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0

log = logging.getLogger(__name__)

OnChange = Callable[[FunctionView], None]
OnDelete = Callable[[FunctionRef], None]
OnResync = Callable[[str | None, list[FunctionView]], None]


class ResourceVersionExpired(Exception):
    pass


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
        backoff = INITIAL_BACKOFF_SECONDS
        resource_version = ""
        while not self._stop.is_set():
            try:
                if not resource_version:
                    resource_version = self._list()
                resource_version = self._watch(resource_version)
                backoff = INITIAL_BACKOFF_SECONDS
            except ResourceVersionExpired:
                log.info("watch of Functions in %s expired; listing again", self.scope)
                resource_version = ""
            except Exception as error:  # noqa: BLE001 - the API server may be down; keep trying
                self.connected = False
                if self._stop.is_set():
                    return
                log.warning("watching Functions in %s failed: %s; retrying in %.1fs", self.scope,
                            api_error_summary(error), backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

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
