"""Chaos: 200 Functions on 20 targets while a fifth of the requests fail, on both sides.

The daemon runs as its own process with its default flags against the API stand-in and,
behind faulty proxies, a git server, the GitHub, GitLab and Gitee stand-ins and the real
registry. For a minute, 50 heads and digests move (one branch and one tag flip back and
forth), Functions are created and deleted and the watch history is compacted, while 20 % of
the requests on both sides fail: 5xx, 429, answers past the client's timeout, resets,
truncated answers, cut watches, 410s and 409s. Then the faults stop, and the daemon must
converge and have written exactly what it should, no more.

What "patched exactly once per change it saw" means here: the status PATCHes the stand-in
applied to a Function (answered 2xx) write a sequence of values v1..vn that starts from the
value the Function was created with, v0; each vi differs from v(i-1) (no change written twice,
nothing written that the status already held); v1..vn is a subsequence of the values the
target had, in the order it had them (nothing written that it never had, nor an older value
after a newer one); and vn is the target's last value. A branch that went A, B, A, B may thus
be written B, or B, A, B, never B, B or A.

The seed (CHAOS_SEED) fixes the plan (which Function watches what, which change comes when)
and each server's sequence of fault draws; threads interleave differently from run to run, so
a rerun replays the plan and the fault sequences, not the exact interleaving.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from random import Random
from typing import Any

import httpx
import pytest

from providers.base import DEFAULT_TIMEOUT_SECONDS
from revision_controller.function import GROUP
from revision_controller.testing import ApiServer, RequestRecord
from revision_controller.testing.faultproxy import FaultProxy
from revision_controller.testing.forge import BudgetedForgeServer, Forge, ForgeRepository
from revision_controller.testing.gitee import GiteeServer
from revision_controller.testing.github import GitHubServer
from revision_controller.testing.gitlab import GitLabServer
from revision_controller.testing.gitserver import GitServer, HostedRepository
from revision_controller.testing.registry import Registry, require_registry
from tests.canary import secret
from tests.chaos.conftest import ProcessFigures, force_branch, process_figures
from tests.e2e.conftest import FIRST_POLL, NAMESPACE, VERSION, DaemonProcess, function_manifest, wait_for
from tests.e2e.test_images import image_function

INTERVAL = 3.0
CHAOS_SECONDS = 60.0
RATE = 0.2
FUNCTIONS = 200
DISABLED = 10
CHANGES = 50
CREATED = 20
DELETED = 20
# The API server ends watch streams (as its watch timeout does, here every few seconds, so that
# the watch requests themselves meet faults); before a few of these ends it forgets its history,
# so that the daemon's resumed watch gets 410 and lists again.
WATCH_ENDS = 30
COMPACTIONS = 3
FLIPS = {"gp0": 5, "img0": 3}  # back and forth between two values, ending on the other one
QUIET = ("gd1", "ghpub1")  # targets that never move: their Functions must never be patched
TOKEN = secret("chaos-forge-token")
SECRET = "forge-token"
# After the faults stop: two intervals, after the back-off the faults left a target in (interval
# x 2^failures in a row, +10 % jitter) and after a request held past its timeout just before
# (the poll that sent it fails, or its patch waits, that long); plus 5 s for a loaded machine.
LOAD_MARGIN = 5.0
MAX_THREADS = 24  # 11 measured: 4 pollers, the scheduler, watch, probes, metrics, batches...
MAX_RSS_MIB = 150.0  # 97 MiB measured
PATCH_PATH = re.compile(r"/functions/([^/]+)/status$")
MAIN_PATH = re.compile(r"/functions(/[^/]+)?$")
OVERLAP = re.compile(r"polling (.+) takes longer than its interval")


@dataclass
class Source:
    """One target as the test drives it: what its Functions name, how it moves, and every
    value it had, in order."""

    name: str
    type: str  # the Functions' `type`: source, image or source-image
    params: str
    url: str
    move: Callable[[int], str]  # make the n-th change; the new value
    timeline: list[str]
    proxy: FaultProxy | None
    credentials: str | None = None

    def manifest(self, name: str, switch: str = "enable") -> dict[str, Any]:
        if self.type == "source":
            return function_manifest(name, self.url, self.params, switch=switch, credentials=self.credentials)
        key = "image" if self.type == "image" else "bundle"
        manifest = image_function(name, self.params, **{key: self.url})
        manifest["metadata"]["annotations"]["openfunction.io/revision-controller"] = switch
        return manifest

    def status(self, value: str) -> dict[str, Any]:
        if self.type == "source":
            return {"build": {"state": "Succeeded"}, "sources": [{"name": "default", "git": {"commitSha": value}}]}
        if self.type == "source-image":
            return {"build": {"state": "Succeeded"}, "sources": [{"name": "default", "bundle": {"digest": value}}]}
        return {"serving": {"state": "Running", "resourceHash": "abc"}, "revision": {"imageDigest": value}}

    def value(self, status: dict[str, Any]) -> str:
        if self.type == "image":
            return str((status.get("revision") or {}).get("imageDigest", ""))
        for source in status.get("sources") or []:
            if source.get("name") == "default":
                inner = source.get("git" if self.type == "source" else "bundle") or {}
                return str(inner.get("commitSha" if self.type == "source" else "digest", ""))
        return ""

    def served_requests(self) -> list[Any]:
        assert self.proxy is not None
        return [r for r in self.proxy.requests if self.name in r.path]  # GitLab writes team%2Fname


def params(kind: str, base_url: str = "") -> str:
    lines = [f"repo-type: {kind}"] + ([f"base-url: {base_url}"] if base_url else [])
    return "\n".join([*lines, f"polling-interval: {INTERVAL:g}s"])


def image_params(type_: str) -> str:
    return f"type: {type_}\ninsecure-registry: true\npolling-interval: {INTERVAL:g}s"


def moving_branch(repository: HostedRepository | ForgeRepository, name: str) -> Callable[[int], str]:
    if name not in FLIPS:
        return lambda n: repository.commit(f"change {n}", files={"n": str(n)})
    first = repository.head()
    assert first is not None
    second = repository.commit("the other head", files={"flip": "1"})
    force_branch(repository.path, "main", first)
    return lambda n: _flip(repository, first, second)


def _flip(repository: HostedRepository | ForgeRepository, first: str, second: str) -> str:
    target = second if repository.head() == first else first
    force_branch(repository.path, "main", target)
    return target


def moving_tag(registry: Registry, name: str) -> tuple[str, Callable[[int], str]]:
    """The digest the tag starts at, and how it moves: the n-th change (from 1) pushes new content,
    or, for a flipping tag, the other of two images again."""
    if name not in FLIPS:
        return (registry.push_image(name, "v1", f"{name} 0".encode()),
                lambda n: registry.push_image(name, "v1", f"{name} {n}".encode()))
    contents = (b"flip a", b"flip b")
    registry.push_image(name, "v1", contents[1])
    return registry.push_image(name, "v1", contents[0]), lambda n: registry.push_image(name, "v1", contents[n % 2])


@dataclass
class World:
    """Every target, behind its proxy where it has one."""

    sources: list[Source] = field(default_factory=list)
    proxies: list[FaultProxy] = field(default_factory=list)

    def add(self, source: Source) -> None:
        self.sources.append(source)


def build_world(stack: ExitStack, gitserver: GitServer) -> World:
    world = World()
    git_proxy = stack.enter_context(FaultProxy(gitserver.url))
    world.proxies.append(git_proxy)
    for name, proxy in (("gd0", None), ("gd1", None), ("gp0", git_proxy), ("gp1", git_proxy),
                        ("gp2", git_proxy), ("gp3", git_proxy)):
        repository = gitserver.create_repository(name, branch="main")
        move = moving_branch(repository, name)
        head = repository.head()
        assert head is not None
        base = proxy.url if proxy else gitserver.url
        world.add(Source(name, "source", params("git"), f"{base}/{name}.git", move, [head], proxy))
    for kind, server_class, public, private in (("github", GitHubServer, 2, 2), ("gitlab", GitLabServer, 1, 2),
                                                ("gitee", GiteeServer, 1, 2)):
        forge = stack.enter_context(Forge())
        forge.grant(TOKEN)
        server: BudgetedForgeServer = stack.enter_context(server_class(forge))
        proxy = stack.enter_context(FaultProxy(server.url))
        world.proxies.append(proxy)
        short = {"github": "gh", "gitlab": "gl", "gitee": "ge"}[kind]
        names = [(f"{short}pub{i}", False) for i in range(public)] + [(f"{short}priv{i}", True) for i in range(private)]
        for name, private_repository in names:
            repository = forge.create_repository(f"team/{name}", private=private_repository)
            head = repository.head()
            assert head is not None
            world.add(Source(name, "source", params(kind, proxy.url + server.api_path), f"{proxy.url}/team/{name}",
                             moving_branch(repository, name), [head], proxy,
                             SECRET if private_repository else None))
    registry = stack.enter_context(Registry())
    proxy = stack.enter_context(FaultProxy(registry.url))
    world.proxies.append(proxy)
    for name, type_ in (("img0", "image"), ("img1", "image"), ("src0", "source-image"), ("src1", "source-image")):
        digest, move = moving_tag(registry, name)
        world.add(Source(name, type_, image_params(type_), f"{proxy.host}/{name}:v1", move, [digest], proxy))
    assert len(world.sources) == 20
    return world


@dataclass(frozen=True)
class Planned:
    at: float
    what: str  # change, create, delete, end watches
    subject: str  # a source's or Function's name; "compact" for watches ended after a compaction


@dataclass
class Cast:
    """Which Function watches which source, and which are switched off."""

    source_of: dict[str, Source]
    disabled: set[str]
    manifests: dict[str, dict[str, Any]]


def plan(random: Random, world: World, initial: list[str]) -> list[Planned]:
    moving = [s.name for s in world.sources if s.name not in QUIET]
    others = [name for name in moving if name not in FLIPS]
    changes = [name for name, count in FLIPS.items() for _ in range(count)]
    changes += others + random.choices(others, k=CHANGES - len(changes) - len(others))
    random.shuffle(changes)
    times = sorted(random.uniform(0, CHAOS_SECONDS) for _ in changes)
    planned = [Planned(at, "change", name) for at, name in zip(times, changes, strict=True)]
    planned += [Planned(random.uniform(0, CHAOS_SECONDS), "create", f"late{i:02}") for i in range(CREATED)]
    planned += [Planned(random.uniform(0, CHAOS_SECONDS), "delete", name)
                for name in random.sample(initial, DELETED)]
    planned += [Planned(random.uniform(0, CHAOS_SECONDS), "end watches", "compact" if n < COMPACTIONS else "")
                for n in range(WATCH_ENDS)]
    return sorted(planned, key=lambda p: p.at)


def create_function(apiserver: ApiServer, cast: Cast, name: str, source: Source, switch: str = "enable") -> None:
    manifest = source.manifest(name, switch)
    cast.source_of[name] = source
    cast.manifests[name] = manifest
    if switch != "enable":
        cast.disabled.add(name)
    apiserver.create({**manifest, "status": source.status(source.timeline[0])})


def cast_functions(apiserver: ApiServer, random: Random, world: World) -> Cast:
    cast = Cast({}, set(), {})
    count = len(world.sources)
    assignment = [world.sources[i % count] for i in range(3 * count)]
    assignment += random.choices(world.sources, k=FUNCTIONS - len(assignment))
    disabled = set(random.sample(range(FUNCTIONS), DISABLED))
    for number, source in enumerate(assignment):
        create_function(apiserver, cast, f"f{number:03}", source, "disable" if number in disabled else "enable")
    return cast


class Sampler:
    """The daemon's threads and memory, sampled every half second while the scenario runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.peak_threads = max(self.peak_threads, process_figures(self.pid).threads)
            except OSError:
                return

    def stop(self) -> ProcessFigures:
        self._stop.set()
        self._thread.join()
        return process_figures(self.pid)


