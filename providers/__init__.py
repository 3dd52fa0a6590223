"""Sources of truth, one module each, behind `providers.base.GitProvider`."""

from __future__ import annotations

from types import ModuleType

from providers import gitee, git, github, gitlab, registry
from providers.base import (DEFAULT_TIMEOUT_SECONDS, GitProvider, GitSource, ImageProvider,
                            ImageReference, InvalidSource, NotFound, ProviderError, RegistryAuth,
                            Unauthorized, Unavailable)
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
    return module.parse_source(url, base_url=base_url, project_id=project_id, auth_type=auth_type)


def open_provider(source: GitSource, token: str | None,
                  timeout: float = DEFAULT_TIMEOUT_SECONDS) -> GitProvider:
    return _MODULES[source.repo_type].Provider(source, token, timeout)


def open_registry(registry_host: str, auth: RegistryAuth | None, insecure: bool,
                  timeout: float = DEFAULT_TIMEOUT_SECONDS) -> ImageProvider:
    return registry.Provider(registry_host, auth, insecure, timeout)


__all__ = ["REPO_TYPES", "GitProvider", "GitSource", "ImageProvider", "ImageReference", "InvalidSource",
           "NotFound", "ProviderError", "RegistryAuth", "Unauthorized", "Unavailable", "auth_for",
           "open_provider", "open_registry", "parse_reference", "parse_source"]
