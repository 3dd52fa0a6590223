"""A faulty proxy on loopback: a reverse proxy in front of any of the HTTP stand-ins, or
(`ForwardProxy`) a forward proxy, as `HTTP_PROXY`/`HTTPS_PROXY` name one.

Put it between the daemon and a git server, a forge stand-in or the registry: it
forwards each request (method, path, query, headers and body, as sent) to the
upstream server and its answer back, except that, while chaos is on, a share of
the requests drawn from a seeded generator get a fault instead:

    with FaultProxy(github.url) as proxy:
        proxy.chaos(rate=0.2, seed=7)   # 20 % of requests fail, in one of PROXY_KINDS
        proxy.url                       # what the daemon is given instead of github.url
        proxy.calm()                    # from now on every request is forwarded
        proxy.requests                  # method, path, status and fault of each
        proxy.faults_drawn              # {"503": 4, "reset": 2, ...}

Transfer framing is hop-by-hop: answers are re-framed with their own Content-Length,
except to HEAD, 204 and 304, whose headers pass as the upstream wrote them.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hmac
import http.client
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import quote, urlsplit

from providers.base import DEFAULT_TIMEOUT_SECONDS
from revision_controller.testing.service import ClosingHTTPServer, Service, Serving, read_chunked

# "5xx" answers, 429 with Retry-After, an answer delayed past the providers' timeout, a TCP reset,
# a truncated answer (the Content-Length promises more than is sent, then the connection closes).
PROXY_KINDS = ("500", "502", "503", "429", "delay", "reset", "truncate")
DELAY_SECONDS = DEFAULT_TIMEOUT_SECONDS + 1.0
RETRY_AFTER_SECONDS = 1
UPSTREAM_TIMEOUT_SECONDS = 30.0
RELAY_POLL_SECONDS = 0.25  # how often an idle tunnel checks whether the proxy is stopping
# Proxy-Authorization never reaches the upstream; Proxy-Authenticate is not here: a ForwardProxy's 407 carries it.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "content-length"})


@dataclass(frozen=True)
class ProxiedRequest:
    """One request through the proxy: what it asked, the status the client got (0: none, the
    connection was reset or cut), the fault it got ("" when forwarded as is), and when
    (time.monotonic()) it arrived."""

    method: str
    path: str
    status: int
    fault: str
    at: float = field(compare=False)


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class _Sent:
    """What goes back to the client: `status` as it reads it (0: none), the bytes (None: a reset),
    and whether the connection closes after them."""

    status: int
    data: bytes | None
    close: bool = False


@dataclass
class _Chaos:
    rate: float
    draws: random.Random
    kinds: tuple[str, ...]


class FaultProxy(Service):
    """Forwards to `upstream` (`http://host:port`); `delay` is how long a delayed answer waits."""

    def __init__(self, upstream: str, *, delay: float = DELAY_SECONDS, host: str = "127.0.0.1") -> None:
        self.upstream = _origin(upstream)
        self.delay = delay
        self._host = host
        self._lock = threading.Lock()
        self._chaos: _Chaos | None = None
        self._drawn: collections.Counter[str] = collections.Counter()
        self._log: list[ProxiedRequest] = []
        self._serving = Serving("faultproxy")

    def start(self) -> None:
        server = _ProxyHTTPServer((self._host, 0), _Handler)
        server.proxy = self
        self._serving.start(server)

    def stop(self) -> None:
        self._serving.stop()

    @property
    def stopping(self) -> threading.Event:
        return self._serving.stopping

    @property
    def port(self) -> int:
        return self._serving.port

    @property
    def host(self) -> str:
        """What goes in an image reference: `127.0.0.1:PORT`."""
        return f"{self._host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def chaos(self, rate: float, seed: int, kinds: Iterable[str] = PROXY_KINDS) -> None:
        """From now on each request, with probability `rate`, gets one of `kinds` (PROXY_KINDS)
        drawn from a generator seeded with `seed`: the same seed draws the same faults for the
        same sequence of requests."""
        chosen = tuple(kinds)
        unknown = set(chosen) - set(PROXY_KINDS)
        if unknown or not chosen or not 0 <= rate <= 1:
            raise ValueError(f"chaos needs a rate in [0, 1] and kinds among {PROXY_KINDS}, not {sorted(unknown)}")
        with self._lock:
            self._chaos = _Chaos(rate, random.Random(seed), chosen)

    def calm(self) -> None:
        """Forward every request from now on (answers already delayed still come late)."""
        with self._lock:
            self._chaos = None

    @property
    def faults_drawn(self) -> dict[str, int]:
        with self._lock:
            return dict(self._drawn)

    @property
    def requests(self) -> list[ProxiedRequest]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._log)

    def draw(self) -> str:
        """The fault the next request gets, "" for none."""
        with self._lock:
            chaos = self._chaos
            if chaos is None or chaos.draws.random() >= chaos.rate:
                return ""
            kind = chaos.draws.choice(chaos.kinds)
            self._drawn[kind] += 1
            return kind

    def record(self, request: ProxiedRequest) -> None:
        with self._lock:
            self._log.append(request)

    def route(self, target: str) -> tuple[tuple[str, int], str]:
        """Where a request for `target` goes, and the path it asks there."""
        return self.upstream, target

    def refusal(self, headers: Message) -> _Answer | None:
        """An answer that stops the request before it is forwarded; None lets it through."""
        return None

    def forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> _Answer:
        """The upstream's answer to the request; a 502 when the upstream cannot be reached."""
        upstream, path = self.route(target)
        connection = http.client.HTTPConnection(*upstream, timeout=UPSTREAM_TIMEOUT_SECONDS)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            if body or method in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
            return _Answer(response.status, response.reason, response.getheaders(), response.read())
        except (OSError, http.client.HTTPException) as error:
            text = f"the fault proxy could not reach {upstream[0]}:{upstream[1]}: {error}\n"
            return _Answer(502, "Bad Gateway", [("Content-Type", "text/plain")], text.encode())
        finally:
            connection.close()


