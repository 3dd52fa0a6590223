"""Gitee, through its v5 REST API with httpx."""

from __future__ import annotations

from typing import Any

import httpx

from providers.base import DEFAULT_TIMEOUT_SECONDS, GitProvider, GitSource, InvalidSource
from providers.failures import (Subject, bad_answer, for_status, no_commits, no_default_branch,
                                timed_out, unreachable)
from providers.urls import normalise_base_url, owner_and_repo

PUBLIC_API = "https://gitee.com/api/v5"
_PUBLIC_HOSTS = ("gitee.com", "www.gitee.com")
_URL_EXAMPLE = "https://gitee.com/OWNER/REPO"


def parse_source(url: str, *, base_url: str = "", project_id: str = "",
                 auth_type: str = "") -> GitSource:
    """`owner/repo` from the URL; the API server is Gitee's unless base_url names another."""
    parsed, repository = owner_and_repo(url, example=_URL_EXAMPLE)
    if base_url.strip():
        server = normalise_base_url(base_url, example=PUBLIC_API)
    elif parsed.host in _PUBLIC_HOSTS:
        server = PUBLIC_API
    else:
        raise InvalidSource(f"URL host {parsed.host!r} is not gitee.com: set base-url to the "
                            f"server's API (like {PUBLIC_API}) or pick the repo-type of that host")
    return GitSource(repo_type="gitee", server=server, repository=repository)


class Provider(GitProvider):
    """One httpx client per repository, reused across polls."""

    def __init__(self, source: GitSource, token: str | None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(source, token, timeout)
        self._has_token = bool(token)
        self._repository_url = f"{source.server}/repos/{source.repository}"
        # A header, never the access_token query parameter, which would end up in URLs and logs.
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(headers=headers, timeout=timeout)

    def head(self, branch: str) -> str:
        subject = Subject(self.source, branch)
        commits = self._get("/commits", subject, params={"sha": branch, "per_page": 1})
        if not isinstance(commits, list):
            raise bad_answer(subject)
        if not commits:
            raise no_commits(subject)
        sha = _text(commits[0], "sha", subject)
        if not sha:
            raise bad_answer(subject)
        return sha

    def default_branch(self) -> str:
        subject = Subject(self.source)
        branch = _text(self._get("", subject), "default_branch", subject)
        if not branch:
            raise no_default_branch(subject)
        return branch

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, subject: Subject, *, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.get(self._repository_url + path, params=params)
        except httpx.TimeoutException:
            raise timed_out(subject, self.timeout) from None
        except httpx.HTTPError as error:
            raise unreachable(subject, error) from None
        if response.status_code != 200:
            rate_limited = response.headers.get("x-ratelimit-remaining") == "0"
            raise for_status(response.status_code, subject, has_token=self._has_token,
                             rate_limited=rate_limited)
        try:
            return response.json()
        except ValueError:
            raise bad_answer(subject) from None


def _text(document: Any, key: str, subject: Subject) -> str | None:
    """A string field of a JSON object; the answer is unreadable if it is no object."""
    if not isinstance(document, dict):
        raise bad_answer(subject)
    value = document.get(key)
    return value if isinstance(value, str) else None
