"""`paths` through the daemon process, with its defaults: on one repository, three Functions built
from `functions/a`, `functions/b` and `functions/c`; `a` and `b` set `paths: ["."]`, `c` does not.

Against the real `git http-backend` (changed files from a shallow fetch without blobs) and the
GitHub, GitLab and Gitee stand-ins (private repositories: changed files from their compare APIs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from revision_controller.testing import ApiServer, hooks
from revision_controller.testing.gitserver import FETCH, GitServer, HostedRepository
from tests.e2e.conftest import (
    FIRST_POLL,
    WITHIN,
    create,
    events,
    function_manifest,
    put_secret,
    recorded,
    status_patches,
    wait_for,
    wait_recorded,
)
from tests.e2e.test_forges import TOKEN, serving
from tests.e2e.test_production import get
from tests.e2e.test_webhooks import HOOK_SECRET, PROMPT, polled, receiving
from tests.providers.conftest import require_git

PATHS = 'paths: ["."]'
FILES = {"functions/a/main.go": "a1", "functions/b/main.go": "b1", "functions/c/main.go": "c1",
         "README.md": "r1"}


@dataclass
class Monorepo:
    """One repository as the Functions name it, and how its comparisons show on the server."""

    hosted: HostedRepository
    url: str
    params: str
    credentials: str | None
    comparisons: Any

    def commit(self, message: str, files: dict[str, str], parent: str | None = None) -> str:
        return self.hosted.commit(message, files, parent=parent)


@pytest.fixture(params=["git", "github", "gitlab", "gitee"])
def monorepo(request: pytest.FixtureRequest, apiserver: ApiServer) -> Iterator[Monorepo]:
    with ExitStack() as stack:
        if request.param == "git":
            require_git()
            server = stack.enter_context(GitServer(backend="http-backend"))
            hosted = server.create_repository("mono", branch="main")
            yield Monorepo(hosted, hosted.url, "repo-type: git\npolling-interval: 1s", None,
                           lambda: [r for r in server.requests if r.kind == FETCH])
            return
        host = stack.enter_context(serving(request.param))
        put_secret(apiserver, "forge-token", TOKEN)
        repository = host.forge.create_repository("team/mono", private=True)
        yield Monorepo(repository.hosted, host.url("team/mono"), host.params(), "forge-token",
                       lambda: [r for r in host.api_requests() if "compare" in r.path])


def counted(daemon: Any, name: str, label: str) -> float:
    """The sum of a counter over every series carrying `label`, such as 'outcome="success"'."""
    response = get(daemon, "/metrics", port="metrics")
    lines = response.text.splitlines() if response is not None else []
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines
               if line.startswith(name + "{") and label in line)


def unchanged_events(apiserver: ApiServer, name: str) -> list[dict]:
    return events(apiserver, "SourceUnchangedInPaths", name)


def test_a_commit_rebuilds_only_the_functions_whose_paths_it_touched_and_a_force_push_rebuilds_all(
        apiserver: ApiServer, monorepo: Monorepo, functions, start_daemon) -> None:
    root = monorepo.hosted.head()
    base = monorepo.commit("three functions", FILES)
    for name, params in (("a", PATHS), ("b", PATHS), ("c", None)):
        settings = "\n".join(part for part in (monorepo.params, params) if part)
        create(functions, function_manifest(name, monorepo.url, settings, credentials=monorepo.credentials),
               base)
    daemon = start_daemon()
    wait_for(lambda: counted(daemon, "revision_controller_polls_total", 'outcome="success"'), FIRST_POLL,
             "a first poll")

    in_a = monorepo.commit("change a", {"functions/a/main.go": "a2"})
    wait_recorded(functions, "a", in_a)
    wait_recorded(functions, "c", in_a)
    (skipped,) = wait_for(lambda: unchanged_events(apiserver, "b"), WITHIN, "b told it was not rebuilt")
    assert in_a in skipped["message"] and "functions/a/main.go" in skipped["message"]
    assert recorded(functions, "b") == base
    assert len(monorepo.comparisons()) == 1  # base..in_a, asked once for a and b together

    readme = monorepo.commit("change the README", {"README.md": "r2"})
    wait_recorded(functions, "c", readme)
    wait_for(lambda: len(unchanged_events(apiserver, "a")) == 1, WITHIN, "a told it was not rebuilt")
    wait_for(lambda: len(unchanged_events(apiserver, "b")) == 2, WITHIN, "b told again, of the new head")
    polls = counted(daemon, "revision_controller_polls_total", 'outcome="success"')
    wait_for(lambda: counted(daemon, "revision_controller_polls_total", 'outcome="success"') >= polls + 3,
             10, "three more polls")
    assert (recorded(functions, "a"), recorded(functions, "b")) == (in_a, base)
    assert (len(unchanged_events(apiserver, "a")), len(unchanged_events(apiserver, "b"))) == (1, 2)
    # One status patch each is the test's own, recording the first build.
    assert [status_patches(apiserver, name) - 1 for name in "abc"] == [1, 0, 2]

    rewritten = monorepo.commit("rewritten history", {**FILES, "README.md": "r3"}, parent=root)
    for name in "abc":
        wait_recorded(functions, name, rewritten)
    (rebuilt_b,) = events(apiserver, "SourceChanged", "b")
    assert "although paths is set, because" in rebuilt_b["message"], rebuilt_b["message"]
    assert counted(daemon, "revision_controller_comparisons_total", 'outcome="uncertain"') >= 1


def test_a_webhook_naming_other_files_does_not_decide_the_comparison_does(
        apiserver: ApiServer, functions, start_daemon, tmp_path: Path) -> None:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(HOOK_SECRET)
    with serving("github") as host:
        put_secret(apiserver, "forge-token", TOKEN)
        repository = host.forge.create_repository("team/hooked", private=True)
        base = repository.commit("three functions", FILES)
        hourly = host.params().replace("polling-interval: 1s", "polling-interval: 1h")
        for name in "ab":
            create(functions, function_manifest(name, host.url("team/hooked"), f"{hourly}\n{PATHS}",
                                                credentials="forge-token"), base)
        receiver = receiving(start_daemon, secret_file)
        wait_for(lambda: polled(receiver.daemon, "github"), FIRST_POLL, "the first poll")
        in_a = repository.commit("change a", {"functions/a/main.go": "a2"})
        lying = hooks.Push(host.url("team/hooked"), in_a, base, modified=("functions/b/main.go",))
        assert receiver.deliver(hooks.github(lying, HOOK_SECRET)) == (202, {"targets": 1})
        wait_recorded(functions, "a", in_a, seconds=PROMPT)
        (skipped,) = wait_for(lambda: unchanged_events(apiserver, "b"), PROMPT, "b told it was not rebuilt")
        assert "functions/a/main.go" in skipped["message"] and recorded(functions, "b") == base


def test_paths_that_leave_the_repository_are_invalid_parameters_told_on_the_function(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("escape", branch="main")
    create(functions, function_manifest("escape", repo.url, 'repo-type: git\npaths: ["../../../etc"]'),
           repo.head("main"))
    start_daemon()
    (invalid,) = wait_for(lambda: events(apiserver, "InvalidParameters", "escape"), FIRST_POLL,
                          "InvalidParameters")
    assert "leaves the repository" in invalid["message"] and invalid["type"] == "Warning"


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitee"])
def test_on_a_public_repository_without_a_token_the_comparison_is_a_git_fetch_not_the_api(
        apiserver: ApiServer, functions, start_daemon, kind: str) -> None:
    with serving(kind) as host:
        repository = host.forge.create_repository("team/open")
        base = repository.commit("three functions", FILES)
        for name, params in (("a", PATHS), ("c", None)):
            settings = "\n".join(part for part in (host.params(), params) if part)
            create(functions, function_manifest(name, host.url("team/open"), settings), base)
        start_daemon()
        wait_for(host.git_requests, FIRST_POLL, "a read over git")
        in_c = repository.commit("change c", {"functions/c/main.go": "c2"})
        wait_recorded(functions, "c", in_c)
        (skipped,) = wait_for(lambda: unchanged_events(apiserver, "a"), WITHIN, "a told it was not rebuilt")
        fetched = [r for r in host.git_requests() if r.path.endswith("/git-upload-pack")]
    assert "functions/c/main.go" in skipped["message"] and recorded(functions, "a") == base
    assert fetched and host.api_requests() == []  # no REST rate limit spent on a public repository
