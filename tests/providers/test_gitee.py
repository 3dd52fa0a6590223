from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import closing, suppress

import httpx
import pytest
import respx

from providers import changes, gitee
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

API = "https://gitee.com/api/v5"
REPO_URL = f"{API}/repos/owner/repo"
MAIN_URL = f"{REPO_URL}/branches/main"
SHA = "0123456789abcdef0123456789abcdef01234567"
NEWER = "89abcdef0123456789abcdef0123456789abcdef"
SOURCE = GitSource(repo_type="gitee", server=API, repository="owner/repo",
                   clone_url="https://gitee.com/owner/repo.git")


def branch(sha: str = SHA) -> dict[str, object]:
    return {"name": "main", "commit": {"sha": sha, "url": "..."}, "protected": False}


def budget(remaining: int = 59, reset: float = 1_900_000_000) -> dict[str, str]:
    return {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset))}


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def provider() -> Iterator[gitee.Provider]:
    p = gitee.Provider(SOURCE, TOKEN, timeout=3)
    yield p
    p.close()


@pytest.mark.parametrize("url", [
    "https://gitee.com/owner/repo", "https://gitee.com/owner/repo.git", "https://gitee.com/owner/repo/",
    "https://Gitee.com/owner/repo", "https://www.gitee.com/owner/repo",
    f"https://u:{TOKEN}@gitee.com/owner/repo",
    "git@gitee.com:owner/repo.git", "ssh://git@gitee.com/owner/repo",
])
def test_url_forms_name_the_same_repository_and_clone_url(url: str) -> None:
    assert gitee.parse_source(url) == SOURCE


def test_base_url_replaces_the_api_server_and_the_clone_url_is_the_urls_host() -> None:
    source = gitee.parse_source("git@code.example.com:owner/repo.git",
                                base_url="https://code.example.com/api/v5/")
    assert source.server == "https://code.example.com/api/v5"
    assert source.clone_url == "https://code.example.com/owner/repo.git"


@pytest.mark.parametrize("url, match", [
    ("https://gitee.com/owner", "https://gitee.com/OWNER/REPO"),
    ("https://github.com/owner/repo", "not gitee.com: set base-url"),
    ("gitee.com/owner/repo", "https://gitee.com/OWNER/REPO"),
])
def test_unreadable_urls_say_what_to_write(url: str, match: str) -> None:
    with pytest.raises(InvalidSource, match=match):
        gitee.parse_source(url)


def test_head_asks_for_the_branch_with_a_bearer_header(mock: respx.MockRouter,
                                                      provider: gitee.Provider) -> None:
    route = mock.get(f"{REPO_URL}/branches/dev/next").respond(json=branch())

    assert provider.head("dev/next") == SHA

    request = route.calls.last.request
    assert request.method == "GET"
    assert request.url.raw_path == b"/api/v5/repos/owner/repo/branches/dev/next"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "If-None-Match" not in request.headers
    assert "access_token" not in str(request.url)
    assert route.call_count == 1


def test_second_poll_sends_the_etag_and_a_304_keeps_the_sha(mock: respx.MockRouter,
                                                            provider: gitee.Provider) -> None:
    route = mock.get(MAIN_URL)
    route.side_effect = [httpx.Response(200, json=branch(), headers={"ETag": '"a"'}),
                         httpx.Response(304),
                         httpx.Response(200, json=branch(NEWER), headers={"ETag": '"b"'}),
                         httpx.Response(304)]

    assert [provider.head("main") for _ in range(4)] == [SHA, SHA, NEWER, NEWER]

    assert [c.request.headers.get("If-None-Match") for c in route.calls] == [None, '"a"', '"a"', '"b"']


def test_public_repository_is_read_without_authorization(mock: respx.MockRouter) -> None:
    route = mock.get(MAIN_URL).respond(json=branch())

    with closing(gitee.Provider(SOURCE, None, timeout=3)) as p:
        p.head("main")

    assert "Authorization" not in route.calls.last.request.headers


def test_default_branch_is_read_from_the_repository_conditionally(mock: respx.MockRouter,
                                                                  provider: gitee.Provider) -> None:
    route = mock.get(REPO_URL)
    route.side_effect = [httpx.Response(200, json={"default_branch": "master"}, headers={"ETag": '"r"'}),
                         httpx.Response(304)]

    assert [provider.default_branch(), provider.default_branch()] == ["master", "master"]

    assert route.calls.last.request.headers["If-None-Match"] == '"r"'


def test_the_timeout_is_set_on_the_client(mock: respx.MockRouter, provider: gitee.Provider) -> None:
    route = mock.get(MAIN_URL).respond(json=branch())

    provider.head("main")

    assert route.calls.last.request.extensions["timeout"] == httpx.Timeout(3).as_dict()


