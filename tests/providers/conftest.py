"""Shared by the provider tests: the token that must never leak, and real git servers."""

from __future__ import annotations

import shutil
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from providers import smarthttp
from revision_controller.testing.gitserver import GitServer

TOKEN = "s3cr3t-token"


def assert_token_hidden(error: BaseException) -> None:
    """The token is nowhere in the error: not its text, repr, or what a logged traceback shows."""
    shown = "".join(traceback.format_exception(error))
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    assert TOKEN not in shown
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


@pytest.fixture(autouse=True)
def unknown_servers() -> Iterator[None]:
    """Every test meets its servers for the first time: ports are reused across tests."""
    smarthttp.SERVERS.forget()
    yield
    smarthttp.SERVERS.forget()


def require_git() -> None:
    if shutil.which("git") is None:
        pytest.skip("the git CLI is not installed, so git http-backend cannot serve the tests "
                    "(make test installs it)")


@pytest.fixture(params=[True, False], ids=["protocol-v2", "protocol-v0"])
def git_http_backend(request: pytest.FixtureRequest) -> Iterator[GitServer]:
    """Debian's git http-backend on loopback; once passing the client's protocol v2 request
    through, once dropping it so that git answers in protocol v0."""
    require_git()
    with GitServer(backend="http-backend", protocol_v2=request.param) as server:
        yield server


@contextmanager
def loopback(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A web server on loopback answering with `handler`; yields a repository URL on it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/repo.git"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy_environment(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Sets the proxy variables given (`HTTPS_PROXY="http://…"`), and clears every other one,
    in both cases, whatever this machine sets."""
    def set_only(**given: str) -> None:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)
        for name, value in given.items():
            monkeypatch.setenv(name, value)
    return set_only
