from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import suppress
from email.utils import formatdate
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import responses
import respx

import providers
from providers import github
from providers.base import (
    DEFAULT_TIMEOUT_SECONDS,
    ChangedFiles,
    GitSource,
    InvalidSource,
    MissingBranch,
    NotFound,
    ProviderError,
    RateLimit,
    Throttled,
    Unauthorized,
    Unavailable,
)
from providers.github import HeadQuery, read_heads
from tests.providers.conftest import TOKEN, assert_token_hidden

API = "https://api.github.com"
SHA = "0123456789abcdef0123456789abcdef01234567"
NEWER = "89abcdef0123456789abcdef0123456789abcdef"
SOURCE = GitSource(repo_type="github", server=API, repository="octo/hello",
                   clone_url="https://github.com/octo/hello.git")


def endpoint(server: str, path: str) -> re.Pattern[str]:
    """The URL PyGithub requests, which spells out the default port (:443)."""
    parts = urlsplit(server)
    host, full_path = re.escape(parts.netloc), re.escape(parts.path + path)
    return re.compile(rf"{parts.scheme}://{host}(:443)?{full_path}$")


REPO_URL = endpoint(API, "/repos/octo/hello")
MAIN_URL = endpoint(API, "/repos/octo/hello/commits/main")


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def provider(token: str | None = TOKEN, source: GitSource = SOURCE) -> github.Provider:
    return github.Provider(source, token, timeout=3)


def budget(remaining: int = 4999, reset: float = 1_900_000_000) -> dict[str, str]:
    return {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset))}


# --- where a repository is


@pytest.mark.parametrize("url", [
    "https://github.com/octo/hello",
    "https://github.com/octo/hello.git",
    "https://github.com/octo/hello/",
    "https://github.com/octo/hello.git/",
    "  https://github.com/octo/hello.git  ",
    "https://GitHub.COM/octo/hello",
    "https://www.github.com/octo/hello",
    "http://github.com/octo/hello",
    f"https://bot:{TOKEN}@github.com/octo/hello.git",
    "git@github.com:octo/hello.git",
    "git@github.com:octo/hello",
    "ssh://git@github.com/octo/hello.git",
    "ssh://git@github.com:22/octo/hello",
])
def test_every_clone_url_form_names_the_same_repository_and_clone_url(url: str) -> None:
    assert github.parse_source(url) == SOURCE


@pytest.mark.parametrize("url, clone_url", [
    ("https://GHE.example.com/octo/hello", "https://ghe.example.com/octo/hello.git"),
    ("https://ghe.example.com:8443/octo/hello.git/", "https://ghe.example.com:8443/octo/hello.git"),
    ("http://ghe.example.com/octo/hello", "http://ghe.example.com/octo/hello.git"),
    ("git@ghe.example.com:octo/hello.git", "https://ghe.example.com/octo/hello.git"),
    ("ssh://git@ghe.example.com:2222/octo/hello", "https://ghe.example.com/octo/hello.git"),
    (f"https://u:{TOKEN}@ghe.example.com/octo/hello", "https://ghe.example.com/octo/hello.git"),
])
def test_enterprise_clone_url_is_the_urls_own_origin(url: str, clone_url: str) -> None:
    assert github.parse_source(url, base_url="https://ghe.example.com").clone_url == clone_url


@pytest.mark.parametrize("base_url", [
    "https://ghe.example.com",
    "https://ghe.example.com/",
    "https://ghe.example.com/api/v3",
    "https://ghe.example.com/api/v3/",
])
def test_base_url_selects_enterprise_api_like_go_github(base_url: str) -> None:
    source = github.parse_source("https://ghe.example.com/octo/hello.git", base_url=base_url)
    assert source == GitSource("github", "https://ghe.example.com/api/v3", "octo/hello",
                               clone_url="https://ghe.example.com/octo/hello.git")


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
    with pytest.raises(InvalidSource, match=re.escape("https://github.com/OWNER/REPO")):
        github.parse_source(url)


def test_invalid_base_url_is_named() -> None:
    with pytest.raises(InvalidSource, match=re.escape("ghe.example.com")):
        github.parse_source("https://github.com/octo/hello", base_url="ghe.example.com")


def test_credentials_in_a_url_are_not_repeated_in_the_error() -> None:
    with pytest.raises(InvalidSource) as caught:
        github.parse_source(f"https://user:{TOKEN}@github.com/octo")
    assert_token_hidden(caught.value)


