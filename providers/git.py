"""Any git server that speaks smart HTTP (Gitea, Bitbucket, self-hosted, the demo).

Answers come from the ref advertisement, as `git ls-remote` reads it, through
dulwich. Protocol v2 servers are asked for just the refs needed.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse, urlsplit

import urllib3
from dulwich.client import HTTPProxyUnauthorized, HTTPUnauthorized, LsRemoteResult
from dulwich.client import Urllib3HttpGitClient, default_urllib3_manager
from dulwich.errors import GitProtocolError, NotGitRepository

from providers.base import (DEFAULT_TIMEOUT_SECONDS, GitProvider, GitSource, InvalidSource,
                            NotFound, ProviderError, redact)
from providers.failures import Subject, bad_answer, causes, for_status, timed_out, unreachable

# Hosts ignore the user name when the password is a token; some want one anyway.
USERNAME = "git"
_BRANCHES = b"refs/heads/"
_HEAD = b"HEAD"
_MAX_REDIRECTS = 5
# dulwich reports statuses other than 401 and 404 only in its message.
_UNEXPECTED_STATUS = re.compile(r"unexpected http resp (\d{3})")


def parse_source(url: str, *, base_url: str = "", project_id: str = "",
                 auth_type: str = "") -> GitSource:
    """The clone URL itself names the repository; it must be http(s)."""
    repository = url.strip()
    parts = urlsplit(repository)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSource(f"URL {redact(url)!r} is not an http(s) URL: the git repo-type reads "
                            "repositories over HTTP(S) only, not ssh: write the https clone URL, "
                            "e.g. https://git.example.com/OWNER/REPO.git")
    return GitSource(repo_type="git", server="", repository=repository)


class Provider(GitProvider):
    """One dulwich HTTP client and connection pool per repository, reused across polls."""

    def __init__(self, source: GitSource, token: str | None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(source, token, timeout)
        self._has_token = bool(token)
        self._pool = _pool_manager(source.repository, timeout)
        # from_parsedurl moves any user:password written in the URL into a header.
        self._client = Urllib3HttpGitClient.from_parsedurl(
            urlparse(source.repository), pool_manager=self._pool,
            username=USERNAME if token else None, password=token or None)

    def head(self, branch: str) -> str:
        subject = Subject(self.source, branch)
        ref = _BRANCHES + branch.encode()
        sha = self._ls_remote(ref, subject).refs.get(ref)
        if sha is None:
            raise NotFound(f"{subject}: the repository has no such branch")
        return sha.decode("ascii")

    def default_branch(self) -> str:
        subject = Subject(self.source)
        target = self._ls_remote(_HEAD, subject).symrefs.get(_HEAD)
        if target is None or not target.startswith(_BRANCHES):
            raise NotFound(f"{subject}: the server does not tell which branch HEAD points to; "
                           "name the branch in the Function")
        return target.removeprefix(_BRANCHES).decode()

    def close(self) -> None:
        self._pool.clear()

    def _ls_remote(self, ref_prefix: bytes, subject: Subject) -> LsRemoteResult:
        try:
            return self._client.get_refs(b"", ref_prefix=[ref_prefix])
        except (HTTPUnauthorized, HTTPProxyUnauthorized, NotGitRepository, GitProtocolError,
                urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            raise self._failure(error, subject) from None

    def _failure(self, error: Exception, subject: Subject) -> ProviderError:
        if isinstance(error, HTTPUnauthorized):
            return for_status(401, subject, has_token=self._has_token)
        if isinstance(error, NotGitRepository):
            return for_status(404, subject, has_token=self._has_token)
        status = _UNEXPECTED_STATUS.search(str(error))
        if status:
            return for_status(int(status[1]), subject, has_token=self._has_token)
        if any(_is_timeout(cause) for cause in causes(error)):
            return timed_out(subject, self.timeout)
        if isinstance(error, ValueError):
            return bad_answer(subject)
        return unreachable(subject, error)


def _pool_manager(url: str, timeout: float) -> urllib3.PoolManager:
    """dulwich's pool manager (proxies from the environment), with a timeout and no retries.

    urllib3 retries reads three times by default, so a hung server would hold
    a poll for four timeouts, and it sleeps for as long as a Retry-After asks."""
    manager = default_urllib3_manager(None, base_url=url, timeout=timeout)
    assert isinstance(manager, urllib3.PoolManager)  # it wraps one only for auth callbacks
    manager.connection_pool_kw["retries"] = urllib3.Retry(
        total=_MAX_REDIRECTS, connect=0, read=0, other=0, respect_retry_after_header=False)
    return manager


def _is_timeout(error: BaseException) -> bool:
    # urllib3 2 makes a refused connection a ConnectTimeoutError subclass, for compatibility.
    return (isinstance(error, (TimeoutError, urllib3.exceptions.TimeoutError))
            and not isinstance(error, urllib3.exceptions.NewConnectionError))
