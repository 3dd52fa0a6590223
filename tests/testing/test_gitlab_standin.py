from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gitlab
import httpx
import pytest
from gitlab.exceptions import GitlabAuthenticationError, GitlabGetError

from providers import gitlab as gitlab_provider
from providers.base import GitSource
from revision_controller.testing.forge import Forge
from revision_controller.testing.gitlab import GitLabServer
from tests.testing.conftest import (
    assert_git_lists_public_and_private_refs,
    assert_provider_compares_commits,
    assert_provider_recovers_after_faults,
    renaming,
)

TOKEN = "gl-standin-token"


@pytest.fixture
def server(forge: Forge) -> Iterator[GitLabServer]:
    with GitLabServer(forge) as srv:
        yield srv


def test_python_gitlab_reads_projects_by_id_and_path_branches_and_commits(forge: Forge,
                                                                        server: GitLabServer) -> None:
    project = forge.create_repository("group/sub/project", private=True)
    first = project.head()
    feature = project.commit("feature", {"f.txt": "f"}, branch="feature/x")
    forge.grant(TOKEN, "group/sub/project")
    client = gitlab.Gitlab(server.url, private_token=TOKEN, timeout=5)

    by_id = client.projects.get(project.id)
    by_path = client.projects.get("group/sub/project")

    assert by_id.path_with_namespace == by_path.path_with_namespace == "group/sub/project"
    assert by_path.id == project.id and by_id.default_branch == "main" and by_id.visibility == "private"
    assert by_id.http_url_to_repo == server.clone_url("group/sub/project")
    assert by_id.branches.get("feature/x").commit["id"] == feature
    commits = by_id.commits.list(ref_name="feature/x", per_page=1, get_all=False)
    assert [c.id for c in commits] == [feature]
    assert [c.id for c in by_id.commits.list(ref_name="feature/x", get_all=True)] == [feature, first]
    assert by_id.commits.list(ref_name="gone", per_page=1, get_all=False) == []


@pytest.mark.parametrize("credentials", [{"oauth_token": TOKEN}, {"job_token": TOKEN}])
def test_oauth_and_job_tokens_are_accepted(forge: Forge, server: GitLabServer,
                                           credentials: dict[str, Any]) -> None:
    forge.create_repository("group/secret", private=True)
    forge.grant(TOKEN)

    assert gitlab.Gitlab(server.url, timeout=5, **credentials).projects.get("group/secret").name == "secret"
    assert server.requests[-1].token == TOKEN


def test_not_found_and_unauthorized_shapes(forge: Forge, server: GitLabServer) -> None:
    forge.create_repository("group/secret", private=True)
    forge.create_repository("group/public")
    anonymous = gitlab.Gitlab(server.url, timeout=5)

    with pytest.raises(GitlabGetError) as hidden:
        anonymous.projects.get("group/secret")
    with pytest.raises(GitlabGetError) as no_branch:
        anonymous.projects.get("group/public", lazy=True).branches.get("nope")
    with pytest.raises(GitlabAuthenticationError) as bad:
        gitlab.Gitlab(server.url, private_token="wrong", timeout=5).projects.get("group/public")

    assert (hidden.value.response_code, hidden.value.error_message) == (404, "404 Project Not Found")
    assert (no_branch.value.response_code, no_branch.value.error_message) == (404, "404 Branch Not Found")
    assert (bad.value.response_code, bad.value.error_message) == (401, "401 Unauthorized")


def test_weak_etag_304_and_ratelimit_headers(forge: Forge, server: GitLabServer) -> None:
    forge.create_repository("group/public")
    url = f"{server.api_url}/projects/group%2Fpublic"

    first = httpx.get(url, timeout=5)
    second = httpx.get(url, headers={"If-None-Match": first.headers["ETag"]}, timeout=5)

    assert first.headers["ETag"].startswith('W/"')
    assert second.status_code == 304 and second.headers["ETag"] == first.headers["ETag"]
    assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("500", "499")
    assert (second.headers["RateLimit-Remaining"], second.headers["RateLimit-Observed"]) == ("498", "2")
    assert int(second.headers["RateLimit-Reset"]) > 0 and "GMT" in second.headers["RateLimit-ResetTime"]


def test_exhausted_budget_is_429_with_retry_after(forge: Forge) -> None:
    forge.create_repository("group/public")
    forge.grant(TOKEN)
    with GitLabServer(forge, limit=1) as server:
        client = gitlab.Gitlab(server.url, private_token=TOKEN, timeout=5)
        client.projects.get("group/public")
        with pytest.raises(GitlabGetError) as caught:
            client.projects.get("group/public", obey_rate_limit=False, max_retries=0)

    assert caught.value.response_code == 429
    assert [r.units for r in server.requests] == [1, 0]


def test_faults_and_the_daemons_provider(forge: Forge, server: GitLabServer) -> None:
    project = forge.create_repository("group/public")
    provider = gitlab_provider.Provider(GitSource("gitlab", server.url, "group/public",
                                                  auth_type="PrivateToken"), None, timeout=5)
    server.fault(429, retry_after=3)
    server.fault(502)

    assert_provider_recovers_after_faults(provider, project, faults=2)
    assert [r.status for r in server.requests] == [429, 502, 200, 200]


def test_git_ls_remote_of_public_and_private_projects(forge: Forge, server: GitLabServer,
                                                      tmp_path: Path) -> None:
    assert_git_lists_public_and_private_refs(forge, server, tmp_path, public="group/sub/public",
                                             private="group/secret", user="oauth2", token=TOKEN)