# --- the provider as the daemon builds it


@pytest.mark.parametrize("timeout, whole", [(0.2, 1), (1.0, 1), (2.5, 3), (10.0, 10)])
def test_pygithub_gets_a_whole_number_of_seconds_rounded_up(timeout: float, whole: int) -> None:
    assert github.whole_seconds(timeout) == whole


def test_provider_built_with_default_arguments_polls(mock: responses.RequestsMock) -> None:
    # PyGithub 2.x asserts an int timeout; DEFAULT_TIMEOUT_SECONDS is a float.
    mock.get(MAIN_URL, body=SHA)

    p = providers.open_provider(providers.parse_source("github", "https://github.com/octo/hello"), TOKEN)

    assert isinstance(p, github.Provider)
    assert p.head("main") == SHA
    assert mock.calls[0].request.req_kwargs["timeout"] == DEFAULT_TIMEOUT_SECONDS


# --- head: one conditional request for the SHA alone


def test_head_asks_for_the_sha_media_type_of_the_branchs_commit(mock: responses.RequestsMock) -> None:
    mock.get(endpoint(API, "/repos/octo/hello/commits/release/1.x"), body=SHA)

    assert provider().head("release/1.x") == SHA

    [call] = mock.calls
    assert call.request.method == "GET"
    assert urlsplit(call.request.url).query == ""
    assert call.request.headers["Accept"] == "application/vnd.github.sha"
    assert call.request.headers["Authorization"] == f"token {TOKEN}"
    assert "If-None-Match" not in call.request.headers


def test_the_branch_is_url_quoted_keeping_slashes(mock: responses.RequestsMock) -> None:
    mock.get(endpoint(API, "/repos/octo/hello/commits/feat/%C3%BC%231%3F"), body=SHA)

    assert provider().head("feat/ü#1?") == SHA


def test_second_poll_sends_the_etag_and_a_304_keeps_the_sha(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, body=SHA, headers={"ETag": '"first"'})
    mock.get(MAIN_URL, status=304, headers={"ETag": '"first"'})
    p = provider()

    assert p.head("main") == SHA
    assert p.head("main") == SHA

    assert mock.calls[1].request.headers["If-None-Match"] == '"first"'


def test_a_moved_branch_replaces_the_sha_and_the_etag(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, body=SHA, headers={"ETag": '"first"'})
    mock.get(MAIN_URL, body=NEWER + "\n", headers={"ETag": '"second"'})
    mock.get(MAIN_URL, status=304)
    p = provider()

    assert [p.head("main"), p.head("main"), p.head("main")] == [SHA, NEWER, NEWER]

    assert [c.request.headers.get("If-None-Match") for c in mock.calls] == [None, '"first"', '"second"']


def test_each_branch_keeps_its_own_etag(mock: responses.RequestsMock) -> None:
    dev_url = endpoint(API, "/repos/octo/hello/commits/dev")
    mock.get(MAIN_URL, body=SHA, headers={"ETag": '"main"'})
    mock.get(dev_url, body=NEWER, headers={"ETag": '"dev"'})
    mock.get(MAIN_URL, status=304)
    mock.get(dev_url, status=304)
    p = provider()

    assert [p.head("main"), p.head("dev"), p.head("main"), p.head("dev")] == [SHA, NEWER, SHA, NEWER]

    assert [c.request.headers.get("If-None-Match") for c in mock.calls[2:]] == ['"main"', '"dev"']


def test_an_answer_without_etag_makes_the_next_poll_unconditional(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, body=SHA, headers={"ETag": '"first"'})
    mock.get(MAIN_URL, body=NEWER)
    mock.get(MAIN_URL, body=NEWER)
    p = provider()

    for _ in range(3):
        p.head("main")

    assert "If-None-Match" not in mock.calls[2].request.headers


def test_a_304_nothing_was_asked_for_is_an_unexpected_answer(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, status=304)

    with pytest.raises(ProviderError, match="HTTP 304"):
        provider().head("main")


@pytest.mark.parametrize("body", ["", "not a sha", SHA[:39], SHA.upper(), json.dumps({"sha": SHA})])
def test_an_answer_that_is_no_sha_is_unreadable(mock: responses.RequestsMock, body: str) -> None:
    mock.get(MAIN_URL, body=body)

    with pytest.raises(Unavailable, match="could not be read"):
        provider().head("main")


