"""The daemon at scale, measured from outside: N Functions on M targets, as a separate process.

Run: .venv/bin/python bench/scale.py [--functions 10000] [--targets 1000] [--interval 1m]
                                     [--window SECONDS] [--host github|git] [--json PATH]

Starts the Kubernetes API stand-in with N Functions whose status records the current heads,
a git host stand-in with M repositories, and the daemon with its default flags. Measures
how long until every target is polled, what a quiet steady window costs (requests, rate-limit
units, CPU, memory, burstiness), then moves some heads at once and measures how soon and how
exactly the daemon patches. Prints the figures beside the issue's targets.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import itertools
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from revision_controller.duration import parse_duration
from revision_controller.function import GROUP, PLURAL
from revision_controller.params import PARAMS_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.testing import ApiServer, RequestRecord

ROOT = Path(__file__).resolve().parents[1]
API_VERSION = f"{GROUP}/v1beta2"
TOKEN = "bench-token-not-a-secret"
SECRET = "git-token"
FUNCTIONS_PER_NAMESPACE = 100
MIB = 2 ** 20
GITHUB_REST_LIMIT = 5000
SAMPLE_SECONDS = 0.05
HTTP_TIMEOUT_SECONDS = 5.0
STOP_SECONDS = 15.0
METRICS_EVERY_CHECKS = 5
DETECTION_LIMIT_INTERVALS = 3  # give up on detection after this many intervals (and 30 s)
DAEMON_LOG_TAIL = 3000
LAST_SUCCESS = "revision_controller_last_successful_poll_timestamp_seconds"


@dataclass(frozen=True)
class Scale:
    """The shape of one run."""

    functions: int = 10_000
    targets: int = 1_000
    interval: float = 60.0
    window: float | None = None  # default: two intervals
    moves: int = 100
    settle: float | None = None  # seconds to wait for stray patches after detection; default: one interval
    host: str = "github"
    rest_limit: int = GITHUB_REST_LIMIT  # REST units per token per hour on the GitHub stand-in
    paths: bool = False  # each Function sets paths: ["."], and a move touches one Function's folder

    @property
    def window_seconds(self) -> float:
        return self.window if self.window is not None else 2 * self.interval

    @property
    def settle_seconds(self) -> float:
        return self.settle if self.settle is not None else self.interval


# --- the git host stand-ins -------------------------------------------------------------


class Host(Protocol):
    """A git host stand-in seen the same way whatever it is."""

    def create(self, name: str) -> str: ...  # the Function's srcRepo.url
    def head(self, name: str) -> str: ...
    def move(self, name: str, path: str) -> str: ...  # a new commit on the default branch changing `path`
    def params(self) -> str: ...  # extra lines for the params annotation
    def request_count(self) -> int: ...
    def polled_repositories(self) -> set[str]: ...
    def rest_units(self) -> int | None: ...
    def kinds(self, first: int, last: int) -> Counter[str]: ...  # of requests[first:last]


class GitHost:
    """revision_controller.testing.gitserver: smart HTTP, `repo-type: git`; no rate limit to set."""

    _INFO_REFS = re.compile(r"^/(.+)\.git/info/refs$")

    def __init__(self, stack: ExitStack, rest_limit: int) -> None:
        from revision_controller.testing.gitserver import GitServer
        self._server = stack.enter_context(GitServer(password=TOKEN))
        self._repositories: dict[str, Any] = {}

    def create(self, name: str) -> str:
        repository = self._server.create_repository(name)
        self._repositories[name] = repository
        return repository.url

    def head(self, name: str) -> str:
        return self._repositories[name].head() or ""

    def move(self, name: str, path: str) -> str:
        return self._repositories[name].commit("move", files={path: str(time.time())})

    def params(self) -> str:
        return "repo-type: git"

    def request_count(self) -> int:
        return len(self._server.requests)

    def polled_repositories(self) -> set[str]:
        found = (self._INFO_REFS.match(request.path) for request in self._server.requests)
        return {match.group(1) for match in found if match}

    def rest_units(self) -> int | None:
        return None

    def kinds(self, first: int, last: int) -> Counter[str]:
        return Counter(request.path.rpartition("/")[2] for request in self._server.requests[first:last])


class GitHubHost:
    """revision_controller.testing.github: the GitHub Enterprise REST and GraphQL APIs on a forge."""

    _REST = re.compile(r"^/api/v3/repos/([^/]+/[^/]+)/")

    def __init__(self, stack: ExitStack, rest_limit: int) -> None:
        from revision_controller.testing.forge import Forge
        from revision_controller.testing.github import GitHubServer
        self._forge = stack.enter_context(Forge())
        self._server = stack.enter_context(GitHubServer(self._forge, limit=rest_limit))
        self._repositories: dict[str, Any] = {}
        self._forge.grant(TOKEN)

    def create(self, name: str) -> str:
        self._repositories[name] = self._forge.create_repository(name)
        return f"{self._server.url}/{name}"

    def head(self, name: str) -> str:
        return self._repositories[name].head() or ""

    def move(self, name: str, path: str) -> str:
        return self._repositories[name].commit("move", files={path: str(time.time())})

    def params(self) -> str:
        return f"repo-type: github\nbase-url: {self._server.url}"

    def request_count(self) -> int:
        return len(self._server.requests)

    def polled_repositories(self) -> set[str]:
        """Those named in REST paths; a GraphQL query names its repositories only in its body."""
        found = (self._REST.match(request.path) for request in self._server.requests)
        return {match.group(1) for match in found if match}

    def rest_units(self) -> int | None:
        return sum(request.units for request in self._server.requests if request.path.startswith("/api/v3/"))

    def kinds(self, first: int, last: int) -> Counter[str]:
        return Counter(f"{'GraphQL' if request.path == '/api/graphql' else 'REST'} {request.status}"
                       for request in self._server.requests[first:last])


HOSTS: dict[str, Callable[[ExitStack, int], Host]] = {"git": GitHost, "github": GitHubHost}


# --- the cluster ------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where Function `index` lives and what it builds from. A repository's Functions all share
    one namespace, so that one Secret reads it and it is exactly one target."""

    scale: Scale

    @property
    def namespaces(self) -> int:
        return max(1, min(self.scale.targets, math.ceil(self.scale.functions / FUNCTIONS_PER_NAMESPACE)))

    def repository(self, index: int) -> str:
        return repository_name(index % self.scale.targets)

    def namespace(self, index: int) -> str:
        return namespace_name(index % self.scale.targets % self.namespaces)


