"""Loading the user's ``class Handler`` and calling it: sync methods in a bounded thread pool, async
methods on the event loop."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from cortex_iac.errors import CortexError


class HandlerLoadError(CortexError):
    """The handler file cannot be imported, has no usable ``class Handler``, or its requirements failed."""


def load_handler_class(path: str) -> type:
    """Import the file at ``path`` and return its ``Handler`` class.

    The file's directory goes first on ``sys.path`` so the handler can import modules next to it.
    Raises ``HandlerLoadError`` when the file is missing or ``Handler`` has neither ``handle_post``
    nor ``handle_get``; an exception raised while importing propagates with its own traceback.
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise HandlerLoadError(f"handler file {path!r} does not exist")
    sys.path.insert(0, str(file.parent))
    spec = importlib.util.spec_from_file_location("cortex_user_handler", file)
    if spec is None or spec.loader is None:
        raise HandlerLoadError(f"handler file {path!r} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    handler_class = getattr(module, "Handler", None)
    if not inspect.isclass(handler_class):
        raise HandlerLoadError(f"{path}: defines no class Handler")
    if not hasattr(handler_class, "handle_post") and not hasattr(handler_class, "handle_get"):
        raise HandlerLoadError(f"{path}: class Handler defines neither handle_post nor handle_get")
    return handler_class


def install_requirements(requirements: Sequence[str], target: str) -> None:
    """``pip install`` the requirement strings into ``target`` and put it on ``sys.path``.

    Raises ``HandlerLoadError`` with pip's output when the install fails.
    """
    Path(target).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
               "--target", target, *requirements]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HandlerLoadError(
            f"installing python_requirements {list(requirements)} failed:\n{result.stdout}{result.stderr}"
        )
    sys.path.insert(0, target)


Call = Callable[[Any], Awaitable[Any]]

# A handler thread that computes back to back keeps the GIL until the interpreter's switch interval
# (5 ms) forces it to let go, so the event loop sends finished responses and reads new requests in
# 5 ms bursts: measured, that tripled p99 latency at 16 connections. Yielding the GIL (and the CPU)
# after a call, at most once per this many seconds, lets the loop in promptly at the cost of one
# syscall per millisecond; yielding after every call instead cost 20-30 % of the throughput.
_YIELD_EVERY_SECONDS = 0.001


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting request was cancelled (shutdown past the grace period)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _ThreadPool:
    """``threads`` daemon threads running calls for the event loop.

    Lighter than ``ThreadPoolExecutor`` + ``asyncio.wrap_future`` (measured: a third less overhead
    per call): a call is a queue entry, its result goes straight to the asyncio future. Daemon threads,
    so a call still running when the process must exit (past the grace period) does not keep it alive.
    """

    def __init__(self, threads: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]] | None]
        self._queue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"handler-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``function(*args)``; the returned future (of the running loop) gets its outcome."""
        future = asyncio.get_running_loop().create_future()
        self._queue.put((function, args, future))
        return future

    def _work(self) -> None:
        last_yield = 0.0
        while (item := self._queue.get()) is not None:
            function, args, future = item
            try:
                result, error = function(*args), None
            except BaseException as raised:  # noqa: BLE001 - handed to the awaiting request, which logs it
                result, error = None, raised
            try:
                future.get_loop().call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop is closed: the process is exiting, nobody waits
                return
            now = time.perf_counter()
            if now - last_yield >= _YIELD_EVERY_SECONDS:
                os.sched_yield()  # releases the GIL while it yields
                last_yield = time.perf_counter()

    def shutdown(self) -> None:
        """Let idle threads end; a thread inside a call ends with the process."""
        for _ in self._threads:
            self._queue.put(None)


class HandlerRunner:
    """Calls one handler instance; ``post``/``get`` are ``None`` when the handler lacks the method.

    Synchronous methods run in a pool of ``threads`` threads, so the event loop keeps answering probes
    and metrics while a model computes; coroutine methods are awaited on the loop itself.
    """

    def __init__(self, handler: object, threads: int) -> None:
        self._pool = _ThreadPool(threads)
        self.post: Call | None = self._wrap(getattr(handler, "handle_post", None), takes_payload=True)
        self.get: Call | None = self._wrap(getattr(handler, "handle_get", None), takes_payload=False)

    def _wrap(self, method: Callable[..., Any] | None, *, takes_payload: bool) -> Call | None:
        if method is None:
            return None
        if inspect.iscoroutinefunction(method):
            if takes_payload:
                return method
            return lambda _payload: method()
        run = self._pool.run
        if takes_payload:
            return lambda payload: run(method, payload)
        return lambda _payload: run(method)

    def shutdown(self) -> None:
        """Stop the thread pool without waiting for a handler call that outlived the grace period."""
        self._pool.shutdown()