def back_off_left(world: World) -> tuple[float, str]:
    """The longest wait the faults may have left a target in when they stopped, and which: its
    interval doubled per failed request in a row at the end, plus jitter (the daemon's documented
    back-off). Targets read without a proxy see no faults."""
    longest, which = 0.0, "none"
    for source in world.sources:
        if source.proxy is None:
            continue
        failed = 0
        for request in reversed(source.served_requests()):
            if not request.fault:
                break
            failed += 1
        if failed and INTERVAL * 2**failed * 1.1 > longest:
            longest, which = INTERVAL * 2**failed * 1.1, f"{source.name} after {failed} failures in a row"
    return longest, which


def applied_values(requests: list[RequestRecord], cast: Cast) -> tuple[dict[str, list[str]], Counter[str]]:
    """The values the stand-in's applied status PATCHes wrote, per Function; and every status
    PATCH sent, applied or not, per Function."""
    applied: dict[str, list[str]] = {name: [] for name in cast.source_of}
    sent: Counter[str] = Counter()
    for request in requests:
        found = PATCH_PATH.search(request.path)
        if request.method != "PATCH" or not found or found[1] not in cast.source_of:
            continue
        sent[found[1]] += 1
        if 200 <= request.status < 300:
            body = json.loads(request.body)
            applied[found[1]].append(cast.source_of[found[1]].value(body.get("status") or {}))
    return applied, sent


