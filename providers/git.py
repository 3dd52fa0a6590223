"""Any git server that speaks smart HTTP: Gitea, Bitbucket, self-hosted, the demo, and the
public repositories of GitHub, GitLab and Gitee read through their clone URLs.

Answers come from `providers.smarthttp`: after the first poll of a protocol v2
server, one `ls-refs` request per question, naming the one ref wanted. Which files
changed between two commits comes from `providers.history`: one shallow fetch of
the head's recent commits and their trees.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from providers import history, smarthttp
from providers.base import (
    DEFAULT_TIMEOUT_SECONDS,
    ChangedFiles,
    GitProvider,
    GitSource,
    InvalidSource,
    MissingBranch,
    NotFound,
    redact,
)
from providers.failures import Subject, no_default_branch

_BRANCHES = "refs/heads/"
_HEAD = "HEAD"


def parse_source(url: str, *, base_url: str = "", project_id: str = "",
                 auth_type: str = "") -> GitSource:
    """The clone URL itself names the repository; it must be http(s)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidSource(f"URL {redact(url)!r} is not an http(s) URL: the git repo-type reads "
                            "repositories over HTTP(S) only, not ssh: write the https clone URL, "
                            "e.g. https://git.example.com/OWNER/REPO.git")
    try:
        _ = parts.port  # a port that is not a number, or past 65535, raises here
    except ValueError:
        raise InvalidSource(f"URL {redact(url)!r} has an invalid port: write the https clone URL, "
                            "e.g. https://git.example.com:8443/OWNER/REPO.git") from None
    clone_url = normalise(url)
    return GitSource(repo_type="git", server="", repository=clone_url, clone_url=clone_url)


def normalise(url: str) -> str:
    """The URL with its scheme and host in lower case, without trailing slashes or fragment."""
    parts = urlsplit(url.strip())
    userinfo, at, host = parts.netloc.rpartition("@")
    return parts._replace(scheme=parts.scheme.lower(), netloc=f"{userinfo}{at}{host.lower()}",
                          path=parts.path.rstrip("/"), fragment="").geturl()


class Provider(GitProvider):
    """One smart HTTP client per repository, reused across polls."""

    def __init__(self, source: GitSource, token: str | None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(source, token, timeout)
        self._remote = smarthttp.Remote(source.clone_url or source.repository, token, timeout)
        self._history = history.Remote(source.clone_url or source.repository, token, timeout)

    def head(self, branch: str) -> str:
        subject = Subject(self.source, branch)
        ref = self._remote.ref(_BRANCHES + branch, subject)
        if ref is None:
            raise MissingBranch(f"{subject}: the repository has no such branch")
        return ref.oid

    def default_branch(self) -> str:
        subject = Subject(self.source)
        head = self._remote.ref(_HEAD, subject, symrefs=True)
        if head is None:
            raise no_default_branch(subject)
        if not head.symref_target.startswith(_BRANCHES):
            raise NotFound(f"{subject}: the server does not tell which branch HEAD points to; "
                           "name the branch in the Function")
        return head.symref_target.removeprefix(_BRANCHES)

    def changed_files(self, base: str, head: str) -> ChangedFiles:
        return self._history.changed_files(base, head, Subject(self.source))

    def close(self) -> None:
        self._remote.close()
        self._history.close()
