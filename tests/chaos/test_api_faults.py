"""What the chaos scenario may only stumble on, made to happen every time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from revision_controller.testing import ApiServer
from revision_controller.testing.forge import Forge
from revision_controller.testing.github import GitHubServer
from tests.canary import secret
from tests.e2e.conftest import FIRST_POLL, NAMESPACE, DaemonProcess, events, wait_for, wait_recorded
from tests.e2e.test_forges import Host, private_function

TOKEN = secret("chaos-forge-token")


@pytest.fixture
def github() -> Iterator[Host]:
    with Forge() as forge, GitHubServer(forge) as server:
        forge.grant(TOKEN)
        yield Host("github", forge, server)


def test_a_secret_the_api_server_fails_to_give_is_read_again_after_a_short_back_off_not_ten_minutes(
        apiserver: ApiServer, github: Host, functions, start_daemon: Callable[..., DaemonProcess]) -> None:
    apiserver.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "forge-token", "namespace": NAMESPACE},
                      "stringData": {"password": TOKEN}})
    repo = private_function(functions, github, "private")
    start_daemon()
    wait_for(github.api_requests, FIRST_POLL, "a first poll")
    # A failed poll reads the Secret afresh; that read meets an API server in trouble.
    apiserver.inject_fault("GET", r"/secrets/forge-token$", 503)
    github.server.fault(503)
    (failed,) = wait_for(lambda: [e for e in events(apiserver, "PollFailed", "private") if "Secret" in e["message"]],
                         10, "the Secret read failing")
    assert "503" in failed["message"]
    moved = repo.commit("change", files={"a": "1"})
    # Two transient failures in a row: polled again after 1 s x 2^2 (+10 %), not after ten minutes.
    wait_recorded(functions, "private", moved, seconds=4 * 1.1 + 5)
