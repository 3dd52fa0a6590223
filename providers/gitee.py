"""Gitee, through its v5 REST API with httpx.

A head is one branch's answer, asked for with the ETag of the last one, so an
unchanged branch is a bodiless 304.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from providers.answers import (
    GITHUB_PREFIX,
    ETags,
    Headers,
    commit_sha,
    default_branch_in,
    for_answer,
    from_json,
    rate_limit,
)
from providers.base import (
    DEFAULT_TIMEOUT_SECONDS,
    ChangedFiles,
    GitProvider,
    GitSource,
    InvalidSource,
    ProviderError,
    verifying_tls,
)
from providers.changes import bounded, github_files, json_document, not_an_ancestor, too_large, unknown_commit
from providers.failures import Subject, bad_answer, timed_out, unreachable
from providers.sessions import SharedClients, cookieless
from providers.urls import clone_url, normalise_base_url, owner_and_repo

PUBLIC_API = "https://gitee.com/api/v5"
PUBLIC_WEB = "https://gitee.com"
_DEFAULT_BRANCH = "default branch"  # the ETag memory's key; no branch can be named so
_PUBLIC_HOSTS = ("gitee.com", "www.gitee.com")
_URL_EXAMPLE = "https://gitee.com/OWNER/REPO"


def parse_source(url: str, *, base_url: str = "", project_id: str = "",
                 auth_type: str = "") -> GitSource:
    """`owner/repo` from the URL; the API server is Gitee's unless base_url names another."""
    parsed, repository = owner_and_repo(url, example=_URL_EXAMPLE)
    public = parsed.host in _PUBLIC_HOSTS
    if base_url.strip():
        server = normalise_base_url(base_url, example=PUBLIC_API)
    elif public:
        server = PUBLIC_API
    else:
        raise InvalidSource(f"URL host {parsed.host!r} is not gitee.com: set base-url to the "
                            f"server's API (like {PUBLIC_API}) or pick the repo-type of that host")
    return GitSource(repo_type="gitee", server=server, repository=repository,
                     clone_url=clone_url(PUBLIC_WEB if public else parsed.origin, repository))


# One httpx client (and connection pool) for every Gitee server: tokens go in each request.
_CLIENTS: SharedClients[float, httpx.Client] = SharedClients(
    lambda timeout: httpx.Client(timeout=timeout, verify=verifying_tls(), cookies=cookieless()),
    httpx.Client.close)


class Provider(GitProvider):
    """The shared httpx client, and the ETag of each answer, kept across polls."""

    def __init__(self, source: GitSource, token: str | None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(source, token, timeout)
        self._has_token = bool(token)
        self._repository_url = f"{source.server}/repos/{quote(source.repository, safe='/')}"
        # A header, never the access_token query parameter, which would end up in URLs and logs.
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._lease = _CLIENTS.lease(timeout)
        self._client = self._lease.client
        self._etags = ETags()

    def head(self, branch: str) -> str:
        path = f"/branches/{quote(branch, safe='/')}"
        return self._conditional_get(path, branch, Subject(self.source, branch), _sha_of)

    def default_branch(self) -> str:
        return self._conditional_get("", _DEFAULT_BRANCH, Subject(self.source), default_branch_in)

    def changed_files(self, base: str, head: str) -> ChangedFiles:
        """One `compare/BASE...HEAD`, shaped as GitHub's: `base` is an ancestor of `head` when it
        is their `merge_base_commit`; `truncated` says the file list was cut short. Gitee documents
        no `status` nor a file limit, and a 404 is taken to be about the commit, as on GitHub."""
        subject = Subject(self.source)
        url = f"{self._repository_url}/compare/{quote(base, safe='')}...{quote(head, safe='')}"
        try:
            with self._client.stream("GET", url, headers=self._headers) as response:
                body = bounded(response.iter_bytes())
        except httpx.TimeoutException:
            raise timed_out(subject, self.timeout) from None
        except httpx.HTTPError as error:
            raise unreachable(subject, error) from None
        self.rate_limit = rate_limit(response.headers, GITHUB_PREFIX, time.time()) or self.rate_limit
        text = "" if body is None else body.decode("utf-8", "replace")
        if response.status_code == 404:
            return unknown_commit(base)
        if response.status_code != 200:
            raise self._failure(response.status_code, response.headers, text, subject)
        if body is None:
            return too_large()
        return _comparison(json_document(text, subject), base, head, subject)

    def close(self) -> None:
        self._lease.end()

    def _conditional_get(self, path: str, question: str, subject: Subject,
                         read: Callable[[Any, Subject], str]) -> str:
        try:
            response = self._client.get(self._repository_url + path,
                                        headers={**self._headers, **self._etags.request_headers(question)})
        except httpx.TimeoutException:
            raise timed_out(subject, self.timeout) from None
        except httpx.HTTPError as error:
            raise unreachable(subject, error) from None
        self.rate_limit = rate_limit(response.headers, GITHUB_PREFIX, time.time()) or self.rate_limit
        return self._etags.answer(question, response.status_code, response.headers, response.text,
                                  subject, from_json(read), self._failure)

    def _failure(self, status: int, headers: Headers, body: str, subject: Subject) -> ProviderError:
        return for_answer(status, headers, body, subject, has_token=self._has_token, prefix=GITHUB_PREFIX,
                          now=time.time())


def _sha_of(branch: Any, subject: Subject) -> str:
    commit = branch.get("commit") if isinstance(branch, dict) else None
    return commit_sha(commit.get("sha") if isinstance(commit, dict) else None, subject)


def _comparison(document: Any, base: str, head: str, subject: Subject) -> ChangedFiles:
    if not isinstance(document, dict):
        raise bad_answer(subject)
    merge_base = document.get("merge_base_commit")
    if not isinstance(merge_base, dict) or merge_base.get("sha") != base:
        return not_an_ancestor(base, head)
    cut = "the server cut its list of changed files short" if document.get("truncated") is True else ""
    return github_files(document.get("files"), subject, truncated=cut)
