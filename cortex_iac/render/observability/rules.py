"""Prometheus recording and alerting rules: the cluster's, and each API's constants.

Rule files of the chart's Prometheus rather than PrometheusRule objects: the cluster installs the
``prometheus`` chart (no Prometheus operator), so there is nothing to read PrometheusRule objects.

Split in two, so no rule has to be rendered per API and the cluster need not know the APIs:

- :func:`cluster_rules` (the chart's ``recording_rules.yml`` / ``alerting_rules.yml``, made with
  the Cluster): per-API series recorded by (namespace, api), every alert, the node groups'
  ``max_instances`` and the instance prices of the cluster's types;
- :func:`api_rules` (one file per API, in a ConfigMap of its own labelled :data:`API_RULES_LABEL`,
  made with the APIs, which a sidecar of the Prometheus server copies into its rules directory):
  the API's constants from its spec: ``cortex:api_min_replicas``, ``cortex:api_max_replicas``,
  ``cortex:api_target_in_flight``, ``cortex:api_request_timeout_seconds``, and, unless its
  ``alerts.enabled`` is false, ``cortex:api_alerts_enabled`` and its thresholds.

Each per-API alert joins ``on(namespace, api)`` with the API's thresholds, so an API without
constants (alerts switched off, or not one of ours) never fires one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cortex_iac.render.observability import queries as q
from cortex_iac.specs import ClusterSpec, NodeGroupSpec, RealtimeApiSpec

# Windows of the rates the alerts compare.
RATE_WINDOW = "5m"
# The label every alert carries: page (act now) or warning (look today).
SEVERITY = "severity"
# The label of the APIs' rule ConfigMaps (in the Prometheus namespace), and the directory the
# server's rules sidecar writes them to (watched by its config reloader, read by the server).
API_RULES_LABEL = "cortex.dev/prometheus-rules"
API_RULES_DIR = "/etc/cortex-rules"

_BY_API = "sum by (namespace, api)"


def _record(name: str, expr: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = dict(labels)
    return rule


def _alert(name: str, expr: str, for_: str | None, severity: str, summary: str, description: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_ is not None:
        rule["for"] = for_
    rule["labels"] = {SEVERITY: severity}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def api_recording_rules() -> list[dict[str, Any]]:
    """Per-API series by (namespace, api), recorded for the alerts and dashboards."""
    w = RATE_WINDOW
    return [
        # Both pod shapes (Envoy's app cluster, the serving runtime's series where there is no
        # sidecar), united series by series before the sum (see queries.py).
        _record(f"cortex:api_requests:rate{w}", f"{_BY_API} ({q.requests_series(q.APP_CLUSTER, '', w)})"),
        _record(f"cortex:api_queue_full:rate{w}", f"{_BY_API} ({q.queue_full_series(q.APP_CLUSTER, '', w)})"),
        # The app's own 5xx: both shapes count their queue-full 503s as 5xx too (see queries.py).
        # Both export their queue-full counter from the start, their 5xx from the first 5xx.
        _record(f"cortex:api_app_errors:rate{w}",
                f"{_BY_API} ({q.server_errors_series(q.APP_CLUSTER, '', w)}) - on(namespace, api) "
                f"{_BY_API} ({q.queue_full_series(q.APP_CLUSTER, '', w)})"),
        # Each shape's p99, the higher one (q.latency_quantile says why).
        _record(f"cortex:api_latency_seconds:p99_{w}",
                f"max by (namespace, api) ({q.latency_by_shape(0.99, q.APP_CLUSTER, '', w, ('namespace', 'api'))})"),
        _record("cortex:api_in_flight", f'{_BY_API} ({{__name__=~"{q.INFLIGHT_METRICS}",{q.ANY_SHAPE}}})'),
        # An API's Deployment is named after it (render/realtime.py).
        _record("cortex:api_replicas_ready",
                'label_replace(sum by (namespace, deployment) (kube_deployment_status_replicas_ready), '
                '"api", "$1", "deployment", "(.+)")'),
        _record("cortex:api_replicas_desired",
                'label_replace(sum by (namespace, deployment) (kube_deployment_spec_replicas), '
                '"api", "$1", "deployment", "(.+)")'),
    ]


def api_alerts() -> list[dict[str, Any]]:
    """The per-API alerts; each fires only for APIs whose constants say so (:func:`api_rules`)."""
    w = RATE_WINDOW
    enabled = "cortex:api_alerts_enabled"
    return [
        _alert(
            "CortexApiDown",
            f"(cortex:api_min_replicas > 0) and on(namespace, api) {enabled} "
            f"unless on(namespace, api) (cortex:api_replicas_ready > 0)",
            "5m", "page",
            "API {{ $labels.api }} has no ready replica",
            "{{ $labels.namespace }}/{{ $labels.api }} keeps min_replicas {{ $value }} but no replica has been "
            "ready for 5m: every request fails.",
        ),
        _alert(
            "CortexApiErrorRatio",
            f"cortex:api_app_errors:rate{w} / on(namespace, api) (cortex:api_requests:rate{w} > 0) "
            f"> on(namespace, api) cortex:api_alert_error_ratio",
            "5m", "warning",
            "API {{ $labels.api }} answers too many 5xx",
            "{{ $value | humanizePercentage }} of the requests of {{ $labels.namespace }}/{{ $labels.api }} got a 5xx "
            "from the app (queue-full 503s not counted) over 5m, above its alerts.error_ratio.",
        ),
        _alert(
            "CortexApiLatencyHigh",
            f"cortex:api_latency_seconds:p99_{w} > on(namespace, api) cortex:api_alert_latency_seconds",
            "10m", "warning",
            "API {{ $labels.api }} p99 latency near its request timeout",
            "The p99 latency of {{ $labels.namespace }}/{{ $labels.api }} is {{ $value | humanizeDuration }}, above "
            "pod.request_timeout x alerts.latency_fraction: requests are about to time out (504).",
        ),
        _alert(
            "CortexApiQueueFull",
            f"cortex:api_queue_full:rate{w} / on(namespace, api) (cortex:api_requests:rate{w} > 0) "
            f"> on(namespace, api) cortex:api_alert_queue_full_ratio",
            "10m", "warning",
            "API {{ $labels.api }} refuses requests: queue full",
            "{{ $value | humanizePercentage }} of the requests of {{ $labels.namespace }}/{{ $labels.api }} got a "
            "queue-full 503 over 5m, for 10m: raise max_replicas, max_concurrency or max_queue_length.",
        ),
        _alert(
            "CortexApiAtMaxReplicas",
            f"cortex:api_replicas_desired >= on(namespace, api) cortex:api_max_replicas "
            f"and on(namespace, api) {enabled}",
            "15m", "warning",
            "API {{ $labels.api }} pinned at max_replicas",
            "{{ $labels.namespace }}/{{ $labels.api }} has wanted {{ $value }} replicas, its max_replicas, for 15m: "
            "the autoscaler can give it no more.",
        ),
    ]


def cluster_alerts() -> list[dict[str, Any]]:
    """Alerts on pods, node groups and spot capacity, for the whole cluster."""
    return [
        _alert(
            "CortexPodCrashLooping",
            'max by (namespace, pod, container) '
            '(max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"}[5m])) >= 1',
            "10m", "warning",
            "Container {{ $labels.container }} of {{ $labels.namespace }}/{{ $labels.pod }} is crash-looping",
            "It has been in CrashLoopBackOff for 10m: see its logs (kubectl logs --previous).",
        ),
        _alert(
            "CortexNodeGroupAtMax",
            "cortex:node_group_nodes >= on(node_group) cortex:node_group_max_instances",
            "15m", "warning",
            "Node group {{ $labels.node_group }} is at its max_instances",
            "Node group {{ $labels.node_group }} has had {{ $value }} nodes, its max_instances, for 15m: pods that "
            "need more capacity stay pending.",
        ),
        _alert(
            "CortexSpotInterruption",
            f"{q.spot_interruptions('10m')} > 0",
            None, "warning",
            "A spot node was interrupted",
            "Karpenter received {{ $value }} spot interruption warning(s) in 10m and drained the nodes; their pods "
            "were rescheduled. Frequent ones: widen spot_config.instance_distribution or use on-demand.",
        ),
    ]


def node_group_rules(node_groups: Sequence[NodeGroupSpec]) -> list[dict[str, Any]]:
    """Nodes per node group (by the node label every group's nodes carry) and each group's max_instances."""
    nodes = _record(
        "cortex:node_group_nodes",
        f'count by (node_group) (label_replace(kube_node_labels{{{q.NODE_GROUP_NODE_LABEL}!=""}}, '
        f'"node_group", "$1", "{q.NODE_GROUP_NODE_LABEL}", "(.+)"))',
    )
    # A group of max_instances 0 is always "at its limit": it gets no constant, so no alert.
    limits = [_record("cortex:node_group_max_instances", f"vector({g.max_instances})", {"node_group": g.name})
              for g in node_groups if g.max_instances > 0]
    return [nodes, *limits]


def cost_rules(prices: Mapping[str, float], spot_discount: float, control_plane_hour: float) -> list[dict[str, Any]]:
    """The cluster's cost per hour: its nodes by instance type at ``prices`` (USD per hour,
    on-demand), spot nodes at ``1 - spot_discount`` of it (the estimate ``cortex cost`` makes),
    plus the EKS control plane. A node of a type without a price counts 0."""
    price = [_record("cortex:instance_price_dollars_per_hour", f"vector({prices[t]})", {"instance_type": t})
             for t in sorted(prices)]
    by_type = (f'count by (instance_type) (label_replace(kube_node_labels{{{q.CAPACITY_TYPE_NODE_LABEL}{{op}}"spot"}}, '
               f'"instance_type", "$1", "{q.INSTANCE_TYPE_NODE_LABEL}", "(.+)"))')
    on_demand = by_type.replace("{op}", "!=")
    spot = by_type.replace("{op}", "=")
    priced = "* on(instance_type) cortex:instance_price_dollars_per_hour"
    expr = (f"(sum({on_demand} {priced}) or vector(0)) + {1 - spot_discount:g} * (sum({spot} {priced}) or vector(0)) "
            f"+ {control_plane_hour:g}")
    return [*price, _record(q.cost_per_hour(), expr)]


def cluster_rules(cluster: ClusterSpec, instance_types: Iterable[str], price_table: Mapping[str, Any]) -> dict[str, Any]:
    """The cluster's rule files: ``{"recording_rules.yml": ..., "alerting_rules.yml": ...}``.

    ``instance_types`` are every type the cluster's nodes may be (node groups, system and
    Prometheus nodes); ``price_table`` is ``cortex cost``'s (cortex_iac/data/prices.json). A region
    or type the table lacks is left out of the cost (the dashboard panel says it is an estimate).
    """
    region = price_table["regions"].get(cluster.region, {})
    known = region.get("instances", {})
    prices = {t: float(known[t]) for t in instance_types if t in known}
    recording = [
        {"name": "cortex-api", "rules": api_recording_rules()},
        {"name": "cortex-node-groups", "rules": node_group_rules(cluster.node_groups)},
        {"name": "cortex-cost", "rules": cost_rules(prices, float(price_table["spot_discount_estimate"]),
                                                    float(region.get("eks_cluster_hour", 0.0)))},
    ]
    alerting = [
        {"name": "cortex-api-alerts", "rules": api_alerts()},
        {"name": "cortex-cluster-alerts", "rules": cluster_alerts()},
    ]
    return {"recording_rules.yml": {"groups": recording}, "alerting_rules.yml": {"groups": alerting}}


def api_rules(spec: RealtimeApiSpec, namespace: str) -> dict[str, Any]:
    """One API's rule file: its constants from the spec, labelled with its namespace and name."""
    labels = {"namespace": namespace, "api": spec.name}
    scaling = spec.autoscaling
    rules = [
        _record("cortex:api_min_replicas", f"vector({scaling.min_replicas})", labels),
        _record("cortex:api_max_replicas", f"vector({scaling.max_replicas})", labels),
        _record("cortex:api_target_in_flight", f"vector({scaling.target_in_flight:g})", labels),
        _record("cortex:api_request_timeout_seconds", f"vector({spec.pod.request_timeout})", labels),
    ]
    alerts = spec.alerts
    if alerts.enabled:
        latency = spec.pod.request_timeout * alerts.latency_fraction
        rules += [
            _record("cortex:api_alerts_enabled", "vector(1)", labels),
            _record("cortex:api_alert_error_ratio", f"vector({alerts.error_ratio:g})", labels),
            _record("cortex:api_alert_latency_seconds", f"vector({latency:g})", labels),
            _record("cortex:api_alert_queue_full_ratio", f"vector({alerts.queue_full_ratio:g})", labels),
        ]
    return {"groups": [{"name": f"cortex-api-{spec.name}", "rules": rules}]}


def api_rules_file_name(api_name: str) -> str:
    """Key of an API's rule file in its ConfigMap."""
    return f"{api_name}.yml"
