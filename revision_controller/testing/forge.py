"""What the GitHub, GitLab and Gitee stand-ins share: repositories, tokens, budgets, faults, HTTP.

A `Forge` holds real bare git repositories and the tokens granted on them. A
`ForgeServer` is one API's HTTP face on a forge (subclassed per API); it also
serves git smart HTTP at `{url}/{full_name}.git`, as github.com is both the API
and the clone host. Each server keeps its own request log, rate-limit budgets
and injected faults:

    with Forge() as forge, GitHubServer(forge) as github:
        repo = forge.create_repository("octo/hello", private=True)
        forge.grant("t0ken", "octo/hello")
        github.fault(502, count=2)     # the next two requests fail
        github.requests                # method, path, query, status, units of each
"""

from __future__ import annotations

import abc
import datetime
import hashlib
import io
import itertools
import json
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from email.message import Message
from functools import cached_property
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl

from dulwich.diff_tree import (
    CHANGE_ADD,
    CHANGE_COPY,
    CHANGE_DELETE,
    CHANGE_RENAME,
    RenameDetector,
    TreeChange,
    tree_changes,
)
from dulwich.graph import find_merge_base
from dulwich.objects import Commit, ObjectID, Tag
from dulwich.refs import Ref
from dulwich.repo import Repo

from revision_controller.testing.gitserver import (
    HostedRepository,
    WSGIApp,
    basic_password,
    buffered,
    git_app,
    init_repository,
)
from revision_controller.testing.service import ClosingHTTPServer, Service, Serving, read_chunked

JSON_TYPE = "application/json; charset=utf-8"
FIRST_REPOSITORY_ID = 1001
_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
_GIT_PATH = re.compile(r"^/(?P<name>.+?)(?:\.git)?/(?P<rest>info/refs|git-upload-pack|git-receive-pack"
                       r"|HEAD|objects/.+)$")
_HEX = re.compile(r"^[0-9a-f]{7,40}$")
_SECRET_PARAMETERS = ("access_token", "private_token", "job_token")


@dataclass(frozen=True)
class Signature:
    """Who made a commit, and when (Unix time, and the offset of their clock in seconds)."""

    name: str
    email: str
    time: int
    offset: int

    def iso(self) -> str:
        """GitHub's form: UTC, with a `Z`."""
        return iso_time(self.time)

    def iso_local(self) -> str:
        """GitLab's and Gitee's form: the author's own clock, with its offset."""
        zone = datetime.timezone(datetime.timedelta(seconds=self.offset))
        return datetime.datetime.fromtimestamp(self.time, zone).isoformat()


@dataclass(frozen=True)
class CommitInfo:
    """One commit, as the APIs describe it."""

    sha: str
    tree: str
    parents: tuple[str, ...]
    author: Signature
    committer: Signature
    message: str

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class FileChange:
    """One file that differs between two commits, as the compare APIs list it.

    `status` is GitHub's word: added, removed, modified, renamed or copied. `old_path` is
    where a renamed or copied file came from, else the path itself; a removed file's
    `sha` is its old blob's."""

    status: str
    path: str
    old_path: str
    sha: str
    old_mode: int
    new_mode: int


_STATUSES = {CHANGE_ADD: "added", CHANGE_DELETE: "removed", CHANGE_RENAME: "renamed", CHANGE_COPY: "copied"}


