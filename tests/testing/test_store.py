"""The stand-in's storage semantics, without HTTP in the way."""

from __future__ import annotations

import threading

import pytest

from revision_controller.testing.patches import merge_patch
from revision_controller.testing.store import JSON, RESOURCES, ApiError, EndReason, Selector, Store, Target

FUNCTION, SECRET, EVENT, EVENTS_V1, LEASE = RESOURCES


def function(name: str, **spec: object) -> JSON:
    return {"metadata": {"name": name, "labels": {"app": name}}, "spec": dict(spec)}


def drain(store: Store, sub: object) -> list[tuple[str, str]]:
    batch = store.next_events(sub, timeout=0)  # type: ignore[arg-type]
    return [(event.type, event.obj["metadata"]["name"]) for event in batch.events]


def test_history_limit_expires_older_resource_versions() -> None:
    store = Store(history_limit=2)
    for name in ("a", "b", "c"):
        store.create(FUNCTION, "default", function(name))
    with pytest.raises(ApiError) as expired:
        store.subscribe(FUNCTION, None, Selector(), since=0)
    assert (expired.value.code, expired.value.message) == (410, "too old resource version: 0 (1)")
    sub = store.subscribe(FUNCTION, None, Selector(), since=1)
    assert drain(store, sub) == [("ADDED", "b"), ("ADDED", "c")]


def test_compaction_keeps_live_watches_and_the_current_version() -> None:
    store = Store()
    live = store.subscribe(FUNCTION, None, Selector(), since=None)
    store.create(FUNCTION, "default", function("a"))
    store.compact()
    store.create(FUNCTION, "default", function("b"))
    assert drain(store, live) == [("ADDED", "a"), ("ADDED", "b")]
    with pytest.raises(ApiError):
        store.subscribe(FUNCTION, None, Selector(), since=0)
    assert drain(store, store.subscribe(FUNCTION, None, Selector(), since=1)) == [("ADDED", "b")]


def test_unchanged_update_is_not_written() -> None:
    store = Store()
    created = store.create(FUNCTION, "default", function("a", image="x"))
    sub = store.subscribe(FUNCTION, None, Selector(), since=store.resource_version)
    same = store.patch(FUNCTION, "default", "a", lambda obj: merge_patch(obj, {"spec": {"image": "x"}}),
                       Target.MAIN)
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert drain(store, sub) == []


def test_generation_counts_changes_outside_metadata_and_status() -> None:
    store = Store()
    store.create(FUNCTION, "default", function("a", image="x"))

    def patch(body: JSON, target: Target = Target.MAIN) -> JSON:
        return store.patch(FUNCTION, "default", "a", lambda obj: merge_patch(obj, body), target)

    assert patch({"metadata": {"labels": {"new": "label"}}})["metadata"]["generation"] == 1
    assert patch({"status": {"phase": "Ready"}}, Target.STATUS)["metadata"]["generation"] == 1
    assert patch({"spec": {"image": "y"}})["metadata"]["generation"] == 2
    assert "generation" not in store.create(SECRET, "default", {"metadata": {"name": "s"}})["metadata"]


def test_update_cannot_change_system_metadata() -> None:
    store = Store()
    created = store.create(FUNCTION, "default", function("a"))
    forged = {**function("a", image="y"),
              "metadata": {"name": "a", "uid": "forged", "generation": 99, "creationTimestamp": "1970"}}
    updated = store.update(FUNCTION, "default", "a", forged, Target.MAIN, require_resource_version=False)
    for key in ("uid", "creationTimestamp"):
        assert updated["metadata"][key] == created["metadata"][key]
    assert updated["metadata"]["generation"] == 2


