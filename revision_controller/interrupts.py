"""SIGINT, SIGTERM and SIGHUP (the terminal closed) for `revision-controller demo`: noted when they
arrive, acted on at the next wait.

The handler only records the signal. Raising from it instead would put a KeyboardInterrupt
wherever the main thread happens to be, a finalizer or a lock's bookkeeping included, where
it can be lost (and the demo then never stops) or leave a half-started server behind.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Self

POLL_SECONDS = 0.1
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A signal arrived; the exit status says which, as a shell's does (128 + signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.status = 128 + signum


class Interrupts:
    """While entered (from the main thread), SIGINT, SIGTERM and SIGHUP are noted, not fatal; the
    previous handlers come back on exit. The first signal counts, later ones change nothing."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: not set from Python
        self._previous.clear()

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.signum = self.signum or signum

    def check(self) -> None:
        """Raise Interrupted when a signal has arrived."""
        if self.signum:
            raise Interrupted(self.signum)

    def sleep(self, seconds: float) -> None:
        """Sleep, cut short by a signal, which then raises Interrupted."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.check()
            time.sleep(min(left, POLL_SECONDS))
        self.check()
