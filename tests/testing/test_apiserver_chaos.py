"""The API stand-in's chaos, each kind as the real `kubernetes` client (or raw HTTP) sees it."""

from __future__ import annotations

import contextlib
import http.client
import json
from pathlib import Path

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from revision_controller.kube import REQUEST_TIMEOUT_SECONDS, FunctionsApi
from revision_controller.testing import ApiServer
from revision_controller.testing.apiserver import CHAOS_DELAY_SECONDS, CHAOS_KINDS, TOKEN
from tests.testing.test_apiserver import FUNCTIONS, NS, WatchRecorder, function, wait_until


def status_of(server: ApiServer, name: str) -> dict:
    return (server.get("core.openfunction.io/v1beta2", "Function", NS, name) or {}).get("status") or {}


@pytest.mark.parametrize("kind", ["500", "503"])
def test_a_server_error_never_reaches_the_store(server: ApiServer, custom: client.CustomObjectsApi,
                                                kind: str) -> None:
    server.create(function("f"))
    server.chaos(rate=1.0, seed=1, kinds=[kind])
    with pytest.raises(ApiException) as failed:
        custom.patch_namespaced_custom_object_status(*FUNCTIONS, "f", {"status": {"x": 1}})
    assert failed.value.status == int(kind) and json.loads(failed.value.body)["kind"] == "Status"
    assert status_of(server, "f") == {}
    assert server.requests[-1].fault == kind and server.requests[-1].status == int(kind)


def test_429_says_retry_after_one_second(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    server.chaos(rate=1.0, seed=1, kinds=["429"])
    with pytest.raises(ApiException) as limited:
        custom.list_namespaced_custom_object(*FUNCTIONS)
    assert (limited.value.status, limited.value.headers["Retry-After"]) == (429, "1")


def test_409_only_on_status_patches(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    server.create(function("f"))
    server.chaos(rate=1.0, seed=1, kinds=["409"])
    custom.patch_namespaced_custom_object(*FUNCTIONS, "f", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(ApiException) as conflict:
        custom.patch_namespaced_custom_object_status(*FUNCTIONS, "f", {"status": {"x": 1}})
    assert (conflict.value.status, json.loads(conflict.value.body)["reason"]) == (409, "Conflict")
    assert status_of(server, "f") == {} and server.faults_drawn == {"409": 1}


def test_410_on_a_watch_is_an_error_event(server: ApiServer, api_client: client.ApiClient) -> None:
    server.chaos(rate=1.0, seed=1, kinds=["410"])
    events = list(FunctionsApi(api_client).watch(NS, "1"))
    assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", 410)]


def test_a_cut_watch_ends_in_the_middle_of_its_first_event(
        server: ApiServer, custom: client.CustomObjectsApi) -> None:
    server.chaos(rate=1.0, seed=1, kinds=["cut"])
    recorder = WatchRecorder(custom.list_namespaced_custom_object, *FUNCTIONS, timeout_seconds=5)
    wait_until(lambda: server.watch_count("functions") == 1, "the client watches")
    server.create(function("f"))
    recorder.join()
    assert recorder.events == []
    assert isinstance(recorder.error, urllib3.exceptions.ProtocolError)


def test_a_delayed_answer_comes_after_the_client_timeout_yet_the_work_is_done(
        server: ApiServer, custom: client.CustomObjectsApi) -> None:
    assert CHAOS_DELAY_SECONDS > REQUEST_TIMEOUT_SECONDS  # what the daemon's client waits for
    server.create(function("f"))
    server.chaos(rate=1.0, seed=1, kinds=["delay"], delay=1.0)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):  # a PATCH is not retried by urllib3
        custom.patch_namespaced_custom_object_status(*FUNCTIONS, "f", {"status": {"x": 1}},
                                                     _request_timeout=0.3)
    assert status_of(server, "f") == {"x": 1}
    (record,) = [r for r in server.requests if r.method == "PATCH"]
    assert (record.status, record.fault, json.loads(record.body)) == (200, "delay", {"status": {"x": 1}})


def test_a_reset_is_a_tcp_reset(server: ApiServer) -> None:
    server.chaos(rate=1.0, seed=1, kinds=["reset"])
    connection = http.client.HTTPSConnection(server.host, server.port, timeout=5, context=server.client_context())
    connection.request("GET", "/api/v1/namespaces/default/secrets", headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(ConnectionResetError):
        connection.getresponse()
    connection.close()
    assert [(r.status, r.fault) for r in server.requests] == [(0, "reset")]


def test_chaos_is_seeded_at_its_rate_and_ends_with_calm(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    def faults(seed: int) -> list[str]:
        before = len(server.requests)
        server.chaos(rate=0.3, seed=seed, kinds=["500", "503"])
        for _ in range(100):
            with contextlib.suppress(ApiException):
                custom.list_namespaced_custom_object(*FUNCTIONS, _request_timeout=5)
        server.calm()
        return [r.fault for r in server.requests[before:]]

    first = faults(3)
    assert first == faults(3) and first != faults(4)
    assert 12 <= sum(1 for fault in first if fault) <= 48  # 30 of 100, give or take 4 sigma
    custom.list_namespaced_custom_object(*FUNCTIONS)
    assert server.requests[-1].fault == "" and set(CHAOS_KINDS) >= set(server.faults_drawn)
    with pytest.raises(ValueError, match="kinds among"):
        server.chaos(rate=0.2, seed=1, kinds=["teapot"])


def test_a_blackholed_client_hears_nothing_while_others_are_served(
        server: ApiServer, custom: client.CustomObjectsApi, tmp_path: Path) -> None:
    configuration = client.Configuration()
    config.load_kube_config(str(server.write_kubeconfig(tmp_path / "a", token="a")),
                            client_configuration=configuration)
    configuration.retries = False
    cut_off = client.ApiClient(configuration)
    theirs = client.CustomObjectsApi(cut_off)
    recorder = WatchRecorder(theirs.list_namespaced_custom_object, *FUNCTIONS, timeout_seconds=30)
    wait_until(lambda: server.watch_count("functions") == 1, "the client watches")
    server.blackhole("a")
    server.create(function("f"))
    recorder.join()  # its open watch ends abruptly
    assert recorder.events == [] and isinstance(recorder.error, urllib3.exceptions.ProtocolError)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        theirs.list_namespaced_custom_object(*FUNCTIONS, _request_timeout=0.5)
    assert [i["metadata"]["name"] for i in custom.list_namespaced_custom_object(*FUNCTIONS)["items"]] == ["f"]
    server.reconnect("a")
    assert [i["metadata"]["name"] for i in theirs.list_namespaced_custom_object(*FUNCTIONS)["items"]] == ["f"]
    assert {r.token for r in server.requests if r.fault == "blackhole"} == {"a"}
    cut_off.close()
