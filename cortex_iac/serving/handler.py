"""Loading the user's ``class Handler`` and calling it: sync methods in a bounded thread pool (or, when
they prove cheap, on the event loop), async methods on the event loop."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import os
import queue
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from cortex_iac.errors import CortexError
from cortex_iac.serving.admission import Slot, current_slot

log = logging.getLogger("cortex.runtime")


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


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None, seconds: float,
            on_call: Callable[[float], None], slot: Slot | None) -> None:
    on_call(seconds)
    if slot is not None:  # the call has ended: its request's slot is free (serving/admission.py)
        slot.release()
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
    ``on_call`` is called on the loop with each call's duration in seconds, before its caller resumes.
    """

    def __init__(self, threads: int, on_call: Callable[[float], None] = lambda seconds: None) -> None:
        self._queue: queue.SimpleQueue[
            tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any], Slot | None] | None]
        self._queue = queue.SimpleQueue()
        self._on_call = on_call
        self._threads = [
            threading.Thread(target=self._work, name=f"handler-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``function(*args)``; the returned future (of the running loop) gets its outcome.
        The calling request's admission slot (:data:`~cortex_iac.serving.admission.current_slot`),
        if any, is held until the call ends, even if the request stops waiting for it."""
        future = asyncio.get_running_loop().create_future()
        slot = current_slot.get()
        self._queue.put((function, args, future, None if slot is None else slot.hand_over()))
        return future

    def _work(self) -> None:
        last_yield = 0.0
        on_call = self._on_call
        while (item := self._queue.get()) is not None:
            function, args, future, slot = item
            started = time.perf_counter()
            try:
                result, error = function(*args), None
            except BaseException as raised:  # noqa: BLE001 - handed to the awaiting request, which logs it
                result, error = None, raised
            now = time.perf_counter()
            try:
                future.get_loop().call_soon_threadsafe(_settle, future, result, error, now - started, on_call, slot)
            except RuntimeError:  # the loop is closed: the process is exiting, nobody waits
                return
            if now - last_yield >= _YIELD_EVERY_SECONDS:
                os.sched_yield()  # releases the GIL while it yields
                last_yield = time.perf_counter()

    def shutdown(self) -> None:
        """Let idle threads end; a thread inside a call ends with the process."""
        for _ in self._threads:
            self._queue.put(None)


# Cheap calls on the event loop. Handing a call to a thread and back costs a GIL hand-over and a loop
# wake-up each way; for a model that predicts in 0.1-0.3 ms that is a third of the runtime's CPU per
# request (measured: docs/benchmarks.md, "Serving"). With one handler thread, calls run one at a time
# either way, so a call that is reliably cheap loses nothing by running on the loop itself, which is
# what a plain Starlette app does. The loop must stay free for probes and for reading requests while a
# model computes, so calls move to the loop only after a window of calls nearly all under
# _INLINE_BELOW_SECONDS, and back to the thread after one call on the loop takes _INLINE_LEAVE_SECONDS
# or more; each move back doubles the window, so a handler with recurring slow calls stays on its thread.
_INLINE_BELOW_SECONDS = 0.001
_INLINE_LEAVE_SECONDS = 0.005
_INLINE_WINDOW = 256
_INLINE_WINDOW_MAX = 65536
# Calls of a window allowed at or over _INLINE_BELOW_SECONDS (measured on the thread, a call's time
# includes waiting for the GIL while the loop reads and writes requests): one in 20.
_INLINE_SLOW_PER_WINDOW = 20


def _thread_usage() -> resource.struct_rusage:
    """The calling thread's CPU time and context switches (Linux: RUSAGE_THREAD), in one syscall."""
    return resource.getrusage(_RUSAGE_THREAD)


_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


class _Placement:
    """Where the next synchronous call runs: on the handler thread, or on the event loop.

    Used from the event loop only. ``THREAD`` becomes ``DRAINING`` at the end of a window of cheap calls;
    calls arriving while calls are still queued on the thread wait until it is idle (so two calls never
    run at once), then everything runs ``INLINE`` until one call is slow.
    """

    THREAD, DRAINING, INLINE = "thread", "draining", "inline"

    def __init__(self) -> None:
        self.mode = self.THREAD
        self.window = _INLINE_WINDOW
        self.outstanding = 0  # calls handed to the thread and not yet settled
        self._seen = 0
        self._slow = 0
        self._idle: asyncio.Event | None = None

    def thread_call_done(self, seconds: float) -> None:
        self.outstanding -= 1
        if self.mode == self.THREAD:
            self._seen += 1
            self._slow += seconds >= _INLINE_BELOW_SECONDS
            if self._seen >= self.window:
                if self._slow * _INLINE_SLOW_PER_WINDOW <= self.window:
                    self.mode = self.DRAINING
                self._seen = self._slow = 0
        if self.mode == self.DRAINING and self.outstanding == 0:
            self.mode = self.INLINE
            log.info("handler calls are cheap; they now run on the event loop", extra={"window": self.window})
            if self._idle is not None:
                self._idle.set()
                self._idle = None

    def inline_call_done(self, seconds: float, before: resource.struct_rusage) -> None:
        """After a call on the loop that took ``seconds``; ``before`` is the loop thread's usage
        (CPU time, voluntary context switches) from just before it."""
        if seconds < _INLINE_LEAVE_SECONDS or self.mode != self.INLINE:
            return
        # A long wall time alone may be the process being preempted (a busy node, a CPU limit), which
        # stops the loop whichever thread the call is on. The call itself held the loop if it computed
        # that long, or if it waited (sleep, I/O, a lock: a voluntary context switch).
        after = _thread_usage()
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        waited = after.ru_nvcsw - before.ru_nvcsw
        if cpu < _INLINE_LEAVE_SECONDS and waited == 0:
            return
        self.mode = self.THREAD
        self.window = min(self.window * 2, _INLINE_WINDOW_MAX)
        log.info(
            "a handler call held the event loop; calls go back to the handler thread",
            extra={"call_seconds": round(seconds, 4), "cpu_seconds": round(cpu, 4), "waits": waited,
                   "next_window": self.window},
        )

    async def thread_idle(self) -> None:
        """Return once the calls queued on the thread are done (the mode is then ``INLINE``)."""
        if self._idle is None:
            self._idle = asyncio.Event()
        await self._idle.wait()


def _takes_an_argument(method: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): call it without one
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters)


class HandlerRunner:
    """Calls one handler instance; ``post``/``get`` are ``None`` when the handler lacks the method.

    Synchronous methods run in a pool of ``threads`` threads, so the event loop keeps answering probes
    and metrics while a model computes; with one thread, calls that prove cheap run on the loop itself
    (see ``_Placement``). Coroutine methods are awaited on the loop.
    """

    def __init__(self, handler: object, threads: int) -> None:
        # With more threads than one, calls run side by side (numpy and most model runtimes release
        # the GIL), which the loop cannot do: they always go to the pool.
        self._placement = _Placement() if threads == 1 else None
        on_call = self._placement.thread_call_done if self._placement is not None else (lambda seconds: None)
        self._pool = _ThreadPool(threads, on_call)
        self.post: Call | None = self._wrap(getattr(handler, "handle_post", None), takes_payload=True)
        self.get: Call | None = self._wrap(getattr(handler, "handle_get", None), takes_payload=False)
        # A BatchAPI's end-of-job hook: on_job_complete(self) as in Cortex, or (self, payload) to get
        # the job's final status and metrics.
        hook = getattr(handler, "on_job_complete", None)
        self.on_job_complete: Call | None = None if not callable(hook) else self._wrap(
            hook, takes_payload=_takes_an_argument(hook))

    @property
    def placement(self) -> str:
        """Where synchronous calls go now: ``thread``, ``draining`` (to the loop) or ``inline``."""
        return self._placement.mode if self._placement is not None else _Placement.THREAD

    def _wrap(self, method: Callable[..., Any] | None, *, takes_payload: bool) -> Call | None:
        if method is None:
            return None
        if inspect.iscoroutinefunction(method):
            if takes_payload:
                return method
            return lambda _payload: method()
        args: Callable[[Any], tuple[Any, ...]] = (lambda payload: (payload,)) if takes_payload else (lambda _: ())
        run = self._pool.run
        placement = self._placement
        if placement is None:
            return lambda payload: run(method, *args(payload))

        async def call(payload: Any) -> Any:
            while placement.mode == _Placement.DRAINING:
                await placement.thread_idle()
            if placement.mode == _Placement.INLINE:
                before, started = _thread_usage(), time.perf_counter()
                try:
                    return method(*args(payload))
                finally:
                    placement.inline_call_done(time.perf_counter() - started, before)
            placement.outstanding += 1
            return await run(method, *args(payload))

        return call

    def shutdown(self) -> None:
        """Stop the thread pool without waiting for a handler call that outlived the grace period."""
        self._pool.shutdown()
