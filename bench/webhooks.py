"""Webhook receipt to status patch, measured from outside: signed pushes to the daemon process.

Run: .venv/bin/python bench/webhooks.py [--commits 50] [--functions 10] [--repositories 2]
                                        [--access token|public] [--burst 0] [--json PATH]

Starts the Kubernetes API stand-in with N Functions polled once an hour, the GitHub stand-in
with their repositories, and the daemon with its default flags plus a webhook receiver. After
the first polls, commits to one repository at a time and sends GitHub's signed push webhook
for it; measures from just before the POST until every Function built from that repository
records the new commit, one commit after the other. Prints the latency beside the issue's
target (p99 < 1 s on loopback), what each webhook cost at GitHub and at the API server, and
the daemon's CPU; with --burst K, then K pushes to K repositories sent back to back.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from revision_controller.testing import ApiServer, RequestRecord, hooks
from revision_controller.testing.forge import Forge, ForgeRepository, ForgeRequest
from revision_controller.testing.github import GitHubServer
from scale import (
    DAEMON_LOG_TAIL,
    Daemon,
    Failed,
    FunctionKey,
    free_port,
    function_object,
    measure_and_report,
    percentile,
    recorded_head,
    wait_for,
    wait_until,
)

TOKEN = "bench-token-not-a-secret"
HOOK_SECRET = "bench-webhook-secret-not-a-secret"
SECRET = "git-token"
NAMESPACE = "team-0"
TARGET_SECONDS = 1.0
WATCH_EVERY = 0.002  # how often the request log is read while a patch is awaited
PATCH_LIMIT = 30.0  # a commit whose Functions are not all patched by then fails the run
FIRST_POLLS_LIMIT = 60.0
SETTLE_LIMIT = 10.0  # for what follows the last patch: its Event, its histogram observation
PROMPTED = "revision_controller_prompt_to_patch_seconds"
ACCESS = ("token", "public")


@dataclass(frozen=True)
class Shape:
    commits: int = 50
    functions: int = 10
    repositories: int = 2
    access: str = "token"  # token: private repositories read through the API with a Secret; public: over git
    burst: int = 0


@dataclass
class Figures:
    commits: int
    functions: int
    repositories: int
    access: str
    latency_p50_s: float = math.nan
    latency_p90_s: float = math.nan
    latency_p99_s: float = math.nan
    latency_max_s: float = math.nan
    function_latency_p50_s: float = math.nan  # each Function's own patch, not the last of its repository's
    function_latency_p99_s: float = math.nan
    daemon_prompt_to_patch_count: float = 0.0
    daemon_prompt_to_patch_mean_s: float = math.nan
    daemon_prompt_to_patch_p99_le_s: float = math.nan  # the bucket bound that holds 99 %
    github_requests_per_webhook: dict[str, float] = field(default_factory=dict)
    github_rate_limit_units_per_webhook: float = math.nan
    api_requests_per_webhook: dict[str, float] = field(default_factory=dict)
    functions_per_webhook: float = math.nan
    cpu_ms_per_webhook: float = math.nan
    core_percent: float = math.nan
    phase_s: float = math.nan
    burst: int = 0
    burst_all_patched_s: float = math.nan
    burst_github_requests: dict[str, int] = field(default_factory=dict)
    daemon_said: str = ""

    @property
    def target_met(self) -> bool:
        return self.latency_p99_s < TARGET_SECONDS


# --- the cluster ------------------------------------------------------------------------


class GitHub:
    """A forge served as GitHub; its repositories private (a token in a Secret reads them
    through the REST and GraphQL APIs) or public (read over git, no token, no API)."""

    def __init__(self, stack: ExitStack, access: str) -> None:
        self.forge = stack.enter_context(Forge())
        self.server = stack.enter_context(GitHubServer(self.forge))
        self.forge.grant(TOKEN)
        self.private = access == "token"
        self.repositories: dict[str, ForgeRepository] = {}

    def create(self, name: str) -> ForgeRepository:
        self.repositories[name] = self.forge.create_repository(name, private=self.private)
        return self.repositories[name]

    def url(self, name: str) -> str:
        return f"{self.server.url}/{name}"

    def params(self) -> str:
        return f"repo-type: github\nbase-url: {self.server.url}\npolling-interval: 1h"

    @property
    def requests(self) -> list[ForgeRequest]:
        return self.server.requests


def repository_name(number: int) -> str:
    return f"org/repo-{number}"


def populate(apiserver: ApiServer, github: GitHub, shape: Shape) -> dict[str, list[FunctionKey]]:
    """Repositories, the token's Secret and the Functions, each built from its repository's head
    already; the Functions of each repository."""
    apiserver.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, "namespace": NAMESPACE},
                      "type": "Opaque", "data": {"password": base64.b64encode(TOKEN.encode()).decode()}})
    heads = {}
    for number in range(shape.repositories):
        name = repository_name(number)
        heads[name] = github.create(name).head() or ""
    users: dict[str, list[FunctionKey]] = {name: [] for name in heads}
    for index in range(shape.functions):
        name = repository_name(index % shape.repositories)
        function = function_object(index, NAMESPACE, github.url(name), github.params(), heads[name])
        if not github.private:
            del function["spec"]["build"]["srcRepo"]["credentials"]
        apiserver.create(function)
        users[name].append(FunctionKey(NAMESPACE, function["metadata"]["name"]))
    return users


# --- measuring --------------------------------------------------------------------------


class Receiver:
    """The daemon's webhook receiver, on a port chosen here (the daemon logs at warning)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def push(self, github: GitHub, name: str, after: str, before: str) -> None:
        delivery = hooks.github(hooks.Push(github.url(name), after, before), HOOK_SECRET)
        code, answer = hooks.deliver(self.url, delivery)
        if code != 202 or answer != {"targets": 1}:
            raise Failed(f"the push to {name} was answered {code} {answer}")

    def listening(self) -> bool:
        try:
            code, _ = hooks.deliver(self.url, hooks.github(hooks.Push(f"{self.url}/nobody/watches", "1" * 40),
                                                           HOOK_SECRET), timeout=1.0)
        except OSError:
            return False
        return code == 202


