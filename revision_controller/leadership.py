"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

One replica holds the Lease and acts; the others keep trying to acquire it. A
standby judges the lease expired with its own monotonic clock, counted from when
it last saw the lease record change, never by comparing the holder's renewTime
with local wall time: clocks on nodes differ. The leader stops acting when it
could not renew for `renew_deadline`, which is shorter than `lease_duration`, so
it has stopped before any standby may take the lease over.

The callbacks run on the elector's thread and must return quickly: while they
run, the lease is not renewed.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

LEASE_NAME = "revision.openfunction.io"
MAX_REQUEST_TIMEOUT = 5.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    identity: str
    name: str = LEASE_NAME
    lease_duration: float = 15.0  # seconds a lease is valid without renewal (leaseDurationSeconds)
    renew_deadline: float = 10.0  # a leader that could not renew for this long stops acting
    retry_period: float = 2.0  # how often to try to acquire / renew

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("a lease identity must not be empty")
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs 0 < retry_period < renew_deadline < lease_duration")

    @property
    def lease_duration_seconds(self) -> int:
        return math.ceil(self.lease_duration)

    @property
    def request_timeout(self) -> float:
        # An attempt is a read and a write; together they must end well inside renew_deadline.
        return min(MAX_REQUEST_TIMEOUT, self.renew_deadline / 4)


class MicroTime(datetime):
    """A datetime the kubernetes client writes as metav1.MicroTime: `2026-11-23T20:17:28.123456Z`.

    The client writes datetimes with isoformat(), which drops a zero fraction and
    writes +00:00; the API server parses MicroTime with exactly six digits."""

    @classmethod
    def of(cls, moment: datetime) -> MicroTime:
        return cls.combine(moment.date(), moment.timetz()).astimezone(UTC)

    def isoformat(self, sep: str = "T", timespec: str = "microseconds") -> str:
        return self.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    """The parts of a Lease that leader election reads; any change restarts its expiry."""

    holder: str
    duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int
    resource_version: str

    @classmethod
    def of(cls, lease: client.V1Lease) -> LeaseRecord:
        spec, meta = lease.spec or client.V1LeaseSpec(), lease.metadata or client.V1ObjectMeta()
        return cls(spec.holder_identity or "", spec.lease_duration_seconds or 0, spec.acquire_time,
                   spec.renew_time, spec.lease_transitions or 0, meta.resource_version or "")


@dataclass(frozen=True)
class Attempt:
    """The outcome of one try to acquire or renew."""

    held: bool
    failure: str = ""
    other_holder: str = ""  # another replica a read showed holding a valid lease


