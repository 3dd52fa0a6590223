"""The daemon as its own process, against the API stand-in and a real git server on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from revision_controller.function import GROUP, PLURAL
from revision_controller.kube import api_client
from revision_controller.params import PARAMS_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.testing import ApiServer
from revision_controller.testing.gitserver import GitServer

NAMESPACE = "default"
STOP_SECONDS = 5.0


def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy, or fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def gitserver() -> Iterator[GitServer]:
    with GitServer() as server:
        yield server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DaemonProcess:
    def __init__(self, kubeconfig: Path, log: Path, args: list[str]) -> None:
        self.log = log
        self.probe_port, self.metrics_port = free_port(), free_port()
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "revision_controller.cli", "run", "--kubeconfig", str(kubeconfig),
             "--log-level", "debug", "--health-probe-bind-address", f"127.0.0.1:{self.probe_port}",
             "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}", *args],
            stdout=self._out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: a crash or a lost node, with no chance to step down."""
        self.process.kill()
        self.process.wait(STOP_SECONDS)

    def stop(self) -> int:
        """SIGTERM, as the kubelet sends it; the exit code, which must come within a few seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"daemon did not stop within {STOP_SECONDS}s of SIGTERM:\n{self.output()}")
        finally:
            self._out.close()


@pytest.fixture
def start_daemon(apiserver: ApiServer, tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(*args: str) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path / "kubeconfig", tmp_path / f"daemon-{len(started)}.log", list(args))
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        killed = daemon.process.returncode == -signal.SIGKILL
        code = daemon.stop()
        assert killed or code == 0, f"daemon exited {code}:\n{daemon.output()}"


def function_manifest(name: str, url: str, params: str | None = "polling-interval: 1s",
                      switch: str = "enable", revision: str = "main",
                      credentials: str | None = None) -> dict:
    annotations = {SWITCH_ANNOTATION: switch}
    if params is not None:
        annotations[PARAMS_ANNOTATION] = params
    src_repo: dict[str, Any] = {"url": url, "revision": revision, "sourceSubPath": f"functions/{name}"}
    if credentials:
        src_repo["credentials"] = {"name": credentials}
    return {
        "apiVersion": "core.openfunction.io/v1beta2",
        "kind": "Function",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations},
        "spec": {"version": "v1.0.0", "image": f"example/{name}:v1",
                 "build": {"builder": "openfunction/builder-go:latest", "srcRepo": src_repo},
                 "serving": {"triggers": {"http": {"port": 8080}}}},
    }


VERSION = "v1beta2"
INTERVAL = 1.0
WITHIN = INTERVAL + 2.0  # the promise: a push is seen within the interval plus two seconds
# The daemon process starts (a few seconds on a busy machine), then polls every target once
# within ten seconds, spread over them.
FIRST_POLL = 15.0


@pytest.fixture
def functions(apiserver: ApiServer, tmp_path: Path) -> client.CustomObjectsApi:
    """Functions through the real client, the way OpenFunction and kubectl see them."""
    return client.CustomObjectsApi(api_client(str(tmp_path / "kubeconfig")))


def create(functions: client.CustomObjectsApi, manifest: dict, built_from: str | None) -> None:
    """Create a Function and, like OpenFunction after a build, record its commit."""
    functions.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, manifest)
    if built_from:
        functions.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, PLURAL, manifest["metadata"]["name"],
            {"status": {"build": {"state": "Succeeded"},
                        "sources": [{"name": "default", "git": {"commitSha": built_from}}]}})


def status(functions: client.CustomObjectsApi, name: str) -> dict:
    return functions.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name).get("status") or {}


def recorded(functions: client.CustomObjectsApi, name: str) -> str:
    for source in status(functions, name).get("sources") or []:
        if source.get("name") == "default":
            return (source.get("git") or {}).get("commitSha", "")
    return ""


def wait_recorded(functions: client.CustomObjectsApi, name: str, commit: str, seconds: float = WITHIN) -> None:
    wait_for(lambda: recorded(functions, name) == commit, seconds, f"{name} to record {commit[:12]}")


def events(apiserver: ApiServer, reason: str, name: str | None = None) -> list[dict]:
    return [event for event in apiserver.list("v1", "Event", namespace=NAMESPACE)
            if event["reason"] == reason and name in (None, event["involvedObject"]["name"])]


def status_patches(apiserver: ApiServer, name: str) -> int:
    return apiserver.count_requests("PATCH", rf"/functions/{name}/status$")


def ls_remotes(gitserver: GitServer, repository: str) -> int:
    return gitserver.ls_remote_count(repository)
