"""Server-side batching: concurrent requests' payloads go to ``handle_post`` as one list."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from cortex_iac.serving.codec import ResultError


class Batcher:
    """Groups payloads into batches of up to ``max_batch_size`` and calls ``call`` with each batch.

    A batch is formed only when one of ``slots`` is free (so while every slot is busy, payloads pile up
    and the next batch leaves full); it then waits up to ``interval`` seconds after its first payload for
    more (``None``: takes what is queued and leaves at once). ``call`` must return a list with one result
    per payload; each ``submit`` caller gets its own item, or the exception ``call`` raised.
    """

    def __init__(
        self,
        call: Callable[[list[Any]], Awaitable[Any]],
        *,
        max_batch_size: int,
        interval: float | None,
        slots: int,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._call = call
        self._max = max_batch_size
        self._interval = interval
        self._slots = asyncio.Semaphore(slots)
        self._on_batch = on_batch
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue()
        self._running: set[asyncio.Task[None]] = set()
        self._collector: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start collecting batches on the running event loop."""
        self._collector = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        """Stop collecting; batches already handed to the handler are awaited."""
        if self._collector is not None:
            self._collector.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def submit(self, payload: Any) -> Any:
        """Queue one payload and return its result once its batch has run."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((payload, future))
        return await future

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            await self._slots.acquire()
            batch = [await queue.get()]
            deadline = None if self._interval is None else loop.time() + self._interval
            while len(batch) < self._max:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = 0.0 if deadline is None else deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            task = loop.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        try:
            self._on_batch(len(batch))
            try:
                results = await self._call([payload for payload, _ in batch])
                if not isinstance(results, (list, tuple)) or len(results) != len(batch):
                    got = f"{len(results)} results" if isinstance(results, (list, tuple)) else type(results).__name__
                    raise ResultError(
                        f"with batching, handle_post must return a list with one result per payload: "
                        f"got {got} for a batch of {len(batch)}"
                    )
            except Exception as error:  # noqa: BLE001 - handed to every caller of this batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                return
            for (_, future), result in zip(batch, results, strict=False):
                if not future.done():
                    future.set_result(result)
        finally:
            self._slots.release()