class PatchWatch:
    """When each awaited Function records its sha, read from the API stand-in's request log
    every few milliseconds: a status PATCH is what moves it."""

    _STATUS_PATCH = re.compile(r"/namespaces/([^/]+)/functions/([^/]+)/status$")

    def __init__(self, apiserver: ApiServer) -> None:
        self._apiserver = apiserver
        self._read = len(apiserver.requests)

    def until_recorded(self, awaited: dict[FunctionKey, str], daemon: Daemon) -> dict[FunctionKey, float]:
        pending, seen = dict(awaited), {}
        deadline = time.monotonic() + PATCH_LIMIT
        while pending:
            requests = self._apiserver.requests
            for request in requests[self._read:]:
                key = self._patched(request)
                if key in pending and recorded_head(self._apiserver, key) == pending[key]:
                    seen[key] = time.monotonic()
                    del pending[key]
            self._read = len(requests)
            if pending and time.monotonic() > deadline:
                raise Failed(f"{len(pending)} Functions never recorded their new commit:\n"
                             f"{daemon.output()[-DAEMON_LOG_TAIL:]}")
            if pending and not daemon.alive():
                raise Failed(f"the daemon exited:\n{daemon.output()[-DAEMON_LOG_TAIL:]}")
            time.sleep(WATCH_EVERY)
        return seen

    def _patched(self, request: RequestRecord) -> FunctionKey | None:
        found = self._STATUS_PATCH.search(request.path) if request.method == "PATCH" else None
        return FunctionKey(found.group(1), found.group(2)) if found else None


def events_posted(requests: list[RequestRecord]) -> int:
    return sum(1 for request in requests if request.method == "POST" and request.path.endswith("/events"))


def github_kind(request: ForgeRequest) -> str:
    if request.path == "/api/graphql":
        return f"GraphQL {request.status}"
    if request.path.startswith("/api/"):
        return f"REST {request.method} {request.status}"
    return f"git {request.method} {request.path.partition('.git/')[2]}"


def api_kind(request: RequestRecord) -> str:
    if request.path.endswith("/status"):
        return f"{request.method} Function status"
    if "/events" in request.path:
        return f"{request.method} Event"
    return f"{request.method} {request.path.rsplit('/', 2)[-2]}"


def per_webhook(kinds: Counter[str], webhooks: int) -> dict[str, float]:
    return {kind: count / webhooks for kind, count in sorted(kinds.items())}


def histogram(daemon: Daemon) -> tuple[dict[float, float], float, float]:
    """The daemon's prompt-to-patch histogram: cumulative count by bucket bound, count, sum."""
    samples = daemon.metrics()
    buckets = {float(json.loads(name[len(PROMPTED) + 7:])["le"]): value for name, value in samples.items()
               if name.startswith(PROMPTED + "_bucket{")}
    return buckets, samples.get(PROMPTED + "_count{}", 0.0), samples.get(PROMPTED + "_sum{}", 0.0)


