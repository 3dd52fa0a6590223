"""The Kubernetes API as this daemon uses it: Functions, their status, Secrets, Events.

Every call carries a timeout; a watch carries a server-side timeout and a
slightly longer client-side read timeout so a silent connection cannot hang.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from urllib3 import BaseHTTPResponse

from revision_controller.function import GROUP, PLURAL, FunctionRef

REQUEST_TIMEOUT_SECONDS = 10.0
WATCH_TIMEOUT_SECONDS = 300
LIST_PAGE_SIZE = 500


def api_client(kubeconfig: str | None) -> client.ApiClient:
    """From a kubeconfig file when given, else the in-cluster service account."""
    if kubeconfig:
        from_file: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)
        return from_file
    config.load_incluster_config()
    return client.ApiClient()


@dataclass
class FunctionsApi:
    api: client.ApiClient
    version: str = "v1beta2"

    def __post_init__(self) -> None:
        self._custom = client.CustomObjectsApi(self.api)

    @property
    def api_version(self) -> str:
        return f"{GROUP}/{self.version}"

    def list_page(self, namespace: str | None, continue_token: str = "") -> dict[str, Any]:
        kwargs: dict[str, Any] = {"limit": LIST_PAGE_SIZE, "_request_timeout": REQUEST_TIMEOUT_SECONDS}
        if continue_token:
            kwargs["_continue"] = continue_token
        return _json_object(self._list(namespace, **kwargs))

    def watch(self, namespace: str | None, resource_version: str) -> Iterator[dict[str, Any]]:
        """Opens a watch from `resource_version`, then yields its events as dicts until the server
        ends the stream. A refused watch raises ApiException before this returns, so a return
        means the watch is established; an expired version arrives as an ERROR event (code 410)."""
        response = self._list(
            namespace, watch=True, resource_version=resource_version, timeout_seconds=WATCH_TIMEOUT_SECONDS,
            allow_watch_bookmarks=True, _preload_content=False,
            _request_timeout=(REQUEST_TIMEOUT_SECONDS, WATCH_TIMEOUT_SECONDS + 30))
        if not isinstance(response, BaseHTTPResponse):  # what the client gives without _preload_content
            raise TypeError(f"a watch answered with {type(response).__name__}, not an HTTP response")
        return _events(response)

    def _list(self, namespace: str | None, **kwargs: Any) -> object:
        if namespace:
            return self._custom.list_namespaced_custom_object(GROUP, self.version, namespace, PLURAL, **kwargs)
        return self._custom.list_cluster_custom_object(GROUP, self.version, PLURAL, **kwargs)

    def get(self, ref: FunctionRef) -> dict[str, Any]:
        return _json_object(self._custom.get_namespaced_custom_object(
            GROUP, self.version, ref.namespace, PLURAL, ref.name, _request_timeout=REQUEST_TIMEOUT_SECONDS))

    def patch_status(self, ref: FunctionRef, body: dict[str, Any]) -> dict[str, Any]:
        return _json_object(self._custom.patch_namespaced_custom_object_status(
            GROUP, self.version, ref.namespace, PLURAL, ref.name, body,
            _content_type="application/merge-patch+json", _request_timeout=REQUEST_TIMEOUT_SECONDS))

    def annotate(self, ref: FunctionRef, key: str, value: str) -> None:
        """Set one annotation, touching nothing else of the Function."""
        self._custom.patch_namespaced_custom_object(
            GROUP, self.version, ref.namespace, PLURAL, ref.name, {"metadata": {"annotations": {key: value}}},
            _content_type="application/merge-patch+json", _request_timeout=REQUEST_TIMEOUT_SECONDS)


def _json_object(answer: object) -> dict[str, Any]:
    """The custom objects API is typed `object`; these calls answer a JSON object."""
    if not isinstance(answer, dict):
        raise TypeError(f"the API server answered {type(answer).__name__}, not a JSON object")
    return answer


def _events(response: BaseHTTPResponse) -> Iterator[dict[str, Any]]:
    try:
        for line in iter_resp_lines(response):
            if line.strip():
                yield json.loads(line)
    finally:
        response.close()
        response.release_conn()


def unreachable(error: Exception) -> bool:
    """Whether a call failed for want of an answer (refused, cut, timed out), not with one."""
    return isinstance(error, urllib3.exceptions.HTTPError | OSError) and not isinstance(error, ApiException)


def api_error_summary(error: Exception) -> str:
    """A short, token-free account of a failed call: the HTTP status, or what kind of failure."""
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"
