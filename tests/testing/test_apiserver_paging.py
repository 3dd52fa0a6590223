"""Paged lists (`limit`/`continue`) and watch bookmarks, as the real `kubernetes` client and the
daemon's own watcher see them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from revision_controller.function import FunctionRef, FunctionView
from revision_controller.kube import LIST_PAGE_SIZE, FunctionsApi
from revision_controller.kube import api_client as kube_client
from revision_controller.testing import ApiServer
from revision_controller.watching import FunctionWatcher
from tests.testing.test_apiserver import FUNCTIONS, GROUP, NS, PLURAL, V1BETA2, error_body, function, wait_until

BOOKMARK_SECONDS = 0.3


def names(listed: dict) -> list[str]:
    return [item["metadata"]["name"] for item in listed["items"]]


def test_a_list_comes_in_pages_of_limit_with_a_continue_token(
        server: ApiServer, custom: client.CustomObjectsApi) -> None:
    for number in range(7):
        server.create(function(f"f{number}"))
    server.create(function("elsewhere", namespace="other"))
    first = custom.list_namespaced_custom_object(*FUNCTIONS, limit=3)
    assert names(first) == ["f0", "f1", "f2"]
    assert first["metadata"]["remainingItemCount"] == 4 and first["metadata"]["continue"]
    second = custom.list_namespaced_custom_object(*FUNCTIONS, limit=3, _continue=first["metadata"]["continue"])
    third = custom.list_namespaced_custom_object(*FUNCTIONS, limit=3, _continue=second["metadata"]["continue"])
    assert (names(second), names(third)) == (["f3", "f4", "f5"], ["f6"])
    assert "continue" not in third["metadata"] and "remainingItemCount" not in third["metadata"]
    # Every page is of the first page's resourceVersion, the one a watch resumes from.
    assert {page["metadata"]["resourceVersion"] for page in (first, second, third)} == {
        str(server.resource_version)}
    everywhere = custom.list_cluster_custom_object(GROUP, V1BETA2, PLURAL, limit=7)
    assert names(everywhere) == ["f0", "f1", "f2", "f3", "f4", "f5", "f6"]  # "default" sorts before "other"
    assert everywhere["metadata"]["remainingItemCount"] == 1


def test_a_selected_page_does_not_count_what_remains(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    for number in range(3):
        server.create(function(f"f{number}"))
    page = custom.list_namespaced_custom_object(*FUNCTIONS, limit=1, label_selector="app!=f1")
    assert names(page) == ["f0"] and page["metadata"]["continue"]
    assert "remainingItemCount" not in page["metadata"]
    rest = custom.list_namespaced_custom_object(*FUNCTIONS, label_selector="app!=f1",
                                                _continue=page["metadata"]["continue"])
    assert names(rest) == ["f2"]


def test_a_continue_token_older_than_the_history_is_410_expired(
        server: ApiServer, custom: client.CustomObjectsApi) -> None:
    for number in range(3):
        server.create(function(f"f{number}"))
    token = custom.list_namespaced_custom_object(*FUNCTIONS, limit=1)["metadata"]["continue"]
    server.create(function("later"))
    server.compact()
    with pytest.raises(ApiException) as expired:
        custom.list_namespaced_custom_object(*FUNCTIONS, limit=1, _continue=token)
    assert expired.value.status == 410
    assert error_body(expired.value)["reason"] == "Expired"
    assert "continue parameter is too old" in error_body(expired.value)["message"]


def test_a_continue_token_that_is_not_one_is_400(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as refused:
        custom.list_namespaced_custom_object(*FUNCTIONS, limit=1, _continue="not-a-token")
    assert refused.value.status == 400 and "continue key is not valid" in error_body(refused.value)["message"]


@pytest.fixture
def bookmarking(tmp_path: Path) -> Iterator[tuple[ApiServer, FunctionsApi]]:
    with ApiServer(bookmark_seconds=BOOKMARK_SECONDS) as server:
        api = kube_client(str(server.write_kubeconfig(tmp_path / "kubeconfig")))
        yield server, FunctionsApi(api)
        api.close()


def test_a_watch_with_bookmarks_gets_the_resource_version_it_has_seen_up_to(
        bookmarking: tuple[ApiServer, FunctionsApi]) -> None:
    server, functions = bookmarking
    server.create(function("mine"))
    start = str(server.resource_version)
    events = functions.watch(NS, start)  # the daemon's own watch asks for bookmarks
    try:
        for number in range(3):  # changes this watch does not see, in another namespace
            server.create(function(f"theirs{number}", namespace="other"))
        bookmark = next(events)
    finally:
        events.close()
    assert bookmark == {"type": "BOOKMARK", "object": {
        "apiVersion": f"{GROUP}/{V1BETA2}", "kind": "Function",
        "metadata": {"resourceVersion": str(server.resource_version)}}}
    # Resuming from the bookmark replays nothing, even once the history before it is forgotten.
    server.compact()
    resumed = functions.watch(NS, bookmark["object"]["metadata"]["resourceVersion"])
    try:
        server.patch("core.openfunction.io/v1beta2", "Function", NS, "mine", {"spec": {"x": 1}})
        event = next(resumed)
    finally:
        resumed.close()
    assert (event["type"], event["object"]["metadata"]["name"]) == ("MODIFIED", "mine")


def test_no_bookmark_unless_asked(bookmarking: tuple[ApiServer, FunctionsApi]) -> None:
    server, functions = bookmarking
    custom = client.CustomObjectsApi(functions.api)
    server.create(function("mine"))
    started = time.monotonic()
    stream = custom.list_namespaced_custom_object(*FUNCTIONS, watch=True, timeout_seconds=1,
                                                  resource_version=str(server.resource_version),
                                                  _preload_content=False)
    assert stream.read() == b""  # the watch timed out with nothing to say, through three bookmark times
    assert time.monotonic() - started < 3


def test_the_daemon_watcher_lists_every_page(server: ApiServer, custom: client.CustomObjectsApi,
                                            api_client: client.ApiClient) -> None:
    count = 2 * LIST_PAGE_SIZE + 1
    for number in range(count):
        server.create(function(f"f{number:04}", namespace=f"ns{number % 3}"))
    resyncs: list[list[FunctionView]] = []
    stop = threading.Event()

    def nothing(_: FunctionView | FunctionRef) -> None:
        pass
    watcher = FunctionWatcher(FunctionsApi(api_client), None, nothing, nothing,
                              lambda _, views: resyncs.append(views), stop)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: bool(resyncs), "the watcher to list", timeout=30)
    finally:
        stop.set()
        server.drop_watches()
        thread.join(5)
    (listed,) = resyncs
    assert len(listed) == count and len({view.ref for view in listed}) == count
    pages = [r for r in server.requests if r.method == "GET" and r.path.endswith("/functions")
             and r.query.get("watch") != "true"]
    assert [(r.query["limit"], bool(r.query.get("continue"))) for r in pages] == [
        (str(LIST_PAGE_SIZE), False), (str(LIST_PAGE_SIZE), True), (str(LIST_PAGE_SIZE), True)]
