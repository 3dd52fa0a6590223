"""Leader election against the stand-in API server, over HTTP with the real kubernetes client."""

from __future__ import annotations

import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from revision_controller.leadership import LEASE_NAME, LeaderElector, LeaseConfig, MicroTime
from revision_controller.testing import ApiServer

NS = "default"
LEASE, RENEW, RETRY = 2.0, 1.0, 0.1
POLL = 0.02
LEASES = r"/apis/coordination\.k8s\.io/v1/namespaces/default/leases"
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
REPO_ROOT = Path(__file__).resolve().parents[1]
DOOMED_REPLICA = """
import sys, threading
from kubernetes import config
from revision_controller.leadership import LeaderElector, LeaseConfig
api = config.new_client_from_config(config_file=sys.argv[1])
lease = LeaseConfig("default", "doomed", lease_duration=2.0, renew_deadline=1.0, retry_period=0.1)
LeaderElector(api, lease, lambda: None, lambda: None).run(threading.Event())
"""


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0,
               interval: float = POLL) -> float:
    """When `condition` first held, by time.monotonic()."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        time.sleep(interval)
    return time.monotonic()


def holds_for(condition: Callable[[], bool], seconds: float, interval: float = POLL) -> None:
    """Assert `condition` at every check for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition()
        time.sleep(interval)


def lease_config(identity: str, name: str = LEASE_NAME) -> LeaseConfig:
    return LeaseConfig(NS, identity, name, lease_duration=LEASE, renew_deadline=RENEW, retry_period=RETRY)


class Replica:
    """One elector on its own thread with its own stop event, counting its callbacks."""

    def __init__(self, kubeconfig: Path, identity: str, name: str = LEASE_NAME,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.identity = identity
        self.started = self.stopped = 0
        self.elector = LeaderElector(config.new_client_from_config(config_file=str(kubeconfig)),
                                     lease_config(identity, name), self._on_started, self._on_stopped, clock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.elector.run, args=(self._stop,), name=identity,
                                        daemon=True)

    def start(self) -> Replica:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), f"{self.identity} did not stop"

    def _on_started(self) -> None:
        self.started += 1

    def _on_stopped(self) -> None:
        self.stopped += 1


class Relay:
    """A TCP relay to the stand-in that can start swallowing every byte, as a hung server does."""

    def __init__(self, target_port: int) -> None:
        self.hung = threading.Event()
        self._target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        for sock in [self._listener, *self._sockets]:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target_port))
            self._sockets += [downstream, upstream]
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.hung.is_set():
                    sink.sendall(data)
        except OSError:
            pass


class LeaseWatcher:
    """Polls the stored Lease, noting when each write by `holder` was first seen."""

    def __init__(self, server: ApiServer, holder: str) -> None:
        self._server, self._holder = server, holder
        self._version = ""
        self.last_write_seen = 0.0

    def poll(self) -> bool:
        """Whether `holder` still holds the lease."""
        lease = stored_lease(self._server)
        version = lease["metadata"]["resourceVersion"]
        held = lease["spec"].get("holderIdentity") == self._holder
        if held and version != self._version:
            self._version, self.last_write_seen = version, time.monotonic()
        return held


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with ApiServer() as api_server:
        yield api_server


@pytest.fixture
def kubeconfig(server: ApiServer, tmp_path: Path) -> Path:
    return server.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def replicas(kubeconfig: Path) -> Iterator[Callable[..., Replica]]:
    started: list[Replica] = []

    def start(identity: str, **kwargs: Any) -> Replica:
        started.append(Replica(kubeconfig, identity, **kwargs).start())
        return started[-1]

    yield start
    for replica in started:
        replica.stop()


def stored_lease(server: ApiServer, name: str = LEASE_NAME) -> dict[str, Any]:
    lease = server.get("coordination.k8s.io/v1", "Lease", NS, name)
    assert lease is not None, f"no Lease {name}"
    return lease


def holder(server: ApiServer, name: str = LEASE_NAME) -> str:
    lease = server.get("coordination.k8s.io/v1", "Lease", NS, name)
    return (lease or {}).get("spec", {}).get("holderIdentity", "")


def leader_of(*candidates: Replica) -> Replica:
    wait_until(lambda: any(r.elector.is_leader for r in candidates), "a replica leads")
    return next(r for r in candidates if r.elector.is_leader)


