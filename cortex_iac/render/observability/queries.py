"""The PromQL of the dashboards and rules, over metrics that exist (names checked live).

Sources, and the labels each query keys on:

- the API pods' Envoy (scrape job :func:`cortex_iac.render.envoy.prometheus_scrape_job`: labels
  ``namespace``, ``pod``, ``api``; cluster ``app`` is the model container). Envoy 1.40 counts a
  queue-full 503 (``upstream_rq_pending_overflow``) in ``upstream_rq_xx{envoy_response_code_class="5"}``
  too (measured: 5 requests on 1 slot + 1 queue place gave 2 x 2xx, 3 x 5xx and 3 overflows), so
  the app's own 5xx are the difference; ``upstream_rq_time`` is in milliseconds, queueing included;
- the serving runtime of the API pods without a sidecar (a handler API, which admits requests
  itself; scrape job :func:`cortex_iac.render.envoy.runtime_scrape_job`, the same three labels, no
  ``envoy_cluster_name``): ``cortex_requests_total{method, status}`` (queue-full 503s included, as
  Envoy's), ``cortex_requests_rejected_total{reason="queue_full"}``, ``cortex_requests_in_flight``
  and ``cortex_request_duration_seconds`` (seconds, queueing included).

  Every per-API request query reads both shapes and unites them series by series (``or``: the two
  never share a label set) before aggregating, so an API whose pods are mid-rollout between the
  shapes counts all of its pods, and one shape without any series leaves the other's result whole
  (a ``-`` or ``+`` of two sums would be empty). The exception is latency: the two histograms'
  buckets are in different units, so each shape gets its own quantile and the higher one is shown
  (see :func:`latency_quantile`);
- kube-state-metrics (``kube_deployment_*``, ``kube_pod_*``, ``kube_node_labels`` with the node
  labels allowed in :func:`cortex_iac.render.addons.prometheus_values`), scraped by the chart's
  ``kubernetes-service-endpoints`` job with ``honor_labels`` (its ``namespace`` label is the object's);
- the kubelet's cAdvisor (``container_cpu_usage_seconds_total``, ``container_memory_working_set_bytes``);
- NVIDIA's DCGM exporter on GPU nodes (``DCGM_FI_DEV_GPU_UTIL``, labels ``namespace``/``pod`` of the
  pod using the GPU);
- Karpenter v1.14 (``karpenter_nodeclaims_created_total``, ``karpenter_nodeclaims_disrupted_total``,
  ``karpenter_interruption_received_messages_total{message_type="spot_interrupted"}``);
- KEDA (``keda_scaler_metrics_value``, label ``scaledObject``) for queue depths.

``namespace`` and ``api`` arguments are PromQL label values: a Grafana variable (``$api``) or a
literal name. The recording rules of :mod:`.rules` are named ``cortex:...``.
"""

from __future__ import annotations

from cortex_iac.render.envoy import API_NAME_LABEL

APP_CLUSTER = 'envoy_cluster_name="app"'
# The in-flight gauges of both pod shapes (Envoy's two, the runtime's one), and the matcher that
# keeps Envoy's app cluster and the runtime's series, which have no envoy_cluster_name.
INFLIGHT_METRICS = "envoy_cluster_upstream_rq_active|envoy_cluster_upstream_rq_pending_active|cortex_requests_in_flight"
ANY_SHAPE = 'envoy_cluster_name=~"app|"'
# kube-state-metrics' names of the node labels it is allowed to export (render/addons.py).
NODE_GROUP_NODE_LABEL = "label_cortex_dev_node_group"
CAPACITY_TYPE_NODE_LABEL = "label_karpenter_sh_capacity_type"
INSTANCE_TYPE_NODE_LABEL = "label_node_kubernetes_io_instance_type"
# What kube-state-metrics' --metric-labels-allowlist must name for the queries above.
NODE_LABELS_EXPORTED = ("cortex.dev/node-group", "karpenter.sh/capacity-type", "node.kubernetes.io/instance-type",
                        "karpenter.sh/nodepool")
