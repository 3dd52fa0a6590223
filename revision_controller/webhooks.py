"""Webhook deliveries from GitHub, GitLab, Gitee and registries: is it signed with our secret,
and what does it announce. Pure: no I/O; the receiver does the HTTP.

Each provider is one `Hook` behind the same two questions, the way `providers/`
keeps each source of truth behind one interface.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from providers import InvalidSource, parse_reference
from revision_controller.announcements import Announcement, BranchPush, Ignored, ImagePush, Repository, repository_of

BRANCH_PREFIX = "refs/heads/"
GITEE_SIGNATURE_MAX_AGE_SECONDS = 3600.0


class BadPayload(Exception):
    """The body is not the JSON the provider sends; the message says what is wrong."""


@dataclass(frozen=True)
class Delivery:
    """One request as it arrived: header names in lower case, the raw body."""

    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


Outcome = list[Announcement] | Ignored


class Hook(abc.ABC):
    """One provider's webhooks."""

    provider: str

    @abc.abstractmethod
    def authentic(self, delivery: Delivery, secret: bytes, now: float) -> bool:
        """Whether the delivery proves it knows the secret. Constant time in the secret."""

    @abc.abstractmethod
    def announce(self, delivery: Delivery) -> Outcome:
        """What an authentic delivery announces; BadPayload when the body is not what it should be."""


