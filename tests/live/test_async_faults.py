"""AsyncAPI faults, run for real (gateway, workers, the test container, a moto server): nothing
accepted is lost, nothing is left hanging, nothing completes twice.

Timings are shortened for the tests: visibility timeout 3-4 s (60 s deployed), long polls of 1 s
(20 s), the dead-letter queue polled every 0.5 s (60 s). The mechanisms are the deployed ones.
"""

from __future__ import annotations

import collections
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live.async_harness import async_api, wait_for
from tests.live.moto_server import MotoServer, moto_server

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


def _kill(proc: object) -> None:
    pid = proc.pid  # type: ignore[attr-defined]
    os.killpg(pid, signal.SIGKILL)
    proc.wait(10)  # type: ignore[attr-defined]


def test_worker_killed_mid_request_is_redelivered_and_completed_by_another(tmp_path: Path, moto: MotoServer) -> None:
    with async_api(tmp_path, moto, "killed", visibility_timeout=3) as api, httpx.Client(timeout=10) as client:
        api.start_app()
        api.start_gateway()
        first, _ = api.start_worker()
        # The first delivery takes 60 s, so the kill lands mid-request however loaded the machine is.
        request_id = api.submit(client, {"sleep_first": 60, "sleep": 0.5})
        wait_for(lambda: request_id in api.app_calls("start"), 15, "the first worker to post the request")
        _kill(first)  # no renewal, no outcome: the message reappears after its visibility timeout
        assert api.status(client, request_id)["status"] == "in_progress"
        _, second_log = api.start_worker()
        done = api.wait_status(client, request_id, "completed", timeout=30)
        assert done["result"]["id"] == request_id
        # The worker logs the outcome just after storing it: wait for the line (bounded), not race it.
        wait_for(lambda: f'"request_id": "{request_id}", "status": "completed"' in api.log(second_log), 10,
                 "the second worker's completed line")
        assert api.app_calls("start").count(request_id) == 2
        wait_for(lambda: api.queue_counts(api.res.queue_url) == (0, 0), 10, "an empty queue")
        assert api.queue_counts(api.res.dead_letter_queue_url) == (0, 0)


def test_request_that_kills_every_worker_ends_failed_via_the_dead_letter_queue(tmp_path: Path,
                                                                                moto: MotoServer) -> None:
    attempts = 2
    with async_api(tmp_path, moto, "poison", visibility_timeout=3, max_attempts=attempts) as api, \
            httpx.Client(timeout=10) as client:
        api.start_app()
        api.start_gateway()
        request_id = api.submit(client, {"sleep": 30})
        # Each worker that takes the request dies with it (as a pod OOM-killed by the request would).
        for attempt in range(1, attempts + 1):
            worker, _ = api.start_worker()
            wait_for(lambda n=attempt: api.app_calls("start").count(request_id) == n, 20, f"delivery {attempt}")
            _kill(worker)
        # The next receive moves it to the DLQ; a worker drains the DLQ into a failed outcome.
        _, log_name = api.start_worker()
        failed = api.wait_status(client, request_id, "failed", timeout=30)
        assert failed["reason"].startswith(f"worker lost after {attempts} attempts")
        assert api.app_calls("start").count(request_id) == attempts  # never delivered again: no loop
        wait_for(lambda: api.queue_counts(api.res.dead_letter_queue_url) == (0, 0), 10, "an empty DLQ")
        assert api.queue_counts(api.res.queue_url) == (0, 0)
        assert "dead-letter queue" in api.log(log_name)


def test_sigterm_under_load_loses_nothing_and_completes_nothing_twice(tmp_path: Path, moto: MotoServer) -> None:
    requests = 16
    with async_api(tmp_path, moto, "rolling", visibility_timeout=4) as api, httpx.Client(timeout=10) as client:
        api.start_app()
        api.start_gateway()
        old, old_log = api.start_worker(max_concurrency=4, grace_period=15.0)
        ids = [api.submit(client, {"sleep": 0.8}) for _ in range(requests)]
        wait_for(lambda: len(api.app_calls("start")) >= 5, 20, "the old worker to be busy")
        new, _ = api.start_worker(max_concurrency=4)
        old.send_signal(signal.SIGTERM)
        assert old.wait(30) == 0
        stopping = [json.loads(line) for line in api.log(old_log).splitlines() if '"exited"' in line]
        assert stopping and stopping[0]["released"] == 0  # what it held finished within the grace period
        for request_id in ids:
            assert api.wait_status(client, request_id, "completed", timeout=60)["result"]["id"] == request_id
        # Each request was answered by the container once: none was processed twice.
        answered = collections.Counter(api.app_calls("done"))
        assert set(answered) == set(ids) and set(answered.values()) == {1}
        wait_for(lambda: api.queue_counts(api.res.queue_url) == (0, 0), 10, "an empty queue")
        new.send_signal(signal.SIGTERM)
        assert new.wait(15) == 0


def test_sigterm_past_the_grace_period_releases_what_is_held(tmp_path: Path, moto: MotoServer) -> None:
    with async_api(tmp_path, moto, "released", visibility_timeout=30) as api, httpx.Client(timeout=10) as client:
        api.start_app()
        api.start_gateway()
        old, old_log = api.start_worker(max_concurrency=2, grace_period=1.0)
        # First deliveries take 60 s: still running when the 1 s grace period ends, however loaded the machine.
        ids = [api.submit(client, {"sleep_first": 60, "sleep": 0.2}) for _ in range(2)]
        wait_for(lambda: len(api.app_calls("start")) == 2, 20, "both requests to reach the container")
        old.send_signal(signal.SIGTERM)
        assert old.wait(15) == 0
        assert '"released": 2' in api.log(old_log)
        # Released with visibility 0, not left for the 30 s timeout: a new worker takes them at once.
        api.start_worker(max_concurrency=2)
        for request_id in ids:
            assert api.wait_status(client, request_id, "completed", timeout=20)["result"]["id"] == request_id
        assert api.queue_counts(api.res.queue_url) == (0, 0)


def test_backend_unreachable_is_503_and_the_gateway_recovers(tmp_path: Path) -> None:
    with moto_server(tmp_path) as moto, async_api(tmp_path, moto, "outage") as api, \
            httpx.Client(timeout=30) as client:
        api.start_app()
        api.start_gateway()
        api.start_worker()
        before = api.submit(client, {})
        api.wait_status(client, before, "completed")
        moto.stop()
        submit = client.post(api.url + "/", content=b"{}")
        poll = client.get(f"{api.url}/{before}")
        for response in (submit, poll):
            assert response.status_code == 503
            assert response.headers["retry-after"]
            assert "unavailable" in response.json()["error"] and "Traceback" not in response.text
        assert client.get(api.url + "/healthz").status_code == 200  # the pod stays up
        moto.start()  # same port, empty: the stack's resources would still be there, so make them again
        api.create()
        after = api.submit(client, {"sleep": 0})
        assert api.wait_status(client, after, "completed", timeout=30)["result"]["id"] == after