POD_LABELS_EXPORTED = (API_NAME_LABEL,)
API_POD_LABEL = "label_cortex_dev_api_name"


def envoy(namespace: str, api: str, extra: str = "") -> str:
    """The label matchers of one API's Envoy app-cluster series."""
    return f'namespace="{namespace}",api="{api}",{APP_CLUSTER}' + (f",{extra}" if extra else "")


def runtime(namespace: str, api: str, extra: str = "") -> str:
    """The label matchers of one API's serving-runtime series (pods without a sidecar)."""
    return f'namespace="{namespace}",api="{api}"' + (f",{extra}" if extra else "")


def request_rate_by_class(namespace: str, api: str, window: str) -> str:
    """Requests per second answered, by status class (``envoy_response_code_class``: 2, 4, 5; the
    runtime's ``status`` label gives its first digit)."""
    return f"sum by (envoy_response_code_class) ({requests_by_class_series(envoy(namespace, api), runtime(namespace, api), window)})"


def request_rate(namespace: str, api: str, window: str) -> str:
    """Requests per second answered, every status."""
    return f"sum({requests_series(envoy(namespace, api), runtime(namespace, api), window)})"


def queue_full_rate(namespace: str, api: str, window: str) -> str:
    """503s per second answered because every slot and queue place was taken (by Envoy, or by the
    runtime in a pod without a sidecar)."""
    return f"sum({queue_full_series(envoy(namespace, api), runtime(namespace, api), window)})"


def app_error_rate(namespace: str, api: str, window: str) -> str:
    """5xx per second that were not queue-full 503s: the app's own, its timeouts (504) and failed
    connections to it. Both shapes export their 5xx series from the first 5xx on (before: no value,
    when no pod of either shape has answered one), their queue-full counters from the start."""
    return (f"sum({server_errors_series(envoy(namespace, api), runtime(namespace, api), window)}) - "
            f"sum({queue_full_series(envoy(namespace, api), runtime(namespace, api), window)})")


def latency_quantile(namespace: str, api: str, quantile: float, window: str) -> str:
    """The ``quantile`` of request latency in seconds, queueing included: Envoy's histogram
    (milliseconds) and the runtime's (seconds).

    Each shape's quantile is computed over its own pods, and the higher is the result. With the
    API's pods all of one shape (the usual case) it is that shape's quantile. Mid-rollout between
    the shapes it is the slower shape's quantile, never below the quantile over all the pods (the
    quantile of a mix lies between those of its parts), so a latency alert does not miss a slow
    shape; it overstates the API's quantile while the slower shape serves a small share.
    """
    return f"max({latency_by_shape(quantile, envoy(namespace, api), runtime(namespace, api), window)})"


def in_flight(namespace: str, api: str) -> str:
    """Requests in the API's pods now (processing + queued), all pods of both shapes: what the
    autoscaler averages (:func:`cortex_iac.render.envoy.inflight_query`)."""
    return f'sum({{__name__=~"{INFLIGHT_METRICS}",namespace="{namespace}",api="{api}",{ANY_SHAPE}}})'


# --- both shapes, series by series (shared with the recording rules of .rules) ---------------------------
# ``envoy_matchers`` and ``runtime_matchers`` are label matchers without braces (``runtime_matchers``
# may be empty); each result is an instant vector of per-pod series of both shapes, to aggregate.


def _matchers(*parts: str) -> str:
    return ",".join(p for p in parts if p)


def _selector(metric: str, *matchers: str) -> str:
    joined = _matchers(*matchers)
    return f"{metric}{{{joined}}}" if joined else metric


def requests_series(envoy_matchers: str, runtime_matchers: str, window: str) -> str:
    """Per-pod request rates, every status, of both shapes."""
    return (f"rate({_selector('envoy_cluster_upstream_rq_xx', envoy_matchers)}[{window}]) or "
            f"rate({_selector('cortex_requests_total', runtime_matchers)}[{window}])")