def namespace_name(number: int) -> str:
    return f"team-{number}"


def repository_name(number: int) -> str:
    return f"org-{number // 100}/repo-{number}"


def function_object(index: int, namespace: str, url: str, params: str, head: str) -> dict:
    """A watched Function, built from `head` already, as OpenFunction leaves it after a build."""
    name = f"fn-{index}"
    return {
        "apiVersion": API_VERSION, "kind": "Function",
        "metadata": {"name": name, "namespace": namespace,
                     "annotations": {SWITCH_ANNOTATION: "enable", PARAMS_ANNOTATION: params}},
        "spec": {"version": "v2.0.0", "image": f"registry.example/{name}:v1",
                 "build": {"builder": "openfunction/builder-go:latest",
                           "srcRepo": {"url": url, "revision": "main", "sourceSubPath": f"functions/{name}",
                                       "credentials": {"name": SECRET}}},
                 "serving": {"triggers": {"http": {"port": 8080}}}},
        "status": {"build": {"state": "Succeeded"},
                   "sources": [{"name": "default", "git": {"commitSha": head}}]},
    }


def secret_object(namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, "namespace": namespace},
            "type": "Opaque", "data": {"password": base64.b64encode(TOKEN.encode()).decode()}}


@dataclass(frozen=True)
class FunctionKey:
    namespace: str
    name: str


