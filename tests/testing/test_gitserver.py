from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.client import get_transport_and_path
from dulwich.object_store import tree_lookup_path
from dulwich.repo import Repo

from revision_controller.testing.gitserver import (
    ADVERTISEMENT,
    CAPABILITIES,
    FETCH,
    LS_REFS,
    Backend,
    GitServer,
    HostedRepository,
    ServedRequest,
)


@pytest.fixture
def server() -> Iterator[GitServer]:
    with GitServer() as srv:
        yield srv


def ls_remote(url: str) -> dict[bytes, bytes | None]:
    client, path = get_transport_and_path(url)
    return client.get_refs(path.encode()).refs


def read_file(repo: HostedRepository, sha: str, name: str) -> bytes:
    with Repo(str(repo.path)) as r:
        _, blob = tree_lookup_path(r.__getitem__, r[sha.encode()].tree, name.encode())
        return r[blob].data


def read_blob_id(repo: HostedRepository, name: str) -> str:
    with Repo(str(repo.path)) as r:
        _, blob = tree_lookup_path(r.__getitem__, r[r.head()].tree, name.encode())
        return blob.decode()


def raw_connection(srv: GitServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=5)


def test_repository_is_served_with_its_first_commit(server: GitServer) -> None:
    repo = server.create_repository("demo")

    assert repo.url == f"http://127.0.0.1:{server.port}/demo.git"
    refs = ls_remote(repo.url)
    assert refs[b"refs/heads/main"] == repo.head("main").encode()
    assert read_file(repo, repo.head(), "README.md") == b"# demo\n"


def test_commit_moves_the_branch_and_keeps_earlier_files(server: GitServer) -> None:
    repo = server.create_repository("demo")
    first = repo.head()

    sha = repo.commit("greet", files={"docs/hello.txt": "hi", "data.bin": b"\x00\x01"})

    assert len(sha) == 40 and sha != first
    assert repo.head() == sha
    assert ls_remote(repo.url)[b"refs/heads/main"] == sha.encode()
    assert read_file(repo, sha, "docs/hello.txt") == b"hi"
    assert read_file(repo, sha, "data.bin") == b"\x00\x01"
    assert read_file(repo, sha, "README.md") == b"# demo\n"


def test_a_new_branch_starts_from_the_default_branch(server: GitServer) -> None:
    repo = server.create_repository("demo", branch="trunk")
    base = repo.head()

    feature = repo.commit("feature work", branch="feature/x")

    assert repo.head("trunk") == base
    assert repo.head("feature/x") == feature
    with Repo(str(repo.path)) as r:
        assert r[feature.encode()].parents == [base.encode()]
        assert r.refs.get_symrefs()[b"HEAD"] == b"refs/heads/trunk"


def test_a_file_given_as_none_is_deleted(server: GitServer) -> None:
    repo = server.create_repository("demo")

    sha = repo.commit("delete the readme", files={"README.md": None, "other.txt": "kept"})

    with Repo(str(repo.path)) as r:
        assert [entry.path for entry in r.object_store.iter_tree_contents(r[sha.encode()].tree)] == [b"other.txt"]


def test_a_commit_on_another_parent_and_set_branch_rewrite_history_as_a_force_push(server: GitServer) -> None:
    repo = server.create_repository("demo")
    first = repo.head()
    second = repo.commit("second", files={"a.txt": "a"})

    rewritten = repo.commit("instead of second", files={"b.txt": "b"}, parent=first)
    assert repo.head() == rewritten
    with Repo(str(repo.path)) as r:
        assert r[rewritten.encode()].parents == [first.encode()]
    assert read_file(repo, rewritten, "README.md") == b"# demo\n"

    repo.set_branch("main", second)
    assert ls_remote(repo.url)[b"refs/heads/main"] == second.encode()
    repo.set_branch("release", first)
    assert repo.head("release") == first


def test_empty_repository_has_no_head(server: GitServer) -> None:
    repo = server.create_repository("empty", empty=True)

    assert repo.head() is None
    assert b"refs/heads/main" not in ls_remote(repo.url)


def test_requests_are_recorded_and_ls_remotes_counted(server: GitServer) -> None:
    repo = server.create_repository("demo")

    ls_remote(repo.url)
    ls_remote(repo.url)

    other = server.create_repository("other")
    ls_remote(other.url)

    method, path = server.requests[0]
    assert (method, path) == ("GET", "/demo.git/info/refs")
    assert server.requests[0].kind == ADVERTISEMENT
    assert server.requests[0].answer.startswith(b"001e# service=git-upload-pack\n0000")
    assert server.ls_remote_count("demo") == 2
    assert server.ls_remote_count("other") == 1
    assert server.ls_remote_count() == 3


