"""A git server on loopback for tests and the demo.

Serves bare repositories from a temporary directory over git's smart HTTP
protocol on an ephemeral port, from a background thread: by default with
dulwich's WSGI app, in pure Python and protocol v0 only; with
`backend="http-backend"`, with Debian's real `git http-backend` as CGI, which
speaks protocol v2 to clients that ask for it. Either refuses pushes unless
`accept_pushes=True` (the demo's playground), as a host does without credentials:

    with GitServer() as server:
        repo = server.create_repository("demo", branch="main")
        first = repo.head()
        sha = repo.commit("add greeting", files={"hello.txt": "hi"})
        repo.set_branch("main", first)  # a force push back to the first commit
        repo.url                  # http://127.0.0.1:PORT/demo.git
        server.ls_remote_count("demo")  # how many ls-remotes clients made
        server.requests[-1].kind  # "advertisement", "capabilities", "ls-refs", "fetch", "other"
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dulwich.index import commit_tree
from dulwich.objects import Blob, Commit, ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.server import BackendRepo, FileSystemBackend
from dulwich.web import make_wsgi_chain

from revision_controller.testing.service import Service

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

AUTHOR = b"Revision Controller Demo <demo@example.invalid>"
FILE_MODE = 0o100644
_BRANCHES = b"refs/heads/"


Backend = Literal["dulwich", "http-backend"]

# What a git client asked for, by ServedRequest.kind.
ADVERTISEMENT = "advertisement"  # GET info/refs answered with every ref (protocol v0)
CAPABILITIES = "capabilities"    # GET info/refs answered with a v2 server's capabilities
LS_REFS = "ls-refs"              # POST git-upload-pack with a v2 ls-refs command
FETCH = "fetch"                  # any other POST git-upload-pack
OTHER = "other"


@dataclass(frozen=True)
class ServedRequest:
    """One HTTP request the server received, and what it was; unpacks as `method, path`.

    `answer` is the response body; `authorization` the header the client sent."""

    method: str
    path: str
    kind: str = OTHER
    git_protocol: str = ""
    authorization: str | None = field(default=None, repr=False)
    answer: bytes = field(default=b"", repr=False)

    def __iter__(self) -> Iterator[str]:
        return iter((self.method, self.path))

    def lists_refs_of(self, repository: str | None = None) -> bool:
        """Whether this request is one ls-remote (or the start of a fetch) of `repository`, or of
        any: a v0 ref advertisement, or a v2 ls-refs command."""
        if self.kind not in (ADVERTISEMENT, LS_REFS):
            return False
        return repository is None or self.path.startswith(f"/{repository}.git/")


@dataclass(frozen=True)
class HostedRepository:
    """A bare repository the server hosts; commits go straight into it."""

    name: str
    path: Path
    url: str
    default_branch: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def commit(self, message: str, files: Mapping[str, str | bytes | None] | None = None, *,
               branch: str | None = None, parent: str | None = None) -> str:
        """Add a commit on `branch` (default: the default branch) and return its full sha.

        `files` are written over the parent's tree; a file given as None is deleted. The
        parent is the branch's head; a branch that does not exist yet starts from the head of
        the default branch. A `parent` given replaces the branch's history with that commit's,
        as a force push does."""
        ref = _ref(branch or self.default_branch)
        with self._lock, Repo(str(self.path)) as repo:
            start = (ObjectID(parent.encode("ascii")) if parent
                     else _sha_of(repo, ref) or _sha_of(repo, _ref(self.default_branch)))
            tree = _tree_with(repo, start, files or {})
            sha = _store_commit(repo, tree, start, message)
            repo.refs[ref] = sha
        return sha.decode("ascii")

    def set_branch(self, branch: str, sha: str) -> None:
        """Point `branch` at commit `sha`, whatever it pointed at before: a force push."""
        with self._lock, Repo(str(self.path)) as repo:
            repo.refs[_ref(branch)] = ObjectID(sha.encode("ascii"))

    def head(self, branch: str | None = None) -> str | None:
        """The sha `branch` (default: the default branch) points at, None if it has no commits."""
        with Repo(str(self.path)) as repo:
            sha = _sha_of(repo, _ref(branch or self.default_branch))
        return sha.decode("ascii") if sha else None


class GitServer(Service):
    """Serves repositories over smart HTTP on 127.0.0.1 until stopped.

    With `password`, every request needs HTTP Basic credentials with that
    password (any user name), as hosts that take a token as the password do.
    `backend` picks the server (module docstring); `protocol_v2=False` makes
    git http-backend answer every client in protocol v0; `allow_filter=False`
    makes it refuse partial clone filters (`blob:none`), which it serves by
    default, as GitHub and GitLab do. dulwich's server serves no filter. `accept_pushes`
    lets `git push` update the repositories."""

    def __init__(self, *, password: str | None = None, host: str = "127.0.0.1",
                 backend: Backend = "dulwich", protocol_v2: bool = True,
                 allow_filter: bool = True, accept_pushes: bool = False) -> None:
        if backend not in ("dulwich", "http-backend"):
            raise ValueError(f"unknown backend {backend!r}: use 'dulwich' or 'http-backend'")
        self._password = password
        self._host = host
        self._backend = backend
        self._protocol_v2 = protocol_v2
        self._allow_filter = allow_filter
        self._accept_pushes = accept_pushes
        self._requests: list[ServedRequest] = []
        self._requests_lock = threading.Lock()
        self._root: Path | None = None
        self._httpd: _ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._backend == "http-backend" and shutil.which("git") is None:
            raise RuntimeError("GitServer(backend='http-backend') needs the git CLI: apt-get install git")
        self._root = Path(tempfile.mkdtemp(prefix="gitserver-"))
        app = (git_app(self._root, accept_pushes=self._accept_pushes) if self._backend == "dulwich"
               else http_backend_app(self._root, protocol_v2=self._protocol_v2,
                                     allow_filter=self._allow_filter, accept_pushes=self._accept_pushes))
        if self._password is not None:
            app = _requiring_password(app, self._password)
        self._httpd = make_server(self._host, 0, self._recording(app),
                                  server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"gitserver-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.release_connections()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        self._httpd = self._thread = self._root = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not running"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def requests(self) -> list[ServedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._requests_lock:
            return list(self._requests)

    def ls_remote_count(self, repository: str | None = None) -> int:
        """How many times clients listed refs (of `repository`, or of any): one per ls-remote,
        in either protocol. A v2 client's capabilities request is not counted."""
        return sum(request.lists_refs_of(repository) for request in self.requests)

    def create_repository(self, name: str, branch: str = "main", *,
                          empty: bool = False) -> HostedRepository:
        """A new bare repository whose HEAD is `branch`, with one commit unless `empty`."""
        assert self._root is not None, "start the server first"
        return init_repository(self._root, name, url=f"{self.url}/{name}.git", branch=branch,
                               empty=empty)

    @contextmanager
    def hang(self) -> Iterator[None]:
        """Within this block the server accepts connections but never reads or answers them,
        like a hung host. They are closed when the block ends; none count as requests."""
        assert self._httpd is not None, "start the server first"
        self._httpd.park_connections()
        try:
            yield
        finally:
            self._httpd.release_connections()

    def _recording(self, app: WSGIApp) -> WSGIApp:
        """Records each request once it is answered (the answer is buffered to tell its kind),
        before the answer is sent: a client that has its answer finds the request recorded."""
        def recorded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = _request_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            try:
                status, headers, answer = buffered(app, environ)
            except Exception:
                self._record(environ, body, b"")  # the server answers 500
                raise
            self._record(environ, body, answer)
            start_response(status, headers)
            return [answer]
        return recorded

    def _record(self, environ: dict[str, Any], body: bytes, answer: bytes) -> None:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        request = ServedRequest(method=method, path=path, kind=_kind(method, path, body, answer),
                                git_protocol=environ.get("HTTP_GIT_PROTOCOL", ""),
                                authorization=environ.get("HTTP_AUTHORIZATION"), answer=answer)
        with self._requests_lock:
            self._requests.append(request)


