"""The Grafana dashboards, built with Grafana's own typed builders (grafana-foundation-sdk).

Two dashboards, shipped as ConfigMaps for the Grafana chart's dashboard sidecar
(:func:`cortex_iac.render.observability.addons.dashboard_config_map`):

- **Cortex API** (uid ``cortex-api``), templated on the API's name (variable ``api``: every API
  that has rules, i.e. every deployed one): requests by status class, latency percentiles,
  in-flight vs target, queue-full 503s vs other 5xx, replicas, restarts and OOM kills, CPU /
  memory / GPU vs requests, and the queue depth of an AsyncAPI;
- **Cortex cluster** (uid ``cortex-cluster``): nodes by node group and capacity type, pending pods,
  Karpenter's provisioning and disruptions, spot interruptions, cost per hour.

Every query comes from :mod:`.queries`; rates use Grafana's ``$__rate_interval``. Every panel names
the Prometheus data source by uid (:data:`~cortex_iac.render.observability.addons.DATASOURCE_UID`),
which the Grafana values provision under that uid. :func:`panel_queries` lists the panels and
their expressions (the tests parse each with promtool; docs/observability.md lists them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.builders import prometheus as prometheus_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import timeseries as timeseries_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dashboard_m

from cortex_iac.render.observability import queries as q
from cortex_iac.render.observability.addons import DATASOURCE_UID

RATE = "$__rate_interval"
API_VARIABLE = "$api"
_DATASOURCE = dashboard_m.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)


@dataclass(frozen=True)
class Target:
    """One query of a panel: its PromQL and its legend."""

    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    """A panel: title, unit (Grafana's unit id), targets, and whether it is a single stat."""

    title: str
    unit: str
    targets: tuple[Target, ...]
    description: str = ""
    stat: bool = False
    stacked: bool = False


def api_panels(namespace: str, api: str = API_VARIABLE, rate: str = RATE) -> list[PanelSpec]:
    """The panels of the per-API dashboard, for API ``api`` (default: the dashboard's variable)."""
    n, a = namespace, api
    return [
        PanelSpec("Requests by status class", "reqps",
                  (Target(q.request_rate_by_class(n, a, rate), "{{envoy_response_code_class}}xx"),),
                  "Requests answered per second by the API's pods (their Envoy, or the serving runtime where there "
                  "is no sidecar), by status class (queue-full 503s are 5xx)."),
        PanelSpec("Latency p50 / p95 / p99", "s",
                  tuple(Target(q.latency_quantile(n, a, quantile, rate), f"p{round(quantile * 100)}")
                        for quantile in (0.5, 0.95, 0.99)),
                  "From Envoy's histogram, or the serving runtime's where there is no sidecar: time in the pod, "
                  "queueing included. While the pods change between the two, the slower one's."),
        PanelSpec("In flight vs target x replicas", "short",
                  (Target(q.in_flight(n, a), "in flight"), Target(q.in_flight_target(n, a), "target x ready replicas")),
                  "Requests being processed or queued in the API's pods, and what the autoscaler aims for."),
        PanelSpec("Queue-full 503s vs other 5xx", "reqps",
                  (Target(q.queue_full_rate(n, a, rate), "queue full (503)"),
                   Target(q.app_error_rate(n, a, rate), "other 5xx (app, timeouts)")),
                  "Queue-full: every slot and queue place taken (scale up or raise the limits); other: the app's own."),
        PanelSpec("Replicas", "short",
                  (Target(q.replicas(n, a, "desired"), "desired"), Target(q.replicas(n, a, "ready"), "ready"),
                   Target(q.replica_bound(n, a, "min"), "min_replicas"),
                   Target(q.replica_bound(n, a, "max"), "max_replicas"))),
        PanelSpec("Restarts (10m) and OOM kills", "short",
                  (Target(q.restarts(n, a, "10m"), "restarts {{container}}"),
                   Target(q.oom_kills(n, a), "last killed OOM {{container}}"))),
        PanelSpec("CPU used vs requested", "short",
                  (Target(q.cpu_used(n, a, rate), "used {{container}}"),
                   Target(q.resource_requested(n, a, "cpu"), "requested {{container}}")), "Cores."),
        PanelSpec("Memory used vs requested", "bytes",
                  (Target(q.memory_used(n, a), "working set {{container}}"),
                   Target(q.resource_requested(n, a, "memory"), "requested {{container}}"))),
        PanelSpec("GPU utilization", "percent",
                  (Target(q.gpu_utilization(n, a), "{{pod}}"),),
                  "DCGM exporter (GPU node groups only); empty for APIs on CPU nodes."),
        PanelSpec("Queue depth (AsyncAPI)", "short",
                  (Target(q.queue_depth(a), "messages"),),
                  "KEDA's last reading of the API's queue (assumes the AsyncAPI's ScaledObject is named after it); "
                  "empty for RealtimeAPIs."),
    ]


def cluster_panels(rate: str = RATE) -> list[PanelSpec]:
    """The panels of the cluster dashboard."""
    del rate  # the cluster panels count over fixed windows
    return [
        PanelSpec("Nodes by node group and capacity type", "short",
                  (Target(q.nodes_by_group_and_capacity(),
                          f"{{{{{q.NODE_GROUP_NODE_LABEL}}}}} {{{{{q.CAPACITY_TYPE_NODE_LABEL}}}}}"),),
                  "Nodes without a node group are the system and Prometheus nodes.", stacked=True),
        PanelSpec("Pending pods", "short", (Target(q.pending_pods(), "{{namespace}}"),)),
        PanelSpec("Karpenter: nodes launched and disrupted (10m)", "short",
                  (Target(q.karpenter_created("10m"), "launched {{nodepool}}"),
                   Target(q.karpenter_disrupted("10m"), "disrupted: {{reason}}"))),
        PanelSpec("Spot interruptions (10m)", "short", (Target(q.spot_interruptions("10m"), "spot interruptions"),),
                  "Warnings Karpenter received; it drains the node at once."),
        PanelSpec("Cost per hour (estimate)", "currencyUSD", (Target(q.cost_per_hour(), "USD / hour"),),
                  "Nodes at the on-demand prices of `cortex cost`'s table, spot at its estimated discount, plus "
                  "the EKS control plane; no load balancer, NAT, storage or data transfer.", stat=True),
    ]


def _panel(spec: PanelSpec, index: int) -> Any:
    width, height = 12, 8
    pos = dashboard_m.GridPos(h=height, w=width, x=(index % 2) * width, y=(index // 2) * height)
    panel: Any = stat_b.Panel() if spec.stat else timeseries_b.Panel()
    panel = panel.title(spec.title).unit(spec.unit).datasource(_DATASOURCE).grid_pos(pos)
    if spec.description:
        panel = panel.description(spec.description)
    if not spec.stat:
        panel = panel.legend(common_b.VizLegendOptions().show_legend(True).display_mode(
            common_m.LegendDisplayMode.LIST).placement(common_m.LegendPlacement.BOTTOM))
        if spec.stacked:
            panel = panel.stacking(common_b.StackingConfig().mode(common_m.StackingMode.NORMAL))
    for ref, target in zip("ABCDEFGH", spec.targets, strict=False):
        panel = panel.with_target(prometheus_b.Dataquery().expr(target.expr).legend_format(target.legend)
                                  .ref_id(ref).datasource(_DATASOURCE).range())
    return panel


def _dashboard(uid: str, title: str, panels: list[PanelSpec], variables: list[Any]) -> dict[str, Any]:
    board = (dashboard_b.Dashboard(title).uid(uid).tags(["cortex"]).refresh("30s").time("now-1h", "now")
             .timezone("utc").readonly())
    for variable in variables:
        board = board.with_variable(variable)
    for index, spec in enumerate(panels):
        board = board.with_panel(_panel(spec, index))
    encoded: dict[str, Any] = _plain(JSONEncoder().default(board.build()))
    return encoded


def _plain(value: Any) -> Any:
    """``value`` with every SDK model turned into JSON data (the encoder leaves nested models)."""
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return _plain(to_json())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and type(value).__module__.startswith("grafana_foundation_sdk"):
        return value.value  # an enum
    return value


def api_dashboard(namespace: str) -> dict[str, Any]:
    """The per-API dashboard's JSON model (APIs in ``namespace``)."""
    api = (dashboard_b.QueryVariable("api").label("API").datasource(_DATASOURCE)
           .query(f'label_values(cortex:api_max_replicas{{namespace="{namespace}"}}, api)')
           .refresh(dashboard_m.VariableRefresh.ON_TIME_RANGE_CHANGED).include_all(False).multi(False))
    return _dashboard("cortex-api", "Cortex API", api_panels(namespace), [api])


def cluster_dashboard() -> dict[str, Any]:
    """The cluster dashboard's JSON model."""
    return _dashboard("cortex-cluster", "Cortex cluster", cluster_panels(), [])


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """``(panel title, expression)`` of every target of a dashboard's JSON model."""
    return [(panel["title"], target["expr"]) for panel in dashboard.get("panels", []) for target in panel["targets"]]
