"""Sources of truth, one module each, behind `providers.base.GitProvider`."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

from providers import git, gitee, github, gitlab, registry
from providers.base import (
    DEFAULT_TIMEOUT_SECONDS,
    ChangedFiles,
    GitProvider,
    GitSource,
    ImageProvider,
    ImageReference,
    InvalidSource,
    NotFound,
    ProviderError,
    RateLimit,
    RegistryAuth,
    Throttled,
    Unauthorized,
    Unavailable,
    redact,
)
from providers.registry import auth_for, parse_reference


class _GitHost(Protocol):
    """What each git provider module offers."""

    @property
    def Provider(self) -> type[GitProvider]: ...

    def parse_source(self, url: str, *, base_url: str = ..., project_id: str = ...,
                     auth_type: str = ...) -> GitSource: ...


_MODULES: dict[str, _GitHost] = {"github": github, "gitlab": gitlab, "gitee": gitee, "git": git}

REPO_TYPES: tuple[str, ...] = tuple(_MODULES)
# Repository URLs, base URLs and project paths are far shorter.
MAX_LOCATION_CHARACTERS = 1000


def parse_source(repo_type: str, url: str, *, base_url: str = "", project_id: str = "",
                 auth_type: str = "") -> GitSource:
    """The normalised source a Function's URL and parameters name. Pure: no I/O.

    Raises InvalidSource with a message naming the bad value and what to do."""
    module = _MODULES.get(repo_type)
    if module is None:
        raise InvalidSource(f"unknown repo-type {repo_type!r}: use one of {', '.join(REPO_TYPES)}")
    for name, value in (("the repository URL", url), ("base-url", base_url), ("project-id", project_id)):
        _check_location(name, value)
    try:
        return module.parse_source(url, base_url=base_url, project_id=project_id, auth_type=auth_type)
    except ValueError as error:  # urllib's own, e.g. "Invalid IPv6 URL" for an unbalanced bracket
        raise InvalidSource(f"URL {redact(url)!r} or base-url {redact(base_url)!r} cannot be read "
                            f"({error}): write the repository's https URL, e.g. "
                            "https://github.com/OWNER/REPO") from None


def _check_location(name: str, value: str) -> None:
    """Refuse, without quoting it, text that no repository location holds, before it is parsed
    and quoted in messages."""
    if len(value) > MAX_LOCATION_CHARACTERS:
        raise InvalidSource(f"{name} is {len(value)} characters long, more than a repository's location "
                            f"takes ({MAX_LOCATION_CHARACTERS}): write e.g. https://github.com/OWNER/REPO")
    if not value.isprintable():
        raise InvalidSource(f"{name} holds line breaks or other control characters: write it on one "
                            f"line, e.g. https://github.com/OWNER/REPO")


def reads_over_git(source: GitSource, token: str | None) -> bool:
    """Whether the repository is read over git smart HTTP rather than the host's REST API.

    Without a token a public repository is read the way `git ls-remote` reads
    it: one small request per poll, outside the REST API's rate limits (60
    requests an hour per address on GitHub)."""
    return source.repo_type == "git" or (not token and bool(source.clone_url))


def endpoint(source: GitSource, token: str | None) -> str:
    """The host (and port) the provider for `source` sends its requests to."""
    url = source.clone_url or source.repository if reads_over_git(source, token) else source.server
    return urlsplit(url).netloc.rpartition("@")[2].lower()


def open_provider(source: GitSource, token: str | None,
                  timeout: float = DEFAULT_TIMEOUT_SECONDS) -> GitProvider:
    module = git if reads_over_git(source, token) else _MODULES[source.repo_type]
    return module.Provider(source, token, timeout)


def open_registry(registry_host: str, auth: RegistryAuth | None, insecure: bool,
                  timeout: float = DEFAULT_TIMEOUT_SECONDS) -> ImageProvider:
    return registry.Provider(registry_host, auth, insecure, timeout)


__all__ = ["REPO_TYPES", "ChangedFiles", "GitProvider", "GitSource", "ImageProvider", "ImageReference", "InvalidSource",
           "NotFound", "ProviderError", "RateLimit", "RegistryAuth", "Throttled", "Unauthorized",
           "Unavailable", "auth_for", "endpoint", "open_provider", "open_registry", "parse_reference",
           "parse_source", "reads_over_git"]