def test_public_repository_is_read_without_any_authorization(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, body=SHA)

    assert provider(token=None).head("main") == SHA

    assert "Authorization" not in mock.calls[0].request.headers


def test_enterprise_requests_go_to_the_enterprise_api(mock: responses.RequestsMock) -> None:
    source = github.parse_source("https://ghe.example.com/octo/hello")
    mock.get(endpoint("https://ghe.example.com/api/v3", "/repos/octo/hello/commits/main"), body=SHA)

    assert provider(source=source).head("main") == SHA


# --- default branch


def test_default_branch_is_read_from_the_repository_conditionally(mock: responses.RequestsMock) -> None:
    mock.get(REPO_URL, json={"full_name": "octo/hello", "default_branch": "trunk"},
             headers={"ETag": 'W/"repo"'})
    mock.get(REPO_URL, status=304)
    p = provider()

    assert [p.default_branch(), p.default_branch()] == ["trunk", "trunk"]

    first, second = mock.calls
    assert first.request.headers["Accept"] == "application/vnd.github+json"
    assert "If-None-Match" not in first.request.headers
    assert second.request.headers["If-None-Match"] == 'W/"repo"'


@pytest.mark.parametrize("body", [{"default_branch": None}, {"full_name": "octo/hello"}])
def test_repository_without_default_branch_is_not_found(mock: responses.RequestsMock,
                                                        body: object) -> None:
    mock.get(REPO_URL, json=body)

    with pytest.raises(NotFound, match="no default branch"):
        provider().default_branch()


# --- the budget and throttling


@pytest.mark.parametrize("status, body", [(200, SHA), (304, ""), (403, '{"message": "denied"}')])
def test_every_answer_updates_the_rate_limit(mock: responses.RequestsMock, status: int,
                                             body: str) -> None:
    mock.get(MAIN_URL, body=SHA, headers={"ETag": '"e"', **budget(4000, 1_900_000_000)})
    mock.get(MAIN_URL, status=status, body=body, headers=budget(3999, 1_900_000_100))
    p = provider()
    p.head("main")
    assert p.rate_limit == RateLimit(limit=5000, remaining=4000, reset_at=1_900_000_000)

    with suppress(ProviderError):
        p.head("main")

    assert p.rate_limit == RateLimit(limit=5000, remaining=3999, reset_at=1_900_000_100)


def test_without_rate_limit_headers_the_rate_limit_stays_none(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, body=SHA)
    p = provider()

    p.head("main")

    assert p.rate_limit is None


@pytest.mark.parametrize("status, headers, body", [
    (429, {"Retry-After": "30"}, "{}"),
    (403, {"Retry-After": "30"}, '{"message": "You have exceeded a secondary rate limit."}'),
])
def test_throttled_for_as_long_as_retry_after_says(mock: responses.RequestsMock, status: int,
                                                   headers: dict[str, str], body: str) -> None:
    mock.get(MAIN_URL, status=status, headers={**headers, **budget(100)}, body=body)

    with pytest.raises(Throttled, match=f"HTTP {status}.*pausing 30s.*polling-interval") as caught:
        provider().head("main")

    assert caught.value.retry_after == 30


def test_retry_after_may_be_an_http_date(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, status=429, headers={"Retry-After": formatdate(time.time() + 90, usegmt=True)})

    with pytest.raises(Throttled) as caught:
        provider().head("main")

    assert 85 <= caught.value.retry_after <= 91


@pytest.mark.parametrize("reset_in, low, high", [(120, 115, 120), (-50, 1, 1), (86_400, 3600, 3600)])
def test_an_exhausted_budget_pauses_until_its_reset_within_an_hour(
        mock: responses.RequestsMock, reset_in: float, low: float, high: float) -> None:
    mock.get(MAIN_URL, status=403, headers=budget(0, time.time() + reset_in),
             json={"message": "API rate limit exceeded for installation."})

    with pytest.raises(Throttled) as caught:
        provider().head("main")

    assert low <= caught.value.retry_after <= high


def test_secondary_limit_403_without_any_header_is_throttled(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, status=403, json={"message": "You have exceeded a secondary rate limit. "
                                                    "Please wait a few minutes before you try again."})

    with pytest.raises(Throttled) as caught:
        provider().head("main")

    assert caught.value.retry_after == 60


