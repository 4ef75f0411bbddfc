"""What a test needs from outside the repo, and what happens when it is missing.

On a developer's or user's machine a missing tool or the missing shared/ folder skips the test with
the reason. In CI (``CI`` set, as .ci/run runs) they are installed or laid beside the clone, so a
missing one is a failure: a green CI must mean the live and schema tests really ran.
"""

from __future__ import annotations

import os

import pytest

IN_CI = bool(os.environ.get("CI"))


def missing(reason: str) -> None:
    """Skip with ``reason`` locally; fail with it in CI."""
    if IN_CI:
        pytest.fail(f"{reason}; CI must provide it (see scripts/setup)")
    pytest.skip(reason)
