"""The rendered sidecar config, run by the real Envoy in front of a slow app on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest

from cortex_iac.render.envoy import METRICS_PATH, READINESS_PATH
from tests.live.procs import Sidecar, envoy_sidecar, slow_app

pytestmark = pytest.mark.live

APP_DELAY = 1.0


def inflight(metrics: str) -> float:
    """The app cluster's active + pending requests, read from a /stats/prometheus page."""
    total = 0.0
    for name in ("envoy_cluster_upstream_rq_active", "envoy_cluster_upstream_rq_pending_active"):
        match = re.search(rf'^{name}{{envoy_cluster_name="app"}} (\S+)$', metrics, re.MULTILINE)
        assert match, f"{name} missing from the metrics page"
        total += float(match.group(1))
    return total


async def _timed_get(client: httpx.AsyncClient, url: str) -> tuple[int, float]:
    start = time.monotonic()
    response = await client.get(url)
    return response.status_code, time.monotonic() - start


async def _burst(sidecar: Sidecar, app_port: int, warm: int, burst: int
                 ) -> tuple[list[tuple[int, float]], float, dict[str, int], dict[str, int]]:
    url = f"http://127.0.0.1:{sidecar.listen_port}/predict"
    limits = httpx.Limits(max_connections=burst + 1)
    async with httpx.AsyncClient(timeout=15, limits=limits) as client:
        # Open the pool's connections to the app first, as steady traffic would have: a request
        # also counts as pending while its connection is being opened (see envoy_config).
        await asyncio.gather(*(client.get(f"{url}?sleep=0.2") for _ in range(warm)))
        before = (await client.get(f"http://127.0.0.1:{app_port}/__stats")).json()
        tasks = [asyncio.create_task(_timed_get(client, url)) for _ in range(burst)]
        await asyncio.sleep(APP_DELAY / 2)
        page = await client.get(f"http://127.0.0.1:{sidecar.metrics_port}{METRICS_PATH}")
        results = await asyncio.gather(*tasks)
        after = (await client.get(f"http://127.0.0.1:{app_port}/__stats")).json()
    return results, inflight(page.text), before, after


@pytest.mark.parametrize(("max_concurrency", "max_queue_length", "burst"), [(2, 3, 20), (1, 0, 4)])
def test_limits_concurrency_queues_then_rejects_at_once(
        tmp_path: Path, max_concurrency: int, max_queue_length: int, burst: int) -> None:
    with slow_app(tmp_path, APP_DELAY) as app, envoy_sidecar(
            tmp_path, app_port=app, max_concurrency=max_concurrency,
            max_queue_length=max_queue_length, request_timeout_seconds=10) as sidecar:
        results, inflight_during, before, after = asyncio.run(
            _burst(sidecar, app, warm=max_concurrency, burst=burst))

    admitted = max_concurrency + max_queue_length
    served = [elapsed for status, elapsed in results if status == 200]
    rejected = [elapsed for status, elapsed in results if status == 503]
    assert len(served) == admitted, results
    assert len(rejected) == burst - admitted, results
    # Rejected without queueing: a 503 that had waited for a slot would take at least one app
    # request (APP_DELAY).
    assert max(rejected) < APP_DELAY / 2, rejected
    assert inflight_during == admitted
    assert after["served"] - before["served"] == admitted
    assert after["max_active"] == max_concurrency


def test_surface_readiness_metrics_only_and_no_client_timeouts(tmp_path: Path) -> None:
    with slow_app(tmp_path, 0.5) as app, envoy_sidecar(
            tmp_path, app_port=app, max_concurrency=1, max_queue_length=1,
            request_timeout_seconds=10) as sidecar, httpx.Client(timeout=5) as client:
        listen = f"http://127.0.0.1:{sidecar.listen_port}"
        metrics = f"http://127.0.0.1:{sidecar.metrics_port}"
        assert client.get(f"{listen}{READINESS_PATH}").status_code == 200
        assert client.get(f"{listen}/predict").text == "ok"

        page = client.get(f"{metrics}{METRICS_PATH}")
        assert page.status_code == 200 and inflight(page.text) == 0
        for method, path in [("POST", METRICS_PATH), ("GET", "/stats"), ("POST", "/quitquitquit"),
                             ("POST", "/healthcheck/fail"), ("GET", "/config_dump"),
                             ("POST", "/drain_listeners")]:
            assert client.request(method, f"{metrics}{path}").status_code == 404, path
        assert sidecar.proc.poll() is None
        assert client.get(f"{listen}{READINESS_PATH}").status_code == 200

        # A client asking for a 100 ms route timeout is ignored: the configured 10 s applies.
        response = client.get(f"{listen}/predict",
                              headers={"x-envoy-upstream-rq-timeout-ms": "100"})
        assert response.status_code == 200


def test_request_timeout_counts_time_in_the_queue(tmp_path: Path) -> None:
    # The shutdown drain relies on it: every accepted request, queued ones too, ends within the
    # request timeout.
    async def two_at_once(url: str) -> list[tuple[int, float]]:
        async with httpx.AsyncClient(timeout=10) as client:
            await client.get(f"{url}?sleep=0.1")  # opens Envoy's one connection to the app
            return list(await asyncio.gather(_timed_get(client, url), _timed_get(client, url)))

    # Margins of 0.6-0.7 s either side of the timeout, so a loaded machine does not flip the result.
    with slow_app(tmp_path, 1.3) as app, envoy_sidecar(
            tmp_path, app_port=app, max_concurrency=1, max_queue_length=1,
            request_timeout_seconds=2) as sidecar:
        first, queued = sorted(asyncio.run(two_at_once(
            f"http://127.0.0.1:{sidecar.listen_port}/predict")), key=lambda r: r[1])
    assert first[0] == 200
    # Queued for 1.3 s behind the first, it would need 2.6 s in all: cut at 2 s with 504.
    assert queued[0] == 504
