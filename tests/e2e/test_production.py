"""Running it for months: probes, metrics, leader election, aggregated Events, shutdown."""

from __future__ import annotations

import re
import time

import httpx

from revision_controller.function import GROUP, PLURAL
from revision_controller.leadership import LEASE_NAME
from revision_controller.params import PARAMS_ANNOTATION
from revision_controller.testing import ApiServer
from revision_controller.testing.gitserver import GitServer
from tests.e2e.conftest import (
    INTERVAL,
    NAMESPACE,
    VERSION,
    WITHIN,
    DaemonProcess,
    create,
    events,
    function_manifest,
    status_patches,
    wait_for,
    wait_recorded,
)

PARAMS = "repo-type: git\npolling-interval: 1s"
LEASE_SECONDS = 3.0
LEADER_FLAGS = ("--leader-elect", "--leader-election-namespace", NAMESPACE,
                "--leader-election-lease-duration", "3s", "--leader-election-renew-deadline", "2s",
                "--leader-election-retry-period", "250ms")


def get(daemon: DaemonProcess, path: str, port: str = "probe") -> httpx.Response | None:
    chosen = daemon.probe_port if port == "probe" else daemon.metrics_port
    try:
        return httpx.get(f"http://127.0.0.1:{chosen}{path}", timeout=2)
    except httpx.TransportError:
        return None


def answers(daemon: DaemonProcess, path: str, status: int) -> bool:
    response = get(daemon, path)
    return response is not None and response.status_code == status


def metric(daemon: DaemonProcess, name: str, **labels: str) -> float | None:
    response = get(daemon, "/metrics", port="metrics")
    if response is None:
        return None
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? (\S+)$", re.MULTILINE)
    found = pattern.search(response.text)
    return float(found.group(1)) if found else None


def lease_holder(apiserver: ApiServer) -> str:
    lease = apiserver.get("coordination.k8s.io/v1", "Lease", NAMESPACE, LEASE_NAME) or {}
    return (lease.get("spec") or {}).get("holderIdentity") or ""


def identity(daemon: DaemonProcess) -> str:
    found = re.search(r"revision controller (\S+) starting", daemon.output())
    return found.group(1) if found else ""


def test_probes_and_metrics_follow_polls_changes_and_outages(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("observed", branch="main")
    create(functions, function_manifest("observed", repo.url, PARAMS), repo.head("main"))
    daemon = start_daemon()
    wait_for(lambda: answers(daemon, "/healthz", 200), 10, "/healthz")
    wait_for(lambda: answers(daemon, "/readyz", 200), 10, "/readyz")
    wait_for(lambda: (metric(daemon, "revision_controller_polls_total", provider="git", outcome="success")
                      or 0) >= 1, WITHIN, "a successful poll counted")
    assert metric(daemon, "revision_controller_changes_detected_total", type="source") is None
    second = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "observed", second)
    wait_for(lambda: metric(daemon, "revision_controller_patches_total", result="patched") == 1, 2, "the patch counted")
    assert metric(daemon, "revision_controller_changes_detected_total", type="source") == 1
    assert metric(daemon, "revision_controller_watched_functions") == 1
    assert metric(daemon, "revision_controller_targets") == 1
    assert metric(daemon, "revision_controller_leader") == 1
    last = metric(daemon, "revision_controller_last_successful_poll_timestamp_seconds",
                  target=f"git {repo.url}@main")
    assert last is not None and abs(time.time() - last) < 5

    apiserver.stop()
    response = wait_for(lambda: (r := get(daemon, "/readyz")) is not None and r.status_code == 503 and r,
                        10, "/readyz to fail while the API server is away")
    assert "[-]watch" in response.text
    assert answers(daemon, "/healthz", 200)  # alive: a restart would not bring the API server back
    apiserver.start()
    wait_for(lambda: answers(daemon, "/readyz", 200), 15, "/readyz again")


def two_replicas(apiserver: ApiServer, start_daemon) -> tuple[DaemonProcess, DaemonProcess]:
    """Two daemons with leader election, once one holds the Lease: (leader, standby)."""
    replicas = [start_daemon(*LEADER_FLAGS), start_daemon(*LEADER_FLAGS)]
    holder = wait_for(lambda: lease_holder(apiserver), 10, "a leader")
    wait_for(lambda: all(identity(replica) for replica in replicas), 5, "both replicas started")
    (leader,) = [replica for replica in replicas if identity(replica) == holder]
    (standby,) = [replica for replica in replicas if replica is not leader]
    return leader, standby


def test_one_of_two_replicas_acts_and_a_standby_takes_over_when_it_dies(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("elected", branch="main")
    create(functions, function_manifest("elected", repo.url, PARAMS), repo.head("main"))
    leader, standby = two_replicas(apiserver, start_daemon)
    wait_for(lambda: metric(standby, "revision_controller_leader") == 0, 5, "the standby's leader gauge")
    assert answers(standby, "/readyz", 200)  # a standby is ready: it watches and stands by

    second = repo.commit("first change", files={"a": "1"})
    wait_recorded(functions, "elected", second)
    wait_for(lambda: events(apiserver, "SourceChanged", "elected"), 2, "the first SourceChanged")
    assert "source changed" in leader.output() and "source changed" not in standby.output()
    assert metric(standby, "revision_controller_polls_total", provider="git", outcome="success") is None

    leader.kill()
    killed = time.monotonic()
    third = repo.commit("second change", files={"a": "2"})
    wait_recorded(functions, "elected", third, seconds=LEASE_SECONDS + INTERVAL + 4)
    assert time.monotonic() - killed <= LEASE_SECONDS + INTERVAL + 4
    assert lease_holder(apiserver) == identity(standby)
    wait_for(lambda: len(events(apiserver, "SourceChanged", "elected")) == 2, 2, "the second SourceChanged")
    assert status_patches(apiserver, "elected") == 1 + 2  # the seeding, then one patch per change


def test_sigterm_releases_the_lease_so_the_standby_takes_over_at_once(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("handover", branch="main")
    create(functions, function_manifest("handover", repo.url, PARAMS), repo.head("main"))
    leader, standby = two_replicas(apiserver, start_daemon)
    stopped = time.monotonic()
    assert leader.stop() == 0
    wait_for(lambda: lease_holder(apiserver) == identity(standby), LEASE_SECONDS - 1, "an early takeover")
    assert time.monotonic() - stopped < LEASE_SECONDS
    second = repo.commit("change", files={"a": "1"})
    wait_recorded(functions, "handover", second)


def test_a_repeated_notice_counts_up_on_one_event(
        apiserver: ApiServer, gitserver: GitServer, functions, start_daemon) -> None:
    repo = gitserver.create_repository("flaky", branch="main")
    create(functions, function_manifest("flaky", repo.url, "polling-interval: often"), repo.head("main"))
    start_daemon()
    wait_for(lambda: events(apiserver, "InvalidParameters", "flaky"), 10, "the first InvalidParameters")

    def set_params(params: str) -> None:
        functions.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "flaky",
                                                 {"metadata": {"annotations": {PARAMS_ANNOTATION: params}}})

    set_params(PARAMS)
    wait_for(lambda: gitserver.ls_remote_count("flaky") >= 1, 5, "the fixed Function polled")
    set_params("polling-interval: often")
    wait_for(lambda: [e for e in events(apiserver, "InvalidParameters", "flaky") if e["count"] == 2],
             5, "the same Event counted twice")
    assert len(events(apiserver, "InvalidParameters", "flaky")) == 1
