import pytest

from revision_controller.duration import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("500ms", 0.5), ("30s", 30), ("1m", 60), ("1h30m", 5400), ("1.5s", 1.5), (".5s", 0.5),
    ("2h45m30.5s", 9930.5), ("100us", 1e-4), ("100µs", 1e-4), ("10ns", 1e-8), ("0", 0), ("-5s", -5),
    ("+5s", 5),
])
def test_parses_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "5 s", "1d", "", "s", "1m30", "m", "5S", "1.2.3s", "--5s"])
def test_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("seconds, text", [(0.5, "500ms"), (5, "5s"), (5400, "1h30m"), (1.5, "1.5s"),
                                           (3600, "1h"), (61, "1m1s")])
def test_formats_short(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
