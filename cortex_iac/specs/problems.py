"""Rule violations found by the spec models, carried through pydantic to the loader's messages.

Pydantic collects one error per failing validator. The rules that relate several fields (min <= max,
exactly one of image/handler, ...) can fail more than once per object, and each failure belongs to a
field below the object that was validated. They travel as one pydantic error of type `RULES_ERROR`
whose context lists `(sub-path, bad value, requirement)` triples; `cortex_iac.specs.messages`
expands them into one message line each.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic_core import PydanticCustomError

RULES_ERROR: Final = "cortex_rules"

Path = tuple[str | int, ...]
Problem = tuple[Path, Any, str]


class _Missing:
    """Stands for "the key is absent" where a problem would otherwise show the bad value."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class Phrase(str):
    """A problem's "value" that is a description, shown as is (not quoted), e.g. ``weights 30 + 60``."""


def rule_error(value: Any, requirement: str, *path: str | int) -> PydanticCustomError:
    """One problem with ``value`` (at ``path`` below the validated object), as a pydantic error.

    ``requirement`` says what is allowed, e.g. ``"must be a multiple of 10s"``.
    """
    return _error([(path, value, requirement)])


class Problems:
    """Collects every rule violation of one object, then raises them together (`check`)."""

    def __init__(self) -> None:
        self._items: list[Problem] = []

    def add(self, path: Path, value: Any, requirement: str) -> None:
        """Record that ``value`` at ``path`` (below the validated object) breaks ``requirement``."""
        self._items.append((path, value, requirement))

    def check(self) -> None:
        """Raise the recorded problems as one pydantic error; do nothing when there are none."""
        if self._items:
            raise _error(self._items)


def _error(problems: list[Problem]) -> PydanticCustomError:
    # `summary` is what pydantic itself prints when a model is built in Python code, not loaded.
    summary = "; ".join(
        f"{'.'.join(map(str, path)) + ': ' if path else ''}{value!r} is not allowed ({requirement})"
        for path, value, requirement in problems
    )
    return PydanticCustomError(RULES_ERROR, "{summary}", {"summary": summary, "problems": tuple(problems)})
