"""GitHub and GitHub Enterprise, through PyGithub's REST client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from github import Auth, Github, GithubException, RateLimitExceededException
from github.Repository import Repository

from providers.base import DEFAULT_TIMEOUT_SECONDS, GitProvider, GitSource, ProviderError
from providers.failures import (Subject, bad_answer, for_status, no_commits, no_default_branch,
                                timed_out, unreachable)
from providers.urls import RepositoryURL, normalise_base_url, owner_and_repo

PUBLIC_API = "https://api.github.com"
_PUBLIC_HOSTS = ("github.com", "www.github.com")
_ENTERPRISE_API_PATH = "/api/v3"
_URL_EXAMPLE = "https://github.com/OWNER/REPO"
_BASE_URL_EXAMPLE = "https://github.example.com/api/v3"


def parse_source(url: str, *, base_url: str = "", project_id: str = "",
                 auth_type: str = "") -> GitSource:
    """`owner/repo` from any clone URL; the API server from base_url or the URL's host."""
    parsed, repository = owner_and_repo(url, example=_URL_EXAMPLE)
    return GitSource(repo_type="github", server=_api_server(parsed, base_url), repository=repository)


def _api_server(parsed: RepositoryURL, base_url: str) -> str:
    if base_url.strip():
        server = normalise_base_url(base_url, example=_BASE_URL_EXAMPLE)
        # go-github's WithEnterpriseURLs appends the API path the same way.
        return server if server.endswith(_ENTERPRISE_API_PATH) else server + _ENTERPRISE_API_PATH
    if parsed.host in _PUBLIC_HOSTS:
        return PUBLIC_API
    return parsed.origin + _ENTERPRISE_API_PATH


class Provider(GitProvider):
    """One PyGithub client per repository, reused across polls."""

    def __init__(self, source: GitSource, token: str | None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(source, token, timeout)
        self._has_token = bool(token)
        # retry=None: PyGithub's default retry sleeps through rate limits and
        # server errors, which would stretch a poll far past its timeout.
        # seconds_between_requests=None: polls are already spaced by the interval.
        self._github = Github(base_url=source.server, auth=Auth.Token(token) if token else None,
                              timeout=timeout, per_page=1, retry=None, lazy=True,
                              seconds_between_requests=None)

    def head(self, branch: str) -> str:
        subject = Subject(self.source, branch)
        with self._answering(subject):
            page = self._repository().get_commits(sha=branch).get_page(0)
        if not page:
            raise no_commits(subject)
        return page[0].sha

    def default_branch(self) -> str:
        subject = Subject(self.source)
        with self._answering(subject):
            branch = self._repository().default_branch
        if not branch:
            raise no_default_branch(subject)
        return branch

    def close(self) -> None:
        self._github.close()

    def _repository(self) -> Repository:
        # Lazy: no request until a question is asked, and nothing cached between polls.
        return self._github.get_repo(self.source.repository)

    @contextmanager
    def _answering(self, subject: Subject) -> Iterator[None]:
        try:
            yield
        except GithubException as error:
            raise self._error_for(error, subject) from None
        except requests.Timeout:
            raise timed_out(subject, self.timeout) from None
        except ValueError:  # before RequestException: JSON errors are both
            raise bad_answer(subject) from None
        except requests.RequestException as error:
            raise unreachable(subject, error) from None

    def _error_for(self, error: GithubException, subject: Subject) -> ProviderError:
        if error.status == 409:  # GitHub's answer for a repository without commits
            return no_commits(subject)
        headers = {name.lower(): value for name, value in (error.headers or {}).items()}
        rate_limited = (isinstance(error, RateLimitExceededException)
                        or headers.get("x-ratelimit-remaining") == "0")
        return for_status(error.status, subject, has_token=self._has_token,
                          rate_limited=rate_limited)
