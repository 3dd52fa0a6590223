"""The daemon against the real CNCF registry: type image and type source-image."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from revision_controller.function import GROUP, PLURAL
from revision_controller.params import PARAMS_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.testing import ApiServer
from revision_controller.testing.registry import Registry, require_registry
from tests.canary import secret
from tests.e2e.conftest import FIRST_POLL, NAMESPACE, VERSION, WITHIN, events, wait_for

SECRET_PASSWORD = secret("registry-password")


@pytest.fixture
def registry() -> Iterator[Registry]:
    require_registry()
    with Registry() as reg:
        yield reg


@pytest.fixture
def private_registry() -> Iterator[Registry]:
    require_registry()
    with Registry(auth="htpasswd", username="puller", password=SECRET_PASSWORD) as reg:
        yield reg


def image_function(name: str, params: str, image: str = "", bundle: str = "",
                   credentials: str = "") -> dict:
    spec: dict = {"version": "v1.0.0", "image": image or "example/unused:v1",
                  "serving": {"triggers": {"http": {"port": 8080}}}}
    if bundle:
        spec["build"] = {"builder": "openfunction/builder-go:latest",
                         "srcRepo": {"bundleContainer": {"image": bundle}}}
    if credentials:
        spec["imageCredentials"] = {"name": credentials}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Function",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "annotations": {SWITCH_ANNOTATION: "enable", PARAMS_ANNOTATION: params}},
            "spec": spec}


def create_with_status(functions: client.CustomObjectsApi, manifest: dict, status: dict) -> None:
    functions.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, manifest)
    functions.patch_namespaced_custom_object_status(GROUP, VERSION, NAMESPACE, PLURAL,
                                                    manifest["metadata"]["name"], {"status": status})


def status(functions: client.CustomObjectsApi, name: str) -> dict:
    return functions.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name).get("status") or {}


def served_digest(functions: client.CustomObjectsApi, name: str) -> str:
    return (status(functions, name).get("revision") or {}).get("imageDigest", "")


def test_a_pushed_tag_redeploys_an_image_function_within_the_interval_plus_two_seconds(
        apiserver: ApiServer, registry: Registry, functions, start_daemon) -> None:
    first = registry.push_image("app", "v1", b"one")
    create_with_status(functions, image_function(
        "served", "type: image\ninsecure-registry: true\npolling-interval: 1s", image=registry.reference("app", "v1")),
        {"serving": {"state": "Running", "resourceHash": "abc"}, "revision": {"imageDigest": first}})
    daemon = start_daemon()
    wait_for(lambda: "polling image" in daemon.output(), 10, "the image target planned")
    second = registry.push_image("app", "v1", b"two")
    wait_for(lambda: served_digest(functions, "served") == second, WITHIN, "the new digest")
    serving = status(functions, "served")["serving"]
    assert (serving["state"], serving["resourceHash"]) == ("", "")
    (event,) = wait_for(lambda: events(apiserver, "ImageChanged", "served"), 2, "ImageChanged")
    assert first in event["message"] and second in event["message"]


def test_a_pushed_bundle_rebuilds_a_source_image_function(
        apiserver: ApiServer, registry: Registry, functions, start_daemon) -> None:
    first = registry.push_image("src", "latest", b"source one")
    bundle = registry.reference("src")
    create_with_status(functions, image_function(
        "bundled", "type: source-image\ninsecure-registry: true\npolling-interval: 1s", bundle=bundle),
        {"build": {"state": "Succeeded"}, "sources": [{"name": "default", "bundle": {"digest": first}}]})
    daemon = start_daemon()
    wait_for(lambda: "polling image" in daemon.output(), 10, "the image target planned")
    second = registry.push_image("src", "latest", b"source two")
    wait_for(lambda: status(functions, "bundled").get("sources") ==
             [{"name": "default", "bundle": {"digest": second}}], WITHIN, "the new bundle digest")
    assert "build" not in status(functions, "bundled")
    wait_for(lambda: events(apiserver, "SourceImageChanged", "bundled"), 2, "SourceImageChanged")


def test_a_multi_architecture_image_records_the_index_digest(
        apiserver: ApiServer, registry: Registry, functions, start_daemon) -> None:
    registry.push_image("multi", "v1", b"single")
    create_with_status(functions, image_function(
        "multi", "type: image\ninsecure-registry: true\npolling-interval: 1s", image=registry.reference("multi", "v1")),
        {"revision": {"imageDigest": "sha256:" + "0" * 64}})
    index = registry.push_index("multi", "v1", ["linux/amd64", "linux/arm64"])
    start_daemon()
    wait_for(lambda: served_digest(functions, "multi") == index, WITHIN, "the index digest")


def test_a_private_registry_is_read_with_image_credentials_which_never_leak(
        apiserver: ApiServer, private_registry: Registry, functions, start_daemon) -> None:
    first = private_registry.push_image("private", "v1", b"one")
    apiserver.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                      "metadata": {"name": "pull-secret", "namespace": NAMESPACE},
                      "data": private_registry.secret_data()})
    create_with_status(functions, image_function(
        "private", "type: image\ninsecure-registry: true\npolling-interval: 1s",
        image=private_registry.reference("private", "v1"), credentials="pull-secret"),
        {"revision": {"imageDigest": first}})
    daemon = start_daemon()
    wait_for(lambda: "polling image" in daemon.output(), 10, "the image target planned")
    second = private_registry.push_image("private", "v1", b"two")
    wait_for(lambda: served_digest(functions, "private") == second, WITHIN, "the new digest")
    assert SECRET_PASSWORD not in daemon.output() + str(apiserver.list("v1", "Event", NAMESPACE))


def test_a_plain_http_registry_is_refused_without_insecure_registry(
        apiserver: ApiServer, registry: Registry, functions, start_daemon) -> None:
    first = registry.push_image("plain", "v1", b"one")
    create_with_status(functions, image_function(
        "plain", "type: image\npolling-interval: 1s", image=registry.reference("plain", "v1")),
        {"revision": {"imageDigest": first}})
    start_daemon()
    (event,) = wait_for(lambda: events(apiserver, "PollFailed", "plain"), FIRST_POLL, "PollFailed")
    assert "insecure-registry" in event["message"]
    assert served_digest(functions, "plain") == first


def test_an_image_pinned_by_digest_says_why_it_is_not_watched(
        apiserver: ApiServer, registry: Registry, functions, start_daemon) -> None:
    first = registry.push_image("pinned", "v1", b"one")
    create_with_status(functions, image_function(
        "pinned", "type: image\ninsecure-registry: true", image=f"{registry.host}/pinned@{first}"),
        {"revision": {"imageDigest": first}})
    start_daemon()
    (event,) = wait_for(lambda: events(apiserver, "NotWatched", "pinned"), 10, "NotWatched")
    assert "pinned by digest" in event["message"]


def test_paths_on_an_image_function_is_ignored_with_a_warning_and_the_image_still_watched(
        apiserver: ApiServer, registry: Registry, functions, start_daemon) -> None:
    first = registry.push_image("pathed", "v1", b"one")
    create_with_status(functions, image_function(
        "pathed", 'type: image\ninsecure-registry: true\npolling-interval: 1s\npaths: ["src"]',
        image=registry.reference("pathed", "v1")),
        {"serving": {"state": "Running", "resourceHash": "abc"}, "revision": {"imageDigest": first}})
    start_daemon()
    (told,) = wait_for(lambda: events(apiserver, "UnknownParameters", "pathed"), FIRST_POLL, "UnknownParameters")
    assert told["type"] == "Warning" and "paths is ignored for type image" in told["message"]
    second = registry.push_image("pathed", "v1", b"two")
    wait_for(lambda: served_digest(functions, "pathed") == second, WITHIN, "the new digest despite paths")