def test_finalizers_hold_a_deleted_object_until_removed() -> None:
    store = Store()
    store.create(FUNCTION, "default", {**function("a"), "metadata": {"name": "a", "finalizers": ["x/y"]}})
    sub = store.subscribe(FUNCTION, None, Selector(), since=store.resource_version)
    deletion = store.delete(FUNCTION, "default", "a")
    assert not deletion.gone and deletion.obj["metadata"]["deletionTimestamp"]
    assert deletion.obj["metadata"]["generation"] == 2
    store.patch(FUNCTION, "default", "a", lambda obj: merge_patch(obj, {"metadata": {"finalizers": None}}),
                Target.MAIN)
    assert drain(store, sub) == [("MODIFIED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    with pytest.raises(ApiError):
        store.get(FUNCTION, "default", "a")


def test_selector_changes_look_like_added_and_deleted() -> None:
    store = Store()
    sub = store.subscribe(FUNCTION, "default", Selector.parse(FUNCTION, "tier=web", ""), since=0)
    store.create(FUNCTION, "default", function("a"))
    for tier in ("web", "web", "db"):
        labelled = {"metadata": {"labels": {"tier": tier}}, "spec": {"t": tier}}
        store.patch(FUNCTION, "default", "a", lambda obj, patch=labelled: merge_patch(obj, patch), Target.MAIN)
    assert drain(store, sub) == [("ADDED", "a"), ("DELETED", "a")]


@pytest.mark.parametrize(("labels", "fields", "matches"), [
    ("app=a", "", True),
    ("app==a,!missing", "metadata.name=a", True),
    ("app!=a", "", False),
    ("app", "metadata.namespace!=default", False),
    ("", "metadata.name==b", False),
])
def test_selectors(labels: str, fields: str, matches: bool) -> None:
    obj = {"metadata": {"name": "a", "namespace": "default", "labels": {"app": "a"}}}
    assert Selector.parse(FUNCTION, labels, fields).matches(obj) is matches


@pytest.mark.parametrize(("res", "labels", "fields"), [
    (FUNCTION, "", "spec.image=x"),
    (FUNCTION, "app in (a,b)", ""),
    (FUNCTION, "", "metadata.name"),
])
def test_unsupported_selectors_are_bad_requests(res: object, labels: str, fields: str) -> None:
    with pytest.raises(ApiError) as error:
        Selector.parse(res, labels, fields)  # type: ignore[arg-type]
    assert error.value.code == 400


def test_events_accept_their_field_selectors() -> None:
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Function", "name": "f"}}
    assert Selector.parse(EVENT, "", "involvedObject.kind=Function,involvedObject.name=f").matches(event)


def test_secret_string_data_becomes_base64_data() -> None:
    store = Store()
    secret = store.create(SECRET, "default", {"metadata": {"name": "s"}, "data": {"a": "eA=="},
                                              "stringData": {"b": "token"}})
    assert (secret["data"], secret["type"], "stringData" in secret) == (
        {"a": "eA==", "b": "dG9rZW4="}, "Opaque", False)
    with pytest.raises(ApiError) as error:
        store.create(SECRET, "default", {"metadata": {"name": "t"}, "data": {"a": "not base64!"}})
    assert error.value.code == 400


def test_ended_watches_wake_up_and_stop_counting() -> None:
    store = Store()
    sub = store.subscribe(LEASE, None, Selector(), since=None)
    assert store.watch_count(LEASE) == 1 and store.watch_count(FUNCTION) == 0
    woke = threading.Event()

    def wait() -> None:
        store.next_events(sub, timeout=30)
        woke.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    store.end_watches(EndReason.CLOSED)
    waiter.join(timeout=5)
    assert woke.is_set()
    assert store.watch_count() == 0


def test_events_k8s_io_selects_by_its_own_field_names_and_refuses_the_core_ones() -> None:
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Function", "name": "f"},
             "reportingComponent": "revision-controller"}
    selector = Selector.parse(EVENTS_V1, "", "regarding.kind=Function,regarding.name=f,"
                                             "reportingController=revision-controller")
    assert selector.matches(event)
    assert not Selector.parse(EVENTS_V1, "", "regarding.name=g").matches(event)
    with pytest.raises(ApiError) as error:
        Selector.parse(EVENTS_V1, "", "involvedObject.name=f")
    assert (error.value.code, error.value.message) == (400, "field label not supported: involvedObject.name")


def test_events_k8s_io_objects_are_core_events_with_fields_renamed() -> None:
    store = Store()
    created = store.create(EVENTS_V1, "default", {
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
        "regarding": {"kind": "Function", "name": "f"}, "note": "moved", "reportingController": "rc",
        "reportingInstance": "rc-0", "action": "Patch", "deprecatedCount": 2,
        "eventTime": "2026-11-30T10:00:00.000000Z"})
    assert store.get(EVENT, "default", "e") == created
    assert (created["involvedObject"], created["message"], created["reportingComponent"], created["count"]) == (
        {"kind": "Function", "name": "f"}, "moved", "rc", 2)
    served = EVENTS_V1.render(created, "v1")
    assert (served["apiVersion"], served["note"], served["regarding"], served["reportingInstance"]) == (
        "events.k8s.io/v1", "moved", {"kind": "Function", "name": "f"}, "rc-0")
    assert "message" not in served and "involvedObject" not in served
    with pytest.raises(ApiError) as error:
        store.get(EVENTS_V1, "default", "missing")
    assert error.value.message == 'events.events.k8s.io "missing" not found'
