"""Loading handler files and installing requirements, without a server."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cortex_iac.serving import handler as handler_module
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


class _Recorder:
    """Records the thread of every call and fails if two calls ever overlap; ``slow`` calls sleep."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.threads: list[str] = []
        self.overlaps = 0
        self._busy = threading.Lock()

    def handle_post(self, payload: Any) -> Any:
        if not self._busy.acquire(blocking=False):
            self.overlaps += 1
            self._busy.acquire()
        try:
            self.threads.append(threading.current_thread().name)
            if isinstance(payload, tuple):  # ("busy", seconds): compute that long instead of sleeping
                until = time.thread_time() + payload[1]
                while time.thread_time() < until:
                    pass
                return payload
            seconds = payload if isinstance(payload, float) else self.seconds
            if seconds:
                time.sleep(seconds)
            return payload
        finally:
            self._busy.release()


def _calls(runner: HandlerRunner, payloads: list[Any], concurrency: int) -> list[Any]:
    async def scenario() -> list[Any]:
        assert runner.post is not None
        post = runner.post
        results: list[Any] = [None] * len(payloads)

        async def caller(start: int) -> None:
            for index in range(start, len(payloads), concurrency):
                results[index] = await post(payloads[index])

        try:
            await asyncio.gather(*(caller(start) for start in range(concurrency)))
        finally:
            runner.shutdown()
        return results

    return asyncio.run(scenario())


def test_cheap_calls_move_to_the_loop_after_a_window_and_never_overlap() -> None:
    recorder = _Recorder()
    runner = HandlerRunner(recorder, threads=1)
    payloads = list(range(3 * handler_module._INLINE_WINDOW))
    assert _calls(runner, payloads, concurrency=16) == payloads
    assert recorder.overlaps == 0
    first_window = recorder.threads[: handler_module._INLINE_WINDOW]
    assert set(first_window) == {"handler-0"}
    # Once the thread is drained, every call runs on the loop's thread (asyncio.run's: this one).
    assert recorder.threads[-handler_module._INLINE_WINDOW:] == [threading.current_thread().name] * handler_module._INLINE_WINDOW
    assert runner.placement == "inline"


def test_calls_over_the_threshold_stay_on_the_thread() -> None:
    recorder = _Recorder(seconds=handler_module._INLINE_BELOW_SECONDS * 2)
    runner = HandlerRunner(recorder, threads=1)
    _calls(runner, list(range(handler_module._INLINE_WINDOW + 40)), concurrency=4)
    assert set(recorder.threads) == {"handler-0"}
    assert runner.placement == "thread"


@pytest.mark.parametrize("how", ["sleeping", "computing"])
def test_one_slow_call_on_the_loop_sends_calls_back_to_the_thread_for_a_longer_window(how: str) -> None:
    window = handler_module._INLINE_WINDOW
    seconds = handler_module._INLINE_LEAVE_SECONDS * 2
    slow: Any = seconds if how == "sleeping" else ("busy", seconds)
    recorder = _Recorder()
    runner = HandlerRunner(recorder, threads=1)
    loop_thread = threading.current_thread().name
    # window on the thread, a few on the loop, one slow one there, then the doubled window on the
    # thread before the loop again.
    payloads: list[Any] = [0] * (window + 10) + [slow] + [0] * (2 * window + 10)
    _calls(runner, payloads, concurrency=1)  # one caller: the order of calls is the payloads'
    threads = recorder.threads
    assert threads[window + 10] == loop_thread  # the slow call itself ran on the loop
    assert set(threads[window + 11 : 3 * window + 11]) == {"handler-0"}
    assert threads[-1] == loop_thread
    assert runner.placement == "inline"


def test_with_more_threads_calls_always_use_the_pool() -> None:
    recorder = _Recorder()
    runner = HandlerRunner(recorder, threads=2)
    _calls(runner, list(range(2 * handler_module._INLINE_WINDOW)), concurrency=1)
    assert set(recorder.threads) <= {"handler-0", "handler-1"}
    assert runner.placement == "thread"


def test_an_exception_on_the_loop_reaches_the_caller() -> None:
    class Handler:
        def handle_post(self, payload: int) -> int:
            if payload < 0:
                raise KeyError("feature")
            return payload

    async def scenario() -> None:
        runner = HandlerRunner(Handler(), threads=1)
        assert runner.post is not None
        try:
            for value in range(handler_module._INLINE_WINDOW + 1):
                await runner.post(value)
            assert runner.placement == "inline"
            with pytest.raises(KeyError, match="feature"):
                await runner.post(-1)
            assert await runner.post(3) == 3
        finally:
            runner.shutdown()

    asyncio.run(scenario())


def test_failed_requirement_install_reports_pips_output(tmp_path: Path) -> None:
    # An invalid requirement fails inside pip before any index is contacted.
    with pytest.raises(HandlerLoadError) as error:
        install_requirements(["not a requirement!"], str(tmp_path / "packages"))
    assert str(error.value).startswith("installing python_requirements ['not a requirement!'] failed:\n")
    assert "Invalid requirement" in str(error.value)
    assert str(tmp_path / "packages") not in sys.path
