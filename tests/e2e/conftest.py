"""The daemon as its own process, against the API stand-in and a real git server on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import yaml
from kubernetes import client

from revision_controller.function import GROUP, PLURAL
from revision_controller.kube import api_client
from revision_controller.params import PARAMS_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.testing import ApiServer
from revision_controller.testing.gitserver import GitServer
from tests.canary import leaking_lines, secret_carries_canary

NAMESPACE = "default"
STOP_SECONDS = 5.0
# The daemon's own kubeconfig token, so that its API calls can be told from the tests' own.
DAEMON_TOKEN = "revision-controller-daemon-token"
# Test modules that run after every other test: they check what the whole session gathered.
LAST = ("test_secrets.py", "test_rbac.py")
# A folder where every test process appends what it gathered, one JSON line per test, so that
# the LAST modules can check the whole of a run spread over processes: `make test` runs the
# suite with pytest-xdist, then the LAST modules in a pytest of their own over that folder.
GATHERED_DIR_ENV = "REVISION_CONTROLLER_GATHERED"


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
    def __init__(self, kubeconfig: Path, log: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log = log
        self.probe_port, self.metrics_port = free_port(), free_port()
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "revision_controller.cli", "run", "--kubeconfig", str(kubeconfig),
             "--log-level", "debug", "--health-probe-bind-address", f"127.0.0.1:{self.probe_port}",
             "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}", *args],
            stdout=self._out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})

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


@dataclass(frozen=True)
class Leak:
    where: str
    line: str


@dataclass(frozen=True)
class ApiCall:
    """One call the daemon made to the API server: enough to tell the RBAC verb it needs."""

    method: str
    path: str
    watch: bool


@dataclass
class Gathered:
    """Everything the daemons of this session wrote where people or collectors read it (logs with
    their tracebacks, Events and the objects they patched, metrics), searched for the canary every
    test token carries; and every API call they made, for the RBAC check."""

    logs: int = 0
    log_lines: int = 0
    metrics: int = 0
    events: int = 0
    objects: int = 0
    secrets: int = 0
    leaks: list[Leak] = field(default_factory=list)
    plain_secrets: list[str] = field(default_factory=list)
    api_calls: set[ApiCall] = field(default_factory=set)
    # The e2e modules the sessions collected, and why tests were deselected (-k, -m, ...), if they were.
    modules: set[str] = field(default_factory=set)
    narrowed: set[str] = field(default_factory=set)

    def add(self, other: Gathered) -> None:
        for name in ("logs", "log_lines", "metrics", "events", "objects", "secrets"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.leaks += other.leaks
        self.plain_secrets += other.plain_secrets
        self.api_calls |= other.api_calls
        self.modules |= other.modules
        self.narrowed |= other.narrowed

    def to_json(self) -> str:
        return json.dumps({**vars(self), "leaks": [vars(leak) for leak in self.leaks],
                           "api_calls": sorted(astuple(call) for call in self.api_calls),
                           "modules": sorted(self.modules), "narrowed": sorted(self.narrowed)})

    @classmethod
    def from_json(cls, line: str) -> Gathered:
        record = json.loads(line)
        return cls(**{**record, "leaks": [Leak(**leak) for leak in record["leaks"]],
                      "api_calls": {ApiCall(*call) for call in record["api_calls"]},
                      "modules": set(record["modules"]), "narrowed": set(record["narrowed"])})

    def search(self, where: str, text: str) -> None:
        """Remember every line of `text` that shows the canary; `where` says what it came from."""
        self.leaks += [Leak(where, line) for line in leaking_lines(text)]

    def log(self, where: str, daemon: DaemonProcess) -> None:
        text = daemon.output()
        self.search(f"{where}: daemon log", text)
        self.logs += 1
        self.log_lines += text.count("\n")

    def scrape(self, where: str, daemon: DaemonProcess) -> None:
        """The daemon's /metrics, while it still runs."""
        if daemon.process.poll() is not None:
            return
        try:
            text = httpx.get(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return
        self.search(f"{where}: /metrics", text)
        self.metrics += 1

    def api(self, where: str, apiserver: ApiServer, *, check_secrets: bool) -> None:
        """What the daemon wrote into the API server, the Secrets the test put there, and the
        calls the daemon made."""
        events = apiserver.list("v1", "Event")
        written = [*apiserver.list(f"{GROUP}/{VERSION}", "Function"),
                   *apiserver.list("coordination.k8s.io/v1", "Lease")]
        for event in events:
            self.search(f"{where}: Event {event['metadata']['name']}", json.dumps(event))
        for obj in written:
            self.search(f"{where}: {obj['kind']} {obj['metadata']['name']}", json.dumps(obj))
        secrets = apiserver.list("v1", "Secret")
        if check_secrets:
            self.plain_secrets += [f"{where}: Secret {s['metadata']['namespace']}/{s['metadata']['name']}"
                                   for s in secrets if not secret_carries_canary(s.get("data"), s.get("stringData"))]
        self.api_calls |= {ApiCall(r.method, r.path, r.query.get("watch", "") in ("1", "true", "True"))
                           for r in apiserver.requests if r.token == DAEMON_TOKEN}
        self.events += len(events)
        self.objects += len(written)
        self.secrets += len(secrets)


GATHERED = Gathered()  # by this process
# This process's file in the folder of GATHERED_DIR_ENV.
_KEPT = f"{os.getpid()}-{uuid.uuid4().hex}.jsonl"


def keep(found: Gathered) -> None:
    """Add to what this process gathered and, when the run is spread over processes, to its file."""
    GATHERED.add(found)
    folder = os.environ.get(GATHERED_DIR_ENV)
    if folder:
        with (Path(folder) / _KEPT).open("a") as kept:
            kept.write(found.to_json() + "\n")


def gathered() -> Gathered:
    """What the whole run gathered: this process's, and every other process's in the folder of
    GATHERED_DIR_ENV. Skips on a pytest-xdist worker, which sees only its own part of the run."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("on a pytest-xdist worker this check would see only that worker's daemons: `make test` "
                    f"runs it after the parallel run, with ${GATHERED_DIR_ENV} naming the folder it gathered into")
    total = Gathered()
    total.add(GATHERED)
    folder = os.environ.get(GATHERED_DIR_ENV)
    for path in sorted(Path(folder).glob("*.jsonl")) if folder else []:
        if path.name != _KEPT:
            for line in path.read_text().splitlines():
                total.add(Gathered.from_json(line))
    return total


def nothing_gathered(what: str) -> NoReturn:
    """Skip a check of the whole run that found nothing to check, run on its own; fail it when it
    was handed the folder of a run that gathered nothing, for that run then checked nothing."""
    folder = os.environ.get(GATHERED_DIR_ENV)
    if folder:
        pytest.fail(f"no daemon ran in the run that gathered into ${GATHERED_DIR_ENV}={folder}, "
                    f"so it has no {what} to check")
    pytest.skip(f"no daemon ran in this session: this check reads the {what} the e2e tests gathered, "
                f"run it with them (pytest tests/e2e), after which it runs last")


def secret_manifest(name: str, token: str, namespace: str = NAMESPACE) -> dict:
    """A git credentials Secret: the token under key `password`, as srcRepo.credentials expects."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "stringData": {"password": token}}


def put_secret(api: ApiServer, name: str, token: str) -> None:
    """Create, or replace, the git credentials Secret `name`."""
    if api.get("v1", "Secret", NAMESPACE, name):
        api.delete("v1", "Secret", NAMESPACE, name)
    api.create(secret_manifest(name, token))


def daemon_kubeconfig(tmp_path: Path) -> Path:
    """The test's kubeconfig with the daemon's own token."""
    config = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    for user in config["users"]:
        user["user"]["token"] = DAEMON_TOKEN
    path = tmp_path / "daemon-kubeconfig"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def start_daemon(apiserver: ApiServer, tmp_path: Path,
                 request: pytest.FixtureRequest) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> DaemonProcess:
        """The daemon with `args`, and `env` added to this process's environment."""
        daemon = DaemonProcess(daemon_kubeconfig(tmp_path), tmp_path / f"daemon-{len(started)}.log", list(args),
                               env)
        started.append(daemon)
        return daemon

    yield start
    test = request.node.nodeid
    codes = []
    found = Gathered()
    try:
        for number, daemon in enumerate(started):
            found.scrape(f"{test} daemon {number}", daemon)
            killed = daemon.process.returncode == -signal.SIGKILL
            codes.append((killed, daemon.stop()))
            found.log(f"{test} daemon {number}", daemon)
        if started:
            found.api(test, apiserver, check_secrets=test.startswith("tests/e2e/"))
    finally:
        keep(found)  # what the daemons that stopped showed, even when one would not stop
    for daemon, (killed, code) in zip(started, codes, strict=True):
        assert killed or code == 0, f"daemon exited {code}:\n{daemon.output()}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The checks of what the whole session gathered run after every other test; the session
    notes which e2e modules it runs, for the RBAC check to tell whether it saw them all."""
    here = Path(__file__).parent
    last = [item.path.parent == here and item.path.name in LAST for item in items]
    items[:] = [item for item, late in zip(items, last, strict=True) if not late] + [
        item for item, late in zip(items, last, strict=True) if late]
    options = config.option
    narrowed = {f"tests were deselected ({flag})" for flag, given in (
        ("-k", options.keyword), ("-m", options.markexpr), ("--lf", getattr(options, "lf", False)),
        ("--deselect", options.deselect)) if given}
    keep(Gathered(modules={item.path.name for item in items if item.path.parent == here} - set(LAST),
                  narrowed=narrowed))


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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # a part of the run: the LAST modules' own session prints the whole
    found = gathered()
    if found.logs:
        terminalreporter.write_line(
            f"secrets check: searched {found.logs} daemon logs ({found.log_lines} lines), "
            f"{found.metrics} /metrics scrapes, {found.events} Events and {found.objects} "
            f"Functions and Leases for the canary of {found.secrets} Secrets: "
            f"{len(found.leaks)} leaks; RBAC check: {len(found.api_calls)} distinct API calls")
