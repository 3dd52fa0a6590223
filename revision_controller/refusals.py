"""Targets refused for their credentials, and whether their Secret has changed since.

A target that fails for good (a refused token, a Secret without the key) waits ten
minutes before its next poll. When its Secret is fixed meanwhile, it should be
polled at once: its Secret is read again (never the provider asked) at most once
per the target's interval, and at least every 30 s, and compared by digest.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from revision_controller.credentials import CredentialStore
from revision_controller.targets import GitTarget, Target

RECHECK_SECONDS = 30.0


@dataclass
class _Refusal:
    fingerprint: str
    next_check: float


class Refusals:
    """Thread-safe: failures are recorded from the workers, mended targets asked for by a loop."""

    def __init__(self, credentials: CredentialStore, interval_of: Callable[[Target], float | None]) -> None:
        self._credentials = credentials
        self._interval_of = interval_of
        self._lock = threading.Lock()
        self._refused: dict[Target, _Refusal] = {}

    def refused(self, target: Target, now: float) -> None:
        """The target failed for good with what its Secret gives now."""
        refusal = _Refusal(self._fingerprint(target), now)
        with self._lock:
            self._refused[target] = refusal

    def cleared(self, target: Target) -> None:
        """The target was read, or is no longer polled."""
        with self._lock:
            self._refused.pop(target, None)

    def mended(self, now: float) -> list[Target]:
        """Targets whose Secret gives something else than when they were refused."""
        with self._lock:
            due = [(target, refusal) for target, refusal in self._refused.items() if refusal.next_check <= now]
        mended = []
        for target, refusal in due:
            self._credentials.forget(target.credentials)
            if self._fingerprint(target) != refusal.fingerprint:
                mended.append(target)
                self.cleared(target)
            else:
                refusal.next_check = now + min(self._interval_of(target) or RECHECK_SECONDS, RECHECK_SECONDS)
        return mended

    def _fingerprint(self, target: Target) -> str:
        """What the target's Secret gives now, as a digest: a token, a registry auth, or an error."""
        try:
            if isinstance(target, GitTarget):
                credential = repr(self._credentials.token(target.credentials))
            else:
                auth = self._credentials.registry_auth(target.credentials, target.reference.registry)
                credential = repr((auth.username, auth.password) if auth else None)
        except Exception as error:  # noqa: BLE001 - a Secret that cannot be read is a state like any other
            credential = f"{type(error).__name__}: {error}"
        return hashlib.sha256(credential.encode()).hexdigest()