@pytest.mark.parametrize("body", [[], {"message": "?"}, {"commit": {"id": SHA}}, {"commit": {"sha": "x"}}])
def test_odd_branch_answers_are_unreadable(mock: respx.MockRouter, provider: gitee.Provider,
                                           body: object) -> None:
    mock.get(MAIN_URL).respond(json=body)

    with pytest.raises(Unavailable, match=r"owner/repo.*could not be read"):
        provider.head("main")


@pytest.mark.parametrize("status", [200, 304, 404])
def test_every_answer_updates_the_rate_limit(mock: respx.MockRouter, provider: gitee.Provider,
                                             status: int) -> None:
    route = mock.get(MAIN_URL)
    route.side_effect = [httpx.Response(200, json=branch(), headers={"ETag": '"a"', **budget(50)}),
                         httpx.Response(status, json=branch(), headers=budget(49, 1_900_000_001))]
    provider.head("main")
    assert provider.rate_limit == RateLimit(60, 50, 1_900_000_000)

    with suppress(ProviderError):
        provider.head("main")

    assert provider.rate_limit == RateLimit(60, 49, 1_900_000_001)


@pytest.mark.parametrize("status, headers, low, high", [
    (403, {"Retry-After": "12"}, 12, 12),
    (429, {"Retry-After": "12"}, 12, 12),
    (403, None, 290, 300),  # no Retry-After: until the budget's reset, 300 s from now
])
def test_rate_limited_answers_are_throttled(mock: respx.MockRouter, provider: gitee.Provider,
                                            status: int, headers: dict[str, str] | None, low: float,
                                            high: float) -> None:
    headers = headers if headers is not None else budget(0, time.time() + 300)
    mock.get(MAIN_URL).respond(status, headers=headers, json={"message": "Rate Limit Exceeded"})

    with pytest.raises(Throttled) as caught:
        provider.head("main")

    assert low <= caught.value.retry_after <= high


@pytest.mark.parametrize("status, headers, error", [
    (401, {}, Unauthorized), (403, {}, Unauthorized), (403, {"X-RateLimit-Remaining": "0"}, Throttled),
    (404, {}, NotFound), (429, {}, Throttled), (500, {}, Unavailable), (502, {}, Unavailable),
    (418, {}, ProviderError),
])
def test_http_failures_map_to_provider_errors(mock: respx.MockRouter, provider: gitee.Provider,
                                              status: int, headers: dict[str, str],
                                              error: type[ProviderError]) -> None:
    route = mock.get(MAIN_URL).respond(status, headers=headers, json={"message": f"no {TOKEN}"})

    with pytest.raises(error) as caught:
        provider.head("main")

    assert type(caught.value) is error
    assert "owner/repo" in str(caught.value) and "'main'" in str(caught.value)
    assert_token_hidden(caught.value)
    assert route.call_count == 1


@pytest.mark.parametrize("failure, expected", [
    (httpx.ReadTimeout(f"timed out {TOKEN}"), "no answer within 3s"),
    (httpx.ConnectTimeout(f"timed out {TOKEN}"), "no answer within 3s"),
    (httpx.ConnectError(f"refused {TOKEN}"), "cannot reach the server"),
])
def test_network_failures_are_unavailable(mock: respx.MockRouter, provider: gitee.Provider,
                                          failure: Exception, expected: str) -> None:
    mock.get(REPO_URL).mock(side_effect=failure)

    with pytest.raises(Unavailable, match=expected) as caught:
        provider.default_branch()

    assert_token_hidden(caught.value)


