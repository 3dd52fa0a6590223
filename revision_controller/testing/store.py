"""Object storage for the API server stand-in: what etcd plus the registry do.

One lock guards everything. Every write bumps one global resourceVersion and
is recorded in a bounded history that watches replay from; live watches get
their events pushed onto their own pending list.
"""

from __future__ import annotations

import base64
import binascii
import copy
import enum
import json
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

# Copied from the stored object on every update: clients cannot set these.
SYSTEM_METADATA = ("name", "namespace", "uid", "creationTimestamp", "resourceVersion",
                   "generation", "deletionTimestamp", "deletionGracePeriodSeconds")
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class ApiError(Exception):
    """An error the API server reports as a `Status` object."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> JSON:
        body: JSON = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def _normalize_secret(secret: JSON) -> None:
    """Fold `stringData` into base64 `data` and reject `data` that is not base64, as the server does."""
    data = secret.get("data") or {}
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError) as error:
            raise ApiError(400, "BadRequest",
                           f'Secret in version "v1" cannot be handled as a Secret: data[{key}]: {error}') from error
    for key, value in (secret.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        secret["data"] = data
    secret.setdefault("type", "Opaque")


_TIME, _MICRO_TIME = "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"


def _normalize_event(event: JSON) -> None:
    """As the server stores an Event: its times in UTC, written as Go writes them (any RFC 3339
    offset is taken, "Z" is served), and the fields Go serializes whether set or not."""
    for name, layout in (("firstTimestamp", _TIME), ("lastTimestamp", _TIME), ("eventTime", _MICRO_TIME)):
        event[name] = _go_time(event, name, layout)
    series = event.get("series")
    if isinstance(series, dict) and "lastObservedTime" in series:
        series["lastObservedTime"] = _go_time(series, "lastObservedTime", _MICRO_TIME)
    event.setdefault("reportingComponent", "")
    event.setdefault("reportingInstance", "")


def _go_time(fields: JSON, name: str, layout: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise bad_request(f'Event in version "v1" cannot be handled as a Event: {name}: parsing time '
                          f'{json.dumps(value)} as RFC 3339 failed') from None
    if parsed.tzinfo is None:
        raise bad_request(f'Event in version "v1" cannot be handled as a Event: {name}: {json.dumps(value)} '
                          "has no time zone")
    return parsed.astimezone(UTC).strftime(layout)


@dataclass(frozen=True)
class PrinterColumn:
    """One of a CRD's `additionalPrinterColumns`: a cell of `kubectl get`'s table."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class View:
    """A resource served from another's storage, as `events.k8s.io/v1` Events are core v1 Events
    with fields renamed. `renames` pairs each served top-level field with the stored one it is;
    `field_labels` pairs each field label a selector may name with the stored label it stands for."""

    stored: ResourceType
    renames: tuple[tuple[str, str], ...]
    field_labels: tuple[tuple[str, str], ...]

    def served(self, obj: JSON) -> JSON:
        return _renamed(obj, {stored: served for served, stored in self.renames})

    def storable(self, obj: JSON) -> JSON:
        return _renamed(obj, dict(self.renames))

    def stored_label(self, label: str) -> str | None:
        return next((stored for served, stored in self.field_labels if served == label), None)


def _renamed(obj: JSON, names: dict[str, str]) -> JSON:
    return {names.get(key, key): value for key, value in obj.items()}


@dataclass(frozen=True)
class ResourceType:
    """One served resource. `custom` marks a CRD: such objects carry `generation`,
    need `metadata.resourceVersion` on PUT and refuse strategic merge patches.
    `short_names` and `printer_columns` are what kubectl finds in discovery and tables.
    With a `view`, the objects are another resource's, seen through it."""

    group: str
    versions: tuple[str, ...]
    kind: str
    plural: str
    status_subresource: bool = False
    custom: bool = False
    field_labels: tuple[str, ...] = ()
    normalize: Callable[[JSON], None] | None = None
    short_names: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    view: View | None = None

    @property
    def stored(self) -> ResourceType:
        """The resource whose storage holds these objects."""
        return self.view.stored if self.view else self

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def render(self, obj: JSON, version: str) -> JSON:
        """The stored object as served at `version`."""
        return {"apiVersion": self.api_version(version), "kind": self.kind,
                **(self.view.served(obj) if self.view else obj)}


