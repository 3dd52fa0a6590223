"""HTTP clients shared by every provider that talks to one host with one credential.

A provider is opened per target. Were each to hold its own client, each would
keep its own connection, and each TLS connection its own copy of the CA
bundle, about 0.8 MiB: 1,000 targets on GitHub would keep 800 MiB alive and
shake hands 1,000 times. Providers instead lease a client by key (the host,
and the credential where the client carries it) and end the lease when they
close; the last lease to end closes the client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
C = TypeVar("C")


# Accepts no cookie from any domain.
NO_COOKIES = DefaultCookiePolicy(allowed_domains=[])


def cookieless() -> CookieJar:
    """A cookie jar that keeps nothing: a client shared by targets with different
    credentials must not carry one's session cookie into another's requests."""
    return CookieJar(policy=NO_COOKIES)


@dataclass
class _Shared(Generic[C]):
    client: C
    users: int


class Lease(Generic[K, C]):
    """One provider's use of a shared client; `end()` may be called more than once."""

    def __init__(self, owner: SharedClients[K, C], key: K, client: C) -> None:
        self.client = client
        self._owner: SharedClients[K, C] | None = owner
        self._key = key

    def end(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.release(self._key)


class SharedClients(Generic[K, C]):
    """Thread-safe: targets are opened and closed from every worker."""

    def __init__(self, open_: Callable[[K], C], close: Callable[[C], None]) -> None:
        self._open = open_
        self._close = close
        self._lock = threading.Lock()
        self._clients: dict[K, _Shared[C]] = {}

    def lease(self, key: K) -> Lease[K, C]:
        with self._lock:
            shared = self._clients.get(key)
            if shared is None:
                shared = self._clients[key] = _Shared(self._open(key), 0)
            shared.users += 1
            return Lease(self, key, shared.client)

    def release(self, key: K) -> None:
        with self._lock:
            shared = self._clients.get(key)
            if shared is None:
                return
            shared.users -= 1
            if shared.users > 0:
                return
            del self._clients[key]
        self._close(shared.client)

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)
