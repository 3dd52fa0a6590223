"""Webhook deliveries: signatures and what they announce, per provider. Pure: no servers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from revision_controller.announcements import BranchPush, Ignored, ImagePush, Repository
from revision_controller.webhooks import HOOKS, BadPayload, Delivery

SECRET = b"hook-secret"
NOW = 1_800_000_000.0


def delivery(headers: dict[str, str], payload: Any) -> Delivery:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Delivery({name.lower(): value for name, value in headers.items()}, body)


def github_push(ref: str = "refs/heads/main") -> dict[str, Any]:
    return {"ref": ref, "after": "1" * 40,
            "repository": {"full_name": "Acme/App", "default_branch": "main",
                           "clone_url": "https://github.com/Acme/App.git", "ssh_url": "git@github.com:Acme/App.git",
                           "git_url": "git://github.com/Acme/App.git", "html_url": "https://github.com/Acme/App",
                           "svn_url": "https://github.com/Acme/App"}}


def signed(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


ACME = Repository("github.com", "acme/app")


def test_github_signature_is_the_hmac_of_the_raw_body() -> None:
    body = json.dumps(github_push()).encode()
    hook = HOOKS["github"]
    assert hook.authentic(delivery({"X-Hub-Signature-256": signed(body)}, body), SECRET, NOW)
    assert not hook.authentic(delivery({"X-Hub-Signature-256": signed(body, b"other")}, body), SECRET, NOW)
    assert not hook.authentic(delivery({"X-Hub-Signature-256": signed(body)}, body + b" "), SECRET, NOW)
    assert not hook.authentic(delivery({}, body), SECRET, NOW)


def test_github_push_names_the_repository_in_every_url_form_and_the_branch() -> None:
    (push,) = HOOKS["github"].announce(delivery({"X-GitHub-Event": "push"}, github_push()))
    assert push == BranchPush(frozenset({ACME}), "main", "main")


@pytest.mark.parametrize("event, payload", [("ping", {"zen": "Keep it simple."}),
                                            ("push", github_push("refs/tags/v1.0")),
                                            ("issues", {"action": "opened"})])
def test_github_ping_tag_pushes_and_other_events_ask_for_nothing(event: str, payload: Any) -> None:
    assert isinstance(HOOKS["github"].announce(delivery({"X-GitHub-Event": event}, payload)), Ignored)


@pytest.mark.parametrize("body", [b"not json", b"[1]", b"[" * 100_000, json.dumps({"ref": 3}).encode(),
                                  json.dumps({"ref": "refs/heads/main", "repository": []}).encode()])
def test_a_body_that_is_not_a_push_is_a_bad_payload(body: bytes) -> None:
    with pytest.raises(BadPayload):
        HOOKS["github"].announce(delivery({"X-GitHub-Event": "push"}, body))


def gitlab_push(ref: str = "refs/heads/main") -> dict[str, Any]:
    return {"object_kind": "push", "ref": ref, "project_id": 15,
            "project": {"id": 15, "web_url": "https://gitlab.example.com/group/sub/app",
                        "git_http_url": "https://gitlab.example.com/group/sub/app.git",
                        "git_ssh_url": "git@gitlab.example.com:group/sub/app.git", "default_branch": "main"},
            "repository": {"url": "git@gitlab.example.com:group/sub/app.git",
                           "homepage": "https://gitlab.example.com/group/sub/app"}}


def test_gitlab_token_is_compared_with_the_secret() -> None:
    hook = HOOKS["gitlab"]
    assert hook.authentic(delivery({"X-Gitlab-Token": "hook-secret"}, b"{}"), SECRET, NOW)
    assert not hook.authentic(delivery({"X-Gitlab-Token": "hook-secre"}, b"{}"), SECRET, NOW)
    assert not hook.authentic(delivery({}, b"{}"), SECRET, NOW)


def test_gitlab_push_names_the_project_by_path_and_by_id() -> None:
    (push,) = HOOKS["gitlab"].announce(delivery({"X-Gitlab-Event": "Push Hook"}, gitlab_push()))
    assert push == BranchPush(frozenset({Repository("gitlab.example.com", "group/sub/app"),
                                         Repository("gitlab.example.com", "#15")}), "main", "main")
    tag = delivery({"X-Gitlab-Event": "Tag Push Hook"}, gitlab_push("refs/tags/v1"))
    assert isinstance(HOOKS["gitlab"].announce(tag), Ignored)


def gitee_signature(timestamp: str, secret: bytes = SECRET) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"\n" + secret, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_gitee_token_is_the_secret_or_its_signature_over_a_recent_timestamp() -> None:
    hook, fresh = HOOKS["gitee"], str(int(NOW * 1000) - 60_000)
    stale = str(int(NOW * 1000) - 3_601_000)
    assert hook.authentic(delivery({"X-Gitee-Token": "hook-secret"}, b"{}"), SECRET, NOW)
    assert hook.authentic(delivery({"X-Gitee-Token": gitee_signature(fresh), "X-Gitee-Timestamp": fresh},
                                   b"{}"), SECRET, NOW)
    assert not hook.authentic(delivery({"X-Gitee-Token": gitee_signature(stale), "X-Gitee-Timestamp": stale},
                                       b"{}"), SECRET, NOW)
    assert not hook.authentic(delivery({"X-Gitee-Token": gitee_signature(fresh, b"x"),
                                        "X-Gitee-Timestamp": fresh}, b"{}"), SECRET, NOW)
    assert not hook.authentic(delivery({"X-Gitee-Token": "hook-secret", "X-Gitee-Timestamp": "soon"},
                                       b"{}"), SECRET, NOW)


def test_gitee_push_names_the_repository() -> None:
    payload = {"ref": "refs/heads/dev", "hook_name": "push_hooks",
               "repository": {"clone_url": "https://gitee.com/acme/app.git", "ssh_url": "git@gitee.com:acme/app.git",
                              "html_url": "https://gitee.com/acme/app", "default_branch": "master"}}
    (push,) = HOOKS["gitee"].announce(delivery({"X-Gitee-Event": "Push Hook"}, payload))
    assert push == BranchPush(frozenset({Repository("gitee.com", "acme/app")}), "dev", "master")


def test_registry_bearer_is_the_secret() -> None:
    hook = HOOKS["registry"]
    assert hook.authentic(delivery({"Authorization": "Bearer hook-secret"}, b"{}"), SECRET, NOW)
    assert not hook.authentic(delivery({"Authorization": "Basic hook-secret"}, b"{}"), SECRET, NOW)


def test_registry_envelope_announces_each_pushed_tag() -> None:
    envelope = {"events": [
        {"action": "push", "target": {"repository": "team/app", "tag": "v1", "digest": "sha256:" + "a" * 64},
         "request": {"host": "registry.example.com:5000"}},
        {"action": "push", "target": {"repository": "team/app", "digest": "sha256:" + "b" * 64},
         "request": {"host": "registry.example.com:5000"}},
        {"action": "pull", "target": {"repository": "team/app", "tag": "v1"},
         "request": {"host": "registry.example.com:5000"}}]}
    pushes = HOOKS["registry"].announce(delivery({}, envelope))
    assert pushes == [ImagePush("registry.example.com:5000", "team/app", "v1")]
    assert isinstance(HOOKS["registry"].announce(delivery({}, {"events": []})), Ignored)


def test_harbor_push_artifact_announces_the_resource() -> None:
    payload = {"type": "PUSH_ARTIFACT", "occur_at": 1,
               "event_data": {"resources": [{"tag": "latest", "resource_url": "harbor.example.com/library/app:latest",
                                             "digest": "sha256:" + "c" * 64}],
                              "repository": {"repo_full_name": "library/app"}}}
    assert HOOKS["registry"].announce(delivery({}, payload)) == [
        ImagePush("harbor.example.com", "library/app", "latest")]


def test_a_registry_body_of_neither_shape_is_a_bad_payload() -> None:
    with pytest.raises(BadPayload):
        HOOKS["registry"].announce(delivery({}, {"kind": "other"}))