_EVENT_FIELDS = (*(f"involvedObject.{name}" for name in (
    "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")),
    "reason", "reportingComponent", "source", "type")

# As in OpenFunction's CRD (core.openfunction.io_functions.yaml), the same for both served versions.
FUNCTION_COLUMNS = (
    PrinterColumn("BuildState", "string", ".status.build.state"),
    PrinterColumn("ServingState", "string", ".status.serving.state"),
    PrinterColumn("Builder", "string", ".status.build.resourceRef"),
    PrinterColumn("Serving", "string", ".status.serving.resourceRef"),
    PrinterColumn("Address", "string", '.status.addresses[?(@.type=="Internal")].value'),
    PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
)

_CORE_EVENTS = ResourceType("", ("v1",), "Event", "events", field_labels=_EVENT_FIELDS, normalize=_normalize_event,
                            short_names=("ev",))

# As Kubernetes converts them (pkg/apis/events/v1/conversion.go); the other fields keep their names.
_EVENT_RENAMES = (("regarding", "involvedObject"), ("note", "message"), ("reportingController", "reportingComponent"),
                  ("deprecatedSource", "source"), ("deprecatedFirstTimestamp", "firstTimestamp"),
                  ("deprecatedLastTimestamp", "lastTimestamp"), ("deprecatedCount", "count"))
_EVENT_VIEW_FIELDS = (*((f"regarding.{name}", f"involvedObject.{name}") for name in (
    "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")),
    ("reportingController", "reportingComponent"), ("reason", "reason"), ("type", "type"), ("source", "source"))

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("core.openfunction.io", ("v1beta1", "v1beta2"), "Function", "functions",
                 status_subresource=True, custom=True, short_names=("fn",), printer_columns=FUNCTION_COLUMNS),
    ResourceType("", ("v1",), "Secret", "secrets", field_labels=("type",), normalize=_normalize_secret),
    _CORE_EVENTS,
    ResourceType("events.k8s.io", ("v1",), "Event", "events", short_names=("ev",),
                 view=View(_CORE_EVENTS, _EVENT_RENAMES, _EVENT_VIEW_FIELDS)),
    ResourceType("coordination.k8s.io", ("v1",), "Lease", "leases"),
)


def not_found(res: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.group_resource} "{name}" not found', _details(res, name))


def conflict(res: ResourceType, name: str) -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {res.group_resource} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    _details(res, name))


