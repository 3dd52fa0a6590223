"""bench/webhooks.py works: a few signed pushes to the real daemon give sane figures."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # the scripts import each other as they do when run from bench/

webhooks = importlib.import_module("webhooks")

COMMITS, FUNCTIONS, REPOSITORIES = 5, 4, 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("access", ["token", "public"])
def test_a_few_pushes_measure_receipt_to_patch(access: str, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    code = webhooks.main(["--commits", str(COMMITS), "--functions", str(FUNCTIONS),
                          "--repositories", str(REPOSITORIES), "--access", access, "--burst", "2",
                          "--json", str(out)])

    assert code == 0
    figures = json.loads(out.read_text())
    assert figures["commits"] == COMMITS and figures["access"] == access
    assert figures["functions_per_webhook"] == FUNCTIONS / REPOSITORIES  # every Function of the repository
    assert 0 < figures["latency_p50_s"] <= figures["latency_p99_s"] <= figures["latency_max_s"] < 10
    assert 0 < figures["function_latency_p50_s"] <= figures["latency_max_s"]
    # the daemon saw one prompt-to-patch per Function patched, no later than the bench did
    assert figures["daemon_prompt_to_patch_count"] == COMMITS * FUNCTIONS / REPOSITORIES
    assert 0 < figures["daemon_prompt_to_patch_mean_s"] <= figures["latency_max_s"]
    github = figures["github_requests_per_webhook"]
    assert 0 < sum(github.values()) <= 2  # one read of the branch head, not a poll of everything
    assert all(kind.startswith("REST" if access == "token" else "git") for kind in github)
    api = figures["api_requests_per_webhook"]
    assert api["PATCH Function status"] == FUNCTIONS / REPOSITORIES
    assert api["POST Event"] == FUNCTIONS / REPOSITORIES
    assert figures["cpu_ms_per_webhook"] > 0
    assert figures["burst"] == 2 and 0 < figures["burst_all_patched_s"] < 10
    assert figures["daemon_said"] == ""


def test_the_bucket_holding_a_share_of_the_observations() -> None:
    buckets = {0.05: 90.0, 0.1: 99.0, 0.25: 100.0, float("inf"): 100.0}

    assert webhooks.bucket_holding(buckets, 100, 0.99) == 0.1
    assert webhooks.bucket_holding(buckets, 100, 0.5) == 0.05
