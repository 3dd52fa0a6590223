from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from providers import github
from providers.base import (GitSource, InvalidSource, NotFound, ProviderError, Unauthorized,
                            Unavailable)
from tests.providers.conftest import TOKEN, assert_token_hidden

API = "https://api.github.com"


def endpoint(server: str, path: str) -> re.Pattern[str]:
    """The URL PyGithub requests, which spells out the default port (:443)."""
    parts = urlsplit(server)
    host, full_path = re.escape(parts.netloc), re.escape(parts.path + path)
    return re.compile(rf"{parts.scheme}://{host}(:443)?{full_path}(\?.*)?$")


REPO_URL = endpoint(API, "/repos/octo/hello")
COMMITS_URL = endpoint(API, "/repos/octo/hello/commits")
SHA = "0123456789abcdef0123456789abcdef01234567"
SOURCE = GitSource(repo_type="github", server=API, repository="octo/hello")


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def provider(token: str | None = TOKEN, source: GitSource = SOURCE) -> github.Provider:
    return github.Provider(source, token, timeout=3)


def query_of(call: responses.Call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


@pytest.mark.parametrize("url", [
    "https://github.com/octo/hello",
    "https://github.com/octo/hello.git",
    "https://github.com/octo/hello/",
    "  https://github.com/octo/hello.git  ",
    "git@github.com:octo/hello.git",
    "ssh://git@github.com/octo/hello.git",
])
def test_every_clone_url_form_names_the_same_repository(url: str) -> None:
    assert github.parse_source(url) == SOURCE


@pytest.mark.parametrize("base_url", [
    "https://ghe.example.com",
    "https://ghe.example.com/",
    "https://ghe.example.com/api/v3",
    "https://ghe.example.com/api/v3/",
])
def test_base_url_selects_enterprise_api_like_go_github(base_url: str) -> None:
    source = github.parse_source("https://ghe.example.com/octo/hello.git", base_url=base_url)
    assert source == GitSource("github", "https://ghe.example.com/api/v3", "octo/hello")


@pytest.mark.parametrize("url", ["https://ghe.example.com/octo/hello", "git@ghe.example.com:octo/hello.git"])
def test_enterprise_host_without_base_url_derives_the_api(url: str) -> None:
    assert github.parse_source(url).server == "https://ghe.example.com/api/v3"


@pytest.mark.parametrize("url", [
    "",
    "octo/hello",
    "https://github.com/octo",
    "https://github.com/octo/hello/tree/main",
    "ftp://github.com/octo/hello",
    "https://github.com/octo/..",
])
def test_unreadable_urls_say_what_to_write(url: str) -> None:
    with pytest.raises(InvalidSource, match="https://github.com/OWNER/REPO"):
        github.parse_source(url)


def test_invalid_base_url_is_named() -> None:
    with pytest.raises(InvalidSource, match="ghe.example.com"):
        github.parse_source("https://github.com/octo/hello", base_url="ghe.example.com")


def test_credentials_in_a_url_are_not_repeated_in_the_error() -> None:
    with pytest.raises(InvalidSource) as caught:
        github.parse_source(f"https://user:{TOKEN}@github.com/octo")
    assert_token_hidden(caught.value)


def test_head_is_one_request_for_one_commit_of_the_branch(mock: responses.RequestsMock) -> None:
    mock.get(COMMITS_URL, json=[{"sha": SHA}])

    assert provider().head("release/1.x") == SHA

    [call] = mock.calls
    assert query_of(call) == {"sha": ["release/1.x"], "per_page": ["1"]}
    assert call.request.headers["Authorization"] == f"token {TOKEN}"


def test_public_repository_is_read_without_any_authorization(mock: responses.RequestsMock) -> None:
    mock.get(COMMITS_URL, json=[{"sha": SHA}])

    assert provider(token=None).head("main") == SHA

    assert "Authorization" not in mock.calls[0].request.headers


def test_enterprise_requests_go_to_the_enterprise_api(mock: responses.RequestsMock) -> None:
    source = github.parse_source("https://ghe.example.com/octo/hello")
    mock.get(endpoint("https://ghe.example.com/api/v3", "/repos/octo/hello/commits"), json=[{"sha": SHA}])

    assert provider(source=source).head("main") == SHA


def test_default_branch_is_read_from_the_repository(mock: responses.RequestsMock) -> None:
    mock.get(REPO_URL, json={"full_name": "octo/hello", "default_branch": "trunk"})

    assert provider().default_branch() == "trunk"

    assert len(mock.calls) == 1


@pytest.mark.parametrize("status, body", [(200, []), (409, {"message": "Git Repository is empty."})])
def test_branch_without_commits_is_not_found(mock: responses.RequestsMock, status: int,
                                             body: object) -> None:
    mock.get(COMMITS_URL, status=status, json=body)

    with pytest.raises(NotFound, match="no commits"):
        provider().head("main")


@pytest.mark.parametrize("status, headers, error", [
    (401, {}, Unauthorized),
    (403, {}, Unauthorized),
    (403, {"X-RateLimit-Remaining": "0"}, Unavailable),
    (429, {}, Unavailable),
    (404, {}, NotFound),
    (500, {}, Unavailable),
    (502, {}, Unavailable),
    (418, {}, ProviderError),
])
def test_http_failures_map_to_provider_errors_after_one_request(
        mock: responses.RequestsMock, status: int, headers: dict[str, str],
        error: type[ProviderError]) -> None:
    # The body echoes the token, as a careless server might: it must still not leak.
    mock.get(COMMITS_URL, status=status, headers=headers, json={"message": f"denied {TOKEN}"})

    with pytest.raises(error) as caught:
        provider().head("main")

    assert type(caught.value) is error
    assert "octo/hello" in str(caught.value) and "'main'" in str(caught.value)
    assert f"HTTP {status}" in str(caught.value)
    assert_token_hidden(caught.value)
    assert len(mock.calls) == 1


def test_pygithub_rate_limit_message_is_unavailable(mock: responses.RequestsMock) -> None:
    mock.get(REPO_URL, status=403, json={"message": "API rate limit exceeded for 1.2.3.4."})

    with pytest.raises(Unavailable, match="rate limited.*put a token"):
        provider(token=None).default_branch()


def test_not_found_says_a_private_repository_needs_a_token(mock: responses.RequestsMock) -> None:
    mock.get(COMMITS_URL, status=404, json={"message": "Not Found"})

    with pytest.raises(NotFound, match="private and needs a token in the credentials Secret"):
        provider(token=None).head("main")


@pytest.mark.parametrize("failure, expected", [
    (requests.exceptions.ReadTimeout(f"read timed out {TOKEN}"), "no answer within 3s"),
    (requests.exceptions.ConnectTimeout(f"connect timed out {TOKEN}"), "no answer within 3s"),
    (requests.exceptions.ConnectionError(f"refused {TOKEN}"), "cannot reach the server"),
])
def test_network_failures_are_unavailable(mock: responses.RequestsMock, failure: Exception,
                                          expected: str) -> None:
    mock.get(COMMITS_URL, body=failure)

    with pytest.raises(Unavailable, match=expected) as caught:
        provider().head("main")

    assert_token_hidden(caught.value)


def test_the_timeout_reaches_requests(mock: responses.RequestsMock) -> None:
    mock.get(COMMITS_URL, json=[{"sha": SHA}])

    provider().head("main")

    assert mock.calls[0].request.req_kwargs["timeout"] == 3


def test_token_is_not_logged(mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="github")  # PyGithub pins its logger at INFO
    mock.get(COMMITS_URL, json=[{"sha": SHA}])
    mock.get(REPO_URL, status=401, json={"message": "Bad credentials"})

    p = provider()
    p.head("main")
    with pytest.raises(Unauthorized):
        p.default_branch()

    assert "/repos/octo/hello/commits" in caplog.text
    assert TOKEN not in caplog.text