def requests_by_class_series(envoy_matchers: str, runtime_matchers: str, window: str) -> str:
    """:func:`requests_series` with the runtime's ``status`` class as ``envoy_response_code_class``."""
    return (f"rate({_selector('envoy_cluster_upstream_rq_xx', envoy_matchers)}[{window}]) or "
            f"label_replace(rate({_selector('cortex_requests_total', runtime_matchers)}[{window}]), "
            '"envoy_response_code_class", "$1", "status", "([0-9])[0-9][0-9]")')


def server_errors_series(envoy_matchers: str, runtime_matchers: str, window: str) -> str:
    """Per-pod 5xx rates of both shapes, queue-full 503s included."""
    five = _selector("envoy_cluster_upstream_rq_xx", envoy_matchers, 'envoy_response_code_class="5"')
    status = _selector("cortex_requests_total", runtime_matchers, 'status=~"5.."')
    return f"rate({five}[{window}]) or rate({status}[{window}])"


def queue_full_series(envoy_matchers: str, runtime_matchers: str, window: str) -> str:
    """Per-pod queue-full 503 rates of both shapes."""
    overflow = _selector("envoy_cluster_upstream_rq_pending_overflow", envoy_matchers)
    rejected = _selector("cortex_requests_rejected_total", runtime_matchers, 'reason="queue_full"')
    return f"rate({overflow}[{window}]) or rate({rejected}[{window}])"


def latency_by_shape(quantile: float, envoy_matchers: str, runtime_matchers: str, window: str,
                     by: tuple[str, ...] = ()) -> str:
    """The ``quantile`` in seconds of each shape's histogram summed ``by`` those labels (and ``le``),
    one series per shape: grouped by ``job`` too (each shape has its own scrape job), so the two keep
    distinct label sets through the ``or``, for the caller's ``max``. Envoy's is in milliseconds.
    A shape without requests in the window gives NaN, which ``max`` ignores beside a number."""
    group = ", ".join((*by, "le", "job"))
    return (f"histogram_quantile({quantile}, sum by ({group}) "
            f"(rate({_selector('envoy_cluster_upstream_rq_time_bucket', envoy_matchers)}[{window}]))) / 1000 or "
            f"histogram_quantile({quantile}, sum by ({group}) "
            f"(rate({_selector('cortex_request_duration_seconds_bucket', runtime_matchers)}[{window}])))")


def in_flight_target(namespace: str, api: str) -> str:
    """``target_in_flight`` x ready replicas: the in-flight total the autoscaler aims for now."""
    return (f'cortex:api_target_in_flight{{namespace="{namespace}",api="{api}"}} * on(namespace, api) '
            f'cortex:api_replicas_ready{{namespace="{namespace}",api="{api}"}}')


def replicas(namespace: str, api: str, which: str) -> str:
    """The API's Deployment replicas: ``desired`` (spec) or ``ready``, from kube-state-metrics."""
    metric = {"desired": "kube_deployment_spec_replicas", "ready": "kube_deployment_status_replicas_ready"}[which]
    return f'sum({metric}{{namespace="{namespace}",deployment="{api}"}})'


def replica_bound(namespace: str, api: str, which: str) -> str:
    """The API's ``min_replicas`` or ``max_replicas`` (``which``: min or max), a constant of its rules."""
    return f'cortex:api_{which}_replicas{{namespace="{namespace}",api="{api}"}}'


def api_pods(namespace: str, api: str) -> str:
    """The API's pods as kube-state-metrics' ``kube_pod_labels`` (1 per pod), to join others on ``pod``."""
    return f'kube_pod_labels{{namespace="{namespace}",{API_POD_LABEL}="{api}"}}'


