"""Which files changed, read by the git provider from real servers on loopback: dulwich's (protocol
v0, no filters) and git's own http-backend (protocol v2 with partial clone filters, and v0)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler

import pytest
from dulwich.object_store import MemoryObjectStore
from dulwich.objects import Commit, ObjectID, Tree

from providers import (
    ChangedFiles,
    NotFound,
    ProviderError,
    Throttled,
    Unauthorized,
    Unavailable,
    git,
    history,
    open_provider,
    parse_source,
)
from providers.failures import Subject
from providers.proxies import proxy_for
from providers.smarthttp import pkt_line
from revision_controller.testing.faultproxy import ForwardProxy
from revision_controller.testing.gitserver import FETCH, GitServer, HostedRepository
from revision_controller.testing.redirector import Challenger, Redirector
from tests.canary import leaks, secret
from tests.providers.conftest import TOKEN, assert_token_hidden, loopback, require_git
from tests.providers.test_git import answering_with, provider

BACKENDS = {"dulwich": {}, "http-backend-v2": {"backend": "http-backend"},
            "http-backend-v0": {"backend": "http-backend", "protocol_v2": False}}


@pytest.fixture(params=list(BACKENDS))
def server(request: pytest.FixtureRequest) -> Iterator[GitServer]:
    """Each test runs against dulwich's server and git http-backend, in protocol v2 and v0."""
    options = BACKENDS[request.param]
    if options:
        require_git()
    with GitServer(**options) as srv:  # type: ignore[arg-type]
        yield srv


@pytest.fixture
def git_server() -> Iterator[GitServer]:
    """git http-backend, protocol v2, serving partial clone filters as GitHub and GitLab do."""
    require_git()
    with GitServer(backend="http-backend") as srv:
        yield srv


def changed(repo: HostedRepository, base: str, head: str, token: str | None = None) -> ChangedFiles:
    p = provider(repo.url, token)
    try:
        return p.changed_files(base, head)
    finally:
        p.close()


def fetches(server: GitServer) -> list[bytes]:
    """The answers to the fetches the server received."""
    return [request.answer for request in server.requests if request.kind == FETCH]


class TestTheFilesThatChanged:
    def test_across_several_commits_exactly_the_files_changed_since_the_base(self, server: GitServer) -> None:
        repo = server.create_repository("app")
        base = repo.head()
        after_x = repo.commit("x", files={"a/x.py": "x"})
        repo.commit("readme", files={"README.md": "# app, changed\n"})
        head = repo.commit("y", files={"b/c/y.txt": "y"})

        assert changed(repo, base, head) == ChangedFiles(("README.md", "a/x.py", "b/c/y.txt"))
        assert changed(repo, after_x, head) == ChangedFiles(("README.md", "b/c/y.txt"))
        assert len(fetches(server)) == 2

    def test_a_rename_lists_both_paths_and_a_deletion_the_deleted_path(self, server: GitServer) -> None:
        repo = server.create_repository("app")
        base = repo.commit("two files", files={"old/name.py": "same content", "gone.txt": "bye"})
        head = repo.commit("rename and delete", files={"old/name.py": None, "new/name.py": "same content",
                                                       "gone.txt": None})

        assert changed(repo, base, head) == ChangedFiles(("gone.txt", "new/name.py", "old/name.py"))

    def test_the_same_commit_changed_nothing_and_asks_nothing(self, server: GitServer) -> None:
        repo = server.create_repository("app")

        assert changed(repo, repo.head(), repo.head().upper()) == ChangedFiles()
        assert server.requests == []


