"""EventRecorder against the API stand-in: Events are created, and repeats aggregated."""

from pathlib import Path

import pytest
from kubernetes import config

from revision_controller.events import QUIET_SECONDS, EventRecorder, InvolvedFunction
from revision_controller.function import FunctionRef
from revision_controller.testing import ApiServer

FN = InvolvedFunction(FunctionRef("default", "fn"), "uid-1", "core.openfunction.io/v1beta2")


@pytest.fixture
def recorder(apiserver: ApiServer, tmp_path: Path) -> EventRecorder:
    return EventRecorder(config.new_client_from_config(str(tmp_path / "kubeconfig")), "test-host")


def test_an_event_names_the_function_and_the_controller(apiserver: ApiServer, recorder: EventRecorder) -> None:
    recorder.record(FN, "Warning", "PollFailed", "down")
    (event,) = apiserver.list("v1", "Event", "default")
    assert event["involvedObject"] == {"apiVersion": "core.openfunction.io/v1beta2", "kind": "Function",
                                       "namespace": "default", "name": "fn", "uid": "uid-1"}
    assert (event["type"], event["reason"], event["message"], event["count"]) == ("Warning", "PollFailed", "down", 1)
    assert event["source"]["component"] == "openfunction-revision-controller"


def test_a_repeated_event_counts_up_on_one_object(apiserver: ApiServer, recorder: EventRecorder) -> None:
    for _ in range(3):
        recorder.record(FN, "Warning", "PollFailed", "down")
    recorder.record(FN, "Warning", "PollFailed", "another error")
    events = sorted(apiserver.list("v1", "Event", "default"), key=lambda e: e["message"])
    assert [(e["message"], e["count"]) for e in events] == [("another error", 1), ("down", 3)]
    assert apiserver.count_requests("PATCH", r"/events/") == 2


def test_an_aggregated_event_that_expired_is_recorded_anew(apiserver: ApiServer, recorder: EventRecorder) -> None:
    recorder.record(FN, "Normal", "NotWatched", "pinned")
    (event,) = apiserver.list("v1", "Event", "default")
    apiserver.delete("v1", "Event", "default", event["metadata"]["name"])
    recorder.record(FN, "Normal", "NotWatched", "pinned")
    (fresh,) = apiserver.list("v1", "Event", "default")
    assert fresh["count"] == 1 and fresh["metadata"]["name"] != event["metadata"]["name"]


def test_an_api_server_that_refuses_events_does_not_fail_the_caller(
        apiserver: ApiServer, recorder: EventRecorder, caplog: pytest.LogCaptureFixture) -> None:
    apiserver.inject_fault("POST", r"/events$", 403)
    recorder.record(FN, "Warning", "PollFailed", "down")
    assert "could not record Event PollFailed on Function default/fn: HTTP 403" in caplog.text


def test_after_an_unanswered_request_events_are_not_tried_for_a_while(apiserver: ApiServer, tmp_path: Path) -> None:
    now = [100.0]
    recorder = EventRecorder(config.new_client_from_config(str(tmp_path / "kubeconfig")), "test-host",
                             clock=lambda: now[0])
    apiserver.stop()  # refused: no answer
    assert recorder.record(FN, "Warning", "PollFailed", "down") is False
    apiserver.start()
    assert recorder.record(FN, "Warning", "PollFailed", "down") is False  # not even tried
    assert apiserver.requests == []
    now[0] += QUIET_SECONDS + 0.1
    assert recorder.record(FN, "Warning", "PollFailed", "down") is True
    assert [event["message"] for event in apiserver.list("v1", "Event", "default")] == ["down"]


def test_an_event_the_server_refuses_does_not_quiet_the_others(apiserver: ApiServer, recorder: EventRecorder) -> None:
    apiserver.inject_fault("POST", r"/events$", 500)
    assert recorder.record(FN, "Warning", "PollFailed", "down") is False  # it answered: try the next one
    assert recorder.record(FN, "Warning", "PollFailed", "down") is True
