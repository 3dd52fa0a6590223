"""Signed webhooks and the check-now annotation, through the daemon process.

Every Function here polls once an hour: a status that moves within seconds of a
push was moved by the webhook (or the annotation), never by the interval.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from revision_controller.function import GROUP, PLURAL
from revision_controller.params import REQUESTED_AT_ANNOTATION
from revision_controller.testing import ApiServer, hooks
from revision_controller.testing.gitserver import GitServer
from revision_controller.testing.registry import Registry, require_registry
from tests.canary import secret
from tests.e2e.conftest import (
    FIRST_POLL,
    NAMESPACE,
    VERSION,
    WITHIN,
    DaemonProcess,
    create,
    events,
    function_manifest,
    wait_for,
    wait_recorded,
)
from tests.e2e.test_forges import SERVERS, Host, serving
from tests.e2e.test_images import create_with_status, image_function, served_digest
from tests.e2e.test_production import answers, metric, two_replicas

HOOK_SECRET = secret("webhook")
HOURLY = "polling-interval: 1h"
PROMPT = 5.0  # a webhook's poll and patch, with room for a busy machine
LISTENING = re.compile(r"receiving webhooks on [0-9.]+:(?P<port>\d+) ")


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook-secret"
    path.write_text(f"{HOOK_SECRET}\n")
    return path


class Receiving:
    """A daemon with its webhook receiver on the port it chose, as its log says."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        found = wait_for(lambda: LISTENING.search(daemon.output()), 10, "the receiver to listen")
        self.url = f"http://127.0.0.1:{found['port']}"

    def deliver(self, delivery: hooks.Delivery) -> tuple[int, dict]:
        return hooks.deliver(self.url, delivery)


def receiving(start_daemon, secret_file: Path, *flags: str) -> Receiving:
    return Receiving(start_daemon(*webhook_flags(secret_file), *flags))


def webhook_flags(secret_file: Path) -> tuple[str, ...]:
    return ("--webhook-bind-address", "127.0.0.1:0", "--webhook-secret-file", str(secret_file))


def polled(daemon: DaemonProcess, provider: str, times: int = 1) -> bool:
    return (metric(daemon, "revision_controller_polls_total", provider=provider, outcome="success") or 0) >= times


@pytest.fixture(params=sorted(SERVERS))
def host(request: pytest.FixtureRequest) -> Iterator[Host]:
    with serving(request.param) as opened:
        yield opened


def hourly(host: Host) -> str:
    return host.params().replace("polling-interval: 1s", HOURLY)


SIGNED = {"github": hooks.github, "gitlab": hooks.gitlab, "gitee": hooks.gitee}


def test_a_signed_push_is_polled_and_patched_at_once(apiserver: ApiServer, host: Host, functions,
                                                     start_daemon, secret_file: Path) -> None:
    repo = host.forge.create_repository("team/app")
    create(functions, function_manifest("app", host.url("team/app"), hourly(host)), repo.head())
    receiver = receiving(start_daemon, secret_file)
    wait_for(lambda: polled(receiver.daemon, host.kind), FIRST_POLL, "the first poll")
    before = repo.head()
    moved = repo.commit("change", files={"a": "1"})
    push = hooks.Push(host.url("team/app"), moved, before, project_id=repo.id)
    assert receiver.deliver(SIGNED[host.kind](push, HOOK_SECRET)) == (202, {"targets": 1})
    wait_recorded(functions, "app", moved, seconds=PROMPT)
    (changed,) = wait_for(lambda: events(apiserver, "SourceChanged", "app"), PROMPT, "SourceChanged")
    assert "webhook" in changed["message"]
    assert metric(receiver.daemon, "revision_controller_webhooks_total", provider=host.kind,
                  outcome="accepted") == 1


