"""The runtime's admission (serving/admission.py): slots, queue, refusals, cancellation, order."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_iac.serving.admission import Admission, Deadlines


def test_slots_then_queue_then_refusal() -> None:
    admission = Admission(2, 1)
    assert [admission.try_enter(), admission.try_enter()] == [True, True]
    assert admission.try_enter() is None  # a queue place is free: wait
    assert admission.in_flight == 2

    async def scenario() -> None:
        waiter = asyncio.ensure_future(admission.wait())
        await asyncio.sleep(0)
        assert (admission.in_flight, admission.queued) == (3, 1)
        assert admission.try_enter() is False  # both slots and the queue place taken
        admission.leave()  # the slot goes to the waiter, not back to the pool
        await waiter
        assert (admission.active, admission.queued) == (2, 0)
        admission.leave()
        admission.leave()
        assert admission.in_flight == 0

    asyncio.run(scenario())


def test_no_queue_refuses_beyond_the_slots() -> None:
    admission = Admission(1, 0)
    assert admission.try_enter() is True
    assert admission.try_enter() is False


def test_a_cancelled_waiter_leaves_the_queue_and_a_handed_slot_is_passed_on() -> None:
    async def scenario() -> None:
        admission = Admission(1, 2)
        assert admission.try_enter() is True
        first = asyncio.ensure_future(admission.wait())
        second = asyncio.ensure_future(admission.wait())
        await asyncio.sleep(0)
        first.cancel()  # a timeout while queued
        with pytest.raises(asyncio.CancelledError):
            await first
        assert admission.queued == 1
        # The slot is handed to `second` and, in the same instant, `second` is cancelled: the slot
        # must not be lost.
        admission.leave()
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        assert (admission.active, admission.queued) == (0, 0)
        assert admission.try_enter() is True

    asyncio.run(scenario())


@pytest.mark.parametrize(("concurrency", "queue"), [(0, 0), (1, -1)])
def test_bad_limits_are_refused(concurrency: int, queue: int) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        Admission(concurrency, queue)


@settings(max_examples=200, deadline=None)
@given(concurrency=st.integers(1, 4), queue=st.integers(0, 4),
       steps=st.lists(st.tuples(st.sampled_from(["arrive", "finish", "cancel"]), st.integers(0, 20)), max_size=60))
def test_never_more_than_the_limits_and_first_come_first_served(
        concurrency: int, queue: int, steps: list[tuple[str, int]]) -> None:
    """Random arrivals, completions and cancellations: the running count never exceeds
    max_concurrency, the queue never exceeds max_queue_length, a request is refused only when both
    are full, waiters get slots in arrival order, and no slot is lost."""

    async def scenario() -> None:
        admission = Admission(concurrency, queue)
        running: list[int] = []
        waiting: dict[int, asyncio.Future[None]] = {}
        order: list[int] = []
        granted: list[int] = []

        async def wait(ident: int) -> None:
            await admission.wait()
            granted.append(ident)
            running.append(ident)

        for ident, (action, pick) in enumerate(steps):
            if action == "arrive":
                entered = admission.try_enter()
                full = len(running) >= concurrency or bool(waiting)
                if entered is True:
                    assert not full
                    running.append(ident)
                elif entered is False:
                    assert full and len(waiting) >= queue
                else:
                    assert full and len(waiting) < queue
                    waiting[ident] = asyncio.ensure_future(wait(ident))
                    order.append(ident)
            elif action == "finish" and running:
                running.pop(pick % len(running))
                admission.leave()
            elif action == "cancel" and waiting:
                victim = list(waiting)[pick % len(waiting)]
                waiting.pop(victim).cancel()
                order.remove(victim)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            for done in [i for i, task in waiting.items() if task.done()]:
                waiting.pop(done)
            assert len(running) <= concurrency
            assert admission.queued == len(waiting) <= queue
            assert admission.active == len(running)
        assert granted == [i for i in order if i in granted]  # first come, first served
        assert granted == order[:len(granted)]

    asyncio.run(scenario())


def test_deadlines_cancel_only_what_is_past_its_deadline_with_one_timer() -> None:
    async def scenario() -> None:
        deadlines = Deadlines(0.2)
        outcomes: dict[str, str] = {}

        async def request(name: str, seconds: float) -> None:
            entry = deadlines.start()
            try:
                await asyncio.sleep(seconds)
                outcomes[name] = "answered"
            except asyncio.CancelledError:
                assert entry.expired
                outcomes[name] = "timed out"
            finally:
                deadlines.finish(entry)

        tasks = [asyncio.ensure_future(request("fast", 0.05)), asyncio.ensure_future(request("slow", 0.5))]
        await asyncio.sleep(0.1)
        tasks.append(asyncio.ensure_future(request("late-fast", 0.05)))  # its deadline is after slow's
        tasks.append(asyncio.ensure_future(request("late-slow", 0.5)))
        await asyncio.gather(*tasks)
        assert outcomes == {"fast": "answered", "slow": "timed out", "late-fast": "answered", "late-slow": "timed out"}
        assert len(deadlines) == 0  # nothing kept once everything finished

    asyncio.run(scenario())


def test_finished_deadlines_behind_an_older_one_keep_no_task() -> None:
    async def scenario() -> None:
        deadlines = Deadlines(10)
        old = deadlines.start()
        newer = [deadlines.start() for _ in range(100)]
        for entry in newer:
            deadlines.finish(entry)
        assert len(deadlines) == 101 and all(entry.task is None for entry in newer)
        deadlines.finish(old)
        assert len(deadlines) == 0

    asyncio.run(scenario())