def _request_body(environ: dict[str, Any]) -> bytes:
    """The request's body. A chunked one (git sends a push over 1 MiB so) is decoded, and
    `environ` then gives its length instead, as the apps behind expect."""
    stream = environ["wsgi.input"]
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() != "chunked":
        return bytes(stream.read(int(environ.get("CONTENT_LENGTH") or 0)))
    chunks = []
    while size := int(stream.readline().split(b";")[0].strip() or b"0", 16):
        chunks.append(stream.read(size))
        stream.readline()
    while stream.readline().strip():  # trailers, up to the blank line
        pass
    body = b"".join(chunks)
    del environ["HTTP_TRANSFER_ENCODING"]
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def buffered(app: WSGIApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """The app's status, headers and whole body, whether it writes or yields it."""
    chunks: list[bytes] = []
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: object = None) -> Callable[[bytes], None]:
        started.append((status, headers))
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started[-1]
    return status, headers, b"".join(chunks)


def _kind(method: str, path: str, body: bytes, answer: bytes) -> str:
    if method == "GET" and path.endswith("/info/refs"):
        return CAPABILITIES if b"version 2\n" in answer[:64] else ADVERTISEMENT
    if method == "POST" and path.endswith("/git-upload-pack"):
        return LS_REFS if body[4:].startswith(b"command=ls-refs") else FETCH
    return OTHER


