"""Run after every other test (see LAST in conftest): no token or password of any Secret the tests
used reached what the daemons wrote where people and collectors read it: their logs at debug level,
tracebacks included, the Events and objects they wrote, their /metrics."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import GATHERED


def test_no_token_reached_a_log_an_event_an_object_or_a_metric() -> None:
    if not GATHERED.logs:
        pytest.skip("no daemon ran in this session: this check reads what the e2e tests gathered, "
                    "run it with them (pytest tests/e2e), after which it runs last")
    assert not GATHERED.plain_secrets, (
        "Secrets whose tokens do not carry the canary, so that a leak of them would go unseen: build "
        "them with tests.canary.secret():\n" + "\n".join(GATHERED.plain_secrets))
    assert not GATHERED.leaks, "tokens leaked:\n" + "\n".join(f"{leak.where}: {leak.line}" for leak in GATHERED.leaks)