# --- comparisons


def test_python_gitlab_reads_merge_bases_and_comparisons(forge: Forge, server: GitLabServer) -> None:
    project = forge.create_repository("group/sub/mono", private=True)
    forge.grant(TOKEN, "group/sub/mono")
    base = project.head()
    side = project.commit("side", {"side.txt": "3\n"}, branch="side")
    code = project.commit("code", {"a/x.py": "1\n"})
    docs = project.commit("docs", {"README.md": "2\n"})
    remote = gitlab.Gitlab(server.url, private_token=TOKEN, timeout=5).projects.get("group/sub/mono")

    merge_base = remote.repository_merge_base([side, docs])
    compared = remote.repository_compare(side, docs)
    straight = remote.repository_compare(side, docs, straight=True)

    assert merge_base["id"] == base and merge_base["parent_ids"] == []
    assert [c["id"] for c in compared["commits"]] == [code, docs] and compared["commit"]["id"] == docs
    assert [(d["old_path"], d["new_path"], d["new_file"]) for d in compared["diffs"]] == [
        ("README.md", "README.md", False), ("a/x.py", "a/x.py", True)]
    assert compared["compare_timeout"] is False and compared["compare_same_ref"] is False
    assert [(d["new_path"], d["deleted_file"]) for d in straight["diffs"]] == [
        ("README.md", False), ("a/x.py", False), ("side.txt", True)]
    assert server.requests[-1].status == 200 and server.units_spent(TOKEN) == 4


def test_a_comparison_over_the_file_limit_says_compare_timeout(forge: Forge, server: GitLabServer) -> None:
    project = forge.create_repository("group/mono")
    base = project.head()
    head = project.commit("three", {"a": "a", "b": "b", "c": "c"})
    server.max_compare_files = 2

    answer = httpx.get(f"{server.api_url}/projects/{project.id}/repository/compare",
                       params={"from": base or "", "to": head}, timeout=5)

    assert [d["new_path"] for d in answer.json()["diffs"]] == ["a", "b"]
    assert answer.json()["compare_timeout"] is True
    assert answer.headers["RateLimit-Remaining"] == "499"


def test_unknown_refs_and_projects_are_gitlab_s_404s(forge: Forge, server: GitLabServer) -> None:
    project = forge.create_repository("group/mono")
    forge.create_repository("group/secret", private=True)
    api = f"{server.api_url}/projects"

    def get(path: str, query: list[tuple[str, str]]) -> httpx.Response:
        return httpx.get(f"{api}/{path}", params=query, timeout=5)

    unknown_ref = get(f"{project.id}/repository/merge_base", [("refs[]", "main"), ("refs[]", "f" * 40)])
    one_ref = get(f"{project.id}/repository/merge_base", [("refs[]", "main")])
    unknown_from = get(f"{project.id}/repository/compare", [("from", "nope"), ("to", "main")])
    hidden = get("group%2Fsecret/repository/compare", [("from", "main"), ("to", "main")])

    assert (unknown_ref.status_code, unknown_ref.json()) == (404, {"message": f"404 Could not find ref: {'f' * 40} "
                                                                              "Not Found"})
    assert (one_ref.status_code, one_ref.json()) == (400, {"message": "400 Bad request - Provide at least 2 refs"})
    assert (unknown_from.status_code, unknown_from.json()) == (404, {"message": "404 Ref Not Found"})
    assert (hidden.status_code, hidden.json()) == (404, {"message": "404 Project Not Found"})


def test_the_daemons_provider_compares_commits_through_the_standin(forge: Forge, server: GitLabServer) -> None:
    project = forge.create_repository("group/sub/mono", private=True)
    forge.grant(TOKEN, "group/sub/mono")
    source = gitlab_provider.parse_source(f"{server.url}/group/sub/mono", base_url=server.url)
    provider = gitlab_provider.Provider(source, TOKEN, timeout=5)

    assert_provider_compares_commits(provider, project)


def test_the_provider_finds_a_cut_list_uncertain(forge: Forge, server: GitLabServer) -> None:
    project = forge.create_repository("group/mono")
    base = project.head()
    head = project.commit("two", {"a": "a", "b": "b"})
    server.max_compare_files = 1
    provider = gitlab_provider.Provider(GitSource("gitlab", server.url, str(project.id)), None, timeout=5)

    changed = provider.changed_files(base or "", head)

    assert changed.files == ("a",)
    assert changed.uncertain == "the server's diff limits cut its list of changed files short"


def test_a_rename_is_one_diff_with_both_paths_and_read_as_both(forge: Forge, server: GitLabServer) -> None:
    project = forge.create_repository("group/mono")
    base = project.commit("old", {"old.txt": "a file long enough to be seen as renamed\n"})
    head = renaming(project, "old.txt", "new.txt")
    provider = gitlab_provider.Provider(GitSource("gitlab", server.url, "group/mono"), None, timeout=5)

    [diff] = httpx.get(f"{server.api_url}/projects/group%2Fmono/repository/compare",
                       params={"from": base, "to": head}, timeout=5).json()["diffs"]

    assert (diff["old_path"], diff["new_path"], diff["renamed_file"]) == ("old.txt", "new.txt", True)
    assert provider.changed_files(base, head).files == ("old.txt", "new.txt")
