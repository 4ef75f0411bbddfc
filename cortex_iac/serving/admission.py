"""Admission inside the runtime, for a pod without the Envoy sidecar: what Envoy's circuit breakers
and route timeout do for an image API, in the event loop.

A request is admitted only once its whole body has arrived (the app reads it first), so a slow
upload holds no slot. Then at most ``max_concurrency`` requests run at once, ``max_queue_length``
more wait in arrival order, and any further one is refused at once (the caller answers 503 with
``Retry-After``). ``in_flight`` (running + waiting) is the pod's in-flight count the autoscaler
averages, Envoy's ``upstream_rq_active + upstream_rq_pending_active``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from typing import Any


class Admission:
    """The slots of one runtime; used from the event loop only."""

    __slots__ = ("_waiters", "active", "max_concurrency", "max_queue_length")

    def __init__(self, max_concurrency: int, max_queue_length: int) -> None:
        if max_concurrency < 1 or max_queue_length < 0:
            raise ValueError(f"max_concurrency {max_concurrency} must be >= 1 and max_queue_length "
                             f"{max_queue_length} >= 0")
        self.max_concurrency = max_concurrency
        self.max_queue_length = max_queue_length
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        """Requests holding a slot plus requests waiting for one."""
        return self.active + len(self._waiters)

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiters)

    def try_enter(self) -> bool | None:
        """Take a slot at once (True), or say the queue is full (False), or None: wait with :meth:`wait`."""
        if self.active < self.max_concurrency and not self._waiters:
            self.active += 1
            return True
        if len(self._waiters) >= self.max_queue_length:
            return False
        return None

    async def wait(self) -> None:
        """Wait in the queue until :meth:`leave` hands this request a slot (call only after
        :meth:`try_enter` returned None). Cancelled (a timeout, a shutdown), it leaves the queue,
        or passes on a slot it was handed in the same instant."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.leave()  # handed a slot just as it was cancelled: the next one gets it
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(future)
            raise

    def leave(self) -> None:
        """Give up a slot: to the longest-waiting request, else it becomes free."""
        waiters = self._waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.active -= 1


class Deadline:
    """One request's deadline (see :class:`Deadlines`)."""

    __slots__ = ("expired", "finished", "task", "when")

    def __init__(self, when: float, task: asyncio.Task[Any] | None) -> None:
        self.when = when
        self.task = task
        self.finished = False
        self.expired = False


class Deadlines:
    """The request timeout of every admitted request, with one timer for all of them.

    ``asyncio.timeout`` arms and cancels a timer per request, which measured 6-12 µs a request
    here. The timeout is the same for every request, so deadlines come in arrival order: a FIFO
    whose head is the next to expire, and one timer at the head's deadline. A request past its
    deadline has its task cancelled with :attr:`Deadline.expired` set, which the app turns into a
    504 (and ``Task.uncancel``). Finished entries leave the head at once, and those behind an older
    unfinished one keep no reference to their task.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: deque[Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> Deadline:
        """The current task's deadline, from now."""
        loop = asyncio.get_running_loop()
        entry = Deadline(loop.time() + self.seconds, asyncio.current_task())
        self._entries.append(entry)
        if self._timer is None:
            self._timer = loop.call_at(entry.when, self._expire, loop)
        return entry

    def finish(self, entry: Deadline) -> None:
        """The request ended (answered, or its deadline was turned into a 504)."""
        entry.finished = True
        entry.task = None
        entries = self._entries
        while entries and entries[0].finished:
            entries.popleft()

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        entries = self._entries
        while entries:
            entry = entries[0]
            if entry.finished:
                entries.popleft()
            elif entry.when > now:
                self._timer = loop.call_at(entry.when, self._expire, loop)
                return
            else:
                entries.popleft()
                entry.expired = True
                if entry.task is not None:
                    entry.task.cancel()

    def __len__(self) -> int:
        return len(self._entries)


class Slot:
    """One admitted request's slot, which a handler call on a thread takes over
    (:meth:`hand_over`): the handler pool gives it back when the call really ends, so a request
    answered 504 (or cut at shutdown) while its call still computes keeps the slot taken until then,
    and the next request waits in the queue, counted, instead of behind it in the pool, uncounted."""

    __slots__ = ("_admission", "handed_over")

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.handed_over = False

    def hand_over(self) -> Slot:
        """Called by the handler runner as it queues the call on a thread; returns the slot, whose
        :meth:`release` the pool calls once the call has ended."""
        self.handed_over = True
        return self

    def release(self) -> None:
        self._admission.leave()


current_slot: contextvars.ContextVar[Slot | None] = contextvars.ContextVar("cortex_slot", default=None)
"""The slot of the request whose handler call is being made (set by the app around the call)."""