class LeaderElector:
    def __init__(self, api: client.ApiClient, config: LeaseConfig,
                 on_started_leading: Callable[[], None], on_stopped_leading: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._leases = client.CoordinationV1Api(_without_retries(api))
        self._config = config
        self._on_started_leading = on_started_leading
        self._on_stopped_leading = on_stopped_leading
        self._clock = clock
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._leading = False
        self._renewed_at = 0.0  # when the last successful write started

    @property
    def is_leader(self) -> bool:
        """True only while leading and the last renewal is younger than renew_deadline."""
        return self._leading and self._clock() - self._renewed_at < self._config.renew_deadline

    def run(self, stop: threading.Event) -> None:
        """Blocks until `stop` is set, acquiring and then renewing every retry_period;
        on stop, a leader steps down and releases the lease so a standby takes over at once."""
        try:
            while not stop.is_set():
                self._tick()
                stop.wait(self._config.retry_period)
        finally:
            if self._leading:
                log.info("stepping down: the elector is stopping")
                self._end_term()
                self._release()

    def _tick(self) -> None:
        started = self._clock()
        attempt = self._attempt()
        if self._leading:
            self._end_term_if_lost(attempt)
        if attempt.held:
            self._renewed_at = started
            if not self._leading:
                self._start_term()
        else:
            log.debug("lease %s/%s not held: %s", self._config.namespace, self._config.name, attempt.failure)

    def _end_term_if_lost(self, attempt: Attempt) -> None:
        silent = self._clock() - self._renewed_at
        if attempt.other_holder:
            self._lose(f"the lease is held by {attempt.other_holder}")
        elif silent >= self._config.renew_deadline:
            self._lose(f"could not renew for {silent:.1f}s: {attempt.failure or 'renewed too late'}")

    def _start_term(self) -> None:
        log.info("became leader: %s holds lease %s/%s", self._config.identity, self._config.namespace,
                 self._config.name)
        self._leading = True
        self._on_started_leading()

    def _lose(self, why: str) -> None:
        log.info("lost leadership: %s", why)
        self._end_term()

    def _end_term(self) -> None:
        self._leading = False
        self._on_stopped_leading()

    def _attempt(self) -> Attempt:
        try:
            return self._acquire_or_renew()
        except ApiException as error:
            return Attempt(False, f"{error.status} {error.reason}")
        except (urllib3.exceptions.HTTPError, OSError) as error:
            return Attempt(False, f"{type(error).__name__}: {error}")

    def _acquire_or_renew(self) -> Attempt:
        try:
            lease = self._read()
        except ApiException as error:
            if error.status != 404:
                raise
            self._create()  # a 409 AlreadyExists means another replica won
            return Attempt(True)
        record = self._observe(lease)
        if record.holder not in ("", self._config.identity) and not self._expired(record):
            return Attempt(False, f"held by {record.holder}", other_holder=record.holder)
        lease.spec = self._holding(lease.spec or client.V1LeaseSpec(), record)
        self._write(lease)
        return Attempt(True)

    def _observe(self, lease: client.V1Lease) -> LeaseRecord:
        record = LeaseRecord.of(lease)
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()
        return record

    def _expired(self, record: LeaseRecord) -> bool:
        return self._clock() - self._observed_at > record.duration_seconds

    def _holding(self, spec: client.V1LeaseSpec, record: LeaseRecord) -> client.V1LeaseSpec:
        """`spec` made ours and renewed now; a change of holder counts a transition."""
        now = MicroTime.now(UTC)
        renewing = record.holder == self._config.identity
        spec.holder_identity = self._config.identity
        spec.lease_duration_seconds = self._config.lease_duration_seconds
        spec.acquire_time = MicroTime.of(record.acquire_time) if renewing and record.acquire_time else now
        spec.renew_time = now
        spec.lease_transitions = record.transitions if renewing else record.transitions + 1
        return spec

    def _create(self) -> None:
        now = MicroTime.now(UTC)
        spec = client.V1LeaseSpec(holder_identity=self._config.identity, acquire_time=now, renew_time=now,
                                  lease_duration_seconds=self._config.lease_duration_seconds,
                                  lease_transitions=0)
        lease = client.V1Lease(api_version="coordination.k8s.io/v1", kind="Lease", spec=spec,
                               metadata=client.V1ObjectMeta(name=self._config.name,
                                                            namespace=self._config.namespace))
        self._observe(self._leases.create_namespaced_lease(self._config.namespace, lease,
                                                           _request_timeout=self._config.request_timeout))

    def _release(self) -> None:
        """Clear the holder and shorten the lease, as client-go's ReleaseOnCancel does."""
        try:
            lease = self._read()
            spec = lease.spec
            if spec is None or spec.holder_identity != self._config.identity:
                return
            now = MicroTime.now(UTC)
            spec.holder_identity, spec.lease_duration_seconds = "", 1
            spec.acquire_time = spec.renew_time = now
            self._write(lease)
            log.info("released lease %s/%s", self._config.namespace, self._config.name)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            log.warning("could not release lease %s/%s: %s", self._config.namespace, self._config.name, error)

    def _read(self) -> client.V1Lease:
        return self._leases.read_namespaced_lease(self._config.name, self._config.namespace,
                                                  _request_timeout=self._config.request_timeout)

    def _write(self, lease: client.V1Lease) -> None:
        """Replace the lease read; its resourceVersion makes a concurrent write fail with 409."""
        self._observe(self._leases.replace_namespaced_lease(self._config.name, self._config.namespace, lease,
                                                            _request_timeout=self._config.request_timeout))


def _without_retries(api: client.ApiClient) -> client.ApiClient:
    """A client with `api`'s settings whose calls urllib3 does not retry: by default it
    retries a timed-out GET or PUT three times, which would quadruple every timeout."""
    configuration = copy.copy(api.configuration)
    configuration.retries = False
    return client.ApiClient(configuration)
