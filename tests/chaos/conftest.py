"""The chaos suite's equipment: the e2e fixtures (imported, not copied), a seed that a failure
names for a rerun, figures written into the test session's summary, daemon replicas with a token
each, and what the tests read of a process from /proc."""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dulwich.refs import Ref
from dulwich.repo import Repo

from revision_controller.testing import ApiServer
from tests.e2e.conftest import DaemonProcess, functions, gitserver, start_daemon

__all__ = ["functions", "gitserver", "start_daemon"]  # the e2e fixtures, served to the chaos tests too

SEED_ENV = "CHAOS_SEED"
_FIGURES: list[tuple[str, list[str]]] = []


@pytest.fixture
def chaos_seed() -> int:
    """$CHAOS_SEED, else a fresh one; a failing test names it (see pytest_runtest_makereport)."""
    chosen = os.environ.get(SEED_ENV)
    return int(chosen) if chosen else random.randrange(1, 2**31)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    seed = getattr(item, "funcargs", {}).get("chaos_seed")
    if report.failed and seed is not None:
        rerun = f"{SEED_ENV}={seed} .venv/bin/python -m pytest {item.nodeid}"
        report.sections.append(("chaos seed", f"this run's seed was {seed}; rerun it with\n  {rerun}"))
        _FIGURES.append((f"{item.nodeid} FAILED", [f"rerun with {rerun}"]))


@pytest.fixture
def figures() -> Callable[[str, list[str]], None]:
    """Report figures under a title: they appear in the session's summary, with or without -s."""
    def report(title: str, lines: list[str]) -> None:
        _FIGURES.append((title, lines))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("chaos figures")
    for title, lines in _FIGURES:
        terminalreporter.write_line(title)
        for line in lines:
            terminalreporter.write_line(f"  {line}")


@pytest.fixture
def start_replica(apiserver: ApiServer, tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """A daemon whose kubeconfig carries `token`, so that the API stand-in tells its requests
    from any other's (and can cut it off alone); stopped with SIGTERM at the end."""
    started: list[DaemonProcess] = []

    def start(token: str, *args: str) -> DaemonProcess:
        kubeconfig = apiserver.write_kubeconfig(tmp_path / f"kubeconfig-{token}", token=token)
        daemon = DaemonProcess(kubeconfig, tmp_path / f"replica-{token}.log", list(args))
        started.append(daemon)
        return daemon

    yield start
    codes = [(daemon.process.returncode == -signal.SIGKILL, daemon.stop()) for daemon in started]
    for daemon, (killed, code) in zip(started, codes, strict=True):
        assert killed or code == 0, f"daemon exited {code}:\n{daemon.output()}"


def force_branch(repository: Path, branch: str, sha: str) -> None:
    """Point `branch` of the bare repository at `sha`, as `git push --force` does."""
    with Repo(str(repository)) as repo:
        repo.refs[Ref(f"refs/heads/{branch}".encode())] = sha.encode("ascii")


@dataclass(frozen=True)
class ProcessFigures:
    threads: int
    rss_mib: float
    peak_rss_mib: float


def process_figures(pid: int) -> ProcessFigures:
    """Threads, resident memory and its peak, as the kernel counts them."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in line)
    kib = lambda name: int(fields[name].split()[0]) / 1024  # noqa: E731 - "VmRSS: 123 kB"
    return ProcessFigures(int(fields["Threads"]), kib("VmRSS"), kib("VmHWM"))
