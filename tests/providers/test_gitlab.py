from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from providers import changes, gitlab
from providers.base import (
    ChangedFiles,
    GitSource,
    InvalidSource,
    NotFound,
    ProviderError,
    RateLimit,
    Throttled,
    Unauthorized,
    Unavailable,
)
from tests.providers.conftest import TOKEN, assert_token_hidden

SERVER = "https://gitlab.com"
PROJECT_URL = f"{SERVER}/api/v4/projects/group%2Fsub%2Fproject"
MAIN_URL = f"{PROJECT_URL}/repository/branches/main"
SHA = "0123456789abcdef0123456789abcdef01234567"
NEWER = "89abcdef0123456789abcdef0123456789abcdef"
SOURCE = GitSource(repo_type="gitlab", server=SERVER, repository="group/sub/project",
                   auth_type="PrivateToken", clone_url="https://gitlab.com/group/sub/project.git")


def branch(sha: str = SHA) -> dict[str, object]:
    return {"name": "main", "commit": {"id": sha, "short_id": sha[:8]}}


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def provider(token: str | None = TOKEN, source: GitSource = SOURCE) -> gitlab.Provider:
    return gitlab.Provider(source, token, timeout=3)


def budget(remaining: int = 1999, reset: float = 1_900_000_000) -> dict[str, str]:
    return {"RateLimit-Limit": "2000", "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(int(reset))}


# --- where a project is


@pytest.mark.parametrize("url", [
    "https://gitlab.com/group/sub/project",
    "https://gitlab.com/group/sub/project.git",
    "https://gitlab.com/group/sub/project/",
    "https://GITLAB.com/group/sub/project",
    "https://gitlab.com/group/sub/project/-/tree/main",
    f"https://oauth2:{TOKEN}@gitlab.com/group/sub/project.git",
    "git@gitlab.com:group/sub/project.git",
    "ssh://git@gitlab.com/group/sub/project.git",
])
def test_every_url_form_names_the_project_path_and_clone_url(url: str) -> None:
    assert gitlab.parse_source(url) == SOURCE


def test_self_managed_host_is_the_server() -> None:
    source = gitlab.parse_source("git@gitlab.example.com:team/app.git")
    assert (source.server, source.repository, source.clone_url) == (
        "https://gitlab.example.com", "team/app", "https://gitlab.example.com/team/app.git")


@pytest.mark.parametrize("base_url", [
    "https://gl.example.com", "https://gl.example.com/", "https://gl.example.com/api/v4",
    "https://gl.example.com/api/v4/",
])
def test_base_url_loses_the_api_path_python_gitlab_adds(base_url: str) -> None:
    source = gitlab.parse_source("https://gl.example.com/team/app", base_url=base_url)
    assert source.server == "https://gl.example.com"


@pytest.mark.parametrize("project_id", ["4242", "other/project", " /other/project/ "])
def test_project_id_overrides_the_url(project_id: str) -> None:
    source = gitlab.parse_source("https://gitlab.com/group/sub/project", project_id=project_id)
    assert source.repository == project_id.strip().strip("/")


@pytest.mark.parametrize("url, base_url, project_id, clone_url", [
    ("", "https://gl.example.com", "7", ""),
    ("not a url", "https://gl.example.com", "7", ""),
    ("git@GL.example.com:team/app.git", "https://gl.example.com", "7", "https://gl.example.com/team/app.git"),
    ("", "https://GL.example.com/gitlab/api/v4", "team/app", "https://gl.example.com/gitlab/team/app.git"),
    ("https://gitlab.com/group/sub/project", "", "other/project", "https://gitlab.com/other/project.git"),
    ("http://gl.example.com:8080/team/app", "", "", "http://gl.example.com:8080/team/app.git"),
])
def test_clone_url_is_empty_only_when_a_numeric_id_is_all_there_is(
        url: str, base_url: str, project_id: str, clone_url: str) -> None:
    source = gitlab.parse_source(url, base_url=base_url, project_id=project_id)
    assert source.clone_url == clone_url


@pytest.mark.parametrize("auth_type", ["", "PrivateToken", "OAuthToken", "JobToken"])
def test_auth_type_is_kept_normalised(auth_type: str) -> None:
    source = gitlab.parse_source("https://gitlab.com/g/p", auth_type=auth_type)
    assert source.auth_type == (auth_type or "PrivateToken")


def test_unknown_auth_type_names_the_allowed_ones() -> None:
    with pytest.raises(InvalidSource, match=r"'Basic'.*PrivateToken, OAuthToken, JobToken"):
        gitlab.parse_source("https://gitlab.com/g/p", auth_type="Basic")


@pytest.mark.parametrize("url, project_id", [("", ""), ("gitlab.com/g/p", ""),
                                             ("https://gitlab.com/g/p", "g//p")])
def test_unreadable_sources_are_invalid(url: str, project_id: str) -> None:
    with pytest.raises(InvalidSource, match="write"):
        gitlab.parse_source(url, project_id=project_id)


# --- head: one branch, asked for conditionally


@pytest.mark.parametrize("auth_type, header, value", [
    ("PrivateToken", "PRIVATE-TOKEN", TOKEN),
    ("OAuthToken", "Authorization", f"Bearer {TOKEN}"),
    ("JobToken", "JOB-TOKEN", TOKEN),
])
def test_head_is_one_branch_request_with_the_token_kind_asked_for(
        mock: responses.RequestsMock, auth_type: str, header: str, value: str) -> None:
    mock.get(f"{PROJECT_URL}/repository/branches/feature%2Fx", json=branch())
    source = gitlab.parse_source("https://gitlab.com/group/sub/project", auth_type=auth_type)

    assert provider(source=source).head("feature/x") == SHA

    [call] = mock.calls
    assert urlsplit(call.request.url).path == (
        "/api/v4/projects/group%2Fsub%2Fproject/repository/branches/feature%2Fx")
    assert urlsplit(call.request.url).query == ""
    assert call.request.headers[header] == value
    assert "If-None-Match" not in call.request.headers
    assert call.request.req_kwargs["timeout"] == 3


def test_public_project_is_read_without_any_token_header(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, json=branch())

    provider(token=None).head("main")

    headers = mock.calls[0].request.headers
    assert not {"PRIVATE-TOKEN", "JOB-TOKEN", "Authorization"} & set(headers)


def test_second_poll_sends_the_etag_and_a_304_keeps_the_sha(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, json=branch(), headers={"ETag": 'W/"one"'})
    mock.get(MAIN_URL, status=304)
    mock.get(MAIN_URL, json=branch(NEWER), headers={"ETag": 'W/"two"'})
    mock.get(MAIN_URL, status=304)
    p = provider()

    assert [p.head("main") for _ in range(4)] == [SHA, SHA, NEWER, NEWER]

    assert [c.request.headers.get("If-None-Match") for c in mock.calls] == [
        None, 'W/"one"', 'W/"one"', 'W/"two"']


def test_without_an_etag_polls_stay_unconditional(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, json=branch())
    mock.get(MAIN_URL, json=branch())
    p = provider()

    p.head("main")
    p.head("main")

    assert "If-None-Match" not in mock.calls[1].request.headers


def test_numeric_project_id_is_used_as_is(mock: responses.RequestsMock) -> None:
    mock.get("https://gl.example.com/api/v4/projects/4242/repository/branches/main", json=branch())
    source = gitlab.parse_source("", base_url="https://gl.example.com/api/v4", project_id="4242")

    assert provider(source=source).head("main") == SHA


@pytest.mark.parametrize("body", [{"name": "main"}, {"commit": {"id": "abc"}}, [branch()]])
def test_an_answer_without_a_commit_id_is_unreadable(mock: responses.RequestsMock, body: object) -> None:
    mock.get(MAIN_URL, json=body)

    with pytest.raises(Unavailable, match="could not be read"):
        provider().head("main")


def test_default_branch_is_read_from_the_project_conditionally(mock: responses.RequestsMock) -> None:
    mock.get(PROJECT_URL, json={"id": 1, "default_branch": "develop"}, headers={"ETag": '"p"'})
    mock.get(PROJECT_URL, status=304)
    p = provider()

    assert [p.default_branch(), p.default_branch()] == ["develop", "develop"]

    assert mock.calls[1].request.headers["If-None-Match"] == '"p"'


def test_project_without_default_branch_is_not_found(mock: responses.RequestsMock) -> None:
    mock.get(PROJECT_URL, json={"id": 1, "default_branch": None})

    with pytest.raises(NotFound, match="no default branch"):
        provider().default_branch()


# --- the budget and throttling


@pytest.mark.parametrize("status", [200, 304, 404])
def test_every_answer_updates_the_rate_limit(mock: responses.RequestsMock, status: int) -> None:
    mock.get(MAIN_URL, json=branch(), headers={"ETag": '"e"', **budget(1500)})
    body: dict[str, Any] = {} if status == 304 else {"json": branch()}
    mock.get(MAIN_URL, status=status, headers=budget(1499, 1_900_000_060), **body)
    p = provider()
    p.head("main")
    assert p.rate_limit == RateLimit(2000, 1500, 1_900_000_000)

    with suppress(ProviderError):
        p.head("main")

    assert p.rate_limit == RateLimit(2000, 1499, 1_900_000_060)


def test_the_github_style_headers_are_not_gitlabs(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, json=branch(), headers={"X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "1",
                                               "X-RateLimit-Reset": "1900000000"})
    p = provider()

    p.head("main")

    assert p.rate_limit is None


def test_429_pauses_for_retry_after(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, status=429, headers={"Retry-After": "17", **budget(0)},
             json={"message": f"Retry later {TOKEN}"})

    with pytest.raises(Throttled, match="HTTP 429") as caught:
        provider().head("main")

    assert caught.value.retry_after == 17
    assert_token_hidden(caught.value)
    assert len(mock.calls) == 1


def test_429_without_retry_after_pauses_until_the_reset(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, status=429, headers=budget(0, time.time() + 200))

    with pytest.raises(Throttled) as caught:
        provider().head("main")

    assert 195 <= caught.value.retry_after <= 200


# --- failures


def test_redirects_are_not_followed_so_the_token_stays_home(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, status=301, headers={"Location": "https://elsewhere.example/branches/main"})

    with pytest.raises(ProviderError, match="HTTP 301"):
        provider().head("main")

    assert len(mock.calls) == 1


@pytest.mark.parametrize("status, error", [
    (401, Unauthorized), (403, Unauthorized), (404, NotFound), (429, Throttled),
    (500, Unavailable), (502, Unavailable), (503, Unavailable), (418, ProviderError),
])
def test_http_failures_map_to_provider_errors_after_one_request(
        mock: responses.RequestsMock, status: int, error: type[ProviderError]) -> None:
    mock.get(MAIN_URL, status=status, json={"message": f"{status} echoing {TOKEN}"})

    with pytest.raises(error) as caught:
        provider().head("main")

    assert type(caught.value) is error
    assert "group/sub/project" in str(caught.value) and "'main'" in str(caught.value)
    assert_token_hidden(caught.value)
    assert len(mock.calls) == 1


def test_default_branch_failure_names_the_project(mock: responses.RequestsMock) -> None:
    mock.get(PROJECT_URL, status=404, json={"message": "404 Project Not Found"})

    with pytest.raises(NotFound, match=r"group/sub/project.*needs a token in the credentials Secret"):
        provider(token=None).default_branch()


@pytest.mark.parametrize("failure, expected", [
    (requests.exceptions.ReadTimeout(f"timed out {TOKEN}"), "no answer within 3s"),
    (requests.exceptions.ConnectionError(f"refused {TOKEN}"), "cannot reach the server"),
])
def test_network_failures_are_unavailable_after_one_attempt(
        mock: responses.RequestsMock, failure: Exception, expected: str) -> None:
    mock.get(MAIN_URL, body=failure)

    with pytest.raises(Unavailable, match=expected) as caught:
        provider().head("main")

    assert_token_hidden(caught.value)
    assert len(mock.calls) == 1


def test_token_is_not_logged(mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mock.get(MAIN_URL, status=401, json={"message": "401 Unauthorized"})

    with pytest.raises(Unauthorized):
        provider().head("main")

    assert TOKEN not in caplog.text


# --- changed files: the merge base, then one comparison


MERGE_BASE_URL = f"{PROJECT_URL}/repository/merge_base"
COMPARE_URL = f"{PROJECT_URL}/repository/compare"
NOT_AN_ANCESTOR = "the recorded commit 0123456 is not an ancestor of the head 89abcde: history was rewritten"


def diff(old: str, new: str | None = None) -> dict[str, object]:
    new = new or old
    return {"old_path": old, "new_path": new, "a_mode": "100644", "b_mode": "100644", "new_file": False,
            "renamed_file": old != new, "deleted_file": False, "diff": "@@ -1 +1 @@\n-a\n+b\n"}


def compared(diffs: list[dict[str, object]], timeout: bool = False) -> dict[str, object]:
    return {"commit": {"id": NEWER}, "commits": [{"id": NEWER}], "diffs": diffs, "compare_timeout": timeout,
            "compare_same_ref": False, "web_url": "https://gitlab.com/group/sub/project/-/compare/x...y"}


def test_changed_files_asks_the_merge_base_then_compares(mock: responses.RequestsMock) -> None:
    mock.get(MERGE_BASE_URL, json={"id": SHA, "short_id": SHA[:8]}, headers=budget(1990))
    mock.get(COMPARE_URL, json=compared([diff("a/x.py"), diff("README.md")]), headers=budget(1989))
    p = provider()

    assert p.changed_files(SHA, NEWER) == ChangedFiles(files=("a/x.py", "README.md"))

    merge_base, compare = mock.calls
    assert urlsplit(merge_base.request.url).path == "/api/v4/projects/group%2Fsub%2Fproject/repository/merge_base"
    assert parse_qsl(urlsplit(merge_base.request.url).query) == [("refs[]", SHA), ("refs[]", NEWER)]
    assert parse_qsl(urlsplit(compare.request.url).query) == [("from", SHA), ("to", NEWER)]
    for call in mock.calls:
        assert call.request.headers["PRIVATE-TOKEN"] == TOKEN
        assert call.request.req_kwargs["timeout"] == 3
    assert p.rate_limit == RateLimit(limit=2000, remaining=1989, reset_at=1_900_000_000)


def test_a_rename_lists_the_old_and_the_new_path(mock: responses.RequestsMock) -> None:
    mock.get(MERGE_BASE_URL, json={"id": SHA})
    mock.get(COMPARE_URL, json=compared([diff("old/x.py", "new/x.py"), diff("old/x.py")]))

    assert provider().changed_files(SHA, NEWER) == ChangedFiles(files=("old/x.py", "new/x.py"))


def test_a_list_cut_by_the_diff_limits_is_uncertain(mock: responses.RequestsMock) -> None:
    mock.get(MERGE_BASE_URL, json={"id": SHA})
    mock.get(COMPARE_URL, json=compared([diff("a/x.py")], timeout=True))

    assert provider().changed_files(SHA, NEWER) == ChangedFiles(
        files=("a/x.py",), uncertain="the server's diff limits cut its list of changed files short")


def test_another_merge_base_means_not_an_ancestor_and_no_comparison(mock: responses.RequestsMock) -> None:
    mock.get(MERGE_BASE_URL, json={"id": "f" * 40})

    assert provider().changed_files(SHA, NEWER) == ChangedFiles(uncertain=NOT_AN_ANCESTOR)
    assert len(mock.calls) == 1


@pytest.mark.parametrize("message, uncertain", [
    (f"404 Could not find ref: {SHA} Not Found",
     "the server does not know the recorded commit 0123456: history was rewritten"),
    ("404 Merge Base Not Found", NOT_AN_ANCESTOR),
])
def test_a_404_about_the_refs_is_uncertain(mock: responses.RequestsMock, message: str, uncertain: str) -> None:
    mock.get(MERGE_BASE_URL, status=404, json={"message": message})

    assert provider().changed_files(SHA, NEWER) == ChangedFiles(uncertain=uncertain)


def test_a_404_about_the_project_is_not_found(mock: responses.RequestsMock) -> None:
    mock.get(MERGE_BASE_URL, status=404, json={"message": "404 Project Not Found"})

    with pytest.raises(NotFound, match="group/sub/project"):
        provider().changed_files(SHA, NEWER)


@pytest.mark.parametrize("status, error", [
    (401, Unauthorized), (429, Throttled), (500, Unavailable), (503, Unavailable),
])
@pytest.mark.parametrize("failing", ["merge_base", "compare"])
def test_comparison_failures_are_the_errors_head_raises(mock: responses.RequestsMock, status: int,
                                                        error: type[ProviderError], failing: str) -> None:
    answer = {"status": status, "json": {"message": f"{status} echoing {TOKEN}"}, "headers": {"Retry-After": "5"}}
    if failing == "compare":
        mock.get(MERGE_BASE_URL, json={"id": SHA})
    mock.get(f"{PROJECT_URL}/repository/{failing}", **answer)

    with pytest.raises(error) as caught:
        provider().changed_files(SHA, NEWER)

    assert type(caught.value) is error and "group/sub/project" in str(caught.value)
    assert_token_hidden(caught.value)


def test_a_comparison_timing_out_is_unavailable(mock: responses.RequestsMock) -> None:
    mock.get(MERGE_BASE_URL, body=requests.exceptions.ReadTimeout(f"timed out {TOKEN}"))

    with pytest.raises(Unavailable, match="no answer within 3s") as caught:
        provider().changed_files(SHA, NEWER)

    assert_token_hidden(caught.value)


@pytest.mark.parametrize("merge_base, comparison", [
    ({"id": "not a sha"}, None),
    ([], None),
    ({"id": SHA}, {"diffs": [{"new_path": "a"}], "compare_timeout": False}),
    ({"id": SHA}, {"diffs": "a", "compare_timeout": False}),
    ({"id": SHA}, {"diffs": [], "compare_timeout": "no"}),
])
def test_an_unreadable_answer_is_unavailable(mock: responses.RequestsMock, merge_base: object,
                                             comparison: object) -> None:
    mock.get(MERGE_BASE_URL, json=merge_base)
    if comparison is not None:
        mock.get(COMPARE_URL, json=comparison)

    with pytest.raises(Unavailable, match="could not be read"):
        provider().changed_files(SHA, NEWER)


def test_an_answer_over_the_bound_is_not_read_whole(mock: responses.RequestsMock,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "MAX_ANSWER_BYTES", 1000)
    mock.get(MERGE_BASE_URL, json={"id": SHA})
    mock.get(COMPARE_URL, json=compared([diff(f"f{index}.txt") for index in range(100)]))

    changed = provider().changed_files(SHA, NEWER)

    assert changed.files == () and "too large to read" in changed.uncertain
