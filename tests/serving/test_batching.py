"""The Batcher on its own: batch sizes, order, interval, slots, and failures handed to every caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cortex_iac.serving.batching import Batcher
from cortex_iac.serving.codec import ResultError


def _run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout=10))


def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    calls: list[list[int]] = []

    async def double(batch: list[int]) -> list[int]:
        calls.append(batch)
        await asyncio.sleep(0.01)
        return [2 * item for item in batch]

    async def scenario() -> list[int]:
        batcher = Batcher(double, max_batch_size=4, interval=0.05, slots=1)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.stop()
        return results

    assert _run(scenario()) == [2 * i for i in range(10)]
    assert [len(batch) for batch in calls] == [4, 4, 2]
    assert sorted(item for batch in calls for item in batch) == list(range(10))


def test_without_interval_a_lone_payload_leaves_at_once() -> None:
    sizes: list[int] = []

    async def echo(batch: list[int]) -> list[int]:
        return batch

    async def scenario() -> float:
        batcher = Batcher(echo, max_batch_size=8, interval=None, slots=1, on_batch=sizes.append)
        batcher.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await batcher.submit(1) == 1
        elapsed = loop.time() - started
        await batcher.stop()
        return elapsed

    assert _run(scenario()) < 1.0
    assert sizes == [1]


def test_slots_bound_the_batches_running_at_once() -> None:
    running = 0
    peak = 0

    async def slow(batch: list[int]) -> list[int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return batch

    async def scenario() -> None:
        batcher = Batcher(slow, max_batch_size=2, interval=None, slots=2)
        batcher.start()
        assert await asyncio.gather(*(batcher.submit(i) for i in range(20))) == list(range(20))
        await batcher.stop()

    _run(scenario())
    assert peak == 2


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ([1], "with batching, handle_post must return a list with one result per payload: got 1 results for a batch of 2"),
        ({"a": 1}, "with batching, handle_post must return a list with one result per payload: got dict for a batch of 2"),
    ],
)
def test_wrong_result_shape_fails_every_caller(returned: Any, message: str) -> None:
    async def wrong(batch: list[int]) -> Any:
        return returned

    async def scenario() -> list[Any]:
        batcher = Batcher(wrong, max_batch_size=2, interval=0.5, slots=1)
        batcher.start()
        outcomes = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
        await batcher.stop()
        return outcomes

    outcomes = _run(scenario())
    assert [type(o) for o in outcomes] == [ResultError, ResultError]
    assert str(outcomes[0]) == message


def test_a_failing_batch_fails_its_callers_and_the_next_batch_runs() -> None:
    async def flaky(batch: list[int]) -> list[int]:
        if 0 in batch:
            raise ValueError("bad batch")
        return batch

    async def scenario() -> tuple[list[Any], int]:
        batcher = Batcher(flaky, max_batch_size=2, interval=0.5, slots=1)
        batcher.start()
        failed = await asyncio.gather(batcher.submit(0), batcher.submit(1), return_exceptions=True)
        later = await batcher.submit(5)
        await batcher.stop()
        return failed, later

    failed, later = _run(scenario())
    assert [str(error) for error in failed] == ["bad batch", "bad batch"]
    assert later == 5