def test_permissions_403_is_unauthorized_not_throttled(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, status=403, headers=budget(4321),
             json={"message": "Resource not accessible by integration"})

    with pytest.raises(Unauthorized, match=r"HTTP 403.*check that the token"):
        provider().head("main")


def test_anonymous_rate_limit_message_says_to_add_a_token(mock: responses.RequestsMock) -> None:
    mock.get(REPO_URL, status=403, json={"message": "API rate limit exceeded for 1.2.3.4."})

    with pytest.raises(Throttled, match=r"rate limited.*put a token"):
        provider(token=None).default_branch()


# --- failures


@pytest.mark.parametrize("status, body, error, match", [
    (409, {"message": "Git Repository is empty."}, MissingBranch, "no commits"),
    (422, {"message": "No commit found for SHA: main"}, MissingBranch, "no such branch"),
    (422, {"message": "Validation Failed"}, ProviderError, "HTTP 422"),
    (404, {"message": "Not Found"}, NotFound, "HTTP 404"),
])
def test_empty_repository_missing_branch_and_missing_repository(
        mock: responses.RequestsMock, status: int, body: object, error: type[ProviderError],
        match: str) -> None:
    mock.get(MAIN_URL, status=status, json=body)

    with pytest.raises(error, match=match) as caught:
        provider().head("main")

    assert type(caught.value) is error
    assert caught.value.permanent == (error is NotFound)  # a branch may yet be pushed


@pytest.mark.parametrize("status, headers, error", [
    (401, {}, Unauthorized),
    (403, {}, Unauthorized),
    (403, {"X-RateLimit-Remaining": "0"}, Throttled),
    (429, {}, Throttled),
    (404, {}, NotFound),
    (500, {}, Unavailable),
    (502, {}, Unavailable),
    (418, {}, ProviderError),
])
def test_http_failures_map_to_provider_errors_after_one_request(
        mock: responses.RequestsMock, status: int, headers: dict[str, str],
        error: type[ProviderError]) -> None:
    # The body echoes the token, as a careless server might: it must still not leak.
    mock.get(MAIN_URL, status=status, headers=headers, json={"message": f"denied {TOKEN}"})

    with pytest.raises(error) as caught:
        provider().head("main")

    assert type(caught.value) is error
    assert "octo/hello" in str(caught.value) and "'main'" in str(caught.value)
    assert f"HTTP {status}" in str(caught.value)
    assert_token_hidden(caught.value)
    assert len(mock.calls) == 1


def test_not_found_says_a_private_repository_needs_a_token(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, status=404, json={"message": "Not Found"})

    with pytest.raises(NotFound, match="private and needs a token in the credentials Secret"):
        provider(token=None).head("main")


@pytest.mark.parametrize("failure, expected", [
    (requests.exceptions.ReadTimeout(f"read timed out {TOKEN}"), "no answer within 3s"),
    (requests.exceptions.ConnectTimeout(f"connect timed out {TOKEN}"), "no answer within 3s"),
    (requests.exceptions.ConnectionError(f"refused {TOKEN}"), "cannot reach the server"),
])
def test_network_failures_are_unavailable(mock: responses.RequestsMock, failure: Exception,
                                          expected: str) -> None:
    mock.get(MAIN_URL, body=failure)

    with pytest.raises(Unavailable, match=expected) as caught:
        provider().head("main")

    assert_token_hidden(caught.value)


def test_the_timeout_reaches_requests(mock: responses.RequestsMock) -> None:
    mock.get(MAIN_URL, body=SHA)

    provider().head("main")

    assert mock.calls[0].request.req_kwargs["timeout"] == 3


def test_token_is_not_logged(mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="github")  # PyGithub pins its logger at INFO
    mock.get(MAIN_URL, body=SHA)
    mock.get(REPO_URL, status=401, json={"message": "Bad credentials"})

    p = provider()
    p.head("main")
    with pytest.raises(Unauthorized):
        p.default_branch()

    assert "/repos/octo/hello/commits/main" in caplog.text
    assert TOKEN not in caplog.text


# --- GraphQL batches


GRAPHQL = f"{API}/graphql"
RESET_AT = "2030-01-01T00:00:00Z"


@pytest.fixture
def graphql() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