def bucket_holding(buckets: dict[float, float], count: float, fraction: float) -> float:
    """The least bucket bound at or below which `fraction` of the observations fall."""
    return min((bound for bound, cumulative in buckets.items() if cumulative >= fraction * count), default=math.nan)


def measure_sequential(daemon: Daemon, apiserver: ApiServer, github: GitHub, receiver: Receiver,
                       users: dict[str, list[FunctionKey]], shape: Shape, figures: Figures) -> None:
    names = list(users)
    latencies: list[float] = []
    each: list[float] = []
    first_github, first_api = len(github.requests), len(apiserver.requests)
    watch = PatchWatch(apiserver)
    cpu, began = daemon.cpu_seconds(), time.monotonic()
    for number in range(shape.commits):
        name = names[number % len(names)]
        repository = github.repositories[name]
        before = repository.head() or ""
        after = repository.commit(f"change {number}", files={"changed.txt": str(number)})
        sent = time.monotonic()
        receiver.push(github, name, after, before)
        recorded = watch.until_recorded(dict.fromkeys(users[name], after), daemon)
        latencies.append(max(recorded.values()) - sent)
        each.extend(moment - sent for moment in recorded.values())
    figures.phase_s = time.monotonic() - began
    cpu = daemon.cpu_seconds() - cpu
    figures.cpu_ms_per_webhook = cpu * 1000 / shape.commits
    figures.core_percent = cpu / figures.phase_s * 100
    figures.latency_p50_s, figures.latency_p90_s = percentile(latencies, 0.5), percentile(latencies, 0.9)
    figures.latency_p99_s, figures.latency_max_s = percentile(latencies, 0.99), max(latencies)
    figures.function_latency_p50_s, figures.function_latency_p99_s = percentile(each, 0.5), percentile(each, 0.99)
    figures.functions_per_webhook = len(each) / shape.commits
    # The last patch's Event and histogram observation follow it: wait for them, not on them.
    wait_until(lambda: events_posted(apiserver.requests[first_api:]) >= len(each), SETTLE_LIMIT, daemon, every=0.02)
    answered = github.requests[first_github:]
    figures.github_requests_per_webhook = per_webhook(Counter(github_kind(request) for request in answered),
                                                      shape.commits)
    figures.github_rate_limit_units_per_webhook = sum(request.units for request in answered) / shape.commits
    figures.api_requests_per_webhook = per_webhook(
        Counter(api_kind(request) for request in apiserver.requests[first_api:] if not request.query.get("watch")),
        shape.commits)


def measure_burst(daemon: Daemon, apiserver: ApiServer, github: GitHub, receiver: Receiver,
                  users: dict[str, list[FunctionKey]], shape: Shape, figures: Figures) -> None:
    """K pushes to K repositories, sent back to back: how soon all their Functions record the new commits."""
    names = list(users)[:shape.burst]
    awaited: dict[FunctionKey, str] = {}
    moves = []
    for name in names:
        repository = github.repositories[name]
        before = repository.head() or ""
        moves.append((name, repository.commit("burst", files={"burst.txt": name}), before))
    first_github = len(github.requests)
    watch = PatchWatch(apiserver)
    sent = time.monotonic()
    for name, after, before in moves:
        receiver.push(github, name, after, before)
        awaited.update(dict.fromkeys(users[name], after))
    recorded = watch.until_recorded(awaited, daemon)
    figures.burst = len(names)
    figures.burst_all_patched_s = max(recorded.values()) - sent
    figures.burst_github_requests = dict(Counter(github_kind(request) for request in github.requests[first_github:]))


