"""Junk a tenant may write into one Function costs that Function only: its own Event, while a
control Function beside it is patched on time, through the daemon process."""

from __future__ import annotations

from revision_controller.testing import ApiServer
from revision_controller.testing.gitserver import GitServer
from tests.e2e.conftest import (FIRST_POLL, create, events, function_manifest, recorded, wait_for,
                                wait_recorded)

GOOD = "repo-type: git\npolling-interval: 1s"
# Each of these once raised out of planning and stopped the watch for every Function after it.
JUNK = {
    "deep": ("polling-interval: " + "[" * 3000 + "1s" + "]" * 3000, None),
    "tagged-int": ("polling-interval: !!int 1s", None),
    "tagged-time": ("repo-type: git\npolling-interval: !!timestamp x", None),
    "forever": ("repo-type: git\npolling-interval: 99999999999999999999h", None),
    "bracket": (GOOD, "http://[::1:8080/x"),
    "zone": (GOOD, "https://[fe80::1%25/a/b"),
    "port": (GOOD, "http://127.0.0.1:1 2/x"),
}


def test_each_hostile_function_gets_its_own_event_and_a_control_function_is_patched_on_time(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("control", branch="main")
    first = repo.head("main")
    for name, (params, url) in JUNK.items():
        create(functions, function_manifest(name, url or repo.url, params), first)
    create(functions, function_manifest("control", repo.url, GOOD), first)
    start_daemon()
    for name in JUNK:
        (told,) = wait_for(lambda: events(apiserver, "InvalidParameters", name), FIRST_POLL, f"{name}'s Event")
        assert told["type"] == "Warning" and len(told["message"]) < 500
    wait_for(lambda: gitserver.ls_remote_count("control") >= 1, FIRST_POLL, "the control's first poll")
    moved = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "control", moved)
    for name in JUNK:  # created after the junk, changed after it: still seen
        assert recorded(functions, name) == first
    late = function_manifest("late", repo.url, GOOD)
    create(functions, late, first)
    wait_recorded(functions, "late", moved, seconds=FIRST_POLL)
