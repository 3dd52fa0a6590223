"""GitLab.com and self-managed GitLab, through python-gitlab's session.

Requests go through the client's requests session, not its object API nor
`http_request`: those raise on a 304 and drop the answer's headers on every
error, and the provider needs both, to send `If-None-Match` and to read
`RateLimit-*` and `Retry-After`. A head is one branch's answer, not a list of
commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import gitlab
import requests

from providers.answers import (
    GITLAB_PREFIX,
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
)
from providers.changes import bounded, gitlab_files, json_document, not_an_ancestor, too_large, unknown_commit
from providers.failures import Subject, bad_answer, timed_out, unreachable
from providers.sessions import NO_COOKIES, SharedClients
from providers.urls import RepositoryURL, clone_url, is_repository_path, normalise_base_url, parse_repository_url

PUBLIC_SERVER = "https://gitlab.com"
DEFAULT_AUTH_TYPE = "PrivateToken"
AUTH_TYPES = ("PrivateToken", "OAuthToken", "JobToken")
_API_PATH = "/api/v4"  # python-gitlab appends it to the server
_URL_EXAMPLE = "https://gitlab.com/GROUP/PROJECT"
_BASE_URL_EXAMPLE = "https://gitlab.example.com"
_DEFAULT_BRANCH = "default branch"  # the ETag memory's key; no branch can be named so


def parse_source(url: str, *, base_url: str = "", project_id: str = "",
                 auth_type: str = "") -> GitSource:
    """The server from base_url or the URL's host; the project from project_id or the URL's path."""
    kind = _auth_type(auth_type)
    parsed = None
    if not (base_url.strip() and project_id.strip()):
        parsed = parse_repository_url(url, example=_URL_EXAMPLE)
    server, project = _server(parsed, base_url), _project(parsed, project_id)
    return GitSource(repo_type="gitlab", server=server, repository=project, auth_type=kind,
                     clone_url=_clone_url(server, project, url))


def _auth_type(auth_type: str) -> str:
    kind = auth_type.strip() or DEFAULT_AUTH_TYPE
    if kind not in AUTH_TYPES:
        raise InvalidSource(f"auth-type {auth_type!r} is not known to GitLab: "
                            f"use one of {', '.join(AUTH_TYPES)}")
    return kind


def _server(parsed: RepositoryURL | None, base_url: str) -> str:
    if base_url.strip():
        return normalise_base_url(base_url, example=_BASE_URL_EXAMPLE).removesuffix(_API_PATH)
    assert parsed is not None
    return PUBLIC_SERVER if parsed.host == "gitlab.com" else parsed.origin


def _project(parsed: RepositoryURL | None, project_id: str) -> str:
    if not project_id.strip():
        assert parsed is not None
        return _project_path(parsed)
    project = project_id.strip().strip("/")
    if not is_repository_path(project):
        raise InvalidSource(f"project-id {project_id!r} is neither a numeric id nor a "
                            "GROUP/PROJECT path: write e.g. 4242 or my-group/my-project")
    return project


def _project_path(parsed: RepositoryURL) -> str:
    # Web URLs put pages after "/-/": group/project/-/tree/main.
    return parsed.path.split("/-/")[0]


def _clone_url(server: str, project: str, url: str) -> str:
    """The project path under the server; a numeric id names no path, so then the URL's."""
    if not project.isdigit():
        return clone_url(server, project)
    try:
        parsed = parse_repository_url(url, example=_URL_EXAMPLE)
    except InvalidSource:
        return ""
    return clone_url(parsed.origin, _project_path(parsed))


# One python-gitlab client (and its session's connection pool) per server: tokens go in
# each request's headers, never into the shared client.
def _open_gitlab(key: tuple[str, float]) -> gitlab.Gitlab:
    client = gitlab.Gitlab(url=key[0], timeout=key[1])
    client.session.cookies.set_policy(NO_COOKIES)
    return client


_CLIENTS: SharedClients[tuple[str, float], gitlab.Gitlab] = SharedClients(
    _open_gitlab, lambda client: client.session.close())


