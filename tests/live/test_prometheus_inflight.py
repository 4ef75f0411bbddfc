"""A real Prometheus scrapes real Envoys and evaluates the exact in-flight PromQL of the
ScaledObject.

The scrape job is ``prometheus_scrape_job()`` itself with its Kubernetes discovery swapped for
static targets that carry the ``__meta_kubernetes_*`` labels pod discovery would attach, so the
job's own relabelling produces the ``namespace``/``pod``/``api`` labels the query selects on.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from cortex_iac.render.envoy import (
    API_NAME_LABEL,
    METRICS_PORT_NAME,
    inflight_query,
    prometheus_scrape_job,
)
from tests.live.procs import (
    Sidecar,
    envoy_sidecar,
    free_port,
    prometheus_binary,
    running,
    slow_app,
)
from tests.needs import missing

pytestmark = pytest.mark.live

T = TypeVar("T")
WINDOW = 4
NAMESPACE = "models"


def _pod_target(sidecar: Sidecar, pod: str, api: str | None, port_name: str) -> dict[str, Any]:
    labels = {
        "__meta_kubernetes_namespace": NAMESPACE,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_container_port_name": port_name,
    }
    if api is not None:
        # Pod discovery's name for a pod label: every character outside [a-zA-Z0-9_] becomes "_".
        labels["__meta_kubernetes_pod_label_" + re.sub(r"\W", "_", API_NAME_LABEL)] = api
    return {"targets": [f"127.0.0.1:{sidecar.metrics_port}"], "labels": labels}


def _wait_for(what: str, probe: Callable[[], T], ok: Callable[[T], bool], timeout: float) -> T:
    """Call ``probe`` every 0.25 s until ``ok`` accepts its value; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {value!r}")
        time.sleep(0.25)


async def _hold(sidecar: Sidecar, requests: int, warm: int, stop: asyncio.Event) -> None:
    """Open ``warm`` connections from Envoy to the app, then send ``requests`` requests at once and
    keep them open until ``stop``."""
    url = f"http://127.0.0.1:{sidecar.listen_port}/predict"
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=requests)) as c:
        # As steady traffic would have (a request waiting for a connection to open takes a queue
        # slot, see envoy_config).
        await asyncio.gather(*(c.get(f"{url}?sleep=0.2") for _ in range(warm)))
        tasks = [asyncio.create_task(c.get(url)) for _ in range(requests)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_prometheus_evaluates_the_inflight_query(tmp_path: Path) -> None:
    binary = prometheus_binary()
    if binary is None:
        missing("prometheus binary not on PATH (Debian: apt-get install -y prometheus)")

    with slow_app(tmp_path, 40.0) as app, \
            envoy_sidecar(tmp_path, app_port=app, max_concurrency=2, max_queue_length=3,
                          request_timeout_seconds=60) as pod_a, \
            envoy_sidecar(tmp_path, app_port=app, max_concurrency=2, max_queue_length=3,
                          request_timeout_seconds=60) as pod_b, \
            envoy_sidecar(tmp_path, app_port=app, max_concurrency=1, max_queue_length=0,
                          request_timeout_seconds=60) as other_api:
        job = prometheus_scrape_job()
        del job["kubernetes_sd_configs"]
        job["static_configs"] = [
            _pod_target(pod_a, "api-a-1", "my-api", METRICS_PORT_NAME),
            _pod_target(pod_b, "api-a-2", "my-api", METRICS_PORT_NAME),
            _pod_target(other_api, "other-1", "other", METRICS_PORT_NAME),
            # Dropped by the job's relabelling: another port of an API pod, and a pod of no API.
            _pod_target(pod_a, "api-a-1", "my-api", "http"),
            _pod_target(pod_b, "unrelated", None, METRICS_PORT_NAME),
        ]
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": [job]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        cmd = [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
               f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"]
        with running(cmd, ports=[port], log=tmp_path / "prometheus.log", timeout=20), \
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:

            def scraped_targets() -> list[dict[str, str]] | None:
                active = api.get("/api/v1/targets").json()["data"]["activeTargets"]
                if len(active) == 3 and all(t["health"] == "up" for t in active):
                    return [t["labels"] for t in active]
                return None

            labels = _wait_for("3 healthy targets", scraped_targets, bool, timeout=15)
            assert labels is not None
            assert sorted((t["namespace"], t["pod"], t["api"]) for t in labels) == [
                (NAMESPACE, "api-a-1", "my-api"), (NAMESPACE, "api-a-2", "my-api"),
                (NAMESPACE, "other-1", "other")]

            def value(api_name: str) -> float | None:
                query = inflight_query(NAMESPACE, api_name, WINDOW)
                result = api.get("/api/v1/query", params={"query": query}).json()["data"]["result"]
                return float(result[0]["value"][1]) if result else None

            _wait_for("my-api's idle in-flight", lambda: value("my-api"), lambda v: v == 0.0, 5)

            async def settled(api_name: str, expected: float) -> float | None:
                return await asyncio.to_thread(
                    _wait_for, f"{api_name}'s in-flight average", lambda: value(api_name),
                    lambda v: v == expected, WINDOW + 10)

            async def load_and_measure() -> tuple[float | None, float | None]:
                stop = asyncio.Event()
                # pod_a: 2 processing + 3 queued (the other 5 get 503); pod_b: 2 processing;
                # other API: 1. Held open (the app takes 40 s) until measured.
                holders = [asyncio.create_task(_hold(s, n, warm, stop))
                           for s, n, warm in ((pod_a, 10, 2), (pod_b, 2, 2), (other_api, 1, 1))]
                try:
                    # The window's average reaches the steady total once the window holds only
                    # samples taken under load: about WINDOW + 2 scrape intervals.
                    return await settled("my-api", 7.0), await settled("other", 1.0)
                finally:
                    stop.set()
                    await asyncio.gather(*holders)

            mine, other = asyncio.run(load_and_measure())
    assert mine == 7.0
    assert other == 1.0
