"""Kubernetes Events on Functions: what the controller saw and did, and why it
is not watching. Recording an Event never fails the work that asked for it.

A repeated Event (same Function, type, reason and message) updates the count
and last timestamp of the one already recorded, as Kubernetes' own recorder
does, instead of adding an object at every occurrence. After a request the API
server did not answer, Events are not tried for a while: each would wait as long,
in the poll that records it.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from revision_controller.function import KIND, FunctionRef
from revision_controller.kube import REQUEST_TIMEOUT_SECONDS, api_error_summary, unreachable

COMPONENT = "openfunction-revision-controller"
NORMAL = "Normal"
WARNING = "Warning"
REMEMBERED_EVENTS = 4096
MESSAGE_LIMIT = 1024
QUIET_SECONDS = REQUEST_TIMEOUT_SECONDS  # no Event tried this long after one got no answer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvolvedFunction:
    ref: FunctionRef
    uid: str
    api_version: str


@dataclass
class _Recorded:
    name: str
    count: int


class EventRecorder:
    def __init__(self, api: client.ApiClient, host: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._core = client.CoreV1Api(api)
        self._host = host
        self._clock = clock
        self._lock = threading.Lock()
        self._recorded: OrderedDict[tuple[str, str, str, str, str], _Recorded] = OrderedDict()
        self._quiet_until = 0.0

    def record(self, function: InvolvedFunction, type_: str, reason: str, message: str) -> bool:
        """Whether the Event was recorded; never raises."""
        message = message[:MESSAGE_LIMIT]
        key = (function.ref.namespace, function.uid or function.ref.name, type_, reason, message)
        with self._lock:
            if self._clock() < self._quiet_until:
                log.debug("not recording Event %s on Function %s: the API server did not answer lately",
                          reason, function.ref)
                return False
            seen = self._recorded.pop(key, None)
        try:
            seen = self._repeat(function.ref, seen) if seen else None
            if seen is None:
                seen = self._create(function, type_, reason, message)
        except Exception as error:  # noqa: BLE001 - an Event is best effort; the work it reports has happened
            log.warning("could not record Event %s on Function %s: %s", reason, function.ref,
                        api_error_summary(error))
            if unreachable(error):
                with self._lock:
                    self._quiet_until = self._clock() + QUIET_SECONDS
            return False
        with self._lock:
            self._recorded[key] = seen
            while len(self._recorded) > REMEMBERED_EVENTS:
                self._recorded.popitem(last=False)
        return True

    def _create(self, function: InvolvedFunction, type_: str, reason: str, message: str) -> _Recorded:
        now = _now()
        ref = function.ref
        name = f"{ref.name}.{time.time_ns():x}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ref.namespace},
            "involvedObject": {"apiVersion": function.api_version, "kind": KIND,
                               "namespace": ref.namespace, "name": ref.name, "uid": function.uid},
            "type": type_,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": COMPONENT, "host": self._host},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._host,
        }
        self._core.create_namespaced_event(ref.namespace, client.CoreV1Event.model_validate(body),
                                           _request_timeout=REQUEST_TIMEOUT_SECONDS)
        return _Recorded(name, 1)

    def _repeat(self, ref: FunctionRef, seen: _Recorded) -> _Recorded | None:
        """Count one more occurrence on the recorded Event; None when it is gone (expired)."""
        count = seen.count + 1
        try:
            self._core.patch_namespaced_event(seen.name, ref.namespace,
                                              {"count": count, "lastTimestamp": _now()},
                                              _content_type="application/merge-patch+json",
                                              _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return _Recorded(seen.name, count)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
