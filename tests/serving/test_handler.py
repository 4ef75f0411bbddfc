"""Loading handler files and installing requirements, without a server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from cortex_iac.serving.handler import (
    HandlerLoadError,
    HandlerRunner,
    install_requirements,
    load_handler_class,
)


def _write(tmp_path: Path, source: str) -> str:
    path = tmp_path / "handler.py"
    path.write_text(source)
    return str(path)


def test_loads_the_class_and_lets_it_import_its_neighbours(tmp_path: Path) -> None:
    (tmp_path / "labels.py").write_text("NAMES = ['a', 'b']\n")
    path = _write(tmp_path, "from labels import NAMES\nclass Handler:\n    def __init__(self, config): pass\n"
                            "    def handle_post(self, payload): return NAMES\n")
    handler = load_handler_class(path)({})
    assert handler.handle_post(None) == ["a", "b"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", ": defines no class Handler"),
        ("Handler = 3\n", ": defines no class Handler"),
        ("class Handler:\n    def __init__(self, config): pass\n", ": class Handler defines neither handle_post nor handle_get"),
    ],
)
def test_unusable_files_are_refused(tmp_path: Path, source: str, message: str) -> None:
    path = _write(tmp_path, source)
    with pytest.raises(HandlerLoadError) as error:
        load_handler_class(path)
    assert str(error.value) == path + message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(HandlerLoadError) as error:
        load_handler_class(str(tmp_path / "nope.py"))
    assert str(error.value) == f"handler file {str(tmp_path / 'nope.py')!r} does not exist"


def test_sync_and_async_methods_are_called_the_same_way() -> None:
    class Handler:
        def handle_post(self, payload: int) -> int:
            return payload + 1

        async def handle_get(self) -> str:
            return "got"

    async def scenario() -> tuple[int, str]:
        runner = HandlerRunner(Handler(), threads=2)
        try:
            assert runner.post is not None and runner.get is not None
            return await runner.post(1), await runner.get(None)
        finally:
            runner.shutdown()

    assert asyncio.run(scenario()) == (2, "got")


def test_a_sync_exception_reaches_the_caller() -> None:
    class Handler:
        def handle_post(self, payload: object) -> None:
            raise KeyError("feature")

    async def scenario() -> None:
        runner = HandlerRunner(Handler(), threads=1)
        assert runner.post is not None and runner.get is None
        try:
            await runner.post({})
        finally:
            runner.shutdown()

    with pytest.raises(KeyError, match="feature"):
        asyncio.run(scenario())


def test_failed_requirement_install_reports_pips_output(tmp_path: Path) -> None:
    # An invalid requirement fails inside pip before any index is contacted.
    with pytest.raises(HandlerLoadError) as error:
        install_requirements(["not a requirement!"], str(tmp_path / "packages"))
    assert str(error.value).startswith("installing python_requirements ['not a requirement!'] failed:\n")
    assert "Invalid requirement" in str(error.value)
    assert str(tmp_path / "packages") not in sys.path
