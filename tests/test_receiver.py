"""The webhook receiver over real HTTP on loopback: answers, limits and secrets."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from revision_controller.announcements import Announcement, BranchPush, Repository
from revision_controller.receiver import MAX_BODY_BYTES, Reception, SecretFile, WebhookReceiver

SECRET = "hook-secret"
PUSH = {"ref": "refs/heads/main",
        "repository": {"clone_url": "https://github.com/acme/app.git", "default_branch": "main"}}


class Recorder:
    def __init__(self) -> None:
        self.announced: list[tuple[str, list[Announcement]]] = []
        self.outcomes: list[tuple[str, str]] = []

    def announce(self, provider: str, announcements: list[Announcement], received: float) -> int:
        self.announced.append((provider, announcements))
        return 3

    def outcome(self, provider: str, outcome: str) -> None:
        self.outcomes.append((provider, outcome))


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text(f"  {SECRET}\n")
    return path


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def receiver(secret_file: Path, recorder: Recorder) -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(("127.0.0.1", 0), Reception(SecretFile(secret_file), recorder.announce),
                             recorder.outcome)
    server.start()
    yield server
    server.stop()


def post(receiver: WebhookReceiver, path: str, body: bytes, headers: dict[str, str],
         method: str = "POST") -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def github(body: bytes, secret: str = SECRET, event: str = "push") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": event, "X-Hub-Signature-256": f"sha256={digest}"}


def test_an_authentic_push_is_accepted_with_the_number_of_targets(receiver: WebhookReceiver,
                                                                  recorder: Recorder) -> None:
    body = json.dumps(PUSH).encode()
    assert post(receiver, "/hooks/github", body, github(body)) == (202, {"targets": 3})
    assert recorder.announced == [("github", [BranchPush(frozenset({Repository("github.com", "acme/app")}),
                                                         "main", "main")])]
    assert recorder.outcomes == [("github", "accepted")]


@pytest.mark.parametrize("headers", [{}, {"X-Hub-Signature-256": "sha256=00"}, github(b"{}", "other")])
def test_a_missing_or_wrong_signature_is_401_and_announces_nothing(receiver: WebhookReceiver, recorder: Recorder,
                                                                   headers: dict[str, str]) -> None:
    code, answer = post(receiver, "/hooks/github", json.dumps(PUSH).encode(), {"X-GitHub-Event": "push", **headers})
    assert code == 401 and answer == {"error": "the signature is missing or wrong"}
    assert recorder.announced == [] and recorder.outcomes == [("github", "unauthorized")]


def test_ping_is_200_and_not_json_is_400(receiver: WebhookReceiver, recorder: Recorder) -> None:
    ping = json.dumps({"zen": "hi"}).encode()
    assert post(receiver, "/hooks/github", ping, github(ping, event="ping"))[0] == 200
    junk = b"{" * 10_000
    assert post(receiver, "/hooks/github", junk, github(junk))[0] == 400
    assert recorder.announced == []


def test_other_paths_are_404_and_other_methods_405(receiver: WebhookReceiver) -> None:
    assert post(receiver, "/hooks/bitbucket", b"{}", {})[0] == 404
    assert post(receiver, "/metrics", b"{}", {})[0] == 404
    assert post(receiver, "/hooks/github", b"", {}, method="GET")[0] == 405
    assert post(receiver, "/hooks/github", b"{}", {}, method="PUT")[0] == 405


def test_a_body_above_25_mib_is_413_without_being_read(receiver: WebhookReceiver, recorder: Recorder) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    connection.putrequest("POST", "/hooks/gitlab")
    connection.putheader("X-Gitlab-Token", SECRET)
    connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    connection.endheaders()
    assert connection.getresponse().status == 413
    connection.close()
    assert recorder.outcomes == [("gitlab", "too_large")]


def test_the_secret_is_read_again_when_its_file_changes(receiver: WebhookReceiver, secret_file: Path) -> None:
    body = json.dumps(PUSH).encode()
    secret_file.write_text("rotated-secret-value")
    assert post(receiver, "/hooks/github", body, github(body))[0] == 401
    assert post(receiver, "/hooks/github", body, github(body, "rotated-secret-value"))[0] == 202


def test_without_a_secret_every_delivery_is_refused(receiver: WebhookReceiver, secret_file: Path) -> None:
    secret_file.write_text("\n")
    assert post(receiver, "/hooks/gitlab", b"{}", {"X-Gitlab-Token": "", "X-Gitlab-Event": "Push Hook"})[0] == 401
    secret_file.unlink()
    assert post(receiver, "/hooks/gitlab", b"{}", {"X-Gitlab-Token": "x", "X-Gitlab-Event": "Push Hook"})[0] == 401
