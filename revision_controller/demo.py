"""`revision-controller demo`: the whole loop on one machine, with nothing but this package.

The demo plays OpenFunction's part: it creates a Function, records its first
build in the status, then commits to the repository and shows the status
patch the daemon sends in answer. With `keep`, everything then stays up as a
playground (see `playground`) until Ctrl-C, SIGTERM or SIGHUP. Any of them, noted by
`interrupts`, ends the next wait; the `with` blocks then stop everything the
demo started and remove its files.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from revision_controller.daemon import Daemon, DaemonConfig
from revision_controller.function import DEFAULT_SOURCE, GROUP, PLURAL
from revision_controller.interrupts import Interrupted, Interrupts
from revision_controller.kube import api_client
from revision_controller.params import PARAMS_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.testing import ApiServer
from revision_controller.testing.gitserver import GitServer, HostedRepository

NAMESPACE = "default"
NAME = "demo-function"
VERSION = "v1beta2"
DEADLINE_SECONDS = 25.0


def say(text: str) -> None:
    # One write for the whole line: a daemon log line, on the same terminal, can then not cut into it.
    sys.stdout.write(f"[demo] {text}\n")
    sys.stdout.flush()


def function_manifest(url: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "annotations": {
            SWITCH_ANNOTATION: "enable",
            PARAMS_ANNOTATION: "type: source\nrepo-type: git\npolling-interval: 2s\n"}},
        "spec": {"version": "v2.0.0", "image": "example/demo-function:v1",
                 "build": {"builder": "openfunction/builder-go:latest",
                           "srcRepo": {"url": url, "revision": "main", "sourceSubPath": "hello"}},
                 "serving": {"triggers": {"http": {"port": 8080}}}},
    }


def built_status(commit: str) -> dict[str, Any]:
    """What OpenFunction's build writes when it finishes."""
    return {"status": {"build": {"state": "Succeeded", "resourceHash": "demo"},
                       "sources": [{"name": DEFAULT_SOURCE, "git": {"commitSha": commit}}]}}


def wait_until(condition: Any, seconds: float, interrupts: Interrupts) -> Any:
    """The condition's first true value within `seconds`, else None; Interrupted on a signal."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        interrupts.sleep(0.1)
    return None


def run_demo(keep: bool = False) -> int:
    """The loop; then, with `keep`, the playground until a signal. 0 when the loop worked (and
    the playground ended on a signal), 1 when it did not, 128 + the signal's number (130 for
    Ctrl-C) when a signal cut the loop short."""
    with Interrupts() as interrupts:
        try:
            return _run(keep, interrupts)
        except Interrupted as interrupted:
            say("interrupted: everything the demo started is stopped and its files removed")
            return interrupted.status


def _run(keep: bool, interrupts: Interrupts) -> int:
    started = time.monotonic()
    with (tempfile.TemporaryDirectory(prefix="revision-controller-demo-") as tmp, ApiServer() as apiserver,
          GitServer(accept_pushes=True) as gitserver):
        kubeconfig = apiserver.write_kubeconfig(Path(tmp) / "kubeconfig")
        say(f"Kubernetes API stand-in serving on {apiserver.url}")
        repo = gitserver.create_repository("demo", branch="main")
        first = repo.head("main")
        assert first is not None, "create_repository makes the first commit"
        say(f"git repository {repo.url}, branch main at {first[:12]}")

        functions = client.CustomObjectsApi(api_client(str(kubeconfig)))
        functions.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, function_manifest(repo.url))
        functions.patch_namespaced_custom_object_status(GROUP, VERSION, NAMESPACE, PLURAL, NAME,
                                                        built_status(first))
        say(f"Function {NAMESPACE}/{NAME} created; its last build used commit {first[:12]}")

        daemon = Daemon(DaemonConfig(kubeconfig=str(kubeconfig), health_probe_address="0", metrics_address="0"))
        runner = threading.Thread(target=daemon.run, name="daemon")
        runner.start()
        try:
            if not _loop(daemon, apiserver, functions, repo, first, interrupts):
                return 1
            say(f"done in {time.monotonic() - started:.1f}s")
            if keep:
                from revision_controller.playground import Playground, stay
                stay(Playground(apiserver, kubeconfig, repo), interrupts)
        finally:
            daemon.stop()
            runner.join()
    if keep:
        say("stopped: everything the demo started is stopped and its files removed")
    return 0


def _loop(daemon: Daemon, apiserver: ApiServer, functions: client.CustomObjectsApi, repo: HostedRepository,
          first: str, interrupts: Interrupts) -> bool:
    """Commit, then show the status patch and the Event the daemon answers with."""
    if not wait_until(daemon.scheduler.planned, DEADLINE_SECONDS, interrupts):
        say("FAILED: the daemon did not start watching the Function")
        return False
    second = repo.commit("Say hello louder", files={"hello/handler.go": "package hello // v2\n"})
    say(f"committed {second[:12]} to main; waiting for the daemon to notice")
    patched = wait_until(lambda: _recorded(functions, second), DEADLINE_SECONDS, interrupts)
    if not patched:
        say(f"FAILED: the Function's status did not move to {second[:12]}")
        return False
    say(f"status before: {json.dumps(built_status(first)['status'])}")
    say(f"status after:  {json.dumps(patched.get('status'))}")
    say("status.build is gone and the new commit is recorded, so OpenFunction builds again")
    # The Event follows the patch; wait for it rather than list too early.
    for event in wait_until(lambda: _events_once_told(apiserver), DEADLINE_SECONDS, interrupts) or []:
        say(f"Event {event['type']} {event['reason']}: {event['message']}")
    return True


def _events_once_told(apiserver: ApiServer) -> list[dict[str, Any]]:
    events = apiserver.list("v1", "Event", namespace=NAMESPACE)
    return events if any(event["reason"] == "SourceChanged" for event in events) else []


def _recorded(functions: client.CustomObjectsApi, commit: str) -> dict[str, Any] | None:
    obj = functions.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME)
    if not isinstance(obj, dict):
        return None
    sources = (obj.get("status") or {}).get("sources") or []
    return obj if any((s.get("git") or {}).get("commitSha") == commit for s in sources) else None
