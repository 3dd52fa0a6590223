"""Sources of truth, one module each, behind `providers.base.GitProvider`."""

from __future__ import annotations

from types import ModuleType
from urllib.parse import urlsplit

from providers import gitee, git, github, gitlab, registry
from providers.base import (DEFAULT_TIMEOUT_SECONDS, GitProvider, GitSource, ImageProvider,
                            ImageReference, InvalidSource, NotFound, ProviderError, RateLimit,
                            RegistryAuth, Throttled, Unauthorized, Unavailable)
from providers.base import redact
from providers.registry import auth_for, parse_reference

_MODULES: dict[str, ModuleType] = {"github": github, "gitlab": gitlab, "gitee": gitee, "git": git}

REPO_TYPES: tuple[str, ...] = tuple(_MODULES)


def parse_source(repo_type: str, url: str, *, base_url: str = "", project_id: str = "",
                 auth_type: str = "") -> GitSource:
    """The normalised source a Function's URL and parameters name. Pure: no I/O.

    Raises InvalidSource with a message naming the bad value and what to do."""
    module = _MODULES.get(repo_type)
    if module is None:
        raise InvalidSource(f"unknown repo-type {repo_type!r}: use one of {', '.join(REPO_TYPES)}")
    try:
        return module.parse_source(url, base_url=base_url, project_id=project_id, auth_type=auth_type)
    except ValueError as error:  # urllib's own, e.g. "Invalid IPv6 URL" for an unbalanced bracket
        raise InvalidSource(f"URL {redact(url)!r} or base-url {redact(base_url)!r} cannot be read "
                            f"({error}): write the repository's https URL, e.g. "
                            "https://github.com/OWNER/REPO") from None


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


__all__ = ["REPO_TYPES", "GitProvider", "GitSource", "ImageProvider", "ImageReference", "InvalidSource",
           "NotFound", "ProviderError", "RateLimit", "RegistryAuth", "Throttled", "Unauthorized",
           "Unavailable", "auth_for", "endpoint", "open_provider", "open_registry", "parse_reference",
           "parse_source", "reads_over_git"]