def answered(request: httpx.Request) -> httpx.Response:
    """A GraphQL stand-in: every branch is at SHA, except `gone`; repositories named
    `missing*` do not exist."""
    variables = json.loads(request.content)["variables"]
    data: dict[str, object] = {"rateLimit": {"limit": 5000, "remaining": 4990, "resetAt": RESET_AT,
                                             "cost": 1}}
    errors = []
    for key, name in variables.items():
        if not key.startswith("n"):
            continue
        alias = f"r{key[1:]}"
        ref = variables.get(f"q{key[1:]}")
        if name.startswith("missing"):
            data[alias] = None
            errors.append({"type": "NOT_FOUND", "path": [alias], "message": "Could not resolve"})
        elif ref is None:
            data[alias] = {"defaultBranchRef": {"name": "trunk", "target": {"oid": NEWER}}}
        else:
            data[alias] = {"ref": None if ref == "refs/heads/gone" else {"target": {"oid": SHA}}}
    return httpx.Response(200, json={"data": data, **({"errors": errors} if errors else {})})


@pytest.mark.parametrize("server, url", [
    ("https://api.github.com", "https://api.github.com/graphql"),
    ("https://ghe.example.com/api/v3", "https://ghe.example.com/api/graphql"),
])
def test_graphql_sits_beside_the_rest_api(server: str, url: str) -> None:
    assert github.graphql_url(server) == url


def test_one_post_asks_for_every_head_in_the_documented_shape(graphql: respx.MockRouter) -> None:
    route = graphql.post(GRAPHQL).mock(side_effect=answered)
    queries = [HeadQuery("octo/hello", "main"), HeadQuery("octo/world", "")]

    heads, limit = read_heads(API, TOKEN, queries, timeout=3)

    assert heads == {queries[0]: SHA, queries[1]: NEWER}
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"bearer {TOKEN}"
    assert request.extensions["timeout"] == httpx.Timeout(3).as_dict()
    sent = json.loads(request.content)
    assert " ".join(sent["query"].split()) == (
        "query($o0: String!, $n0: String!, $q0: String!, $o1: String!, $n1: String!) "
        "{ rateLimit { limit remaining resetAt cost } "
        "r0: repository(owner: $o0, name: $n0) { ref(qualifiedName: $q0) { target { oid } } } "
        "r1: repository(owner: $o1, name: $n1) { defaultBranchRef { name target { oid } } } }")
    assert sent["variables"] == {"o0": "octo", "n0": "hello", "q0": "refs/heads/main",
                                 "o1": "octo", "n1": "world"}
    assert limit == RateLimit(limit=5000, remaining=4990, reset_at=1_893_456_000)


def test_enterprise_batches_go_to_its_graphql(graphql: respx.MockRouter) -> None:
    route = graphql.post("https://ghe.example.com/api/graphql").mock(side_effect=answered)

    heads, _ = read_heads("https://ghe.example.com/api/v3", TOKEN, [HeadQuery("octo/hello", "main")])

    assert list(heads.values()) == [SHA]
    assert route.call_count == 1


