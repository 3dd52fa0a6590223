"""Kubernetes Events on Functions: what the controller saw and did, and why it
is not watching. Recording an Event never fails the work that asked for it."""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass

from kubernetes import client

from revision_controller.function import KIND, FunctionRef
from revision_controller.kube import REQUEST_TIMEOUT_SECONDS

COMPONENT = "openfunction-revision-controller"
NORMAL = "Normal"
WARNING = "Warning"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvolvedFunction:
    ref: FunctionRef
    uid: str
    api_version: str


class EventRecorder:
    def __init__(self, api: client.ApiClient, host: str) -> None:
        self._core = client.CoreV1Api(api)
        self._host = host

    def record(self, function: InvolvedFunction, type_: str, reason: str, message: str) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        ref = function.ref
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref.name}.{time.time_ns():x}", "namespace": ref.namespace},
            "involvedObject": {"apiVersion": function.api_version, "kind": KIND,
                               "namespace": ref.namespace, "name": ref.name, "uid": function.uid},
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "count": 1,
            "firstTimestamp": now.isoformat(timespec="seconds"),
            "lastTimestamp": now.isoformat(timespec="seconds"),
            "source": {"component": COMPONENT, "host": self._host},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._host,
        }
        try:
            self._core.create_namespaced_event(ref.namespace, body,
                                               _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except Exception as error:  # an Event is best effort; the work it reports has happened
            log.warning("could not record Event %s on Function %s: %s", reason, ref, _summary(error))


def _summary(error: Exception) -> str:
    status = getattr(error, "status", None)
    return f"HTTP {status} {getattr(error, 'reason', '')}".strip() if status else type(error).__name__
