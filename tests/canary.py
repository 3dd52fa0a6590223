"""A distinctive string that every token and password in the tests carries, and the ways
to spot it in what the daemon writes: as is, percent-encoded, or base64-encoded at any
offset (as in a Basic `Authorization` header or a docker config's `auth`)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from urllib.parse import quote

CANARY = "rcCanary7Qx2Vb9Lw4Zt"


def secret(purpose: str) -> str:
    """A token or password for `purpose` (e.g. "forge-token") that carries the canary."""
    return f"{CANARY}-{purpose}"


def _base64_forms(text: bytes) -> set[str]:
    """The base64 characters that depend on `text` alone, wherever it starts in the encoded
    bytes: one form per offset modulo 3, in both alphabets."""
    forms: set[str] = set()
    for offset, skip in ((0, 0), (1, 2), (2, 3)):
        encoded = base64.b64encode(b"\0" * offset + text).decode()
        core = encoded[skip:len(encoded) - 4]  # the last group may mix with what follows
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return forms


FORMS = frozenset({CANARY, quote(CANARY, safe=""), *_base64_forms(CANARY.encode())})


def leaks(text: str) -> bool:
    """Whether `text` shows the canary in any of its forms."""
    return any(form in text for form in FORMS)


def leaking_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if leaks(line)]


def secret_carries_canary(data: dict[str, str] | None, string_data: dict[str, str] | None = None) -> bool:
    """Whether a Secret's `data` (base64 values) or `stringData` hold the canary."""
    return any(leaks(value) for value in _decoded(data or {})) or any(
        leaks(value) for value in (string_data or {}).values())


def _decoded(data: dict[str, str]) -> Iterable[str]:
    for value in data.values():
        try:
            yield base64.b64decode(value, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            yield value
