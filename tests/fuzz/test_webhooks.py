"""Webhook deliveries from anyone: any body and headers get an answer, never an exception.

An unsigned delivery is refused before its body is read; a signed one (its sender knows the
secret, so only its body is in question) is accepted, ignored, or a bad payload."""

from __future__ import annotations

import hashlib
import hmac
import json

from hypothesis import example, given
from hypothesis import strategies as st

from revision_controller.receiver import Reception, SecretFile
from revision_controller.webhooks import HOOKS, Delivery
from tests.fuzz import strategies as s
from tests.fuzz.tally import counted

SECRET = b"fuzz-secret"
SIGNED_ANSWERS = {200, 202, 400}
pushes = st.fixed_dictionaries({"ref": st.one_of(st.text(max_size=40), st.just("refs/heads/main"), s.json_values),
                                "repository": st.dictionaries(st.sampled_from(["clone_url", "ssh_url", "html_url",
                                                                               "default_branch", "url"]),
                                                              st.one_of(s.repository_urls(), s.json_values))},
                               optional={"project": s.json_values, "events": s.json_values, "type": s.json_values,
                                         "event_data": s.json_values, "object_kind": s.json_values})
bodies = st.one_of(st.binary(max_size=2_000), pushes.map(lambda value: json.dumps(value).encode()))


class Secret(SecretFile):
    def __init__(self) -> None:
        pass

    def read(self) -> bytes:
        return SECRET


def reception() -> Reception:
    return Reception(Secret(), lambda provider, announcements, received: len(announcements))


def signed(provider: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return {"github": {"x-hub-signature-256": f"sha256={digest}", "x-github-event": "push"},
            "gitlab": {"x-gitlab-token": SECRET.decode(), "x-gitlab-event": "Push Hook"},
            "gitee": {"x-gitee-token": SECRET.decode(), "x-gitee-event": "Push Hook"},
            "registry": {"authorization": f"Bearer {SECRET.decode()}"}}[provider]


@given(st.sampled_from(sorted(HOOKS)), bodies)
@example("github", b"[" * 100_000)
@example("registry", json.dumps({"events": [{"action": "push", "target": [], "request": 5}]}).encode())
@counted("webhook bodies, signed")
def test_signed_deliveries(provider: str, body: bytes) -> None:
    answer = reception().answer(provider, Delivery(signed(provider, body), body), 0.0)
    assert answer.code in SIGNED_ANSWERS, answer


@given(st.sampled_from(sorted(HOOKS)), st.dictionaries(st.sampled_from(
    ["x-hub-signature-256", "x-gitlab-token", "x-gitee-token", "x-gitee-timestamp", "authorization",
     "x-github-event", "x-gitlab-event", "x-gitee-event"]), st.text(max_size=80)), bodies)
@counted("webhook headers, unsigned")
def test_unsigned_deliveries_are_refused(provider: str, headers: dict[str, str], body: bytes) -> None:
    assert reception().answer(provider, Delivery(headers, body), 1.8e9).code == 401
