"""The Kubernetes API as this daemon uses it: Functions, their status, Secrets, Events.

Every call carries a timeout; a watch carries a server-side timeout and a
slightly longer client-side read timeout so a silent connection cannot hang.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config, watch

from revision_controller.function import GROUP, PLURAL, FunctionRef

REQUEST_TIMEOUT_SECONDS = 10.0
WATCH_TIMEOUT_SECONDS = 300
LIST_PAGE_SIZE = 500


def api_client(kubeconfig: str | None) -> client.ApiClient:
    """From a kubeconfig file when given, else the in-cluster service account."""
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
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
        if namespace:
            return self._custom.list_namespaced_custom_object(GROUP, self.version, namespace, PLURAL,
                                                              **kwargs)
        return self._custom.list_cluster_custom_object(GROUP, self.version, PLURAL, **kwargs)

    def watch(self, namespace: str | None, resource_version: str) -> Iterator[dict[str, Any]]:
        """Events after `resource_version` until the server ends the stream.

        Raises ApiException(410) when that version is too old to resume from."""
        kwargs: dict[str, Any] = {"resource_version": resource_version,
                                  "timeout_seconds": WATCH_TIMEOUT_SECONDS,
                                  "allow_watch_bookmarks": True,
                                  "_request_timeout": (REQUEST_TIMEOUT_SECONDS, WATCH_TIMEOUT_SECONDS + 30)}
        if namespace:
            return watch.Watch().stream(self._custom.list_namespaced_custom_object, GROUP, self.version,
                                        namespace, PLURAL, **kwargs)
        return watch.Watch().stream(self._custom.list_cluster_custom_object, GROUP, self.version,
                                    PLURAL, **kwargs)

    def get(self, ref: FunctionRef) -> dict[str, Any]:
        return self._custom.get_namespaced_custom_object(GROUP, self.version, ref.namespace, PLURAL,
                                                         ref.name, _request_timeout=REQUEST_TIMEOUT_SECONDS)

    def patch_status(self, ref: FunctionRef, body: dict[str, Any]) -> dict[str, Any]:
        return self._custom.patch_namespaced_custom_object_status(
            GROUP, self.version, ref.namespace, PLURAL, ref.name, body,
            _content_type="application/merge-patch+json", _request_timeout=REQUEST_TIMEOUT_SECONDS)
