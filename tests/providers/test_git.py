"""The git provider against real servers on loopback: git http-backend and the dulwich GitServer."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest
from dulwich.repo import Repo

from providers import git, smarthttp
from providers.base import GitSource, InvalidSource, NotFound, ProviderError, Throttled, Unauthorized, Unavailable
from revision_controller.testing.gitserver import ADVERTISEMENT, CAPABILITIES, LS_REFS, GitServer
from tests.providers.conftest import TOKEN, assert_token_hidden, loopback, require_git


def provider(url: str, token: str | None = None, timeout: float = 5) -> git.Provider:
    return git.Provider(git.parse_source(url), token, timeout)


def assert_unavailable_while_hung_then_recovers(server: GitServer, p: git.Provider) -> None:
    """`p`, with a 0.5 s timeout, gives up on the hung `server` in time and recovers once it answers."""
    with server.hang():
        started = time.monotonic()
        with pytest.raises(Unavailable, match=re.escape("no answer within 0.5s")):
            p.head("main")
        elapsed = time.monotonic() - started

    assert 0.4 < elapsed < 1.5
    assert p.head("main")  # the same provider recovers once the server answers again


def assert_wrong_and_missing_tokens_are_unauthorized(url: str) -> None:
    """A wrong token, and no token, are refused with advice that never shows the token."""
    with pytest.raises(Unauthorized, match="check that the token") as wrong:
        provider(url, token="not-" + TOKEN).head("main")
    with pytest.raises(Unauthorized, match="needs a token in the credentials Secret"):
        provider(url).head("main")
    assert_token_hidden(wrong.value)


@pytest.fixture
def server() -> Iterator[GitServer]:
    with GitServer() as srv:
        yield srv


@pytest.fixture
def locked_server() -> Iterator[GitServer]:
    with GitServer(password=TOKEN) as srv:
        yield srv


def test_the_clone_url_is_the_repository_normalised() -> None:
    url = "https://git.example.com/team/app.git"
    assert git.parse_source(f"  {url} \n") == GitSource(repo_type="git", server="", repository=url,
                                                       clone_url=url)
    assert git.parse_source("HTTPS://Git.Example.COM:8443/Team/app.git/#x").clone_url == \
        "https://git.example.com:8443/Team/app.git"


@pytest.mark.parametrize("url", ["git@git.example.com:team/app.git", "ssh://git@git.example.com/team/app.git",
                                 "git.example.com/team/app.git", "", "file:///srv/app.git"])
def test_anything_but_http_is_invalid_and_the_error_says_to_use_https(url: str) -> None:
    with pytest.raises(InvalidSource, match=r"ssh is not supported|not ssh") as caught:
        git.parse_source(url)
    assert "https://" in str(caught.value)


def test_a_hosted_repository_is_read_through_its_clone_url(git_http_backend: GitServer) -> None:
    repo = git_http_backend.create_repository("owner/app")
    source = GitSource(repo_type="github", server="https://api.github.com", repository="owner/app",
                       clone_url=repo.url)

    p = git.Provider(source, None, 5)
    assert p.head("main") == repo.head()
    with pytest.raises(NotFound, match=re.escape("github repository owner/app on https://api.github.com, "
                                                 "branch 'nope'")):
        p.head("nope")


class TestAgainstGitHttpBackend:
    def test_head_follows_new_commits(self, git_http_backend: GitServer) -> None:
        repo = git_http_backend.create_repository("app")
        first = repo.head()
        p = provider(repo.url)

        assert p.head("main") == first
        second = repo.commit("second", files={"a.txt": "a"})
        assert p.head("main") == second != first

    def test_other_branches_and_a_custom_default_branch(self, git_http_backend: GitServer) -> None:
        repo = git_http_backend.create_repository("app", branch="trunk")
        feature = repo.commit("on a feature branch", branch="feature/x")
        p = provider(repo.url)

        assert p.default_branch() == "trunk"
        assert p.head("feature/x") == feature

    def test_a_branch_name_matches_exactly(self, git_http_backend: GitServer) -> None:
        repo = git_http_backend.create_repository("app", branch="trunk")
        repo.commit("only main2", branch="main2")
        p = provider(repo.url)

        with pytest.raises(NotFound, match="'main': the repository has no such branch"):
            p.head("main")
        main = repo.commit("now main too", branch="main")
        assert p.head("main") == main != repo.head("main2")

    def test_missing_branch_and_missing_repository_are_not_found(
            self, git_http_backend: GitServer) -> None:
        repo = git_http_backend.create_repository("app")

        with pytest.raises(NotFound, match="'nope': the repository has no such branch"):
            provider(repo.url).head("nope")
        with pytest.raises(NotFound, match="HTTP 404"):
            provider(f"{git_http_backend.url}/absent.git").head("main")

    def test_an_empty_repository_has_no_default_branch(self, git_http_backend: GitServer) -> None:
        repo = git_http_backend.create_repository("empty", empty=True)

        with pytest.raises(NotFound, match="no default branch"):
            provider(repo.url).default_branch()

    def test_token_goes_as_basic_password_and_none_without_token(
            self, git_http_backend: GitServer) -> None:
        repo = git_http_backend.create_repository("app")

        provider(repo.url, token=TOKEN).head("main")
        provider(repo.url).default_branch()

        expected = "Basic " + base64.b64encode(f"git:{TOKEN}".encode()).decode()
        by_token = {r.authorization for r in git_http_backend.requests}
        assert by_token == {expected, None}

    def test_after_the_first_poll_each_poll_is_one_request(self, git_http_backend: GitServer,
                                                          request: pytest.FixtureRequest) -> None:
        repo = git_http_backend.create_repository("app")
        other = git_http_backend.create_repository("other")
        p = provider(repo.url)

        for _ in range(3):
            assert p.head("main") == repo.head()
        assert provider(other.url).head("main") == other.head()

        kinds = [(r.method, r.kind) for r in git_http_backend.requests]
        if "protocol-v2" in request.node.callspec.id:
            assert kinds == [("GET", CAPABILITIES)] + [("POST", LS_REFS)] * 4
        else:
            assert kinds == [("GET", ADVERTISEMENT)] * 4
            assert smarthttp.SERVERS.get(f"http://127.0.0.1:{git_http_backend.port}") == \
                smarthttp.Protocol(0)
        assert git_http_backend.ls_remote_count("app") == 3
        assert git_http_backend.ls_remote_count("other") == 1

    def test_of_2000_refs_the_v2_answer_carries_only_the_branch(self, git_http_backend: GitServer,
                                                               request: pytest.FixtureRequest) -> None:
        repo = git_http_backend.create_repository("app")
        with Repo(str(repo.path)) as bare:
            bare.refs.add_packed_refs({
                **{f"refs/heads/feature/{n:04}".encode(): repo.head().encode() for n in range(1000)},
                **{f"refs/tags/v{n:04}".encode(): repo.head().encode() for n in range(1000)}})

        assert provider(repo.url).head("main") == repo.head()

        answer = git_http_backend.requests[-1].answer
        if "protocol-v2" in request.node.callspec.id:
            assert smarthttp.pkt_lines(answer) == [f"{repo.head()} refs/heads/main".encode(), None]
            assert len(answer) < 100
        else:
            assert len(smarthttp.pkt_lines(answer)) > 2000

    def test_a_hung_server_is_unavailable_after_the_timeout(self, git_http_backend: GitServer) -> None:
        p = provider(git_http_backend.create_repository("app").url, timeout=0.5)
        assert p.head("main")

        assert_unavailable_while_hung_then_recovers(git_http_backend, p)

    def test_password_right_wrong_missing(self) -> None:
        require_git()
        with GitServer(backend="http-backend", password=TOKEN) as server:
            repo = server.create_repository("private")

            assert provider(repo.url, token=TOKEN).head("main") == repo.head()
            assert_wrong_and_missing_tokens_are_unauthorized(repo.url)

    def test_redirects_are_followed_then_polls_go_straight_to_the_repository(self) -> None:
        require_git()
        with GitServer(backend="http-backend") as server:
            repo = server.create_repository("demo")
            with answering_with(301, {"Location": repo.url + "/info/refs?service=git-upload-pack"}) as url:
                p = provider(url)
                assert p.head("main") == repo.head()
                assert p.head("main") == repo.head()
            assert [r.kind for r in server.requests] == [CAPABILITIES, LS_REFS, LS_REFS]


class TestAgainstDulwichGitServer:
    def test_a_commit_moves_the_head_one_ls_remote_per_question(self, server: GitServer) -> None:
        repo = server.create_repository("demo")
        p = provider(repo.url)

        assert p.head("main") == repo.head("main")
        moved = repo.commit("change", files={"hello.txt": "hi"})
        assert p.head("main") == moved
        assert p.default_branch() == "main"
        assert server.ls_remote_count("demo") == 3

    def test_default_branch_other_than_main(self, server: GitServer) -> None:
        assert provider(server.create_repository("demo", branch="trunk").url).default_branch() == "trunk"

    def test_missing_branch_and_empty_repository_are_not_found(self, server: GitServer) -> None:
        with pytest.raises(NotFound, match="'nope'"):
            provider(server.create_repository("demo").url).head("nope")
        with pytest.raises(NotFound, match="'main'"):
            provider(server.create_repository("empty", empty=True).url).head("main")

    def test_wrong_or_missing_token_is_unauthorized(self, locked_server: GitServer) -> None:
        repo = locked_server.create_repository("demo")

        assert_wrong_and_missing_tokens_are_unauthorized(repo.url)
        assert provider(repo.url, token=TOKEN).head("main") == repo.head()

    def test_credentials_written_in_the_url_are_used_and_never_shown(self, locked_server: GitServer) -> None:
        repo = locked_server.create_repository("demo")
        with_password = repo.url.replace("http://", f"http://user:{TOKEN}@")
        wrong = repo.url.replace("http://", f"http://user:{TOKEN}x@")

        assert provider(with_password).head("main") == repo.head()
        with pytest.raises(Unauthorized) as caught:
            provider(wrong).head("main")
        assert "***@127.0.0.1" in str(caught.value)
        assert_token_hidden(caught.value)

    def test_a_hung_server_is_unavailable_after_the_timeout(self, server: GitServer) -> None:
        p = provider(server.create_repository("demo").url, timeout=0.5)

        assert_unavailable_while_hung_then_recovers(server, p)

    def test_closed_port_is_unavailable(self) -> None:
        with GitServer() as srv:
            url = srv.create_repository("demo").url
        with pytest.raises(Unavailable, match="cannot reach the server"):
            provider(url, timeout=2).head("main")


@pytest.mark.parametrize("status, error, text", [
    (401, Unauthorized, "HTTP 401"), (403, Unauthorized, "HTTP 403"), (404, NotFound, "HTTP 404"),
    (500, Unavailable, "HTTP 500"), (503, Unavailable, "HTTP 503"),
])
def test_http_statuses_from_other_servers(status: int, error: type[Exception], text: str) -> None:
    with (answering_with(status, {"WWW-Authenticate": 'Basic realm="x"'}) as url,
          pytest.raises(error, match=text) as caught):
        provider(url, token=TOKEN).head("main")
    assert_token_hidden(caught.value)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_throttled_not_slept_through(status: int) -> None:
    with answering_with(status, {"Retry-After": "30"}) as url:
        started = time.monotonic()
        with pytest.raises(Throttled, match=f"HTTP {status}") as caught:
            provider(url, token=TOKEN).head("main")
    assert time.monotonic() - started < 2
    assert caught.value.retry_after == 30
    assert_token_hidden(caught.value)


def test_a_web_page_is_not_a_git_repository() -> None:
    with (answering_with(200, {"Content-Type": "text/html"}) as url,
          pytest.raises(ProviderError, match="does not speak git's smart HTTP protocol")):
        provider(url).head("main")


def test_redirects_to_the_repository_are_followed(server: GitServer) -> None:
    repo = server.create_repository("demo")

    with answering_with(301, {"Location": repo.url + "/info/refs?service=git-upload-pack"}) as url:
        p = provider(url)
        assert p.head("main") == repo.head()


@contextmanager
def answering_with(status: int, headers: dict[str, str]) -> Iterator[str]:
    """A web server on loopback that answers every request alike; yields a repository URL."""
    with loopback(type("Fixed", (_FixedAnswer,), {"status": status, "headers_to_send": headers})) as url:
        yield url


class _FixedAnswer(BaseHTTPRequestHandler):
    status = 500
    headers_to_send: ClassVar[dict[str, str]] = {}  # set per server by answering_with

    def do_GET(self) -> None:
        self.send_response(self.status)
        for name, value in self.headers_to_send.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass
