"""Which files changed between two commits of a target: asked of its provider once per (target,
base, head) and shared by every Function on that target.

Only certain answers are kept. A comparison that could not be made becomes an uncertain answer,
which rebuilds: a missed rebuild is worse than an extra one.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from providers import ChangedFiles, ProviderError
from providers.answers import is_commit_sha
from revision_controller.targets import GitTarget

log = logging.getLogger(__name__)

# Each kept answer is a few file names; a cluster's Functions sit on far fewer moves at once.
KEPT_COMPARISONS = 1024

Compare = Callable[[str, str], ChangedFiles]


class Comparisons:
    def __init__(self, kept: int = KEPT_COMPARISONS,
                 on_answer: Callable[[bool], None] = lambda certain: None) -> None:
        """`on_answer` hears, for each comparison asked of a provider, whether it was certain."""
        self._kept = kept
        self._on_answer = on_answer
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[GitTarget, str, str], ChangedFiles] = OrderedDict()

    def changed(self, target: GitTarget, base: str, head: str, compare: Compare) -> ChangedFiles:
        """The files that changed on `target` from `base` to `head`, asking `compare` only when
        no Function on the target asked before."""
        base, head = base.lower(), head.lower()
        if not is_commit_sha(base):
            return ChangedFiles(uncertain=f"the recorded commit {base[:80]!r} is not a commit SHA")
        key = (target, base, head)
        with self._lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
        changed = self._ask(target, base, head, compare)
        self._on_answer(not changed.uncertain)
        if not changed.uncertain:
            with self._lock:
                self._answers[key] = changed
                while len(self._answers) > self._kept:
                    self._answers.popitem(last=False)
        return changed

    def forget(self, target: GitTarget) -> None:
        with self._lock:
            for key in [key for key in self._answers if key[0] == target]:
                del self._answers[key]

    def _ask(self, target: GitTarget, base: str, head: str, compare: Compare) -> ChangedFiles:
        try:
            return compare(base, head)
        except ProviderError as error:
            log.warning("comparing %s from %s to %s failed: %s", target.describe(), base, head, error)
            return ChangedFiles(uncertain=f"which files changed could not be read: {error}")
        except Exception as error:
            log.error("comparing %s from %s to %s failed", target.describe(), base, head, exc_info=error)
            return ChangedFiles(uncertain=f"which files changed could not be read (unexpected "
                                          f"{type(error).__name__}, a bug: please report it)")
