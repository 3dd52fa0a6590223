"""Reading a repository's location out of the URL a Function gives.

GitHub, GitLab and Gitee accept the same spellings of a clone URL; this module
is the one place that understands them. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from providers.base import InvalidSource, redact

# git@host:owner/repo.git, the scp-like form ssh clone URLs take.
_SCP_LIKE = re.compile(r"^(?P<user>[^@/\s]+)@(?P<host>[^:/\s]+):(?P<path>[^\s]+)$")
_PATH_SEGMENT = re.compile(r"^[\w.+-]+$")


@dataclass(frozen=True)
class RepositoryURL:
    """A clone URL taken apart: where the web server is, and the repository path."""

    scheme: str
    host: str
    port: int | None
    path: str
    suffix: str = ""  # ".git" where the URL ended with it

    @property
    def origin(self) -> str:
        """The web server's origin; ssh URLs name the same host over https."""
        if self.scheme in ("http", "https"):
            return f"{self.scheme}://{_netloc(self.host, self.port)}"
        return f"https://{_netloc(self.host, None)}"

    @property
    def segments(self) -> list[str]:
        return self.path.split("/")


def parse_repository_url(url: str, *, example: str) -> RepositoryURL:
    """Split a clone URL (https, http, ssh:// or git@host:path) into host and path.

    The path loses its slashes at either end and a trailing `.git`. `example`
    is shown to the user when the URL cannot be read."""
    text = url.strip()
    scp = _SCP_LIKE.match(text)
    if scp and "://" not in text:
        return _repository_url("ssh", scp["host"], None, scp["path"], url, example)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "ssh") or not parts.hostname:
        raise InvalidSource(f"cannot read a repository from URL {redact(url)!r}: write it as {example}")
    port = _port(parts, f"URL {redact(url)!r}", example)
    return _repository_url(parts.scheme, parts.hostname, port, parts.path, url, example)


def _repository_url(scheme: str, host: str, port: int | None, path: str,
                    url: str, example: str) -> RepositoryURL:
    path = path.strip("/")
    suffix = ".git" if path.endswith(".git") else ""
    path = path.removesuffix(".git").strip("/")
    if not is_repository_path(path):
        raise InvalidSource(f"URL {redact(url)!r} does not name a repository: write it as {example}")
    return RepositoryURL(scheme=scheme, host=host.lower(), port=port, path=path, suffix=suffix)


def clone_url(origin: str, path: str) -> str:
    """The smart HTTP URL `origin/path.git`, the form GitHub, GitLab and Gitee all serve.

    `origin` may carry a path of its own (a server under a relative URL root);
    its host is lowercased and any credentials in it dropped."""
    parts = urlsplit(origin.rstrip("/"))
    netloc = _netloc((parts.hostname or "").lower(), parts.port)
    return f"{parts.scheme}://{netloc}{parts.path}/{path.strip('/')}.git"


def _netloc(host: str, port: int | None) -> str:
    """`host:port` as a URL writes it: an IPv6 address in brackets."""
    bracketed = f"[{host}]" if ":" in host else host
    return f"{bracketed}:{port}" if port else bracketed


def normalise_clone_url(url: str, *, example: str) -> str:
    """Any spelling of a clone URL as its smart HTTP URL, for any git server.

    ssh forms become https, the host is lowercased, credentials and trailing
    slashes go. `.git` stays only where the URL has it: a plain git server
    need not answer to both names."""
    parsed = parse_repository_url(url, example=example)
    return f"{parsed.origin}/{parsed.path}{parsed.suffix}"


def is_repository_path(path: str) -> bool:
    """Whether `path` is slash-separated names that are safe to put into an API URL."""
    segments = path.split("/")
    return bool(path) and all(_PATH_SEGMENT.match(s) and s not in (".", "..") for s in segments)


def owner_and_repo(url: str, *, example: str) -> tuple[RepositoryURL, str]:
    """The URL and its `owner/repo`, for hosts whose repositories sit exactly two levels deep."""
    parsed = parse_repository_url(url, example=example)
    if len(parsed.segments) != 2:
        raise InvalidSource(f"URL {redact(url)!r} names {parsed.path!r}, not OWNER/REPO: "
                            f"write it as {example}")
    return parsed, parsed.path


def normalise_base_url(base_url: str, *, example: str) -> str:
    """A base URL without surrounding whitespace or trailing slashes."""
    text = base_url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSource(f"base-url {redact(base_url)!r} is not an http(s) URL: write it as {example}")
    _port(parts, f"base-url {redact(base_url)!r}", example)
    return text


def _port(parts: SplitResult, what: str, example: str) -> int | None:
    """The URL's port; urllib reads it only when asked, and fails then."""
    try:
        return parts.port
    except ValueError:
        raise InvalidSource(f"{what} has an invalid port: write it as {example}") from None
