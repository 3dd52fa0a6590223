"""The stand-in API server, driven by the real `kubernetes` client over HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from revision_controller.testing import ApiServer
from revision_controller.testing.apiserver import TOKEN

GROUP, V1BETA1, V1BETA2, PLURAL, NS = "core.openfunction.io", "v1beta1", "v1beta2", "functions", "default"
FUNCTIONS = (GROUP, V1BETA2, NS, PLURAL)
JSON_PATCH = "application/json-patch+json"
REPO_ROOT = Path(__file__).resolve().parents[2]


def function(name: str, namespace: str = NS, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{V1BETA2}", "kind": "Function",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}}, "spec": spec}


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


def error_body(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body)


class WatchRecorder:
    """Consumes a client watch stream on a thread, keeping events and the error that ended it."""

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.watch = watch.Watch()
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(func, args, kwargs), daemon=True)
        self._thread.start()

    def _run(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            for event in self.watch.stream(func, *args, **kwargs):
                self.events.append(event)
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            self.error = error

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "watch stream did not end"


def first_events(count: int, func: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """The first `count` events of a watch, without waiting for its timeout."""
    stream = watch.Watch()
    events = []
    for event in stream.stream(func, *args, timeout_seconds=5, **kwargs):
        events.append(event)
        if len(events) == count:
            stream.stop()
    return events


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_get(server: ApiServer, path: str, token: str | None = TOKEN) -> RawResponse:
    """A GET without the client library, to see exactly what goes over the wire."""
    context = server.client_context()
    connection = (http.client.HTTPSConnection(server.host, server.port, timeout=5, context=context) if context
                  else http.client.HTTPConnection(server.host, server.port, timeout=5))
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = connection.getresponse()
        return RawResponse(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


# --- storage semantics -----------------------------------------------------------------------


def test_resource_version_increases_on_every_write(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    seen = [rv(custom.create_namespaced_custom_object(*FUNCTIONS, function("f", image="a")))]
    seen.append(rv(custom.patch_namespaced_custom_object(*FUNCTIONS, "f", {"spec": {"image": "b"}})))
    seen.append(rv(custom.patch_namespaced_custom_object_status(*FUNCTIONS, "f", {"status": {"x": 1}})))
    seen.append(rv(server.create(function("g"))))
    custom.delete_namespaced_custom_object(*FUNCTIONS, "g")
    listed = custom.list_namespaced_custom_object(*FUNCTIONS)
    seen.append(int(listed["metadata"]["resourceVersion"]))
    assert seen == sorted(set(seen)) and seen[-1] == server.resource_version == seen[-2] + 1


def test_create_get_list_delete(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(*FUNCTIONS, function("f", image="a"))
    custom.create_namespaced_custom_object(GROUP, V1BETA2, "other", PLURAL, function("g", "other"))
    meta = created["metadata"]
    assert (meta["generation"], meta["namespace"], len(meta["uid"])) == (1, NS, 36)
    assert meta["creationTimestamp"].endswith("Z")
    assert custom.get_namespaced_custom_object(*FUNCTIONS, "f") == created
    namespaced = custom.list_namespaced_custom_object(*FUNCTIONS)
    assert (namespaced["kind"], [i["metadata"]["name"] for i in namespaced["items"]]) == ("FunctionList", ["f"])
    everywhere = custom.list_cluster_custom_object(GROUP, V1BETA2, PLURAL)
    assert sorted(i["metadata"]["name"] for i in everywhere["items"]) == ["f", "g"]
    deleted = custom.delete_namespaced_custom_object(*FUNCTIONS, "f")
    assert (deleted["status"], deleted["details"]["uid"]) == ("Success", meta["uid"])
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(*FUNCTIONS, "f")
    assert missing.value.status == 404


def test_missing_object_is_a_404_status(custom: client.CustomObjectsApi, core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(*FUNCTIONS, "nope")
    assert missing.value.status == 404
    assert error_body(missing.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'functions.core.openfunction.io "nope" not found', "reason": "NotFound", "code": 404,
        "details": {"name": "nope", "group": GROUP, "kind": PLURAL}}
    with pytest.raises(ApiException) as secret:
        core.delete_namespaced_secret("nope", NS)
    assert (secret.value.status, error_body(secret.value)["message"]) == (404, 'secrets "nope" not found')


def test_unknown_resource_is_a_404_status(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as unknown:
        custom.list_namespaced_custom_object("example.com", "v1", NS, "widgets")
    assert (unknown.value.status, error_body(unknown.value)["reason"]) == (404, "NotFound")


def test_creating_an_existing_name_is_409_already_exists(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*FUNCTIONS, function("f"))
    with pytest.raises(ApiException) as exists:
        custom.create_namespaced_custom_object(*FUNCTIONS, function("f"))
    assert (exists.value.status, error_body(exists.value)["reason"]) == (409, "AlreadyExists")


def test_generate_name(core: client.CoreV1Api) -> None:
    secret = core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(generate_name="tok-")))
    assert secret.metadata.name.startswith("tok-") and len(secret.metadata.name) == 9


def test_create_drops_status_but_the_helper_keeps_it(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    over_http = custom.create_namespaced_custom_object(*FUNCTIONS, {**function("f"), "status": {"x": 1}})
    seeded = server.create({**function("g"), "status": {"x": 1}})
    assert "status" not in over_http and seeded["status"] == {"x": 1}


def test_label_and_field_selectors(custom: client.CustomObjectsApi) -> None:
    for name in ("a", "b"):
        custom.create_namespaced_custom_object(*FUNCTIONS, function(name))
    by_label = custom.list_namespaced_custom_object(*FUNCTIONS, label_selector="app=b")
    by_field = custom.list_namespaced_custom_object(*FUNCTIONS, field_selector="metadata.name!=b")
    assert [i["metadata"]["name"] for i in by_label["items"] + by_field["items"]] == ["b", "a"]


# --- watch -----------------------------------------------------------------------------------


def test_watch_from_list_version_sees_later_changes_in_order(
        server: ApiServer, custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*FUNCTIONS, function("before"))
    listed = custom.list_namespaced_custom_object(*FUNCTIONS)
    recorder = WatchRecorder(custom.list_namespaced_custom_object, *FUNCTIONS,
                             resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=5)
    wait_until(lambda: server.watch_count(PLURAL) == 1, "the client watches")
    custom.create_namespaced_custom_object(*FUNCTIONS, function("f", image="a"))
    custom.patch_namespaced_custom_object(*FUNCTIONS, "f", {"spec": {"image": "b"}})
    custom.delete_namespaced_custom_object(*FUNCTIONS, "f")
    wait_until(lambda: len(recorder.events) == 3, "three events arrive")
    server.drop_watches(abrupt=False)
    recorder.join()
    assert recorder.error is None
    assert recorder.types() == ["ADDED", "MODIFIED", "DELETED"]
    versions = [rv(event["raw_object"]) for event in recorder.events]
    assert versions == sorted(versions) and versions[0] > int(listed["metadata"]["resourceVersion"])
    assert recorder.events[2]["raw_object"]["spec"] == {"image": "b"}
    assert versions[2] == server.resource_version


def test_watch_replays_history_from_an_older_version(custom: client.CustomObjectsApi) -> None:
    start = rv(custom.create_namespaced_custom_object(*FUNCTIONS, function("f", image="a")))
    custom.patch_namespaced_custom_object(*FUNCTIONS, "f", {"spec": {"image": "b"}})
    custom.create_namespaced_custom_object(*FUNCTIONS, function("g"))
    events = first_events(2, custom.list_namespaced_custom_object, *FUNCTIONS, resource_version=str(start))
    assert [(e["type"], e["raw_object"]["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "f"), ("ADDED", "g")]


def test_watch_without_version_starts_with_the_current_objects(
        server: ApiServer, custom: client.CustomObjectsApi) -> None:
    for name in ("a", "b"):
        custom.create_namespaced_custom_object(*FUNCTIONS, function(name))
    recorder = WatchRecorder(custom.list_namespaced_custom_object, *FUNCTIONS, timeout_seconds=5)
    wait_until(lambda: len(recorder.events) == 2, "synthetic ADDED events arrive")
    custom.patch_namespaced_custom_object(*FUNCTIONS, "a", {"spec": {"image": "x"}})
    wait_until(lambda: len(recorder.events) == 3, "the live event arrives")
    server.drop_watches(abrupt=False)
    recorder.join()
    assert [(e["type"], e["raw_object"]["metadata"]["name"]) for e in recorder.events] == [
        ("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a")]


def test_watch_from_a_compacted_version_raises_410(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    old = rv(custom.create_namespaced_custom_object(*FUNCTIONS, function("f")))
    custom.create_namespaced_custom_object(*FUNCTIONS, function("g"))
    server.compact()
    with pytest.raises(ApiException) as expired:
        for _ in watch.Watch().stream(custom.list_namespaced_custom_object, *FUNCTIONS,
                                      resource_version=str(old), timeout_seconds=5):
            pass
    assert expired.value.status == 410
    assert f"too old resource version: {old} ({server.resource_version})" in expired.value.reason


def test_expired_watch_is_an_error_event_in_a_200_stream(server: ApiServer) -> None:
    server.create(function("f"))
    server.create(function("g"))
    server.compact()
    response = raw_get(server, f"/apis/{GROUP}/{V1BETA2}/namespaces/{NS}/{PLURAL}?watch=1&resourceVersion=1")
    assert (response.status, response.headers["Transfer-Encoding"]) == (200, "chunked")
    lines = response.body.decode().splitlines()
    assert [json.loads(line) for line in lines] == [{"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "too old resource version: 1 (2)", "reason": "Expired", "code": 410}}]


def test_abrupt_drop_breaks_the_stream(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    recorder = WatchRecorder(custom.list_namespaced_custom_object, *FUNCTIONS, timeout_seconds=30)
    wait_until(lambda: server.watch_count() == 1, "the client watches")
    server.drop_watches()
    recorder.join()
    assert isinstance(recorder.error, urllib3.exceptions.ProtocolError)
    assert server.watch_count() == 0


def test_clean_drop_ends_the_stream(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    recorder = WatchRecorder(custom.list_namespaced_custom_object, *FUNCTIONS, timeout_seconds=30)
    wait_until(lambda: server.watch_count() == 1, "the client watches")
    server.drop_watches(abrupt=False)
    recorder.join()
    assert recorder.error is None and recorder.events == []


def test_watch_ends_after_timeout_seconds_with_a_bookmark(
        server: ApiServer, custom: client.CustomObjectsApi) -> None:
    server.create(function("f"))
    started = time.monotonic()
    events = list(watch.Watch().stream(custom.list_namespaced_custom_object, *FUNCTIONS,
                                       resource_version=str(server.resource_version),
                                       timeout_seconds=1, allow_watch_bookmarks=True))
    assert 0.9 < time.monotonic() - started < 3
    assert [(e["type"], e["raw_object"]["metadata"]["resourceVersion"]) for e in events] == [
        ("BOOKMARK", str(server.resource_version))]


def test_watch_is_filtered_by_namespace(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    start = str(rv(server.create(function("before"))))
    custom.create_namespaced_custom_object(GROUP, V1BETA2, "elsewhere", PLURAL, function("x", "elsewhere"))
    custom.create_namespaced_custom_object(*FUNCTIONS, function("here"))
    namespaced = first_events(1, custom.list_namespaced_custom_object, *FUNCTIONS, resource_version=start)
    everywhere = first_events(2, custom.list_cluster_custom_object, GROUP, V1BETA2, PLURAL,
                              resource_version=start)
    assert [e["raw_object"]["metadata"]["name"] for e in namespaced] == ["here"]
    assert [e["raw_object"]["metadata"]["name"] for e in everywhere] == ["x", "here"]


def test_server_notices_a_departed_watcher(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    recorder = WatchRecorder(custom.list_namespaced_custom_object, *FUNCTIONS, timeout_seconds=30)
    wait_until(lambda: server.watch_count() == 1, "the client watches")
    recorder.watch.stop()
    # stop() cuts the socket only once the client holds the response; before that, the next event
    # is what lets the client see it was stopped and hang up.
    server.create(function("wakes-the-client"))
    recorder.join()
    wait_until(lambda: server.watch_count() == 0, "the server lets the watch go")


def test_stop_ends_open_watches_promptly(tmp_path: Path) -> None:
    server = ApiServer().start()
    api_client = config.new_client_from_config(config_file=str(server.write_kubeconfig(tmp_path / "kc")))
    recorder = WatchRecorder(client.CoreV1Api(api_client).list_event_for_all_namespaces, timeout_seconds=30)
    wait_until(lambda: server.watch_count("events") == 1, "the client watches")
    started = time.monotonic()
    server.stop()
    recorder.join()
    assert time.monotonic() - started < 2
    assert isinstance(recorder.error, urllib3.exceptions.ProtocolError)
    api_client.close()


def test_stop_closes_kept_alive_connections(server: ApiServer, core: client.CoreV1Api) -> None:
    core.list_namespaced_secret(NS)
    server.stop()
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_namespaced_secret(NS)


def test_restart_keeps_url_and_objects(server: ApiServer, core: client.CoreV1Api) -> None:
    core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(name="s")))
    url = server.url
    server.stop()
    server.start()
    assert server.url == url
    assert core.read_namespaced_secret("s", NS).metadata.name == "s"


# --- status subresource, patches, concurrency ------------------------------------------------


def test_status_writes_change_only_status(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*FUNCTIONS, function("f", image="a"))
    patched = custom.patch_namespaced_custom_object_status(
        *FUNCTIONS, "f", {"status": {"phase": "Ready"}, "spec": {"image": "evil"},
                          "metadata": {"labels": {"evil": "yes"}}})
    assert (patched["spec"], patched["status"], patched["metadata"]["labels"]) == (
        {"image": "a"}, {"phase": "Ready"}, {"app": "f"})
    replaced = custom.replace_namespaced_custom_object_status(
        *FUNCTIONS, "f", {**patched, "spec": {"image": "evil"}, "status": {"phase": "Done"}})
    assert (replaced["spec"], replaced["status"], replaced["metadata"]["generation"]) == (
        {"image": "a"}, {"phase": "Done"}, 1)


def test_main_resource_writes_never_change_status(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*FUNCTIONS, function("f", image="a"))
    custom.patch_namespaced_custom_object_status(*FUNCTIONS, "f", {"status": {"phase": "Ready"}})
    patched = custom.patch_namespaced_custom_object(*FUNCTIONS, "f", {"spec": {"image": "b"},
                                                                      "status": {"phase": "evil"}})
    assert (patched["spec"], patched["status"], patched["metadata"]["generation"]) == (
        {"image": "b"}, {"phase": "Ready"}, 2)
    replaced = custom.replace_namespaced_custom_object(*FUNCTIONS, "f", {**patched, "status": None})
    assert replaced["status"] == {"phase": "Ready"}


def test_unchanged_patch_does_not_bump_the_version(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(*FUNCTIONS, function("f", image="a"))
    again = custom.patch_namespaced_custom_object(*FUNCTIONS, "f", {"spec": {"image": "a"}})
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_put_needs_a_current_resource_version_for_custom_resources(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(*FUNCTIONS, function("f", image="a"))
    unversioned = function("f", image="b")
    with pytest.raises(ApiException) as missing:
        custom.replace_namespaced_custom_object(*FUNCTIONS, "f", unversioned)
    assert missing.value.status == 422
    current = custom.replace_namespaced_custom_object(*FUNCTIONS, "f", {**created, "spec": {"image": "b"}})
    with pytest.raises(ApiException) as stale:
        custom.replace_namespaced_custom_object(*FUNCTIONS, "f", {**created, "spec": {"image": "c"}})
    assert stale.value.status == 409
    assert current["spec"] == custom.get_namespaced_custom_object(*FUNCTIONS, "f")["spec"] == {"image": "b"}


def test_merge_patch_null_deletes_and_lists_are_replaced(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*FUNCTIONS, function("f", env={"A": "1", "B": "2"}, args=["x", "y"]))
    patched = custom.patch_namespaced_custom_object(*FUNCTIONS, "f", {"spec": {"env": {"A": None},
                                                                               "args": ["z"]}})
    assert patched["spec"] == {"env": {"B": "2"}, "args": ["z"]}


def test_json_patch_operations_and_failing_test_is_422(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(*FUNCTIONS, function("f", image="a", args=["x"]))
    patched = custom.patch_namespaced_custom_object(*FUNCTIONS, "f", [
        {"op": "test", "path": "/metadata/resourceVersion", "value": created["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/spec/image", "value": "b"},
        {"op": "add", "path": "/spec/args/-", "value": "y"},
        {"op": "add", "path": "/metadata/labels/openfunction.io~1managed", "value": "true"},
        {"op": "copy", "from": "/spec/image", "path": "/spec/previous"},
    ], _content_type=JSON_PATCH)
    assert patched["spec"] == {"image": "b", "args": ["x", "y"], "previous": "b"}
    assert patched["metadata"]["labels"]["openfunction.io/managed"] == "true"
    with pytest.raises(ApiException) as failed:
        custom.patch_namespaced_custom_object(*FUNCTIONS, "f", [
            {"op": "replace", "path": "/spec/image", "value": "c"},
            {"op": "test", "path": "/metadata/resourceVersion", "value": created["metadata"]["resourceVersion"]},
        ], _content_type=JSON_PATCH)
    assert (failed.value.status, error_body(failed.value)["reason"]) == (422, "Invalid")
    assert custom.get_namespaced_custom_object(*FUNCTIONS, "f") == patched


def test_json_patch_on_status(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*FUNCTIONS, function("f"))
    patched = custom.patch_namespaced_custom_object_status(
        *FUNCTIONS, "f", [{"op": "add", "path": "/status", "value": {"phase": "Ready"}}], _content_type=JSON_PATCH)
    assert patched["status"] == {"phase": "Ready"}


def test_stale_version_in_status_merge_patch_is_409(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(*FUNCTIONS, function("f"))
    fresh = custom.patch_namespaced_custom_object_status(
        *FUNCTIONS, "f", {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
                          "status": {"phase": "Building"}})
    with pytest.raises(ApiException) as stale:
        custom.patch_namespaced_custom_object_status(
            *FUNCTIONS, "f", {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
                              "status": {"phase": "Ready"}})
    assert stale.value.status == 409
    assert error_body(stale.value)["message"] == (
        'Operation cannot be fulfilled on functions.core.openfunction.io "f": the object has been modified; '
        "please apply your changes to the latest version and try again")
    assert custom.get_namespaced_custom_object(*FUNCTIONS, "f")["status"] == fresh["status"]


def test_strategic_merge_patch_is_415_for_custom_resources(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*FUNCTIONS, function("f"))
    with pytest.raises(ApiException) as unsupported:
        custom.patch_namespaced_custom_object(*FUNCTIONS, "f", {"spec": {}},
                                              _content_type="application/strategic-merge-patch+json")
    assert (unsupported.value.status, error_body(unsupported.value)["reason"]) == (415, "UnsupportedMediaType")


def test_both_versions_serve_the_same_object(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    old = custom.create_namespaced_custom_object(GROUP, V1BETA1, NS, PLURAL, {**function("f"),
                                                                             "apiVersion": f"{GROUP}/{V1BETA1}"})
    new = custom.patch_namespaced_custom_object(*FUNCTIONS, "f", {"spec": {"image": "b"}})
    again = custom.get_namespaced_custom_object(GROUP, V1BETA1, NS, PLURAL, "f")
    assert (old["apiVersion"], new["apiVersion"], again["apiVersion"]) == (
        f"{GROUP}/{V1BETA1}", f"{GROUP}/{V1BETA2}", f"{GROUP}/{V1BETA1}")
    assert old["metadata"]["uid"] == new["metadata"]["uid"] and again["spec"] == {"image": "b"}
    assert server.get(f"{GROUP}/{V1BETA2}", "Function", NS, "f")["spec"] == {"image": "b"}
    events = first_events(1, custom.list_namespaced_custom_object, GROUP, V1BETA1, NS, PLURAL)
    assert events[0]["raw_object"]["apiVersion"] == f"{GROUP}/{V1BETA1}"


# --- core kinds ------------------------------------------------------------------------------


def test_secret_data_round_trips_as_base64(server: ApiServer, core: client.CoreV1Api) -> None:
    encoded = base64.b64encode(b"s3cret\n").decode()
    core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(name="git"),
                                                      data={"token": encoded}, string_data={"user": "bot"}))
    secret = core.read_namespaced_secret("git", NS)
    assert secret.data == {"token": encoded, "user": base64.b64encode(b"bot").decode()}
    assert secret.type == "Opaque"
    core.patch_namespaced_secret("git", NS, {"data": {"user": None}})  # the client sends a strategic merge patch
    assert server.get("v1", "Secret", NS, "git")["data"] == {"token": encoded}


def test_events_create_and_list(server: ApiServer, core: client.CoreV1Api) -> None:
    for namespace, name in ((NS, "f"), ("other", "g")):
        core.create_namespaced_event(namespace, client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{name}."), reason="Rebuilt", message="new commit",
            type="Normal", involved_object=client.V1ObjectReference(kind="Function", name=name,
                                                                    namespace=namespace)))
    assert [e.involved_object.name for e in core.list_namespaced_event(NS).items] == ["f"]
    assert sorted(e.involved_object.name for e in core.list_event_for_all_namespaces().items) == ["f", "g"]
    selected = core.list_event_for_all_namespaces(field_selector="involvedObject.name=g").items
    assert [e.metadata.namespace for e in selected] == ["other"]
    assert [e["reason"] for e in server.list("v1", "Event", namespace=NS)] == ["Rebuilt"]


def test_leases_replace_with_resource_version_conflict(coordination: client.CoordinationV1Api) -> None:
    lease = coordination.create_namespaced_lease(NS, client.V1Lease(
        metadata=client.V1ObjectMeta(name="leader"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15)))
    lease.spec.holder_identity = "b"
    renewed = coordination.replace_namespaced_lease("leader", NS, lease)
    assert renewed.spec.holder_identity == "b"
    assert int(renewed.metadata.resource_version) > int(lease.metadata.resource_version)
    lease.spec.holder_identity = "c"
    with pytest.raises(ApiException) as stale:
        coordination.replace_namespaced_lease("leader", NS, lease)
    assert stale.value.status == 409
    assert coordination.read_namespaced_lease("leader", NS).spec.holder_identity == "b"


# --- test controls ---------------------------------------------------------------------------


def test_injected_faults_answer_without_touching_the_store(
        server: ApiServer, custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*FUNCTIONS, function("f"))
    before = server.resource_version
    server.inject_fault("PATCH", r"/functions/f/status$", 409, times=2)
    server.inject_fault("GET", r"/functions/f$", 503, body={"kind": "Status", "message": "custom"})
    for _ in range(2):
        with pytest.raises(ApiException) as conflict:
            custom.patch_namespaced_custom_object_status(*FUNCTIONS, "f", {"status": {"phase": "Ready"}})
        assert (conflict.value.status, error_body(conflict.value)["reason"]) == (409, "Conflict")
    with pytest.raises(ApiException) as unavailable:
        custom.get_namespaced_custom_object(*FUNCTIONS, "f")
    assert (unavailable.value.status, error_body(unavailable.value)) == (503, {"kind": "Status", "message": "custom"})
    assert server.resource_version == before
    custom.patch_namespaced_custom_object_status(*FUNCTIONS, "f", {"status": {"phase": "Ready"}})
    assert custom.get_namespaced_custom_object(*FUNCTIONS, "f")["status"] == {"phase": "Ready"}


def test_lasting_fault_until_cleared(server: ApiServer, core: client.CoreV1Api) -> None:
    server.inject_fault("*", r"^/api/", 500, times=None)
    for _ in range(3):
        with pytest.raises(ApiException) as failed:
            core.list_namespaced_secret(NS)
        assert failed.value.status == 500
    server.clear_faults()
    assert core.list_namespaced_secret(NS).items == []


def test_request_log_counts_status_patches(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*FUNCTIONS, function("f"))
    for phase in ("Building", "Ready"):
        custom.patch_namespaced_custom_object_status(*FUNCTIONS, "f", {"status": {"phase": phase}})
    assert server.count_requests("PATCH", r"/functions/f/status$") == 2
    last = server.requests[-1]
    assert (last.method, last.path, last.content_type) == (
        "PATCH", f"/apis/{GROUP}/{V1BETA2}/namespaces/{NS}/{PLURAL}/f/status", "application/merge-patch+json")


def test_helpers_go_through_the_store(server: ApiServer) -> None:
    server.create({**function("f", image="a"), "status": {"phase": "Ready"}})
    start = server.resource_version
    server.update(function("f", image="b"))
    server.patch(f"{GROUP}/{V1BETA1}", PLURAL, NS, "f", {"metadata": {"labels": {"x": "y"}}})
    status = server.patch_status(f"{GROUP}/{V1BETA2}", "Function", NS, "f", {"status": {"phase": "Done"}})
    assert (status["spec"], status["status"], status["metadata"]["labels"]) == (
        {"image": "b"}, {"phase": "Done"}, {"app": "f", "x": "y"})
    assert server.resource_version == start + 3
    server.delete(f"{GROUP}/{V1BETA2}", "Function", NS, "f")
    assert server.get(f"{GROUP}/{V1BETA2}", "Function", NS, "f") is None
    assert server.list(f"{GROUP}/{V1BETA2}", "Function") == []


def test_requests_need_a_bearer_token(server: ApiServer) -> None:
    path = f"/api/v1/namespaces/{NS}/secrets"
    unauthenticated = raw_get(server, path, token=None)
    assert (unauthenticated.status, json.loads(unauthenticated.body)["reason"]) == (401, "Unauthorized")
    assert raw_get(server, path, token="anything").status == 200
    with ApiServer(require_auth=False) as open_server:
        assert raw_get(open_server, path, token=None).status == 200


def test_discovery(api_client: client.ApiClient) -> None:
    assert client.VersionApi(api_client).get_code().major == "1"
    assert client.CoreApi(api_client).get_api_versions().versions == ["v1"]
    groups = {g.name: g.preferred_version.version for g in client.ApisApi(api_client).get_api_versions().groups}
    assert groups == {GROUP: V1BETA2, "events.k8s.io": "v1", "coordination.k8s.io": "v1"}


def test_module_entry_point_serves_until_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    with subprocess.Popen(
            [sys.executable, "-m", "revision_controller.testing.apiserver", "--port", "0", "--kubeconfig",
             str(kubeconfig)], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            line = process.stdout.readline() if process.stdout else ""
            assert line.startswith("serving on https://127.0.0.1:")
            url = line.split()[-1]
            assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == url
            api_client = config.new_client_from_config(config_file=str(kubeconfig))
            core = client.CoreV1Api(api_client)
            core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(name="s")))
            assert [s.metadata.name for s in core.list_namespaced_secret(NS).items] == ["s"]
            api_client.close()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
            assert process.stderr is not None and process.stderr.read() == ""
        finally:
            process.kill()
