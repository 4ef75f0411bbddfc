"""A real Prometheus scrapes real pods and evaluates the exact in-flight PromQL of the ScaledObject,
for both pod shapes: Envoy sidecars in front of an app, the serving runtime admitting requests
itself, and an API mid-rollout between the two (one pod of each).

The scrape jobs are ``prometheus_scrape_job()`` and ``runtime_scrape_job()`` themselves with their
Kubernetes discovery swapped for static targets that carry the ``__meta_kubernetes_*`` labels pod
discovery would attach (tests/live/runtime_pods.py), so each job's own relabelling keeps its pods'
metrics ports and produces the ``namespace``/``pod``/``api`` labels the query selects on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import yaml

from cortex_iac.render.envoy import inflight_query
from tests.live.procs import free_port, prometheus_binary, running, slow_app
from tests.live.runtime_pods import (
    JOB_OF_SHAPE,
    Pod,
    Shape,
    envoy_pod,
    pod_target,
    pod_targets,
    runtime_pod,
    scrape_jobs,
)
from tests.needs import missing

pytestmark = pytest.mark.live

T = TypeVar("T")
WINDOW = 4
NAMESPACE = "models"
HOLD_SECONDS = 40.0
# The shapes of the pods api-a-1 and api-a-2 (API my-api) and other-1 (API other).
SHAPES: dict[str, tuple[Shape, Shape, Shape]] = {
    "envoy": ("envoy", "envoy", "envoy"),
    "runtime": ("runtime", "runtime", "runtime"),
    "mixed": ("envoy", "runtime", "runtime"),
}


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


async def _hold(pod: Pod, requests: int, warm: int, stop: asyncio.Event) -> list[int]:
    """Send ``warm`` short requests, then ``requests`` long ones at once, kept open until ``stop``;
    return the statuses of those answered before (the queue-full 503s)."""
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=requests)) as c:
        if pod.shape == "envoy":
            # Open connections from Envoy to the app, as steady traffic would have (a request waiting
            # for a connection to open takes a queue slot, see envoy_config).
            await asyncio.gather(*(c.get(f"{pod.url}predict?sleep=0.2") for _ in range(warm)))
            tasks = [asyncio.create_task(c.get(f"{pod.url}predict")) for _ in range(requests)]
        else:
            await asyncio.gather(*(c.post(pod.url, json={"seconds": 0.2}) for _ in range(warm)))
            tasks = [asyncio.create_task(c.post(pod.url, json={})) for _ in range(requests)]
        await stop.wait()
        answered = [t.result().status_code for t in tasks if t.done() and not t.exception()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return answered


@pytest.mark.parametrize("case", sorted(SHAPES))
def test_prometheus_evaluates_the_inflight_query(tmp_path: Path, case: str) -> None:
    binary = prometheus_binary()
    if binary is None:
        missing("prometheus binary not on PATH (Debian: apt-get install -y prometheus)")
    shapes = SHAPES[case]
    # (pod, API, max_concurrency, max_queue_length)
    layout = (("api-a-1", "my-api", 2, 3), ("api-a-2", "my-api", 2, 3), ("other-1", "other", 1, 0))

    with contextlib.ExitStack() as stack:
        app = stack.enter_context(slow_app(tmp_path, HOLD_SECONDS)) if "envoy" in shapes else 0
        pods: list[Pod] = []
        for shape, (_, _, concurrency, queue) in zip(shapes, layout, strict=True):
            if shape == "envoy":
                pods.append(stack.enter_context(envoy_pod(tmp_path, app, max_concurrency=concurrency,
                                                          max_queue_length=queue, request_timeout=60)))
            else:
                pods.append(stack.enter_context(runtime_pod(
                    tmp_path, max_concurrency=concurrency, max_queue_length=queue, request_timeout=60,
                    handler_config={"seconds": HOLD_SECONDS})))
        pod_a, pod_b, other_api = pods
        targets = [t for (name, api, _, _), pod in zip(layout, pods, strict=True)
                   for t in pod_targets(NAMESPACE, name, api, pod)]
        # Dropped by the jobs' relabelling too: a pod of no API (its metrics port).
        targets.append(pod_target(NAMESPACE, "unrelated", None, pod_b.metrics_port, pod_b.metrics_port_name))
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": scrape_jobs(targets)}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        cmd = [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
               f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"]
        with running(cmd, ports=[port], log=tmp_path / "prometheus.log", timeout=20), \
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:

            # Prometheus answers 503 until its storage is ready, after it opened its port.
            _wait_for("Prometheus ready", lambda: api.get("/-/ready").status_code, lambda c: c == 200, 20)

            def scraped_targets() -> list[dict[str, str]] | None:
                active = api.get("/api/v1/targets").json()["data"]["activeTargets"]
                if len(active) == 3 and all(t["health"] == "up" for t in active):
                    return [t["labels"] for t in active]
                return None

            # One target per pod, in its shape's job: every other port (and pod) is dropped.
            labels = _wait_for("3 healthy targets", scraped_targets, bool, timeout=15)
            assert labels is not None
            assert sorted((t["job"], t["namespace"], t["pod"], t["api"]) for t in labels) == sorted(
                (JOB_OF_SHAPE[shape], NAMESPACE, name, api_name)
                for shape, (name, api_name, _, _) in zip(shapes, layout, strict=True))

            def value(api_name: str) -> float | None:
                query = inflight_query(NAMESPACE, api_name, WINDOW)
                result = api.get("/api/v1/query", params={"query": query}).json()["data"]["result"]
                return float(result[0]["value"][1]) if result else None

            _wait_for("my-api's idle in-flight", lambda: value("my-api"), lambda v: v == 0.0, 5)

            async def settled(api_name: str, expected: float) -> float | None:
                return await asyncio.to_thread(
                    _wait_for, f"{api_name}'s in-flight average", lambda: value(api_name),
                    lambda v: v == expected, WINDOW + 10)

            async def load_and_measure() -> tuple[float | None, float | None, list[list[int]]]:
                stop = asyncio.Event()
                # pod_a: 2 processing + 3 queued (the other 5 get 503); pod_b: 2 processing;
                # other API: 1. Held open (40 s) until measured.
                holders = [asyncio.create_task(_hold(p, n, warm, stop))
                           for p, n, warm in ((pod_a, 10, 2), (pod_b, 2, 2), (other_api, 1, 1))]
                try:
                    # The window's average reaches the steady total once the window holds only
                    # samples taken under load: about WINDOW + 2 scrape intervals.
                    mine, other = await settled("my-api", 7.0), await settled("other", 1.0)
                finally:
                    stop.set()
                    answered = await asyncio.gather(*holders)
                return mine, other, answered

            mine, other, refused = asyncio.run(load_and_measure())
    assert mine == 7.0
    assert other == 1.0
    # Only pod_a's 5 beyond its slots and queue were answered while held: queue-full 503s.
    assert refused == [[503] * 5, [], []]