def test_exactly_one_of_two_leads_and_keeps_leading(server: ApiServer, replicas: Callable[..., Replica],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "revision_controller.leadership")
    one, two = replicas("one"), replicas("two")
    leader = leader_of(one, two)
    standby = two if leader is one else one
    first_renewal = stored_lease(server)["spec"]["renewTime"]

    holds_for(lambda: leader.elector.is_leader and not standby.elector.is_leader
              and holder(server) == leader.identity, 1.5 * LEASE)  # past a lease: renewals keep it held

    spec = stored_lease(server)["spec"]
    assert spec["renewTime"] > first_renewal
    assert (spec["leaseTransitions"], spec["leaseDurationSeconds"]) == (0, 2)
    assert (leader.started, leader.stopped, standby.started, standby.stopped) == (1, 0, 0, 0)
    infos = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert infos == [f"became leader: {leader.identity} holds lease {NS}/{LEASE_NAME}"]


def test_a_stopped_leader_hands_over_at_once(server: ApiServer, replicas: Callable[..., Replica]) -> None:
    one, two = replicas("one"), replicas("two")
    leader = leader_of(one, two)
    standby = two if leader is one else one

    stopping = time.monotonic()
    leader.stop()
    taken_over = wait_until(lambda: standby.elector.is_leader, "the standby leads")

    assert taken_over - stopping < LEASE / 2
    assert (leader.started, leader.stopped, standby.started) == (1, 1, 1)
    assert holder(server) == standby.identity
    assert stored_lease(server)["spec"]["leaseTransitions"] == 1


def test_a_dead_leader_is_replaced_once_its_lease_expires(server: ApiServer, kubeconfig: Path, tmp_path: Path,
                                                          replicas: Callable[..., Replica]) -> None:
    with (tmp_path / "doomed.log").open("w") as log_file:
        doomed = subprocess.Popen([sys.executable, "-c", DOOMED_REPLICA, str(kubeconfig)], cwd=REPO_ROOT,
                                  stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: holder(server) == "doomed", "the subprocess leads", timeout=30)
        standby = replicas("standby")
        renewals = LeaseWatcher(server, "doomed")
        holds_for(lambda: renewals.poll() and not standby.elector.is_leader, 3 * RETRY)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=5)

        def standby_leads() -> bool:
            renewals.poll()
            return standby.elector.is_leader

        taken_over = wait_until(standby_leads, "the standby leads")
    finally:
        doomed.kill()
        doomed.wait()

    silent = taken_over - renewals.last_write_seen
    assert LEASE - 0.15 <= silent <= LEASE + 2 * RETRY + 0.5, f"took over {silent:.2f}s after the last write"
    assert holder(server) == "standby"
    assert stored_lease(server)["spec"]["leaseTransitions"] == 1


def test_a_leader_that_cannot_renew_stops_acting_before_its_lease_expires(
        server: ApiServer, replicas: Callable[..., Replica]) -> None:
    replica = replicas("one")
    wait_until(lambda: replica.elector.is_leader, "it leads")
    renewals = LeaseWatcher(server, "one")
    holds_for(renewals.poll, 3 * RETRY)

    failing = time.monotonic()
    server.inject_fault("PUT", f"{LEASES}/{LEASE_NAME}$", 503, times=None)

    def acting() -> bool:
        renewals.poll()
        return replica.elector.is_leader

    stopped_acting = wait_until(lambda: not acting(), "it stops acting")
    assert RENEW - RETRY - 0.1 <= stopped_acting - failing <= RENEW + RETRY
    assert stopped_acting - renewals.last_write_seen < LEASE
    wait_until(lambda: replica.stopped == 1, "on_stopped_leading is called", timeout=RENEW)
    holds_for(lambda: (replica.started, replica.stopped, replica.elector.is_leader) == (1, 1, False),
              5 * RETRY)
    assert holder(server) == "one"

    server.clear_faults()
    wait_until(lambda: replica.elector.is_leader, "it leads again")
    assert (replica.started, replica.stopped) == (2, 1)


@pytest.fixture
def relay(server: ApiServer) -> Iterator[Relay]:
    relay = Relay(server.port)
    yield relay
    relay.close()


@pytest.fixture
def relayed_kubeconfig(server: ApiServer, relay: Relay, tmp_path: Path) -> Path:
    kubeconfig = server.write_kubeconfig(tmp_path / "relayed-kubeconfig")
    kubeconfig.write_text(kubeconfig.read_text().replace(server.url, f"https://127.0.0.1:{relay.port}"))
    return kubeconfig


def test_a_leader_stops_acting_on_time_while_the_api_server_hangs(relay: Relay,
                                                                  relayed_kubeconfig: Path) -> None:
    replica = Replica(relayed_kubeconfig, "one").start()
    try:
        wait_until(lambda: replica.elector.is_leader, "it leads")
        hanging = time.monotonic()
        relay.hung.set()
        stopped_acting = wait_until(lambda: not replica.elector.is_leader, "it stops acting", interval=0.005)
        told = wait_until(lambda: replica.stopped == 1, "on_stopped_leading is called")
    finally:
        replica.stop()
    assert stopped_acting - hanging <= RENEW + 0.05  # is_leader reads the clock, not the stuck loop
    assert told - hanging <= RENEW + 2 * lease_config("one").request_timeout + RETRY + 0.2