def test_queries_are_sent_a_hundred_at_a_time_each_once(graphql: respx.MockRouter) -> None:
    route = graphql.post(GRAPHQL).mock(side_effect=answered)
    queries = [HeadQuery(f"octo/repo{i}", "main") for i in range(250)]

    heads, _ = read_heads(API, TOKEN, queries + queries[:10])

    assert heads == dict.fromkeys(queries, SHA)
    sizes = [len(json.loads(c.request.content)["variables"]) // 3 for c in route.calls]
    assert sizes == [100, 100, 50]


def test_missing_branch_and_missing_repository_are_not_found(graphql: respx.MockRouter) -> None:
    graphql.post(GRAPHQL).mock(side_effect=answered)
    gone, missing = HeadQuery("octo/hello", "gone"), HeadQuery("octo/missing", "main")
    fine = HeadQuery("octo/hello", "main")

    heads, _ = read_heads(API, TOKEN, [gone, missing, fine])

    assert heads[fine] == SHA
    assert isinstance(heads[gone], NotFound) and "no such branch" in str(heads[gone])
    assert isinstance(heads[missing], NotFound) and "no such repository" in str(heads[missing])
    assert "octo/missing" in str(heads[missing])


def test_a_repository_that_is_no_owner_and_name_is_not_sent(graphql: respx.MockRouter) -> None:
    route = graphql.post(GRAPHQL).mock(side_effect=answered)
    bad, fine = HeadQuery("octo", "main"), HeadQuery("octo/hello", "main")

    heads, _ = read_heads(API, TOKEN, [bad, fine])

    assert isinstance(heads[bad], InvalidSource) and heads[fine] == SHA
    assert json.loads(route.calls.last.request.content)["variables"]["n0"] == "hello"


@pytest.mark.parametrize("response, error", [
    (httpx.Response(401, json={"message": f"Bad credentials {TOKEN}"}), Unauthorized),
    (httpx.Response(502, text="bad gateway"), Unavailable),
    (httpx.Response(200, text="<html>"), Unavailable),
    (httpx.Response(200, json={"errors": [{"type": "RATE_LIMITED", "message": "slow down"}]}), Throttled),
])
def test_a_failed_request_gives_every_query_the_same_error(graphql: respx.MockRouter,
                                                           response: httpx.Response,
                                                           error: type[ProviderError]) -> None:
    graphql.post(GRAPHQL).mock(return_value=response)
    queries = [HeadQuery("octo/hello", "main"), HeadQuery("octo/world", "")]

    heads, _ = read_heads(API, TOKEN, queries)

    assert len({id(answer) for answer in heads.values()}) == 1
    answer = heads[queries[0]]
    assert isinstance(answer, ProviderError) and type(answer) is error
    assert_token_hidden(answer)


def test_a_throttled_chunk_stops_the_batch(graphql: respx.MockRouter) -> None:
    route = graphql.post(GRAPHQL).respond(
        403, headers={"Retry-After": "45", **budget(10)},
        json={"message": "You have exceeded a secondary rate limit."})
    queries = [HeadQuery(f"octo/repo{i}", "main") for i in range(150)]

    heads, limit = read_heads(API, TOKEN, queries)

    assert route.call_count == 1
    assert all(isinstance(a, Throttled) and a.retry_after == 45 for a in heads.values())
    assert set(heads) == set(queries)
    assert limit == RateLimit(5000, 10, 1_900_000_000)


def test_a_timeout_is_unavailable_for_every_query(graphql: respx.MockRouter) -> None:
    graphql.post(GRAPHQL).mock(side_effect=httpx.ReadTimeout(f"timed out {TOKEN}"))
    queries = [HeadQuery("octo/hello", "main")]

    heads, limit = read_heads(API, TOKEN, queries, timeout=3)

    answer = heads[queries[0]]
    assert isinstance(answer, Unavailable) and "within 3s" in str(answer)
    assert limit is None
    assert_token_hidden(answer)


# --- changed files: one comparison


def compare_endpoint(base: str, head: str) -> re.Pattern[str]:
    """The comparison's URL, asking for one commit per page."""
    return re.compile(endpoint(API, f"/repos/octo/hello/compare/{base}...{head}").pattern.removesuffix("$")
                      + re.escape("?per_page=1") + "$")


COMPARE_URL = compare_endpoint(SHA, NEWER)


def comparison(status: str = "ahead", files: list[dict[str, str]] | None = None) -> dict[str, object]:
    """A comparison as GitHub answers it, cut down to what is read and a little more."""
    return {"status": status, "ahead_by": 2, "behind_by": 0 if status == "ahead" else 1, "total_commits": 2,
            "base_commit": {"sha": SHA}, "merge_base_commit": {"sha": SHA if status == "ahead" else "f" * 40},
            "commits": [{"sha": NEWER}],
            "files": [{"sha": "a" * 40, "filename": "a/x.py", "status": "added", "additions": 1},
                      {"sha": "b" * 40, "filename": "README.md", "status": "modified"}] if files is None else files}


def test_changed_files_is_one_compare_request_listing_one_commit(mock: responses.RequestsMock) -> None:
    mock.get(COMPARE_URL, json=comparison(), headers=budget(4990))
    p = provider()

    assert p.changed_files(SHA, NEWER) == ChangedFiles(files=("a/x.py", "README.md"))

    [call] = mock.calls
    assert urlsplit(call.request.url).query == "per_page=1"
    assert call.request.headers["Accept"] == "application/vnd.github+json"
    assert call.request.headers["Authorization"] == f"token {TOKEN}"
    assert "If-None-Match" not in call.request.headers
    assert p.rate_limit == RateLimit(limit=5000, remaining=4990, reset_at=1_900_000_000)


def test_a_rename_lists_the_old_and_the_new_path(mock: responses.RequestsMock) -> None:
    mock.get(COMPARE_URL, json=comparison(files=[
        {"filename": "new/x.py", "previous_filename": "old/x.py", "status": "renamed"},
        {"filename": "gone.txt", "status": "removed"}]))

    assert provider().changed_files(SHA, NEWER) == ChangedFiles(files=("old/x.py", "new/x.py", "gone.txt"))


def test_a_rename_without_its_old_path_is_uncertain(mock: responses.RequestsMock) -> None:
    mock.get(COMPARE_URL, json=comparison(files=[{"filename": "new/x.py", "status": "renamed"}]))

    changed = provider().changed_files(SHA, NEWER)

    assert changed.files == ("new/x.py",)
    assert changed.uncertain == "the server did not say which file was renamed to new/x.py"


def test_identical_commits_changed_nothing(mock: responses.RequestsMock) -> None:
    mock.get(compare_endpoint(SHA, SHA), json=comparison("identical", files=[]))

    assert provider().changed_files(SHA, SHA) == ChangedFiles()


def test_300_files_may_be_a_cut_list_so_it_is_uncertain(mock: responses.RequestsMock) -> None:
    files = [{"filename": f"f{index}.txt", "status": "added"} for index in range(300)]
    mock.get(COMPARE_URL, json=comparison(files=files))

    changed = provider().changed_files(SHA, NEWER)

    assert len(changed.files) == 300
    assert changed.uncertain == "the server listed only the first 300 changed files"


@pytest.mark.parametrize("status", ["behind", "diverged"])
def test_a_base_that_is_not_an_ancestor_is_uncertain(mock: responses.RequestsMock, status: str) -> None:
    mock.get(COMPARE_URL, json=comparison(status))

    assert provider().changed_files(SHA, NEWER) == ChangedFiles(
        uncertain="the recorded commit 0123456 is not an ancestor of the head 89abcde: history was rewritten")


@pytest.mark.parametrize("status, message", [
    (404, "Not Found"), (404, f"No common ancestor between {SHA} and {NEWER}."),
    (422, f"No commit found for SHA: {SHA}"),
])
def test_an_unknown_commit_is_uncertain(mock: responses.RequestsMock, status: int, message: str) -> None:
    # GitHub says "Not Found" alike of an unknown commit and an unknown repository; head() has just
    # read the repository.
    mock.get(COMPARE_URL, status=status, json={"message": message, "status": str(status),
                                            "documentation_url": "https://docs.github.com/rest/commits/commits"})

    assert provider().changed_files(SHA, NEWER) == ChangedFiles(
        uncertain="the server does not know the recorded commit 0123456: history was rewritten")


@pytest.mark.parametrize("status, headers, error", [
    (401, {}, Unauthorized),
    (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1900000000"}, Throttled),
    (429, {"Retry-After": "30"}, Throttled),
    (502, {}, Unavailable),
    (503, {}, Unavailable),
])
def test_comparison_failures_are_the_errors_head_raises(mock: responses.RequestsMock, status: int,
                                                        headers: dict[str, str], error: type[ProviderError]) -> None:
    mock.get(COMPARE_URL, status=status, headers=headers, json={"message": f"denied {TOKEN}"})

    with pytest.raises(error) as caught:
        provider().changed_files(SHA, NEWER)

    assert type(caught.value) is error and "octo/hello" in str(caught.value)
    assert_token_hidden(caught.value)
    assert len(mock.calls) == 1


def test_a_comparison_timing_out_is_unavailable(mock: responses.RequestsMock) -> None:
    mock.get(COMPARE_URL, body=requests.ReadTimeout("read timed out"))

    with pytest.raises(Unavailable, match="no answer within 3s"):
        provider().changed_files(SHA, NEWER)


@pytest.mark.parametrize("body", [
    "not json", "[]", json.dumps({"status": "ahead", "files": "README.md"}), json.dumps({"files": []}),
    json.dumps(comparison(files=[{"filename": 7}])),
])
def test_an_unreadable_comparison_is_unavailable(mock: responses.RequestsMock, body: str) -> None:
    mock.get(COMPARE_URL, body=body)

    with pytest.raises(Unavailable, match="could not be read"):
        provider().changed_files(SHA, NEWER)


def test_an_answer_over_the_bound_is_not_parsed(mock: responses.RequestsMock,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(github, "MAX_ANSWER_BYTES", 100)
    mock.get(COMPARE_URL, json=comparison())

    changed = provider().changed_files(SHA, NEWER)

    assert changed.files == () and "too large to read" in changed.uncertain
