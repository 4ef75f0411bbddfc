"""The library's exceptions: one base class, so the CLI can catch exactly what is ours."""

from __future__ import annotations


class CortexError(Exception):
    """Base class of every error cortex_iac raises on purpose."""


class SpecError(CortexError):
    """A cluster or API spec is malformed.

    ``problems`` holds one line per problem, each naming the file, the field path, the bad value and
    what is allowed; ``str(error)`` is those lines joined by newlines.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PlanError(CortexError):
    """A program could not be planned, or a plan file is unreadable."""