@dataclass(frozen=True)
class ForgeRepository:
    """A repository on the forge: a real bare git repository plus what the APIs say of it."""

    full_name: str
    id: int
    private: bool
    hosted: HostedRepository = field(repr=False)
    created_at: float = field(default_factory=time.time, compare=False)

    @property
    def owner(self) -> str:
        return self.full_name.rsplit("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.rsplit("/", 1)[1]

    @property
    def default_branch(self) -> str:
        return self.hosted.default_branch

    @property
    def path(self) -> Path:
        return self.hosted.path

    def commit(self, message: str, files: Mapping[str, str | bytes] | None = None,
               branch: str | None = None) -> str:
        """Add a commit on `branch` (default: the default branch); its full sha."""
        return self.hosted.commit(message, files, branch=branch)

    def head(self, branch: str | None = None) -> str | None:
        """The sha `branch` (default: the default branch) points at; None if it has none."""
        return self.hosted.head(branch)

    def is_empty(self) -> bool:
        """No branch has a commit: the state GitHub calls "Git Repository is empty."."""
        with Repo(str(self.path)) as repo:
            return not repo.refs.keys(base=Ref(b"refs/heads/"))

    def resolve(self, ref: str) -> str | None:
        """The commit sha that `ref` names: a branch, tag, `HEAD`, full ref, or (abbreviated) sha."""
        with Repo(str(self.path)) as repo:
            sha = _resolve(repo, ref, self.default_branch)
        return sha.decode("ascii") if sha else None

    def info(self, sha: str) -> CommitInfo:
        """What the commit `sha` (which must exist) says."""
        with Repo(str(self.path)) as repo:
            commit = repo[ObjectID(sha.encode("ascii"))]
            assert isinstance(commit, Commit), f"{sha} is no commit"
            return _info(commit)

    def history(self, sha: str, count: int) -> list[CommitInfo]:
        """Up to `count` commits reachable from `sha`, newest first."""
        with Repo(str(self.path)) as repo:
            return [_info(entry.commit) for entry in repo.get_walker(include=[ObjectID(sha.encode("ascii"))],
                                                                      max_entries=count)]

    def move_branch(self, sha: str, branch: str | None = None) -> None:
        """Point `branch` (default: the default branch) at the commit `sha`, as a force push does."""
        self.hosted.set_branch(branch or self.default_branch, sha)

    def merge_base(self, one: str, other: str) -> str | None:
        """The best common ancestor of two commits (which must exist); None if they share none."""
        with Repo(str(self.path)) as repo:
            bases = find_merge_base(repo, [ObjectID(one.encode("ascii")), ObjectID(other.encode("ascii"))])
        return bases[0].decode("ascii") if bases else None

    def commits_between(self, base: str | None, head: str) -> list[CommitInfo]:
        """The commits reachable from `head` but not from `base`, oldest first (`git log base..head`)."""
        exclude = [ObjectID(base.encode("ascii"))] if base else []
        with Repo(str(self.path)) as repo:
            walker = repo.get_walker(include=[ObjectID(head.encode("ascii"))], exclude=exclude)
            return [_info(entry.commit) for entry in walker][::-1]

    def changes(self, base: str | None, head: str) -> list[FileChange]:
        """The files that differ from commit `base` (None: no commit) to commit `head`, renames
        detected as git does, sorted by path."""
        with Repo(str(self.path)) as repo:
            trees = [_tree_of(repo, sha) for sha in (base, head)]
            found = tree_changes(repo.object_store, trees[0], trees[1],
                                 rename_detector=RenameDetector(repo.object_store))
            changes = [_file_change(change) for change in found]
        return sorted(changes, key=lambda change: change.path)


class Forge:
    """Repositories on disk and the tokens that may read them; `close()` removes a temporary root."""

    def __init__(self, root: Path | None = None) -> None:
        self._temporary = root is None
        self.root = Path(tempfile.mkdtemp(prefix="forge-")) if root is None else root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._ids = itertools.count(FIRST_REPOSITORY_ID)
        self._by_name: dict[str, ForgeRepository] = {}
        self._by_id: dict[int, ForgeRepository] = {}
        self._grants: dict[str, set[str] | None] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_repository(self, full_name: str, *, private: bool = False, default_branch: str = "main",
                          empty: bool = False) -> ForgeRepository:
        """A new repository `owner/repo` (or `group/sub/project`), with one commit unless `empty`."""
        if not _NAME.match(full_name) or any(part in (".", "..") or part.endswith(".git")
                                             for part in full_name.split("/")):
            raise ValueError(f"not a repository name: {full_name!r}")
        with self._lock:
            if full_name.lower() in self._by_name:
                raise ValueError(f"repository {full_name!r} exists")
            hosted = init_repository(self.root, full_name, url=(self.root / f"{full_name}.git").as_uri(),
                                     branch=default_branch, empty=empty)
            repository = ForgeRepository(full_name, next(self._ids), private, hosted)
            self._by_name[full_name.lower()] = self._by_id[repository.id] = repository
        return repository

    def repository(self, full_name: str) -> ForgeRepository | None:
        """The repository of that name, in any letter case, as the forges match names."""
        with self._lock:
            return self._by_name.get(full_name.lower())

    def repository_by_id(self, repository_id: int) -> ForgeRepository | None:
        with self._lock:
            return self._by_id.get(repository_id)

    def grant(self, token: str, full_name: str | None = None) -> None:
        """Make `token` valid, reading every repository (None) or, cumulatively, the one named."""
        with self._lock:
            if full_name is None:
                self._grants[token] = None
            elif (names := self._grants.setdefault(token, set())) is not None:
                names.add(full_name.lower())

    def revoke(self, token: str) -> None:
        """The token is no longer valid anywhere, as after its owner deleted it."""
        with self._lock:
            self._grants.pop(token, None)

    def knows(self, token: str) -> bool:
        with self._lock:
            return token in self._grants

    def can_read(self, token: str | None, repository: ForgeRepository) -> bool:
        """Public repositories are readable by anyone; private ones with a token granted on them."""
        if not repository.private:
            return True
        with self._lock:
            if token is None or token not in self._grants:
                return False
            names = self._grants[token]
            return names is None or repository.full_name.lower() in names


@dataclass(frozen=True)
class Allowance:
    """A credential's budget after a request: what the rate-limit headers report."""

    limit: int
    remaining: int
    reset: int

    @property
    def used(self) -> int:
        return self.limit - self.remaining


@dataclass
class _Window:
    reset: float
    used: int = 0


class Budget:
    """Units each credential may spend per window; a credential's window opens at its first use."""

    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def take(self, credential: str, units: int = 1) -> Allowance | None:
        """Spend `units`; None, spending nothing, when fewer are left."""
        with self._lock:
            window = self._window(credential)
            if window.used + units > self.limit:
                return None
            window.used += units
            return self._allowance(window)

    def give_back(self, credential: str, units: int = 1) -> Allowance:
        with self._lock:
            window = self._window(credential)
            window.used = max(0, window.used - units)
            return self._allowance(window)

    def peek(self, credential: str) -> Allowance:
        with self._lock:
            return self._allowance(self._window(credential))

    def _window(self, credential: str) -> _Window:
        now = time.time()
        window = self._windows.get(credential)
        if window is None or now >= window.reset:
            window = self._windows[credential] = _Window(reset=now + self.window_seconds)
        return window

    def _allowance(self, window: _Window) -> Allowance:
        return Allowance(self.limit, max(0, self.limit - window.used), int(window.reset))


@dataclass
class Fault:
    """What the next `count` requests whose target contains `path_contains` get."""

    status: int
    count: int
    retry_after: float | None
    delay: float
    path_contains: str
    secondary: bool

    @property
    def fails(self) -> bool:
        """False for a status below 400: the request is only slowed down, then served."""
        return self.status >= 400


class _Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, target: str) -> Fault | None:
        with self._lock:
            fault = next((f for f in self._faults if f.path_contains in target), None)
            if fault is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
            return fault


