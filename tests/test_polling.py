"""TargetPoller with recording stand-ins for providers, Secrets, patches and Events."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from providers.base import (
    ChangedFiles,
    GitSource,
    ImageReference,
    NotFound,
    RateLimit,
    RegistryAuth,
    Throttled,
    Unauthorized,
    Unavailable,
)
from providers.github import HeadQuery
from revision_controller.budgets import MAX_STRETCH, BudgetKey, Budgets
from revision_controller.cadence import PollOutcome
from revision_controller.decision import Change
from revision_controller.function import FunctionRef, FunctionView
from revision_controller.metrics import Metrics
from revision_controller.paths import path_filter
from revision_controller.polling import TargetPoller
from revision_controller.prompts import Prompts
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import GitTarget, ImageTarget, SecretRef, Subscription

SECRET = SecretRef("ns", "tok")
REPO = GitTarget(GitSource("git", "", "http://git.example/r.git"), "", SECRET)
IMAGE = ImageTarget(ImageReference("ghcr.io", "o/app", "v1"), False, SECRET)


class FakeGit:
    def __init__(self, token: str | None, answers: list, rate_limits: list | None = None) -> None:
        self.token, self.answers, self.closed, self.asked = token, answers, False, []
        self.rate_limit: RateLimit | None = None
        self.rate_limits: list[RateLimit] = rate_limits if rate_limits is not None else []

    def default_branch(self) -> str:
        self.asked.append("default")
        return "main"

    def head(self, branch: str) -> str:
        self.asked.append(branch)
        if self.rate_limits:
            self.rate_limit = self.rate_limits.pop(0)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def changed_files(self, base: str, head: str) -> ChangedFiles:
        return ChangedFiles(("README.md",))

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeRegistry:
    auth: RegistryAuth | None
    digests: list[str]
    closed: bool = False

    def digest(self, reference: ImageReference) -> str:
        return self.digests.pop(0)

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeCredentials:
    token_value: str = "t1"
    forgotten: list = field(default_factory=list)

    def token(self, ref: SecretRef | None) -> str:
        return self.token_value

    def registry_auth(self, ref: SecretRef | None, registry: str) -> RegistryAuth:
        return RegistryAuth("u", self.token_value)

    def forget(self, ref: SecretRef | None) -> None:
        self.forgotten.append(ref)


@dataclass
class FakePatcher:
    applied: list = field(default_factory=list)
    found_through: list[str] = field(default_factory=list)

    def apply(self, type_: str, view: FunctionView, observed: str, found_through: str = "",
              screen: Any = None) -> str:
        self.applied.append((type_, view.ref.name, observed))
        self.found_through.append(found_through)
        if screen is not None and screen(view, Change({}, "SourceChanged", "moved")) is None:
            return "unchanged"
        return "patched"


@dataclass
class FakeEvents:
    seen: list = field(default_factory=list)

    def record(self, function, type_: str, reason: str, message: str) -> bool:
        self.seen.append((function.ref.name, reason, message))
        return True


@dataclass
class Rig:
    poller: TargetPoller
    book: SubscriptionBook
    opened: list
    credentials: FakeCredentials
    patcher: FakePatcher
    events: FakeEvents
    prompts: Prompts
    metrics: Metrics


def setup(target, *subscribers: tuple[str, str], answers: list | None = None,
          budgets: Budgets | None = None, rate_limits: list | None = None) -> Rig:
    book = SubscriptionBook()
    for name, type_ in subscribers:
        ref = FunctionRef("ns", name)
        book.subscribe(Subscription(ref, target, 1.0, type_), FunctionView(ref, "uid", "1"))
    opened: list = []
    credentials, patcher, events = FakeCredentials(), FakePatcher(), FakeEvents()

    def open_git(source: GitSource, token: str | None) -> FakeGit:
        opened.append(FakeGit(token, answers if answers is not None else [], rate_limits))
        return opened[-1]

    def open_registry(registry: str, auth: RegistryAuth | None, insecure: bool) -> FakeRegistry:
        opened.append(FakeRegistry(auth, answers if answers is not None else []))
        return opened[-1]

    prompts, metrics = Prompts(book, lambda _: True, lambda: True, lambda ref, value: None), Metrics()
    poller = TargetPoller(book, credentials, patcher, events, metrics, "core.openfunction.io/v1beta2",
                          git_factory=open_git, registry_factory=open_registry, budgets=budgets, prompts=prompts)
    return Rig(poller, book, opened, credentials, patcher, events, prompts, metrics)


def test_one_read_of_a_target_is_fanned_out_to_every_subscriber_with_its_type() -> None:
    rig = setup(IMAGE, ("served", "image"), ("built", "source-image"), answers=["sha256:1"])
    rig.poller.poll(IMAGE)
    assert rig.patcher.applied == [("source-image", "built", "sha256:1"), ("image", "served", "sha256:1")]
    assert len(rig.opened) == 1 and rig.opened[0].auth == RegistryAuth("u", "t1")


def test_a_poll_out_of_turn_says_what_prompted_it_once_and_measures_the_latency() -> None:
    rig = setup(REPO, ("a", "source"), answers=["c1", "c2"])
    rig.prompts.requested(REPO, "2026-11-30T17:00:00Z")
    rig.poller.poll(REPO)
    rig.poller.poll(REPO)
    assert rig.patcher.found_through == ["the requested-at annotation", ""]
    assert rig.metrics.registry.get_sample_value("revision_controller_prompt_to_patch_seconds_count") == 1


def test_the_provider_is_kept_across_polls_and_reopened_when_the_token_rotates() -> None:
    rig = setup(REPO, ("a", "source"), answers=["c1", "c2", "c3"])
    rig.poller.poll(REPO)
    rig.poller.poll(REPO)
    assert len(rig.opened) == 1
    rig.credentials.token_value = "t2"
    rig.poller.poll(REPO)
    assert len(rig.opened) == 2 and rig.opened[0].closed and rig.opened[1].token == "t2"


def test_the_default_branch_is_resolved_once_and_again_after_not_found() -> None:
    rig = setup(REPO, ("a", "source"), answers=["c1", NotFound("gone"), "c2", "c3"])
    for _ in range(4):
        rig.poller.poll(REPO)
    assert rig.opened[0].asked == ["default", "main", "main", "default", "main", "main"]
    assert [observed for _, _, observed in rig.patcher.applied] == ["c1", "c2", "c3"]


def test_an_error_is_told_once_per_subscriber_until_it_changes_or_recovers() -> None:
    down, other = Unavailable("server error (HTTP 502)"), Unavailable("no answer within 10s")
    rig = setup(REPO, ("a", "source"), ("b", "source"), answers=[down, down, down, other, "c1", down])
    for _ in range(6):
        rig.poller.poll(REPO)
    assert all(reason == "PollFailed" for _, reason, _ in rig.events.seen)
    told = [(name, message.split(" failed: ", 1)[1]) for name, _, message in rig.events.seen]
    assert told == [("a", str(down)), ("b", str(down)), ("a", str(other)), ("b", str(other)),
                    ("a", str(down)), ("b", str(down))]
    assert rig.credentials.forgotten == [SECRET] * 5
    assert rig.patcher.applied == [("source", "a", "c1"), ("source", "b", "c1")]


def test_a_new_subscriber_of_a_failing_target_is_told_too() -> None:
    rig = setup(REPO, ("a", "source"), answers=[Unavailable("down")] * 2)
    rig.poller.poll(REPO)
    ref = FunctionRef("ns", "late")
    rig.book.subscribe(Subscription(ref, REPO, 1.0, "source"), FunctionView(ref, "uid", "1"))
    rig.poller.poll(REPO)
    assert [name for name, _, _ in rig.events.seen] == ["a", "late"]


def test_forgetting_a_target_closes_its_provider() -> None:
    rig = setup(REPO, ("a", "source"), answers=["c1"])
    rig.poller.poll(REPO)
    rig.poller.forget(REPO)
    assert rig.opened[0].closed


@pytest.mark.parametrize("error", [AssertionError("10.0"), TypeError("bad"), KeyError("sha"), RecursionError()])
def test_any_exception_is_the_targets_failure_not_the_schedulers(error: Exception) -> None:
    metrics = Metrics()
    rig = setup(REPO, ("a", "source"), answers=[error, error])
    rig.poller._metrics = metrics
    assert rig.poller.poll(REPO) == PollOutcome("transient")
    assert rig.poller.poll(REPO) == PollOutcome("transient")
    assert [(name, reason) for name, reason, _ in rig.events.seen] == [("a", "PollFailed")]
    message = rig.events.seen[0][2]
    assert type(error).__name__ in message and "report it" in message
    failures = metrics.registry.get_sample_value("revision_controller_polls_total",
                                                 {"provider": "git", "outcome": "failure"})
    assert failures == 2


def test_refused_credentials_are_a_permanent_failure_and_success_is_ok() -> None:
    rig = setup(REPO, ("a", "source"), answers=[Unauthorized("refused"), "c1"])
    assert rig.poller.poll(REPO) == PollOutcome("permanent")
    assert rig.poller.poll(REPO) == PollOutcome("ok")


def test_a_throttled_host_gets_no_request_before_the_time_it_named() -> None:
    budgets = Budgets()
    rig = setup(REPO, ("a", "source"), answers=[Throttled("slow down", 120.0), "c1"], budgets=budgets)
    outcome = rig.poller.poll(REPO)
    assert outcome.kind == "transient" and outcome.retry_after == 120.0
    deferred = rig.poller.poll(REPO)
    assert deferred.kind == "deferred" and 100 < deferred.retry_after <= 120
    assert rig.opened[0].asked == ["default", "main"]  # the second poll sent nothing
    assert rig.patcher.applied == []


def test_a_budget_running_out_stretches_the_interval_and_says_so_once() -> None:
    budgets, now = Budgets(), time.time()
    rig = setup(REPO, ("a", "source"), ("b", "source"), answers=["c1", "c1", "c1"], budgets=budgets)
    rig.poller.poll(REPO)
    rig.opened[0].rate_limits = [RateLimit(5000, 1000, now + 3600), RateLimit(5000, 600, now + 3600),
                                 RateLimit(5000, 590, now + 3600)]
    key = BudgetKey.of("git.example", "t1")
    budgets.observed(key, RateLimit(5000, 1400, now + 3600), now - 60)
    rig.poller.poll(REPO)
    rig.poller.poll(REPO)
    assert rig.poller.stretch(REPO) == MAX_STRETCH
    told = [(name, reason) for name, reason, _ in rig.events.seen]
    assert told == [("a", "RateLimited"), ("b", "RateLimited")]
    assert re.search(r"every \d+s instead of 1s", rig.events.seen[0][2])


def test_a_secret_fixed_the_moment_its_refusal_is_told_still_mends_the_target() -> None:
    rig = setup(REPO, ("a", "source"), answers=[Unauthorized("refused"), "c1"])
    told = rig.events.record

    def fix_on_sight(*args: object) -> bool:  # the owner reads the Event and fixes the Secret at once
        recorded = told(*args)
        rig.credentials.token_value = "t2"
        return recorded

    rig.events.record = fix_on_sight  # type: ignore[method-assign]
    assert rig.poller.poll(REPO) == PollOutcome("permanent")
    assert rig.poller.refusals.mended(time.monotonic() + 1.0) == [REPO]


def test_a_target_refused_for_its_credentials_is_mended_when_its_secret_changes() -> None:
    rig = setup(REPO, ("a", "source"), answers=[Unauthorized("refused"), "c1"])
    assert rig.poller.poll(REPO) == PollOutcome("permanent")
    assert rig.poller.refusals.mended(time.monotonic()) == []  # the same token: nothing to gain
    assert rig.poller.refusals.mended(time.monotonic() + 0.5) == []  # not read again before its interval
    rig.credentials.token_value = "t2"
    assert rig.poller.refusals.mended(time.monotonic() + 1.0) == [REPO]
    assert rig.poller.refusals.mended(time.monotonic() + 2.0) == []  # told once
    assert rig.poller.poll(REPO) == PollOutcome("ok")


def test_first_reads_and_new_heads_are_one_offs_that_do_not_set_the_pace() -> None:
    budgets, reset = Budgets(), time.time() + 3600
    limits = [RateLimit(5000, left, reset) for left in (4000, 3999, 3998, 3997, 3996)]
    rig = setup(REPO, ("a", "source"), answers=["c1", "c1", "c2", "c2", "c2"], budgets=budgets,
                rate_limits=limits)
    seen: list[int] = []
    budgets.observed = lambda key, limit, at: seen.append(limit.remaining) or 1.0  # type: ignore[method-assign]
    for _ in range(3):  # the first read, the same head, a new head
        rig.poller.poll(REPO)
    rig.credentials.token_value = "t2"  # a new provider: its first read again
    rig.poller.poll(REPO)
    rig.poller.poll(REPO)
    assert seen == [3999, 3996]


def test_past_the_ceiling_a_github_poll_joins_the_batch_which_delivers_its_head() -> None:
    target = GitTarget(GitSource("github", "https://api.github.com", "o/r"), "main", SECRET)
    book = SubscriptionBook()
    ref = FunctionRef("ns", "a")
    book.subscribe(Subscription(ref, target, 1.0, "source"), FunctionView(ref, "uid", "1"))
    patcher, credentials = FakePatcher(), FakeCredentials()
    poller = TargetPoller(book, credentials, patcher, FakeEvents(), Metrics(), "core.openfunction.io/v1beta2",
                          git_factory=lambda source, token: pytest.fail("no REST provider past the ceiling"),
                          batch_above=30.0)  # one target a second is 60 a minute
    asked: list = []

    def read(server: str, token: str, queries: list, timeout: float):
        asked.append((server, token, queries))
        return dict.fromkeys(queries, "d" * 40), None

    poller.batcher._read = read
    assert poller.poll(target) == PollOutcome("ok")
    assert patcher.applied == []  # not yet: the batch has not been read
    poller.batcher.flush()
    assert asked == [("https://api.github.com", "t1", [HeadQuery("o/r", "main")])]
    assert patcher.applied == [("source", "a", "d" * 40)]


def created_again(rig: Rig, name: str, **subscription: Any) -> None:
    """The Function deleted and created again with the same name and status, as the Controller tells the poller."""
    ref = FunctionRef("ns", name)
    rig.book.unsubscribe(ref)
    rig.poller.unsubscribed(ref)
    rig.book.subscribe(Subscription(ref, REPO, 1.0, "source", **subscription),
                       FunctionView(ref, "uid-2", "1", commit_sha="1" * 40))


def test_a_function_created_again_is_told_again_that_its_target_fails() -> None:
    rig = setup(REPO, ("a", "source"), answers=[Unavailable("down")] * 3)
    rig.poller.poll(REPO)
    rig.poller.poll(REPO)
    created_again(rig, "a")
    rig.poller.poll(REPO)
    assert [(name, reason) for name, reason, _ in rig.events.seen] == [("a", "PollFailed"), ("a", "PollFailed")]


def test_a_function_created_again_is_told_again_that_its_files_did_not_change() -> None:
    paths = path_filter(["functions/a"], "")
    rig = setup(REPO, answers=["2" * 40] * 3)
    ref = FunctionRef("ns", "a")
    rig.book.subscribe(Subscription(ref, REPO, 1.0, "source", paths=paths),
                       FunctionView(ref, "uid", "1", commit_sha="1" * 40))
    rig.poller.poll(REPO)
    rig.poller.poll(REPO)
    created_again(rig, "a", paths=paths)
    rig.poller.poll(REPO)
    assert [(name, reason) for name, reason, _ in rig.events.seen] == [
        ("a", "SourceUnchangedInPaths"), ("a", "SourceUnchangedInPaths")]


@pytest.mark.parametrize(("error", "tried"), [
    (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), ["a"]),  # each would wait as long
    (ConnectionRefusedError(), ["a"]),
    (ApiException(status=500, reason="Internal Server Error"), ["a", "b", "c"]),  # it answers: go on
])
def test_an_api_server_that_does_not_answer_leaves_the_other_functions_for_the_next_poll(
        error: Exception, tried: list[str]) -> None:
    rig = setup(REPO, ("a", "source"), ("b", "source"), ("c", "source"), answers=["c1", "c1"])
    asked: list[str] = []

    def failing(type_: str, view: FunctionView, observed: str, found_through: str = "", screen: Any = None) -> str:
        asked.append(view.ref.name)
        raise error
    rig.patcher.apply = failing  # type: ignore[method-assign]
    assert rig.poller.poll(REPO) == PollOutcome.OK
    assert asked == tried
    del rig.patcher.apply
    rig.poller.poll(REPO)  # the API server answers again
    assert [name for _, name, _ in rig.patcher.applied] == ["a", "b", "c"]


def refusing_the_first_event(rig: Rig) -> None:
    """The API server does not take the first Event the poller records, then takes every one."""
    taken = iter([False])
    recorded = rig.events.record

    def flaky(*args: Any) -> bool:
        recorded(*args)
        return next(taken, True)
    rig.events.record = flaky  # type: ignore[method-assign]


def test_a_poll_failure_the_api_server_did_not_take_is_told_at_the_next_poll() -> None:
    rig = setup(REPO, ("a", "source"), answers=[Unavailable("down")] * 3)
    refusing_the_first_event(rig)
    for _ in range(3):
        rig.poller.poll(REPO)
    assert [(name, reason) for name, reason, _ in rig.events.seen] == [("a", "PollFailed"), ("a", "PollFailed")]


def test_a_stretch_the_api_server_did_not_take_is_told_at_the_next_poll() -> None:
    budgets, now = Budgets(), time.time()
    rig = setup(REPO, ("a", "source"), answers=["c1"] * 4, budgets=budgets)
    rig.poller.poll(REPO)
    rig.opened[0].rate_limits = [RateLimit(5000, 1000, now + 3600), RateLimit(5000, 600, now + 3600),
                                 RateLimit(5000, 590, now + 3600)]
    budgets.observed(BudgetKey.of("git.example", "t1"), RateLimit(5000, 1400, now + 3600), now - 60)
    refusing_the_first_event(rig)
    for _ in range(3):
        rig.poller.poll(REPO)
    assert [(name, reason) for name, reason, _ in rig.events.seen] == [("a", "RateLimited"), ("a", "RateLimited")]
