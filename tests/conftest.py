from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[ApiServer]:
    """The Kubernetes API stand-in, with a kubeconfig for it at tmp_path/kubeconfig."""
    with ApiServer() as server:
        server.write_kubeconfig(tmp_path / "kubeconfig")
        yield server
