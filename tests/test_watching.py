"""The watch's back-off, as pure values: how long after each failure."""

from revision_controller.watching import BACKOFF_RESET_SECONDS, MAX_BACKOFF_SECONDS, Backoff


def test_failures_in_a_row_double_the_wait_up_to_the_cap() -> None:
    backoff = Backoff()
    waits = [backoff.failed(now) for now in range(10)]
    assert waits == [0.5, 1, 2, 4, 8, 16, MAX_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS,
                     MAX_BACKOFF_SECONDS]


def test_a_failure_long_after_the_last_one_waits_as_little_as_the_first() -> None:
    backoff = Backoff()
    for now in range(8):
        backoff.failed(now)
    assert backoff.failed(7 + BACKOFF_RESET_SECONDS + 1) == 0.5  # a cut an hour into a healthy watch
    assert backoff.failed(8 + BACKOFF_RESET_SECONDS + 1) == 1


def test_a_clean_end_starts_again_from_the_first_wait() -> None:
    backoff = Backoff()
    for now in range(4):
        backoff.failed(now)
    backoff.succeeded()
    assert backoff.failed(5) == 0.5