def test_a_wrong_or_missing_signature_is_refused_and_polls_nothing(apiserver: ApiServer, functions,
                                                                   start_daemon, secret_file: Path) -> None:
    with serving("github") as host:
        repo = host.forge.create_repository("team/app")
        create(functions, function_manifest("app", host.url("team/app"), hourly(host)), repo.head())
        receiver = receiving(start_daemon, secret_file)
        wait_for(lambda: polled(receiver.daemon, "github"), FIRST_POLL, "the first poll")
        moved = repo.commit("change", files={"a": "1"})
        forged = hooks.github(hooks.Push(host.url("team/app"), moved), "not-the-secret")
        assert receiver.deliver(forged) == (401, {"error": "the signature is missing or wrong"})
        unsigned = hooks.Delivery("github", {"X-GitHub-Event": "push"}, forged.body)
        assert receiver.deliver(unsigned) == (401, {"error": "the signature is missing or wrong"})
        assert receiver.deliver(hooks.github(hooks.Push(host.url("team/app"), moved), HOOK_SECRET))[0] == 202
        wait_recorded(functions, "app", moved, seconds=PROMPT)
        assert polled(receiver.daemon, "github", times=2) and not polled(receiver.daemon, "github", times=3)
        assert metric(receiver.daemon, "revision_controller_webhooks_total", provider="github",
                      outcome="unauthorized") == 2


def test_an_unwatched_repository_is_accepted_for_no_target_and_a_tag_push_is_ignored(
        apiserver: ApiServer, functions, start_daemon, secret_file: Path) -> None:
    with serving("github") as host:
        receiver = receiving(start_daemon, secret_file)
        other = hooks.Push(host.url("team/nobody-watches"), "1" * 40)
        assert receiver.deliver(hooks.github(other, HOOK_SECRET)) == (202, {"targets": 0})
        tag = hooks.Push(host.url("team/nobody-watches"), "1" * 40, ref="refs/tags/v1.0.0")
        code, answer = receiver.deliver(hooks.github(tag, HOOK_SECRET))
        assert code == 200 and "refs/tags/v1.0.0" in answer["ignored"]


def test_a_github_push_reaches_a_target_polled_as_plain_git(apiserver: ApiServer, gitserver: GitServer, functions,
                                                          start_daemon, secret_file: Path) -> None:
    repo = gitserver.create_repository("mirror", branch="main")
    create(functions, function_manifest("mirror", repo.url, f"repo-type: git\n{HOURLY}"), repo.head("main"))
    receiver = receiving(start_daemon, secret_file)
    wait_for(lambda: gitserver.ls_remote_count("mirror") >= 1, FIRST_POLL, "the first poll")
    moved = repo.commit("change", files={"a": "1"})
    web_url = repo.url.removesuffix(".git")
    assert receiver.deliver(hooks.github(hooks.Push(web_url, moved), HOOK_SECRET)) == (202, {"targets": 1})
    wait_recorded(functions, "mirror", moved, seconds=PROMPT)


@pytest.fixture
def registry() -> Iterator[Registry]:
    require_registry()
    with Registry() as reg:
        yield reg


def test_a_registry_notification_redeploys_the_image(apiserver: ApiServer, registry: Registry, functions,
                                                     start_daemon, secret_file: Path) -> None:
    first = registry.push_image("app", "v1", b"one")
    create_with_status(functions, image_function(
        "served", f"type: image\ninsecure-registry: true\n{HOURLY}", image=registry.reference("app", "v1")),
        {"serving": {"state": "Running", "resourceHash": "abc"}, "revision": {"imageDigest": first}})
    receiver = receiving(start_daemon, secret_file)
    wait_for(lambda: polled(receiver.daemon, "registry"), FIRST_POLL, "the first poll")
    second = registry.push_image("app", "v1", b"two")
    notification = hooks.registry(registry.host, "app", "v1", second, HOOK_SECRET)
    assert receiver.deliver(notification) == (202, {"targets": 1})
    wait_for(lambda: served_digest(functions, "served") == second, PROMPT, "the new digest")