def run(shape: Shape, say: Callable[[str], None] = lambda text: None) -> Figures:
    figures = Figures(shape.commits, shape.functions, shape.repositories, shape.access)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-webhooks-")))
        apiserver = stack.enter_context(ApiServer(history_limit=shape.functions * 4 + 1000))
        kubeconfig = apiserver.write_kubeconfig(folder / "kubeconfig")
        github = GitHub(stack, shape.access)
        users = populate(apiserver, github, shape)
        secret_file = folder / "webhook-secret"
        secret_file.write_text(HOOK_SECRET + "\n")
        port = free_port()
        daemon = Daemon(kubeconfig, folder / "daemon.log", ("--webhook-bind-address", f"127.0.0.1:{port}",
                                                            "--webhook-secret-file", str(secret_file)))
        stack.callback(daemon.stop)
        receiver = Receiver(port)
        wait_for(lambda: daemon.polls() >= shape.repositories if receiver.listening() else False,
                 FIRST_POLLS_LIMIT, "the receiver and every repository's first poll", daemon)
        buckets, count, total = histogram(daemon)
        say(f"{shape.functions} Functions on {shape.repositories} repositories polled once; "
            f"pushing {shape.commits} commits, one at a time")
        measure_sequential(daemon, apiserver, github, receiver, users, shape, figures)
        patches = figures.functions_per_webhook * shape.commits
        wait_until(lambda: histogram(daemon)[1] - count >= patches, SETTLE_LIMIT, daemon, every=0.05)
        later, later_count, later_total = histogram(daemon)
        prompted = {bound: later[bound] - buckets.get(bound, 0.0) for bound in later}
        figures.daemon_prompt_to_patch_count = later_count - count
        figures.daemon_prompt_to_patch_mean_s = ((later_total - total) / figures.daemon_prompt_to_patch_count
                                                 if figures.daemon_prompt_to_patch_count else math.nan)
        figures.daemon_prompt_to_patch_p99_le_s = bucket_holding(prompted, figures.daemon_prompt_to_patch_count,
                                                                 0.99)
        if shape.burst:
            say(f"pushing to {min(shape.burst, shape.repositories)} repositories back to back")
            measure_burst(daemon, apiserver, github, receiver, users, shape, figures)
        figures.daemon_said = daemon.output()[-DAEMON_LOG_TAIL:]
    return figures


# --- the report -------------------------------------------------------------------------


def report(figures: Figures) -> str:
    f = figures
    path = ("private repositories, a token in a Secret, read through GitHub's API" if f.access == "token"
            else "public repositories, read over git")
    lines = [
        f"{f.commits} commits, each announced by a signed GitHub push webhook; {f.functions} Functions on "
        f"{f.repositories} repositories ({path}), polling-interval 1h",
        f"receipt -> status patch (all {f.functions_per_webhook:g} Functions of the repository): "
        f"p50 {ms(f.latency_p50_s)}  p90 {ms(f.latency_p90_s)}  p99 {ms(f.latency_p99_s)}  "
        f"max {ms(f.latency_max_s)}",
        f"  target p99 < {TARGET_SECONDS:g} s on loopback: {'met' if f.target_met else 'NOT met'}",
        f"  each Function's own patch: p50 {ms(f.function_latency_p50_s)}  p99 {ms(f.function_latency_p99_s)}",
        f"  the daemon's {PROMPTED}: {f.daemon_prompt_to_patch_count:.0f} observations, mean "
        f"{ms(f.daemon_prompt_to_patch_mean_s)}, 99 % within {f.daemon_prompt_to_patch_p99_le_s:g} s",
        f"requests per webhook at GitHub: {kinds(f.github_requests_per_webhook)} "
        f"(rate-limit units: {f.github_rate_limit_units_per_webhook:g})",
        f"requests per webhook at the API server: {kinds(f.api_requests_per_webhook)}",
        f"daemon CPU: {f.cpu_ms_per_webhook:.1f} ms per webhook, {f.core_percent:.1f} % of a core "
        f"over {f.phase_s:.1f} s",
    ]
    if f.burst:
        lines.append(f"burst: {f.burst} pushes back to back, all their Functions patched in "
                     f"{ms(f.burst_all_patched_s)}; GitHub requests: {kinds(f.burst_github_requests)}")
    if f.daemon_said:
        lines.append(f"the daemon said (last lines):\n{f.daemon_said}")
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def kinds(counts: dict[str, float] | dict[str, int]) -> str:
    return ", ".join(f"{count:g} {kind}" for kind, count in counts.items()) or "none"


def as_json(figures: Figures) -> dict[str, Any]:
    values = {**asdict(figures), "target_met": figures.target_met}
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in values.items()}


# --- the command ------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    command.add_argument("--commits", type=int, default=50, help="pushes, one after the other")
    command.add_argument("--functions", type=int, default=10)
    command.add_argument("--repositories", type=int, default=2)
    command.add_argument("--access", choices=ACCESS, default="token",
                         help="token: private repositories read through the API with a token in a Secret; "
                              "public: public repositories read over git (default: token)")
    command.add_argument("--burst", type=int, default=0, help="then push to this many repositories at once")
    command.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    return command


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    shape = Shape(commits=args.commits, functions=args.functions, repositories=args.repositories,
                  access=args.access, burst=args.burst)
    return measure_and_report("webhooks", lambda say: run(shape, say=say), report, as_json, args.json)


if __name__ == "__main__":
    sys.exit(main())
