"""A Kubernetes API server stand-in on loopback for tests: real HTTPS, real clients.

`ApiServer` serves the kinds in `store.RESOURCES` over HTTP/1.1 with TLS (a CA
and serving certificate made at start, see `certificates`; `tls=False` for plain
HTTP) with the URL shapes, status codes, watch streams and error bodies of the
real server, and gives tests direct access to the same store. What kubectl 1.33
needs besides: discovery and openapi (`discovery`), Tables with the Function
CRD's printer columns and for Events (`tables`), `events.k8s.io/v1` Events (a view
of the core ones, see `store.View`), Secrets POSTed in protobuf (`protobuf`),
server-side apply, dry runs, paged lists (`limit`, `continue`, 410 for a token older than
the history) and watch bookmarks.

`chaos()` makes a seeded share of requests fail as real servers and networks do (5xx, 429, 409, 410, cut watches,
late answers, resets) until `calm()`; `blackhole(token)` cuts one client off. Run it alone with
`python -m revision_controller.testing.apiserver --port N --kubeconfig PATH`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import builtins
import collections
import contextlib
import enum
import json
import random
import re
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from revision_controller.kube import REQUEST_TIMEOUT_SECONDS
from revision_controller.testing import protobuf
from revision_controller.testing.certificates import Certificates
from revision_controller.testing.discovery import AGGREGATED_MEDIA_TYPE, aggregated, legacy, openapi, wants
from revision_controller.testing.patches import PatchError, json_patch, merge_patch
from revision_controller.testing.service import ClosingHTTPServer, Service, Serving
from revision_controller.testing.store import (
    JSON,
    RESOURCES,
    ApiError,
    EndReason,
    ResourceType,
    Selector,
    Store,
    Subscription,
    Target,
    bad_request,
)
from revision_controller.testing.tables import TABLE_GROUP, TABLE_VERSIONS, has_table, table

TOKEN = "apiserver-standin-token"
DEFAULT_WATCH_TIMEOUT_SECONDS = 1800
BOOKMARK_SECONDS = 60.0  # a real server bookmarks a watch about once a minute
WATCH_POLL_SECONDS = 0.25  # how often an idle watch checks whether its client went away
UNAUTHENTICATED_PATHS = ("/version", "/healthz", "/livez", "/readyz")
# The version whose behaviour it follows (aggregated discovery v2, openapi v3): kubectl 1.33's.
VERSION_INFO: JSON = {"major": "1", "minor": "33", "gitVersion": "v1.33.0-standin",
                      "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                      "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22.0", "compiler": "gc",
                      "platform": "linux/amd64"}
TABLE_MEDIA_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
EXPIRED_CONTINUE = ("The provided continue parameter is too old to display a consistent list result. You can "
                    "start a new list without the continue parameter.")
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# Chaos: what a request may get instead of its answer (see `ApiServer.chaos`).
CHAOS_KINDS = ("500", "503", "429", "409", "410", "cut", "delay", "reset")
# A delayed answer comes a little after the daemon's client has given up on it.
CHAOS_DELAY_SECONDS = REQUEST_TIMEOUT_SECONDS + 1.0
RETRY_AFTER_SECONDS = 1
HOLD_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    authorization: str
    body: bytes
    accept: str = ""

    @property
    def is_watch(self) -> bool:
        return self.method == "GET" and _is_true(self.query.get("watch", ""))


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it, and what it got, for tests that count calls.

    `token` is the bearer token, which tells one client's calls from another's; `status` the
    code answered (0 for a connection reset, or a request held across a partition); `fault`
    the chaos kind it got, "" when it was served as asked; `body` what the client sent."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    token: str = field(default="", repr=False)
    status: int = 0
    fault: str = ""
    body: bytes = field(default=b"", repr=False)
    accept: str = ""


@dataclass(frozen=True)
class Reply:
    code: int
    body: JSON | str
    headers: tuple[tuple[str, str], ...] = ()
    media_type: str = "application/json"

    @classmethod
    def error(cls, error: ApiError) -> Reply:
        return cls(error.code, error.status())


class Signal(enum.Enum):
    TICK = "tick"  # nothing to send: a chance to notice a departed client
    ABORT = "abort"  # cut the connection without ending the chunked stream


WatchLines = Generator[bytes | Signal, None, None]


@dataclass(frozen=True)
class Stream:
    """A watch response: newline-terminated JSON events, sent chunked."""

    lines: WatchLines


@dataclass(frozen=True)
class Late:
    """An answer sent only after `seconds`: the work is done, the client hears of it too late."""

    response: Reply | Stream
    seconds: float


@dataclass(frozen=True)
class Reset:
    """No answer: the connection is reset (RST), as by a crashing proxy or server."""


@dataclass(frozen=True)
class Held:
    """No answer while the client is cut off (`ApiServer.blackhole`), then a reset."""

    token: str


Response = Reply | Stream | Late | Reset | Held


@dataclass
class _Chaos:
    rate: float
    draws: random.Random
    kinds: tuple[str, ...]
    delay: float


@dataclass(frozen=True)
class Page:
    items: list[JSON]
    metadata: JSON


@dataclass(frozen=True)
class Route:
    resource: ResourceType
    version: str
    namespace: str | None
    name: str | None
    status: bool


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    code: int
    remaining: int | None
    body: JSON | None

    def matches(self, request: Request) -> bool:
        return self.method in ("*", request.method) and bool(self.path.search(request.path))


_FAULT_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                  405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
                  422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
                  503: "ServiceUnavailable", 504: "Timeout"}


def _fault_status(code: int) -> JSON:
    reason = _FAULT_REASONS.get(code, "Unknown")
    return ApiError(code, reason, f"injected fault: {reason}").status()


class Api:
    """Everything between a parsed HTTP request and its answer; knows nothing of sockets."""

    def __init__(self, store: Store, resources: tuple[ResourceType, ...], require_auth: bool,
                 bookmark_seconds: float = BOOKMARK_SECONDS) -> None:
        self.store = store
        self.resources = resources
        self.require_auth = require_auth
        self.bookmark_seconds = bookmark_seconds
        self._lock = threading.Lock()
        self._log: list[RequestRecord] = []
        self._faults: list[Fault] = []
        self._chaos: _Chaos | None = None
        self._drawn: collections.Counter[str] = collections.Counter()
        self._blackholed: set[str] = set()
        self.stopping = threading.Event()

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def set_chaos(self, chaos: _Chaos | None) -> None:
        with self._lock:
            self._chaos = chaos

    @property
    def faults_drawn(self) -> dict[str, int]:
        with self._lock:
            return dict(self._drawn)

    def set_blackholed(self, token: str, cut_off: bool) -> None:
        with self._lock:
            if cut_off:
                self._blackholed.add(token)
            else:
                self._blackholed.discard(token)

    def is_blackholed(self, token: str) -> bool:
        with self._lock:
            return token in self._blackholed

    def hold(self, token: str) -> None:
        """Block while the client with `token` is cut off, or until the server stops."""
        while self.is_blackholed(token) and not self.stopping.wait(HOLD_POLL_SECONDS):
            pass

    def find(self, api_version: str, kind_or_plural: str) -> tuple[ResourceType, str]:
        group, _, version = api_version.rpartition("/")
        for res in self.resources:
            if res.group == group and version in res.versions and kind_or_plural in (res.kind, res.plural):
                return res, version
        raise KeyError(f"not served: {api_version} {kind_or_plural}")

    def handle(self, request: Request) -> Response:
        token = _bearer_token(request)
        kind = "blackhole" if self.is_blackholed(token) else self._draw(request)
        response = self._respond(request, kind)
        if isinstance(response, Stream) and token:
            response = Stream(self._unless_cut_off(response.lines, token))
        code = _code(response.response if isinstance(response, Late) else response)
        with self._lock:
            self._log.append(RequestRecord(request.method, request.path, request.query, request.content_type,
                                           token, code, kind or "", request.body, request.accept))
        return response

    def _draw(self, request: Request) -> str | None:
        """The chaos kind this request gets, if any."""
        with self._lock:
            chaos = self._chaos
            if chaos is None or chaos.draws.random() >= chaos.rate:
                return None
            kinds = [kind for kind in chaos.kinds if _applies(kind, request)]
            if not kinds:
                return None
            kind = chaos.draws.choice(kinds)
            self._drawn[kind] += 1
            return kind

    def _respond(self, request: Request, kind: str | None) -> Response:
        if kind == "blackhole":
            return Held(_bearer_token(request))
        if kind == "reset":
            return Reset()
        if kind in ("500", "503", "409"):
            return Reply(int(kind), _fault_status(int(kind)))
        if kind == "429":
            return Reply(429, _fault_status(429), (("Retry-After", str(RETRY_AFTER_SECONDS)),))
        if kind == "410":
            expired = ApiError(410, "Expired", "injected fault: too old resource version")
            return Stream(_just(_event_line("ERROR", expired.status())))
        served = self._served(request)
        if kind == "cut" and isinstance(served, Stream):
            return Stream(_cut_mid_event(served.lines))
        if kind == "delay":
            with self._lock:
                delay = self._chaos.delay if self._chaos else CHAOS_DELAY_SECONDS
            return Late(served, delay)
        return served

    def _unless_cut_off(self, lines: WatchLines, token: str) -> WatchLines:
        """A watch that ends abruptly once its client is cut off."""
        try:
            for line in lines:
                if self.is_blackholed(token):
                    yield Signal.ABORT
                    return
                yield line
        finally:
            lines.close()

    def _served(self, request: Request) -> Reply | Stream:
        """The answer without chaos: an injected fault, or the store's."""
        fault = self._take_fault(request)
        if fault is not None:
            return Reply(fault.code, fault.body if fault.body is not None else _fault_status(fault.code))
        if self.require_auth and request.path not in UNAUTHENTICATED_PATHS and not _has_bearer(request):
            return Reply.error(ApiError(401, "Unauthorized", "Unauthorized"))
        try:
            return self._serve(request)
        except ApiError as error:
            return Reply.error(error)
        except PatchError as error:
            return Reply.error(ApiError(422, "Invalid", str(error)))
        except Exception as error:  # noqa: BLE001 - a bug here must still answer, as the real server's 500 does
            traceback.print_exc()
            return Reply.error(ApiError(500, "InternalError", f"Internal error occurred: {error!r}"))

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            fault = next((f for f in self._faults if f.matches(request)), None)
            if fault is not None and fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
            return fault

    def _serve(self, request: Request) -> Reply | Stream:
        if request.path == "/version":
            return Reply(200, VERSION_INFO)
        if request.path in UNAUTHENTICATED_PATHS:
            return Reply(200, "ok")
        if wants(request.accept, "apidiscovery.k8s.io", ("v2",), "APIGroupDiscoveryList"):
            document = aggregated(request.path, self.resources)
            if document is not None:
                return Reply(200, document, media_type=AGGREGATED_MEDIA_TYPE)
        document = legacy(request.path, self.resources) or openapi(request.path, self.resources)
        if document is not None:
            return Reply(200, document)
        route = self._route(request.path)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        handler = {"GET": self._get, "POST": self._post, "PUT": self._put, "PATCH": self._patch,
                   "DELETE": self._delete}.get(request.method)
        if handler is None:
            raise _method_not_allowed()
        return handler(route, request)

    def _route(self, path: str) -> Route | None:
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) > 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not 1 <= len(rest) <= 3 or (namespace is None and len(rest) > 1):
            return None
        plural, name, subresource = [*rest, None, None][:3]
        res = next((r for r in self.resources
                    if (r.group, r.plural) == (group, plural) and version in r.versions), None)
        if res is None or subresource not in (None, "status") or (subresource and not res.status_subresource):
            return None
        return Route(res, version, namespace, name, subresource == "status")

    def _get(self, route: Route, request: Request) -> Reply | Stream:
        res, version = route.resource, route.version
        as_table = has_table(res) and wants(request.accept, TABLE_GROUP, TABLE_VERSIONS, "Table")
        include = request.query.get("includeObject", "Metadata")
        if route.name is not None:
            obj = self.store.get(res, route.namespace or "", route.name)
            if as_table:
                return Reply(200, table(res, version, [obj], None, include), media_type=TABLE_MEDIA_TYPE)
            return Reply(200, res.render(obj, version))
        selector = Selector.parse(res, request.query.get("labelSelector", ""),
                                  request.query.get("fieldSelector", ""))
        if _is_true(request.query.get("watch", "")):
            return self._watch(route, request, selector, include if as_table else None)
        page = self._page(route, request, selector)
        if as_table:
            listed = table(res, version, page.items, page.metadata["resourceVersion"], include)
            return Reply(200, {**listed, "metadata": page.metadata}, media_type=TABLE_MEDIA_TYPE)
        return Reply(200, {"apiVersion": res.api_version(version), "kind": f"{res.kind}List",
                           "metadata": page.metadata, "items": [res.render(item, version) for item in page.items]})

    def _page(self, route: Route, request: Request, selector: Selector) -> Page:
        """One page of a list: all of it without `limit`, else `limit` items and a continue token."""
        limit = _integer(request.query.get("limit", ""))
        token = request.query.get("continue", "")
        items, rv = self.store.list_objects(route.resource, route.namespace, selector)
        if token:
            rv, start = _continuation(token)
            if self.store.is_compacted(rv):
                raise ApiError(410, "Expired", EXPIRED_CONTINUE)
            after = tuple(start.split("/", 1))
            items = [item for item in items if _sort_key(item) > after]
        metadata: JSON = {"resourceVersion": str(rv)}
        if 0 < limit < len(items):
            if not selector.labels and not selector.fields:
                metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
            metadata["continue"] = _continue_token(rv, "/".join(_sort_key(items[-1])))
        return Page(items, metadata)

    def _watch(self, route: Route, request: Request, selector: Selector, table_rows: str | None) -> Stream:
        since = _resource_version(request.query.get("resourceVersion", ""))
        timeout = _integer(request.query.get("timeoutSeconds", "")) or DEFAULT_WATCH_TIMEOUT_SECONDS
        try:
            sub = self.store.subscribe(route.resource, route.namespace, selector, since)
        except ApiError as error:
            if error.reason != "Expired":
                raise
            return Stream(_just(_event_line("ERROR", error.status())))
        bookmarks = _is_true(request.query.get("allowWatchBookmarks", ""))
        render = _watch_renderer(route, table_rows)
        return Stream(self._events(sub, render, time.monotonic() + timeout, bookmarks))

    def _events(self, sub: Subscription, render: Callable[[JSON], JSON], deadline: float,
                bookmarks: bool) -> WatchLines:
        """The watch's events; with `bookmarks`, a BOOKMARK every `bookmark_seconds` and one as it
        times out, carrying nothing but the resourceVersion every change up to which it has seen."""
        next_bookmark = time.monotonic() + self.bookmark_seconds
        try:
            while True:
                left = max(0.0, min(deadline, next_bookmark if bookmarks else deadline) - time.monotonic())
                batch = self.store.next_events(sub, min(WATCH_POLL_SECONDS, left))
                for event in batch.events:
                    yield _event_line(event.type, render(event.obj))
                if batch.ended is EndReason.ABORTED:
                    yield Signal.ABORT
                if batch.ended is not None:
                    return
                now = time.monotonic()
                if bookmarks and (now >= next_bookmark or now >= deadline):
                    next_bookmark = now + self.bookmark_seconds
                    yield _event_line("BOOKMARK", render(
                        {"metadata": {"resourceVersion": str(batch.resource_version)}}))
                if now >= deadline:
                    return
                if not batch.events:
                    yield Signal.TICK
        finally:
            self.store.unsubscribe(sub)

    def _post(self, route: Route, request: Request) -> Reply:
        if route.name is not None or route.namespace is None:
            raise _method_not_allowed()
        created = self.store.create(route.resource, route.namespace, _json_body(request), dry_run=_dry_run(request))
        return Reply(201, route.resource.render(created, route.version))

    def _put(self, route: Route, request: Request) -> Reply:
        if route.name is None:
            raise _method_not_allowed()
        res = route.resource
        updated = self.store.update(res, route.namespace or "", route.name, _json_body(request),
                                    _target(route), require_resource_version=res.custom, dry_run=_dry_run(request))
        return Reply(200, res.render(updated, route.version))

    def _patch(self, route: Route, request: Request) -> Reply:
        if route.name is None:
            raise _method_not_allowed()
        res, version = route.resource, route.version
        if request.content_type == APPLY_PATCH:
            return self._apply(route, route.name, request)
        apply = _patcher(res, version, request)
        patched = self.store.patch(res, route.namespace or "", route.name, apply, _target(route), _dry_run(request))
        return Reply(200, res.render(patched, version))

    def _apply(self, route: Route, name: str, request: Request) -> Reply:
        """Server-side apply, simplified: the applied configuration merges into the object (or
        creates it). No managedFields are kept, so fields dropped from a configuration stay."""
        if not request.query.get("fieldManager"):
            raise bad_request("PATCH with application/apply-patch+yaml requires a fieldManager query parameter")
        res, version, namespace = route.resource, route.version, route.namespace or ""
        config = _yaml_body(request)
        if config.get("metadata", {}).get("name", name) != name:
            raise bad_request(f"the name of the object ({config['metadata']['name']}) does not match "
                              f"the name on the URL ({name})")
        try:
            self.store.get(res, namespace, name)
        except ApiError as error:
            if error.code != 404 or route.status:
                raise
            created = self.store.create(res, namespace, {**config, "metadata": {**config.get("metadata", {}),
                                                                                "name": name}},
                                        dry_run=_dry_run(request))
            return Reply(201, res.render(created, version))
        patched = self.store.patch(res, namespace, name, lambda obj: merge_patch(res.render(obj, version), config),
                                   _target(route), _dry_run(request))
        return Reply(200, res.render(patched, version))

    def _delete(self, route: Route, request: Request) -> Reply:
        if route.name is None or route.status:
            raise _method_not_allowed()
        res = route.resource
        deletion = self.store.delete(res, route.namespace or "", route.name,
                                     _dry_run(request) or _deletion_dry_run(request))
        if not deletion.gone:
            return Reply(200, res.render(deletion.obj, route.version))
        return Reply(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                           "details": {"name": route.name, "group": res.group, "kind": res.plural,
                                       "uid": deletion.obj["metadata"]["uid"]}})