def init_repository(root: Path, name: str, *, url: str, branch: str = "main",
                    empty: bool = False) -> HostedRepository:
    """A new bare repository `root/NAME.git` whose HEAD is `branch`, with one commit unless `empty`."""
    path = root / f"{name}.git"
    path.parent.mkdir(parents=True, exist_ok=True)
    Repo.init_bare(str(path), mkdir=True, default_branch=branch.encode()).close()
    repository = HostedRepository(name=name, path=path, url=url, default_branch=branch)
    if not empty:
        repository.commit("initial commit", files={"README.md": f"# {name}\n"})
    return repository


def git_app(root: Path, *, accept_pushes: bool = False) -> WSGIApp:
    """Git's smart HTTP protocol for the bare repositories `root/NAME.git`; pushes are refused
    (403) unless `accept_pushes`."""
    app = make_wsgi_chain(_DirectoryBackend(str(root)))
    return app if accept_pushes else _refusing_pushes(app)


def _refusing_pushes(app: WSGIApp) -> WSGIApp:
    # dulwich's app serves receive-pack whatever handlers it is given: they only add to its own.
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if (environ["PATH_INFO"].endswith("/git-receive-pack")
                or "service=git-receive-pack" in environ.get("QUERY_STRING", "")):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"pushes are not accepted here\n"]
        return app(environ, start_response)
    return guarded


