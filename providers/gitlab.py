"""GitLab.com and self-managed GitLab, through python-gitlab."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gitlab
import requests
from gitlab.exceptions import GitlabError
from gitlab.v4.objects import Project

from providers.base import DEFAULT_TIMEOUT_SECONDS, GitProvider, GitSource, InvalidSource
from providers.failures import (Subject, bad_answer, for_status, no_commits, no_default_branch,
                                timed_out, unreachable)
from providers.urls import (RepositoryURL, is_repository_path, normalise_base_url,
                            parse_repository_url)

PUBLIC_SERVER = "https://gitlab.com"
DEFAULT_AUTH_TYPE = "PrivateToken"
AUTH_TYPES = ("PrivateToken", "OAuthToken", "JobToken")
_API_PATH = "/api/v4"  # python-gitlab appends it to the server
_URL_EXAMPLE = "https://gitlab.com/GROUP/PROJECT"
_BASE_URL_EXAMPLE = "https://gitlab.example.com"
# python-gitlab otherwise sleeps and retries on 429 up to ten times, past our timeout.
_NO_RETRY: dict[str, Any] = {"obey_rate_limit": False, "max_retries": 0}


def parse_source(url: str, *, base_url: str = "", project_id: str = "",
                 auth_type: str = "") -> GitSource:
    """The server from base_url or the URL's host; the project from project_id or the URL's path."""
    kind = _auth_type(auth_type)
    parsed = None
    if not (base_url.strip() and project_id.strip()):
        parsed = parse_repository_url(url, example=_URL_EXAMPLE)
    return GitSource(repo_type="gitlab", server=_server(parsed, base_url),
                     repository=_project(parsed, project_id), auth_type=kind)


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
        # Web URLs put pages after "/-/": group/project/-/tree/main.
        return parsed.path.split("/-/")[0]
    project = project_id.strip().strip("/")
    if not is_repository_path(project):
        raise InvalidSource(f"project-id {project_id!r} is neither a numeric id nor a "
                            "GROUP/PROJECT path: write e.g. 4242 or my-group/my-project")
    return project


class Provider(GitProvider):
    """One python-gitlab client per repository, reused across polls."""

    def __init__(self, source: GitSource, token: str | None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(source, token, timeout)
        self._has_token = bool(token)
        kind, token = source.auth_type or DEFAULT_AUTH_TYPE, token or None
        # python-gitlab sends these as PRIVATE-TOKEN, Authorization: Bearer and JOB-TOKEN.
        self._gitlab = gitlab.Gitlab(url=source.server, timeout=timeout, retry_transient_errors=False,
                                     private_token=token if kind == "PrivateToken" else None,
                                     oauth_token=token if kind == "OAuthToken" else None,
                                     job_token=token if kind == "JobToken" else None)

    def head(self, branch: str) -> str:
        subject = Subject(self.source, branch)
        with self._answering(subject):
            commits = self._project().commits.list(ref_name=branch, per_page=1, get_all=False,
                                                   **_NO_RETRY)
        if not commits:
            raise no_commits(subject)
        return commits[0].id

    def default_branch(self) -> str:
        subject = Subject(self.source)
        with self._answering(subject):
            branch = self._gitlab.projects.get(self.source.repository, **_NO_RETRY).default_branch
        if not branch:
            raise no_default_branch(subject)
        return branch

    def close(self) -> None:
        self._gitlab.session.close()

    def _project(self) -> Project:
        return self._gitlab.projects.get(self.source.repository, lazy=True)

    @contextmanager
    def _answering(self, subject: Subject) -> Iterator[None]:
        try:
            yield
        except GitlabError as error:
            if error.response_code is None:
                raise bad_answer(subject) from None
            raise for_status(error.response_code, subject, has_token=self._has_token) from None
        except requests.Timeout:
            raise timed_out(subject, self.timeout) from None
        except ValueError:  # before RequestException: JSON errors are both
            raise bad_answer(subject) from None
        except requests.RequestException as error:
            raise unreachable(subject, error) from None
