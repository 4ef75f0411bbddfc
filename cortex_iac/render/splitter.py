"""A Cortex TrafficSplitter as Kubernetes objects (pure; plain dicts).

One endpoint in front of several RealtimeAPIs: each request goes to one target picked by weight, and
a copy of ``weight`` percent of the requests goes to the shadow target (if any), whose answer is
ignored. Cortex did this with an Istio VirtualService; here it is a small Envoy Deployment, the
*router*, behind the shared ALB (why not the ALB's weighted target groups nor Gateway API:
docs/design.md, "TrafficSplitter"):

    ALB --(endpoint, prefix stripped)--> router Service --> router pods (Envoy, 2 replicas)
        --(weighted_clusters)--> <api>.<namespace>.svc:8888          always-on target: its Envoys
                             \\-> keda-add-ons-http-interceptor-proxy.keda:8080, Host <api>.<namespace>
                                                                      scale-to-zero target, held
        --(request_mirror_policies, fire and forget)--> the shadow, the same way

Objects (:func:`splitter_objects`): the router's Envoy config in a ConfigMap named by its content,
a Deployment (checksum annotation: a new config rolls the pods, which drain like an API's sidecar),
a Service, a PodDisruptionBudget and an Ingress on the shared ALB. A weight change, or adding or
removing a target, changes only the ConfigMap and the Deployment's pod template: no target's
object. The router's Envoy config is :func:`router_config`.

Rendering needs no target spec, only :class:`SplitTarget` tuples (``name, weight, shadow,
scale_to_zero``); :func:`targets_of` makes them from the RealtimeAPI specs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from cortex_iac.errors import CortexError, SpecError
from cortex_iac.render import envoy, karpenter, routing, workload
from cortex_iac.render.envoy import (
    ADMIN_PORT,
    LISTEN_PORT,
    METRICS_PORT,
    METRICS_PORT_NAME,
    READINESS_PATH,
)
from cortex_iac.render.workload import API_NAMESPACE, selector_labels
from cortex_iac.specs.api import RealtimeApiSpec
from cortex_iac.specs.deployment import deployment_problems
from cortex_iac.specs.kinds import ENVOY_SIDECAR
from cortex_iac.versions import ENVOY_IMAGE

if TYPE_CHECKING:
    from cortex_iac.specs import ClusterSpec, TrafficSplitterSpec

__all__ = [
    "COMPONENT", "ENVOY_CONFIG_CHECKSUM", "MATCHES", "REPLICAS", "ROUTE_TIMEOUT_SECONDS", "SplitTarget",
    "SplitterObjects", "config_map_name", "interceptor_upstream", "labels", "match_of", "render_splitter",
    "router_config", "splitter_objects", "targets_of", "upstream_of",
]

# The component label of a TrafficSplitter's objects (cortex_iac.render.workload.labels).
COMPONENT = "traffic-splitter"
ROUTER_CONTAINER = "router"
# Two router pods: one may be rolled, evicted or lost with its node while the other serves.
REPLICAS = 2
# Router workers: the weighted pick needs no exact per-worker limit (unlike the sidecar's circuit
# breakers, see envoy.envoy_args), so the router uses two threads of its pod's CPU.
ROUTER_WORKERS = 2
# Pod-template annotation: sha256 of the router's Envoy config (same key as the API pods').
ENVOY_CONFIG_CHECKSUM = "cortex.dev/envoy-config-sha256"
ENVOY_CONFIG_VOLUME = "envoy-config"
ENVOY_CONFIG_DIR = "/etc/envoy"
ENVOY_CONFIG_FILE = "envoy.yaml"
PROXY_PORT_NAME = "http"
ENVOY_UID = envoy.ENVOY_UID  # see cortex_iac.render.envoy
# Cortex matched the endpoint exactly; `prefix` (our extension) also routes its sub-paths.
MATCHES = ("exact", "prefix")
# The router never cuts a request the ALB lets through (its idle timeout, 300 s): a request to a
# scale-to-zero target may be held that long by the interceptor, and each target's own Envoy
# enforces its pod.request_timeout (answering 504, which the router passes on). Also the drain bound.
ROUTE_TIMEOUT_SECONDS = routing.ALB_IDLE_TIMEOUT_SECONDS
# Primary targets: the router imposes no limit of its own (the targets' sidecars answer 503 beyond
# max_concurrency + max_queue_length); these only bound what one router pod holds.
PRIMARY_MAX_REQUESTS = 65536
# The shadow: at most this many copies in flight per router pod (Envoy's own default); a slow or
# hung shadow makes further copies fail at once (counter upstream_rq_pending_overflow of its
# cluster), never the primary answers.
SHADOW_MAX_REQUESTS = 1024
# Idle connections to a target are closed after this long: below the API sidecars' own idle timeout
# (Envoy's default, 1 h) and below what Go's net/http keeps by default (no limit) in the interceptor.
UPSTREAM_IDLE_TIMEOUT_SECONDS = 30
# The admin cluster's name can never be an API name (API names are DNS labels, no '_').
_ADMIN_CLUSTER = "_admin"
_INGRESS = "ingress"  # the traffic listener; envoy.drain_plan's preStop polls its stats
_METRICS = "metrics"
_CLUSTER_DOMAIN = "svc.cluster.local"
_TYPE = "type.googleapis.com/envoy.extensions.filters"
_ANNOTATION = "alb.ingress.kubernetes.io/"


class SplitTarget(NamedTuple):
    """One target of a splitter: the RealtimeAPI's ``name``, its ``weight`` (percent of requests;
    for the shadow, percent mirrored), whether it is the ``shadow``, and whether it scales to zero
    (``autoscaling.min_replicas: 0``, reached through the KEDA HTTP interceptor)."""

    name: str
    weight: int
    shadow: bool = False
    scale_to_zero: bool = False


Upstream = tuple[str, int]


def match_of(spec: TrafficSplitterSpec) -> str:
    """``networking.match`` of the splitter: ``exact`` (Cortex's behaviour, the default) or ``prefix``."""
    match = getattr(spec.networking, "match", None) or "exact"
    if match not in MATCHES:
        raise CortexError(f"TrafficSplitter {spec.name!r}: networking.match {match!r} is not one of {', '.join(MATCHES)}")
    return str(match)


def targets_of(spec: TrafficSplitterSpec, apis_by_name: Mapping[str, RealtimeApiSpec]) -> list[SplitTarget]:
    """The :class:`SplitTarget` of each of the splitter's ``apis``, in the spec's order, from the
    targets' specs (``apis_by_name``: name -> RealtimeApiSpec; more APIs may be given). A target that
    is missing or no RealtimeAPI raises ``SpecError`` with the line ``cortex validate`` gives."""
    given = [api for api in apis_by_name.values() if api.name in {t.name for t in spec.apis}]
    lines = [line for line in deployment_problems(None, [*given, spec], action="validate")
             if line.startswith(spec.where)]
    if lines:
        raise SpecError(lines)
    out = []
    for target in spec.apis:
        api = apis_by_name[target.name]
        assert isinstance(api, RealtimeApiSpec)
        out.append(SplitTarget(target.name, target.weight, target.shadow, api.autoscaling.min_replicas == 0))
    return out


def interceptor_upstream(service: str = routing.INTERCEPTOR_PROXY_SERVICE) -> Upstream:
    """Address of the KEDA HTTP add-on's interceptor proxy: ``<service>.keda.svc.cluster.local:8080``."""
    return f"{service}.{routing.KEDA_NAMESPACE}.{_CLUSTER_DOMAIN}", routing.INTERCEPTOR_PROXY_PORT


def upstream_of(target: SplitTarget, namespace: str, interceptor: Upstream | None = None) -> Upstream:
    """Where the router sends ``target``'s requests: the API's Service (its Envoys, port 8888), or for
    a scale-to-zero target the interceptor (default :func:`interceptor_upstream`), which holds them
    until a replica is ready."""
    if target.scale_to_zero:
        return interceptor if interceptor is not None else interceptor_upstream()
    return f"{target.name}.{namespace}.{_CLUSTER_DOMAIN}", LISTEN_PORT


def router_config(
    targets: Sequence[SplitTarget | tuple[str, int, bool, bool]],
    *,
    namespace: str = API_NAMESPACE,
    match: str = "exact",
    upstreams: Mapping[str, Upstream] | None = None,
    interceptor: Upstream | None = None,
    listen_port: int = LISTEN_PORT,
    metrics_port: int = METRICS_PORT,
    admin_port: int = ADMIN_PORT,
    listen_address: str = "0.0.0.0",
    request_timeout_seconds: int = ROUTE_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Envoy v3 bootstrap (static resources only) of the router.

    * listener ``ingress`` on ``listen_port`` (8888): one route, ``path: /`` (``match`` exact: the
      ALB forwards only the endpoint itself, rewritten to ``/``) or ``prefix: /`` (``match`` prefix:
      the endpoint's sub-paths too, ``/<endpoint>/x`` arriving as ``/x``); anything else is Envoy's
      404. The route picks one non-shadow target by weight (``weighted_clusters``, weight 0 allowed)
      and mirrors ``weight`` percent of the requests to the shadow (``request_mirror_policies``):
      Envoy does not wait for the copy, and its answer, error or timeout never reaches the client.
      :data:`~cortex_iac.render.envoy.READINESS_PATH` is answered by Envoy (503 once draining).
    * one cluster per target, **named after the target API** (Envoy's per-cluster stats, e.g.
      ``envoy_cluster_upstream_rq_xx{envoy_cluster_name="<api>"}``, are the requests and outcomes
      per target, the shadow's included), to its :func:`upstream_of` address, or the one given in
      ``upstreams`` (name -> (host, port); tests point them at 127.0.0.1). A scale-to-zero target's
      requests (and copies) carry the Host ``<api>.<namespace>`` its InterceptorRoute matches.
    * listener ``metrics`` on ``metrics_port`` (15000) passing only ``GET /stats/prometheus`` to the
      admin interface, which listens on ``127.0.0.1:admin_port`` (15001) for the preStop drain.

    No retries (as Cortex v0.42.1, ``retries.attempts: 0``): the route has no retry policy, and the
    ``x-envoy-retry-*`` headers of clients are dropped (they are external, see envoy._listener). The
    route timeout (default 300 s, the ALB's idle timeout) is also the mirror copies' timeout.
    """
    items = [SplitTarget(*t) for t in targets]
    if match not in MATCHES:
        raise CortexError(f"router match: {match!r} is not one of {', '.join(MATCHES)}")
    primaries = [t for t in items if not t.shadow]
    shadows = [t for t in items if t.shadow]
    names = [t.name for t in items]
    if not primaries or sum(t.weight for t in primaries) <= 0:
        raise CortexError(f"router targets: at least one non-shadow target with a weight > 0 is needed, got {items}")
    if len(shadows) > 1 or len(set(names)) != len(names):
        raise CortexError(f"router targets: names must be unique and at most one may be the shadow, got {items}")
    for t in items:
        envoy._check_range(f"weight of {t.name}", t.weight, 0, 100)
    envoy._check_range("request_timeout_seconds", request_timeout_seconds, 1, 24 * 3600)
    ports = {"listen_port": listen_port, "metrics_port": metrics_port, "admin_port": admin_port}
    for port_name, port in ports.items():
        envoy._check_range(port_name, port, 1, 65535)
    if len(set(ports.values())) != len(ports):
        raise CortexError(f"router ports must be distinct, got {ports}")
    addresses = dict(upstreams or {})
    unknown = sorted(set(addresses) - set(names))
    if unknown:
        raise CortexError(f"router upstreams: {unknown} are not targets ({', '.join(names)})")

    def host_rewrite(t: SplitTarget) -> dict[str, str]:
        # The interceptor routes by Host: the one the target's InterceptorRoute matches.
        return {"host_rewrite_literal": routing.interceptor_host(t.name, namespace)} if t.scale_to_zero else {}

    action: dict[str, Any] = {
        "weighted_clusters": {"clusters": [{"name": t.name, "weight": t.weight, **host_rewrite(t)} for t in primaries]},
        "timeout": f"{request_timeout_seconds}s",
    }
    for t in shadows:
        action["request_mirror_policies"] = [{
            "cluster": t.name,
            # Cortex: mirror percentage = the shadow's weight.
            "runtime_fraction": {"default_value": {"numerator": t.weight, "denominator": "HUNDRED"}},
            # Keep the Host as is (Envoy would append "-shadow"), or the interceptor's one.
            "disable_shadow_host_suffix_append": True,
            **host_rewrite(t),
        }]
    route_match = {"path": "/"} if match == "exact" else {"prefix": "/"}
    readiness = envoy.readiness_filter()
    metrics_routes = envoy.metrics_listener_routes(_ADMIN_CLUSTER)
    clusters = [
        _target_cluster(t.name, *addresses.get(t.name, upstream_of(t, namespace, interceptor)),
                        SHADOW_MAX_REQUESTS if t.shadow else PRIMARY_MAX_REQUESTS)
        for t in items
    ]
    clusters.append({
        "name": _ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": _ADMIN_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": envoy._socket_address("127.0.0.1", admin_port)}}]}]},
    })
    return {
        "admin": {"address": envoy._socket_address("127.0.0.1", admin_port)},
        "static_resources": {
            "listeners": [
                # INBOUND: the preStop's `drain_listeners?inboundonly` closes this one only.
                envoy._listener(_INGRESS, listen_address, listen_port, [{"match": route_match, "route": action}],
                                [readiness], traffic_direction="INBOUND"),
                envoy._listener(_METRICS, listen_address, metrics_port, metrics_routes, []),
            ],
            "clusters": clusters,
        },
    }


def _target_cluster(name: str, host: str, port: int, max_requests: int) -> dict[str, Any]:
    envoy._check_range(f"port of {name}", port, 1, 65535)
    return {
        "name": name,
        # A Service's DNS name (one ClusterIP; kube-proxy spreads the connections over the pods),
        # re-resolved every 5 s (Envoy's default).
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": envoy._socket_address(host, port)}}]}]},
        "circuit_breakers": {"thresholds": [{
            "priority": "DEFAULT",
            "max_connections": max_requests,
            "max_pending_requests": max_requests,
            "max_requests": max_requests,
            "max_retries": 0,
        }]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                # Close idle connections before the upstream does (the keep-alive race).
                "common_http_protocol_options": {"idle_timeout": f"{UPSTREAM_IDLE_TIMEOUT_SECONDS}s"},
                "explicit_http_config": {"http_protocol_options": {}},
            }
        },
    }


def router_args(config_path: str, workers: int = ROUTER_WORKERS) -> list[str]:
    """The router's Envoy arguments: :func:`cortex_iac.render.envoy.envoy_args` with ``workers`` threads."""
    args = envoy.envoy_args(config_path)
    args[args.index("--concurrency") + 1] = str(workers)
    return args


def labels(name: str) -> dict[str, str]:
    """Labels of every object of the splitter (its router pods too)."""
    return workload.labels(name, COMPONENT)


def config_map_name(name: str, config_text: str) -> str:
    """``<splitter>-envoy-<first 10 hex digits of the config's sha256>``: a new config is a new
    ConfigMap, created before the old one goes (see cortex_iac.render.realtime.envoy_config_map_name)."""
    return f"{name}-envoy-{workload.sha256(config_text)[:10]}"


@dataclass(frozen=True)
class SplitterObjects:
    """Every Kubernetes object of one TrafficSplitter, by role."""

    envoy_config: dict[str, Any]
    deployment: dict[str, Any]
    service: dict[str, Any]
    pod_disruption_budget: dict[str, Any]
    ingress: dict[str, Any]
    router_config: dict[str, Any]

    def all(self) -> list[dict[str, Any]]:
        """The Kubernetes objects in apply order (the route to the router last)."""
        return [self.envoy_config, self.deployment, self.service, self.pod_disruption_budget, self.ingress]


def splitter_objects(
    spec: TrafficSplitterSpec,
    targets: Sequence[SplitTarget | tuple[str, int, bool, bool]],
    namespace: str = API_NAMESPACE,
    *,
    https: bool = False,
    upstreams: Mapping[str, Upstream] | None = None,
    interceptor: Upstream | None = None,
    deregistration_seconds: int = envoy.DEFAULT_DEREGISTRATION_SECONDS,
) -> SplitterObjects:
    """Every object of the splitter ``spec`` routing to ``targets`` (:class:`SplitTarget` tuples, the
    spec's ``apis`` with whether each scales to zero; see :func:`targets_of`) in ``namespace``.

    ``https``: the shared ALB has a certificate. ``upstreams`` / ``interceptor``: addresses other
    than the Services' (see :func:`router_config`). ``deregistration_seconds`` (default 15): how long
    a terminating router pod keeps serving while the ALB deregisters it (see envoy.drain_plan).
    """
    items = [SplitTarget(*t) for t in targets]
    expected = [(t.name, t.weight, t.shadow) for t in spec.apis]
    if [(t.name, t.weight, t.shadow) for t in items] != expected:
        raise CortexError(f"TrafficSplitter {spec.name!r}: targets {items} are not the spec's apis {expected}")
    name = spec.name
    config = router_config(items, namespace=namespace, match=match_of(spec), upstreams=upstreams,
                           interceptor=interceptor)
    text = envoy.render_envoy_yaml(config)
    drain = envoy.drain_plan(request_timeout_seconds=ROUTE_TIMEOUT_SECONDS, deregistration_seconds=deregistration_seconds)
    meta: dict[str, Any] = {"namespace": namespace, "labels": labels(name)}
    config_name = config_map_name(name, text)
    config_map: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_name, **meta},
        "data": {ENVOY_CONFIG_FILE: text},
    }
    return SplitterObjects(
        envoy_config=config_map,
        deployment=_deployment(name, namespace, config_name, workload.sha256(text), drain),
        service={
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, **meta},
            "spec": {
                "type": "ClusterIP",
                "selector": selector_labels(name),
                "ports": [{"name": PROXY_PORT_NAME, "port": LISTEN_PORT, "targetPort": PROXY_PORT_NAME, "protocol": "TCP"}],
            },
        },
        pod_disruption_budget={
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, **meta},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(name)},
                     "unhealthyPodEvictionPolicy": "AlwaysAllow"},
        },
        ingress=splitter_ingress(spec, namespace, https=https,
                                 deregistration_delay_seconds=drain.app_prestop_sleep_seconds),
        router_config=config,
    )


