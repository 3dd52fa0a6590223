"""Go's time.ParseDuration, which the original controller used for `polling-interval`."""

from __future__ import annotations

import re

_UNIT_SECONDS: dict[str, float] = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}
# Go keeps durations in int64 nanoseconds: about 292 years.
MAX_SECONDS = (2**63 - 1) / 1e9
# Possessive: a long run of digits without a unit fails at once instead of backtracking.
_PART = re.compile(r"([0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)(ns|us|µs|μs|ms|s|m|h)")  # Go reads ASCII digits only


class DurationTooLong(ValueError):
    """The duration is well formed but past what Go can hold."""


def parse_duration(text: str) -> float:
    """Seconds in a Go duration such as `500ms`, `1h30m` or `1.5s`.

    Raises ValueError for anything Go would refuse (`5`, `5 s`, `1d`, ``)."""
    body = text.strip()
    sign = 1.0
    if body and body[0] in "+-":
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total, position = 0.0, 0
    while position < len(body):
        part = _PART.match(body, position)
        if part is None:
            raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 30s, 1m, 1h30m, 500ms")
        total += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        position = part.end()
    if total > MAX_SECONDS:
        raise DurationTooLong(f"invalid duration {text!r}: longer than Go's limit of about 292 years")
    return sign * total


def format_duration(seconds: float) -> str:
    """A short human form for logs and Events: `500ms`, `5s`, `1h30m`."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"
