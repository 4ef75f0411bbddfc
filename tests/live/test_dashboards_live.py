"""The per-API dashboard's queries, evaluated by a real Prometheus scraping the real pods of an API
of two pods under a bounded, paced load, for each pod shape: two Envoy sidecars in front of the
real serving runtime (``envoy``), two serving runtimes admitting requests themselves, without a
sidecar (``runtime``), and one pod of each (``mixed``, an API mid-rollout between the shapes).

The harness is the in-flight test's (tests/live/runtime_pods.py): both production scrape jobs with
their pod discovery swapped for static targets carrying the discovery labels. The Prometheus also
loads the rendered recording rules and the API's own rule file, so the constants the dashboards and
alerts join on are evaluated by the real rule engine.

Checked: every access line of the runtime behind Envoy carries Envoy's request id; request rate
within 10 % of the rate the load generator measured over the same window, and by status class; app 5xx vs queue-full 503s; latency percentiles bracketed by the handler's
sleep; in-flight equal to the requests held in the pods; the API's constants. Grafana's
``$__rate_interval`` is given a 10 s window (scrapes every second). Not evaluated here: the panels
over kube-state-metrics, cAdvisor, DCGM and Karpenter series (none of those run on this machine;
their queries are parsed by promtool and their alerts unit-tested in tests/render).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cortex_iac.plan.cost import price_table
from cortex_iac.render.observability import queries as q
from cortex_iac.render.observability.rules import api_rules, cluster_rules
from cortex_iac.specs import RealtimeApiSpec, load_apis, load_cluster
from tests.live.procs import free_port, prometheus_binary, running
from tests.live.runtime_pods import JOB_OF_SHAPE, Pod, Shape, envoy_pod, pod_targets, runtime_pod, scrape_jobs
from tests.live.test_prometheus_inflight import _wait_for
from tests.needs import missing
from tests.serving.runtime import HANDLERS, RuntimeProcess, start

pytestmark = pytest.mark.live

NS = "models"
API = "my-api"
WINDOW = "10s"
RATE = 20.0          # requests per second, over both pods
LOAD_SECONDS = 16.0
SLEEP = 0.2          # the handler's time per request
ERROR_EVERY = 5      # every 5th request has no "id": the handler raises, the runtime answers 500

# The shapes of the API's two pods.
SHAPES: dict[str, tuple[Shape, Shape]] = {
    "envoy": ("envoy", "envoy"),
    "runtime": ("runtime", "runtime"),
    "mixed": ("envoy", "runtime"),
}


def _spec() -> RealtimeApiSpec:
    (spec,) = load_apis([{
        "name": API, "kind": "RealtimeAPI",
        "pod": {"max_concurrency": 4, "max_queue_length": 4, "request_timeout": "30s",
                "containers": [{"name": "api", "image": "example.com/a:1"}]},
        "autoscaling": {"min_replicas": 2, "max_replicas": 5, "target_in_flight": 3},
    }], origin="test")
    assert isinstance(spec, RealtimeApiSpec)
    return spec


async def _paced_load(urls: list[str]) -> list[tuple[float, int]]:
    """Send RATE requests per second for LOAD_SECONDS, alternating pods; return each request's
    (completion time, status)."""
    done: list[tuple[float, int]] = []
    count = int(RATE * LOAD_SECONDS)
    start = 0.0

    async def one(client: httpx.AsyncClient, index: int) -> None:
        await asyncio.sleep(max(0.0, start + index / RATE - time.time()))
        body = {"seconds": SLEEP} if index % ERROR_EVERY == ERROR_EVERY - 1 else {"id": index, "seconds": SLEEP}
        response = await client.post(urls[index % len(urls)], json=body)
        done.append((time.time(), response.status_code))

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as client:
        # Warm the Envoys' connections to the app first, as steady traffic would have them (a request
        # waiting for a new connection takes a queue slot, see envoy_config); outside the window.
        await asyncio.gather(*(client.post(url, json={"id": -1, "seconds": 0.01}) for url in urls for _ in range(4)))
        start = time.time() + 0.5
        await asyncio.gather(*(one(client, i) for i in range(count)))
    return done


async def _hold(url: str, requests: int, stop: asyncio.Event) -> list[int]:
    """Send ``requests`` 30 s requests at once and keep them open until ``stop``; return the
    statuses of those answered before (the queue-full 503s)."""
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=requests)) as client:
        # Envoy closed its idle app connections after the load; open them again first (as the
        # in-flight test does): a request waiting for a new connection takes a queue slot.
        await asyncio.gather(*(client.post(url, json={"id": -1, "seconds": 0.2}) for _ in range(4)))
        tasks = [asyncio.create_task(client.post(url, json={"id": i, "seconds": 30})) for i in range(requests)]
        await stop.wait()
        answered = [t.result().status_code for t in tasks if t.done() and not t.exception()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return answered


@pytest.mark.parametrize("case", sorted(SHAPES))
def test_prometheus_evaluates_the_api_dashboard_queries(tmp_path: Path, case: str) -> None:
    binary = prometheus_binary()
    if binary is None:
        missing("prometheus binary not on PATH (Debian: apt-get install -y prometheus)")
    spec = _spec()
    shapes = SHAPES[case]
    record = tmp_path / "record.txt"
    handler_config = {"record_file": str(record)}
    results: dict[str, Any] = {}
    behind_envoy: RuntimeProcess | None = None
    try:
        with contextlib.ExitStack() as stack:
            pods: list[Pod] = []
            for shape in shapes:
                if shape == "envoy":
                    if behind_envoy is None:
                        # The runtime behind the sidecars: no admission of its own, Envoy's.
                        behind_envoy = start("slow_recorder.py", handler_config=handler_config)
                        behind_envoy.wait_ready()
                    assert behind_envoy.port is not None
                    pods.append(stack.enter_context(envoy_pod(tmp_path, behind_envoy.port, max_concurrency=4,
                                                              max_queue_length=4, request_timeout=30)))
                else:
                    pods.append(stack.enter_context(runtime_pod(
                        tmp_path, HANDLERS / "slow_recorder.py", max_concurrency=4, max_queue_length=4,
                        request_timeout=30, handler_config=handler_config)))
            targets = [t for pod, name in zip(pods, (f"{API}-a", f"{API}-b"), strict=True)
                       for t in pod_targets(NS, name, API, pod)]
            cluster = load_cluster({"cluster_name": "live-test", "region": "us-east-1"})
            files = cluster_rules(cluster, ["m5.large"], price_table())
            (tmp_path / "recording.yml").write_text(yaml.safe_dump(files["recording_rules.yml"]))
            (tmp_path / "alerting.yml").write_text(yaml.safe_dump(files["alerting_rules.yml"]))
            (tmp_path / "api.yml").write_text(yaml.safe_dump(api_rules(spec, NS)))
            config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                      "rule_files": [str(tmp_path / n) for n in ("recording.yml", "alerting.yml", "api.yml")],
                      "scrape_configs": scrape_jobs(targets)}
            (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
            port = free_port()
            cmd = [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                   f"--web.listen-address=127.0.0.1:{port}"]
            with running(cmd, ports=[port], log=tmp_path / "prometheus.log", timeout=20), \
                    httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as prom:
                _run_checks(prom, pods, results)
        # The runtimes' access lines, one per request (the runtime-only pods have stopped: their
        # logs are complete).
        access = [r for r in (behind_envoy.records() if behind_envoy else []) if r.get("logger") == "cortex.access"]
        alone = [r for pod in pods if pod.shape == "runtime" for r in pod.records() if r.get("logger") == "cortex.access"]
        assert len(access) + len(alone) >= int(RATE * LOAD_SECONDS), (len(access), len(alone))
        # Every access line behind Envoy carries the request id Envoy generated (what the "one request
        # id" Logs Insights query filters on), each distinct.
        ids = [r.get("request_id") for r in access]
        assert None not in ids and len(set(ids)) == len(ids)
        assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", i) for i in ids)
        results["access_lines"] = {"behind_envoy_with_request_id": len(access), "runtime_alone": len(alone)}
    finally:
        if behind_envoy is not None:
            behind_envoy.kill()
    print(f"\nlive dashboard values ({case}):", results)


def _query(prom: httpx.Client, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    body = prom.get("/api/v1/query", params=params).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]  # type: ignore[no-any-return]


def _scalar(prom: httpx.Client, expr: str, at: float | None = None) -> float | None:
    result = _query(prom, expr, at)
    return float(result[0]["value"][1]) if result else None


def _run_checks(prom: httpx.Client, pods: list[Pod], results: dict[str, Any]) -> None:
    def up() -> list[str]:
        return sorted(t["labels"]["job"] for t in prom.get("/api/v1/targets").json()["data"]["activeTargets"]
                      if t["health"] == "up")

    # Prometheus answers 503 until its storage is ready, after it opened its port.
    _wait_for("Prometheus ready", lambda: prom.get("/-/ready").status_code, lambda c: c == 200, 20)
    # One target per pod, in its shape's scrape job.
    _wait_for("2 healthy targets", up, lambda jobs: jobs == sorted(JOB_OF_SHAPE[p.shape] for p in pods), timeout=20)
    # The API's constants, from its rule file.
    constants = {name: _scalar(prom, f'cortex:api_{name}{{namespace="{NS}",api="{API}"}}')
                 for name in ("min_replicas", "max_replicas", "target_in_flight", "request_timeout_seconds")}
    constants = _wait_for("the API's constants", lambda: {
        name: _scalar(prom, f'cortex:api_{name}{{namespace="{NS}",api="{API}"}}')
        for name in ("min_replicas", "max_replicas", "target_in_flight", "request_timeout_seconds")},
        lambda c: None not in c.values(), timeout=10)
    assert constants == {"min_replicas": 2.0, "max_replicas": 5.0, "target_in_flight": 3.0,
                         "request_timeout_seconds": 30.0}
    results["constants"] = constants
    assert _scalar(prom, q.in_flight(NS, API)) == 0.0

    # --- steady load: request rate, status classes, app 5xx, latency ---------------------------------------
    urls = [pod.url for pod in pods]
    done = asyncio.run(_paced_load(urls))
    assert len(done) == int(RATE * LOAD_SECONDS)
    statuses = [s for _, s in done]
    # The paced load stays under the pods' limits; every 5th request is the app's own 500.
    assert statuses.count(500) == len(done) // ERROR_EVERY, sorted(set(statuses))
    assert statuses.count(200) == len(done) - len(done) // ERROR_EVERY, sorted(set(statuses))
    first = min(t for t, _ in done)
    at = first + LOAD_SECONDS - 2.0  # a 10 s window well inside the load
    window = float(WINDOW.rstrip("s"))
    measured = sum(1 for t, _ in done if at - window < t <= at) / window
    measured_errors = sum(1 for t, s in done if at - window < t <= at and s == 500) / window
    time.sleep(3)  # scrapes past `at` are in
    rate = _scalar(prom, q.request_rate(NS, API, WINDOW), at)
    assert rate is not None and abs(rate - measured) <= 0.1 * measured, (rate, measured)
    by_class = {r["metric"]["envoy_response_code_class"]: float(r["value"][1])
                for r in _query(prom, q.request_rate_by_class(NS, API, WINDOW), at)}
    assert set(by_class) == {"2", "5"}, by_class
    assert abs(by_class["5"] - measured_errors) <= 0.1 * measured_errors + 0.2, (by_class, measured_errors)
    app_errors = _scalar(prom, q.app_error_rate(NS, API, WINDOW), at)
    queue_full = _scalar(prom, q.queue_full_rate(NS, API, WINDOW), at)
    assert queue_full == 0.0
    assert app_errors is not None and abs(app_errors - by_class["5"]) < 1e-9
    latency = {p: _scalar(prom, q.latency_quantile(NS, API, p, WINDOW), at) for p in (0.5, 0.95, 0.99)}
    # Every request sleeps 0.2 s in the handler: the bucket (100, 250] ms of Envoy's histogram and of
    # the runtime's holds the median (mixed: the higher of the two shapes' medians), and no request
    # took more than the 1 s bucket on a machine under load.
    assert latency[0.5] is not None and SLEEP / 2 <= latency[0.5] <= 0.25, latency
    assert latency[0.99] is not None and latency[0.5] <= latency[0.99] <= 1.0, latency
    results.update(measured_rate=measured, request_rate=rate, by_class=by_class, app_errors=app_errors,
                   queue_full=queue_full, latency=latency)

    # --- held requests: in-flight and queue-full 503s ------------------------------------------------------
    async def held() -> tuple[Any, Any, Any, list[int]]:
        stop = asyncio.Event()
        # pod a: 4 processing + 4 queued, 2 refused (queue full); pod b: 3 processing. In flight: 11.
        holders = [asyncio.create_task(_hold(urls[0], 10, stop)), asyncio.create_task(_hold(urls[1], 3, stop))]
        try:
            def per_pod() -> Any:
                return {(r["metric"]["pod"], r["metric"]["__name__"]): r["value"][1] for r in _query(
                    prom, f'{{__name__=~"{q.INFLIGHT_METRICS}",namespace="{NS}",api="{API}",{q.ANY_SHAPE}}}')}
            inflight = await asyncio.to_thread(
                _wait_for, "11 in flight", lambda: (_scalar(prom, q.in_flight(NS, API)), per_pod()),
                lambda v: v[0] == 11.0, 20)
            refused = await asyncio.to_thread(
                _wait_for, "2 queue-full 503s scraped",
                lambda: _scalar(prom, f"sum(envoy_cluster_upstream_rq_pending_overflow{{{q.envoy(NS, API)}}} or "
                                      f'cortex_requests_rejected_total{{{q.runtime(NS, API)},reason="queue_full"}})'),
                lambda v: v == 2.0, 10)
            recorded = await asyncio.to_thread(
                _wait_for, "the recorded in-flight", lambda: _scalar(prom, f'cortex:api_in_flight{{namespace="{NS}",api="{API}"}}'),
                lambda v: v == 11.0, 10)
        finally:
            stop.set()
            statuses_held = await asyncio.gather(*holders)
        return inflight[0], refused, recorded, [s for r in statuses_held for s in r]

    inflight, refused, recorded, answered = asyncio.run(held())
    assert (inflight, refused, recorded) == (11.0, 2.0, 11.0)
    assert answered == [503, 503]
    queue_full_now = _scalar(prom, q.queue_full_rate(NS, API, WINDOW))
    assert queue_full_now is not None and queue_full_now > 0
    results.update(in_flight=inflight, cortex_api_in_flight=recorded, overflow_total=refused,
                   queue_full_rate_after=queue_full_now)