def invalid(res: ResourceType, name: str, problem: str) -> ApiError:
    return ApiError(422, "Invalid", f'{res.kind}.{res.group} "{name}" is invalid: {problem}'
                    if res.group else f'{res.kind} "{name}" is invalid: {problem}', _details(res, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _details(res: ResourceType, name: str) -> JSON:
    return {"name": name, "group": res.group, "kind": res.plural}


@dataclass(frozen=True)
class Requirement:
    """One term of a label or field selector; `op` is "=", "!=", "exists" or "!exists"."""

    key: str
    op: str
    value: str = ""

    def matches(self, values: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in values
        if self.op == "!exists":
            return self.key not in values
        equal = values.get(self.key) == self.value
        return equal if self.op == "=" else not equal


@dataclass(frozen=True)
class Selector:
    labels: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, res: ResourceType, label_selector: str, field_selector: str) -> Selector:
        fields = tuple(Requirement(_stored_label(res, term.key), term.op, term.value)
                       for term in _parse_terms(field_selector, allow_existence=False))
        return cls(_parse_terms(label_selector, allow_existence=True), fields)

    def matches(self, obj: JSON) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        if not all(term.matches(labels) for term in self.labels):
            return False
        return all(term.matches({term.key: _field(obj, term.key)}) for term in self.fields)


def _stored_label(res: ResourceType, label: str) -> str:
    """The stored object's field a selector's label names, as the server converts it."""
    stored = label if label in ("metadata.name", "metadata.namespace") else (
        res.view.stored_label(label) if res.view else (label if label in res.field_labels else None))
    if stored is None:
        raise bad_request(f"field label not supported: {label}")
    return stored


def _parse_terms(text: str, allow_existence: bool) -> tuple[Requirement, ...]:
    if "(" in text:
        raise bad_request(f"set-based selectors are not supported by this test server: {text!r}")
    return tuple(_parse_term(term.strip(), allow_existence) for term in text.split(",") if term.strip())


def _parse_term(term: str, allow_existence: bool) -> Requirement:
    for op, canonical in (("!=", "!="), ("==", "="), ("=", "=")):
        if op in term:
            key, value = term.split(op, 1)
            return Requirement(key.strip(), canonical, value.strip())
    if not allow_existence:
        raise bad_request(f"invalid selector: {term!r}")
    if term.startswith("!"):
        return Requirement(term[1:].strip(), "!exists")
    return Requirement(term, "exists")


def _field(obj: JSON, dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


class EndReason(enum.Enum):
    CLOSED = "closed"  # the stream ends cleanly, as at the watch timeout
    ABORTED = "aborted"  # the connection is cut mid-stream


@dataclass(frozen=True)
class Change:
    """One write in the history. `prev` is the state before a MODIFIED."""

    rv: int
    type: str
    resource: ResourceType
    namespace: str
    obj: JSON
    prev: JSON | None = None


@dataclass(frozen=True)
class WatchEvent:
    type: str
    obj: JSON


@dataclass(eq=False)
class Subscription:
    """One open watch. Only the store touches it, always under its lock."""

    resource: ResourceType
    namespace: str | None
    selector: Selector
    pending: list[WatchEvent] = field(default_factory=list)
    ended: EndReason | None = None

    def offer(self, change: Change) -> None:
        if change.resource != self.resource or self.namespace not in (None, change.namespace):
            return
        now = self.selector.matches(change.obj)
        if change.type != "MODIFIED":
            event_type = change.type if now else None
        else:
            # An object moving into or out of the selector looks added or deleted, as on a real server.
            before = change.prev is not None and self.selector.matches(change.prev)
            event_type = {(True, True): "MODIFIED", (False, True): "ADDED",
                          (True, False): "DELETED"}.get((before, now))
        if event_type:
            self.pending.append(WatchEvent(event_type, change.obj))


@dataclass(frozen=True)
class Batch:
    """What a watch gets on waking: events to send, then possibly the end of the stream."""

    events: list[WatchEvent]
    ended: EndReason | None
    resource_version: int  # every change up to here has been offered to the watch


@dataclass(frozen=True)
class Deletion:
    """The outcome of a delete: `gone` is False while finalizers hold the object."""

    obj: JSON
    gone: bool


class Target(enum.Enum):
    MAIN = "main"
    STATUS = "status"


class Store:
    """Objects keyed by (resource, namespace, name). Stored dicts are never mutated,
    only replaced, so history entries can share them without copying."""

    def __init__(self, history_limit: int = 1000) -> None:
        self._cond = threading.Condition()
        self._objects: dict[tuple[ResourceType, str, str], JSON] = {}
        self._rv = 0
        self._history: deque[Change] = deque()
        self._history_limit = history_limit
        self._floor = 0  # highest resourceVersion no longer in the history
        self._subscriptions: set[Subscription] = set()

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._rv

    def get(self, res: ResourceType, namespace: str, name: str) -> JSON:
        with self._cond:
            return copy.deepcopy(self._existing(res, namespace, name))

    def list_objects(self, res: ResourceType, namespace: str | None,
                     selector: Selector = Selector()) -> tuple[list[JSON], int]:
        """Matching objects sorted by namespace and name, and the current resourceVersion."""
        with self._cond:
            items = [copy.deepcopy(obj) for obj in self._matching(res, namespace, selector)]
            return items, self._rv

    def create(self, res: ResourceType, namespace: str, body: JSON, keep_status: bool = False,
               dry_run: bool = False) -> JSON:
        """`keep_status` seeds an object as if its status had already been written. With `dry_run`,
        every check and default as for a create, and nothing stored: the object has no resourceVersion."""
        obj = _ingest(res, body)
        meta = obj["metadata"]
        if meta.get("namespace") not in (None, "", namespace):
            raise bad_request("the namespace of the provided object does not match the namespace "
                              "sent on the request")
        meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_SUFFIX_ALPHABET, k=5))
        if not meta.get("name"):
            raise invalid(res, "", "metadata.name: Required value: name or generateName is required")
        stored = res.stored
        if stored.status_subresource and not keep_status:
            obj.pop("status", None)
        if stored.normalize:
            stored.normalize(obj)
        for field_name in ("generation", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field_name, None)
        with self._cond:
            key = (res.stored, namespace, meta["name"])
            if key in self._objects:
                raise ApiError(409, "AlreadyExists", f'{res.group_resource} "{meta["name"]}" already exists',
                               _details(res, meta["name"]))
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
            if stored.custom:
                meta["generation"] = 1
            if dry_run:
                return copy.deepcopy(obj)
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects[key] = obj
            self._record("ADDED", res.stored, obj)
            return copy.deepcopy(obj)

    def update(self, res: ResourceType, namespace: str, name: str, body: JSON, target: Target,
               require_resource_version: bool, dry_run: bool = False) -> JSON:
        """PUT: replace the object (or only its status) if the resourceVersion precondition holds."""
        obj = _ingest(res, body)
        if obj["metadata"].get("name", name) != name:
            raise bad_request(f"the name of the object ({obj['metadata']['name']}) does not match "
                              f"the name on the URL ({name})")
        wanted = obj["metadata"].get("resourceVersion")
        with self._cond:
            current = self._existing(res, namespace, name)
            if not wanted and require_resource_version:
                raise invalid(res, name, "metadata.resourceVersion: Invalid value: 0x0: "
                                         "must be specified for an update")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            return copy.deepcopy(self._commit(res, current, _next_state(res.stored, current, obj, target), dry_run))

    def patch(self, res: ResourceType, namespace: str, name: str,
              apply: Callable[[JSON], JSON], target: Target, dry_run: bool = False) -> JSON:
        """PATCH: `apply` maps a copy of the current object to the patched one.

        A resourceVersion the patch put into the object acts as a precondition."""
        with self._cond:
            current = self._existing(res, namespace, name)
            patched = apply(copy.deepcopy(current))
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata", {}), dict):
                raise bad_request("the patched object is not a JSON object with object metadata")
            wanted = patched.get("metadata", {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            new = _next_state(res.stored, current, _ingest(res, patched), target)
            return copy.deepcopy(self._commit(res, current, new, dry_run))

    def delete(self, res: ResourceType, namespace: str, name: str, dry_run: bool = False) -> Deletion:
        with self._cond:
            current = self._existing(res, namespace, name)
            meta = current["metadata"]
            if not meta.get("finalizers"):
                return Deletion(copy.deepcopy(current if dry_run else self._remove(res, current)), gone=True)
            if meta.get("deletionTimestamp"):
                return Deletion(copy.deepcopy(current), gone=False)
            marked = copy.deepcopy(current)
            marked["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0)
            if "generation" in meta:
                marked["metadata"]["generation"] = meta["generation"] + 1
            return Deletion(copy.deepcopy(self._commit(res, current, marked, dry_run)), gone=False)

    def subscribe(self, res: ResourceType, namespace: str | None, selector: Selector,
                  since: int | None) -> Subscription:
        """Open a watch: from `since` replays the history, without it sends synthetic ADDEDs."""
        sub = Subscription(res.stored, namespace, selector)
        with self._cond:
            if since is None:
                sub.pending = [WatchEvent("ADDED", obj) for obj in self._matching(res, namespace, selector)]
            elif since < self._floor:
                raise ApiError(410, "Expired", f"too old resource version: {since} ({self._floor})")
            else:
                for change in self._history:
                    if change.rv > since:
                        sub.offer(change)
            self._subscriptions.add(sub)
            return sub

    def next_events(self, sub: Subscription, timeout: float) -> Batch:
        with self._cond:
            self._cond.wait_for(lambda: sub.pending or sub.ended, timeout)
            events, sub.pending = sub.pending, []
            return Batch(events, sub.ended, self._rv)

    def unsubscribe(self, sub: Subscription) -> None:
        with self._cond:
            self._subscriptions.discard(sub)

    def end_watches(self, reason: EndReason) -> None:
        with self._cond:
            for sub in self._subscriptions:
                sub.ended = sub.ended or reason
            self._cond.notify_all()

    def watch_count(self, res: ResourceType | None = None) -> int:
        with self._cond:
            return sum(1 for sub in self._subscriptions
                       if sub.ended is None and (res is None or res.stored == sub.resource))

    def is_compacted(self, rv: int) -> bool:
        """Whether the state at `rv` is forgotten: a list continued from it gets 410 Expired."""
        with self._cond:
            return rv < self._floor

    def compact(self) -> None:
        """Forget the history: watches from any older resourceVersion now get 410 Expired."""
        with self._cond:
            self._history.clear()
            self._floor = self._rv

    def _existing(self, res: ResourceType, namespace: str, name: str) -> JSON:
        obj = self._objects.get((res.stored, namespace, name))
        if obj is None:
            raise not_found(res, name)
        return obj

    def _matching(self, res: ResourceType, namespace: str | None, selector: Selector) -> list[JSON]:
        keys = sorted(key for key in self._objects
                      if key[0] == res.stored and namespace in (None, key[1]))
        return [obj for obj in map(self._objects.__getitem__, keys) if selector.matches(obj)]

    def _commit(self, res: ResourceType, current: JSON, new: JSON, dry_run: bool = False) -> JSON:
        """Store an update; an unchanged object is not written, as etcd skips identical writes.
        A dry run returns the update at the current resourceVersion and stores nothing."""
        if dry_run or new == current:
            return new
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        meta = new["metadata"]
        self._objects[(res.stored, meta["namespace"], meta["name"])] = new
        self._record("MODIFIED", res.stored, new, current)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(res, new)
        return new

    def _remove(self, res: ResourceType, current: JSON) -> JSON:
        meta = current["metadata"]
        del self._objects[(res.stored, meta["namespace"], meta["name"])]
        self._rv += 1
        last = copy.deepcopy(current)
        last["metadata"]["resourceVersion"] = str(self._rv)
        self._record("DELETED", res.stored, last)
        return last

    def _record(self, event_type: str, res: ResourceType, obj: JSON, prev: JSON | None = None) -> None:
        change = Change(self._rv, event_type, res, obj["metadata"]["namespace"], obj, prev)
        self._history.append(change)
        while len(self._history) > self._history_limit:
            self._floor = self._history.popleft().rv
        for sub in self._subscriptions:
            sub.offer(change)
        self._cond.notify_all()


def _ingest(res: ResourceType, body: JSON) -> JSON:
    """A private copy of a request body as stored, without apiVersion and kind (the URL decides those)."""
    if not isinstance(body, dict):
        raise bad_request("the request body is not a JSON object")
    obj = {key: copy.deepcopy(value) for key, value in body.items() if key not in ("apiVersion", "kind")}
    if res.view:
        obj = res.view.storable(obj)
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request("metadata is not a JSON object")
    return obj


def _next_state(res: ResourceType, current: JSON, body: JSON, target: Target) -> JSON:
    """What an update turns `current` into, keeping what this write may not change."""
    if target is Target.STATUS:
        new = copy.deepcopy(current)
        _set_or_drop(new, "status", body.get("status"))
        return new
    new = body
    for key in SYSTEM_METADATA:
        _set_or_drop(new["metadata"], key, copy.deepcopy(current["metadata"].get(key)))
    if res.status_subresource:
        _set_or_drop(new, "status", copy.deepcopy(current.get("status")))
    if res.normalize:
        res.normalize(new)
    if res.custom and _content(new) != _content(current):
        new["metadata"]["generation"] = current["metadata"]["generation"] + 1
    return new


def _set_or_drop(mapping: JSON, key: str, value: Any) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def _content(obj: JSON) -> JSON:
    """What counts for `generation`: everything but metadata and status."""
    return {key: value for key, value in obj.items() if key not in ("metadata", "status")}


def _now() -> str:
    return datetime.now(UTC).strftime(_TIME)
