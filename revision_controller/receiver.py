"""The webhook receiver: POST /hooks/{github,gitlab,gitee,registry}.

A delivery is checked against the shared secret before its body is read as
JSON; an authentic one only says which targets to poll now, through
`on_announced`. A flood of bad requests costs little: a request without the
provider's signature header is refused before its body is read, bodies are
capped, and only a few deliveries are handled at once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from revision_controller.announcements import Announcement
from revision_controller.webhooks import HOOKS, BadPayload, Delivery, Hook

MAX_BODY_BYTES = 25 * 1024 * 1024
READ_TIMEOUT_SECONDS = 10.0
CONCURRENT_DELIVERIES = 4
QUEUE_SECONDS = 2.0
SIGNATURE_HEADERS = {"github": "X-Hub-Signature-256", "gitlab": "X-Gitlab-Token", "gitee": "X-Gitee-Token",
                     "registry": "Authorization"}

log = logging.getLogger(__name__)

# (provider, announcements, monotonic time of receipt) -> how many targets will be polled
OnAnnounced = Callable[[str, list[Announcement], float], int]
# (provider, outcome) for the webhooks_total metric
OnOutcome = Callable[[str, str], None]


@dataclass(frozen=True)
class Answer:
    code: int
    body: dict[str, Any]
    outcome: str


class SecretFile:
    """The shared secret, read again whenever the mounted file changes (a rotated Secret)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._secret = b""

    def read(self) -> bytes:
        """The secret, surrounding whitespace ignored; empty when the file is missing or empty."""
        try:
            stat = os.stat(self._path)
        except OSError:
            return b""
        with self._lock:
            if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                self._stamp = (stat.st_mtime_ns, stat.st_size)
                try:
                    self._secret = self._path.read_bytes().strip()
                except OSError:
                    self._secret = b""
            return self._secret


class Reception:
    """What to answer to one delivery; no sockets here."""

    def __init__(self, secret: SecretFile, on_announced: OnAnnounced,
                 clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._on_announced = on_announced
        self._clock = clock

    def answer(self, provider: str, delivery: Delivery, received: float) -> Answer:
        hook = HOOKS[provider]
        secret = self._secret.read()
        if not secret or not hook.authentic(delivery, secret, self._clock()):
            return Answer(401, {"error": "the signature is missing or wrong"}, "unauthorized")
        return self._announce(hook, delivery, received)

    def _announce(self, hook: Hook, delivery: Delivery, received: float) -> Answer:
        try:
            outcome = hook.announce(delivery)
        except BadPayload as error:
            return Answer(400, {"error": str(error)}, "bad_payload")
        if not isinstance(outcome, list):
            return Answer(200, {"ignored": outcome.reason}, "ignored")
        targets = self._on_announced(hook.provider, outcome, received)
        return Answer(202, {"targets": targets}, "accepted")


class WebhookReceiver:
    """The receiver's HTTP server on its own thread."""

    def __init__(self, address: tuple[str, int], reception: Reception, on_outcome: OnOutcome) -> None:
        handler = type("Handler", (_Handler,), {"reception": reception, "on_outcome": staticmethod(on_outcome),
                                                "slots": threading.BoundedSemaphore(CONCURRENT_DELIVERIES)})
        self._server = ThreadingHTTPServer(address, handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhooks", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()
        host, port = self._server.server_address[:2]
        log.info("receiving webhooks on %s:%d at /hooks/github, /hooks/gitlab, /hooks/gitee and /hooks/registry",
                 host, port)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    reception: Reception
    on_outcome: OnOutcome
    slots: threading.BoundedSemaphore
    timeout = READ_TIMEOUT_SECONDS

    def do_POST(self) -> None:
        received = time.monotonic()
        provider = self._provider()
        if provider is None:
            self._send(Answer(404, {"error": "not found: POST to /hooks/github, /hooks/gitlab, /hooks/gitee "
                                             "or /hooks/registry"}, "not_found"))
            return
        if not self.headers.get(SIGNATURE_HEADERS[provider]):
            self._send(Answer(401, {"error": "the signature is missing or wrong"}, "unauthorized"), provider)
            return
        length = self._length()
        if length is None:
            self._send(Answer(411, {"error": "send the body with a Content-Length"}, "bad_payload"), provider)
        elif length > MAX_BODY_BYTES:
            self._send(Answer(413, {"error": f"the body is larger than {MAX_BODY_BYTES} bytes"}, "too_large"),
                       provider)
        elif not self.slots.acquire(timeout=QUEUE_SECONDS):
            self._send(Answer(503, {"error": "too many deliveries at once: send it again"}, "busy"), provider)
        else:
            try:
                self._receive(provider, length, received)
            finally:
                self.slots.release()

    def _receive(self, provider: str, length: int, received: float) -> None:
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._send(self.reception.answer(provider, Delivery(headers, body), received), provider)

    def do_GET(self) -> None:
        self._refuse_method()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _refuse_method(self) -> None:
        if self._provider() is None:
            self._send(Answer(404, {"error": "not found"}, "not_found"))
        else:
            self._send(Answer(405, {"error": "webhooks are POSTed"}, "method_not_allowed"), allow="POST")

    def _provider(self) -> str | None:
        path = self.path.split("?", 1)[0].rstrip("/")
        provider = path.removeprefix("/hooks/")
        return provider if path.startswith("/hooks/") and provider in HOOKS else None

    def _length(self) -> int | None:
        value = self.headers.get("Content-Length", "")
        return int(value) if value.isdigit() else None

    def _send(self, answer: Answer, provider: str = "unknown", allow: str = "") -> None:
        self.on_outcome(provider, answer.outcome)
        body = json.dumps(answer.body).encode() + b"\n"
        if answer.code >= 400:
            self.close_connection = True
        self.send_response(answer.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhook %s", format % args)
