"""GitHub and GitHub Enterprise: REST through PyGithub's requester, GraphQL in batches.

Heads are read with PyGithub's requester (`requestJson`), not its object API:
only the requester can send `If-None-Match` and ask for the
`application/vnd.github.sha` media type. The answer is then the 40-character
SHA alone, and when the branch has not moved it is a bodiless 304, which costs
an authorized client no unit of its rate limit. A poll that finds nothing new
is free.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import requests
from github import Auth, Github

from providers.answers import (
    GITHUB_PREFIX,
    ETags,
    Headers,
    commit_sha,
    default_branch_in,
    for_answer,
    from_json,
    is_commit_sha,
    pause_seconds,
    rate_limit,
)
from providers.base import (
    DEFAULT_TIMEOUT_SECONDS,
    ChangedFiles,
    GitProvider,
    GitSource,
    InvalidSource,
    MissingBranch,
    NotFound,
    ProviderError,
    RateLimit,
    Throttled,
    Unauthorized,
    Unavailable,
    verifying_tls,
)
from providers.changes import (
    MAX_ANSWER_BYTES,
    github_files,
    json_document,
    not_an_ancestor,
    too_large,
    unknown_commit,
)
from providers.failures import (
    Batch,
    Subject,
    bad_answer,
    no_commits,
    no_default_branch,
    throttled,
    timed_out,
    unreachable,
)
from providers.sessions import SharedClients
from providers.urls import RepositoryURL, clone_url, is_repository_path, normalise_base_url, owner_and_repo

PUBLIC_API = "https://api.github.com"
PUBLIC_WEB = "https://github.com"
_PUBLIC_HOSTS = ("github.com", "www.github.com")
_ENTERPRISE_API_PATH = "/api/v3"
_URL_EXAMPLE = "https://github.com/OWNER/REPO"
_BASE_URL_EXAMPLE = "https://github.example.com/api/v3"
_SHA_MEDIA_TYPE = "application/vnd.github.sha"
_JSON_MEDIA_TYPE = "application/vnd.github+json"
_DEFAULT_BRANCH = "default branch"  # the ETag memory's key; no branch can be named so
GRAPHQL_BATCH_SIZE = 100
# A comparison lists at most 300 files and no more on later pages, and says nothing when it
# stops: a list that long may be cut short.
COMPARE_MAX_FILES = 300


def parse_source(url: str, *, base_url: str = "", project_id: str = "",
                 auth_type: str = "") -> GitSource:
    """`owner/repo` from any clone URL; the API server from base_url or the URL's host."""
    parsed, repository = owner_and_repo(url, example=_URL_EXAMPLE)
    web = PUBLIC_WEB if parsed.host in _PUBLIC_HOSTS else parsed.origin
    return GitSource(repo_type="github", server=_api_server(parsed, base_url), repository=repository,
                     clone_url=clone_url(web, repository))


def _api_server(parsed: RepositoryURL, base_url: str) -> str:
    if base_url.strip():
        server = normalise_base_url(base_url, example=_BASE_URL_EXAMPLE)
        # go-github's WithEnterpriseURLs appends the API path the same way.
        return server if server.endswith(_ENTERPRISE_API_PATH) else server + _ENTERPRISE_API_PATH
    if parsed.host in _PUBLIC_HOSTS:
        return PUBLIC_API
    return parsed.origin + _ENTERPRISE_API_PATH


def whole_seconds(timeout: float) -> int:
    """PyGithub asserts an int timeout: the given one rounded up, at least 1 s."""
    return max(1, math.ceil(timeout))


@dataclass(frozen=True)
class _ClientKey:
    server: str
    token: str = field(repr=False)
    timeout: float


def _open_github(key: _ClientKey) -> Github:
    # retry=None: PyGithub's default retry sleeps through rate limits and
    # server errors, which would stretch a poll far past its timeout.
    # seconds_between_requests=None: polls are already spaced by the interval.
    return Github(base_url=key.server, auth=Auth.Token(key.token) if key.token else None,
                  timeout=whole_seconds(key.timeout), retry=None, seconds_between_requests=None)