def populate(apiserver: ApiServer, host: Host, scale: Scale) -> dict[str, list[FunctionKey]]:
    """Repositories on the host, Secrets and Functions straight into the API stand-in's store;
    the Functions of each repository."""
    placement = Placement(scale)
    params = f"{host.params()}\npolling-interval: {scale.interval:g}s" + ('\npaths: ["."]' if scale.paths else "")
    urls, heads = {}, {}
    for number in range(scale.targets):
        name = repository_name(number)
        urls[name] = host.create(name)
        heads[name] = host.head(name)
    for number in range(placement.namespaces):
        apiserver.create(secret_object(namespace_name(number)))
    users: dict[str, list[FunctionKey]] = {name: [] for name in urls}
    for index in range(scale.functions):
        name, namespace = placement.repository(index), placement.namespace(index)
        apiserver.create(function_object(index, namespace, urls[name], params, heads[name]))
        users[name].append(FunctionKey(namespace, f"fn-{index}"))
    return users


def recorded_head(apiserver: ApiServer, key: FunctionKey) -> str:
    function = apiserver.get(API_VERSION, "Function", key.namespace, key.name) or {}
    sources = (function.get("status") or {}).get("sources") or [{}]
    return (sources[0].get("git") or {}).get("commitSha", "")


_STATUS_PATCH = re.compile(rf"/namespaces/([^/]+)/{PLURAL}/([^/]+)/status$")


def status_patches(requests: list[RequestRecord]) -> Counter[FunctionKey]:
    """How many status patches each Function got."""
    found = (_STATUS_PATCH.search(request.path) for request in requests if request.method == "PATCH")
    return Counter(FunctionKey(match.group(1), match.group(2)) for match in found if match)


# --- the daemon, as a process -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Daemon:
    """`revision-controller run` with its default flags, but for the kubeconfig, free ports,
    log level warning and any `flags` added."""

    def __init__(self, kubeconfig: Path, log: Path, flags: tuple[str, ...] = ()) -> None:
        self.log = log
        self.metrics_port = free_port()
        self._out = log.open("wb")
        self.started, self.started_at = time.monotonic(), time.time()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "revision_controller.cli", "run", "--kubeconfig", str(kubeconfig),
             "--log-level", "warning", "--health-probe-bind-address", f"127.0.0.1:{free_port()}",
             "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}", *flags],
            stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def cpu_seconds(self) -> float:
        """utime + stime so far."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status_field(self, key: str) -> int:
        """VmRSS, VmHWM, Threads... from /proc/PID/status, in bytes for sizes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == key:
                number, *unit = value.split()
                return int(number) * (1024 if unit == ["kB"] else 1)
        raise KeyError(key)

    def metrics(self) -> dict[str, float]:
        """Each sample's value by its name and labels, e.g. 'revision_controller_polls_total{...}'."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            text = response.read().decode()
        return {sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
                for family in text_string_to_metric_families(text) for sample in family.samples}

    def comparisons(self) -> float:
        """Changed files asked of the host, for Functions with paths."""
        return sum(value for name, value in self.metrics().items()
                   if name.startswith("revision_controller_comparisons_total{"))

    def polls(self) -> float:
        return sum(value for name, value in self.metrics().items()
                   if name.startswith("revision_controller_polls_total{"))

    def last_successes(self) -> list[float]:
        """When each target was last read, by the daemon's own gauge (Unix time); none until it
        serves /metrics."""
        try:
            samples = self.metrics()
        except OSError:
            return []
        return [value for name, value in samples.items() if name.startswith(LAST_SUCCESS + "{")]

    def targets_polled(self) -> int:
        return len(self.last_successes())

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()


# --- measuring --------------------------------------------------------------------------


class RequestClock:
    """Stamps the host's requests with the time they arrived, by sampling the count."""

    def __init__(self, count: Callable[[], int]) -> None:
        self._count = count
        self._samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-clock", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._samples.append((time.monotonic(), self._count()))
            self._stop.wait(SAMPLE_SECONDS)

    def count_at(self, moment: float) -> int:
        """Requests that had arrived by `moment` (as far as the samples tell)."""
        samples = list(self._samples)
        found = bisect.bisect_right(samples, moment, key=lambda sample: sample[0])
        return samples[found - 1][1] if found else 0

    def per_second(self, start: float, end: float) -> list[int]:
        seconds = int(end - start)
        counts = [self.count_at(start + second) for second in range(seconds + 1)]
        return [later - earlier for earlier, later in itertools.pairwise(counts)]