class GitHubHook(Hook):
    provider = "github"

    def authentic(self, delivery: Delivery, secret: bytes, now: float) -> bool:
        signature = delivery.header("X-Hub-Signature-256").removeprefix("sha256=")
        expected = hmac.new(secret, delivery.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(signature.encode(), expected.encode())

    def announce(self, delivery: Delivery) -> Outcome:
        event = delivery.header("X-GitHub-Event")
        if event != "push":
            return Ignored(f"GitHub event {event[:50]!r}")
        payload = read_json(delivery.body)
        repository = section(payload, "repository")
        urls = fields(repository, "clone_url", "ssh_url", "git_url", "html_url", "svn_url")
        return as_list(branch_push(payload, urls, repository.get("default_branch")))


class GitLabHook(Hook):
    provider = "gitlab"

    def authentic(self, delivery: Delivery, secret: bytes, now: float) -> bool:
        return hmac.compare_digest(delivery.header("X-Gitlab-Token").encode(), secret)

    def announce(self, delivery: Delivery) -> Outcome:
        event = delivery.header("X-Gitlab-Event")
        if event not in ("Push Hook", "System Hook"):
            return Ignored(f"GitLab event {event[:50]!r}")
        payload = read_json(delivery.body)
        if payload.get("object_kind", "push") != "push":
            return Ignored(f"GitLab {str(payload.get('object_kind'))[:50]!r} event")
        project, repository = section(payload, "project"), section(payload, "repository")
        urls = [*fields(project, "web_url", "git_http_url", "git_ssh_url"),
                *fields(repository, "url", "homepage", "git_http_url", "git_ssh_url")]
        number = project.get("id", payload.get("project_id"))
        project_id = _project_id(number, project.get("web_url") or repository.get("homepage"))
        return as_list(branch_push(payload, urls, project.get("default_branch"), project_id))


def _project_id(number: Any, web_url: Any) -> Repository | None:
    """The project by id, as a Function naming it by `project-id` subscribes to it."""
    web = repository_of(web_url) if isinstance(web_url, str) else None
    if web is None or not isinstance(number, int) or isinstance(number, bool):
        return None
    return Repository(web.host, f"#{number}")


class GiteeHook(Hook):
    provider = "gitee"

    def authentic(self, delivery: Delivery, secret: bytes, now: float) -> bool:
        token, timestamp = delivery.header("X-Gitee-Token").encode(), delivery.header("X-Gitee-Timestamp")
        if not timestamp:
            return hmac.compare_digest(token, secret)
        if not timestamp.isdigit() or abs(now - int(timestamp) / 1000) > GITEE_SIGNATURE_MAX_AGE_SECONDS:
            return False
        digest = hmac.new(secret, timestamp.encode() + b"\n" + secret, hashlib.sha256).digest()
        return hmac.compare_digest(token, base64.b64encode(digest))

    def announce(self, delivery: Delivery) -> Outcome:
        event = delivery.header("X-Gitee-Event")
        if event != "Push Hook":
            return Ignored(f"Gitee event {event[:50]!r}")
        payload = read_json(delivery.body)
        repository = section(payload, "repository") or section(payload, "project")
        urls = fields(repository, "clone_url", "git_http_url", "ssh_url", "git_ssh_url", "html_url", "url")
        return as_list(branch_push(payload, urls, repository.get("default_branch")))


class RegistryHook(Hook):
    """The CNCF distribution registry's notifications, and Harbor's webhooks."""

    provider = "registry"

    def authentic(self, delivery: Delivery, secret: bytes, now: float) -> bool:
        return hmac.compare_digest(delivery.header("Authorization").encode(), b"Bearer " + secret)

    def announce(self, delivery: Delivery) -> Outcome:
        payload = read_json(delivery.body)
        if "events" in payload:
            return _distribution_pushes(payload) or Ignored("no push of a tag")
        if payload.get("type") == "PUSH_ARTIFACT":
            return _harbor_pushes(payload) or Ignored("no push of a tag")
        raise BadPayload("neither a distribution notification envelope nor a Harbor event")


def _distribution_pushes(payload: dict[str, Any]) -> list[Announcement]:
    events = payload["events"]
    if not isinstance(events, list):
        raise BadPayload("'events' is not a list")
    pushes: list[Announcement] = []
    for event in events:
        if not isinstance(event, dict) or event.get("action") != "push":
            continue
        target, request = section(event, "target"), section(event, "request")
        repository, tag, host = target.get("repository"), target.get("tag"), request.get("host")
        if isinstance(repository, str) and isinstance(tag, str) and tag and isinstance(host, str):
            pushes.extend(_image_push(f"{host}/{repository}:{tag}"))
    return pushes


def _harbor_pushes(payload: dict[str, Any]) -> list[Announcement]:
    resources = section(payload, "event_data").get("resources")
    if not isinstance(resources, list):
        raise BadPayload("a Harbor event without 'event_data.resources'")
    pushes: list[Announcement] = []
    for resource in resources:
        url = resource.get("resource_url") if isinstance(resource, dict) else None
        if isinstance(url, str) and resource.get("tag"):
            pushes.extend(_image_push(url))
    return pushes


def _image_push(text: str) -> list[ImagePush]:
    try:
        reference = parse_reference(text)
    except (InvalidSource, ValueError):
        return []
    return [ImagePush(reference.registry, reference.repository, reference.tag)]


HOOKS: dict[str, Hook] = {hook.provider: hook for hook in (GitHubHook(), GitLabHook(), GiteeHook(),
                                                           RegistryHook())}


def read_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; BadPayload for anything else, however deep or malformed."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise BadPayload(f"the body is not JSON: {str(error)[:200]}") from None
    if not isinstance(value, dict):
        raise BadPayload("the body is not a JSON object")
    return value


def branch_push(payload: dict[str, Any], urls: Iterable[Any], default_branch: Any,
                project_id: Repository | None = None) -> BranchPush | Ignored:
    """A push as GitHub, GitLab and Gitee describe it: `ref` and the repository's URLs."""
    ref = payload.get("ref")
    if not isinstance(ref, str):
        raise BadPayload("a push event without a 'ref'")
    if not ref.startswith(BRANCH_PREFIX):
        return Ignored(f"a push to {ref[:100]!r}, not to a branch")
    repositories = {name for url in urls if isinstance(url, str) and (name := repository_of(url))}
    if project_id is not None:
        repositories.add(project_id)
    if not repositories:
        raise BadPayload("a push event that names no repository URL")
    default = default_branch if isinstance(default_branch, str) else ""
    return BranchPush(frozenset(repositories), ref.removeprefix(BRANCH_PREFIX), default)


def as_list(outcome: BranchPush | Ignored) -> Outcome:
    return outcome if isinstance(outcome, Ignored) else [outcome]


def section(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def fields(values: dict[str, Any], *keys: str) -> list[Any]:
    return [values.get(key) for key in keys]