@dataclass(frozen=True)
class Request:
    """One HTTP request as a stand-in sees it; `path` stays percent-encoded, as sent."""

    method: str
    path: str
    query_string: str
    headers: Message
    body: bytes
    client: str

    @cached_property
    def query(self) -> dict[str, str]:
        """The first value of each query parameter."""
        query: dict[str, str] = {}
        for name, value in parse_qsl(self.query_string, keep_blank_values=True):
            query.setdefault(name, value)
        return query

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query_string}" if self.query_string else self.path

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


@dataclass(frozen=True)
class Reply:
    """An answer, and the rate-limit units it cost."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    units: int = 0

    @classmethod
    def json(cls, status: int, document: Any, *headers: tuple[str, str]) -> Reply:
        body = json.dumps(document, separators=(",", ":")).encode()
        return cls(status, body, (("Content-Type", JSON_TYPE), *headers))

    @classmethod
    def text(cls, status: int, text: str, *headers: tuple[str, str]) -> Reply:
        return cls(status, text.encode(), (("Content-Type", "text/plain; charset=utf-8"), *headers))

    def with_headers(self, *headers: tuple[str, str]) -> Reply:
        return replace(self, headers=self.headers + headers)

    def costing(self, units: int) -> Reply:
        return replace(self, units=units)


@dataclass(frozen=True)
class ForgeRequest:
    """One request a stand-in answered, for tests that count calls and spending."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    token: str | None = field(repr=False)
    units: int
    at: float = 0.0  # time.monotonic() when it was answered