class Failed(RuntimeError):
    """The run could not measure something; says what, with the daemon's last words."""


def wait_until(condition: Callable[[], Any], seconds: float, daemon: Daemon, every: float = 0.1) -> bool:
    """Whether `condition` came true within `seconds`; a daemon that exits fails the run."""
    deadline = time.monotonic() + seconds
    while not condition():
        if not daemon.alive():
            raise Failed(f"the daemon exited:\n{daemon.output()[-3000:]}")
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def wait_for(condition: Callable[[], Any], seconds: float, what: str, daemon: Daemon, every: float = 0.1) -> None:
    if not wait_until(condition, seconds, daemon, every):
        raise Failed(f"timed out after {seconds:.0f}s waiting for {what}:\n{daemon.output()[-3000:]}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass
class Figures:
    functions: int
    targets: int
    interval_s: float
    host: str
    all_polled_s: float = math.nan
    window_s: float = math.nan
    requests_per_target_per_interval: float = math.nan
    rest_units_in_window: int | None = None
    polls_in_window: float = math.nan
    cpu_ms_per_poll: float = math.nan
    core_percent: float = math.nan
    rss_mib: float = math.nan
    peak_rss_mib: float = math.nan
    threads: int = 0
    busiest_second: int = 0
    mean_per_second: float = math.nan
    moved_targets: int = 0
    affected_functions: int = 0
    detection_p50_s: float = math.nan
    detection_p99_s: float = math.nan
    detection_max_s: float = math.nan
    undetected: int = 0  # affected Functions that never recorded their new head
    undetected_repositories: list[str] = field(default_factory=list)
    patched_more_than_once: int = 0
    bystanders_patched: int = 0
    paths: bool = False
    comparisons_in_window: float = math.nan
    comparisons_after_moves: float = math.nan
    startup_requests: dict[str, int] = field(default_factory=dict)  # by kind and status, before the window
    window_requests: dict[str, int] = field(default_factory=dict)
    daemon_said: str = ""  # the end of its log (level warning): empty when all went well

    @property
    def polls_per_target_per_interval(self) -> float:
        return self.polls_in_window / self.targets / (self.window_s / self.interval_s)

    @property
    def burst_ratio(self) -> float:
        return self.busiest_second / self.mean_per_second if self.mean_per_second else math.nan


def measure_start(daemon: Daemon, host: Host, scale: Scale, figures: Figures) -> None:
    """Until every target is polled: as the host's log tells it, or, where requests do not name
    their repository (GraphQL), as the daemon's per-target last-success gauge does."""
    checks = itertools.count(1)

    def all_polled() -> bool:
        if len(host.polled_repositories()) >= scale.targets:
            return True
        return next(checks) % METRICS_EVERY_CHECKS == 0 and daemon.targets_polled() >= scale.targets

    limit = max(120.0, 3 * scale.interval + scale.functions / 100)
    wait_for(all_polled, limit, "every target's first poll", daemon, every=0.1)
    figures.all_polled_s = time.monotonic() - daemon.started
    read = daemon.last_successes()
    if len(read) >= scale.targets:  # the gauge tells when, not only that: no sampling delay
        figures.all_polled_s = min(figures.all_polled_s, max(read) - daemon.started_at)


def measure_window(daemon: Daemon, host: Host, clock: RequestClock, scale: Scale, figures: Figures) -> None:
    """A quiet stretch after the first full interval: nothing moves, the daemon only polls."""
    time.sleep(max(0.0, daemon.started + scale.interval - time.monotonic()))
    polls, units, comparisons = daemon.polls(), host.rest_units(), daemon.comparisons()
    cpu, start = daemon.cpu_seconds(), time.monotonic()
    time.sleep(scale.window_seconds)
    cpu, end = daemon.cpu_seconds() - cpu, time.monotonic()
    polls = daemon.polls() - polls
    figures.comparisons_in_window = daemon.comparisons() - comparisons
    window = end - start
    first, last = clock.count_at(start), clock.count_at(end)
    requests = last - first
    figures.startup_requests = dict(host.kinds(0, first))
    figures.window_requests = dict(host.kinds(first, last))
    figures.window_s = window
    figures.requests_per_target_per_interval = requests / scale.targets / (window / scale.interval)
    later_units = host.rest_units()
    figures.rest_units_in_window = None if units is None or later_units is None else later_units - units
    figures.polls_in_window = polls
    figures.cpu_ms_per_poll = cpu * 1000 / polls if polls else math.nan
    figures.core_percent = cpu / window * 100
    histogram = clock.per_second(start, end)
    figures.busiest_second = max(histogram, default=0)
    figures.mean_per_second = statistics.fmean(histogram) if histogram else math.nan


def measure_moves(daemon: Daemon, apiserver: ApiServer, host: Host, users: dict[str, list[FunctionKey]],
                  scale: Scale, figures: Figures) -> None:
    """Move heads at once; how soon each affected Function records its new head, and whether
    anything was patched that should not have been."""
    moved = list(users)[:scale.moves]
    affected = {key for name in moved for key in affected_by_move(users[name], scale)}
    comparisons = daemon.comparisons()
    read = len(apiserver.requests)  # before the first move: its patch may come while others are made
    pending: dict[FunctionKey, tuple[str, float]] = {}
    for name in moved:
        sha = host.move(name, f"functions/{users[name][0].name}/main.go")
        pending.update({key: (sha, time.monotonic()) for key in affected_by_move(users[name], scale)})
    figures.moved_targets, figures.affected_functions = len(moved), len(pending)
    latencies: list[float] = []
    patched: set[FunctionKey] = set()

    def all_recorded() -> bool:
        # Only Functions whose status was patched are read back: reading all of them every
        # 50 ms would take a core from the daemon.
        nonlocal read
        requests = apiserver.requests
        patched.update(key for key in status_patches(requests[read:]) if key in pending)
        read = len(requests)
        for key in list(patched):
            sha, moved_at = pending[key]
            if recorded_head(apiserver, key) == sha:
                latencies.append(time.monotonic() - moved_at)
                del pending[key]
                patched.discard(key)
        return not pending

    if not wait_until(all_recorded, DETECTION_LIMIT_INTERVALS * scale.interval + 30, daemon, every=0.05):
        figures.undetected = len(pending)
        figures.undetected_repositories = sorted({name for name in moved if set(users[name]) & set(pending)})
        latencies.extend(math.inf for _ in pending)
    figures.detection_p50_s = percentile(latencies, 0.5)
    figures.detection_p99_s = percentile(latencies, 0.99)
    figures.detection_max_s = max(latencies)
    time.sleep(scale.settle_seconds)
    figures.comparisons_after_moves = daemon.comparisons() - comparisons
    patches = status_patches(apiserver.requests)
    figures.patched_more_than_once = sum(1 for key in affected if patches[key] > 1)
    figures.bystanders_patched = sum(1 for key in patches if key not in affected)


def affected_by_move(users: list[FunctionKey], scale: Scale) -> list[FunctionKey]:
    """The Functions a move rebuilds: all of the target's, or with paths, the one whose folder it touched."""
    return users[:1] if scale.paths else users


def measure_memory(daemon: Daemon, figures: Figures) -> None:
    figures.rss_mib = daemon.status_field("VmRSS") / MIB
    figures.peak_rss_mib = daemon.status_field("VmHWM") / MIB
    figures.threads = daemon.status_field("Threads")


def run(scale: Scale, say: Callable[[str], None] = lambda text: None) -> Figures:
    figures = Figures(scale.functions, scale.targets, scale.interval, scale.host, paths=scale.paths)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-")))
        apiserver = stack.enter_context(ApiServer(history_limit=scale.functions + 1000))
        kubeconfig = apiserver.write_kubeconfig(folder / "kubeconfig")
        host = HOSTS[scale.host](stack, scale.rest_limit)
        began = time.monotonic()
        users = populate(apiserver, host, scale)
        say(f"loaded {scale.functions} Functions on {scale.targets} repositories in "
            f"{time.monotonic() - began:.1f}s; starting the daemon")
        clock = stack.enter_context(RequestClock(host.request_count))
        daemon = Daemon(kubeconfig, folder / "daemon.log")
        stack.callback(daemon.stop)
        measure_start(daemon, host, scale, figures)
        say(f"every target polled {figures.all_polled_s:.1f}s after start; "
            f"measuring a quiet {scale.window_seconds:g}s window")
        measure_window(daemon, host, clock, scale, figures)
        say(f"moving {min(scale.moves, scale.targets)} heads")
        measure_moves(daemon, apiserver, host, users, scale, figures)
        measure_memory(daemon, figures)
        figures.daemon_said = daemon.output()[-DAEMON_LOG_TAIL:]
    return figures


# --- the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    what: str
    value: float | None
    shown: str
    target: str
    met: bool | None  # None: does not apply to this run


def goals(figures: Figures) -> list[Goal]:
    f, at_one_minute = figures, figures.interval_s == 60
    units = f.rest_units_in_window
    detection_limit = f.interval_s + 1
    per_move = f.comparisons_after_moves / f.moved_targets if f.moved_targets else math.nan
    return [
        Goal("daemon RSS at the end (peak)", f.rss_mib, f"{f.rss_mib:.0f} MiB ({f.peak_rss_mib:.0f})",
             "<= 150 MiB", f.peak_rss_mib <= 150),
        Goal("CPU per poll", f.cpu_ms_per_poll, f"{f.cpu_ms_per_poll:.2f} ms", "<= 2 ms",
             f.cpu_ms_per_poll <= 2),
        Goal("CPU, share of one core", f.core_percent, f"{f.core_percent:.1f} %", "<= 10 % at 1m",
             f.core_percent <= 10 if at_one_minute else None),
        Goal("every target polled after start", f.all_polled_s, f"{f.all_polled_s:.1f} s", "<= 10 s",
             f.all_polled_s <= 10),
        Goal("polls per target per interval (coverage)", f.polls_per_target_per_interval,
             f"{f.polls_per_target_per_interval:.2f}", ">= 0.9", f.polls_per_target_per_interval >= 0.9),
        Goal("requests per target per interval", f.requests_per_target_per_interval,
             f"{f.requests_per_target_per_interval:.2f}", "<= 1.0", f.requests_per_target_per_interval <= 1.0),
        Goal("REST units on unchanged branches", units, "-" if units is None else str(units), "0",
             None if units is None else units == 0),
        Goal("detection p50 / p99 / max", f.detection_p99_s,
             f"{f.detection_p50_s:.1f} / {f.detection_p99_s:.1f} / {f.detection_max_s:.1f} s",
             f"p99 <= {detection_limit:g} s", f.detection_p99_s <= detection_limit),
        Goal("busiest second / mean", f.burst_ratio,
             f"{f.busiest_second} / {f.mean_per_second:.1f} = {f.burst_ratio:.1f}x", "<= 2x",
             f.burst_ratio <= 2),
        Goal("affected Functions never detected", f.undetected, f"{f.undetected} of {f.affected_functions}",
             "0", f.undetected == 0),
        Goal("affected Functions patched more than once", f.patched_more_than_once,
             f"{f.patched_more_than_once} of {f.affected_functions}", "0", f.patched_more_than_once == 0),
        Goal("other Functions patched", f.bystanders_patched, str(f.bystanders_patched), "0",
             f.bystanders_patched == 0),
        Goal("paths: comparisons while nothing moved", f.comparisons_in_window, f"{f.comparisons_in_window:g}",
             "0", f.comparisons_in_window == 0 if f.paths else None),
        Goal("paths: comparisons per moved target", per_move, f"{per_move:.2f}", "1",
             per_move == 1 if f.paths else None),
    ]


def table(figures: Figures) -> str:
    f = figures
    title = (f"{f.functions} Functions{' with paths' if f.paths else ''}, {f.targets} targets ({f.host}), "
             f"interval {f.interval_s:g}s, "
             f"window {f.window_s:.0f}s, {f.moved_targets} heads moved ({f.affected_functions} Functions), "
             f"{f.polls_in_window:.0f} polls in the window, {f.threads} daemon threads")
    rows = [(goal.what, goal.shown, goal.target, {True: "pass", False: "FAIL", None: "n/a"}[goal.met])
            for goal in goals(figures)]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [title] + ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                       for row in rows]
    requests = [f"host requests before the window: {_kinds(f.startup_requests)}",
                f"host requests in the window: {_kinds(f.window_requests)}"]
    if f.undetected_repositories:
        requests.append(f"repositories whose Functions never recorded the move: "
                        f"{', '.join(f.undetected_repositories[:10])}")
    if f.daemon_said:
        requests.append(f"the daemon said (last lines):\n{f.daemon_said}")
    return "\n".join(lines + requests)


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items())) or "none"


