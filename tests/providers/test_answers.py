from __future__ import annotations

import pytest

from providers.answers import (
    GITHUB_PREFIX,
    GITLAB_PREFIX,
    ETags,
    for_answer,
    is_commit_sha,
    is_throttled,
    pause_seconds,
    rate_limit,
)
from providers.base import GitSource, RateLimit, Throttled, Unauthorized
from providers.failures import Batch, Subject

NOW = 1_800_000_000.0
SUBJECT = Subject(GitSource("github", "https://api.github.com", "o/r"), "main")


@pytest.mark.parametrize("headers, prefix, expected", [
    ({"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "12", "x-ratelimit-reset": "1800000100"},
     GITHUB_PREFIX, RateLimit(5000, 12, 1_800_000_100)),
    ({"ratelimit-limit": "2000", "ratelimit-remaining": "0", "ratelimit-reset": "1800000050"},
     GITLAB_PREFIX, RateLimit(2000, 0, 1_800_000_050)),
    ({"ratelimit-limit": "100", "ratelimit-remaining": "7", "ratelimit-reset": "30"},
     GITLAB_PREFIX, RateLimit(100, 7, NOW + 30)),
    ({"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "12"}, GITHUB_PREFIX, None),
    ({"x-ratelimit-limit": "many", "x-ratelimit-remaining": "1", "x-ratelimit-reset": "1"},
     GITHUB_PREFIX, None),
    ({}, GITHUB_PREFIX, None),
])
def test_rate_limit_needs_all_three_headers(headers: dict[str, str], prefix: str,
                                            expected: RateLimit | None) -> None:
    assert rate_limit(headers, prefix, NOW) == expected


@pytest.mark.parametrize("status, headers, body, expected", [
    (429, {}, "", True),
    (403, {"x-ratelimit-remaining": "0"}, "", True),
    (403, {"retry-after": "5"}, "", True),
    (403, {}, '{"message": "You have exceeded a secondary rate limit"}', True),
    (403, {"x-ratelimit-remaining": "10"}, '{"message": "Must have admin rights"}', False),
    (401, {"x-ratelimit-remaining": "0"}, "", False),
    (500, {}, "rate limit", False),
])
def test_throttled_is_429_or_a_403_about_the_budget(status: int, headers: dict[str, str], body: str,
                                                    expected: bool) -> None:
    assert is_throttled(status, headers, body, GITHUB_PREFIX) is expected


@pytest.mark.parametrize("headers, expected", [
    ({"retry-after": "42"}, 42),
    ({"retry-after": "Fri, 15 Jan 2027 08:00:30 GMT"}, 30),
    ({"retry-after": "0"}, 1),
    ({"retry-after": "99999"}, 3600),
    ({"x-ratelimit-reset": str(int(NOW) + 600)}, 600),
    ({"x-ratelimit-reset": str(int(NOW) - 600)}, 1),
    ({"retry-after": "soon", "x-ratelimit-reset": str(int(NOW) + 7)}, 7),
    ({}, 60),
])
def test_pause_from_retry_after_or_reset_within_a_second_and_an_hour(headers: dict[str, str],
                                                                     expected: float) -> None:
    assert pause_seconds(headers, GITHUB_PREFIX, NOW) == expected


@pytest.mark.parametrize("value, expected", [
    ("0123456789abcdef0123456789abcdef01234567", True), ("0123456789abcdef", False),
    ("0123456789ABCDEF0123456789ABCDEF01234567", False), (None, False), (42, False),
    ("0123456789abcdef0123456789abcdef01234567\n", False),
])
def test_a_commit_sha_is_forty_lowercase_hex_digits(value: object, expected: bool) -> None:
    assert is_commit_sha(value) is expected


def test_etags_are_remembered_per_question_and_forgotten_without_one() -> None:
    etags = ETags()
    assert etags.request_headers("main") == {} and etags.unchanged("main") is None

    etags.remember("main", '"a"', "sha-a")
    etags.remember("dev", '"d"', "sha-d")
    assert etags.request_headers("main") == {"If-None-Match": '"a"'}
    assert etags.unchanged("dev") == "sha-d"

    etags.remember("main", None, "sha-b")
    assert etags.request_headers("main") == {} and etags.unchanged("main") is None


def test_for_answer_throttles_with_the_pause_the_headers_ask_for() -> None:
    error = for_answer(403, {"retry-after": "9"}, "", SUBJECT, has_token=True, prefix=GITHUB_PREFIX,
                       now=NOW)
    assert isinstance(error, Throttled) and error.retry_after == 9
    assert "o/r" in str(error) and "fewer Functions" in str(error)


def test_for_answer_keeps_a_permissions_403_permanent() -> None:
    error = for_answer(403, {}, '{"message": "Forbidden"}', SUBJECT, has_token=True,
                       prefix=GITHUB_PREFIX, now=NOW)
    assert isinstance(error, Unauthorized) and error.permanent


def test_a_batch_is_described_without_credentials() -> None:
    batch = Batch("github", "https://bot:s3cr3t@ghe.example.com/api/v3", 100)
    assert str(batch) == "github batch of 100 heads on https://***@ghe.example.com/api/v3"