class ForwardProxy(FaultProxy):
    """A forward proxy: a request in absolute form (`GET http://host:port/path`) goes to the host it
    names, `CONNECT host:port` opens a tunnel (recorded, never faulted: what passes is TLS). With
    `credentials`, a request without them as Basic `Proxy-Authorization` gets 407. `url` is what
    goes in `HTTP_PROXY`/`HTTPS_PROXY`, with the credentials when there are some. `names` maps
    host names only the proxy resolves (as a proxy resolves names a pod cannot) to addresses."""

    def __init__(self, *, credentials: tuple[str, str] | None = None, names: dict[str, str] | None = None,
                 delay: float = DELAY_SECONDS, host: str = "127.0.0.1") -> None:
        super().__init__(f"http://{host}:1", delay=delay, host=host)
        self.credentials = credentials
        self.names = dict(names or {})

    @property
    def url(self) -> str:
        user = f"{quote(self.credentials[0])}:{quote(self.credentials[1])}@" if self.credentials else ""
        return f"http://{user}{self.host}"

    def route(self, target: str) -> tuple[tuple[str, int], str]:
        parts = urlsplit(target)
        path = parts.path or "/"
        host, port = _origin(f"http://{parts.netloc}")
        return (self.names.get(host, host), port), f"{path}?{parts.query}" if parts.query else path

    def refusal(self, headers: Message) -> _Answer | None:
        if self.credentials is None:
            return None
        expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
        if hmac.compare_digest(headers.get("Proxy-Authorization", "").encode(), expected.encode()):
            return None
        return _Answer(407, "Proxy Authentication Required",
                       [("Proxy-Authenticate", 'Basic realm="forward proxy"'), ("Content-Type", "text/plain")],
                       b"proxy credentials required\n")


def _origin(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"an upstream must be http://HOST[:PORT], not {url!r}")
    return parts.hostname, parts.port or 80


def _fault_answer(kind: str) -> _Answer:
    status = HTTPStatus(int(kind))
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        headers.append(("Retry-After", str(RETRY_AFTER_SECONDS)))
    return _Answer(status.value, status.phrase, headers, f"injected fault: {status.phrase}\n".encode())


