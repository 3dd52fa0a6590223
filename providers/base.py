"""The one small interface every source of truth sits behind.

A provider answers three questions about one git repository: what is the head
commit of a branch now, which branch is the default one, and which files changed
from one commit to a newer one. Everything that
differs between GitHub, GitLab, Gitee and a plain git server stays inside
its module; the daemon only sees `GitSource`, `GitProvider` and the errors.
"""

from __future__ import annotations

import abc
import functools
import os
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import certifi

DEFAULT_TIMEOUT_SECONDS = 10.0


@functools.cache
def verifying_tls() -> ssl.SSLContext:
    """The one TLS context every HTTP client verifies servers with.

    Each context loads the whole CA bundle, about 0.8 MiB: one per target's
    client would make 1,000 targets cost 800 MiB. As httpx does, `SSL_CERT_FILE`
    or `SSL_CERT_DIR` name the CAs to trust instead of certifi's (a private CA)."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())


@dataclass(frozen=True)
class GitSource:
    """Where a repository lives, normalised so that equal sources compare equal.

    `server` is the API base URL (for `git`, empty), `repository` the
    provider's own name for the repository: `owner/repo` on GitHub and Gitee,
    the numeric id or `group/sub/project` path on GitLab, the clone URL for
    `git`. `auth_type` is GitLab's token kind and empty elsewhere. `clone_url`
    is the repository's smart HTTP URL, normalised (`https://host/owner/repo.git`),
    through which a repository is read when no token is given; empty when it
    cannot be known (a GitLab project named only by its id).
    """

    repo_type: str
    server: str
    repository: str
    auth_type: str = ""
    clone_url: str = ""

    def describe(self) -> str:
        """For logs and Events: credentials written into a URL are masked."""
        parts = (self.repo_type, redact(self.server), redact(self.repository))
        return " ".join(part for part in parts if part)


def redact(url: str) -> str:
    """The URL without any user or password written into it, safe to show."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # an unbalanced IPv6 bracket: show only what cannot carry a password
        return "(a URL that cannot be read)" if "@" in url else url.strip()
    if "@" not in parts.netloc or not parts.scheme:
        return url.strip()
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"***@{host}").geturl()


class ProviderError(Exception):
    """A provider could not answer. The message is safe to show a user: it
    names what failed and what to do, and never carries a token.

    `permanent` errors (refused credentials, no such repository) will not mend
    by asking again soon; the others are transient."""

    reason = "Error"
    permanent = False


class InvalidSource(ProviderError):
    """The Function's URL or parameters cannot name a repository for this provider."""

    reason = "InvalidSource"
    permanent = True


class Unauthorized(ProviderError):
    """The server refused the credentials (401/403), or needs some and got none."""

    reason = "Unauthorized"
    permanent = True


class NotFound(ProviderError):
    """No such repository or branch (or it is private and no token was given)."""

    reason = "NotFound"
    permanent = True


class MissingBranch(NotFound):
    """The repository exists but the branch does not, or has no commits yet.

    Not permanent: the branch may be pushed any moment, so it is asked for
    again as after a transient error, backing off, rather than ten minutes later."""

    permanent = False


class Unavailable(ProviderError):
    """The server did not answer usefully: timeout, connection error, 5xx, rate limit."""

    reason = "Unavailable"


class Throttled(Unavailable):
    """The server asked for a pause: 429, a secondary rate limit, an exhausted budget.

    `retry_after` is how many seconds to send nothing more to this host, from
    `Retry-After` or the budget's reset time."""

    reason = "RateLimited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RateLimit:
    """What a server's last answer said of the credential's request budget.

    `reset_at` is Unix time, when the budget is refilled."""

    limit: int
    remaining: int
    reset_at: float


@dataclass(frozen=True)
class ChangedFiles:
    """The files that differ from a recorded commit to a newer head, as far as a provider can tell.

    `files` are repository-relative paths without a leading slash; a renamed file is listed under
    its old and its new path. `uncertain` is empty when `files` is the whole list; otherwise it
    says why the provider cannot give it, in words that finish the sentence "rebuilt because ..."
    (the recorded commit is not an ancestor of the head, the server truncated the list), and
    `files` holds what is known."""

    files: tuple[str, ...] = ()
    uncertain: str = ""


class GitProvider(abc.ABC):
    """Answers questions about one repository, reusing one client across polls.

    `rate_limit` is what the server said of the budget in its last answer,
    None where it says nothing (git smart HTTP)."""

    def __init__(self, source: GitSource, token: str | None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.source = source
        self.timeout = timeout
        self.rate_limit: RateLimit | None = None

    @abc.abstractmethod
    def head(self, branch: str) -> str:
        """The full SHA of the newest commit on `branch`."""

    @abc.abstractmethod
    def default_branch(self) -> str:
        """The repository's default branch name."""

    @abc.abstractmethod
    def changed_files(self, base: str, head: str) -> ChangedFiles:
        """The files that changed from commit `base` to commit `head` (both full SHAs).

        A `base` the server does not know, or that is not an ancestor of `head`, is an uncertain
        answer, not an error; a server that cannot be asked raises a ProviderError as `head` does."""

    def close(self) -> None:  # noqa: B027 - a no-op unless the provider holds connections
        """Release connections; the provider is not used afterwards."""


@dataclass(frozen=True)
class ImageReference:
    """An image reference read the way Docker reads it.

    `registry` is the host (and port) requests go to, e.g. `registry-1.docker.io`
    for Docker Hub; `repository` the name on that registry, e.g. `library/nginx`.
    A reference pinned by digest has `digest` set and cannot move.
    """

    registry: str
    repository: str
    tag: str = "latest"
    digest: str = ""

    def describe(self) -> str:
        return f"{self.registry}/{self.repository}" + (f"@{self.digest}" if self.digest else f":{self.tag}")


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one registry, from a dockerconfigjson Secret."""

    username: str
    password: str = field(repr=False)


class ImageProvider(abc.ABC):
    """Answers what digest an image reference points at now, for one registry."""

    def __init__(self, registry: str, auth: RegistryAuth | None, insecure: bool,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.registry = registry
        self.insecure = insecure
        self.timeout = timeout

    @abc.abstractmethod
    def digest(self, reference: ImageReference) -> str:
        """The manifest digest (`sha256:...`) the registry reports for the reference's tag."""

    def close(self) -> None:  # noqa: B027 - a no-op unless the provider holds connections
        """Release connections; the provider is not used afterwards."""