def written_in_order(start: str, written: list[str], timeline: list[str]) -> str:
    """Why `written` is not what a Function starting at `start` may be patched with, or ""."""
    position, before = 0, start
    for value in written:
        if value == before:
            return f"wrote {value[:19]} which the status already held"
        later = [i for i in range(position + 1, len(timeline)) if timeline[i] == value]
        if not later:
            return f"wrote {value[:19]}, not a later value of its target"
        position, before = later[0], value
    return ""


def function_state(apiserver: ApiServer) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in apiserver.list(f"{GROUP}/{VERSION}", "Function", NAMESPACE)}


def converged(apiserver: ApiServer, cast: Cast) -> bool:
    live = function_state(apiserver)
    return all(cast.source_of[name].value(obj.get("status") or {}) == cast.source_of[name].timeline[-1]
               for name, obj in live.items() if name not in cast.disabled)


def counter(metrics: str, name: str) -> float:
    """The sum of a counter's samples in Prometheus text."""
    return sum(float(value) for value in re.findall(rf"^revision_controller_{name}_total(?:{{[^}}]*}})? (\S+)$",
                                                   metrics, re.MULTILINE))


def share(requests: list[Any]) -> str:
    return f"{sum(1 for r in requests if r.fault) / max(1, len(requests)):.0%}"