def _watch_renderer(route: Route, table_rows: str | None) -> Callable[[JSON], JSON]:
    """How a watch sends each object: as itself, or as a one-row Table whose first event
    alone carries the column definitions, as the real server does for `kubectl get -w`."""
    res, version = route.resource, route.version
    if table_rows is None:
        return lambda obj: res.render(obj, version)
    first = [True]

    def render(obj: JSON) -> JSON:
        rows = [obj] if "name" in obj["metadata"] else []
        rendered = table(res, version, rows, obj["metadata"].get("resourceVersion"), table_rows)
        if not first[0]:
            rendered.pop("columnDefinitions")
        first[0] = False
        return rendered
    return render


def _sort_key(obj: JSON) -> tuple[str, ...]:
    """The order the store lists in: by namespace, then name."""
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _continue_token(rv: int, last_key: str) -> str:
    """The server's continue token: the list's resourceVersion and the key to start after."""
    token = {"v": "meta.k8s.io/v1", "rv": rv, "start": last_key + "\x00"}
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode()


def _continuation(token: str) -> tuple[int, str]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        rv, start = int(decoded["rv"]), str(decoded["start"])
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                          "(version meta.k8s.io/v1)") from None
    return rv, start.removesuffix("\x00")


def _patcher(res: ResourceType, version: str, request: Request) -> Callable[[JSON], JSON]:
    content_type = request.content_type
    if content_type == MERGE_PATCH or (content_type == STRATEGIC_MERGE_PATCH and not res.custom):
        patch = _json_body(request)
        return lambda obj: merge_patch(res.render(obj, version), patch)
    if content_type == JSON_PATCH:
        operations = _json_value(request)
        if not isinstance(operations, list):
            raise bad_request("the JSON patch is not a JSON array of operations")
        return lambda obj: json_patch(res.render(obj, version), operations)
    raise ApiError(415, "UnsupportedMediaType",
                   "the body of the request was in an unknown format - accepted media types include: "
                   f"{JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}"
                   + ("" if res.custom else f", {STRATEGIC_MERGE_PATCH}"))