def restarts(namespace: str, api: str, window: str) -> str:
    """Container restarts of the API's pods over ``window``, by container."""
    return (f'sum by (container) (increase(kube_pod_container_status_restarts_total{{namespace="{namespace}"}}[{window}]) '
            f"* on(namespace, pod) group_left() {api_pods(namespace, api)})")


def oom_kills(namespace: str, api: str) -> str:
    """Containers of the API's pods whose last termination was an OOM kill, by container."""
    return (f'sum by (container) (kube_pod_container_status_last_terminated_reason{{namespace="{namespace}",'
            f'reason="OOMKilled"}} * on(namespace, pod) group_left() {api_pods(namespace, api)})')


def cpu_used(namespace: str, api: str, window: str) -> str:
    """CPU cores used by the API's containers, by container (cAdvisor through the kubelet)."""
    return (f'sum by (container) (rate(container_cpu_usage_seconds_total{{namespace="{namespace}",container!="",'
            f'container!="POD"}}[{window}]) * on(namespace, pod) group_left() {api_pods(namespace, api)})')


def resource_requested(namespace: str, api: str, resource: str) -> str:
    """What the API's containers request of ``resource`` (cpu, memory, nvidia_com_gpu), by container."""
    return (f'sum by (container) (kube_pod_container_resource_requests{{namespace="{namespace}",resource="{resource}"}} '
            f"* on(namespace, pod) group_left() {api_pods(namespace, api)})")


def memory_used(namespace: str, api: str) -> str:
    """Working-set bytes of the API's containers, by container (what the OOM killer weighs)."""
    return (f'sum by (container) (container_memory_working_set_bytes{{namespace="{namespace}",container!="",'
            f'container!="POD"}} * on(namespace, pod) group_left() {api_pods(namespace, api)})')


def gpu_utilization(namespace: str, api: str) -> str:
    """GPU utilization (percent) of the API's pods, by pod: DCGM exporter (GPU node groups only)."""
    return (f'avg by (pod) (DCGM_FI_DEV_GPU_UTIL{{namespace="{namespace}"}} '
            f"* on(namespace, pod) group_left() {api_pods(namespace, api)})")


def queue_depth(api: str) -> str:
    """Messages waiting in an AsyncAPI's queue as KEDA's scaler last read them (ScaledObject named
    after the API; an assumption until the AsyncAPI renderer exists: see docs/observability.md)."""
    return f'max(keda_scaler_metrics_value{{scaledObject="{api}"}})'


# --- cluster ----------------------------------------------------------------------------------------


def nodes_by_group_and_capacity() -> str:
    """Nodes by node group and capacity type (spot / on-demand), from their labels."""
    return f"count by ({NODE_GROUP_NODE_LABEL}, {CAPACITY_TYPE_NODE_LABEL}) (kube_node_labels)"


def pending_pods() -> str:
    """Pods waiting to be scheduled or started, by namespace."""
    return 'sum by (namespace) (kube_pod_status_phase{phase="Pending"})'


def karpenter_created(window: str) -> str:
    """NodeClaims Karpenter created over ``window``, by node pool."""
    return f"sum by (nodepool) (increase(karpenter_nodeclaims_created_total[{window}]))"


def karpenter_disrupted(window: str) -> str:
    """NodeClaims Karpenter disrupted over ``window``, by reason (drift, empty, underutilized, interruption...)."""
    return f"sum by (reason) (increase(karpenter_nodeclaims_disrupted_total[{window}]))"


def spot_interruptions(window: str) -> str:
    """Spot interruption warnings Karpenter received over ``window`` (it drains the node at once)."""
    return f'sum(increase(karpenter_interruption_received_messages_total{{message_type="spot_interrupted"}}[{window}]))'


def cost_per_hour() -> str:
    """The cluster's cost per hour in USD, a recording rule of :mod:`.rules` (the ``cortex cost`` table)."""
    return "cortex:cluster_cost_dollars_per_hour"
