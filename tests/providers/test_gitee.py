from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
import respx

from providers import gitee
from providers.base import (GitSource, InvalidSource, NotFound, ProviderError, Unauthorized,
                            Unavailable)
from tests.providers.conftest import TOKEN, assert_token_hidden

API = "https://gitee.com/api/v5"
REPO_URL = f"{API}/repos/owner/repo"
COMMITS_URL = f"{REPO_URL}/commits"
SHA = "0123456789abcdef0123456789abcdef01234567"
SOURCE = GitSource(repo_type="gitee", server=API, repository="owner/repo")


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
    "git@gitee.com:owner/repo.git",
])
def test_url_forms_name_the_same_repository(url: str) -> None:
    assert gitee.parse_source(url) == SOURCE


def test_base_url_replaces_the_api_server() -> None:
    source = gitee.parse_source("https://code.example.com/owner/repo",
                                base_url="https://code.example.com/api/v5/")
    assert source.server == "https://code.example.com/api/v5"


@pytest.mark.parametrize("url, match", [
    ("https://gitee.com/owner", "https://gitee.com/OWNER/REPO"),
    ("https://github.com/owner/repo", "not gitee.com: set base-url"),
    ("gitee.com/owner/repo", "https://gitee.com/OWNER/REPO"),
])
def test_unreadable_urls_say_what_to_write(url: str, match: str) -> None:
    with pytest.raises(InvalidSource, match=match):
        gitee.parse_source(url)


def test_head_asks_for_one_commit_of_the_branch_with_a_bearer_header(
        mock: respx.MockRouter, provider: gitee.Provider) -> None:
    route = mock.get(COMMITS_URL, params={"sha": "dev/next", "per_page": "1"}).respond(
        json=[{"sha": SHA}])

    assert provider.head("dev/next") == SHA

    request = route.calls.last.request
    assert request.method == "GET"
    assert dict(request.url.params) == {"sha": "dev/next", "per_page": "1"}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "access_token" not in str(request.url)
    assert route.call_count == 1


def test_public_repository_is_read_without_authorization(mock: respx.MockRouter) -> None:
    route = mock.get(COMMITS_URL).respond(json=[{"sha": SHA}])

    with closing(gitee.Provider(SOURCE, None, timeout=3)) as p:
        p.head("main")

    assert "Authorization" not in route.calls.last.request.headers


def test_default_branch_is_read_from_the_repository(mock: respx.MockRouter, provider: gitee.Provider) -> None:
    route = mock.get(REPO_URL).respond(json={"full_name": "owner/repo", "default_branch": "master"})

    assert provider.default_branch() == "master"

    assert route.calls.last.request.url == httpx.URL(REPO_URL)


def test_the_timeout_is_set_on_the_client(mock: respx.MockRouter, provider: gitee.Provider) -> None:
    route = mock.get(COMMITS_URL).respond(json=[{"sha": SHA}])

    provider.head("main")

    assert route.calls.last.request.extensions["timeout"] == httpx.Timeout(3).as_dict()


@pytest.mark.parametrize("body, error", [([], NotFound), ({"message": "?"}, Unavailable),
                                         ([{"no": "sha"}], Unavailable)])
def test_empty_or_odd_commit_lists(mock: respx.MockRouter, provider: gitee.Provider,
                                   body: object, error: type[ProviderError]) -> None:
    mock.get(COMMITS_URL).respond(json=body)

    with pytest.raises(error, match="owner/repo"):
        provider.head("main")


@pytest.mark.parametrize("status, headers, error", [
    (401, {}, Unauthorized), (403, {}, Unauthorized), (403, {"X-RateLimit-Remaining": "0"}, Unavailable),
    (404, {}, NotFound), (429, {}, Unavailable), (500, {}, Unavailable), (502, {}, Unavailable),
    (418, {}, ProviderError),
])
def test_http_failures_map_to_provider_errors(mock: respx.MockRouter, provider: gitee.Provider,
                                              status: int, headers: dict[str, str],
                                              error: type[ProviderError]) -> None:
    route = mock.get(COMMITS_URL).respond(status, headers=headers, json={"message": f"no {TOKEN}"})

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
    mock.get(COMMITS_URL).respond(json=[{"sha": SHA}])

    provider.head("main")

    assert "commits" in caplog.text
    assert TOKEN not in caplog.text


def test_close_closes_the_client() -> None:
    p = gitee.Provider(SOURCE, None, timeout=3)
    p.close()
    with pytest.raises(RuntimeError):
        p.head("main")

