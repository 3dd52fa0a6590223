"""The daemon run as an operator runs it: its own process, a kubeconfig, real servers.

Every negative check ("nothing was patched") is anchored to a positive one
that proves the daemon has polled since: a canary Function on the same or
another target must be patched first.
"""

from __future__ import annotations

import time

import pytest

from revision_controller.function import GROUP, PLURAL
from revision_controller.params import PARAMS_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.testing import ApiServer
from revision_controller.testing.gitserver import GitServer
from tests.e2e.conftest import (
    FIRST_POLL,
    INTERVAL,
    NAMESPACE,
    VERSION,
    WITHIN,
    create,
    events,
    function_manifest,
    ls_remotes,
    recorded,
    status,
    status_patches,
    wait_for,
    wait_recorded,
)


def test_a_push_is_patched_within_the_interval_plus_two_seconds(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("app", branch="main")
    first = repo.head("main")
    create(functions, function_manifest("app", repo.url, "repo-type: git\npolling-interval: 1s"), first)
    daemon = start_daemon()
    wait_for(lambda: ls_remotes(gitserver, "app") >= 1, 10, "the daemon's first poll")
    second = repo.commit("change", files={"functions/app/main.go": "package main // 2\n"})
    pushed = time.monotonic()
    wait_recorded(functions, "app", second)
    assert time.monotonic() - pushed <= WITHIN
    assert "build" not in status(functions, "app")
    (event,) = wait_for(lambda: events(apiserver, "SourceChanged", "app"), 2, "the SourceChanged Event")
    assert first in event["message"] and second in event["message"]
    assert event["involvedObject"]["kind"] == "Function"
    assert "source changed" in daemon.output()


def test_a_function_never_built_is_left_for_its_first_build(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("fresh", branch="main")
    create(functions, function_manifest("fresh", repo.url, "repo-type: git\npolling-interval: 1s"), None)
    create(functions, function_manifest("canary", repo.url, "repo-type: git\npolling-interval: 1s"),
           repo.head("main"))
    start_daemon()
    wait_for(lambda: ls_remotes(gitserver, "fresh") >= 1, FIRST_POLL, "the daemon's first poll")
    second = repo.commit("change", files={"a": "2"})
    wait_recorded(functions, "canary", second)
    assert recorded(functions, "fresh") == "" and status_patches(apiserver, "fresh") == 0


def test_disabling_the_annotation_stops_patching(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("shared", branch="main")
    first = repo.head("main")
    params = "repo-type: git\npolling-interval: 1s"
    create(functions, function_manifest("watched", repo.url, params), first)
    create(functions, function_manifest("canary", repo.url, params), first)
    daemon = start_daemon()
    wait_for(lambda: ls_remotes(gitserver, "shared") >= 1, FIRST_POLL, "the daemon's first poll")
    second = repo.commit("one", files={"a": "1"})
    wait_recorded(functions, "watched", second)
    functions.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "watched",
                                             {"metadata": {"annotations": {SWITCH_ANNOTATION: "disable"}}})
    wait_for(lambda: f"{NAMESPACE}/watched unsubscribed" in daemon.output(), 1.5, "the re-plan")
    third = repo.commit("two", files={"a": "2"})
    wait_recorded(functions, "canary", third)  # the canary on the same target proves a poll since
    assert recorded(functions, "watched") == second


def test_deleting_the_only_function_stops_polling_its_target(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    gone = gitserver.create_repository("gone", branch="main")
    kept = gitserver.create_repository("kept", branch="main")
    params = "repo-type: git\npolling-interval: 1s"
    create(functions, function_manifest("gone", gone.url, params), gone.head("main"))
    create(functions, function_manifest("kept", kept.url, params), kept.head("main"))
    start_daemon()
    wait_for(lambda: ls_remotes(gitserver, "gone") >= 1, 10, "the first poll of the doomed target")
    functions.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "gone")
    change = kept.commit("one", files={"a": "1"})
    wait_recorded(functions, "kept", change)
    polls_after_delete = ls_remotes(gitserver, "gone")
    for n in range(2):
        change = kept.commit(f"more {n}", files={"a": str(n + 2)})
        wait_recorded(functions, "kept", change)
    assert ls_remotes(gitserver, "gone") == polls_after_delete


@pytest.mark.parametrize("params, named", [
    ("repo-type: git\npolling-interval: soon", "polling-interval 'soon'"),
    ("type: rebuild", "type 'rebuild'"),
    ("repo-type: [git", "not valid YAML"),
    ("repo-type: git\npolling-interval: -1s", "greater than zero"),
])
def test_malformed_params_are_an_event_and_do_not_stop_a_good_function(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon, params: str, named: str) -> None:
    repo = gitserver.create_repository("both", branch="main")
    first = repo.head("main")
    create(functions, function_manifest("bad", repo.url, params), first)
    create(functions, function_manifest("good", repo.url, "repo-type: git\npolling-interval: 1s"), first)
    start_daemon()
    (event,) = wait_for(lambda: events(apiserver, "InvalidParameters", "bad"), 10, "InvalidParameters")
    assert named in event["message"] and event["type"] == "Warning"
    second = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "good", second)
    assert recorded(functions, "bad") == first


def test_a_conflicting_write_is_read_again_and_decided_again(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("raced", branch="main")
    create(functions, function_manifest("raced", repo.url, "repo-type: git\npolling-interval: 1s"),
           repo.head("main"))
    apiserver.inject_fault("PATCH", r"/functions/raced/status$", 409, times=2)
    start_daemon()
    wait_for(lambda: ls_remotes(gitserver, "raced") >= 1, FIRST_POLL, "the daemon's first poll")
    second = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "raced", second)
    assert status_patches(apiserver, "raced") == 1 + 3  # the seeding, then two refused and one written
    (_,) = wait_for(lambda: events(apiserver, "SourceChanged", "raced"), 2, "the SourceChanged Event")


def test_a_conflict_with_a_build_that_already_recorded_the_head_writes_nothing(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("caught-up", branch="main")
    first = repo.head("main")
    create(functions, function_manifest("caught-up", repo.url, "repo-type: git\npolling-interval: 1s"), first)
    daemon = start_daemon()
    wait_for(lambda: ls_remotes(gitserver, "caught-up") >= 1, 10, "the first poll")
    seeded = status_patches(apiserver, "caught-up")
    # Freeze the daemon's view: its watch is cut and cannot come back.
    apiserver.inject_fault("GET", r"/functions$", 503, times=None)
    apiserver.drop_watches()
    second = repo.commit("change", files={"a": "1"})
    # OpenFunction records the new head itself; the daemon's patch now carries a stale resourceVersion.
    apiserver.patch_status("core.openfunction.io/v1beta2", "Function", NAMESPACE, "caught-up",
                           {"status": {"sources": [{"name": "default", "git": {"commitSha": second}}]}})
    wait_for(lambda: "caught-up changed while patching" in daemon.output(), WITHIN, "the real 409")
    wait_for(lambda: ls_remotes(gitserver, "caught-up") >= 4, 10, "more polls")
    apiserver.clear_faults()
    assert recorded(functions, "caught-up") == second
    assert status_patches(apiserver, "caught-up") == seeded + 1  # refused; nothing after reading again
    assert events(apiserver, "SourceChanged", "caught-up") == []


def test_a_dropped_watch_resumes_and_sees_later_changes(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("late", branch="main")
    first = repo.head("main")
    params = "repo-type: git\npolling-interval: 1s"
    start_daemon()
    create(functions, function_manifest("early", repo.url, params), first)
    wait_for(lambda: ls_remotes(gitserver, "late") >= 1, 10, "the first poll")
    apiserver.drop_watches()
    create(functions, function_manifest("late", repo.url, params), first)
    second = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "late", second, seconds=WITHIN + 5)


def test_an_expired_watch_lists_again_and_forgets_functions_deleted_meanwhile(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    old = gitserver.create_repository("old", branch="main")
    new = gitserver.create_repository("new", branch="main")
    params = "repo-type: git\npolling-interval: 1s"
    create(functions, function_manifest("old", old.url, params), old.head("main"))
    daemon = start_daemon()
    wait_for(lambda: ls_remotes(gitserver, "old") >= 1, 10, "the first poll")
    # Keep the daemon away from Functions while they change and the history is compacted.
    apiserver.inject_fault("GET", r"/functions$", 503, times=1000)
    apiserver.drop_watches()
    wait_for(lambda: "retrying in" in daemon.output(), 5, "the daemon to back off")
    functions.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "old")
    create(functions, function_manifest("new", new.url, params), new.head("main"))
    apiserver.compact()
    apiserver.clear_faults()
    change = new.commit("change", files={"a": "1"})
    wait_recorded(functions, "new", change, seconds=WITHIN + 5)
    assert "listing again" in daemon.output()
    assert f"{NAMESPACE}/old unsubscribed: it was deleted" in daemon.output()
    polls = ls_remotes(gitserver, "old")
    change = new.commit("again", files={"a": "2"})
    wait_recorded(functions, "new", change)
    assert ls_remotes(gitserver, "old") == polls


def test_functions_on_one_target_cost_one_request_per_interval(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("popular", branch="main")
    first = repo.head("main")
    for name, interval in (("one", "1s"), ("two", "1s"), ("slow", "30s")):
        create(functions, function_manifest(name, repo.url, f"repo-type: git\npolling-interval: {interval}"),
               first)
    start_daemon()
    wait_for(lambda: ls_remotes(gitserver, "popular") >= 2, 10, "two polls")
    before, started = ls_remotes(gitserver, "popular"), time.monotonic()
    second = repo.commit("change", files={"a": "1"})
    for name in ("one", "two", "slow"):  # the 30s Function is served by the 1s poll too
        wait_recorded(functions, name, second)
    wait_for(lambda: time.monotonic() - started >= 4, 5, "a four-second window")
    polls = ls_remotes(gitserver, "popular") - before
    elapsed = time.monotonic() - started
    # One poll per interval of the shortest subscriber, never one per Function (that would be 2x).
    assert elapsed / (INTERVAL + 0.5) - 1 <= polls <= elapsed / INTERVAL + 1, (polls, elapsed)


def test_changing_the_interval_replans_the_target_without_a_restart(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("retuned", branch="main")
    create(functions, function_manifest("retuned", repo.url, "repo-type: git\npolling-interval: 1h"),
           repo.head("main"))
    daemon = start_daemon()
    wait_for(lambda: ls_remotes(gitserver, "retuned") == 1, FIRST_POLL, "the first poll")
    second = repo.commit("change", files={"a": "1"})
    functions.patch_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, "retuned",
        {"metadata": {"annotations": {PARAMS_ANNOTATION: "repo-type: git\npolling-interval: 1s"}}})
    changed = time.monotonic()
    wait_for(lambda: "retuned.git@main every 1s" in daemon.output(), 1.0, "the re-plan within a second")
    wait_recorded(functions, "retuned", second)
    assert time.monotonic() - changed <= WITHIN