def _dry_run(request: Request) -> bool:
    """`dryRun=All`: the write is checked and answered, not stored (`kubectl diff`, `--dry-run=server`)."""
    value = request.query.get("dryRun", "")
    if value not in ("", "All"):
        raise bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return value == "All"


def _deletion_dry_run(request: Request) -> bool:
    """A dry run asked for in the DeleteOptions body, where client-go puts it."""
    options = _json_value(request) if request.body else None
    dry_run = options.get("dryRun") if isinstance(options, dict) else None
    if dry_run in (None, []):
        return False
    if dry_run != ["All"]:
        raise bad_request(f'dryRun: Unsupported value: {json.dumps(dry_run)}: supported values: "All"')
    return True


def _target(route: Route) -> Target:
    return Target.STATUS if route.status else Target.MAIN


def _method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def _json_value(request: Request) -> Any:
    try:
        return json.loads(request.body or b"null")
    except ValueError as error:
        raise bad_request(f"the request body is not valid JSON: {error}") from None


def _yaml_body(request: Request) -> JSON:
    try:
        body = yaml.safe_load(request.body or b"null")
    except yaml.YAMLError as error:
        raise bad_request(f"error decoding YAML: {error}") from None
    if not isinstance(body, dict):
        raise bad_request("the applied configuration is not an object")
    return body


