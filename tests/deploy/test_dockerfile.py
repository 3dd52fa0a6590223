"""Dockerfile: read as text, since no Docker engine is at hand; and the command it starts answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from tests.deploy.conftest import ROOT

Instruction = tuple[str, str]


def instructions(text: str) -> list[Instruction]:
    """(KEYWORD, arguments) in order, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(keyword.upper(), rest.strip()) for keyword, _, rest in
            (line.strip().partition(" ") for line in joined.splitlines() if line.strip())]


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for keyword, arguments in instructions((ROOT / "Dockerfile").read_text()):
        if keyword == "FROM":
            found.append([])
        found[-1].append((keyword, arguments))
    return found


def arguments(stage: list[Instruction], keyword: str) -> list[str]:
    return [rest for word, rest in stage if word == keyword]


def console_script() -> str:
    (name,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return name


def test_builds_in_one_stage_and_runs_from_another(stages: list[list[Instruction]]) -> None:
    assert len(stages) >= 2


def test_builder_and_runtime_carry_the_same_debian_python(stages: list[list[Instruction]]) -> None:
    # The virtualenv links to the builder's interpreter, which must exist at the same path at run time.
    (builder,), (runtime,) = arguments(stages[0], "FROM"), arguments(stages[-1], "FROM")
    assert re.match(r"debian:12\b", builder)
    assert re.search(r"/distroless/python3-debian12\b", runtime)


def test_the_runtime_stage_runs_nothing_and_installs_nothing(stages: list[list[Instruction]]) -> None:
    # Distroless has no shell to RUN anything with; the virtualenv arrives ready-made.
    assert arguments(stages[-1], "RUN") == []
    assert len(arguments(stages[-1], "COPY")) == 1 and arguments(stages[-1], "COPY")[0].startswith("--from=")


def test_runs_as_a_numeric_non_root_user(stages: list[list[Instruction]]) -> None:
    user = arguments(stages[-1], "USER")[-1]
    assert all(part.isdigit() and part != "0" for part in user.split(":")), user


def test_starts_the_daemon_from_the_copied_virtualenv(stages: list[list[Instruction]]) -> None:
    (entrypoint,) = arguments(stages[-1], "ENTRYPOINT")
    program, *args = json.loads(entrypoint)
    assert args == ["run"]
    copied = PurePosixPath(arguments(stages[-1], "COPY")[0].split()[-1])
    assert PurePosixPath(program) == copied / "bin" / console_script()


def test_python_writes_no_bytecode_and_buffers_no_output(stages: list[list[Instruction]]) -> None:
    env = " ".join(arguments(stages[-1], "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env


def test_exposes_the_ports_the_bundle_serves(stages: list[list[Instruction]], bundle: list[dict]) -> None:
    (deployment,) = [obj for obj in bundle if obj["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    exposed = {int(port) for ports in arguments(stages[-1], "EXPOSE") for port in ports.split()}
    assert exposed == {port["containerPort"] for port in container["ports"]}


def test_the_build_context_leaves_out_local_state() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "tests", "**/__pycache__", ".pytest_cache"} <= ignored


def test_the_console_script_answers_run_help(bundle: list[dict]) -> None:
    script = Path(sys.executable).parent / console_script()
    done = subprocess.run([script, "run", "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "--kubeconfig" in done.stdout
    (deployment,) = [obj for obj in bundle if obj["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for arg in container["args"]:
        assert arg.split("=")[0] in done.stdout, f"the bundle passes {arg}, which `run` does not know"