class Provider(GitProvider):
    """The shared python-gitlab session of its server, and the ETag of each answer."""

    def __init__(self, source: GitSource, token: str | None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(source, token, timeout)
        self._has_token = bool(token)
        self._lease = _CLIENTS.lease((source.server, timeout))
        self._gitlab = self._lease.client
        self._headers = {**self._gitlab.headers,
                         **_token_headers(source.auth_type or DEFAULT_AUTH_TYPE, token)}
        self._project_url = f"{self._gitlab.api_url}/projects/{quote(source.repository, safe='')}"
        self._etags = ETags()

    def head(self, branch: str) -> str:
        path = f"/repository/branches/{quote(branch, safe='')}"
        return self._conditional_get(path, branch, Subject(self.source, branch), _sha_of)

    def default_branch(self) -> str:
        return self._conditional_get("", _DEFAULT_BRANCH, Subject(self.source), default_branch_in)

    def changed_files(self, base: str, head: str) -> ChangedFiles:
        """The merge base of the two commits says whether `base` is an ancestor of `head` (GitLab's
        compare diffs from the merge base, so cannot tell); then one `repository/compare`, whose
        `compare_timeout` says the diff limits (1,000 files by default) cut the list short.

        A 404 about anything but the project (an unknown ref, no merge base) is about the commits."""
        subject = Subject(self.source)
        try:
            merge_base = self._read("/repository/merge_base", [("refs[]", base), ("refs[]", head)], subject)
            if merge_base is None:
                return too_large()
            if commit_sha(merge_base.get("id") if isinstance(merge_base, dict) else None, subject) != base:
                return not_an_ancestor(base, head)
            comparison = self._read("/repository/compare", [("from", base), ("to", head)], subject)
        except _Missing as missing:
            return not_an_ancestor(base, head) if missing.no_merge_base else unknown_commit(base)
        if comparison is None:
            return too_large()
        timeout = comparison.get("compare_timeout", False) if isinstance(comparison, dict) else None
        if not isinstance(timeout, bool):
            raise bad_answer(subject)
        cut = "the server's diff limits cut its list of changed files short" if timeout else ""
        return gitlab_files(comparison.get("diffs"), subject, truncated=cut)

    def close(self) -> None:
        self._lease.end()

    def _read(self, path: str, query: list[tuple[str, str]], subject: Subject) -> Any:
        """The JSON document a GET of the project's `path` answers, None if it is too large to read."""
        try:
            with self._gitlab.session.get(self._project_url + path, params=query, headers=self._headers,
                                          timeout=self.timeout, allow_redirects=False, stream=True) as response:
                body = bounded(response.iter_content(chunk_size=65536))
        except requests.Timeout:
            raise timed_out(subject, self.timeout) from None
        except requests.RequestException as error:
            raise unreachable(subject, error) from None
        self.rate_limit = rate_limit(response.headers, GITLAB_PREFIX, time.time()) or self.rate_limit
        text = "" if body is None else body.decode("utf-8", "replace")
        if response.status_code == 404 and "project not found" not in text.lower():
            raise _Missing(no_merge_base="merge base not found" in text.lower())
        if response.status_code != 200:
            raise self._failure(response.status_code, response.headers, text, subject)
        return None if body is None else json_document(text, subject)

    def _conditional_get(self, path: str, question: str, subject: Subject,
                         read: Callable[[Any, Subject], str]) -> str:
        headers = {**self._headers, **self._etags.request_headers(question)}
        try:
            # No redirects: requests would carry PRIVATE-TOKEN along to another host.
            response = self._gitlab.session.get(self._project_url + path, headers=headers,
                                                timeout=self.timeout, allow_redirects=False)
        except requests.Timeout:
            raise timed_out(subject, self.timeout) from None
        except requests.RequestException as error:
            raise unreachable(subject, error) from None
        self.rate_limit = rate_limit(response.headers, GITLAB_PREFIX, time.time()) or self.rate_limit
        return self._etags.answer(question, response.status_code, response.headers, response.text,
                                  subject, from_json(read), self._failure)

    def _failure(self, status: int, headers: Headers, body: str, subject: Subject) -> ProviderError:
        return for_answer(status, headers, body, subject, has_token=self._has_token, prefix=GITLAB_PREFIX,
                          now=time.time())


class _Missing(Exception):
    """A 404 about a ref, not the project: "404 Could not find ref: ... Not Found" or
    "404 Merge Base Not Found" (histories without a common commit)."""

    def __init__(self, *, no_merge_base: bool) -> None:
        super().__init__()
        self.no_merge_base = no_merge_base


def _token_headers(kind: str, token: str | None) -> dict[str, str]:
    """The header GitLab reads each token kind from."""
    if not token:
        return {}
    if kind == "OAuthToken":
        return {"Authorization": f"Bearer {token}"}
    return {"JOB-TOKEN" if kind == "JobToken" else "PRIVATE-TOKEN": token}


def _sha_of(branch: Any, subject: Subject) -> str:
    commit = branch.get("commit") if isinstance(branch, dict) else None
    return commit_sha(commit.get("id") if isinstance(commit, dict) else None, subject)
