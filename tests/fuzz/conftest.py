"""Hypothesis profiles, and the figures of every property at the end of the run.

`make test` runs the `test` profile: 500 examples per property from a fixed seed, so that CI
is repeatable. `make fuzz` (HYPOTHESIS_PROFILE=fuzz) runs 10,000 per property, seeded afresh
each run."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.fuzz.tally import SECONDS_PER_EXAMPLE, TALLIES

_SLOW_INPUTS_ARE_THE_POINT = [HealthCheck.too_slow, HealthCheck.data_too_large,
                              HealthCheck.filter_too_much, HealthCheck.large_base_example]
# A hang is caught by the per-example bound in tally.py and pytest-timeout; Hypothesis's own
# deadline would make a busy machine's pauses look like failures.
settings.register_profile("test", max_examples=500, derandomize=True, database=None, deadline=None,
                          suppress_health_check=_SLOW_INPUTS_ARE_THE_POINT, print_blob=True)
settings.register_profile("fuzz", max_examples=10_000, derandomize=False, database=None, deadline=None,
                          suppress_health_check=_SLOW_INPUTS_ARE_THE_POINT, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "test"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not any(tally.examples for tally in TALLIES.values()):
        return  # no property ran here (on a pytest-xdist worker: they ran on the others)
    profile = settings.get_current_profile_name()
    terminalreporter.section(f"fuzzing: Hypothesis profile {profile!r}, "
                             f"{settings.default.max_examples} examples per property")
    terminalreporter.write_line(f"{'property':<28} {'examples':>9} {'values':>8} {'refused':>8} "
                                f"{'unexpected':>10} {'slowest':>9}")
    for name, tally in sorted(TALLIES.items()):
        if tally.examples:
            terminalreporter.write_line(
                f"{name:<28} {tally.examples:>9} {tally.values:>8} {tally.refusals:>8} "
                f"{tally.unexpected:>10} {tally.slowest * 1000:>7.1f}ms")
    total = sum(tally.unexpected for tally in TALLIES.values())
    terminalreporter.write_line(f"unexpected errors: {total}; bound per example: {SECONDS_PER_EXAMPLE:g}s")
