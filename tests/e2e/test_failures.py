"""The daemon through failures: bad branches, credentials, an API server outage, scoping flags."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from revision_controller.function import GROUP, PLURAL
from revision_controller.kube import REQUEST_TIMEOUT_SECONDS
from revision_controller.testing import ApiServer
from revision_controller.testing.gitserver import GitServer, HostedRepository
from tests.canary import secret
from tests.e2e.conftest import (
    DAEMON_TOKEN,
    FIRST_POLL,
    NAMESPACE,
    VERSION,
    WITHIN,
    create,
    events,
    function_manifest,
    ls_remotes,
    put_secret,
    recorded,
    wait_for,
    wait_recorded,
)

PASSWORD = secret("git-password")
WRONG = secret("wrong-git-password")
PARAMS = "repo-type: git\npolling-interval: 1s"


@pytest.fixture
def private_gitserver() -> Iterator[GitServer]:
    with GitServer(password=PASSWORD) as server:
        yield server


def test_a_failing_target_is_reported_once_per_distinct_error_then_recovers(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("branchy", branch="main")
    first = repo.head("main")
    create(functions, function_manifest("branchy", repo.url, PARAMS, revision="feature"), first)
    daemon = start_daemon()
    wait_for(lambda: events(apiserver, "PollFailed", "branchy"), FIRST_POLL, "PollFailed")
    polls = ls_remotes(gitserver, "branchy")
    # A missing branch may be pushed any moment: asked again, backing off (2 s, then 4 s).
    wait_for(lambda: ls_remotes(gitserver, "branchy") >= polls + 2, 12, "two more failing polls")
    (event,) = events(apiserver, "PollFailed", "branchy")
    assert event["type"] == "Warning" and "feature" in event["message"]
    assert daemon.output().count("failed: ") == 1  # logged once too, not at every poll
    feature = repo.commit("start the feature", files={"f": "1"}, branch="feature")
    wait_recorded(functions, "branchy", feature, seconds=8 * 1.1 + WITHIN)  # the next back-off step
    assert "works again" in daemon.output()


def test_a_private_repository_is_read_with_the_secrets_token_which_never_leaks(
        apiserver: ApiServer, private_gitserver: GitServer, functions, start_daemon) -> None:
    repo = private_gitserver.create_repository("private", branch="main")
    first = repo.head("main")
    create(functions, function_manifest("private", repo.url, PARAMS, credentials="git-token"), first)
    daemon = start_daemon()
    (missing,) = wait_for(lambda: events(apiserver, "PollFailed", "private"), FIRST_POLL, "no Secret")
    assert f"Secret {NAMESPACE}/git-token" in missing["message"] and "password" in missing["message"]
    put_secret(apiserver, "git-token", WRONG)
    wait_for(lambda: len(events(apiserver, "PollFailed", "private")) == 2, WITHIN, "a refused token")
    assert "rejected the credentials (HTTP 401)" in events(apiserver, "PollFailed", "private")[1]["message"]
    put_secret(apiserver, "git-token", PASSWORD)
    second = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "private", second)
    everything = daemon.output() + str(apiserver.list("v1", "Event", NAMESPACE))
    assert PASSWORD not in everything and WRONG not in everything


def test_polling_goes_on_through_an_api_server_outage_and_patches_after(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("outage", branch="main")
    create(functions, function_manifest("outage", repo.url, PARAMS), repo.head("main"))
    daemon = start_daemon()
    wait_for(lambda: ls_remotes(gitserver, "outage") >= 1, 10, "the first poll")
    apiserver.stop()
    second = repo.commit("during the outage", files={"a": "1"})
    polls = ls_remotes(gitserver, "outage")
    wait_for(lambda: ls_remotes(gitserver, "outage") >= polls + 2, 10, "polls during the outage")
    wait_for(lambda: "could not update Function" in daemon.output(), 5, "the failed patch logged")
    apiserver.start()
    wait_recorded(functions, "outage", second, seconds=WITHIN + 2)
    assert daemon.process.poll() is None


def test_only_the_namespaces_given_are_watched(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("scoped", branch="main")
    first = repo.head("main")
    create(functions, function_manifest("inside", repo.url, PARAMS), first)
    outside = function_manifest("outside", repo.url, PARAMS)
    outside["metadata"]["namespace"] = "elsewhere"
    functions.create_namespaced_custom_object(GROUP, VERSION, "elsewhere", PLURAL, outside)
    functions.patch_namespaced_custom_object_status(
        GROUP, VERSION, "elsewhere", PLURAL, "outside",
        {"status": {"sources": [{"name": "default", "git": {"commitSha": first}}]}})
    start_daemon("--namespace", NAMESPACE)
    second = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "inside", second, seconds=FIRST_POLL)  # the daemon starts meanwhile
    obj = functions.get_namespaced_custom_object(GROUP, VERSION, "elsewhere", PLURAL, "outside")
    assert obj["status"]["sources"][0]["git"]["commitSha"] == first


def test_v1beta1_is_read_and_patched_when_asked(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("old-api", branch="main")
    create(functions, function_manifest("old-api", repo.url, PARAMS), repo.head("main"))
    start_daemon("--function-version", "v1beta1")
    second = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "old-api", second, seconds=FIRST_POLL)  # the daemon starts meanwhile
    assert apiserver.count_requests("PATCH", r"/v1beta1/namespaces/default/functions/old-api/status$") == 1
    (event,) = wait_for(lambda: events(apiserver, "SourceChanged", "old-api"), 2, "the SourceChanged Event")
    assert event["involvedObject"]["apiVersion"] == f"{GROUP}/v1beta1"


def test_a_function_that_cannot_move_says_why(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("pinned", branch="main")
    sha = repo.head("main")
    create(functions, function_manifest("pinned", repo.url, PARAMS, revision=sha[:10]), sha)
    start_daemon()
    (event,) = wait_for(lambda: events(apiserver, "NotWatched", "pinned"), 10, "NotWatched")
    assert sha[:10] in event["message"] and "commit SHA" in event["message"]
    assert ls_remotes(gitserver, "pinned") == 0
    assert recorded(functions, "pinned") == sha


def five_on_one_repository(git: GitServer, name: str, functions: Any,
                           start_daemon: Any) -> tuple[HostedRepository, list[str], Any]:
    """Five Functions on one new repository, and the daemon once it has polled it."""
    repo = git.create_repository(name, branch="main")
    names = [f"{name}-{number}" for number in range(5)]
    for function in names:
        create(functions, function_manifest(function, repo.url, PARAMS), repo.head("main"))
    daemon = start_daemon()
    wait_for(lambda: ls_remotes(git, name) >= 1, FIRST_POLL, "the first poll")
    return repo, names, daemon


def test_an_api_server_that_does_not_answer_costs_a_poll_one_wait_not_one_per_function(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo, names, daemon = five_on_one_repository(gitserver, "silent", functions, start_daemon)
    apiserver.blackhole(DAEMON_TOKEN)  # no answer at all: each request waits out its timeout
    moved = repo.commit("while the API server is silent", files={"a": "1"})
    wait_for(lambda: "the 4 other Functions of" in daemon.output(), REQUEST_TIMEOUT_SECONDS + WITHIN + 5,
             "the poll to give up on the other Functions after one unanswered patch")
    apiserver.reconnect(DAEMON_TOKEN)
    for name in names:
        wait_recorded(functions, name, moved, seconds=REQUEST_TIMEOUT_SECONDS + WITHIN)


def test_poll_failures_the_silent_api_server_did_not_take_are_told_once_it_answers(
        apiserver: ApiServer, functions, start_daemon, stack: ExitStack) -> None:
    """A node cut off from everything: the git host and the API server fail together."""
    git = stack.enter_context(GitServer())
    _, names, daemon = five_on_one_repository(git, "partitioned", functions, start_daemon)
    apiserver.blackhole(DAEMON_TOKEN)
    git.stop()
    wait_for(lambda: "could not record Event PollFailed" in daemon.output(), REQUEST_TIMEOUT_SECONDS + WITHIN + 5,
             "an Event the API server did not take")
    apiserver.reconnect(DAEMON_TOKEN)
    def told() -> set[str]:
        return {event["involvedObject"]["name"] for event in events(apiserver, "PollFailed")
                if "cannot reach the server" in event["message"]}
    wait_for(lambda: told() == set(names), REQUEST_TIMEOUT_SECONDS + 2 * WITHIN, "every Function told")


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as opened:
        yield opened


def test_a_function_deleted_and_created_again_is_told_again_that_its_target_fails(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("reborn", branch="main")
    manifest = function_manifest("reborn", repo.url, PARAMS, revision="no-such-branch")
    create(functions, manifest, repo.head("main"))
    # Another Function stays on the failing target, which is therefore not forgotten meanwhile.
    create(functions, function_manifest("stays", repo.url, PARAMS, revision="no-such-branch"), repo.head("main"))
    daemon = start_daemon()
    wait_for(lambda: events(apiserver, "PollFailed", "reborn"), FIRST_POLL, "PollFailed")
    functions.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "reborn")
    wait_for(lambda: f"Function {NAMESPACE}/reborn unsubscribed" in daemon.output(), WITHIN, "the deletion seen")
    create(functions, manifest, repo.head("main"))
    wait_for(lambda: len(events(apiserver, "PollFailed", "reborn")) == 2, WITHIN + 2, "the new Function told too")
    assert len({event["involvedObject"]["uid"] for event in events(apiserver, "PollFailed", "reborn")}) == 2