def conditional(request: Request, reply: Reply, *, weak: bool) -> Reply:
    """The 200 `reply` with an ETag derived from its body, or 304 if the client holds that one."""
    if reply.status != 200:
        return reply
    opaque = f'"{hashlib.sha256(reply.body).hexdigest()}"'
    etag = ("ETag", f"W/{opaque}" if weak else opaque)
    if _matches(request.header("If-None-Match"), opaque):
        kept = tuple(header for header in reply.headers if header[0] != "Content-Type")
        return Reply(304, b"", (*kept, etag), reply.units)
    return reply.with_headers(etag)


def _matches(if_none_match: str, opaque: str) -> bool:
    # If-None-Match compares weakly: W/"x" matches "x".
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return any(tag in ("*", opaque) for tag in tags if tag)


def x_ratelimit_headers(allowance: Allowance, resource: str | None = None) -> tuple[tuple[str, str], ...]:
    """GitHub's (and Gitee's) `X-RateLimit-*` headers."""
    headers = (("X-RateLimit-Limit", str(allowance.limit)),
               ("X-RateLimit-Remaining", str(allowance.remaining)),
               ("X-RateLimit-Reset", str(allowance.reset)),
               ("X-RateLimit-Used", str(allowance.used)))
    return headers + ((("X-RateLimit-Resource", resource),) if resource else ())


