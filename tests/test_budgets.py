"""Budgets: stretch intervals just enough that a credential's rate limit lasts; obey pauses."""

from __future__ import annotations

import pytest

from providers.base import RateLimit
from revision_controller.budgets import MAX_STRETCH, RESERVE, BudgetKey, Budgets, Pace, stretch_needed

KEY = BudgetKey.of("api.github.com", "t0k3n")
HOUR = 3600.0


def spend(budgets: Budgets, per_minute: int, minutes: int, limit: int = 5000, start: float = 0.0) -> float:
    """Answers at a steady pace of `per_minute` units; returns the last stretch ratio."""
    ratio = 1.0
    for minute in range(minutes + 1):
        left = limit - per_minute * minute
        ratio = budgets.observed(KEY, RateLimit(limit, left, start + HOUR), start + 60.0 * minute)
    return ratio


def test_the_key_keeps_no_token() -> None:
    assert "t0k3n" not in repr(KEY)
    assert BudgetKey.of("h", None).credential == "anonymous"
    assert BudgetKey.of("h", "a") != BudgetKey.of("h", "b")


def test_a_pace_the_budget_affords_stretches_nothing() -> None:
    assert spend(Budgets(), per_minute=50, minutes=4) == 1.0


def test_free_answers_stretch_nothing_however_many() -> None:
    assert spend(Budgets(), per_minute=0, minutes=30) == 1.0


def test_a_pace_twice_what_lasts_stretches_intervals_about_twice() -> None:
    budgets = Budgets()
    # 1,000 targets at 30 s: 2,000 units a minute against 5,000 an hour.
    ratio = spend(budgets, per_minute=2000, minutes=1, limit=5000)
    remaining, hours_left = 3000, (HOUR - 60) / 60
    assert ratio == pytest.approx(2000 / ((remaining - RESERVE * 5000) / hours_left), rel=0.01)
    assert budgets.stretch(KEY, 60.0) == ratio


def test_the_stretch_is_measured_against_the_pace_at_the_asked_intervals() -> None:
    pace = Pace()
    pace.add(0.0, 4000, 1.0)
    pace.add(60.0, 3900, 4.0)  # 100 a minute stretched by 4: 400 a minute asked
    assert (pace.spent, pace.elapsed) == (400, 60.0)
    needed = stretch_needed(pace.spent, pace.elapsed, 3900, 5000, HOUR, 60.0)
    assert needed == pytest.approx(400 / ((3900 - 500) / 59), rel=0.01)


def test_an_empty_budget_stretches_to_the_cap() -> None:
    assert stretch_needed(200, 60.0, 400, 5000, HOUR, 60.0) == MAX_STRETCH


def test_a_new_window_starts_afresh_and_a_past_reset_stretches_nothing() -> None:
    budgets = Budgets()
    assert spend(budgets, per_minute=2000, minutes=1) > 1.0
    assert budgets.stretch(KEY, HOUR + 1) == 1.0
    budgets.observed(KEY, RateLimit(5000, 5000, 2 * HOUR), HOUR + 1)
    assert budgets.stretch(KEY, HOUR + 2) == 1.0


def test_small_changes_do_not_wobble_the_ratio() -> None:
    budgets = Budgets()
    first = spend(budgets, per_minute=2000, minutes=1)
    # Stretched, the pace drops by the same ratio: the ratio holds.
    again = budgets.observed(KEY, RateLimit(5000, 3000 - round(2 * 2000 / 60 / first), HOUR), 62.0)
    assert again == first


def test_a_pause_holds_the_host_until_the_time_it_named() -> None:
    budgets = Budgets()
    budgets.pause("api.github.com", 100.0)
    budgets.pause("api.github.com", 50.0)  # an earlier time never shortens a pause
    assert budgets.paused_for("api.github.com", 40.0) == 60.0
    assert budgets.paused_for("gitlab.com", 40.0) == 0.0
    assert budgets.paused_for("api.github.com", 100.0) == 0.0


def test_by_host_reports_the_scarcest_credential() -> None:
    budgets = Budgets()
    budgets.observed(BudgetKey.of("h", "a"), RateLimit(5000, 4000, HOUR), 0.0)
    budgets.observed(BudgetKey.of("h", "b"), RateLimit(5000, 100, HOUR), 0.0)
    assert budgets.by_host(1.0) == {"h": (100, 1.0)}


def test_a_few_seconds_of_spending_stretch_nothing() -> None:
    # 1,000 first reads in ten seconds are no hourly pace.
    assert stretch_needed(1000, 10.0, 4000, 5000, HOUR, 10.0) == 1.0


def test_the_pace_forgets_what_left_its_window_and_counts_no_refill() -> None:
    pace = Pace()
    for at, left, stretch in ((0.0, 100, 1.0), (10.0, 90, 1.0), (20.0, 85, 2.0), (30.0, 200, 2.0),
                              (40.0, 195, 1.0)):
        pace.add(at, left, stretch)
    assert pace.spent == 10 + 5 * 2 + 0 + 5
    pace.trim(15.0)  # the first two answers, and the spending up to the third, are older
    assert (pace.spent, pace.elapsed) == (0 + 5, 20.0)
    pace.trim(100.0)  # the last answer always stays
    assert (pace.spent, pace.elapsed, len(pace.samples)) == (0, 0.0, 1)