def http_backend_app(root: Path, *, protocol_v2: bool = True, allow_filter: bool = True,
                     accept_pushes: bool = False) -> WSGIApp:
    """Git's smart HTTP protocol for `root/NAME.git`, from `git http-backend` run as CGI once
    per request, as a web server would. With `protocol_v2`, the client's `Git-Protocol`
    header reaches git, which then answers in protocol v2 when asked; with `allow_filter`,
    git serves partial clones (`uploadpack.allowFilter`); with `accept_pushes`, pushes
    (`http.receivepack`), which git refuses by default from an unauthenticated client."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        done = subprocess.run(["git", "http-backend"], input=body, capture_output=True, check=False,
                              env=_cgi_env(root, environ, len(body), protocol_v2, allow_filter,
                                           accept_pushes),
                              timeout=30)
        status, headers, payload = _cgi_answer(done.stdout)
        start_response(status, [*headers, ("Content-Length", str(len(payload)))])
        return [payload]
    return app


def _cgi_env(root: Path, environ: dict[str, Any], length: int, protocol_v2: bool,
             allow_filter: bool, accept_pushes: bool) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root),
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1",
           "PATH_INFO": environ["PATH_INFO"], "QUERY_STRING": environ.get("QUERY_STRING", ""),
           "REQUEST_METHOD": environ["REQUEST_METHOD"], "CONTENT_LENGTH": str(length),
           "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""), "REMOTE_ADDR": "127.0.0.1",
           "GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "uploadpack.allowFilter",
           "GIT_CONFIG_VALUE_0": "true" if allow_filter else "false",
           "GIT_CONFIG_KEY_1": "http.receivepack", "GIT_CONFIG_VALUE_1": "true" if accept_pushes else "false"}
    if protocol_v2 and environ.get("HTTP_GIT_PROTOCOL"):
        env["GIT_PROTOCOL"] = environ["HTTP_GIT_PROTOCOL"]
    return env


def _cgi_answer(output: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """A CGI program's output as a WSGI status line, headers and body."""
    head, separator, payload = output.partition(b"\r\n\r\n")
    if not separator:
        head, separator, payload = output.partition(b"\n\n")
    if not separator:
        return "502 Bad Gateway", [("Content-Type", "text/plain")], b"git http-backend failed\n"
    status, headers = HTTPStatus.OK, []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = HTTPStatus(int(value.split()[0]))
        else:
            headers.append((name, value.strip()))
    return f"{status.value} {status.phrase}", headers, payload


def _ref(branch: str) -> Ref:
    return Ref(_BRANCHES + branch.encode())


def _sha_of(repo: Repo, ref: Ref) -> ObjectID | None:
    try:
        return repo.refs[ref]
    except KeyError:
        return None


def _tree_with(repo: Repo, parent: ObjectID | None, files: Mapping[str, str | bytes | None]) -> ObjectID:
    entries: dict[bytes, tuple[ObjectID, int]] = {}
    if parent is not None:
        parent_commit = repo[parent]
        if not isinstance(parent_commit, Commit):
            raise ValueError(f"{parent!r} is not a commit")
        for entry in repo.object_store.iter_tree_contents(parent_commit.tree):
            entries[entry.path] = (entry.sha, entry.mode)
    for name, content in files.items():
        if content is None:
            entries.pop(name.encode(), None)
            continue
        blob = Blob.from_string(content.encode() if isinstance(content, str) else content)
        repo.object_store.add_object(blob)
        entries[name.encode()] = (blob.id, FILE_MODE)
    return commit_tree(repo.object_store, [(path, sha, mode) for path, (sha, mode) in entries.items()])


def _store_commit(repo: Repo, tree: ObjectID, parent: ObjectID | None, message: str) -> ObjectID:
    commit = Commit()
    commit.tree = tree
    commit.parents = [parent] if parent else []
    commit.author = commit.committer = AUTHOR
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = b"UTF-8"
    commit.message = message.encode() + b"\n"
    repo.object_store.add_object(commit)
    return commit.id


def _requiring_password(app: WSGIApp, password: str) -> WSGIApp:
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = basic_password(environ.get("HTTP_AUTHORIZATION", "")) or ""
        if hmac.compare_digest(given.encode(), password.encode()):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'),
                                            ("Content-Type", "text/plain")])
        return [b"authentication required\n"]
    return guarded


def basic_password(authorization: str) -> str | None:
    """The password of HTTP Basic credentials; None when there are none."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[2]
    except (binascii.Error, UnicodeDecodeError):
        return None


class _DirectoryBackend(FileSystemBackend):
    def open_repository(self, path: str | bytes) -> BackendRepo:
        # dulwich.web passes "/name.git" (bytes for fetches), which os.path.join would
        # take as an absolute path outside the root.
        return super().open_repository(os.fsdecode(path).lstrip("/"))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow request must not hold up stop()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parking = threading.Lock()
        self._parked: list[socket.socket] | None = None

    def park_connections(self) -> None:
        with self._parking:
            self._parked = []

    def release_connections(self) -> None:
        with self._parking:
            parked, self._parked = self._parked or [], None
        for connection in parked:
            self.shutdown_request(connection)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._parking:
            if self._parked is not None:
                self._parked.append(request)
                return
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up are expected here, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
