"""What a webhook announces: a branch pushed to a repository, or an image tag pushed to a registry.

Pure: payloads in, announcements out, and which targets an announcement names.
A payload is never trusted for a head or digest; it only says which targets
to poll now.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit

from providers import InvalidSource
from providers.urls import parse_repository_url
from revision_controller.targets import GitTarget, ImageTarget, Target

_URL_EXAMPLE = "https://host/OWNER/REPO"


@dataclass(frozen=True)
class Repository:
    """A repository as every URL form of it names it: host and path, without scheme, port,
    `.git` or case. A GitLab project may be named by its numeric id instead (`path` "#ID")."""

    host: str
    path: str


@dataclass(frozen=True)
class BranchPush:
    repositories: frozenset[Repository]
    branch: str
    default_branch: str = ""


@dataclass(frozen=True)
class ImagePush:
    """A tag pushed, its reference read the way `providers.parse_reference` reads a Function's image."""

    registry: str
    repository: str
    tag: str


@dataclass(frozen=True)
class Ignored:
    """A valid event that asks for nothing: a ping, a tag push, another kind of event."""

    reason: str


Announcement = BranchPush | ImagePush


def repository_of(url: str) -> Repository | None:
    """The repository any clone, ssh or web URL names; None for what is not such a URL."""
    try:
        parsed = parse_repository_url(url, example=_URL_EXAMPLE)
    except (InvalidSource, ValueError):
        return None
    return Repository(parsed.host, parsed.path.lower())


@functools.lru_cache(maxsize=100_000)
def repositories_of(target: GitTarget) -> frozenset[Repository]:
    """Every name under which a push to the target's repository may arrive."""
    source = target.source
    names = {repository_of(url) for url in (source.clone_url, source.repository) if url}
    if source.repo_type == "gitlab" and source.repository.isdigit():
        host = urlsplit(source.server).hostname
        if host:
            names.add(Repository(host.lower(), f"#{source.repository}"))
    return frozenset(name for name in names if name is not None)


def names(announcement: Announcement, target: Target) -> bool:
    """Whether the announcement concerns the target, whatever the target's repo-type."""
    if isinstance(announcement, ImagePush):
        if not isinstance(target, ImageTarget) or target.reference.digest:
            return False
        reference = target.reference
        return (reference.registry, reference.repository, reference.tag) == (
            announcement.registry, announcement.repository, announcement.tag)
    if not isinstance(target, GitTarget):
        return False
    branch = target.branch or announcement.default_branch
    return branch == announcement.branch and bool(repositories_of(target) & announcement.repositories)