class TestUncertain:
    def test_a_force_push_away_from_the_base_is_uncertain(self, server: GitServer) -> None:
        repo = server.create_repository("app")
        first = repo.head()
        base = repo.commit("to be rewritten", files={"a.txt": "a"})
        head = repo.commit("rewritten", files={"a.txt": "b"}, parent=first)

        answer = changed(repo, base, head)

        assert answer.files == ()
        assert answer.uncertain == (f"the recorded commit {base[:7]} is not among the 100 newest commits "
                                    f"before the head {head[:7]}: the history was rewritten (a force "
                                    "push), or the commit is older")

    def test_a_base_the_server_does_not_know_is_uncertain(self, server: GitServer) -> None:
        repo = server.create_repository("app")
        head = repo.commit("x", files={"x": "x"})

        assert "the recorded commit 0123456 is not among" in changed(repo, "0123456" * 5 + "01234", head).uncertain

    def test_a_base_older_than_the_fetched_history_is_uncertain(self, git_server: GitServer) -> None:
        repo = git_server.create_repository("app")
        too_old = repo.head()
        oldest_fetched = repo.commit("commit 1", files={"counter.txt": "1"})
        for n in range(2, history.HISTORY_DEPTH + 1):
            head = repo.commit(f"commit {n}", files={"counter.txt": str(n)})

        assert changed(repo, too_old, head).uncertain.startswith(f"the recorded commit {too_old[:7]} is not among")
        assert changed(repo, oldest_fetched, head) == ChangedFiles(("counter.txt",))

    def test_more_files_than_are_listed_is_uncertain_and_lists_the_first_ones(self) -> None:
        store = MemoryObjectStore()
        files = Tree()
        for n in range(history.MAX_FILES + 5):
            files.add(f"f{n:05}".encode(), 0o100644, b"0" * 40)  # trees alone are compared: no blob needed
        base = commit_of(store, Tree())
        head = commit_of(store, files, parent=base)

        answer = history.compare(store, base, head)

        assert answer.uncertain == f"more than {history.MAX_FILES} files changed from {base[:7]} to {head[:7]}"
        assert answer.files[:2] == ("f00000", "f00001")
        assert len(answer.files) == history.MAX_FILES + 1


class TestWhatIsFetched:
    def test_no_file_contents_come_where_the_server_serves_filters(self) -> None:
        require_git()
        sizes = {}
        for allow_filter in (True, False):
            with GitServer(backend="http-backend", allow_filter=allow_filter) as server:
                repo = server.create_repository("app")
                base = repo.head()
                head = repo.commit("a large file", files={"large.bin": os.urandom(256 * 1024)})

                assert changed(repo, base, head) == ChangedFiles(("large.bin",))
                (sizes[allow_filter],) = (len(answer) for answer in fetches(server))

        assert sizes[True] < 4096 < 256 * 1024 < sizes[False]

    def test_a_history_larger_than_the_bound_is_an_error_that_says_so(self) -> None:
        with GitServer() as server:  # dulwich's server serves no filter: the contents come too
            repo = server.create_repository("app")
            base = repo.head()
            head = repo.commit("a large file", files={"large.bin": os.urandom(256 * 1024)})
            remote = history.Remote(repo.url, None, 5, max_pack_bytes=64 * 1024)
            try:
                with pytest.raises(ProviderError, match=re.escape(
                        "the history of the newest 100 commits is larger than 0.0625 MiB (a server that "
                        "serves no partial clone filter sends the files' contents too)")):
                    remote.changed_files(base, head, Subject(git.parse_source(repo.url)))
            finally:
                remote.close()

    def test_a_head_the_server_will_not_send_is_unavailable(self, server: GitServer) -> None:
        repo = server.create_repository("app")

        with pytest.raises(Unavailable, match=r"HTTP 500|the server did not send the head commit 1111111"):
            changed(repo, repo.head(), "1" * 40)


