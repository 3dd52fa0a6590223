"""bench/scale.py works: a tiny run of the real daemon gives sane figures."""

from __future__ import annotations

import importlib
import json
import math
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from revision_controller.testing import ApiServer
from revision_controller.testing.apiserver import TOKEN

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # the scripts import each other as they do when run from bench/

scale = importlib.import_module("scale")
sweep = importlib.import_module("sweep")

FUNCTIONS, TARGETS, INTERVAL, MOVES = 20, 5, 2.0, 3


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("host", "paths"), [("git", True), ("github", False)])
def test_a_small_run_measures_the_daemon(host: str, paths: bool, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    code = scale.main([*(["--paths"] if paths else []),
                       "--host", host, "--functions", str(FUNCTIONS), "--targets", str(TARGETS),
                       "--interval", f"{INTERVAL:g}s", "--window", "4", "--moves", str(MOVES),
                       "--settle", "1", "--json", str(out),
                       # the daemon stretches intervals when a budget would run out: not measured here
                       "--rest-limit", "1000000"])

    assert code == 0
    figures = json.loads(out.read_text())
    assert figures["functions"] == FUNCTIONS and figures["targets"] == TARGETS
    assert 0 < figures["all_polled_s"] < 60
    assert 3.5 <= figures["window_s"] < 10
    assert figures["polls_in_window"] >= TARGETS  # two intervals: every target at least once
    assert 0.2 < figures["requests_per_target_per_interval"] < 5
    assert figures["cpu_ms_per_poll"] > 0 and 0 < figures["core_percent"] < 200
    assert 20 < figures["rss_mib"] <= figures["peak_rss_mib"] < 1000
    assert figures["busiest_second"] >= figures["mean_per_second"] > 0
    assert figures["moved_targets"] == MOVES
    # With paths, a move touches one Function's folder: the target's other Functions stay.
    assert figures["affected_functions"] == (1 if paths else FUNCTIONS // TARGETS) * MOVES
    if paths:
        assert figures["comparisons_in_window"] == 0 and figures["comparisons_after_moves"] == MOVES
        assert figures["goals"]["paths: comparisons per moved target"] is True
    assert 0 < figures["detection_p50_s"] <= figures["detection_p99_s"] <= figures["detection_max_s"] < 30
    assert figures["undetected"] == 0
    assert figures["patched_more_than_once"] == 0 and figures["bystanders_patched"] == 0
    assert figures["goals"]["other Functions patched"] is True


def test_a_repository_is_one_target_in_one_namespace() -> None:
    placement = scale.Placement(scale.Scale(functions=1000, targets=30))
    seen: dict[str, set[str]] = {}
    for index in range(1000):
        seen.setdefault(placement.repository(index), set()).add(placement.namespace(index))

    assert len(seen) == 30
    assert all(len(namespaces) == 1 for namespaces in seen.values())
    assert len({namespace for namespaces in seen.values() for namespace in namespaces}) == placement.namespaces


def test_requests_are_binned_by_the_second_they_arrived() -> None:
    clock = scale.RequestClock(lambda: 0)
    clock._samples = [(0.0, 0), (0.5, 3), (1.0, 4), (1.5, 10), (2.0, 10), (2.9, 12), (3.0, 12)]

    assert clock.per_second(0.0, 3.0) == [4, 6, 2]
    assert clock.count_at(1.2) == 4


def test_the_table_marks_each_goal() -> None:
    figures = scale.Figures(functions=10, targets=2, interval_s=60, host="git", all_polled_s=12.0,
                            window_s=120, requests_per_target_per_interval=1.0, cpu_ms_per_poll=0.5,
                            core_percent=3.0, rss_mib=90, peak_rss_mib=95, busiest_second=5,
                            mean_per_second=2.0, detection_p50_s=30, detection_p99_s=59,
                            detection_max_s=60)
    marks = {goal.what: goal.met for goal in scale.goals(figures)}

    assert marks["every target polled after start"] is False
    assert marks["busiest second / mean"] is False
    assert marks["CPU, share of one core"] is True
    assert marks["REST units on unchanged branches"] is None
    assert marks["detection p50 / p99 / max"] is True
    assert not math.isnan(figures.burst_ratio)
    assert "FAIL" in scale.table(figures) and "n/a" in scale.table(figures)


def test_figures_never_measured_are_null_in_json() -> None:
    figures = scale.Figures(functions=10, targets=2, interval_s=60, host="git", detection_max_s=math.inf)

    written = json.loads(json.dumps(scale.as_json(figures), allow_nan=False))

    assert written["detection_max_s"] is None and written["all_polled_s"] is None
    assert written["functions"] == 10


def sized(functions: int, rss_mib: float, core_percent: float, polls_per_interval: float = 1.0) -> Any:
    return scale.Figures(functions=functions, targets=functions // 10, interval_s=20, host="git", window_s=40,
                         rss_mib=rss_mib, peak_rss_mib=rss_mib, cpu_ms_per_poll=1.0, core_percent=core_percent,
                         polls_in_window=functions // 10 * 2 * polls_per_interval,
                         requests_per_target_per_interval=1.0)


def test_one_replica_ends_at_a_whole_core_or_when_it_polls_less_often_than_asked() -> None:
    assert sweep.one_replica_ends([sized(1000, 90, 5), sized(3000, 100, 120)]).functions == 3000
    assert sweep.one_replica_ends([sized(1000, 90, 5), sized(3000, 100, 20, 0.8)]).functions == 3000
    assert sweep.one_replica_ends([sized(1000, 90, 5), sized(3000, 400, 20)]) is None


def test_the_sweep_draws_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the bench extra (matplotlib) is not installed")
    out = tmp_path / "scale.png"

    sweep.draw([sized(1000, 90, 5), sized(3000, 120, 40), sized(10000, 200, 130)], out)

    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class InstantHost:
    """A host whose every move the daemon sees and patches at once, before the next move is made."""

    def __init__(self, apiserver: ApiServer, users: dict[str, list[Any]]) -> None:
        self.apiserver, self.users, self.moves = apiserver, users, 0

    def move(self, name: str, path: str) -> str:
        self.moves += 1
        sha = f"{self.moves:040x}"
        for key in self.users[name]:
            body = json.dumps({"status": {"sources": [{"name": "default", "git": {"commitSha": sha}}]}})
            request = urllib.request.Request(
                f"{self.apiserver.url}/apis/{scale.API_VERSION}/namespaces/{key.namespace}/functions/"
                f"{key.name}/status", data=body.encode(), method="PATCH",
                headers={"Content-Type": "application/merge-patch+json", "Authorization": f"Bearer {TOKEN}"})
            urllib.request.urlopen(request, timeout=5, context=self.apiserver.client_context()).close()
        return sha


class RunningDaemon:
    def alive(self) -> bool:
        return True

    def comparisons(self) -> float:
        return 0.0


def test_a_patch_made_while_heads_are_still_moving_counts() -> None:
    with ApiServer() as apiserver:
        users = {"org/a": [scale.FunctionKey("team-0", "fn-0")], "org/b": [scale.FunctionKey("team-1", "fn-1")]}
        for name, keys in users.items():
            for key in keys:
                apiserver.create(scale.function_object(int(key.name[3:]), key.namespace, name, "", "0" * 40))
        figures = scale.Figures(functions=2, targets=2, interval_s=1, host="fake")

        scale.measure_moves(RunningDaemon(), apiserver, InstantHost(apiserver, users),  # type: ignore[arg-type]
                            users, scale.Scale(functions=2, targets=2, interval=1, settle=0), figures)

    assert figures.undetected == 0 and figures.affected_functions == 2
    assert figures.patched_more_than_once == 0 and figures.bystanders_patched == 0
