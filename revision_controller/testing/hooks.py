"""Webhook deliveries as GitHub, GitLab, Gitee and the distribution registry send them, for tests
and benchmarks of the receiver: the payload shapes and signature headers of each sender."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

JSON = dict[str, Any]


@dataclass(frozen=True)
class Push:
    """A push to a branch (or, with `ref`, any ref) of a repository at `web_url` (https://host/owner/repo);
    `modified` are the files its head commit claims to change (GitHub lists them per commit)."""

    web_url: str
    after: str
    before: str = "0" * 40
    branch: str = "main"
    default_branch: str = "main"
    project_id: int = 1
    ref: str = ""
    modified: tuple[str, ...] = ()

    @property
    def full_ref(self) -> str:
        return self.ref or f"refs/heads/{self.branch}"

    @property
    def clone_url(self) -> str:
        return f"{self.web_url}.git"

    @property
    def ssh_url(self) -> str:
        parts = urlsplit(self.web_url)
        return f"git@{parts.hostname}:{parts.path.strip('/')}.git"

    @property
    def full_name(self) -> str:
        return urlsplit(self.web_url).path.strip("/")


@dataclass(frozen=True)
class Delivery:
    provider: str
    headers: dict[str, str]
    body: bytes


def github(push: Push, secret: str, event: str = "push") -> Delivery:
    payload = {"ref": push.full_ref, "before": push.before, "after": push.after, "created": False,
               "deleted": False, "forced": False, "commits": [_github_commit(push)],
               "head_commit": _github_commit(push),
               "repository": {"full_name": push.full_name, "name": push.full_name.rsplit("/", 1)[-1],
                              "html_url": push.web_url, "url": push.web_url, "clone_url": push.clone_url,
                              "git_url": push.clone_url.replace("https://", "git://", 1),
                              "ssh_url": push.ssh_url, "svn_url": push.web_url,
                              "default_branch": push.default_branch, "master_branch": push.default_branch}}
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return Delivery("github", {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
                               "X-Hub-Signature-256": signature, "User-Agent": "GitHub-Hookshot/standin"}, body)


def _github_commit(push: Push) -> JSON:
    return {"id": push.after, "added": [], "removed": [], "modified": list(push.modified)}


def gitlab(push: Push, secret: str) -> Delivery:
    tag = push.full_ref.startswith("refs/tags/")
    project = {"id": push.project_id, "web_url": push.web_url, "git_http_url": push.clone_url,
               "git_ssh_url": push.ssh_url, "path_with_namespace": push.full_name,
               "default_branch": push.default_branch}
    payload: JSON = {"object_kind": "tag_push" if tag else "push", "event_name": "tag_push" if tag else "push",
               "ref": push.full_ref, "before": push.before, "after": push.after, "checkout_sha": push.after,
               "project_id": push.project_id, "project": project, "commits": [], "total_commits_count": 0,
               "repository": {"name": push.full_name, "url": push.ssh_url, "homepage": push.web_url,
                              "git_http_url": push.clone_url, "git_ssh_url": push.ssh_url}}
    return Delivery("gitlab", {"X-Gitlab-Event": "Tag Push Hook" if tag else "Push Hook",
                               "X-Gitlab-Token": secret}, json.dumps(payload).encode())


def gitee(push: Push, secret: str, signed: bool = True, now: float | None = None) -> Delivery:
    repository = {"full_name": push.full_name, "html_url": push.web_url, "url": push.web_url,
                  "clone_url": push.clone_url, "git_http_url": push.clone_url, "ssh_url": push.ssh_url,
                  "git_ssh_url": push.ssh_url, "default_branch": push.default_branch}
    tag = push.full_ref.startswith("refs/tags/")
    payload = {"hook_name": "tag_push_hooks" if tag else "push_hooks", "ref": push.full_ref,
               "before": push.before, "after": push.after, "repository": repository, "project": repository}
    headers = {"X-Gitee-Event": "Tag Push Hook" if tag else "Push Hook", "X-Gitee-Token": secret}
    if signed:
        timestamp = str(int((time.time() if now is None else now) * 1000))
        digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
        headers |= {"X-Gitee-Token": base64.b64encode(digest).decode(), "X-Gitee-Timestamp": timestamp}
    return Delivery("gitee", headers, json.dumps(payload).encode())


def registry(host: str, repository: str, tag: str, digest: str, secret: str) -> Delivery:
    """A CNCF distribution registry's notification envelope for one pushed manifest."""
    event = {"id": str(uuid.uuid4()), "timestamp": "2026-01-01T00:00:00Z", "action": "push",
             "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                        "repository": repository, "tag": tag,
                        "url": f"http://{host}/v2/{repository}/manifests/{digest}"},
             "request": {"id": str(uuid.uuid4()), "host": host, "method": "PUT", "useragent": "standin"},
             "actor": {}, "source": {"addr": "registry:5000"}}
    return Delivery("registry", {"Authorization": f"Bearer {secret}",
                                 "Content-Type": "application/vnd.docker.distribution.events.v2+json"},
                    json.dumps({"events": [event]}).encode())


def deliver(url: str, delivery: Delivery, timeout: float = 10.0) -> tuple[int, JSON]:
    """POST the delivery to `url` (the receiver's base URL); its status and JSON answer."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        connection.request("POST", f"{parts.path.rstrip('/')}/hooks/{delivery.provider}", body=delivery.body,
                           headers={"Content-Type": "application/json", **delivery.headers})
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}
    finally:
        connection.close()
