from __future__ import annotations

import pytest

from cortex_iac.specs import parse_duration

GOOD = [
    ("60s", 60),
    ("5m", 300),
    ("1h", 3600),
    ("1m30s", 90),
    ("1h30m", 5400),
    ("2h45m10s", 9910),
    ("1.5m", 90),
    ("0.5h", 1800),
    ("0s", 0),
    ("0", 0),
    (45, 45),
    (0, 0),
]


@pytest.mark.parametrize(("written", "seconds"), GOOD)
def test_parses_to_whole_seconds(written: str | int, seconds: int) -> None:
    assert parse_duration(written) == seconds


@pytest.mark.parametrize("written", ["", "60", "5x", "m", "1d", "s60", "1 m", "1m 30s", "1.2.3s", "60S", True, 1.5, None])
def test_rejects_what_is_not_a_duration(written: object) -> None:
    with pytest.raises(ValueError, match=r"^must be a duration such as 60s, 5m, 1h30m or 1.5m$"):
        parse_duration(written)  # type: ignore[arg-type]


@pytest.mark.parametrize("written", ["-5s", -1])
def test_rejects_negative_durations(written: str | int) -> None:
    with pytest.raises(ValueError, match=r"^must not be negative$"):
        parse_duration(written)


@pytest.mark.parametrize("written", ["1.5s", "0.01m"])
def test_rejects_fractions_of_a_second(written: str) -> None:
    with pytest.raises(ValueError, match=r"^must be a whole number of seconds$"):
        parse_duration(written)
