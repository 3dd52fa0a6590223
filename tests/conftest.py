from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from revision_controller.testing import ApiServer

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "openfunction" / "samples"


@pytest.fixture(scope="session")
def samples() -> dict[str, dict]:
    """OpenFunction's real sample Functions, by file and position, read from ../shared.

    One sample file holds no Function (a Deployment and a Dapr Component)."""
    if not SAMPLES.is_dir():
        pytest.skip(f"OpenFunction samples not found at {SAMPLES}: these tests need ../shared "
                    f"beside the checkout, as in CI")
    return {f"{path.name}#{index}": doc
            for path in sorted(SAMPLES.glob("*.yaml"))
            for index, doc in enumerate(yaml.safe_load_all(path.read_text()))
            if doc and doc.get("kind") == "Function"}


def _logger_levels() -> dict[logging.Logger, int]:
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    return {logger: logger.level for logger in loggers}


@pytest.fixture(autouse=True)
def _logger_levels_restored() -> Iterator[None]:
    """Tests that run the CLI in-process set up the daemon's logging, which quiets libraries'
    loggers (httpx's among them) for the rest of the process; under pytest-xdist any test may
    come next on that worker, so every test starts with the levels the one before started with."""
    before = _logger_levels()
    yield
    for logger, level in _logger_levels().items():
        if level != before.get(logger, logging.NOTSET):
            logger.setLevel(before.get(logger, logging.NOTSET))


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[ApiServer]:
    """The Kubernetes API stand-in, with a kubeconfig for it at tmp_path/kubeconfig."""
    with ApiServer() as server:
        server.write_kubeconfig(tmp_path / "kubeconfig")
        yield server


# Under pytest-xdist (`make test`) the tests run in worker processes whose terminal nobody sees:
# what the conftests below this one write into the session's summary (chaos figures, fuzzing
# tallies) travels to the controller, which prints it under the worker's name.
SUMMARY_KEY = "tests_summary"
_WORKER_SUMMARIES: list[tuple[str, list[tuple[str, list[str]]]]] = []


class _SummaryRecorder:
    """The part of pytest's TerminalReporter that our conftests write their summaries with."""

    def __init__(self) -> None:
        self.sections: list[tuple[str, list[str]]] = [("", [])]

    def section(self, title: str, sep: str = "=", **markup: Any) -> None:
        self.sections.append((title, []))

    def write_line(self, line: str, **markup: Any) -> None:
        self.sections[-1][1].append(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is None:
        return
    recorder = _SummaryRecorder()
    arguments = {"terminalreporter": recorder, "exitstatus": exitstatus, "config": session.config}
    for impl in session.config.hook.pytest_terminal_summary.get_hookimpls():
        source = Path(getattr(impl.plugin, "__file__", None) or "/")
        if source.name == "conftest.py" and Path(__file__).parent in source.parent.parents:
            impl.function(**{name: arguments[name] for name in impl.argnames})
    workeroutput[SUMMARY_KEY] = [(title, lines) for title, lines in recorder.sections if lines]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    sections = getattr(node, "workeroutput", {}).get(SUMMARY_KEY)
    if sections:
        _WORKER_SUMMARIES.append((node.gateway.id, sections))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for worker, sections in sorted(_WORKER_SUMMARIES):
        for title, lines in sections:
            terminalreporter.section(f"{title or 'summary'} (worker {worker})")
            for line in lines:
                terminalreporter.write_line(line)
