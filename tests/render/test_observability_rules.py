"""The rendered Prometheus rules: promtool checks every file, and promtool's rule unit tests
(`promtool test rules`) show each alert firing on the series that should fire it and quiet on the
ones that should not.

The input series carry the names and labels the real exporters give them (Envoy's and the serving
runtime's as their scrape jobs relabel them, kube-state-metrics', Karpenter's): see
cortex_iac/render/observability/queries.py. APIs of both pod shapes are in them: with the Envoy
sidecar, without it (the runtime's metrics), and one mid-rollout with a pod of each.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cortex_iac.plan.cost import price_table
from cortex_iac.render.observability import queries as q
from cortex_iac.render.observability.rules import api_rules, cluster_rules
from cortex_iac.specs import ClusterSpec, RealtimeApiSpec, load_api_files, load_cluster
from tests.needs import missing
from tests.specs.helpers import REFERENCE

REFERENCE_APIS = REFERENCE / "apis"
NS = "cortex-apis"


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        missing("promtool not on PATH (Debian: apt-get install -y prometheus)")
    assert binary is not None
    return binary


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _cluster() -> ClusterSpec:
    return load_cluster({
        "cluster_name": "obs", "region": "us-east-1",
        "node_groups": [
            {"name": "cpu", "instance_type": "m5.large", "min_instances": 1, "max_instances": 3},
            {"name": "spot", "instance_type": "m5.large", "spot": True, "min_instances": 0, "max_instances": 0},
        ],
    })


def _api(name: str, **extra: Any) -> RealtimeApiSpec:
    raw = {"name": name, "kind": "RealtimeAPI",
           "pod": {"request_timeout": "10s", "max_concurrency": 2, "max_queue_length": 4,
                   "containers": [{"name": "api", "image": "example.com/api:1"}]},
           "autoscaling": {"min_replicas": 1, "max_replicas": 3}, **extra}
    (spec,) = load_api_files_from([raw])
    assert isinstance(spec, RealtimeApiSpec)
    return spec


def load_api_files_from(raw: list[dict[str, Any]]) -> list[Any]:
    from cortex_iac.specs import load_apis
    return load_apis(raw, origin="test")


def _write_rules(tmp: Path, apis: list[RealtimeApiSpec], *, annotations: bool = True) -> list[str]:
    """The rendered rule files in ``tmp``; without ``annotations`` the alerts lose them (promtool's
    unit tests would compare their rendered text; `promtool check rules` checks their templates)."""
    files = cluster_rules(_cluster(), ["m5.large", "t3.large"], price_table())
    if not annotations:
        for group in files["alerting_rules.yml"]["groups"]:
            for rule in group["rules"]:
                del rule["annotations"]
    names = []
    for name, content in files.items():
        (tmp / name).write_text(yaml.safe_dump(content, sort_keys=False))
        names.append(name)
    for api in apis:
        (tmp / f"{api.name}.yml").write_text(yaml.safe_dump(api_rules(api, NS), sort_keys=False))
        names.append(f"{api.name}.yml")
    return names


def test_promtool_checks_every_rendered_rule_file(tmp_path: Path) -> None:
    # Every realtime API of Cortex's own examples (one file at a time: names repeat across files).
    realtime = [a for path in sorted(REFERENCE_APIS.glob("realtime__*.yaml")) for a in load_api_files([path])
                if isinstance(a, RealtimeApiSpec)] if REFERENCE_APIS.is_dir() else []
    apis = [_api("plain"), _api("quiet", alerts={"enabled": False})]
    names = _write_rules(tmp_path, apis)
    for index, api in enumerate(realtime):
        (tmp_path / f"ref-{index}.yml").write_text(yaml.safe_dump(api_rules(api, NS)))
        names.append(f"ref-{index}.yml")
    result = _run("check", "rules", *names, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(names)


def test_api_constants_come_from_the_spec() -> None:
    spec = _api("my-api", alerts={"error_ratio": 0.2, "latency_fraction": 0.5, "queue_full_ratio": 0.1})
    (group,) = api_rules(spec, NS)["groups"]
    got = {r["record"]: r["expr"] for r in group["rules"]}
    assert got == {
        "cortex:api_min_replicas": "vector(1)", "cortex:api_max_replicas": "vector(3)",
        "cortex:api_target_in_flight": "vector(2)", "cortex:api_request_timeout_seconds": "vector(10)",
        "cortex:api_alerts_enabled": "vector(1)", "cortex:api_alert_error_ratio": "vector(0.2)",
        "cortex:api_alert_latency_seconds": "vector(5)", "cortex:api_alert_queue_full_ratio": "vector(0.1)",
    }
    assert all(r["labels"] == {"namespace": NS, "api": "my-api"} for r in group["rules"])
    quiet = api_rules(_api("quiet", alerts={"enabled": False}), NS)["groups"][0]["rules"]
    assert [r["record"] for r in quiet] == ["cortex:api_min_replicas", "cortex:api_max_replicas",
                                           "cortex:api_target_in_flight", "cortex:api_request_timeout_seconds"]


def test_alert_thresholds_are_checked_in_the_spec() -> None:
    from cortex_iac.errors import SpecError
    with pytest.raises(SpecError, match=r"alerts.error_ratio.*1\.5"):
        _api("bad", alerts={"error_ratio": 1.5})
    with pytest.raises(SpecError, match=r"alerts.*latency"):
        _api("bad", alerts={"latency": 0.5})


# --- promtool test rules -------------------------------------------------------------------------------

def _envoy(api: str, pod: str, metric: str, values: str, **labels: str) -> dict[str, str]:
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return {"series": f'{metric}{{job="cortex-envoy",namespace="{NS}",pod="{pod}",api="{api}",'
                      f'envoy_cluster_name="app"{extra}}}',
            "values": values}


def _runtime(api: str, pod: str, metric: str, values: str, **labels: str) -> dict[str, str]:
    """A series of the serving runtime of a pod without a sidecar (job cortex-runtime)."""
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return {"series": f'{metric}{{job="cortex-runtime",namespace="{NS}",pod="{pod}",api="{api}"{extra}}}',
            "values": values}


def _runtime_requests(api: str, pod: str, per_minute: dict[str, int], rejected: int) -> list[dict[str, str]]:
    """``per_minute`` requests answered by status, ``rejected`` of the 503s queue-full (exported from 0)."""
    series = [_runtime(api, pod, "cortex_requests_total", f"0+{n}x30", method="POST", status=status)
              for status, n in per_minute.items()]
    return [*series, _runtime(api, pod, "cortex_requests_rejected_total", f"0+{rejected}x30", reason="queue_full")]


def _deployment(api: str, ready: str, desired: str) -> list[dict[str, str]]:
    return [
        {"series": f'kube_deployment_status_replicas_ready{{namespace="{NS}",deployment="{api}"}}', "values": ready},
        {"series": f'kube_deployment_spec_replicas{{namespace="{NS}",deployment="{api}"}}', "values": desired},
    ]


def _series() -> list[dict[str, str]]:
    """30 minutes at 1m: a down API, a failing one, a saturated one, a slow one, a healthy one, a
    down one with alerts off, a crash loop, a node group at its limit and a spot interruption."""
    series: list[dict[str, str]] = []
    # down: 0 ready replicas throughout (min_replicas 1).
    series += _deployment("down", "0x30", "1x30")
    # healthy: 10 req/s, all 2xx, fast, 1 of 3 replicas; the same for "quiet" but its alerts are off and
    # it is down: no alert at all.
    for api in ("healthy", "quiet-down"):
        series.append(_envoy(api, f"{api}-1", "envoy_cluster_upstream_rq_xx", "0+600x30", envoy_response_code_class="2"))
        series.append(_envoy(api, f"{api}-1", "envoy_cluster_upstream_rq_pending_overflow", "0x30"))
    series += _deployment("healthy", "1x30", "1x30") + _deployment("quiet-down", "0x30", "1x30")
    # failing: 10 req/s, 2 of them app 5xx (20 % > 5 %), and 1 queue-full 503 per s counted as 5xx by
    # Envoy (10 % of requests, under its alerts.queue_full_ratio 0.2 given below).
    series.append(_envoy("failing", "failing-1", "envoy_cluster_upstream_rq_xx", "0+420x30", envoy_response_code_class="2"))
    series.append(_envoy("failing", "failing-1", "envoy_cluster_upstream_rq_xx", "0+180x30", envoy_response_code_class="5"))
    series.append(_envoy("failing", "failing-1", "envoy_cluster_upstream_rq_pending_overflow", "0+60x30"))
    series += _deployment("failing", "1x30", "1x30")
    # saturated: 10 req/s, 3 of them queue-full 503s (the app answers the rest 2xx), pinned at 3 = max.
    series.append(_envoy("saturated", "saturated-1", "envoy_cluster_upstream_rq_xx", "0+420x30", envoy_response_code_class="2"))
    series.append(_envoy("saturated", "saturated-1", "envoy_cluster_upstream_rq_xx", "0+180x30", envoy_response_code_class="5"))
    series.append(_envoy("saturated", "saturated-1", "envoy_cluster_upstream_rq_pending_overflow", "0+180x30"))
    series += _deployment("saturated", "3x30", "3x30")
    # slow: every request takes 9.5 s (request_timeout 10 s x 0.8 = 8 s); 1 req/s in the 10000 ms bucket.
    for le, step in (("5000", "0"), ("10000", "60"), ("+Inf", "60")):
        series.append(_envoy("slow", "slow-1", "envoy_cluster_upstream_rq_time_bucket", f"0+{step}x30", le=le))
    series.append(_envoy("slow", "slow-1", "envoy_cluster_upstream_rq_xx", "0+60x30", envoy_response_code_class="2"))
    series.append(_envoy("slow", "slow-1", "envoy_cluster_upstream_rq_pending_overflow", "0x30"))
    series += _deployment("slow", "1x30", "1x30")
    # Pods without a sidecar (the runtime's metrics): rt-failing as failing above (7 x 200, 2 x 500
    # and 1 queue-full 503 per s), rt-saturated as saturated (7 x 200, 3 queue-full 503s per s, no app
    # 5xx), rt-slow as slow (9.5 s, the runtime's buckets are in seconds).
    series += _runtime_requests("rt-failing", "rt-failing-1", {"200": 420, "500": 120, "503": 60}, 60)
    series += _runtime_requests("rt-saturated", "rt-saturated-1", {"200": 420, "503": 180}, 180)
    for le, step in (("5", "0"), ("10", "60"), ("+Inf", "60")):
        series.append(_runtime("rt-slow", "rt-slow-1", "cortex_request_duration_seconds_bucket", f"0+{step}x30", le=le))
    series += _runtime_requests("rt-slow", "rt-slow-1", {"200": 60}, 0)
    series += _deployment("rt-failing", "1x30", "1x30") + _deployment("rt-saturated", "1x30", "1x30")
    series += _deployment("rt-slow", "1x30", "1x30")
    # mixed, mid-rollout: pod 1 with the sidecar (5 x 2xx per s and no 5xx series at all; 240 ms;
    # 2 processing + 1 queued), pod 2 without (4 x 200 and 1 x 500 per s; 0.5 to 1 s; 3 in flight).
    series.append(_envoy("mixed", "mixed-1", "envoy_cluster_upstream_rq_xx", "0+300x30", envoy_response_code_class="2"))
    series.append(_envoy("mixed", "mixed-1", "envoy_cluster_upstream_rq_pending_overflow", "0x30"))
    for le, step in (("100", "0"), ("250", "300"), ("+Inf", "300")):
        series.append(_envoy("mixed", "mixed-1", "envoy_cluster_upstream_rq_time_bucket", f"0+{step}x30", le=le))
    series.append(_envoy("mixed", "mixed-1", "envoy_cluster_upstream_rq_active", "2x30"))
    series.append(_envoy("mixed", "mixed-1", "envoy_cluster_upstream_rq_pending_active", "1x30"))
    series += _runtime_requests("mixed", "mixed-2", {"200": 240, "500": 60}, 0)
    for le, step in (("0.5", "0"), ("1.0", "300"), ("+Inf", "300")):
        series.append(_runtime("mixed", "mixed-2", "cortex_request_duration_seconds_bucket", f"0+{step}x30", le=le))
    series.append(_runtime("mixed", "mixed-2", "cortex_requests_in_flight", "3x30"))
    series += _deployment("mixed", "2x30", "2x30")
    # A fast API's histogram (100 ms): never slow.
    for le, step in (("250", "600"), ("+Inf", "600")):
        series.append(_envoy("healthy", "healthy-1", "envoy_cluster_upstream_rq_time_bucket", f"0+{step}x30", le=le))
    # Crash loop: "loop" waits in CrashLoopBackOff from minute 5; "ok" restarted once and runs.
    series.append({"series": 'kube_pod_container_status_waiting_reason{namespace="cortex-apis",pod="loop-1",'
                             'container="api",reason="CrashLoopBackOff"}', "values": "0x4 1x25"})
    series.append({"series": 'kube_pod_container_status_waiting_reason{namespace="cortex-apis",pod="ok-1",'
                             'container="api",reason="CrashLoopBackOff"}', "values": "0x2 1 0x27"})
    # Node groups: cpu has 3 nodes (its max_instances) from minute 0; spot (max 0) has 1 node.
    for i in range(3):
        series.append({"series": f'kube_node_labels{{node="cpu-{i}",label_cortex_dev_node_group="cpu",'
                                 'label_karpenter_sh_capacity_type="on-demand",'
                                 'label_node_kubernetes_io_instance_type="m5.large"}', "values": "1x30"})
    series.append({"series": 'kube_node_labels{node="spot-0",label_cortex_dev_node_group="spot",'
                             'label_karpenter_sh_capacity_type="spot",'
                             'label_node_kubernetes_io_instance_type="m5.large"}', "values": "1x30"})
    series.append({"series": 'kube_node_labels{node="system-0",label_node_kubernetes_io_instance_type="t3.large"}',
                   "values": "1x30"})
    # The healthy API's pod as kube-state-metrics and cAdvisor show it: 2 restarts between minutes
    # 10 and 12, last terminated by the OOM killer, 0.5 cores used of 1 requested, 300 MiB of 512.
    pod = f'namespace="{NS}",pod="healthy-1"'
    series += [
        {"series": f'kube_pod_labels{{{pod},label_cortex_dev_api_name="healthy"}}', "values": "1x30"},
        {"series": f'kube_pod_labels{{namespace="{NS}",pod="other-1",label_cortex_dev_api_name="other"}}', "values": "1x30"},
        {"series": f'kube_pod_container_status_restarts_total{{{pod},container="api"}}', "values": "0x10 1 2x19"},
        {"series": f'kube_pod_container_status_restarts_total{{namespace="{NS}",pod="other-1",container="api"}}',
         "values": "0+1x30"},
        {"series": f'kube_pod_container_status_last_terminated_reason{{{pod},container="api",reason="OOMKilled"}}',
         "values": "0x10 1x20"},
        {"series": f'container_cpu_usage_seconds_total{{{pod},container="api"}}', "values": "0+30x30"},
        {"series": f'kube_pod_container_resource_requests{{{pod},container="api",resource="cpu"}}', "values": "1x30"},
        {"series": f'container_memory_working_set_bytes{{{pod},container="api"}}', "values": f"{300 * 2**20}x30"},
        {"series": f'kube_pod_container_resource_requests{{{pod},container="api",resource="memory"}}',
         "values": f"{512 * 2**20}x30"},
        {"series": 'kube_pod_status_phase{namespace="cortex-apis",pod="p",phase="Pending"}', "values": "1x30"},
    ]
    # Karpenter: one spot interruption at minute 20.
    series.append({"series": 'karpenter_interruption_received_messages_total{message_type="spot_interrupted"}',
                   "values": "0x20 1x10"})
    series.append({"series": 'karpenter_interruption_received_messages_total{message_type="rebalance_recommendation"}',
                   "values": "0+1x30"})
    return series


def _alerts(name: str, at: str, *labels: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": [{"exp_labels": dict(label)} for label in labels]}


def _api_labels(api: str, severity: str = "warning") -> dict[str, str]:
    return {"severity": severity, "namespace": NS, "api": api}


def test_promtool_unit_tests_every_alert(tmp_path: Path) -> None:
    apis = [_api("down"), _api("healthy"), _api("quiet-down", alerts={"enabled": False}),
            _api("failing", alerts={"queue_full_ratio": 0.2}), _api("saturated"), _api("slow"),
            _api("rt-failing", alerts={"queue_full_ratio": 0.2}), _api("rt-saturated"), _api("rt-slow"),
            _api("mixed")]
    names = _write_rules(tmp_path, apis, annotations=False)
    tests = [
        # Nothing fires before its `for`.
        _alerts("CortexApiDown", "4m"),
        _alerts("CortexApiDown", "10m", _api_labels("down", "page")),
        # mixed: 1 app 5xx per s of 10, all from its pod without a sidecar.
        _alerts("CortexApiErrorRatio", "12m", _api_labels("failing"), _api_labels("rt-failing"), _api_labels("mixed")),
        _alerts("CortexApiQueueFull", "20m", _api_labels("saturated"), _api_labels("rt-saturated")),
        _alerts("CortexApiLatencyHigh", "20m", _api_labels("slow"), _api_labels("rt-slow")),
        _alerts("CortexApiAtMaxReplicas", "10m"),
        _alerts("CortexApiAtMaxReplicas", "20m", _api_labels("saturated")),
        _alerts("CortexPodCrashLooping", "20m",
                {"severity": "warning", "namespace": NS, "pod": "loop-1", "container": "api"}),
        _alerts("CortexNodeGroupAtMax", "10m"),
        _alerts("CortexNodeGroupAtMax", "20m", {"severity": "warning", "node_group": "cpu"}),
        _alerts("CortexSpotInterruption", "15m"),
        _alerts("CortexSpotInterruption", "25m", {"severity": "warning"}),
        _alerts("CortexSpotInterruption", "29m", {"severity": "warning"}),
    ]
    promql = [
        # 3 on-demand m5.large + 1 t3.large + 1 spot m5.large at 40 % + the EKS control plane.
        {"expr": "cortex:cluster_cost_dollars_per_hour", "eval_time": "10m",
         "exp_samples": [{"labels": "cortex:cluster_cost_dollars_per_hour", "value": 3 * 0.096 + 0.0832 + 0.4 * 0.096 + 0.1}]},
        # Only APIs with a 5xx series: the others have no value (as before the runtime's shape).
        {"expr": "cortex:api_app_errors:rate5m", "eval_time": "10m",
         "exp_samples": [{"labels": f'cortex:api_app_errors:rate5m{{namespace="{NS}",api="{api}"}}', "value": value}
                         for api, value in (("failing", 2), ("saturated", 0), ("rt-failing", 2),
                                            ("rt-saturated", 0), ("mixed", 1))]},
    ]
    # The other per-API recordings, by (namespace, api), of both shapes.
    def recorded(name: str, at: str, *values: tuple[str, float]) -> dict[str, Any]:
        return {"expr": f'{name}{{api=~"mixed|rt-.*"}}', "eval_time": at,
                "exp_samples": [{"labels": f'{name}{{namespace="{NS}",api="{api}"}}', "value": value}
                                for api, value in values]}

    promql += [
        recorded("cortex:api_requests:rate5m", "10m", ("rt-failing", 10), ("rt-saturated", 10), ("rt-slow", 1),
                 ("mixed", 10)),
        recorded("cortex:api_queue_full:rate5m", "10m", ("rt-failing", 1), ("rt-saturated", 3), ("rt-slow", 0),
                 ("mixed", 0)),
        # mixed: the higher of its two shapes' p99 (0.2485 s and 0.995 s); rt-slow 5 + 0.99 x 5 s.
        recorded("cortex:api_latency_seconds:p99_5m", "10m", ("rt-slow", 9.95), ("mixed", 0.995)),
        recorded("cortex:api_in_flight", "10m", ("mixed", 6)),
    ]
    # The dashboards' queries over kube-state-metrics and cAdvisor series (only the healthy API's pod
    # counts for it; the other API's restarts do not).
    def sample(expr: str, at: str, value: float, labels: str = "{}") -> dict[str, Any]:
        return {"expr": expr, "eval_time": at, "exp_samples": [{"labels": labels, "value": value}]}

    promql += [
        sample(q.in_flight_target(NS, "healthy"), "10m", 2,
               f'{{namespace="{NS}",api="healthy"}}'),  # target_in_flight 2 x 1 ready replica
        sample(q.replicas(NS, "saturated", "desired"), "10m", 3),
        sample(q.replica_bound(NS, "saturated", "max"), "10m", 3,
               f'cortex:api_max_replicas{{namespace="{NS}",api="saturated"}}'),
        sample(q.restarts(NS, "healthy", "10m"), "15m", 2, '{container="api"}'),
        sample(q.oom_kills(NS, "healthy"), "15m", 1, '{container="api"}'),
        sample(q.cpu_used(NS, "healthy", "5m"), "15m", 0.5, '{container="api"}'),
        sample(q.resource_requested(NS, "healthy", "cpu"), "15m", 1, '{container="api"}'),
        sample(q.memory_used(NS, "healthy"), "15m", 300 * 2**20, '{container="api"}'),
        sample(q.pending_pods(), "15m", 1, f'{{namespace="{NS}"}}'),
        {"expr": q.nodes_by_group_and_capacity(), "eval_time": "15m", "exp_samples": [
            {"labels": "{}", "value": 1},  # the system node: no node group, no Karpenter capacity type
            {"labels": '{label_cortex_dev_node_group="cpu",label_karpenter_sh_capacity_type="on-demand"}', "value": 3},
            {"labels": '{label_cortex_dev_node_group="spot",label_karpenter_sh_capacity_type="spot"}', "value": 1}]},
        sample(q.spot_interruptions("10m"), "25m", 1),
        sample(q.request_rate(NS, "failing", "5m"), "10m", 10),
        sample(q.queue_full_rate(NS, "saturated", "5m"), "10m", 3),
        # The dashboard's request queries over pods without a sidecar, and over both shapes at once.
        sample(q.request_rate(NS, "rt-failing", "5m"), "10m", 10),
        sample(q.queue_full_rate(NS, "rt-saturated", "5m"), "10m", 3),
        sample(q.app_error_rate(NS, "rt-failing", "5m"), "10m", 2),
        sample(q.app_error_rate(NS, "rt-saturated", "5m"), "10m", 0),
        sample(q.request_rate(NS, "mixed", "5m"), "10m", 10),
        sample(q.queue_full_rate(NS, "mixed", "5m"), "10m", 0),
        sample(q.app_error_rate(NS, "mixed", "5m"), "10m", 1),
        sample(q.in_flight(NS, "mixed"), "10m", 6),
        sample(q.latency_quantile(NS, "mixed", 0.99, "5m"), "10m", 0.995),
        sample(q.latency_quantile(NS, "mixed", 0.5, "5m"), "10m", 0.75),
        sample(q.latency_quantile(NS, "slow", 0.99, "5m"), "10m", 9.95),
        sample(q.latency_quantile(NS, "rt-slow", 0.99, "5m"), "10m", 9.95),
        {"expr": q.request_rate_by_class(NS, "mixed", "5m"), "eval_time": "10m", "exp_samples": [
            {"labels": '{envoy_response_code_class="2"}', "value": 9},
            {"labels": '{envoy_response_code_class="5"}', "value": 1}]},
        {"expr": q.request_rate_by_class(NS, "rt-slow", "5m"), "eval_time": "10m", "exp_samples": [
            {"labels": '{envoy_response_code_class="2"}', "value": 1}]},
        # An API of one shape without a 5xx yet: no value (both shapes export 5xx from the first).
        {"expr": q.app_error_rate(NS, "healthy", "5m"), "eval_time": "10m", "exp_samples": []},
    ]
    test_file = {"rule_files": names, "evaluation_interval": "1m",
                 "tests": [{"interval": "1m", "input_series": _series(), "alert_rule_test": tests,
                            "promql_expr_test": promql}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test_file, sort_keys=False))
    result = _run("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
