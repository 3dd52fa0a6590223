"""What every piece of test equipment is: started, serving in the background, stopped."""

from __future__ import annotations

import abc
import contextlib
import io
import socket
import sys
import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class Service(abc.ABC):
    """A server on loopback; `with` starts it and stops it however the block ends."""

    @abc.abstractmethod
    def start(self) -> object:
        """Start serving in the background."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop serving and release everything; safe to call twice."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


class ClosingHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that can cut its kept-alive connections, so that a stopped
    server answers nothing more, and that does not report clients hanging up."""

    daemon_threads = True  # a slow request must not hold up stop()
    block_on_close = False  # close_connections() ends them instead of joining their threads

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up are expected here, not news.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Serving:
    """A `ClosingHTTPServer` on its own thread: what each HTTP stand-in starts and stops.

    `stopping` is set while it stops, so that a handler holding a request (a delay, a
    watch) can let go at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stopping = threading.Event()
        self._server: ClosingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        assert self._server is not None, f"{self.name} is not running"
        return self._server.server_address[1]

    def start(self, server: ClosingHTTPServer) -> None:
        self.stopping.clear()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut the kept-alive connections, wait for the thread; safe to call twice."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None


def read_chunked(stream: io.BufferedIOBase) -> bytes:
    """A request body sent with `Transfer-Encoding: chunked` (git sends large POSTs so)."""
    chunks: list[bytes] = []
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        chunks.append(stream.read(size))
        stream.readline()