def test_token_is_not_logged(mock: respx.MockRouter, provider: gitee.Provider,
                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mock.get(MAIN_URL).respond(json=branch())

    provider.head("main")

    assert "branches" in caplog.text
    assert TOKEN not in caplog.text


def test_close_closes_the_client() -> None:
    p = gitee.Provider(SOURCE, None, timeout=3)
    p.close()
    with pytest.raises(RuntimeError):
        p.head("main")


# --- changed files: one comparison, shaped as GitHub's


COMPARE_URL = f"{REPO_URL}/compare/{SHA}...{NEWER}"


def comparison(merge_base: str = SHA, files: list[dict[str, str]] | None = None,
               truncated: bool | None = None) -> dict[str, object]:
    document: dict[str, object] = {
        "base_commit": {"sha": SHA}, "merge_base_commit": {"sha": merge_base}, "commits": [{"sha": NEWER}],
        "files": [{"sha": "a" * 40, "filename": "a/x.py", "status": "added", "patch": "+x"},
                  {"sha": "b" * 40, "filename": "README.md", "status": "modified"}] if files is None else files}
    if truncated is not None:
        document["truncated"] = truncated
    return document


def test_changed_files_is_one_compare_request(mock: respx.MockRouter, provider: gitee.Provider) -> None:
    route = mock.get(COMPARE_URL).respond(json=comparison(truncated=False), headers=budget(40))

    assert provider.changed_files(SHA, NEWER) == ChangedFiles(files=("a/x.py", "README.md"))

    request = route.calls.last.request
    assert request.url.raw_path == f"/api/v5/repos/owner/repo/compare/{SHA}...{NEWER}".encode()
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "access_token" not in str(request.url) and "If-None-Match" not in request.headers
    assert request.extensions["timeout"] == httpx.Timeout(3).as_dict()
    assert route.call_count == 1
    assert provider.rate_limit == RateLimit(60, 40, 1_900_000_000)


def test_a_rename_lists_the_old_and_the_new_path(mock: respx.MockRouter, provider: gitee.Provider) -> None:
    mock.get(COMPARE_URL).respond(json=comparison(files=[
        {"filename": "new/x.py", "previous_filename": "old/x.py", "status": "renamed"}]))

    assert provider.changed_files(SHA, NEWER) == ChangedFiles(files=("old/x.py", "new/x.py"))


def test_a_truncated_list_is_uncertain(mock: respx.MockRouter, provider: gitee.Provider) -> None:
    mock.get(COMPARE_URL).respond(json=comparison(truncated=True))

    assert provider.changed_files(SHA, NEWER) == ChangedFiles(
        files=("a/x.py", "README.md"), uncertain="the server cut its list of changed files short")


@pytest.mark.parametrize("merge_base", [{"sha": "f" * 40}, None])
def test_a_base_that_is_not_the_merge_base_is_not_an_ancestor(mock: respx.MockRouter, provider: gitee.Provider,
                                                              merge_base: object) -> None:
    mock.get(COMPARE_URL).respond(json={**comparison(), "merge_base_commit": merge_base})

    assert provider.changed_files(SHA, NEWER) == ChangedFiles(
        uncertain="the recorded commit 0123456 is not an ancestor of the head 89abcde: history was rewritten")


def test_a_404_is_about_the_commit_and_uncertain(mock: respx.MockRouter, provider: gitee.Provider) -> None:
    mock.get(COMPARE_URL).respond(404, json={"message": "Not Found"})

    assert provider.changed_files(SHA, NEWER) == ChangedFiles(
        uncertain="the server does not know the recorded commit 0123456: history was rewritten")


@pytest.mark.parametrize("status, headers, error", [
    (401, {}, Unauthorized), (403, {"X-RateLimit-Remaining": "0"}, Throttled), (429, {}, Throttled),
    (500, {}, Unavailable), (502, {}, Unavailable),
])
def test_comparison_failures_are_the_errors_head_raises(mock: respx.MockRouter, provider: gitee.Provider,
                                                        status: int, headers: dict[str, str],
                                                        error: type[ProviderError]) -> None:
    mock.get(COMPARE_URL).respond(status, headers=headers, json={"message": f"no {TOKEN}"})

    with pytest.raises(error) as caught:
        provider.changed_files(SHA, NEWER)

    assert type(caught.value) is error and "owner/repo" in str(caught.value)
    assert_token_hidden(caught.value)


def test_a_comparison_timing_out_is_unavailable(mock: respx.MockRouter, provider: gitee.Provider) -> None:
    mock.get(COMPARE_URL).mock(side_effect=httpx.ReadTimeout(f"timed out {TOKEN}"))

    with pytest.raises(Unavailable, match="no answer within 3s") as caught:
        provider.changed_files(SHA, NEWER)

    assert_token_hidden(caught.value)


@pytest.mark.parametrize("body", [[], {"merge_base_commit": {"sha": SHA}, "files": {"a": 1}},
                                  comparison(files=[{"status": "added"}])])
def test_an_unreadable_comparison_is_unavailable(mock: respx.MockRouter, provider: gitee.Provider,
                                                 body: object) -> None:
    mock.get(COMPARE_URL).respond(json=body)

    with pytest.raises(Unavailable, match="could not be read"):
        provider.changed_files(SHA, NEWER)


def test_an_answer_over_the_bound_is_not_read_whole(mock: respx.MockRouter, provider: gitee.Provider,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "MAX_ANSWER_BYTES", 200)
    mock.get(COMPARE_URL).respond(json=comparison())

    changed = provider.changed_files(SHA, NEWER)

    assert changed.files == () and "too large to read" in changed.uncertain