def test_a_webhook_received_by_the_standby_is_polled_by_the_leader(apiserver: ApiServer, gitserver: GitServer,
                                                                  functions, start_daemon, secret_file: Path) -> None:
    repo = gitserver.create_repository("elected", branch="main")
    create(functions, function_manifest("elected", repo.url, f"repo-type: git\n{HOURLY}"), repo.head("main"))
    leader, standby = two_replicas(apiserver, lambda *flags: start_daemon(*webhook_flags(secret_file), *flags))
    wait_for(lambda: gitserver.ls_remote_count("elected") >= 1, FIRST_POLL, "the leader's first poll")
    moved = repo.commit("change", files={"a": "1"})
    at_standby = Receiving(standby)
    push = hooks.github(hooks.Push(repo.url.removesuffix(".git"), moved), HOOK_SECRET)
    assert at_standby.deliver(push) == (202, {"targets": 1})
    wait_recorded(functions, "elected", moved, seconds=PROMPT)
    (changed,) = wait_for(lambda: events(apiserver, "SourceChanged", "elected"), PROMPT, "SourceChanged")
    assert "received by a standby" in changed["message"]
    assert polled(leader, "git", times=2) and not polled(standby, "git")


def test_a_new_requested_at_value_checks_now_and_the_same_value_does_not(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("asked", branch="main")
    create(functions, function_manifest("asked", repo.url, f"repo-type: git\n{HOURLY}"), repo.head("main"))
    start_daemon()
    wait_for(lambda: gitserver.ls_remote_count("asked") >= 1, FIRST_POLL, "the first poll")
    moved = repo.commit("change", files={"a": "1"})
    annotate(functions, "asked", "1764522000")
    wait_recorded(functions, "asked", moved, seconds=PROMPT)
    polls = gitserver.ls_remote_count("asked")
    annotate(functions, "asked", "1764522000")  # the same value: nothing to do
    annotate(functions, "asked", "1764522001")
    wait_for(lambda: gitserver.ls_remote_count("asked") == polls + 1, PROMPT, "one more poll")


def annotate(functions, name: str, value: str) -> None:
    functions.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name,
                                             {"metadata": {"annotations": {REQUESTED_AT_ANNOTATION: value}}})


def test_a_flood_of_bad_deliveries_does_not_hold_up_polling(apiserver: ApiServer, gitserver: GitServer, functions,
                                                            start_daemon, secret_file: Path) -> None:
    repo = gitserver.create_repository("steady", branch="main")
    create(functions, function_manifest("steady", repo.url, "repo-type: git\npolling-interval: 1s"), repo.head("main"))
    receiver = receiving(start_daemon, secret_file)
    wait_for(lambda: gitserver.ls_remote_count("steady") >= 1, FIRST_POLL, "the first poll")
    junk = hooks.Delivery("github", {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00"},
                          b"x" * (1024 * 1024))
    flooding = threading.Event()

    def flood() -> None:
        while not flooding.is_set():
            with contextlib.suppress(OSError):  # refused before the body is read: the sender may see a reset
                receiver.deliver(junk)

    senders = [threading.Thread(target=flood, daemon=True) for _ in range(8)]
    for sender in senders:
        sender.start()
    try:
        wait_for(lambda: (metric(receiver.daemon, "revision_controller_webhooks_total", provider="github",
                                 outcome="unauthorized") or 0) >= 50, 10, "the flood to arrive")
        moved = repo.commit("change", files={"a": "1"})
        wait_recorded(functions, "steady", moved, seconds=WITHIN)
    finally:
        flooding.set()
        for sender in senders:
            sender.join(10)


@pytest.mark.parametrize("secret", ["missing", "empty", "none"])
def test_without_a_secret_no_webhook_is_received_and_the_log_says_why_once(apiserver: ApiServer, start_daemon,
                                                                         tmp_path: Path, secret: str) -> None:
    path = tmp_path / "webhook-secret"
    if secret == "empty":
        path.write_text(" \n")
    flags = () if secret == "none" else ("--webhook-secret-file", str(path))
    daemon = start_daemon("--webhook-bind-address", "127.0.0.1:0", *flags)
    wait_for(lambda: "webhooks are off" in daemon.output(), 10, "the reason in the log")
    wait_for(lambda: answers(daemon, "/readyz", 200), 10, "ready: its servers started before its watch")
    assert daemon.output().count("webhooks are off") == 1
    assert not LISTENING.search(daemon.output())