class TestFailures:
    def test_the_password_right_wrong_and_missing(self) -> None:
        require_git()
        for backend in ("dulwich", "http-backend"):
            with GitServer(backend=backend, password=TOKEN) as server:  # type: ignore[arg-type]
                repo = server.create_repository("private")
                base = repo.head()
                head = repo.commit("x", files={"x": "x"})
                in_url = repo.url.replace("http://", f"http://user:{TOKEN}@")

                assert changed(repo, base, head, token=TOKEN) == ChangedFiles(("x",))
                assert changed(replace(repo, url=in_url), base, head) == ChangedFiles(("x",))
                with pytest.raises(Unauthorized, match="check that the token") as wrong:
                    changed(repo, base, head, token="not-" + TOKEN)
                assert_token_hidden(wrong.value)
                with pytest.raises(Unauthorized, match="needs a token in the credentials Secret"):
                    changed(repo, base, head)

    def test_an_unknown_repository_is_not_found(self, server: GitServer) -> None:
        sha = "1" * 40
        with pytest.raises(NotFound, match="HTTP 404"):
            provider(f"{server.url}/absent.git").changed_files(sha, "2" * 40)

    def test_a_server_that_is_down_is_unavailable(self) -> None:
        with GitServer() as server:
            url = server.create_repository("app").url
        with pytest.raises(Unavailable, match="cannot reach the server"):
            provider(url, timeout=2).changed_files("1" * 40, "2" * 40)

    def test_a_hung_server_is_unavailable_after_the_timeout(self) -> None:
        with GitServer() as server:
            p = provider(server.create_repository("app").url, timeout=0.5)
            with server.hang():
                started = time.monotonic()
                with pytest.raises(Unavailable, match=re.escape("no answer within 0.5s")):
                    p.changed_files("1" * 40, "2" * 40)
                assert 0.4 < time.monotonic() - started < 1.5

    @pytest.mark.parametrize("status, error, text", [
        (401, Unauthorized, "HTTP 401"), (403, Unauthorized, "HTTP 403"), (404, NotFound, "HTTP 404"),
        (500, Unavailable, "HTTP 500"), (429, Throttled, "HTTP 429"),
    ])
    def test_http_statuses(self, status: int, error: type[Exception], text: str) -> None:
        with (answering_with(status, {"WWW-Authenticate": 'Basic realm="x"'}) as url,
              pytest.raises(error, match=text) as caught):
            provider(url, token=TOKEN).changed_files("1" * 40, "2" * 40)
        assert_token_hidden(caught.value)

    def test_a_server_answering_slowly_without_end_is_given_up_on(self) -> None:
        with trickling() as url:
            started = time.monotonic()
            with pytest.raises(Unavailable, match=re.escape("commits did not arrive within 1.2s")):
                provider(url, timeout=0.2).changed_files("1" * 40, "2" * 40)
            assert time.monotonic() - started < 2.5

    def test_retry_after_is_throttled(self) -> None:
        with (answering_with(503, {"Retry-After": "30"}) as url,
              pytest.raises(Throttled, match="HTTP 503") as caught):
            provider(url, token=TOKEN).changed_files("1" * 40, "2" * 40)
        assert caught.value.retry_after == 30

    def test_a_web_page_is_not_a_git_repository(self) -> None:
        with (answering_with(200, {"Content-Type": "text/html"}) as url,
              pytest.raises(ProviderError, match="does not speak git's smart HTTP protocol")):
            provider(url).changed_files("1" * 40, "2" * 40)


class TestRedirects:
    def test_a_redirect_to_the_repository_is_followed(self, git_server: GitServer) -> None:
        repo = git_server.create_repository("app")
        base = repo.head()
        head = repo.commit("x", files={"x": "x"})

        with answering_with(301, {"Location": repo.url + "/info/refs?service=git-upload-pack"}) as url:
            assert provider(url).changed_files(base, head) == ChangedFiles(("x",))

    def test_endless_redirects_are_an_error(self) -> None:
        with Redirector("http://127.0.0.1:9") as redirector:
            redirector.target = redirector.url  # to itself, again and again
            with pytest.raises(ProviderError, match="more than 5 redirects"):
                provider(f"{redirector.url}/app.git").changed_files("1" * 40, "2" * 40)
        assert len(redirector.requests) == 6

    @pytest.mark.parametrize("in_url", [False, True], ids=["token", "password-in-url"])
    def test_credentials_are_not_sent_to_the_host_a_git_server_redirects_to(self, in_url: bool) -> None:
        token = secret("history-token")
        with Challenger(host="127.0.0.2") as elsewhere, Redirector(elsewhere.url, 307) as redirector:
            url = f"{redirector.url}/team/app.git"
            if in_url:
                url = url.replace("http://", f"http://user:{token}@")
            p = open_provider(parse_source("git", url), None if in_url else token)
            try:
                with pytest.raises(Unauthorized) as caught:
                    p.changed_files("1" * 40, "2" * 40)
            finally:
                p.close()

            assert not leaks(str(caught.value))
            assert redirector.requests[0].header("User-Agent").startswith("git/")  # hosts want one
            assert [r for r in redirector.requests if leaks(r.text())], "the credential was not even sent home"
            assert elsewhere.requests, "the redirect was not followed: the test proves nothing"
            assert [r for r in elsewhere.requests if leaks(r.text())] == []


