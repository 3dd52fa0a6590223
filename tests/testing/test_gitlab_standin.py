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
from tests.testing.conftest import assert_git_lists_public_and_private_refs, assert_provider_recovers_after_faults

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
