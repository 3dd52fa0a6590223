"""Run after every other test (see LAST in conftest): no token or password of any Secret the tests
used reached what the daemons wrote where people and collectors read it: their logs at debug level,
tracebacks included, the Events and objects they wrote, their /metrics. Under `make test` the
session is the parallel run before this module's own (see GATHERED_DIR_ENV in conftest)."""

from __future__ import annotations

from tests.e2e.conftest import gathered, nothing_gathered


def test_no_token_reached_a_log_an_event_an_object_or_a_metric() -> None:
    found = gathered()
    if not found.logs:
        nothing_gathered("daemon logs, Events, objects or metrics")
    assert not found.plain_secrets, (
        "Secrets whose tokens do not carry the canary, so that a leak of them would go unseen: build "
        "them with tests.canary.secret():\n" + "\n".join(found.plain_secrets))
    assert not found.leaks, "tokens leaked:\n" + "\n".join(f"{leak.where}: {leak.line}" for leak in found.leaks)