def iso_time(unix: float) -> str:
    return datetime.datetime.fromtimestamp(int(unix), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def authorization_token(request: Request, *schemes: str) -> str | None:
    """The credentials of the `Authorization` header when its scheme is one of `schemes` (lower
    case) and they are not blank; None otherwise."""
    scheme, _, value = request.header("Authorization").partition(" ")
    return (value.strip() or None) if scheme.lower() in schemes else None


def pages(request: Request, *, default_per_page: int = 30, max_per_page: int = 100) -> tuple[int, int]:
    """`page` (from 1) and `per_page` from the query, clamped as the forges clamp them."""
    return (max(1, _int(request.query.get("page"), 1)),
            min(max_per_page, max(1, _int(request.query.get("per_page"), default_per_page))))


def segments(path: str, prefix: str) -> list[str] | None:
    """The percent-encoded segments of `path` after `prefix`, None when it is not under it."""
    if not path.startswith(prefix + "/") and path != prefix:
        return None
    return [part for part in path[len(prefix):].split("/") if part]


class ForgeServer(Service, abc.ABC):
    """One API's HTTP face on a forge, plus git smart HTTP for its repositories; 127.0.0.1 by default."""

    def __init__(self, forge: Forge, *, host: str = "127.0.0.1") -> None:
        self.forge = forge
        self._host = host
        self._faults = _Faults()
        self._log_lock = threading.Lock()
        self._log: list[ForgeRequest] = []
        self._git_app = git_app(forge.root)
        self._serving = Serving(type(self).__name__)

    @abc.abstractmethod
    def token_of(self, request: Request) -> str | None:
        """The API token the request carries, None when it carries none."""

    @abc.abstractmethod
    def answer(self, request: Request, token: str | None) -> Reply:
        """The API's answer to a request outside git's paths, rate limits included."""

    @abc.abstractmethod
    def fault_reply(self, fault: Fault, request: Request, token: str | None) -> Reply:
        """What this API sends for an injected failing status."""

    def start(self) -> None:
        server = _ForgeHTTPServer((self._host, 0), _Handler)
        server.forge_server = self
        self._serving.start(server)

    def stop(self) -> None:
        self._serving.stop()

    @property
    def port(self) -> int:
        return self._serving.port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def clone_url(self, full_name: str) -> str:
        return f"{self.url}/{full_name}.git"

    @property
    def requests(self) -> list[ForgeRequest]:
        """Every request answered so far, oldest first (a copy)."""
        with self._log_lock:
            return list(self._log)

    def units_spent(self, token: str | None = None) -> int:
        """Rate-limit units charged to `token`, or to every credential when None."""
        return sum(r.units for r in self.requests if token is None or r.token == token)

    def fault(self, status: int, *, count: int = 1, retry_after: float | None = None, delay: float = 0.0,
              path_contains: str = "", secondary: bool = False) -> None:
        """The next `count` requests whose path (with query) contains `path_contains` wait `delay`
        seconds, then get `status` (a status below 400: their normal answer). `secondary` makes a
        403 GitHub's secondary rate limit; `retry_after` adds a Retry-After header."""
        self._faults.add(Fault(status, count, retry_after, delay, path_contains, secondary))

    def clear_faults(self) -> None:
        self._faults.clear()

    def handle(self, request: Request) -> Reply:
        git_route = None if request.path.startswith("/api/") else _GIT_PATH.match(request.path)
        token = basic_password(request.header("Authorization")) if git_route else self.token_of(request)
        try:
            reply = self._faulted(request, token) or (
                self._serve_git(request, git_route, token) if git_route else self.answer(request, token))
        except Exception:  # noqa: BLE001 - a bug here must still answer, as a real server's 500 does
            traceback.print_exc()
            reply = Reply.json(500, {"message": "Internal Server Error (stand-in bug)"})
        query = {k: v for k, v in request.query.items() if k not in _SECRET_PARAMETERS}
        with self._log_lock:
            self._log.append(ForgeRequest(request.method, request.path, query, reply.status, token,
                                          reply.units, time.monotonic()))
        return reply

    def _faulted(self, request: Request, token: str | None) -> Reply | None:
        fault = self._faults.take(request.target)
        if fault is None:
            return None
        if fault.delay:
            self._serving.stopping.wait(fault.delay)
        if not fault.fails:
            return None
        reply = self.fault_reply(fault, request, token)
        return reply.with_headers(("Retry-After", f"{fault.retry_after:g}")) if fault.retry_after else reply

    def _serve_git(self, request: Request, route: re.Match[str], token: str | None) -> Reply:
        if route["rest"] == "git-receive-pack" or request.query.get("service") == "git-receive-pack":
            return Reply.text(403, "pushing is not served by the stand-in\n")
        challenge = ("WWW-Authenticate", 'Basic realm="GitHub"')
        if token is not None and not self.forge.knows(token):
            return Reply.text(401, "Invalid username or token.\n", challenge)
        repository = self.forge.repository(route["name"])
        if repository is None or not self.forge.can_read(token, repository):
            # Anonymous clients are asked for credentials rather than told what exists.
            if token is None:
                return Reply.text(401, "Authentication required\n", challenge)
            return Reply.text(404, "Repository not found.\n")
        return _call_wsgi(self._git_app, request, f"/{repository.full_name}.git/{route['rest']}", self.port)


class BudgetedForgeServer(ForgeServer):
    """A forge API under `api_path` whose requests spend a budget per token or, for anonymous
    requests, per client address: `limit` and `anonymous_limit` units each `window_seconds`."""

    api_path: ClassVar[str]

    def __init__(self, forge: Forge, *, limit: int, anonymous_limit: int, window_seconds: float,
                 host: str = "127.0.0.1") -> None:
        super().__init__(forge, host=host)
        self.core = Budget(limit, window_seconds)
        self.anonymous = Budget(anonymous_limit, window_seconds)

    @property
    def api_url(self) -> str:
        return self.url + self.api_path

    def charged(self, request: Request, token: str | None) -> tuple[str, Budget]:
        """The credential a request is charged to, and the budget it spends."""
        if token is None:
            return request.client, self.anonymous
        return token or request.client, self.core  # a blank git password is its client's


def _resolve(repo: Repo, ref: str, default_branch: str) -> bytes | None:
    name = default_branch if ref == "HEAD" else ref
    for candidate in (f"refs/heads/{name}", f"refs/tags/{name}", name):
        if not candidate.startswith("refs/"):
            continue
        try:
            return _peeled(repo, repo.refs[Ref(candidate.encode())])
        except KeyError:
            continue
    if _HEX.match(ref):
        matches = list(itertools.islice(repo.object_store.iter_prefix(ref.encode()), 2))
        if len(matches) == 1:
            return _peeled(repo, matches[0])
    return None


def _peeled(repo: Repo, sha: bytes) -> bytes | None:
    obj = repo[sha]
    while isinstance(obj, Tag):
        obj = repo[obj.object[1]]
    return obj.id if isinstance(obj, Commit) else None


def _tree_of(repo: Repo, sha: str | None) -> ObjectID | None:
    if sha is None:
        return None
    commit = repo[ObjectID(sha.encode("ascii"))]
    assert isinstance(commit, Commit), f"{sha} is no commit"
    return ObjectID(commit.tree)


def _file_change(change: TreeChange) -> FileChange:
    old = change.old if change.old is not None and change.old.path is not None else None
    new = change.new if change.new is not None and change.new.path is not None else None
    entry = new or old
    assert entry is not None and entry.path is not None and entry.sha is not None
    source = old or entry
    assert source.path is not None
    return FileChange(status=_STATUSES.get(change.type, "modified") if new else "removed",
                      path=entry.path.decode("utf-8", "replace"),
                      old_path=source.path.decode("utf-8", "replace"), sha=entry.sha.decode("ascii"),
                      old_mode=(old.mode or 0) if old else 0, new_mode=(new.mode or 0) if new else 0)


def _info(commit: Commit) -> CommitInfo:
    return CommitInfo(sha=commit.id.decode("ascii"), tree=commit.tree.decode("ascii"),
                      parents=tuple(p.decode("ascii") for p in commit.parents),
                      author=_signature(commit.author, commit.author_time, commit.author_timezone),
                      committer=_signature(commit.committer, commit.commit_time, commit.commit_timezone),
                      message=commit.message.decode("utf-8", "replace").rstrip("\n"))


def _signature(identity: bytes, when: int, offset: int) -> Signature:
    name, _, email = identity.decode("utf-8", "replace").rpartition(" <")
    return Signature(name, email.rstrip(">"), when, offset)


def _call_wsgi(app: WSGIApp, request: Request, path: str, port: int) -> Reply:
    """Run a WSGI app for one request, its whole answer gathered in memory."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method, "PATH_INFO": path, "QUERY_STRING": request.query_string,
        "CONTENT_TYPE": request.header("Content-Type"), "CONTENT_LENGTH": str(len(request.body)),
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(port), "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": request.client, "wsgi.input": io.BytesIO(request.body), "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False}
    for name, value in request.headers.items():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH", "TRANSFER_ENCODING"):
            environ[f"HTTP_{key}"] = value
    status, headers, body = buffered(app, environ)
    kept = tuple((n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding"))
    return Reply(int(status.split()[0]), body, kept)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client's pooled connection serves many polls
    timeout = 60  # seconds an idle kept-alive connection holds its thread
    disable_nagle_algorithm = True  # else headers and body, written apart, wait out a delayed ACK
    server: _ForgeHTTPServer

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        request = Request(self.command, path, query, self.headers, self._body(), self.client_address[0])
        reply = self.server.forge_server.handle(request)
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.status != 304:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.status != 304:
            self.wfile.write(reply.body)

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return read_chunked(self.rfile)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class _ForgeHTTPServer(ClosingHTTPServer):
    request_queue_size = 256  # the default 5 drops connections when many pollers start at once
    forge_server: ForgeServer


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default
