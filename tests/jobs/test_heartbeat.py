"""The enqueue heartbeat keeps a job alive while it enqueues and notices a stop or the timeout."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cortex_iac.jobs import gateway
from cortex_iac.jobs.contract import Attr
from cortex_iac.jobs.enqueue import Stopped


class Store:
    def __init__(self, accept: bool) -> None:
        self.accept = accept
        self.updates: list[dict[str, Any]] = []

    def update(self, job_id: str, values: dict[str, Any], **condition: Any) -> bool:
        assert condition == {"from_statuses": ["enqueuing"]}
        self.updates.append(values)
        return self.accept


def _run(store: Store, deadline: float | None, monkeypatch: pytest.MonkeyPatch) -> gateway._Heartbeat:
    monkeypatch.setattr(gateway, "_HEARTBEAT_SECONDS", 0.02)
    beat = gateway._Heartbeat(store, "job", deadline)  # type: ignore[arg-type]
    beat.start()
    beat.check(7)
    time.sleep(0.2)
    return beat


def test_heartbeat_refreshes_progress_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(accept=True)
    beat = _run(store, None, monkeypatch)
    beat.check(8)
    beat.stop()
    assert len(store.updates) >= 3 and store.updates[-1][Attr.TOTAL_BATCH_COUNT] in (7, 8)


def test_a_stopped_job_stops_the_enqueue(monkeypatch: pytest.MonkeyPatch) -> None:
    beat = _run(Store(accept=False), None, monkeypatch)
    with pytest.raises(Stopped):
        beat.check(9)
    beat.stop()


def test_the_timeout_ends_the_enqueue_as_timed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(accept=True)
    beat = _run(store, time.time(), monkeypatch)
    with pytest.raises(Stopped):
        beat.check(9)
    beat.stop()
    assert store.updates[0][Attr.STATUS] == "timed_out"