def test_stopping_against_a_hung_api_server_takes_at_most_two_request_timeouts(
        relay: Relay, relayed_kubeconfig: Path, caplog: pytest.LogCaptureFixture) -> None:
    replica = Replica(relayed_kubeconfig, "one").start()
    wait_until(lambda: replica.elector.is_leader, "it leads")
    relay.hung.set()

    stopping = time.monotonic()
    replica.stop()

    assert time.monotonic() - stopping <= 2 * lease_config("one").request_timeout + 0.2
    assert (replica.started, replica.stopped) == (1, 1)
    assert any(message.startswith("could not release lease") for message in caplog.messages)


def test_is_leader_reads_the_clock_when_asked(server: ApiServer, replicas: Callable[..., Replica]) -> None:
    offset = 0.0
    replica = replicas("one", clock=lambda: time.monotonic() + offset)
    wait_until(lambda: replica.elector.is_leader, "it leads")
    server.inject_fault("PUT", f"{LEASES}/{LEASE_NAME}$", 503, times=None)

    offset = RENEW

    assert not replica.elector.is_leader


RELEASED = {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 3}


@pytest.mark.parametrize("lease", [None, RELEASED], ids=["create", "replace"])
def test_racing_replicas_never_lead_together(server: ApiServer, replicas: Callable[..., Replica],
                                             lease: dict[str, Any] | None) -> None:
    for round_ in range(5):
        name = f"race-{round_}"
        if lease is not None:
            server.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                           "metadata": {"name": name, "namespace": NS}, "spec": lease})
        one, two = replicas("one", name=name), replicas("two", name=name)

        holds_for(lambda one=one, two=two: not (one.elector.is_leader and two.elector.is_leader), 5 * RETRY,
                  interval=0.001)
        leader = leader_of(one, two)
        assert holder(server, name) == leader.identity
        assert stored_lease(server, name)["spec"]["leaseTransitions"] == (0 if lease is None else 4)
        assert one.started + two.started == 1


def test_conflicts_are_retried_never_taken_for_success(server: ApiServer,
                                                       replicas: Callable[..., Replica]) -> None:
    server.inject_fault("POST", LEASES, 409)
    replica = replicas("one")
    wait_until(lambda: replica.elector.is_leader, "it leads")
    assert server.count_requests("POST", LEASES) == 2

    server.inject_fault("PUT", f"{LEASES}/{LEASE_NAME}$", 409, times=3)
    holds_for(lambda: replica.elector.is_leader, 10 * RETRY)
    assert (replica.started, replica.stopped) == (1, 0)


def test_stopping_releases_the_lease(server: ApiServer, replicas: Callable[..., Replica],
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "revision_controller.leadership")
    replica = replicas("one")
    wait_until(lambda: replica.elector.is_leader, "it leads")

    replica.stop()

    spec = stored_lease(server)["spec"]
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == ("", 1)
    assert (replica.started, replica.stopped, replica.elector.is_leader) == (1, 1, False)
    assert f"released lease {NS}/{LEASE_NAME}" in caplog.messages


def test_lease_times_are_micro_times_the_client_reads(server: ApiServer, kubeconfig: Path,
                                                      replicas: Callable[..., Replica]) -> None:
    replica = replicas("one")
    wait_until(lambda: replica.elector.is_leader, "it leads")
    first = stored_lease(server)["spec"]
    wait_until(lambda: stored_lease(server)["spec"]["renewTime"] != first["renewTime"], "a renewal")

    spec = stored_lease(server)["spec"]
    assert MICRO_TIME.match(spec["acquireTime"]) and MICRO_TIME.match(spec["renewTime"])
    assert spec["acquireTime"] == first["acquireTime"]
    read = client.CoordinationV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    lease = read.read_namespaced_lease(LEASE_NAME, NS)
    assert lease.spec is not None and lease.spec.renew_time == datetime.fromisoformat(spec["renewTime"])
    assert lease.spec.renew_time.tzinfo is not None


def test_a_whole_second_is_written_with_six_digits() -> None:
    whole_second = MicroTime.of(datetime(2026, 11, 23, 20, 17, 28, tzinfo=UTC))
    spec = client.ApiClient().sanitize_for_serialization(client.V1LeaseSpec(renew_time=whole_second))
    assert spec == {"renewTime": "2026-11-23T20:17:28.000000Z"}