def as_json(figures: Figures) -> dict:
    """Plain JSON: what is not a finite number (never measured, never detected) is null."""
    values = {**asdict(figures), "burst_ratio": figures.burst_ratio,
              "polls_per_target_per_interval": figures.polls_per_target_per_interval}
    finite = {key: None if isinstance(value, float) and not math.isfinite(value) else value
              for key, value in values.items()}
    return {**finite, "goals": {goal.what: goal.met for goal in goals(figures)}}


# --- the command ------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    command.add_argument("--functions", type=int, default=10_000)
    command.add_argument("--targets", type=int, default=1_000, help="repositories, each one target")
    command.add_argument("--interval", type=parse_duration, default=60.0, help="polling-interval (Go duration)")
    command.add_argument("--window", type=float, help="seconds of the quiet window (default: two intervals)")
    command.add_argument("--moves", type=int, default=100, help="heads moved at once")
    command.add_argument("--settle", type=float, help="seconds to wait for stray patches (default: one interval)")
    command.add_argument("--host", choices=sorted(HOSTS), default="github")
    command.add_argument("--rest-limit", type=int, default=GITHUB_REST_LIMIT,
                         help="REST units per token per hour on the GitHub stand-in (default: GitHub's 5000)")
    command.add_argument("--paths", action="store_true",
                         help='every Function sets paths: ["."], and each move changes one Function\'s folder')
    command.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    return command


def scale_of(args: argparse.Namespace) -> Scale:
    return Scale(functions=args.functions, targets=args.targets, interval=args.interval, window=args.window,
                 moves=args.moves, settle=args.settle, host=args.host,
                 rest_limit=args.rest_limit, paths=args.paths)


F = TypeVar("F")


@contextmanager
def interrupted_by_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so that everything started is stopped."""
    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def measure_and_report(name: str, measure: Callable[[Callable[[str], None]], F], report: Callable[[F], str],
                          as_json: Callable[[F], dict[str, Any]], json_path: Path | None) -> int:
    """Run a benchmark, saying its progress on stderr, to its end or a clean stop on Ctrl-C or
    SIGTERM; print its figures and, when asked, write them as JSON. The exit code."""
    try:
        with interrupted_by_sigterm():
            figures = measure(lambda text: print(text, file=sys.stderr, flush=True))
    except Failed as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    print(report(figures))
    if json_path:
        json_path.write_text(json.dumps(as_json(figures), indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return measure_and_report("scale", lambda say: run(scale_of(args), say=say), table, as_json, args.json)


if __name__ == "__main__":
    sys.exit(main())
