"""GraphQL batches: the pace that calls for them, and delivery of every head or error."""

from __future__ import annotations

import threading

from providers.base import GitSource, NotFound, RateLimit
from providers.github import HeadQuery
from revision_controller.batching import HeadBatcher, rest_pace
from revision_controller.targets import GitTarget, SecretRef

API = "https://api.github.com"


def target(repository: str, branch: str = "main", secret: str = "s1", repo_type: str = "github") -> GitTarget:
    return GitTarget(GitSource(repo_type, API, repository), branch, SecretRef("ns", secret))


def test_the_pace_is_summed_per_server_and_token_for_github_targets_with_a_token() -> None:
    pace = rest_pace([(target("o/a"), "t1", 60.0), (target("o/b", secret="s2"), "t1", 30.0),
                      (target("o/c"), "t2", 6.0), (target("o/d"), None, 1.0),
                      (target("o/e", repo_type="gitlab"), "t1", 1.0)])
    assert pace == {(API, "t1"): 3.0, (API, "t2"): 10.0}


class Reads:
    def __init__(self, answers: dict) -> None:
        self.answers, self.asked = answers, []

    def __call__(self, server: str, token: str, queries: list, timeout: float):
        self.asked.append((server, token, sorted(queries, key=repr)))
        return {query: self.answers[query] for query in queries}, RateLimit(5000, 4990, 0.0)


def test_one_query_per_branch_is_delivered_to_every_target_and_errors_too() -> None:
    main, gone = HeadQuery("o/a", "main"), HeadQuery("o/b", "")
    reads = Reads({main: "a" * 40, gone: NotFound("no such repository")})
    delivered: list = []
    batcher = HeadBatcher(lambda t, answer, limit, seconds: delivered.append((t, answer, limit)), reads)
    one, other, missing = target("o/a"), target("o/a", secret="s2"), target("o/b", branch="")
    for each in (one, other, missing):
        batcher.submit(each, "t1", each.branch)
    assert batcher.flush() == 2
    assert reads.asked == [(API, "t1", sorted([main, gone], key=repr))]
    assert {(t, answer) for t, answer, _ in delivered if isinstance(answer, str)} == {(one, "a" * 40),
                                                                                     (other, "a" * 40)}
    (error,) = [answer for t, answer, _ in delivered if t == missing]
    assert isinstance(error, NotFound)
    assert batcher.flush() == 0  # nothing pending is read twice


def test_a_failing_delivery_or_read_never_stops_the_batches() -> None:
    query = HeadQuery("o/a", "main")
    delivered: list = []

    def deliver(t, answer, limit, seconds) -> None:
        delivered.append(t)
        raise RuntimeError("bug")

    batcher = HeadBatcher(deliver, Reads({query: "b" * 40}))
    batcher.submit(target("o/a"), "t1", "main")
    batcher.submit(target("o/a", secret="s2"), "t1", "main")
    batcher.flush()
    assert len(delivered) == 2

    def broken(*args):
        raise RuntimeError("bug")

    batcher = HeadBatcher(deliver, broken)
    batcher.submit(target("o/a"), "t1", "main")
    assert batcher.flush() == 1


def test_run_flushes_until_stopped() -> None:
    query = HeadQuery("o/a", "main")
    delivered = threading.Event()
    batcher = HeadBatcher(lambda *args: delivered.set(), Reads({query: "c" * 40}))
    stopping = threading.Event()
    runner = threading.Thread(target=batcher.run, args=(stopping,))
    runner.start()
    batcher.submit(target("o/a"), "t1", "main")
    assert delivered.wait(5.0)
    stopping.set()
    runner.join(5.0)
    assert not runner.is_alive()


def test_the_token_is_not_in_the_batch_key_repr() -> None:
    batcher = HeadBatcher(lambda *args: None, Reads({}))
    batcher.submit(target("o/a"), "sekrit", "main")
    assert "sekrit" not in repr(batcher._pending)
