"""HTTP endpoints for the kubelet and Prometheus: /healthz, /readyz, /metrics.

Each check is a callable answering (ok, why); the answers are plain text, so
`curl` shows an operator what is wrong.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Check = Callable[[], tuple[bool, str]]
Routes = Mapping[str, Callable[[], tuple[int, str, bytes]]]

log = logging.getLogger(__name__)


def parse_address(address: str) -> tuple[str, int] | None:
    """`:8081`, `0.0.0.0:8081` or `127.0.0.1:0` as (host, port); None for `0` (disabled)."""
    if address.strip() == "0":
        return None
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        raise ValueError(f"{address!r} is not an address: write e.g. :8081 or 127.0.0.1:8081, or 0 to disable")
    return (host or "0.0.0.0", int(port))


class EndpointServer:
    """One HTTP server on its own thread, answering a fixed set of paths."""

    def __init__(self, address: tuple[str, int], routes: Routes) -> None:
        handler = type("Handler", (_Handler,), {"routes": routes})
        self._server = ThreadingHTTPServer(address, handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"http {address}", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def probe_routes(checks: Mapping[str, Mapping[str, Check]]) -> dict[str, Callable[[], tuple[int, str, bytes]]]:
    """Routes such as /healthz answering 200 when every named check passes, else 503."""
    return {path: functools.partial(_report, named) for path, named in checks.items()}


def metrics_route(registry: CollectorRegistry) -> dict[str, Callable[[], tuple[int, str, bytes]]]:
    return {"/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry))}


def _report(checks: Mapping[str, Check]) -> tuple[int, str, bytes]:
    lines, healthy = [], True
    for name, check in checks.items():
        ok, why = check()
        healthy &= ok
        lines.append(f"[{'+' if ok else '-'}]{name} {'ok' if ok else 'failed: ' + why}")
    lines.append("ok" if healthy else "failed")
    return (200 if healthy else 503), "text/plain; charset=utf-8", ("\n".join(lines) + "\n").encode()


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[Routes] = {}  # each server makes a subclass with its own

    def do_GET(self) -> None:
        route = self.routes.get(self.path.split("?", 1)[0])
        status, content_type, body = route() if route else (404, "text/plain", b"not found\n")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("probe %s", format % args)