def test_password_is_required_when_set() -> None:
    with GitServer(password="pw") as srv:
        repo = srv.create_repository("demo")
        refs_url = f"{repo.url}/info/refs?service=git-upload-pack"

        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(refs_url, timeout=5)
        assert refused.value.code == 401
        assert refused.value.headers["WWW-Authenticate"].startswith("Basic")

        for user, password, expected in [("anyone", "pw", 200), ("anyone", "wrong", 401)]:
            credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
            request = urllib.request.Request(refs_url, headers={"Authorization": f"Basic {credentials}"})
            try:
                status = urllib.request.urlopen(request, timeout=5).status
            except urllib.error.HTTPError as error:
                status = error.code
            assert status == expected


def test_hang_accepts_but_never_answers_then_hangs_up(server: GitServer) -> None:
    repo = server.create_repository("demo")

    with server.hang():
        connection = raw_connection(server)
        connection.sendall(b"GET /demo.git/info/refs HTTP/1.0\r\n\r\n")
        connection.settimeout(0.3)
        with pytest.raises(socket.timeout):
            connection.recv(1)
    connection.settimeout(5)

    assert connection.recv(1) == b""  # closed when the block ended
    assert ls_remote(repo.url)[b"refs/heads/main"] == repo.head().encode()
    assert server.ls_remote_count() == 1


def test_requests_are_served_concurrently(server: GitServer) -> None:
    repo = server.create_repository("demo")
    stalled = raw_connection(server)
    stalled.sendall(b"GET /demo.git/info/refs HTTP/1.0\r\n")  # never finishes its headers

    assert ls_remote(repo.url)[b"refs/heads/main"] == repo.head().encode()
    stalled.close()


def test_stop_is_prompt_and_releases_port_and_files() -> None:
    srv = GitServer()
    srv.start()
    repo = srv.create_repository("demo")
    port = srv.port
    stalled = raw_connection(srv)
    stalled.sendall(b"GET / HTTP/1.0\r\n")

    started = time.monotonic()
    srv.stop()

    assert time.monotonic() - started < 1
    assert not repo.path.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    stalled.close()


@pytest.mark.skipif(shutil.which("git") is None, reason="the git CLI is not installed")
def test_git_cli_can_clone_what_the_server_serves(server: GitServer, tmp_path: Path) -> None:
    repo = server.create_repository("demo")
    sha = repo.commit("greet", files={"hello.txt": "hi"})

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "clone", "--quiet", repo.url, str(tmp_path / "clone")], check=True,
                   env=env, timeout=30, capture_output=True)

    assert (tmp_path / "clone" / "hello.txt").read_text() == "hi"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path / "clone", env=env,
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    assert head == sha


def test_served_requests_unpack_as_method_and_path_and_count_only_ref_listings() -> None:
    advertisement = ServedRequest("GET", "/demo.git/info/refs", kind=ADVERTISEMENT)
    method, path = advertisement

    assert (method, path) == ("GET", "/demo.git/info/refs")
    assert advertisement.lists_refs_of("demo") and not advertisement.lists_refs_of("dem")
    assert ServedRequest("POST", "/a/b.git/git-upload-pack", kind=LS_REFS).lists_refs_of("a/b")
    assert not ServedRequest("GET", "/demo.git/info/refs", kind=CAPABILITIES).lists_refs_of()
    assert not ServedRequest("POST", "/demo.git/git-upload-pack", kind=FETCH).lists_refs_of()
    assert "Basic" not in repr(ServedRequest("GET", "/", authorization="Basic eDp5"))


def git_cli(*args: str, home: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], check=True, env=env, timeout=30, capture_output=True,
                          text=True).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="the git CLI is not installed")
