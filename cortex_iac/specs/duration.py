"""Durations as Cortex wrote them (Go's `time.ParseDuration` units h, m, s: `60s`, `5m`, `1h30m`,
`1.5m`), parsed into whole seconds."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema

from cortex_iac.specs.problems import rule_error

DURATION_EXAMPLES = "a duration such as 60s, 5m, 1h30m or 1.5m"

_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(h|m|s)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text: str | int) -> int:
    """Whole seconds of ``text``: a Go-style duration string, or an int meaning seconds.

    ``"0"`` is zero (as in Go). Raises `ValueError` naming what is accepted for anything else,
    for negative durations and for fractions of a second.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("must not be negative")
        return text
    if not isinstance(text, str):
        raise ValueError(f"must be {DURATION_EXAMPLES}")
    if text == "0":
        return 0
    position, total = 0, Decimal(0)
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += Decimal(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        if text.startswith("-"):
            raise ValueError("must not be negative")
        raise ValueError(f"must be {DURATION_EXAMPLES}")
    if total != total.to_integral_value():
        raise ValueError("must be a whole number of seconds")
    return int(total)


def duration_rule(*, multiple_of: int = 1, minimum: int = 0, maximum: int | None = None,
                  why: str | None = None) -> PlainValidator:
    """The validator of a duration field: a duration string (or int seconds) held as int seconds, at
    least ``minimum`` seconds (default 0), at most ``maximum`` (default: no limit) and a multiple of
    ``multiple_of`` seconds (default 1). ``why`` (default none) ends the requirement in errors.
    Errors show the value as written. Use as ``Annotated[int, duration_rule(...), DURATION_SCHEMA]``."""
    bounds = [f"a multiple of {multiple_of}s"] if multiple_of != 1 else []
    bounds.append(f"at least {minimum}s")
    if maximum is not None:
        bounds.append(f"at most {maximum}s")
    requirement = "must be " + ", ".join(bounds) + (f": {why}" if why else "")

    def validate(value: Any) -> int:
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            raise rule_error(value, str(error)) from None
        if seconds < minimum or seconds % multiple_of or (maximum is not None and seconds > maximum):
            raise rule_error(value, requirement)
        return seconds

    return PlainValidator(validate)


DURATION_SCHEMA = WithJsonSchema({"type": ["string", "integer"], "description": DURATION_EXAMPLES})
"""The JSON schema of a duration field (a string such as 60s, or int seconds)."""


def duration(*, multiple_of: int = 1, minimum: int = 0, maximum: int | None = None, why: str | None = None) -> Any:
    """A model field type built from :func:`duration_rule` (for code; static types spell out
    ``Annotated[int, duration_rule(...), DURATION_SCHEMA]``)."""
    return Annotated[int, duration_rule(multiple_of=multiple_of, minimum=minimum, maximum=maximum, why=why),
                     DURATION_SCHEMA]


Duration = Annotated[int, duration_rule(), DURATION_SCHEMA]
"""A model field type: accepts a duration string or int seconds, holds int seconds."""