# One PyGithub client (and its connection pool) per API server and token.
_CLIENTS: SharedClients[_ClientKey, Github] = SharedClients(_open_github, Github.close)


class Provider(GitProvider):
    """The shared PyGithub requester of its server and token, and the ETag of each answer."""

    def __init__(self, source: GitSource, token: str | None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(source, token, timeout)
        self._has_token = bool(token)
        self._lease = _CLIENTS.lease(_ClientKey(source.server, token or "", timeout))
        self._github = self._lease.client
        self._path = "/repos/" + quote(source.repository, safe="/")
        self._etags = ETags()

    def head(self, branch: str) -> str:
        path = f"{self._path}/commits/{quote(branch, safe='/')}"
        return self._conditional_get(path, _SHA_MEDIA_TYPE, branch, Subject(self.source, branch),
                                     _sha_of)

    def default_branch(self) -> str:
        return self._conditional_get(self._path, _JSON_MEDIA_TYPE, _DEFAULT_BRANCH,
                                     Subject(self.source), from_json(default_branch_in))

    def changed_files(self, base: str, head: str) -> ChangedFiles:
        """One `compare/BASE...HEAD`. `per_page=1` lists one commit, not up to 250, where the files
        are still all listed (on the first page). GitHub answers an unknown commit with the same
        404 as an unknown repository; `head()` has just read the repository, so a 404 here is
        taken to be about the commit, and if the repository has gone the next `head()` says so;
        so is the 422 "No commit found" that `head()` reads as a missing branch."""
        subject = Subject(self.source)
        path = f"{self._path}/compare/{quote(base, safe='')}...{quote(head, safe='')}?per_page=1"
        status, headers, body = self._request(path, {"Accept": _JSON_MEDIA_TYPE}, subject)
        self.rate_limit = rate_limit(headers, GITHUB_PREFIX, time.time()) or self.rate_limit
        if status == 404 or (status == 422 and "no commit found" in body.lower()):
            return unknown_commit(base)
        if status != 200:
            raise self._failure(status, headers, body, subject)
        if len(body) > MAX_ANSWER_BYTES:  # PyGithub has read it whole; it is not parsed
            return too_large()
        return _comparison(json_document(body, subject), base, head, subject)

    def close(self) -> None:
        self._lease.end()

    def _conditional_get(self, path: str, accept: str, question: str, subject: Subject,
                         read: Callable[[str, Subject], str]) -> str:
        headers = {"Accept": accept, **self._etags.request_headers(question)}
        status, answer_headers, body = self._request(path, headers, subject)
        self.rate_limit = rate_limit(answer_headers, GITHUB_PREFIX, time.time()) or self.rate_limit
        return self._etags.answer(question, status, answer_headers, body, subject, read, self._failure)

    def _request(self, path: str, headers: dict[str, str],
                 subject: Subject) -> tuple[int, Headers, str]:
        try:
            return self._github.requester.requestJson("GET", path, headers=headers)
        except requests.Timeout:
            raise timed_out(subject, self.timeout) from None
        except requests.RequestException as error:
            raise unreachable(subject, error) from None
        except RuntimeError:  # PyGithub's refusal to follow a 301 to another host or scheme
            raise ProviderError(f"{subject}: the server redirected to another host, where the token "
                                "is not sent: set base-url to the API's own URL") from None

    def _failure(self, status: int, headers: Headers, body: str, subject: Subject) -> ProviderError:
        if status == 409:  # GitHub's answer for a repository without commits
            return no_commits(subject)
        if status == 422 and "no commit found" in body.lower():
            return MissingBranch(f"{subject}: the repository has no such branch")
        return for_answer(status, headers, body, subject, has_token=self._has_token,
                          prefix=GITHUB_PREFIX, now=time.time())


def _sha_of(body: str, subject: Subject) -> str:
    return commit_sha(body.strip(), subject)


def _comparison(document: Any, base: str, head: str, subject: Subject) -> ChangedFiles:
    """`status` says where the base stands: "ahead" and "identical" when it is an ancestor of the
    head, "behind" or "diverged" when not."""
    state = document.get("status") if isinstance(document, dict) else None
    if state in ("behind", "diverged"):
        return not_an_ancestor(base, head)
    if state not in ("ahead", "identical"):
        raise bad_answer(subject)
    files = document.get("files")
    cut = isinstance(files, list) and len(files) >= COMPARE_MAX_FILES
    return github_files(files, subject,
                        truncated=f"the server listed only the first {COMPARE_MAX_FILES} changed files" if cut else "")


@dataclass(frozen=True)
class HeadQuery:
    """One head to read in a GraphQL batch."""

    repository: str  # "owner/repo"
    branch: str  # "" = the default branch


def graphql_url(server: str) -> str:
    """The GraphQL endpoint beside a REST API base (GitSource.server)."""
    if server.endswith(_ENTERPRISE_API_PATH):
        return server.removesuffix(_ENTERPRISE_API_PATH) + "/api/graphql"
    return server + "/graphql"


def read_heads(server: str, token: str, queries: Sequence[HeadQuery],
               timeout: float = DEFAULT_TIMEOUT_SECONDS,
               ) -> tuple[dict[HeadQuery, str | ProviderError], RateLimit | None]:
    """The heads of many branches, one POST per 100 queries; each query gets a SHA or an error.

    Once a chunk is throttled the later ones are not sent: they get the same error."""
    answers: dict[HeadQuery, str | ProviderError] = {}
    askable: list[HeadQuery] = []
    for query in dict.fromkeys(queries):
        if _owner_and_name(query.repository) is None:
            answers[query] = InvalidSource(f"{_subject(server, query)}: the repository is not OWNER/REPO")
        else:
            askable.append(query)
    limit: RateLimit | None = None
    headers = {"Authorization": f"bearer {token}"} if token else {}
    with httpx.Client(headers=headers, timeout=timeout, verify=verifying_tls()) as client:
        for start in range(0, len(askable), GRAPHQL_BATCH_SIZE):
            chunk = askable[start:start + GRAPHQL_BATCH_SIZE]
            answered, chunk_limit = _read_chunk(client, server, chunk, bool(token), timeout)
            answers.update(answered)
            limit = chunk_limit or limit
            pause = next((a for a in answered.values() if isinstance(a, Throttled)), None)
            if pause is not None:
                answers.update(dict.fromkeys(askable[start + GRAPHQL_BATCH_SIZE:], pause))
                break
    return answers, limit


def graphql_query(queries: Sequence[HeadQuery]) -> tuple[str, dict[str, str]]:
    """The query text and variables asking for every query's head, aliased r0, r1, ..."""
    declarations: list[str] = []
    fields: list[str] = []
    variables: dict[str, str] = {}
    for index, query in enumerate(queries):
        owner, name = _owner_and_name(query.repository) or ("", "")
        variables[f"o{index}"], variables[f"n{index}"] = owner, name
        declarations += [f"$o{index}: String!", f"$n{index}: String!"]
        if query.branch:
            variables[f"q{index}"] = f"refs/heads/{query.branch}"
            declarations.append(f"$q{index}: String!")
            selection = f"ref(qualifiedName: $q{index}) {{ target {{ oid }} }}"
        else:
            selection = "defaultBranchRef { name target { oid } }"
        fields.append(f"r{index}: repository(owner: $o{index}, name: $n{index}) {{ {selection} }}")
    text = (f"query({', '.join(declarations)}) {{ rateLimit {{ limit remaining resetAt cost }} "
            f"{' '.join(fields)} }}")
    return text, variables


def _read_chunk(client: httpx.Client, server: str, chunk: list[HeadQuery], has_token: bool,
                timeout: float) -> tuple[dict[HeadQuery, str | ProviderError], RateLimit | None]:
    batch = Batch("github", server, len(chunk))
    text, variables = graphql_query(chunk)
    try:
        response = client.post(graphql_url(server), json={"query": text, "variables": variables})
    except httpx.TimeoutException:
        return dict.fromkeys(chunk, timed_out(batch, timeout)), None
    except httpx.HTTPError as error:
        return dict.fromkeys(chunk, unreachable(batch, error)), None
    now = time.time()
    limit = rate_limit(response.headers, GITHUB_PREFIX, now)
    if response.status_code != 200:
        return dict.fromkeys(chunk, for_answer(response.status_code, response.headers, response.text,
                                               batch, has_token=has_token, prefix=GITHUB_PREFIX,
                                               now=now)), limit
    try:
        document = response.json()
    except ValueError:
        return dict.fromkeys(chunk, bad_answer(batch)), limit
    data = document.get("data") if isinstance(document, dict) else None
    errors = _error_types(document.get("errors") if isinstance(document, dict) else None)
    if not isinstance(data, dict):
        return dict.fromkeys(chunk, _refused(batch, errors, response.headers, has_token, now)), limit
    limit = _graphql_rate_limit(data.get("rateLimit")) or limit
    return {query: _head_of(data.get(f"r{index}"), errors.get(f"r{index}"), _subject(server, query))
            for index, query in enumerate(chunk)}, limit


def _error_types(errors: object) -> dict[str, str]:
    """The type of each error, by the alias it is about ("" for the whole query)."""
    types: dict[str, str] = {}
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        path = error.get("path")
        alias = path[0] if isinstance(path, list) and path and isinstance(path[0], str) else ""
        types[alias] = str(error.get("type", ""))
    return types


def _refused(batch: Batch, errors: dict[str, str], headers: Headers, has_token: bool,
             now: float) -> ProviderError:
    """Why a query got no data at all."""
    if "RATE_LIMITED" in errors.values():
        return throttled(batch, 200, pause_seconds(headers, GITHUB_PREFIX, now), has_token=has_token)
    if errors:
        return Unavailable(f"{batch}: the GraphQL API answered with errors only")
    return bad_answer(batch)


def _head_of(node: object, error_type: str | None, subject: Subject) -> str | ProviderError:
    if node is None:
        return _node_error(error_type, subject)
    if not isinstance(node, dict):
        return bad_answer(subject)
    ref = node.get("ref") if subject.branch is not None else node.get("defaultBranchRef")
    if ref is None:
        if subject.branch is None:
            return no_default_branch(subject)
        return MissingBranch(f"{subject}: the repository has no such branch")
    target = ref.get("target") if isinstance(ref, dict) else None
    oid = target.get("oid") if isinstance(target, dict) else None
    return oid if is_commit_sha(oid) else bad_answer(subject)


def _node_error(error_type: str | None, subject: Subject) -> ProviderError:
    if error_type == "NOT_FOUND":
        return NotFound(f"{subject}: not found: no such repository, or the token cannot read it")
    if error_type == "FORBIDDEN":
        return Unauthorized(f"{subject}: access denied: check that the token in the credentials "
                            "Secret can read this repository")
    if error_type is not None:
        return Unavailable(f"{subject}: the GraphQL API could not answer for this repository")
    return bad_answer(subject)


def _graphql_rate_limit(node: object) -> RateLimit | None:
    if not isinstance(node, dict):
        return None
    limit, remaining, reset_at = node.get("limit"), node.get("remaining"), node.get("resetAt")
    if not (isinstance(limit, int) and isinstance(remaining, int) and isinstance(reset_at, str)):
        return None
    try:
        reset = datetime.fromisoformat(reset_at)
    except ValueError:
        return None
    return RateLimit(limit=limit, remaining=remaining, reset_at=reset.timestamp())


def _owner_and_name(repository: str) -> tuple[str, str] | None:
    segments = repository.split("/")
    if len(segments) != 2 or not is_repository_path(repository):
        return None
    return segments[0], segments[1]


def _subject(server: str, query: HeadQuery) -> Subject:
    return Subject(GitSource("github", server, query.repository), query.branch or None)