@contextmanager
def trickling() -> Iterator[str]:
    """A server that answers a ref advertisement with ever more refs, one every 20 ms, never
    falling silent as long as its timeout; yields a repository URL."""
    with loopback(_Trickle) as url:
        yield url


class _Trickle(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
        self.end_headers()
        self.wfile.write(pkt_line("# service=git-upload-pack\n") + b"0000")
        self.wfile.write(pkt_line(f"{'1' * 40} refs/heads/main\0side-band-64k shallow\n"))
        for n in range(1000):
            time.sleep(0.02)
            try:
                self.wfile.write(pkt_line(f"{'1' * 40} refs/heads/b{n}\n"))
                self.wfile.flush()
            except OSError:
                return

    def log_message(self, format: str, *args: object) -> None:
        pass


def commit_of(store: MemoryObjectStore, tree: Tree, parent: str | None = None) -> str:
    store.add_object(tree)
    commit = Commit()
    commit.tree = tree.id
    commit.parents = [ObjectID(parent.encode())] if parent else []
    commit.author = commit.committer = b"Test <test@example.invalid>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"test\n"
    store.add_object(commit)
    return commit.id.decode()


class TestForwardProxies:
    """The fetch goes through the forward proxy the environment names, as httpx's requests do."""

    def test_through_the_proxy_with_its_credentials_and_the_tokens(self, proxy_environment) -> None:
        require_git()
        proxy_password = secret("proxy-password")
        with GitServer(backend="http-backend", password=TOKEN) as server, \
                ForwardProxy(credentials=("proxy-user", proxy_password)) as proxy:
            proxy_environment(HTTP_PROXY=proxy.url)
            repo = server.create_repository("proxied")
            base = repo.head()
            head = repo.commit("x", files={"x": "x"})
            assert changed(repo, base, head, token=TOKEN) == ChangedFiles(("x",))
        posted = [r.status for r in proxy.requests if r.path.endswith("/git-upload-pack")]
        assert posted and set(posted) == {200}
        assert fetches(server)  # the git server answered the fetch the proxy forwarded

    def test_no_proxy_names_the_hosts_reached_directly(self, proxy_environment) -> None:
        with GitServer() as server, ForwardProxy() as proxy:
            proxy_environment(HTTP_PROXY=proxy.url, NO_PROXY="example.com,127.0.0.1")
            repo = server.create_repository("direct")
            base = repo.head()
            assert changed(repo, base, repo.commit("x", files={"x": "x"})) == ChangedFiles(("x",))
        assert proxy.requests == []

    def test_a_proxy_refusing_the_credentials_says_where_they_go_and_hides_them(self, proxy_environment) -> None:
        proxy_password = secret("wrong-proxy-password")
        with GitServer() as server, ForwardProxy(credentials=("proxy-user", "right")) as proxy:
            proxy_environment(HTTP_PROXY=proxy.url.replace(":right@", f":{proxy_password}@"))
            repo = server.create_repository("refused")
            with pytest.raises(ProviderError, match=r"HTTP 407.*HTTPS_PROXY or HTTP_PROXY") as refused:
                changed(repo, repo.head(), repo.commit("x", files={"x": "x"}))
        assert not leaks(str(refused.value))

    @pytest.mark.parametrize(("environment", "url", "expected"), [
        ({"HTTPS_PROXY": "http://p:3128"}, "https://github.com/o/r.git", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128"}, "http://git.local/r.git", None),
        ({"ALL_PROXY": "http://p:3128"}, "http://git.local/r.git", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".github.com"}, "https://api.github.com/o/r.git", None),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "*"}, "https://github.com/o/r.git", None),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "git.local"}, "https://u:token@git.local/r.git", None),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "git.local:8443"}, "https://git.local:8443/r.git", None),
        ({}, "https://github.com/o/r.git", None)])
    def test_which_proxy_a_url_gets(self, proxy_environment, environment: dict[str, str], url: str,
                                    expected: str | None) -> None:
        proxy_environment(**environment)
        assert proxy_for(url) == expected