class TestGitHttpBackend:
    def test_git_speaks_v2_to_git_and_each_ls_remote_counts_once(self, tmp_path: Path) -> None:
        with GitServer(backend="http-backend") as srv:
            repo = srv.create_repository("demo", branch="trunk")

            listed = git_cli("-c", "protocol.version=2", "ls-remote", "--symref", repo.url, home=tmp_path)
            git_cli("-c", "protocol.version=2", "ls-remote", repo.url, "refs/heads/trunk", home=tmp_path)

            assert f"{repo.head()}\trefs/heads/trunk" in listed
            assert "ref: refs/heads/trunk\tHEAD" in listed
            assert [(r.method, r.kind, r.git_protocol) for r in srv.requests] == [
                ("GET", CAPABILITIES, "version=2"), ("POST", LS_REFS, "version=2")] * 2
            assert srv.ls_remote_count("demo") == 2

    def test_without_protocol_v2_git_advertises_every_ref(self, tmp_path: Path) -> None:
        with GitServer(backend="http-backend", protocol_v2=False) as srv:
            repo = srv.create_repository("demo")

            listed = git_cli("-c", "protocol.version=2", "ls-remote", repo.url, home=tmp_path)

            assert f"{repo.head()}\trefs/heads/main" in listed
            assert [r.kind for r in srv.requests] == [ADVERTISEMENT]
            assert srv.ls_remote_count() == 1

    def test_clone_is_one_ls_remote_and_a_fetch(self, tmp_path: Path) -> None:
        with GitServer(backend="http-backend") as srv:
            repo = srv.create_repository("demo")
            sha = repo.commit("greet", files={"hello.txt": "hi"})

            git_cli("-c", "protocol.version=2", "clone", "--quiet", repo.url, str(tmp_path / "clone"),
                    home=tmp_path)

            assert (tmp_path / "clone" / "hello.txt").read_text() == "hi"
            assert git_cli("-C", str(tmp_path / "clone"), "rev-parse", "HEAD", home=tmp_path).strip() == sha
            assert [r.kind for r in srv.requests] == [CAPABILITIES, LS_REFS, FETCH]
            assert srv.ls_remote_count() == 1

    def test_password_is_required_when_set(self) -> None:
        with GitServer(backend="http-backend", password="pw") as srv:
            refs_url = f"{srv.create_repository('demo').url}/info/refs?service=git-upload-pack"

            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(refs_url, timeout=5)
            credentials = base64.b64encode(b"anyone:pw").decode()
            answered = urllib.request.urlopen(urllib.request.Request(
                refs_url, headers={"Authorization": f"Basic {credentials}"}), timeout=5)

            assert refused.value.code == 401
            assert answered.status == 200
            assert answered.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"

    @pytest.mark.parametrize("allow_filter", [True, False])
    def test_partial_clone_filters_are_served_unless_refused(self, allow_filter: bool, tmp_path: Path) -> None:
        with GitServer(backend="http-backend", allow_filter=allow_filter) as srv:
            repo = srv.create_repository("demo")

            git_cli("-c", "protocol.version=2", "clone", "--quiet", "--no-checkout", "--filter=blob:none",
                    repo.url, str(tmp_path / "clone"), home=tmp_path)

            capabilities = srv.requests[0].answer
            assert srv.requests[0].kind == CAPABILITIES
            assert (b"filter" in capabilities) is allow_filter
            objects = git_cli("-C", str(tmp_path / "clone"), "rev-list", "--objects", "--missing=print", "HEAD",
                              home=tmp_path).split()
            missing = "?" + read_blob_id(repo, "README.md")
            assert (missing in objects) is allow_filter
            assert [r.kind for r in srv.requests] == [CAPABILITIES, LS_REFS, FETCH]

    def test_a_missing_repository_is_404(self) -> None:
        with GitServer(backend="http-backend") as srv, pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{srv.url}/absent.git/info/refs?service=git-upload-pack",
                                   timeout=5)
        assert missing.value.code == 404


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        GitServer(backend="gitea")  # type: ignore[arg-type]


def push_a_commit(url: str, home: Path, content: bytes = b"pushed\n") -> tuple[subprocess.CompletedProcess[str], str]:
    """Clone `url`, commit a file, push to main: the push's result, and the sha pushed."""
    clone = home / "clone"
    git_cli("clone", "--quiet", url, str(clone), home=home)
    (clone / "pushed.txt").write_bytes(content)
    git_cli("-C", str(clone), "add", "pushed.txt", home=home)
    git_cli("-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "push",
            home=home)
    sha = git_cli("-C", str(clone), "rev-parse", "HEAD", home=home).strip()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(clone), "push", "origin", "HEAD:main"], env=env, timeout=30,
                          capture_output=True, text=True, check=False), sha


@pytest.mark.skipif(shutil.which("git") is None, reason="the git CLI is not installed")
@pytest.mark.parametrize("backend", ["dulwich", "http-backend"])
def test_pushes_are_refused_unless_accepted(backend: Backend, tmp_path: Path) -> None:
    with GitServer(backend=backend) as srv:
        repo = srv.create_repository("demo")
        first = repo.head()

        refused, _ = push_a_commit(repo.url, tmp_path)

        assert refused.returncode != 0 and repo.head() == first


@pytest.mark.skipif(shutil.which("git") is None, reason="the git CLI is not installed")
@pytest.mark.parametrize("backend", ["dulwich", "http-backend"])
@pytest.mark.parametrize("size", [10, 3 << 20], ids=["small", "chunked"])
def test_accepted_pushes_move_the_branch(backend: Backend, size: int, tmp_path: Path) -> None:
    # git sends a push bigger than http.postBuffer (1 MiB) with chunked transfer encoding.
    with GitServer(backend=backend, accept_pushes=True) as srv:
        repo = srv.create_repository("demo")

        pushed, sha = push_a_commit(repo.url, tmp_path, content=os.urandom(size))

        assert pushed.returncode == 0, pushed.stderr
        assert repo.head() == sha