def _deployment(name: str, namespace: str, config_map: str, checksum: str, drain: envoy.DrainPlan) -> dict[str, Any]:
    container = {
        "name": ROUTER_CONTAINER,
        "image": ENVOY_IMAGE,
        "command": ["envoy"],
        "args": router_args(f"{ENVOY_CONFIG_DIR}/{ENVOY_CONFIG_FILE}"),
        "ports": [
            {"name": PROXY_PORT_NAME, "containerPort": LISTEN_PORT, "protocol": "TCP"},
            {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": READINESS_PATH, "port": LISTEN_PORT},
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "failureThreshold": 2,
        },
        "livenessProbe": envoy.liveness_probe(METRICS_PORT),
        "lifecycle": {"preStop": {"exec": {"command": list(drain.envoy_prestop_command)}}},
        "resources": ENVOY_SIDECAR.to_k8s(),
        "securityContext": workload.locked_down(ENVOY_UID),
        "volumeMounts": [{"name": ENVOY_CONFIG_VOLUME, "mountPath": ENVOY_CONFIG_DIR, "readOnly": True}],
    }
    spread = [
        {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": selector_labels(name)}}
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(name)},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": selector_labels(name)},
            # A new pod first (and, through the namespace's readiness gate, registered in the ALB),
            # then an old one drains: never fewer than REPLICAS serving.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(name), "annotations": {ENVOY_CONFIG_CHECKSUM: checksum}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": drain.termination_grace_period_seconds,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": ENVOY_CONFIG_VOLUME, "configMap": {"name": config_map}}],
                    # On the Cortex node groups (never the system nodes); without tolerations, so
                    # on the CPU groups, away from tainted accelerator nodes.
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": karpenter.NODE_GROUP_LABEL, "operator": "Exists"}]}]}}},
                    "topologySpreadConstraints": spread,
                },
            },
        },
    }


