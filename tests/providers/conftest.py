"""Shared by the provider tests: the token that must never leak, and a real git server.

`git_http_backend` serves repositories with Debian's `git http-backend` behind a
tiny CGI bridge, so the git provider is checked against the reference server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TOKEN = "s3cr3t-token"


def assert_token_hidden(error: BaseException) -> None:
    """The token is nowhere in the error: not its text, repr, or what a logged traceback shows."""
    shown = "".join(traceback.format_exception(error))
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    assert TOKEN not in shown
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


@dataclass
class Bridged:
    """One request the bridge passed to git http-backend."""

    method: str
    path: str
    authorization: str | None


@dataclass
class GitHttpBackend:
    """Bare repositories under `root`, served at `url` by git http-backend."""

    root: Path
    url: str
    requests: list[Bridged] = field(default_factory=list)

    def create_repository(self, name: str, branch: str = "main") -> WorkingCopy:
        """A bare repository `name`.git with one commit on `branch`, which is also HEAD."""
        bare = self.root / f"{name}.git"
        git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare), cwd=self.root)
        work = WorkingCopy(self.root / f"{name}-work", bare, f"{self.url}/{name}.git")
        git("init", "--quiet", f"--initial-branch={branch}", str(work.path), cwd=self.root)
        work.commit(branch, "initial commit")
        return work


@dataclass
class WorkingCopy:
    """A clone-like working repository that pushes to the served bare one."""

    path: Path
    bare: Path
    url: str

    def commit(self, branch: str, message: str) -> str:
        git("checkout", "--quiet", "-B", branch, cwd=self.path)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.path)
        git("push", "--quiet", str(self.bare), f"{branch}:{branch}", cwd=self.path)
        return self.head()

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.path)


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True, timeout=30)
    return done.stdout.strip()


class _CgiBridge(BaseHTTPRequestHandler):
    """Runs git http-backend once per request, as a web server's CGI support would."""

    server: _BridgeServer

    def do_GET(self) -> None:
        self._run_backend()

    def do_POST(self) -> None:
        self._run_backend()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _run_backend(self) -> None:
        path, _, query = self.path.partition("?")
        self.server.backend.requests.append(
            Bridged(self.command, path, self.headers.get("Authorization")))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        done = subprocess.run(["git", "http-backend"], input=body, env=self._cgi_env(path, query, body),
                              capture_output=True, check=False, timeout=30)
        self._send_cgi_output(done.stdout)

    def _cgi_env(self, path: str, query: str, body: bytes) -> dict[str, str]:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.server.backend.root),
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_PROJECT_ROOT": str(self.server.backend.root),
               "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path, "QUERY_STRING": query,
               "REQUEST_METHOD": self.command, "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "REMOTE_ADDR": "127.0.0.1"}
        if self.server.protocol_v2 and self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        return env

    def _send_cgi_output(self, output: bytes) -> None:
        head, separator, payload = output.partition(b"\r\n\r\n")
        if not separator:
            head, _, payload = output.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _BridgeServer(ThreadingHTTPServer):
    daemon_threads = True
    backend: GitHttpBackend
    protocol_v2: bool


@pytest.fixture(params=[2, 1], ids=["protocol-v2", "protocol-v1"])
def git_http_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GitHttpBackend]:
    """git http-backend on loopback; once passing the client's protocol v2 request through,
    once dropping it so the server answers in protocol v1."""
    if shutil.which("git") is None:
        pytest.skip("the git CLI is not installed, so git http-backend cannot serve the tests")
    server = _BridgeServer(("127.0.0.1", 0), _CgiBridge)
    server.protocol_v2 = request.param == 2
    server.backend = GitHttpBackend(root=tmp_path, url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.backend
    server.shutdown()
    server.server_close()
    thread.join()