def within(seconds: float, condition: Callable[[], bool]) -> float | None:
    """How long `condition` took to hold, or None if it did not within `seconds`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            return None
        time.sleep(0.1)
    return time.monotonic() - start


def metrics_text(daemon: DaemonProcess) -> str:
    return httpx.get(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5).text


@pytest.fixture
def world(gitserver: GitServer) -> Iterator[World]:
    require_registry()
    with ExitStack() as stack:
        yield build_world(stack, gitserver)


@dataclass
class Run:
    """What happened under chaos and after, as measured from outside the daemon."""

    started: float  # time.monotonic() when the faults began
    calm: float  # ... and when they stopped
    chaos_requests: range  # the API server's requests under chaos, by index
    deleted: set[str]
    backoff: float = 0.0
    backed_off: str = ""
    bound: float = 0.0
    convergence: float | None = None
    late_patches: list[RequestRecord] = field(default_factory=list)


def drive(apiserver: ApiServer, world: World, cast: Cast, schedule: list[Planned], random: Random,
          seed: int) -> Run:
    """Faults on, the plan carried out at its times, faults off."""
    apiserver.chaos(RATE, seed)
    for number, proxy in enumerate(world.proxies):
        proxy.chaos(RATE, seed + number + 1)
    started, first = time.monotonic(), len(apiserver.requests)
    by_name = {source.name: source for source in world.sources}
    deleted: set[str] = set()
    for step in schedule:
        time.sleep(max(0.0, started + step.at - time.monotonic()))
        if step.what == "change":
            source = by_name[step.subject]
            source.timeline.append(source.move(len(source.timeline)))
        elif step.what == "create":
            create_function(apiserver, cast, step.subject, random.choice(world.sources))
        elif step.what == "delete":
            apiserver.delete(f"{GROUP}/{VERSION}", "Function", NAMESPACE, step.subject)
            deleted.add(step.subject)
        else:
            if step.subject == "compact":
                apiserver.compact()
            apiserver.drop_watches(abrupt=False)
    time.sleep(max(0.0, started + CHAOS_SECONDS - time.monotonic()))
    apiserver.calm()
    for proxy in world.proxies:
        proxy.calm()
    return Run(started, time.monotonic(), range(first, len(apiserver.requests)), deleted)


def settle(apiserver: ApiServer, world: World, cast: Cast, run: Run) -> None:
    """Wait for every Function to record its target's last value, then two more intervals."""
    run.backoff, run.backed_off = back_off_left(world)
    run.bound = DEFAULT_TIMEOUT_SECONDS + max(run.backoff, INTERVAL) + INTERVAL + LOAD_MARGIN
    run.convergence = within(run.bound, lambda: converged(apiserver, cast))
    converged_at = len(apiserver.requests)
    time.sleep(2 * INTERVAL)  # two more polls of every target: nothing more may be patched
    run.late_patches = [r for r in apiserver.requests[converged_at:] if PATCH_PATH.search(r.path)]


