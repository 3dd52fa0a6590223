"""The daemon as shipped, with its default flags, against GitHub, GitLab and Gitee stand-ins
and the real `git http-backend`.

Each stand-in serves both the host's REST API and git smart HTTP, as github.com
does: a public repository is read over git without a token, a private one
through the API with the Secret's token, conditionally, so that an unchanged
branch costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from revision_controller.budgets import MAX_STRETCH, MIN_PACE_SPAN_SECONDS
from revision_controller.testing import ApiServer
from revision_controller.testing.forge import Forge, ForgeRepository
from revision_controller.testing.gitee import GiteeServer
from revision_controller.testing.github import GitHubServer
from revision_controller.testing.gitlab import GitLabServer
from revision_controller.testing.gitserver import CAPABILITIES, LS_REFS, GitServer
from tests.canary import secret
from tests.e2e.conftest import (
    FIRST_POLL,
    WITHIN,
    create,
    events,
    function_manifest,
    put_secret,
    wait_for,
    wait_recorded,
)
from tests.e2e.test_production import metric
from tests.providers.conftest import require_git

TOKEN = secret("forge-token")
WRONG = secret("wrong-forge-token")
SERVERS = {"github": GitHubServer, "gitlab": GitLabServer, "gitee": GiteeServer}


@dataclass
class Host:
    kind: str
    forge: Forge
    server: GitHubServer | GitLabServer | GiteeServer

    def params(self) -> str:
        return f"repo-type: {self.kind}\nbase-url: {self.server.api_url}\npolling-interval: 1s"

    def url(self, full_name: str) -> str:
        return f"{self.server.url}/{full_name}"

    def api_requests(self) -> list:
        return [request for request in self.server.requests if request.path.startswith("/api/")]

    def git_requests(self) -> list:
        return [request for request in self.server.requests if ".git/" in request.path]


@contextmanager
def serving(kind: str, **options: Any) -> Iterator[Host]:
    """A forge whose repositories `TOKEN` may read, served by the stand-in of `kind`."""
    forge = Forge()
    forge.grant(TOKEN)
    try:
        with SERVERS[kind](forge, **options) as server:
            yield Host(kind, forge, server)
    finally:
        forge.close()


@pytest.fixture(params=sorted(SERVERS))
def host(request: pytest.FixtureRequest) -> Iterator[Host]:
    with serving(request.param) as opened:
        yield opened


def private_function(functions: Any, host: Host, name: str) -> ForgeRepository:
    """A private repository `team/NAME`, and a Function NAME reading it with the Secret
    `forge-token`, which the caller puts."""
    repo = host.forge.create_repository(f"team/{name}", private=True)
    create(functions, function_manifest(name, host.url(f"team/{name}"), host.params(),
                                        credentials="forge-token"), repo.head())
    return repo


def test_a_public_repository_is_read_over_git_without_a_token_or_the_api(
        apiserver: ApiServer, host: Host, functions, start_daemon) -> None:
    repo = host.forge.create_repository("team/public")
    create(functions, function_manifest("public", host.url("team/public"), host.params()), repo.head())
    start_daemon()
    wait_for(host.git_requests, FIRST_POLL, "a read over git")
    moved = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "public", moved)
    assert host.api_requests() == []  # no REST rate limit applies to public repositories


def test_a_private_repository_is_read_through_the_api_for_free_while_nothing_changes(
        apiserver: ApiServer, host: Host, functions, start_daemon) -> None:
    put_secret(apiserver, "forge-token", TOKEN)
    repo = private_function(functions, host, "private")
    daemon = start_daemon()
    wait_for(host.api_requests, FIRST_POLL, "a first poll")
    moved = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "private", moved)
    polled = len(host.api_requests())
    wait_for(lambda: len(host.api_requests()) >= polled + 3, 10, "three more polls")
    unchanged = host.api_requests()[polled:]
    assert {request.status for request in unchanged} == {304}, unchanged
    if host.kind == "github":  # an authorized 304 costs no rate-limit unit on GitHub
        spent = host.server.units_spent(TOKEN)
        wait_for(lambda: len(host.api_requests()) >= polled + 5, 10, "two more polls")
        assert host.server.units_spent(TOKEN) == spent
    assert TOKEN not in daemon.output() + str(apiserver.list("v1", "Event", "default"))


def test_a_wrong_token_is_told_on_the_function_with_the_fix_and_a_new_one_is_used_at_once(
        apiserver: ApiServer, host: Host, functions, start_daemon) -> None:
    put_secret(apiserver, "forge-token", WRONG)
    repo = private_function(functions, host, "locked")
    daemon = start_daemon()
    (failed,) = wait_for(lambda: events(apiserver, "PollFailed", "locked"), FIRST_POLL, "PollFailed")
    assert failed["involvedObject"]["name"] == "locked" and failed["type"] == "Warning"
    assert "team/locked" in failed["message"] and "token" in failed["message"]
    put_secret(apiserver, "forge-token", TOKEN)
    moved = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "locked", moved, seconds=WITHIN + 2)  # the Secret is re-read within a second
    everything = daemon.output() + str(apiserver.list("v1", "Event", "default"))
    assert TOKEN not in everything and WRONG not in everything


def test_a_private_repository_without_a_secret_says_a_token_is_needed(
        apiserver: ApiServer, host: Host, functions, start_daemon) -> None:
    repo = host.forge.create_repository("team/secret", private=True)
    create(functions, function_manifest("nosecret", host.url("team/secret"), host.params()), repo.head())
    start_daemon()
    (failed,) = wait_for(lambda: events(apiserver, "PollFailed", "nosecret"), FIRST_POLL, "PollFailed")
    assert "credentials" in failed["message"]


def test_past_the_ceiling_github_heads_are_read_in_graphql_batches(
        apiserver: ApiServer, functions, start_daemon) -> None:
    with serving("github") as host:
        put_secret(apiserver, "forge-token", TOKEN)
        repos = {name: private_function(functions, host, name) for name in ("a", "b", "c")}
        started = time.monotonic()
        start_daemon("--graphql-batch-above", "0")
        wait_for(lambda: any(r.path == "/api/graphql" for r in host.api_requests()), FIRST_POLL, "a batch")
        moved = {name: repo.commit("change", files={"a": name}) for name, repo in repos.items()}
        for name, sha in moved.items():
            wait_recorded(functions, name, sha, seconds=WITHIN + 1)
        graphql = [r for r in host.api_requests() if r.path == "/api/graphql"]
        rest = [r for r in host.api_requests() if r.path.startswith("/api/v3/repos/")]
        assert rest == [] and graphql
        # Three targets a second, read together: at most one query a second, not three.
        seconds = time.monotonic() - started
        assert len(graphql) <= seconds + 1, (len(graphql), seconds)


def test_a_repository_on_the_real_git_http_backend_costs_one_ls_refs_a_poll(
        apiserver: ApiServer, functions, start_daemon) -> None:
    require_git()
    with GitServer(backend="http-backend") as server:
        repo = server.create_repository("real", branch="main")
        create(functions, function_manifest("real", repo.url, "repo-type: git\npolling-interval: 1s"),
               repo.head("main"))
        start_daemon()
        wait_for(lambda: server.ls_remote_count("real") >= 1, FIRST_POLL, "a first poll")
        moved = repo.commit("change", files={"a": "1"})
        wait_recorded(functions, "real", moved)
        wait_for(lambda: server.ls_remote_count("real") >= 4, 10, "more polls")
        kinds = [request.kind for request in server.requests]
        # The server's capabilities are asked once; after that a poll is one POST ls-refs.
        assert kinds.count(CAPABILITIES) == 1 and set(kinds) == {CAPABILITIES, LS_REFS}, kinds


def test_retry_after_holds_every_request_to_the_host_until_the_time_it_names(
        apiserver: ApiServer, functions, start_daemon) -> None:
    with serving("github") as host:
        put_secret(apiserver, "forge-token", TOKEN)
        private_function(functions, host, "paced")
        start_daemon()
        wait_for(host.api_requests, FIRST_POLL, "a first poll")
        host.server.fault(403, secondary=True, retry_after=4)
        (limited,) = wait_for(lambda: [r for r in host.api_requests() if r.status == 403], 5, "the limit")
        later = wait_for(lambda: [r for r in host.api_requests() if r.at > limited.at], 12, "a request after")
        assert later[0].at - limited.at >= 4 - 0.2, later[0].at - limited.at


def test_a_budget_that_would_run_out_stretches_the_interval_and_says_so(
        apiserver: ApiServer, functions, start_daemon) -> None:
    with serving("gitlab", limit=40, window_seconds=60) as host:
        put_secret(apiserver, "forge-token", TOKEN)
        private_function(functions, host, "thrifty")
        daemon = start_daemon()
        # One request a second against 40 a minute: the budget lasts only if polls are stretched.
        # The pace is judged once answers span MIN_PACE_SPAN_SECONDS, not before.
        (told,) = wait_for(lambda: events(apiserver, "RateLimited", "thrifty"),
                           FIRST_POLL + MIN_PACE_SPAN_SECONDS + 10, "RateLimited")
        assert "instead of 1s" in told["message"]
        stretch = metric(daemon, "revision_controller_interval_stretch_ratio",
                         host=f"127.0.0.1:{host.server.port}")
        assert stretch is not None and stretch > 1.0
        spent = len(host.api_requests())
        # Polling goes on, at the stretched interval: at most MAX_STRETCH times the 1s asked.
        wait_for(lambda: len(host.api_requests()) > spent, MAX_STRETCH * 1.1 + 5, "a stretched poll")
        assert not [r for r in host.api_requests() if r.status == 429]  # the budget never ran out
