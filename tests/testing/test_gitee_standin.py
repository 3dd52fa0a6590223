from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from providers import gitee as gitee_provider
from providers.base import GitSource
from revision_controller.testing.forge import Forge
from revision_controller.testing.gitee import GiteeServer
from tests.testing.conftest import (
    assert_git_lists_public_and_private_refs,
    assert_provider_compares_commits,
    assert_provider_recovers_after_faults,
)

TOKEN = "gitee-standin-token"


@pytest.fixture
def server(forge: Forge) -> Iterator[GiteeServer]:
    with GiteeServer(forge) as srv:
        yield srv


def test_repository_branch_and_commits_with_access_token_parameter(forge: Forge, server: GiteeServer) -> None:
    repo = forge.create_repository("owner/repo", private=True, default_branch="master")
    first = repo.head()
    feature = repo.commit("feature", branch="feature/x")
    forge.grant(TOKEN, "owner/repo")
    api, token = f"{server.api_url}/repos/owner/repo", {"access_token": TOKEN}

    document = httpx.get(api, params=token, timeout=5).json()
    branch = httpx.get(f"{api}/branches/feature/x", params=token, timeout=5).json()
    commits = httpx.get(f"{api}/commits", params={**token, "sha": "feature/x", "per_page": 1}, timeout=5).json()
    both = httpx.get(f"{api}/commits", params={**token, "sha": "feature/x"}, timeout=5).json()

    assert (document["full_name"], document["default_branch"], document["private"]) == ("owner/repo", "master", True)
    assert branch["name"] == "feature/x" and branch["commit"]["sha"] == feature
    assert branch["commit"]["commit"]["message"] == "feature"
    assert [c["sha"] for c in commits] == [feature] and [c["sha"] for c in both] == [feature, first]
    assert all("access_token" not in r.query and r.token == TOKEN for r in server.requests)


@pytest.mark.parametrize("scheme", ["token", "Bearer"])
def test_authorization_header_is_accepted(forge: Forge, server: GiteeServer, scheme: str) -> None:
    forge.create_repository("owner/repo", private=True)
    forge.grant(TOKEN)

    answer = httpx.get(f"{server.api_url}/repos/owner/repo", headers={"Authorization": f"{scheme} {TOKEN}"},
                       timeout=5)

    assert answer.status_code == 200


def test_not_found_and_unauthorized_shapes(forge: Forge, server: GiteeServer) -> None:
    forge.create_repository("owner/secret", private=True)
    forge.create_repository("owner/repo")
    api = server.api_url

    hidden = httpx.get(f"{api}/repos/owner/secret", timeout=5)
    no_branch = httpx.get(f"{api}/repos/owner/repo/branches/nope", timeout=5)
    bad = httpx.get(f"{api}/repos/owner/repo", params={"access_token": "wrong"}, timeout=5)

    assert (hidden.status_code, hidden.json()) == (404, {"message": "Not Found"})
    assert (no_branch.status_code, no_branch.json()) == (404, {"message": "Not Found"})
    assert (bad.status_code, bad.json()) == (401, {"message": "401 Unauthorized: Access token does not exist"})


def test_etag_304_ratelimit_headers_and_exhaustion(forge: Forge) -> None:
    forge.create_repository("owner/repo")
    with GiteeServer(forge, anonymous_limit=2) as server:
        url = f"{server.api_url}/repos/owner/repo"
        first = httpx.get(url, timeout=5)
        second = httpx.get(url, headers={"If-None-Match": first.headers["ETag"]}, timeout=5)
        third = httpx.get(url, timeout=5)

    assert second.status_code == 304 and second.headers["X-RateLimit-Remaining"] == "0"
    assert first.headers["X-RateLimit-Remaining"] == "1" and first.headers["X-RateLimit-Limit"] == "2"
    assert third.status_code == 403 and third.headers["X-RateLimit-Remaining"] == "0"


def test_empty_repository_lists_no_commits(forge: Forge, server: GiteeServer) -> None:
    forge.create_repository("owner/empty", empty=True)

    answer = httpx.get(f"{server.api_url}/repos/owner/empty/commits", params={"sha": "main", "per_page": 1},
                       timeout=5)

    assert (answer.status_code, answer.json()) == (200, [])


def test_faults_and_the_daemons_provider(forge: Forge, server: GiteeServer) -> None:
    repo = forge.create_repository("owner/repo")
    provider = gitee_provider.Provider(GitSource("gitee", server.api_url, "owner/repo"), None, timeout=5)
    server.fault(500)

    assert_provider_recovers_after_faults(provider, repo)


def test_git_ls_remote_of_public_and_private_repositories(forge: Forge, server: GiteeServer,
                                                          tmp_path: Path) -> None:
    assert_git_lists_public_and_private_refs(forge, server, tmp_path, public="owner/repo", private="owner/secret",
                                             user="owner", token=TOKEN)


# --- comparisons


def test_compare_is_github_s_shape_with_truncated(forge: Forge, server: GiteeServer) -> None:
    repo = forge.create_repository("owner/mono", private=True)
    forge.grant(TOKEN, "owner/mono")
    base = repo.head()
    head = repo.commit("three", {"a": "a", "b": "b", "c": "c"})
    url = f"{server.api_url}/repos/owner/mono/compare/{base}...{head}"
    headers = {"Authorization": f"token {TOKEN}"}

    whole = httpx.get(url, headers=headers, timeout=5)
    server.max_compare_files = 2
    cut = httpx.get(url, headers=headers, timeout=5).json()
    unknown = httpx.get(f"{server.api_url}/repos/owner/mono/compare/{'0' * 40}...{head}", headers=headers,
                        timeout=5)

    assert whole.status_code == 200 and whole.headers["X-RateLimit-Remaining"] == "4999"
    document = whole.json()
    assert document["merge_base_commit"]["sha"] == document["base_commit"]["sha"] == base
    assert [c["sha"] for c in document["commits"]] == [head]
    assert [f["filename"] for f in document["files"]] == ["a", "b", "c"] and document["truncated"] is False
    assert [f["filename"] for f in cut["files"]] == ["a", "b"] and cut["truncated"] is True
    assert (unknown.status_code, unknown.json()) == (404, {"message": "Not Found"})


def test_the_daemons_provider_compares_commits_through_the_standin(forge: Forge, server: GiteeServer) -> None:
    repo = forge.create_repository("owner/mono", private=True)
    forge.grant(TOKEN, "owner/mono")
    provider = gitee_provider.Provider(GitSource("gitee", server.api_url, "owner/mono"), TOKEN, timeout=5)

    assert_provider_compares_commits(provider, repo)


def test_the_provider_finds_a_truncated_list_uncertain(forge: Forge, server: GiteeServer) -> None:
    repo = forge.create_repository("owner/mono")
    base = repo.head()
    head = repo.commit("two", {"a": "a", "b": "b"})
    server.max_compare_files = 1
    provider = gitee_provider.Provider(GitSource("gitee", server.api_url, "owner/mono"), None, timeout=5)

    changed = provider.changed_files(base or "", head)

    assert changed.files == ("a",) and changed.uncertain == "the server cut its list of changed files short"
