"""Events as both APIs serve them: core v1 and `events.k8s.io/v1` are one store seen two ways, as on a
real server, with the field names, field selectors and Table of the API asked."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from revision_controller.events import EventRecorder, InvolvedFunction
from revision_controller.function import FunctionRef
from revision_controller.testing import ApiServer
from revision_controller.testing.store import RESOURCES, ApiError
from revision_controller.testing.tables import table
from tests.testing.test_apiserver import NS
from tests.testing.test_apiserver_clients import AGGREGATED, TABLE, get

EVENTS = "/apis/events.k8s.io/v1/namespaces/default/events"
CORE_EVENTS = "/api/v1/namespaces/default/events"
SEEN = "2026-11-30T10:00:00Z"


@pytest.fixture
def events(api_client: client.ApiClient) -> client.EventsV1Api:
    return client.EventsV1Api(api_client)


def core_event(name: str, about: str, **fields: Any) -> dict[str, Any]:
    """An Event as the daemon writes it (core v1, no eventTime), with `fields` added."""
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": NS},
            "involvedObject": {"apiVersion": "core.openfunction.io/v1beta2", "kind": "Function",
                               "namespace": NS, "name": about},
            "type": "Normal", "reason": "SourceChanged", "message": f"{about} moved", "count": 1,
            "firstTimestamp": SEEN, "lastTimestamp": SEEN, "source": {"component": "revision-controller"},
            **fields}


def test_a_core_event_is_listed_by_events_k8s_io_under_its_field_names(server: ApiServer) -> None:
    server.create(core_event("a.1", "a"))
    server.create(core_event("b.1", "b"))
    listed = json.loads(get(server, f"{EVENTS}?fieldSelector=regarding.name%3Da").body)
    assert listed["kind"] == "EventList" and listed["apiVersion"] == "events.k8s.io/v1"
    (event,) = listed["items"]
    assert (event["apiVersion"], event["note"], event["regarding"]["name"], event["deprecatedCount"]) == (
        "events.k8s.io/v1", "a moved", "a", 1)
    assert (event["deprecatedSource"], event["deprecatedFirstTimestamp"]) == ({"component": "revision-controller"},
                                                                               SEEN)
    assert not {"message", "involvedObject", "count", "source", "firstTimestamp"} & set(event)
    # Go serializes an unset eventTime as null, in both APIs; the Python client's EventsV1Event then
    # refuses it (kubernetes-client/python#1616), as it does against a real server.
    assert event["eventTime"] is None
    assert json.loads(get(server, CORE_EVENTS).body)["items"][0]["eventTime"] is None


def test_events_k8s_io_refuses_the_core_field_labels(server: ApiServer) -> None:
    answer = get(server, f"{EVENTS}?fieldSelector=involvedObject.name%3Da")
    assert (answer.status, json.loads(answer.body)["message"]) == (
        400, "field label not supported: involvedObject.name")


def test_an_event_written_through_events_k8s_io_is_read_as_a_core_event(
        events: client.EventsV1Api, core: client.CoreV1Api) -> None:
    written = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="f.1"), event_time=datetime(2026, 11, 30, 10, tzinfo=UTC),
        regarding=client.V1ObjectReference(kind="Function", name="f", namespace=NS), note="built",
        reason="SourceChanged", type="Normal", action="Patch", reporting_controller="revision-controller",
        reporting_instance="rc-0")
    events.create_namespaced_event(NS, written)
    read = core.read_namespaced_event("f.1", NS)
    assert (read.message, read.involved_object.name, read.reporting_component, read.reporting_instance,
            read.action) == ("built", "f", "revision-controller", "rc-0", "Patch")
    assert read.event_time == datetime(2026, 11, 30, 10, tzinfo=UTC)


def test_patch_and_delete_through_events_k8s_io_change_the_core_event(
        server: ApiServer, events: client.EventsV1Api, core: client.CoreV1Api) -> None:
    server.create(core_event("a.1", "a", eventTime="2026-11-30T10:00:00.000000Z"))
    patched = events.patch_namespaced_event("a.1", NS, {"note": "a moved twice", "deprecatedCount": 2})
    assert (patched.note, patched.deprecated_count) == ("a moved twice", 2)
    read = core.read_namespaced_event("a.1", NS)
    assert (read.message, read.count, read.involved_object.name) == ("a moved twice", 2, "a")
    events.delete_namespaced_event("a.1", NS)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_event("a.1", NS)
    assert gone.value.status == 404
    with pytest.raises(ApiException) as missing:
        events.read_namespaced_event("a.1", NS)
    assert json.loads(missing.value.body)["message"] == 'events.events.k8s.io "a.1" not found'


def test_a_watch_on_events_k8s_io_sees_core_events_by_regarding_name(
        server: ApiServer, events: client.EventsV1Api) -> None:
    seen: list[tuple[str, str]] = []
    watching = watch.Watch()

    def run() -> None:
        for item in watching.stream(events.list_namespaced_event, NS, field_selector="regarding.name=a",
                                    timeout_seconds=20):
            seen.append((item["type"], item["object"].note))
            if len(seen) == 2:
                watching.stop()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while server.watch_count("events") == 0 and time.monotonic() < deadline:
        thread.join(0.05)
    stamped = {"eventTime": "2026-11-30T10:00:00.000000Z"}
    server.create(core_event("b.1", "b", **stamped))
    server.create(core_event("a.1", "a", **stamped))
    server.patch("v1", "Event", NS, "a.1", {"message": "a moved again"})
    thread.join(20)
    assert seen == [("ADDED", "a moved"), ("MODIFIED", "a moved again")]


@pytest.mark.parametrize("path", [CORE_EVENTS, EVENTS])
def test_both_apis_print_events_as_the_servers_event_printer_does(server: ApiServer, path: str) -> None:
    server.create(core_event("a.1", "a"))
    listed = json.loads(get(server, path, TABLE).body)
    assert listed["kind"] == "Table"
    columns = [(column["name"], column["priority"]) for column in listed["columnDefinitions"]]
    assert columns == [("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1),
                       ("Source", 1), ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)]
    (row,) = listed["rows"]
    assert row["cells"][1:] == ["Normal", "SourceChanged", "function/a", "", "revision-controller", "a moved",
                                row["cells"][0], 1, "a.1"]


def test_event_cells_follow_series_event_time_and_reporter() -> None:
    now = datetime(2026, 11, 30, 10, 5, tzinfo=UTC)
    core_events = next(res for res in RESOURCES if res.plural == "events" and res.view is None)
    new_style = {"metadata": {"name": "n"}, "involvedObject": {"kind": "Function"}, "type": "Warning",
                 "reason": "R", "message": " spaced \n", "eventTime": "2026-11-30T10:04:00.500000Z",
                 "reportingComponent": "rc", "reportingInstance": "rc-0"}
    series = {**new_style, "series": {"count": 7, "lastObservedTime": "2026-11-30T10:04:50.000000Z"}}
    (plain, counted) = (row["cells"] for row in table(core_events, "v1", [new_style, series], None, now=now)["rows"])
    assert plain == ["59s", "Warning", "R", "function", "", "rc, rc-0", "spaced", "59s", 1, "n"]
    assert (counted[0], counted[8]) == ("10s", 7)


def test_discovery_serves_events_k8s_io_beside_core_events(server: ApiServer) -> None:
    groups = {item["metadata"]["name"]: item["versions"] for item in json.loads(get(server, "/apis", AGGREGATED).body)
              ["items"] if item["metadata"].get("name")}
    (v1,) = groups["events.k8s.io"]
    (resource,) = v1["resources"]
    assert (v1["version"], resource["resource"], resource["responseKind"]["kind"], resource["shortNames"]) == (
        "v1", "events", "Event", ["ev"])
    index = json.loads(get(server, "/openapi/v3").body)["paths"]
    assert "apis/events.k8s.io/v1" in index


def test_the_daemons_events_are_stored_in_utc_as_go_writes_times_and_print_their_age(
        server: ApiServer, api_client: client.ApiClient) -> None:
    """The daemon's recorder sends "+00:00" offsets (the client's models write them so); a server stores "Z"."""
    recorder = EventRecorder(api_client, "rc-0")
    recorder.record(InvolvedFunction(FunctionRef(NS, "f"), "uid", "core.openfunction.io/v1beta2"), "Normal",
                    "SourceChanged", "moved")
    (event,) = json.loads(get(server, CORE_EVENTS).body)["items"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["firstTimestamp"]), event["firstTimestamp"]
    (row,) = json.loads(get(server, CORE_EVENTS, TABLE).body)["rows"]
    assert re.fullmatch(r"\d+s", row["cells"][0]), row["cells"]


@pytest.mark.parametrize(("written", "stored"), [
    ("2026-11-30T12:00:00+02:00", "2026-11-30T10:00:00Z"), ("2026-11-30T10:00:00Z", "2026-11-30T10:00:00Z"),
    ("2026-11-30T10:00:00.5+00:00", "2026-11-30T10:00:00Z")])
def test_times_are_stored_in_utc_and_what_is_not_a_time_is_refused(server: ApiServer, written: str,
                                                                      stored: str) -> None:
    created = server.create(core_event("t.1", "t", firstTimestamp=written,
                                       series={"count": 2, "lastObservedTime": written}))
    assert created["firstTimestamp"] == stored
    assert created["series"]["lastObservedTime"] == stored.replace("Z", ".000000Z" if "." not in written
                                                                   else ".500000Z")
    with pytest.raises(ApiError) as refused:
        server.create(core_event("t.2", "t", lastTimestamp="yesterday"))
    assert refused.value.code == 400 and "lastTimestamp" in refused.value.message
