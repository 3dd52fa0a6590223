"""Counts of what each property saw, printed at the end of the run (`make test`, `make fuzz`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A parse of one input taking longer than this is a hang in the making; generous for a busy
# 2-core machine, where one YAML parse of 8 KiB takes a few milliseconds.
SECONDS_PER_EXAMPLE = 5.0


@dataclass
class Tally:
    examples: int = 0
    values: int = 0
    refusals: int = 0
    unexpected: int = 0
    slowest: float = 0.0


TALLIES: dict[str, Tally] = {}


def counted(name: str, *refusals: type[Exception]) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Count the examples a property runs: a value, one of the project's own `refusals`, or
    anything else, which is an unexpected error and fails the property. Each example must
    finish within SECONDS_PER_EXAMPLE."""
    tally = TALLIES.setdefault(name, Tally())

    def decorate(check: Callable[..., Any]) -> Callable[..., None]:
        @functools.wraps(check)
        def run(*args: Any, **kwargs: Any) -> None:
            tally.examples += 1
            started = time.perf_counter()
            try:
                check(*args, **kwargs)
            except refusals:
                tally.refusals += 1
            except Exception:
                tally.unexpected += 1
                raise
            else:
                tally.values += 1
            finally:
                elapsed = time.perf_counter() - started
                tally.slowest = max(tally.slowest, elapsed)
            assert elapsed < SECONDS_PER_EXAMPLE, f"{name}: one example took {elapsed:.1f}s"
        return run
    return decorate