def _head(answer: _Answer, method: str) -> bytes:
    """The status line and headers, with a Content-Length for the body (HEAD, 204 and 304
    keep the upstream's, which describes a body they do not carry)."""
    bodiless = method == "HEAD" or answer.status in (204, 304) or answer.status < 200
    lines = [f"HTTP/1.1 {answer.status} {answer.reason}"]
    lines += [f"{name}: {value}" for name, value in answer.headers
              if name.lower() not in HOP_BY_HOP or (bodiless and name.lower() == "content-length")]
    if not bodiless:
        lines.append(f"Content-Length: {len(answer.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds an idle kept-alive connection holds its thread
    disable_nagle_algorithm = True
    server: _ProxyHTTPServer

    def do_GET(self) -> None:
        proxy = self.server.proxy
        arrived = time.monotonic()
        body = self._body()
        kind = proxy.draw()
        sent = self._outcome(proxy, kind, body)
        # Recorded before it is sent: a client that has its answer finds its request recorded.
        proxy.record(ProxiedRequest(self.command, self.path, sent.status, kind, arrived))
        if sent.data is None:
            self._reset()
            return
        self.close_connection = self.close_connection or sent.close
        self._send(sent.data)

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def do_CONNECT(self) -> None:
        """A tunnel to the host and port named, for a forward proxy; a reverse proxy has none."""
        proxy = self.server.proxy
        arrived = time.monotonic()
        self.close_connection = True
        upstream = self._tunnel(proxy)
        if isinstance(upstream, _Answer):
            proxy.record(ProxiedRequest("CONNECT", self.path, upstream.status, "", arrived))
            self._send(_head(upstream, "CONNECT") + upstream.body)
            return
        proxy.record(ProxiedRequest("CONNECT", self.path, 200, "", arrived))
        with upstream:
            self._send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _relay(self.connection, upstream, proxy.stopping)

    def _tunnel(self, proxy: FaultProxy) -> socket.socket | _Answer:
        """The connection a CONNECT asks for, or the answer refusing it."""
        if not isinstance(proxy, ForwardProxy):
            return _Answer(405, "Method Not Allowed", [], b"a reverse proxy opens no tunnels\n")
        refused = proxy.refusal(self.headers)
        if refused is not None:
            return refused
        host, _, port = self.path.rpartition(":")
        try:
            return socket.create_connection((proxy.names.get(host, host), int(port)), UPSTREAM_TIMEOUT_SECONDS)
        except (OSError, ValueError) as error:
            return _Answer(502, "Bad Gateway", [], f"no tunnel to {self.path}: {error}\n".encode())

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _outcome(self, proxy: FaultProxy, kind: str, body: bytes) -> _Sent:
        """What the client gets, as `kind` says."""
        if kind == "reset" or (kind == "delay" and proxy.stopping.wait(proxy.delay)):
            return _Sent(0, None)
        refused = proxy.refusal(self.headers)
        if refused is not None:
            answer = refused
        elif kind in ("500", "502", "503", "429"):
            answer = _fault_answer(kind)
        else:
            headers = [(name, value) for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP]
            answer = proxy.forward(self.command, self.path, headers, body)
        head = _head(answer, self.command)
        payload = b"" if self.command == "HEAD" or answer.status in (204, 304) else answer.body
        if kind == "truncate":
            return _Sent(0, head + payload[:len(payload) // 2] if payload else head[:len(head) // 2], close=True)
        return _Sent(answer.status, head + payload)

    def _send(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError:  # the client gave up, e.g. on a delayed answer
            self.close_connection = True

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return read_chunked(self.rfile)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0): the client reads ECONNRESET."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the socket closes when its last file does; wfile is no file (wbufsize 0)
        self.connection.close()


def _relay(client: socket.socket, upstream: socket.socket, stopping: threading.Event) -> None:
    """Copy bytes both ways until either side closes or the proxy stops."""
    peers = {client: upstream, upstream: client}
    while not stopping.is_set():
        ready, _, _ = select.select(list(peers), [], [], RELAY_POLL_SECONDS)
        for source in ready:
            try:
                data = source.recv(65536)
                if not data:
                    return
                peers[source].sendall(data)
            except OSError:
                return


class _ProxyHTTPServer(ClosingHTTPServer):
    request_queue_size = 256
    proxy: FaultProxy
