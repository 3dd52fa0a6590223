"""Polls out of turn: a webhook names targets, or a Function's check-now annotation changes.

The target is polled at once (its next turn a full interval later), and the
reason and the time it arrived are kept until that poll, so that the patch it
leads to says how the change was found and its latency is measured. A standby
replica does not poll: it passes a webhook on to the leader by setting the
check-now annotation on one Function of each target, which the leader's watch
sees, from a thread of its own, so that the webhook's sender has its answer at
once however slowly the API server takes the annotations. Thread-safe.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from revision_controller.announcements import Announcement, names
from revision_controller.function import FunctionRef
from revision_controller.subscriptions import SubscriptionBook
from revision_controller.targets import Target

PROVIDER_NAMES = {"github": "GitHub", "gitlab": "GitLab", "gitee": "Gitee", "registry": "registry"}
_FORWARDED = re.compile(r"^webhook/(?P<provider>[a-z]+)/\d+$")
# Targets waiting to be passed on to the leader; past this, a webhook's target is left to its next poll.
FORWARDS_WAITING = 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    why: str  # how the change is found, e.g. "a GitHub webhook"
    since: float  # monotonic time it arrived


class Prompts:
    def __init__(self, book: SubscriptionBook, poll_now: Callable[[Target], bool], may_act: Callable[[], bool],
                 annotate: Callable[[FunctionRef, str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._book = book
        self._poll_now = poll_now
        self._may_act = may_act
        self._annotate = annotate
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[Target, Prompt] = {}
        self._forwards: queue.Queue[tuple[str, Target]] = queue.Queue(FORWARDS_WAITING)
        self._forwarder: threading.Thread | None = None

    def announced(self, provider: str, announcements: list[Announcement], received: float) -> int:
        """Poll every target a webhook names, or have the leader poll them; how many there are."""
        targets = [target for target in self._book.targets()
                   if any(names(announcement, target) for announcement in announcements)]
        for target in targets:
            if self._may_act():
                self._prompt(target, Prompt(f"a {PROVIDER_NAMES[provider]} webhook", received))
            else:
                self._forward(provider, target)
        return len(targets)

    def requested(self, target: Target, value: str) -> None:
        """A Function's check-now annotation changed to `value`."""
        forwarded = _FORWARDED.match(value)
        why = (f"a {PROVIDER_NAMES.get(forwarded['provider'], 'provider')} webhook received by a standby"
               if forwarded else "the requested-at annotation")
        self._prompt(target, Prompt(why, self._clock()))

    def take(self, target: Target) -> Prompt | None:
        """The prompt a poll of `target` answers, once."""
        with self._lock:
            return self._waiting.pop(target, None)

    def put_back(self, target: Target, prompt: Prompt | None) -> None:
        """A poll that did not read the head itself (a GraphQL batch will) leaves the prompt for it."""
        if prompt is not None:
            with self._lock:
                self._waiting.setdefault(target, prompt)

    def forget(self, target: Target) -> None:
        with self._lock:
            self._waiting.pop(target, None)

    def _prompt(self, target: Target, prompt: Prompt) -> None:
        with self._lock:
            self._waiting.setdefault(target, prompt)  # the earliest: latency counts from the first
        if not self._poll_now(target):
            self.forget(target)

    def _forward(self, provider: str, target: Target) -> None:
        try:
            self._forwards.put_nowait((provider, target))
        except queue.Full:
            log.warning("too many webhooks waiting to be passed on to the leader: the %s webhook for %s is "
                        "left to the target's next poll", provider, target.describe())
            return
        with self._lock:
            if self._forwarder is None:
                self._forwarder = threading.Thread(target=self._pass_on, name="webhook-forwarder", daemon=True)
                self._forwarder.start()

    def _pass_on(self) -> None:
        while True:
            self._annotate_for(*self._forwards.get())

    def _annotate_for(self, provider: str, target: Target) -> None:
        subscribers = self._book.subscribers(target)
        if not subscribers:
            return
        ref = subscribers[0][1].ref
        try:
            self._annotate(ref, f"webhook/{provider}/{time.time_ns()}")
        except Exception as error:  # noqa: BLE001 - the other targets are still passed on
            log.warning("could not pass a %s webhook for %s on to the leader through Function %s: %s",
                        provider, target.describe(), ref, error)
