from __future__ import annotations

from pathlib import Path

import pytest
import yaml

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "openfunction" / "samples"


@pytest.fixture(scope="session")
def samples() -> dict[str, dict]:
    """OpenFunction's real sample Functions, read from ../shared beside the checkout."""
    if not SAMPLES.is_dir():
        pytest.skip(f"OpenFunction samples not found at {SAMPLES}: these tests need ../shared "
                    f"beside the checkout, as in CI")
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(SAMPLES.glob("*.yaml"))}
