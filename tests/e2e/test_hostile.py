"""Junk a tenant may write into one Function costs that Function only: its own Event, while a
control Function beside it is patched on time, through the daemon process."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from revision_controller.function import GROUP, PLURAL, view_of
from revision_controller.params import DEFAULT_POLLING_INTERVAL, PARAMS_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.planning import Plan, plan_function
from revision_controller.targets import ImageTarget, Target
from revision_controller.testing import ApiServer
from revision_controller.testing.gitserver import GitServer
from revision_controller.testing.registry import Registry, require_registry
from tests.canary import secret
from tests.e2e.conftest import (
    FIRST_POLL,
    NAMESPACE,
    VERSION,
    WITHIN,
    DaemonProcess,
    create,
    events,
    function_manifest,
    recorded,
    status_patches,
    wait_for,
    wait_recorded,
)
from tests.e2e.test_images import create_with_status, image_function, served_digest
from tests.fuzz import strategies

GOOD = "repo-type: git\npolling-interval: 1s"
IMAGE = "type: image\ninsecure-registry: true\npolling-interval: 1s"
# Each of these once raised out of planning and stopped the watch for every Function after it.
JUNK = {
    "deep": ("polling-interval: " + "[" * 3000 + "1s" + "]" * 3000, None),
    "tagged-int": ("polling-interval: !!int 1s", None),
    "tagged-time": ("repo-type: git\npolling-interval: !!timestamp x", None),
    "forever": ("repo-type: git\npolling-interval: 99999999999999999999h", None),
    "bracket": (GOOD, "http://[::1:8080/x"),
    "zone": (GOOD, "https://[fe80::1%25/a/b"),
    "port": (GOOD, "http://127.0.0.1:1 2/x"),
    # Once planned, and then failed at every poll outside the providers' error handling.
    "base-port": ("repo-type: github\nbase-url: http://127.0.0.1:1 2/api/v3", "https://github.com/o/r"),
}


def event_of(apiserver: ApiServer, reason: str, name: str) -> dict:
    """The one Event `reason` on Function `name`, once it is there."""
    (event,) = wait_for(lambda: events(apiserver, reason, name), FIRST_POLL, f"{name}'s {reason} Event")
    return event


def test_each_hostile_function_gets_its_own_event_and_a_control_function_is_patched_on_time(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("control", branch="main")
    first = repo.head("main")
    for name, (params, url) in JUNK.items():  # a Secret that is not there: a poll would go nowhere
        create(functions, function_manifest(name, url or repo.url, params, credentials="missing"), first)
    create(functions, function_manifest("control", repo.url, GOOD), first)
    start_daemon()
    for name in JUNK:
        told = event_of(apiserver, "InvalidParameters", name)
        assert told["type"] == "Warning" and len(told["message"]) < 500
    wait_for(lambda: gitserver.ls_remote_count("control") >= 1, FIRST_POLL, "the control's first poll")
    moved = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "control", moved)
    for name in JUNK:  # created after the junk, changed after it: still seen
        assert recorded(functions, name) == first
    late = function_manifest("late", repo.url, GOOD)
    create(functions, late, first)
    wait_recorded(functions, "late", moved, seconds=FIRST_POLL)


# --- Secrets ---------------------------------------------------------------------------------

def metric(daemon: DaemonProcess, series: str) -> float:
    """A series of the daemon's /metrics; 0 until it appears."""
    text = httpx.get(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def b64(raw: bytes | str) -> str:
    return base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


def nested(depth: int, core: str = "") -> str:
    return "[" * depth + core + "]" * depth


def put_junk_secret(apiserver: ApiServer, name: str, secret_type: str, data: dict[str, str]) -> None:
    apiserver.create({"apiVersion": "v1", "kind": "Secret", "type": secret_type,
                      "metadata": {"name": name, "namespace": NAMESPACE}, "data": data})


# Every one carries the canary (tests/canary.py), so that a leak of its content would be seen.
JUNK_GIT_SECRETS = {  # name: (data, what the PollFailed Event says)
    "token-lines": ({"password": b64(f"{secret('a')}\n{secret('b')}")}, "line breaks"),
    "token-missing": ({"username": b64(secret("user"))}, "has no key 'password'"),
    "token-huge": ({"password": b64(secret("huge") * 2_000)}, "more than a git token has"),
    "token-binary": ({"password": b64(b"\xff\xfe" + secret("bin").encode())}, "not base64-encoded text"),
    "token-unicode": ({"password": b64(f"{secret('u')}é")}, "printable ASCII"),
}


def test_a_function_whose_git_secret_is_junk_is_told_in_its_own_event_while_a_control_is_patched(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("control", branch="main")
    first = repo.head("main")
    for name, (data, _) in JUNK_GIT_SECRETS.items():
        put_junk_secret(apiserver, name, "Opaque", data)
        create(functions, function_manifest(name, repo.url, GOOD, credentials=name), first)
    create(functions, function_manifest("control", repo.url, GOOD), first)
    start_daemon()
    for name, (_, said) in JUNK_GIT_SECRETS.items():
        told = event_of(apiserver, "PollFailed", name)
        assert said in told["message"] and f"Secret {NAMESPACE}/{name}" in told["message"], told["message"]
        assert "bug" not in told["message"]
    wait_for(lambda: gitserver.ls_remote_count("control") >= 1, FIRST_POLL, "the control's first poll")
    moved = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "control", moved)
    assert all(recorded(functions, name) == first for name in JUNK_GIT_SECRETS)


@pytest.fixture
def registry() -> Iterator[Registry]:
    require_registry()
    with Registry() as reg:
        yield reg


def docker_config(document: str) -> dict[str, str]:
    return {".dockerconfigjson": b64(document)}


def auths_for(host: str, entry: str) -> str:
    return f'{{"auths": {{"{host}": {entry}}}, "canary": "{secret("config")}"}}'


def junk_registry_secrets(host: str) -> dict[str, tuple[dict[str, str], str]]:
    return {  # name: (data, what the PollFailed Event says)
        "deep": (docker_config(auths_for(host, nested(1_000, f'"{secret("deep")}"'))), "nested far deeper"),
        "deeper": (docker_config(f'{{"canary": "{secret("deeper")}", "auths": {nested(100_000)}}}'),
                   "nested far deeper"),
        "auths-list": (docker_config(f'{{"auths": ["{secret("list")}"]}}'), "'auths' mapping"),
        "auth-not-base64": (docker_config(auths_for(host, f'{{"auth": "{secret("raw")}!"}}')),
                            "'auth' is not base64"),
        "auth-a-number": (docker_config(auths_for(host, '{"auth": 12345}')), "'auth' is not base64"),
        "username-missing": (docker_config(auths_for(host, f'{{"password": "{secret("p")}"}}')),
                             "neither 'auth' nor"),
        "not-utf8": ({".dockerconfigjson": b64(b"\xff\xfe{" + secret("bytes").encode())}, "not base64-encoded JSON"),
    }


def test_an_image_function_whose_docker_config_is_junk_is_told_in_its_own_event_while_a_control_is_patched(
        apiserver: ApiServer, registry: Registry, functions, start_daemon) -> None:
    first = registry.push_image("app", "v1", b"one")
    image = registry.reference("app", "v1")
    served = {"serving": {"state": "Running", "resourceHash": "abc"}, "revision": {"imageDigest": first}}
    junk = junk_registry_secrets(registry.host)
    for name, (data, _) in junk.items():
        put_junk_secret(apiserver, name, "kubernetes.io/dockerconfigjson", data)
        create_with_status(functions, image_function(name, IMAGE, image=image, credentials=name), served)
    create_with_status(functions, image_function("control", IMAGE, image=image), served)
    daemon = start_daemon()
    for name, (_, said) in junk.items():
        told = event_of(apiserver, "PollFailed", name)
        assert said in told["message"] and f"Secret {NAMESPACE}/{name}" in told["message"], told["message"]
        assert "bug" not in told["message"] and len(told["message"]) < 500
    wait_for(lambda: metric(daemon, 'revision_controller_polls_total{outcome="success",provider="registry"}'),
             FIRST_POLL, "the control's first poll")
    second = registry.push_image("app", "v1", b"two")
    wait_for(lambda: served_digest(functions, "control") == second, WITHIN, "the control's new digest")
    assert all(served_digest(functions, name) == first for name in junk)


# --- status shapes ---------------------------------------------------------------------------

JUNK_STATUS = {  # what a status written by hand, or by a buggy writer, may hold
    "sources-number": {"sources": 5},
    "sources-text": {"sources": "default"},
    "sources-nested": {"sources": [[[[{"name": "default"}]]]], "build": [1, [2, [3]]]},
    "commit-number": {"sources": [{"name": "default", "git": {"commitSha": 12345}}]},
    "git-text": {"sources": [{"name": "default", "git": "abc"}, None, 7]},
    "deep": {"sources": [{"name": "default", "git": {"commitSha": json.loads(nested(200, "1"))}}], "revision": []},
}


def test_a_function_whose_status_is_junk_is_left_alone_and_a_control_is_patched_on_time(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    """No commit is recorded in a status of another shape, and a Function without one is not
    rebuilt (its first build records it): the daemon polls it and leaves it alone."""
    repo = gitserver.create_repository("control", branch="main")
    first = repo.head("main")
    for name, junk in JUNK_STATUS.items():
        create(functions, function_manifest(name, repo.url, GOOD), None)
        functions.patch_namespaced_custom_object_status(GROUP, VERSION, NAMESPACE, PLURAL, name,
                                                        {"status": json.loads(json.dumps(junk))})
    create(functions, function_manifest("control", repo.url, GOOD), first)
    daemon = start_daemon()
    wait_for(lambda: gitserver.ls_remote_count("control") >= 1, FIRST_POLL, "the first poll")
    moved = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "control", moved)
    patches = {name: status_patches(apiserver, name) for name in JUNK_STATUS}
    assert patches == dict.fromkeys(JUNK_STATUS, 1)  # the test's own, which wrote the junk
    assert daemon.process.poll() is None and "Traceback" not in daemon.output()
    # OpenFunction's next build records a commit: from then on it is watched as any other
    functions.patch_namespaced_custom_object_status(
        GROUP, VERSION, NAMESPACE, PLURAL, "commit-number",
        {"status": {"sources": [{"name": "default", "git": {"commitSha": first}}]}})
    wait_recorded(functions, "commit-number", moved, seconds=WITHIN)


# --- a batch drawn from the fuzzing strategies ------------------------------------------------

BATCH = 150


def drawn(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """`count` values of `strategy`, the same at every run."""
    found: list[Any] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found


def batch_manifest(name: str, obj: Any) -> dict[str, Any]:
    """A drawn Function in the shape the API server takes: a name, annotations of strings, the
    switch on; spec and status as drawn, junk at any level below."""
    root = obj if isinstance(obj, dict) else {}
    metadata = root.get("metadata") if isinstance(root.get("metadata"), dict) else {}
    annotations = metadata.get("annotations") if isinstance(metadata.get("annotations"), dict) else {}
    params = annotations.get(PARAMS_ANNOTATION)
    manifest = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Function",
                "metadata": {"name": name, "namespace": NAMESPACE,
                             "annotations": {SWITCH_ANNOTATION: "enable",
                                             **({PARAMS_ANNOTATION: params} if isinstance(params, str) else {})}},
                "spec": root.get("spec") if isinstance(root.get("spec"), dict) else {}}
    return json.loads(json.dumps(manifest))


def on_loopback(target: Target) -> bool:
    """Whether every request polling `target` may send goes to this machine."""
    if isinstance(target, ImageTarget):
        urls = [f"//{target.reference.registry}"]
    else:
        source = target.source
        urls = [url for url in (source.server, source.clone_url) if url]
        urls += [source.repository] if source.repo_type == "git" else []
    try:
        return all(urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1") for url in urls)
    except ValueError:
        return False


def test_a_batch_of_drawn_junk_functions_each_get_their_own_event_while_a_control_is_patched_on_time(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    """Functions drawn from tests/fuzz's strategies (a fixed seed), created through the real client:
    each one is watched or told why not in its own Event, and polls of its target go nowhere but
    this machine (drawn Functions that would poll elsewhere are left out)."""
    repo = gitserver.create_repository("control", branch="main")
    first = repo.head("main")
    expected: dict[str, Plan] = {}
    for number, obj in enumerate(drawn(strategies.neighbour_functions(), BATCH)):
        manifest = batch_manifest(f"junk-{number}", obj)
        plan = plan_function(view_of(manifest), DEFAULT_POLLING_INTERVAL)
        if plan.subscription and not on_loopback(plan.subscription.target):
            continue
        create(functions, manifest, None)
        status = obj.get("status") if isinstance(obj, dict) else None
        if isinstance(status, dict):
            functions.patch_namespaced_custom_object_status(GROUP, VERSION, NAMESPACE, PLURAL, manifest["metadata"]
                                                            ["name"], {"status": json.loads(json.dumps(status))})
        expected[manifest["metadata"]["name"]] = plan
    create(functions, function_manifest("control", repo.url, GOOD), first)
    watched = [name for name, plan in expected.items() if plan.subscription]
    # Those not watched say why; those watched poll closed ports of this machine, or name no Secret.
    told = {(name, plan.notice.reason) for name, plan in expected.items() if plan.notice}
    told |= {(name, "PollFailed") for name in watched}
    assert len(told) > BATCH / 2 and len(watched) > 10, (len(told), len(watched))
    daemon = start_daemon()

    def missing() -> set[tuple[str, str]]:
        return told - {(event["involvedObject"]["name"], event["reason"])
                       for event in apiserver.list("v1", "Event", namespace=NAMESPACE)}

    wait_for(lambda: not missing(), FIRST_POLL, f"{len(told)} Events, one for each junk Function")
    assert metric(daemon, "revision_controller_watched_functions") == len(watched) + 1
    failures = [event["message"] for event in apiserver.list("v1", "Event", namespace=NAMESPACE)
                if event["reason"] == "PollFailed"]
    assert not [message for message in failures if "bug" in message]
    wait_for(lambda: gitserver.ls_remote_count("control") >= 1, FIRST_POLL, "the control's first poll")
    moved = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "control", moved)
    assert httpx.get(f"http://127.0.0.1:{daemon.probe_port}/readyz", timeout=5).status_code == 200
    assert daemon.process.poll() is None
