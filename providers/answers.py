"""Reading a host's answers, in one place for every host: the values and what the headers say.

The request budget: GitHub and Gitee send `X-RateLimit-Limit/Remaining/Reset`,
GitLab `RateLimit-Limit/Remaining/Reset`. A pause: `Retry-After`, in seconds or
as an HTTP date. The ETag: sent back as `If-None-Match`, it turns an unchanged
answer into a bodiless 304, which GitHub does not count against the budget.
Pure: no I/O; `now` is passed in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeGuard

from providers.base import ProviderError, RateLimit
from providers.failures import DEFAULT_PAUSE_SECONDS, Asked, Subject, bad_answer, for_status, no_default_branch

GITHUB_PREFIX = "x-ratelimit-"
GITLAB_PREFIX = "ratelimit-"
MIN_PAUSE_SECONDS = 1.0
MAX_PAUSE_SECONDS = 3600.0
# A reset below this is a number of seconds from now (the IETF RateLimit
# draft's meaning), not Unix time: 1e9 is September 2001.
_EARLIEST_UNIX_RESET = 1e9

_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")

Headers = Mapping[str, str]
# The error a status other than 200 or 304 means, given the answer's headers and body.
Failure = Callable[[int, Headers, str, Subject], ProviderError]


def is_commit_sha(value: object) -> TypeGuard[str]:
    """Whether `value` is a full SHA-1 commit id, as every host's answer must carry."""
    return isinstance(value, str) and _COMMIT_SHA.fullmatch(value) is not None


def commit_sha(value: object, subject: Subject) -> str:
    """`value` if it is a commit id; else the answer could not be read."""
    if not is_commit_sha(value):
        raise bad_answer(subject)
    return value


def default_branch_in(repository: object, subject: Subject) -> str:
    """The `default_branch` of a repository (or project) document."""
    if not isinstance(repository, dict):
        raise bad_answer(subject)
    branch = repository.get("default_branch")
    if not isinstance(branch, str) or not branch:
        raise no_default_branch(subject)
    return branch


def rate_limit(headers: Headers, prefix: str, now: float) -> RateLimit | None:
    """The budget the headers state; None unless limit, remaining and reset are all there."""
    limit = _number(headers.get(prefix + "limit"))
    remaining = _number(headers.get(prefix + "remaining"))
    reset_at = reset_time(headers, prefix, now)
    if limit is None or remaining is None or reset_at is None:
        return None
    return RateLimit(limit=int(limit), remaining=int(remaining), reset_at=reset_at)


def reset_time(headers: Headers, prefix: str, now: float) -> float | None:
    reset = _number(headers.get(prefix + "reset"))
    if reset is None:
        return None
    return reset if reset >= _EARLIEST_UNIX_RESET else now + reset


def is_throttled(status: int, headers: Headers, body: str, prefix: str) -> bool:
    """429, or a 403 that is about the budget rather than about permissions.

    GitHub answers both its primary and its secondary rate limit with 403 and a
    message saying "rate limit"; only the primary one zeroes the remaining count."""
    if status == 429:
        return True
    if status != 403:
        return False
    return (headers.get(prefix + "remaining") == "0" or "retry-after" in headers
            or "rate limit" in body.lower())


def pause_seconds(headers: Headers, prefix: str, now: float) -> float:
    """How long to send nothing: `Retry-After`, else until the reset, within 1 s .. 1 h."""
    pause = _retry_after(headers.get("retry-after"), now)
    if pause is None:
        reset_at = reset_time(headers, prefix, now)
        pause = DEFAULT_PAUSE_SECONDS if reset_at is None else reset_at - now
    return min(max(pause, MIN_PAUSE_SECONDS), MAX_PAUSE_SECONDS)


def _retry_after(value: str | None, now: float) -> float | None:
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        return parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError, IndexError):
        return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Remembered:
    """An answer's value and the ETag the server gave it."""

    etag: str
    value: str


@dataclass
class ETags:
    """The last ETag and value per question (a branch's head, the default branch)."""

    answers: dict[str, Remembered] = field(default_factory=dict)

    def request_headers(self, question: str) -> dict[str, str]:
        remembered = self.answers.get(question)
        return {"If-None-Match": remembered.etag} if remembered else {}

    def unchanged(self, question: str) -> str | None:
        """The value a 304 confirms; None if nothing was remembered for the question."""
        remembered = self.answers.get(question)
        return remembered.value if remembered else None

    def remember(self, question: str, etag: str | None, value: str) -> None:
        if etag:
            self.answers[question] = Remembered(etag, value)
        else:
            self.answers.pop(question, None)

    def answer(self, question: str, status: int, headers: Headers, body: str, subject: Subject,
               read: Callable[[str, Subject], str], failure: Failure) -> str:
        """The value an answer to a conditional request gives: the remembered one on a 304,
        else what `read` finds in a 200's body (remembered with its ETag); any other status
        raises what `failure` makes of it."""
        unchanged = self.unchanged(question)
        if status == 304 and unchanged is not None:
            return unchanged
        if status != 200:
            raise failure(status, headers, body, subject)
        value = read(body, subject)
        self.remember(question, headers.get("etag"), value)
        return value


def from_json(read: Callable[[Any, Subject], str]) -> Callable[[str, Subject], str]:
    """`read` of a JSON document, given the body."""
    def parse(body: str, subject: Subject) -> str:
        try:
            document = json.loads(body)
        except ValueError:
            raise bad_answer(subject) from None
        return read(document, subject)
    return parse


def for_answer(status: int, headers: Headers, body: str, subject: Asked, *, has_token: bool,
               prefix: str, now: float) -> ProviderError:
    """The error a non-success answer means, told apart from a rate limit by its headers and body."""
    return for_status(status, subject, has_token=has_token,
                      rate_limited=is_throttled(status, headers, body, prefix),
                      retry_after=pause_seconds(headers, prefix, now))
