"""Servers for tests of where credentials go: one that redirects every request to another host,
one that asks every client for credentials, both recording each request with its headers.

`Redirector` answers every request with a redirect (301, 302, 307 or 308) to the same path and
query on its `target`; `Challenger` answers 401 with a `WWW-Authenticate` challenge, except at
`/token`, where it hands out a token as a registry's token realm does. 127.0.0.1 and 127.0.0.2
are different hosts on one machine:

    with Challenger(host="127.0.0.2") as elsewhere, Redirector(elsewhere.url, 307) as redirector:
        httpx.get(redirector.url + "/x", headers={"Authorization": "token t"}, follow_redirects=True)
        elsewhere.requests  # what arrived at the other host, headers and all
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from revision_controller.testing.service import ClosingHTTPServer, Service, Serving

REDIRECTS = (301, 302, 307, 308)
TOKEN_PATH = "/token"


@dataclass(frozen=True)
class Arrival:
    """One request as it arrived: `target` is the path with its query, as sent."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key.lower() == name.lower()), "")

    def text(self) -> str:
        """The whole request as text: where a credential would show, however it was sent."""
        lines = [f"{self.method} {self.target}", *(f"{key}: {value}" for key, value in self.headers)]
        return "\n".join(lines) + "\n\n" + self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


class Recorder(Service):
    """A server on `host` that records every request and answers it with `answer`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []
        self._serving = Serving(type(self).__name__)

    def answer(self, arrival: Arrival) -> Answer:
        return Answer(404)

    def start(self) -> None:
        self._serving.start(_HTTPServer((self.host, 0), self))

    def stop(self) -> None:
        self._serving.stop()

    @property
    def port(self) -> int:
        return self._serving.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[Arrival]:
        """Every request that arrived, oldest first (a copy)."""
        with self._lock:
            return list(self._arrivals)

    def arrived(self, arrival: Arrival) -> Answer:
        with self._lock:
            self._arrivals.append(arrival)
        return self.answer(arrival)


class Redirector(Recorder):
    """Redirects every request with `status` to the same path and query on `target`. With a
    `challenge`, asks requests without an `Authorization` header for credentials first, as a
    registry does before it redirects a pull elsewhere."""

    def __init__(self, target: str, status: int = 302, host: str = "127.0.0.1", *,
                 challenge: str | None = None) -> None:
        if status not in REDIRECTS:
            raise ValueError(f"status must be one of {REDIRECTS}, not {status}")
        super().__init__(host)
        self.target = target.rstrip("/")
        self.status = status
        self.challenge = challenge

    def answer(self, arrival: Arrival) -> Answer:
        if self.challenge is not None and not arrival.header("Authorization"):
            return Answer(401, (("WWW-Authenticate", self.challenge),))
        return Answer(self.status, (("Location", self.target + arrival.target),))


class Challenger(Recorder):
    """Asks every request for credentials with `challenge`, whatever it carries; hands out a
    token at `/token`."""

    def __init__(self, host: str = "127.0.0.1", challenge: str = 'Basic realm="challenger"') -> None:
        super().__init__(host)
        self.challenge = challenge

    def answer(self, arrival: Arrival) -> Answer:
        if arrival.target.split("?")[0] == TOKEN_PATH:
            body = json.dumps({"token": "from-the-challenger", "expires_in": 300}).encode()
            return Answer(200, (("Content-Type", "application/json"),), body)
        return Answer(401, (("WWW-Authenticate", self.challenge), ("Content-Type", "text/plain")),
                      b"credentials, please\n")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.recorder.arrived(Arrival(self.command, self.path, tuple(self.headers.items()), body))
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(ClosingHTTPServer):
    def __init__(self, address: tuple[str, int], recorder: Recorder) -> None:
        self.recorder = recorder
        super().__init__(address, _Handler)