def judged(cast: Cast, applied: dict[str, list[str]], sent: Counter[str],
           live: dict[str, dict[str, Any]]) -> list[str]:
    """Every way the patches fell short of exactly what each Function needed."""
    problems = []
    for name, source in cast.source_of.items():
        if name in cast.disabled or source.name in QUIET:
            if sent[name]:
                problems.append(f"{name} ({source.name}): {sent[name]} status PATCHes, none called for")
            continue
        why = written_in_order(source.timeline[0], applied[name], source.timeline)
        if why:
            problems.append(f"{name} ({source.name}): {why}; wrote {[v[:12] for v in applied[name]]}, "
                            f"target went {[v[:12] for v in source.timeline]}")
    for name, obj in live.items():
        manifest = cast.manifests[name]
        for part in ("annotations", "labels"):
            if obj["metadata"].get(part) != manifest["metadata"].get(part):
                problems.append(f"{name}: metadata.{part} changed")
        if obj["spec"] != manifest["spec"]:
            problems.append(f"{name}: spec changed")
    return problems


def figure_lines(apiserver: ApiServer, world: World, cast: Cast, run: Run, applied: dict[str, list[str]],
                 sent: Counter[str], metrics: str, overlaps: Counter[str]) -> list[str]:
    requests = apiserver.requests
    under_chaos = requests[run.chaos_requests.start:run.chaos_requests.stop]
    proxied = Counter[str]()
    for proxy in world.proxies:
        proxied.update(proxy.faults_drawn)
    proxied_under_chaos = [r for proxy in world.proxies for r in proxy.requests if run.started <= r.at <= run.calm]
    watches = sum(1 for r in requests if r.query.get("watch") == "true")
    counted = {name: counter(metrics, name) for name in ("polls_late", "polls_skipped", "polls")}
    flipped = {name: sorted({len(applied[f]) for f, source in cast.source_of.items()
                             if source.name == name and f not in cast.disabled}) for name in FLIPS}
    settled = sum(1 for r in run.late_patches if 200 <= r.status < 300)
    return [
        f"{len(cast.source_of)} Functions ({len(cast.source_of) - len(run.deleted)} live at the end, {DISABLED} "
        f"switched off, {CREATED} created and {len(run.deleted)} deleted under chaos) on {len(world.sources)} "
        f"targets; {sum(len(s.timeline) - 1 for s in world.sources)} changes in {CHAOS_SECONDS:g} s, flips "
        f"{FLIPS}; interval {INTERVAL:g} s",
        f"API server: {len(requests)} requests ({watches} watches), {len(under_chaos)} under chaos of which "
        f"{share(under_chaos)} faulted: {dict(sorted(apiserver.faults_drawn.items()))}",
        f"providers: {sum(len(p.requests) for p in world.proxies)} requests through the proxies, "
        f"{len(proxied_under_chaos)} under chaos of which {share(proxied_under_chaos)} faulted: "
        f"{dict(sorted(proxied.items()))}",
        f"status PATCHes: {sum(sent.values())} sent, {sum(len(v) for v in applied.values())} applied to "
        f"{sum(1 for v in applied.values() if v)} Functions (values written per Function on the flipping "
        f"targets: {flipped}); {len(run.late_patches)} sent and {settled} applied in the {2 * INTERVAL:g} s "
        f"after convergence; {len(main_writes(requests))} writes to Functions themselves",
        f"converged {'never' if run.convergence is None else f'{run.convergence:.1f} s'} after the faults "
        f"stopped (bound {run.bound:.1f} s: back-off left {run.backoff:.1f} s, {run.backed_off})",
        f"polls: {counted['polls']:.0f}, {counted['polls_late']:.0f} late because every worker was busy, "
        f"{counted['polls_skipped']:.0f} turns skipped because the previous poll still ran; overlap warnings "
        f"for {len(overlaps)} targets, at most {max(overlaps.values(), default=0)} each",
    ]


