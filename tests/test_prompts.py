"""Polls out of turn: a leader polls the targets a webhook names; a standby passes them on."""

from __future__ import annotations

import threading
import time

from providers import parse_source
from revision_controller.announcements import BranchPush, Repository
from revision_controller.function import FunctionRef, FunctionView
from revision_controller.prompts import Prompts
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import GitTarget, Subscription

TARGET = GitTarget(parse_source("github", "https://github.com/acme/app"), "main")
PUSH = BranchPush(frozenset({Repository("github.com", "acme/app")}), "main")


def book_with(*names: str) -> SubscriptionBook:
    book = SubscriptionBook()
    for name in names:
        ref = FunctionRef("ns", name)
        book.subscribe(Subscription(ref, TARGET, 60.0, "source"), FunctionView(ref, "uid", "1"))
    return book


def test_a_leader_polls_the_targets_a_webhook_names_and_annotates_nothing() -> None:
    polled: list[GitTarget] = []
    annotated: list[FunctionRef] = []
    prompts = Prompts(book_with("a", "b"), lambda target: polled.append(target) or True, lambda: True,
                      lambda ref, value: annotated.append(ref))
    assert prompts.announced("github", [PUSH], time.monotonic()) == 1
    assert polled == [TARGET] and annotated == []
    taken = prompts.take(TARGET)
    assert taken is not None and taken.why == "a GitHub webhook"


def test_a_standby_answers_at_once_and_passes_the_target_on_however_slow_the_api_server() -> None:
    slow = threading.Event()
    annotated: list[tuple[FunctionRef, str]] = []

    def annotate(ref: FunctionRef, value: str) -> None:
        slow.wait(10)  # an API server taking its time
        annotated.append((ref, value))
    prompts = Prompts(book_with("a", "b"), lambda target: True, lambda: False, annotate)
    started = time.monotonic()
    assert prompts.announced("github", [PUSH], started) == 1
    assert time.monotonic() - started < 1 and annotated == []
    slow.set()
    deadline = time.monotonic() + 5
    while not annotated and time.monotonic() < deadline:
        time.sleep(0.01)
    ((ref, value),) = annotated
    assert ref == FunctionRef("ns", "a") and value.startswith("webhook/github/")