def splitter_ingress(
    spec: TrafficSplitterSpec, namespace: str, *, https: bool, deregistration_delay_seconds: int
) -> dict[str, Any]:
    """The Ingress that sends the splitter's endpoint to the router Service, on the shared ALB (the
    IngressClass of :func:`cortex_iac.render.routing.ingress_class_objects`), as
    :func:`cortex_iac.render.routing.api_ingress` does for an API: ``match`` exact is an ``Exact``
    path rewritten to ``/``; prefix a ``Prefix`` path with the endpoint stripped (``/<endpoint>/x``
    -> ``/x``). Health check: the router's ready path; deregistration delay: its drain."""
    endpoint = spec.networking.endpoint
    literal = endpoint.replace(".", "[.]")  # endpoints hold letters, digits and _ - . / only
    if match_of(spec) == "exact":
        path_type, rewrite = "Exact", {"regex": f"^{literal}$", "replace": "/"}
    else:
        path_type, rewrite = "Prefix", {"regex": f"^{literal}/?(.*)$", "replace": "/$1"}
    service = spec.name
    listen_ports: list[dict[str, int]] = [{"HTTP": 80}] + ([{"HTTPS": 443}] if https else [])
    annotations = {
        _ANNOTATION + "listen-ports": json.dumps(listen_ports),
        # Ordered with the API Ingresses of the same ALB (a router is a direct route).
        _ANNOTATION + "group.order": str(routing.group_order(endpoint, through_interceptor=False)),
        _ANNOTATION + "target-group-attributes": f"deregistration_delay.timeout_seconds={deregistration_delay_seconds}",
        _ANNOTATION + "healthcheck-path": READINESS_PATH,
        _ANNOTATION + f"transforms.{service}": json.dumps(
            [{"type": "url-rewrite", "urlRewriteConfig": {"rewrites": [rewrite]}}]),
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": routing.ingress_name(spec.name), "namespace": namespace, "labels": labels(spec.name),
                     "annotations": annotations},
        "spec": {
            "ingressClassName": routing.INGRESS_CLASS,
            "rules": [{"http": {"paths": [{
                "path": endpoint,
                "pathType": path_type,
                "backend": {"service": {"name": service, "port": {"number": LISTEN_PORT}}},
            }]}}],
        },
    }


def render_splitter(
    spec: TrafficSplitterSpec,
    apis_by_name: Mapping[str, RealtimeApiSpec],
    cluster_spec: ClusterSpec | None = None,
) -> list[dict[str, Any]]:
    """Every Kubernetes object of the splitter, for ``cortex render`` (no Pulumi involved).

    ``apis_by_name``: the RealtimeAPI specs of its targets by name (others may be given);
    ``cluster_spec`` (default none) says whether the shared ALB has a certificate."""
    https = cluster_spec is not None and bool(cluster_spec.ssl_certificate_arn)
    return splitter_objects(spec, targets_of(spec, apis_by_name), https=https).all()