def main_writes(requests: list[RequestRecord]) -> list[str]:
    return [f"{r.method} {r.path}" for r in requests if MAIN_PATH.search(r.path) and r.method != "GET"]


@pytest.mark.timeout(300)  # about 95 s; the minute of chaos and the convergence bound are most of it
def test_two_hundred_functions_converge_after_a_minute_of_faults_with_exactly_the_patches_they_need(
        apiserver: ApiServer, gitserver: GitServer, world: World, start_daemon: Callable[..., DaemonProcess],
        chaos_seed: int, figures: Callable[[str, list[str]], None]) -> None:
    began = time.monotonic()
    random = Random(chaos_seed)
    apiserver.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, "namespace": NAMESPACE},
                      "stringData": {"password": TOKEN}})
    cast = cast_functions(apiserver, random, world)
    schedule = plan(random, world, [name for name in cast.source_of if name not in cast.disabled])
    daemon = start_daemon()
    sampler = Sampler(daemon.process.pid)
    wait_for(lambda: all(gitserver.ls_remote_count(s.name) if s.proxy is None else s.served_requests()
                         for s in world.sources), FIRST_POLL, "a first poll of every target")

    run = drive(apiserver, world, cast, schedule, random, chaos_seed)
    settle(apiserver, world, cast, run)

    process = sampler.stop()
    alive = daemon.process.poll() is None
    metrics, log = metrics_text(daemon) if alive else "", daemon.output()
    applied, sent = applied_values(apiserver.requests, cast)
    live = function_state(apiserver)
    problems = judged(cast, applied, sent, live)
    overlaps = Counter(OVERLAP.findall(log))
    figures(f"chaos scenario, CHAOS_SEED={chaos_seed}", [
        *figure_lines(apiserver, world, cast, run, applied, sent, metrics, overlaps),
        f"daemon: alive {alive}, threads {process.threads} (peak {sampler.peak_threads}), RSS {process.rss_mib:.0f} "
        f"MiB (peak {process.peak_rss_mib:.0f} MiB)",
        f"took {time.monotonic() - began:.0f} s",
    ])

    assert alive, f"the daemon died (CHAOS_SEED={chaos_seed}):\n{log[-3000:]}"
    unconverged = [name for name, obj in live.items() if name not in cast.disabled
                   and cast.source_of[name].value(obj.get("status") or {}) != cast.source_of[name].timeline[-1]]
    assert run.convergence is not None, (f"CHAOS_SEED={chaos_seed}: not converged within {run.bound:.1f} s: "
                                         f"{unconverged}")
    assert not problems, f"CHAOS_SEED={chaos_seed}: " + "\n".join(problems[:40])
    assert not main_writes(apiserver.requests)
    assert not [r for r in run.late_patches if 200 <= r.status < 300], "patched after every Function converged"
    assert max(process.threads, sampler.peak_threads) <= MAX_THREADS
    assert process.peak_rss_mib <= MAX_RSS_MIB
    assert all(count == 1 for count in overlaps.values()), overlaps  # said once per target
    assert "revision_controller_polls_skipped_total" in metrics
