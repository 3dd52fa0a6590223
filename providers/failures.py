"""The errors providers raise, worded once for every host.

Messages are built from the status code and the repository, never from a
library's exception text, so a token can never slip into one. Providers raise
these `from None` for the same reason: a server may echo a request back in its
error body, and a chained exception would carry that into logged tracebacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from providers.base import (
    GitSource,
    MissingBranch,
    NotFound,
    ProviderError,
    Throttled,
    Unauthorized,
    Unavailable,
    redact,
)
from providers.proxies import proxy_for

_TOKEN_HINT = "needs a token in the credentials Secret"
DEFAULT_PAUSE_SECONDS = 60.0  # when a rate-limited answer says nothing of how long
PROXY_CREDENTIALS = ("the forward proxy asks for credentials (HTTP 407): put them in the proxy URL of "
                     "HTTPS_PROXY or HTTP_PROXY (http://USER:PASSWORD@HOST:PORT)")


@dataclass(frozen=True)
class Subject:
    """What a request asked about: a repository, and the branch if there was one."""

    source: GitSource
    branch: str | None = None

    def __str__(self) -> str:
        server = f" on {self.source.server}" if self.source.server else ""
        text = f"{self.source.repo_type} repository {redact(self.source.repository)}{server}"
        return text if self.branch is None else f"{text}, branch {self.branch!r}"


@dataclass(frozen=True)
class Batch:
    """What a batched request asked about: the heads of several repositories at once."""

    repo_type: str
    server: str
    size: int

    def __str__(self) -> str:
        return f"{self.repo_type} batch of {self.size} heads on {redact(self.server)}"


Asked = Subject | Batch


def for_status(status: int, subject: Asked, *, has_token: bool, rate_limited: bool = False,
               retry_after: float = DEFAULT_PAUSE_SECONDS) -> ProviderError:
    """The error an HTTP status code means for this request.

    `retry_after` is the pause a rate-limited answer asked for."""
    if rate_limited or status == 429:
        return throttled(subject, status, retry_after, has_token=has_token)
    if status in (401, 403):
        return Unauthorized(f"{subject}: {_refused(status, has_token)}")
    if status == 407:
        return proxy_refused(subject)
    if status == 404:
        return NotFound(f"{subject}: not found (HTTP 404): no such repository or branch, "
                        f"or it is private and {_TOKEN_HINT}")
    if status >= 500:
        return Unavailable(f"{subject}: server error (HTTP {status})")
    return ProviderError(f"{subject}: unexpected answer from the server (HTTP {status})")


def throttled(subject: Asked, status: int, retry_after: float, *, has_token: bool) -> Throttled:
    remedy = ("poll fewer Functions on this host or lengthen their polling-interval" if has_token else
              "anonymous requests get a low limit: put a token in the credentials Secret, "
              "or poll fewer Functions or less often")
    return Throttled(f"{subject}: rate limited by the server (HTTP {status}), pausing "
                     f"{retry_after:.0f}s: {remedy}", retry_after)


def _refused(status: int, has_token: bool) -> str:
    what = "the server rejected the credentials" if status == 401 else "access denied"
    if has_token:
        return (f"{what} (HTTP {status}): check that the token in the credentials Secret "
                "is valid and can read this repository")
    return f"{what} (HTTP {status}): the repository {_TOKEN_HINT}"


def timed_out(subject: Asked, timeout: float) -> Unavailable:
    return Unavailable(f"{subject}: no answer within {timeout:g}s")


def unreachable(subject: Asked, error: BaseException) -> Unavailable:
    url = subject.server if isinstance(subject, Batch) else subject.source.server or subject.source.repository
    return Unavailable(f"{subject}: {proxy_problem(error, url) or f'cannot reach the server ({_root_cause(error)})'}")


def proxy_refused(subject: Asked | str) -> ProviderError:
    return ProviderError(f"{subject}: {PROXY_CREDENTIALS}")


def proxy_problem(error: BaseException, url: str) -> str | None:
    """What went wrong on the way to `url` when the environment names a forward proxy for it."""
    chain = list(causes(error))
    # httpx, urllib3 and requests each have a ProxyError; a refused CONNECT says its status only in text.
    if any(type(cause).__name__ == "ProxyError" for cause in chain) and any("407" in str(cause) for cause in chain):
        return PROXY_CREDENTIALS
    if proxy_for(url) is None:
        return None
    return (f"cannot reach the server through the forward proxy ({_root_cause(error)}): check "
            "HTTPS_PROXY, HTTP_PROXY and NO_PROXY")


def bad_answer(subject: Asked) -> Unavailable:
    return Unavailable(f"{subject}: the server's answer could not be read")


def no_commits(subject: Subject) -> NotFound:
    return MissingBranch(f"{subject}: no commits: the branch does not exist or is empty")


def no_default_branch(subject: Subject) -> NotFound:
    return MissingBranch(f"{subject}: the repository has no default branch; is it empty?")


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error, then what caused it, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError keeps its cause here
        current = reason if isinstance(reason, BaseException) else (current.__cause__ or current.__context__)


def _root_cause(error: BaseException) -> str:
    """The innermost exception's class name: says what went wrong, and holds no text."""
    return type(list(causes(error))[-1]).__name__