def _json_body(request: Request) -> JSON:
    if request.content_type == protobuf.MEDIA_TYPE:
        return protobuf.decode(request.body)
    body = _json_value(request)
    if not isinstance(body, dict):
        raise bad_request("the request body is not a JSON object")
    return body


def _has_bearer(request: Request) -> bool:
    return bool(_bearer_token(request))


def _bearer_token(request: Request) -> str:
    scheme, _, token = request.authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _is_true(value: str) -> bool:
    """Go's strconv.ParseBool, which the server uses for query flags."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


def _integer(value: str) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        raise bad_request(f"invalid integer: {value!r}") from None


def _resource_version(value: str) -> int | None:
    """None for "start with the current state": an absent or "0" resourceVersion."""
    if value in ("", "0"):
        return None
    if not value.isdigit():
        raise bad_request(f"invalid resource version: {value!r}")
    return int(value)


def _event_line(event_type: str, obj: JSON) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _just(line: bytes) -> WatchLines:
    yield line


def _code(response: Response) -> int:
    if isinstance(response, Reply):
        return response.code
    return 200 if isinstance(response, Stream) else 0


def _applies(kind: str, request: Request) -> bool:
    """Which chaos kinds a request may get: 409 only on status patches, 410 and a cut only on watches."""
    if kind == "409":
        return request.method == "PATCH" and request.path.endswith("/status")
    if kind in ("410", "cut"):
        return request.is_watch
    return True


def _cut_mid_event(lines: WatchLines) -> WatchLines:
    """The watch as served up to its first event, of which only half goes out before the cut."""
    try:
        for line in lines:
            if isinstance(line, bytes):
                yield line[:len(line) // 2]
                yield Signal.ABORT
                return
            yield line
    finally:
        lines.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HTTPServer

    def do_GET(self) -> None:
        api = self.server.api
        response = api.handle(self._request())
        if isinstance(response, Late):
            stopped = api.stopping.wait(response.seconds)
            response = Reset() if stopped else response.response
        if isinstance(response, Held):
            api.hold(response.token)
            response = Reset()
        if isinstance(response, Reset):
            self._reset()
        elif isinstance(response, Stream):
            self._send_stream(response)
        else:
            self._send_reply(response)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read `ApiServer.requests` instead

    def _request(self) -> Request:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        return Request(method=self.command, path=url.path.rstrip("/") or "/",
                       query=dict(parse_qsl(url.query, keep_blank_values=True)),
                       content_type=(self.headers.get("Content-Type") or "").split(";")[0].strip(),
                       authorization=self.headers.get("Authorization") or "",
                       accept=self.headers.get("Accept") or "",
                       body=self.rfile.read(length) if length else b"")

    def _send_reply(self, reply: Reply) -> None:
        if isinstance(reply.body, str):
            payload, content_type = reply.body.encode(), "text/plain; charset=utf-8"
        else:
            payload, content_type = json.dumps(reply.body).encode(), reply.media_type
        self.send_response(reply.code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_stream(self, stream: Stream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in stream.lines:
                if line is Signal.ABORT:
                    self._abort()
                    return
                if line is Signal.TICK:
                    if self._client_gone():
                        self.close_connection = True
                        return
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        finally:
            stream.lines.close()

    def _reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0): the client reads ECONNRESET, not an end of stream."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the socket closes when its last file does; wfile is no file (wbufsize 0)
        self.connection.close()

    def _abort(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _client_gone(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        if isinstance(self.connection, ssl.SSLSocket):
            return True  # no peeking through TLS; a client sends nothing while its watch streams
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True


class _HTTPServer(ClosingHTTPServer):
    def __init__(self, address: tuple[str, int], api: Api, tls: ssl.SSLContext | None) -> None:
        self.api = api
        super().__init__(address, _Handler)
        if tls is not None:
            # The handshake happens on the first read, on the request's own thread.
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)


class ApiServer(Service):
    """The stand-in server. `stop()` cuts every connection, open watches included;
    `start()` again restarts it on the same port with the same objects and certificates.
    HTTPS unless `tls=False`; `write_kubeconfig` names the CA, `client_context()` trusts it
    for raw HTTP clients. A watch that asks for bookmarks gets one every `bookmark_seconds`.

    Test helpers take the same paths as HTTP requests, so they bump the
    resourceVersion and reach open watches; unlike HTTP they need no
    resourceVersion on update and `create` keeps a given status."""

    def __init__(self, port: int = 0, history_limit: int = 1000, *, host: str = "127.0.0.1",
                 require_auth: bool = True, tls: bool = True, bookmark_seconds: float = BOOKMARK_SECONDS) -> None:
        self.port = port
        self.host = host
        self._store = Store(history_limit)
        self._api = Api(self._store, RESOURCES, require_auth, bookmark_seconds)
        self._serving = Serving("apiserver")
        # Made once, so that a restarted server is still trusted by the kubeconfigs written before.
        self.certificates = Certificates.generate((host, "localhost")) if tls else None
        self._tls = self.certificates.server_context() if self.certificates else None

    def start(self) -> ApiServer:
        if not self._serving.running:
            self._api.stopping.clear()
            server = _HTTPServer((self.host, self.port), self._api, self._tls)
            self.port = server.server_address[1]
            self._serving.start(server)
        return self

    def stop(self) -> None:
        if not self._serving.running:
            return
        self._api.stopping.set()
        self._store.end_watches(EndReason.ABORTED)
        self._serving.stop()

    @property
    def url(self) -> str:
        return f"{'https' if self.certificates else 'http'}://{self.host}:{self.port}"

    def client_context(self) -> ssl.SSLContext | None:
        """What a raw HTTP client (urllib, httpx) needs to trust this server; None over plain HTTP."""
        return self.certificates.client_context() if self.certificates else None

    def write_kubeconfig(self, path: str | Path, namespace: str = "default", token: str = TOKEN) -> Path:
        """A kubeconfig for this server; a `token` of its own tells one client's requests from another's."""
        path = Path(path)
        cluster: JSON = {"server": self.url}
        if self.certificates:
            cluster["certificate-authority-data"] = base64.b64encode(self.certificates.ca_pem).decode()
        config = {"apiVersion": "v1", "kind": "Config", "preferences": {},
                  "clusters": [{"name": "standin", "cluster": cluster}],
                  "users": [{"name": "standin", "user": {"token": token}}],
                  "contexts": [{"name": "standin",
                                "context": {"cluster": "standin", "user": "standin", "namespace": namespace}}],
                  "current-context": "standin"}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    @property
    def resource_version(self) -> int:
        return self._store.resource_version

    def create(self, obj: JSON) -> JSON:
        """Store `obj` (its apiVersion and kind pick the resource), status included."""
        res, version = self._api.find(obj.get("apiVersion", ""), obj.get("kind", ""))
        namespace = obj.get("metadata", {}).get("namespace") or "default"
        return res.render(self._store.create(res, namespace, obj, keep_status=True), version)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> JSON | None:
        res, version = self._api.find(api_version, kind)
        try:
            return res.render(self._store.get(res, namespace, name), version)
        except ApiError:
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> builtins.list[JSON]:
        res, version = self._api.find(api_version, kind)
        return [res.render(item, version) for item in self._store.list_objects(res, namespace)[0]]

    def update(self, obj: JSON) -> JSON:
        """Replace the main resource; a resourceVersion in `obj` is a precondition."""
        res, version = self._api.find(obj.get("apiVersion", ""), obj.get("kind", ""))
        meta = obj.get("metadata", {})
        updated = self._store.update(res, meta.get("namespace") or "default", meta["name"], obj,
                                     Target.MAIN, require_resource_version=False)
        return res.render(updated, version)

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: JSON) -> JSON:
        """Merge-patch the main resource (status stays as it is)."""
        return self._merge_patch(api_version, kind, namespace, name, patch, Target.MAIN)

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, patch: JSON) -> JSON:
        """Merge-patch the status subresource, e.g. `{"status": {"phase": "Ready"}}`."""
        return self._merge_patch(api_version, kind, namespace, name, patch, Target.STATUS)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> JSON:
        """Delete (or, with finalizers, mark for deletion); the last state of the object."""
        res, version = self._api.find(api_version, kind)
        return res.render(self._store.delete(res, namespace, name).obj, version)

    def compact(self) -> None:
        """Forget the watch history: a watch from any resourceVersion older than now gets 410."""
        self._store.compact()

    def drop_watches(self, abrupt: bool = True) -> None:
        """End every open watch: abruptly (connection cut mid-stream, the client sees a
        protocol error) or cleanly (stream ends, as when the server's watch timeout hits)."""
        self._store.end_watches(EndReason.ABORTED if abrupt else EndReason.CLOSED)

    def watch_count(self, kind: str | None = None) -> int:
        """Open watches, optionally only on one kind or plural, e.g. to wait until a client watches."""
        if kind is None:
            return self._store.watch_count()
        return sum(self._store.watch_count(res) for res in RESOURCES
                   if kind in (res.kind, res.plural) and res.view is None)

    @property
    def requests(self) -> builtins.list[RequestRecord]:
        return self._api.requests

    def count_requests(self, method: str, path_regex: str) -> int:
        pattern = re.compile(path_regex)
        return sum(1 for r in self.requests if r.method == method and pattern.search(r.path))

    def inject_fault(self, method: str, path_regex: str, status: int, times: int | None = 1,
                     body: JSON | None = None) -> None:
        """The next `times` requests (None: all until `clear_faults`) whose method
        ("*" for any) and path match get `status` with `body` (default: a Status
        object) and never reach the store."""
        self._api.add_fault(Fault(method.upper(), re.compile(path_regex), status, times, body))

    def clear_faults(self) -> None:
        self._api.clear_faults()

    def chaos(self, rate: float, seed: int, kinds: Iterable[str] = CHAOS_KINDS,
              delay: float = CHAOS_DELAY_SECONDS) -> None:
        """From now on each request, with probability `rate`, gets one of the chaos `kinds`
        that applies to it, drawn from a generator seeded with `seed`, instead of its answer:
        "500", "503" or "429" (with Retry-After: 1) without reaching the store; "409" on status
        PATCHes; on watches "410" (an ERROR event, as for a too old resourceVersion) or "cut"
        (the stream cut after half of its first event); "delay" (served, but answered `delay`
        seconds later, past the daemon's client timeout); "reset" (a TCP reset, nothing served).
        The same seed draws the same faults for the same sequence of requests."""
        unknown = set(kinds) - set(CHAOS_KINDS)
        if unknown or not 0 <= rate <= 1:
            raise ValueError(f"chaos needs a rate in [0, 1] and kinds among {CHAOS_KINDS}, not {sorted(unknown)}")
        self._api.set_chaos(_Chaos(rate, random.Random(seed), tuple(kinds), delay))

    def calm(self) -> None:
        """No more chaos; answers already delayed still come late."""
        self._api.set_chaos(None)

    @property
    def faults_drawn(self) -> dict[str, int]:
        """How many requests got each chaos kind so far."""
        return self._api.faults_drawn

    def blackhole(self, token: str) -> None:
        """Cut off the client whose kubeconfig carries `token`: its open watches end abruptly and
        its requests get no answer until `reconnect(token)`, then a reset, as across a network
        partition."""
        self._api.set_blackholed(token, True)

    def reconnect(self, token: str) -> None:
        self._api.set_blackholed(token, False)

    def _merge_patch(self, api_version: str, kind: str, namespace: str, name: str, patch: JSON,
                     target: Target) -> JSON:
        res, version = self._api.find(api_version, kind)
        patched = self._store.patch(res, namespace, name, lambda obj: merge_patch(res.render(obj, version), patch),
                                    target)
        return res.render(patched, version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for this server here")
    parser.add_argument("--history-limit", type=int, default=1000)
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a bearer token")
    parser.add_argument("--plain-http", action="store_true", help="serve HTTP, not HTTPS")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with ApiServer(args.port, args.history_limit, host=args.host, require_auth=not args.no_auth,
                   tls=not args.plain_http) as server:
        if args.kubeconfig:
            server.write_kubeconfig(args.kubeconfig)
        print(f"serving on {server.url}", flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
