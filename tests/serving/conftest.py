"""Fixtures for the serving tests: runtimes started as processes and always stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.serving.runtime import RuntimeProcess, start


@pytest.fixture
def runtime() -> Iterator[Callable[..., RuntimeProcess]]:
    """Factory: ``runtime("echo.py", max_batch_size=4)`` starts a runtime; all are killed at teardown."""
    started: list[RuntimeProcess] = []

    def factory(handler: str, **settings: Any) -> RuntimeProcess:
        process = start(handler, **settings)
        started.append(process)
        return process

    yield factory
    for process in started:
        process.kill()
