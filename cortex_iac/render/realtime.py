"""A Cortex RealtimeAPI as Kubernetes objects (pure; plain dicts).

:func:`render_api` gives every object of one API: ServiceAccount, Envoy ConfigMap, Deployment
(the user's containers + the Envoy sidecar ``proxy``), for a container that gives a ``handler``
the handler's ConfigMap (the container runs the serving runtime image), Service (port 8888),
PodDisruptionBudget, KEDA ScaledObject, for ``min_replicas: 0`` an InterceptorRoute, and the
Ingress on the shared load balancer. The AWS side (an IAM role through EKS Pod Identity) is
:func:`iam_policy`; the Pulumi component wires it all (``cortex_iac.components.realtime_api``).

A pod whose container gives a ``handler`` has no sidecar and no Envoy ConfigMap: the serving runtime
listens on the pod's traffic port 8888 and its metrics port 15000 itself and admits requests as the
sidecar would (:func:`direct_traffic`; docs/design.md, "Serving runtime: where a call runs, and the
sidecar's cost"). Image APIs keep the sidecar, whose limits their servers do not have.

All APIs share the namespace :data:`API_NAMESPACE` (:func:`render_namespace`, created once per
cluster). Why shared and not one namespace per API: docs/design.md, "Routing".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cortex_iac.render import autoscaling, envoy, routing, workload
from cortex_iac.render.workload import (
    API_NAMESPACE,
    HANDLER_DIR,
    HANDLER_VOLUME,
    RUNTIME_COMMAND,
    RUNTIME_UID,
    SHM_VOLUME,
    TMP_VOLUME,
    DirectTraffic,
    HandlerContainer,
    handler_config_map_name,
    iam_policy,
    render_namespace,
    selector_labels,
)
from cortex_iac.runtime_contract import READINESS_PATH
from cortex_iac.specs.kinds import ENVOY_SIDECAR, runtime_serves_traffic
from cortex_iac.specs.pod import MAX_HANDLER_BYTES
from cortex_iac.versions import ENVOY_IMAGE

if TYPE_CHECKING:
    from cortex_iac.specs import ClusterSpec, NodeGroupSpec, RealtimeApiSpec

__all__ = [
    "API_NAMESPACE", "COMPONENT", "ENVOY_CONFIG_CHECKSUM", "HANDLER_DIR", "HANDLER_VOLUME", "MAX_HANDLER_BYTES",
    "RUNTIME_COMMAND", "RUNTIME_UID", "SHM_VOLUME", "TMP_VOLUME", "ApiContext", "ApiObjects", "api_objects",
    "deployment", "envoy_config_map_name", "handler_config_map_name", "iam_policy", "labels", "pod_envoy_config",
    "pod_disruption_budget", "render_api", "render_namespace", "selector_labels", "service", "service_account",
]

# The component label of a RealtimeAPI's objects.
COMPONENT = "realtime-api"
# The sidecar's container name: Cortex's own proxy container had it, so the specs reserve it.
PROXY_CONTAINER = "proxy"
PROXY_PORT_NAME = "http"
ENVOY_CONFIG_VOLUME = "envoy-config"
ENVOY_CONFIG_DIR = "/etc/envoy"
ENVOY_CONFIG_FILE = "envoy.yaml"
# Pod-template annotation holding the sha256 of the Envoy config: a config change changes the
# template, so the Deployment rolls its pods (Envoy reads its bootstrap only at start). The
# ConfigMap's name carries the start of the same hash (see envoy_config_map_name).
ENVOY_CONFIG_CHECKSUM = "cortex.dev/envoy-config-sha256"
# Pulumi's await annotations (pulumi-kubernetes >= 4.18). Pulumi waits on a create or update of an
# object carrying WAIT_FOR until its expressions hold (10 minutes, then the update fails), instead of
# its built-in check; SKIP_AWAIT makes it not wait at all.
WAIT_FOR = "pulumi.com/waitFor"
SKIP_AWAIT = "pulumi.com/skipAwait"
# A Deployment's status omits readyReplicas while it is 0: this holds once one pod is ready.
ONE_POD_READY = "jsonpath={.status.readyReplicas}"
# Deployment annotation with the API's min_replicas, so that changing it updates the Deployment and
# Pulumi's wait runs again (the replica count itself is KEDA's; see routing_gate).
MIN_REPLICAS_ANNOTATION = "cortex.dev/min-replicas"
# The uid Envoy runs as (cortex_iac.render.envoy.ENVOY_UID). The container runs envoy directly,
# bypassing the image's entrypoint, which would otherwise start as root to switch users.
ENVOY_UID = envoy.ENVOY_UID
# The sidecar's requests (cortex_iac.specs.kinds, where the node-group fit check adds them too).
ENVOY_RESOURCES = ENVOY_SIDECAR.to_k8s()


@dataclass(frozen=True)
class ApiContext:
    """What an API's objects depend on besides its own spec.

    ``node_groups``: the cluster's node groups (for node affinity, tolerations and the fit check);
    ``None`` when unknown (rendering without a cluster spec): then pods go to any Cortex node
    group, and only the accelerators the pods request are tolerated. ``https``: the cluster's load
    balancer has a TLS certificate. ``namespace`` defaults to :data:`API_NAMESPACE`,
    ``prometheus_address`` to :data:`cortex_iac.render.autoscaling.PROMETHEUS_ADDRESS`.
    ``runtime_image``: the serving runtime image (built from ``cortex_iac/serving/Dockerfile``)
    that containers giving a ``handler`` run; ``None`` (default): such containers are refused.
    """

    node_groups: tuple[NodeGroupSpec, ...] | None = None
    https: bool = False
    namespace: str = API_NAMESPACE
    prometheus_address: str = autoscaling.PROMETHEUS_ADDRESS
    runtime_image: str | None = None

    @classmethod
    def of_cluster(cls, cluster: ClusterSpec | None, runtime_image: str | None = None) -> ApiContext:
        """The context of APIs on a cluster of this spec (or the cluster-less default for None),
        with ``runtime_image`` (default none)."""
        if cluster is None:
            return cls(runtime_image=runtime_image)
        return cls(node_groups=tuple(cluster.node_groups), https=bool(cluster.ssl_certificate_arn),
                   runtime_image=runtime_image)


@dataclass(frozen=True)
class ApiObjects:
    """Every Kubernetes object of one RealtimeAPI, by role (``interceptor_route`` is None unless the
    API scales to zero, ``handler_source`` unless a container gives a handler, ``envoy_config`` when
    one does: that pod has no sidecar)."""

    service_account: dict[str, Any]
    envoy_config: dict[str, Any] | None
    deployment: dict[str, Any]
    service: dict[str, Any]
    pod_disruption_budget: dict[str, Any]
    scaled_object: dict[str, Any]
    ingress: dict[str, Any]
    interceptor_route: dict[str, Any] | None = None
    iam_policy: dict[str, Any] | None = None
    handler_source: dict[str, Any] | None = None

    def all(self) -> list[dict[str, Any]]:
        """The objects in apply order (what a pod needs first, the route to it last)."""
        objects = [self.service_account]
        if self.envoy_config is not None:
            objects.append(self.envoy_config)
        if self.handler_source is not None:
            objects.append(self.handler_source)
        objects += [self.deployment, self.service, self.pod_disruption_budget, self.scaled_object]
        if self.interceptor_route is not None:
            objects.append(self.interceptor_route)
        objects.append(self.ingress)
        return objects


def render_api(
    spec: RealtimeApiSpec,
    cluster_spec: ClusterSpec | None = None,
    *,
    runtime_image: str | None = None,
    handler_sources: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every Kubernetes object of a RealtimeAPI, for ``cortex render`` (no Pulumi involved).

    With ``cluster_spec`` the pods are placed on the API's ``node_groups`` (all of the cluster's
    when none are given), preferring higher-priority groups, and the API must fit some group's
    instance type; without it see :class:`ApiContext`. A container giving a ``handler`` needs
    ``runtime_image`` and its file's text in ``handler_sources`` (by container name, as
    :func:`cortex_iac.specs.read_handler_sources` reads them); both default to none. The shared
    namespace (:func:`render_namespace`) and IngressClass
    (:func:`cortex_iac.render.routing.ingress_class_objects`) are the cluster's, not included.
    """
    return api_objects(spec, ApiContext.of_cluster(cluster_spec, runtime_image), handler_sources).all()


def api_objects(
    spec: RealtimeApiSpec, context: ApiContext, handler_sources: Mapping[str, str] | None = None
) -> ApiObjects:
    """Every object of a RealtimeAPI in ``context``, by role; raises SpecError if the API cannot
    run there (unknown node group, nothing it fits on) or uses what RealtimeApi cannot deploy.

    ``handler_sources``: the text of the handler file of a container giving a ``handler``, by
    container name (default none; see :func:`render_api`)."""
    ns = context.namespace
    handler = workload.handler_container(spec, ns, context.runtime_image, handler_sources, COMPONENT)
    config_text: str | None = None
    config_map = None
    if not runtime_serves_traffic(spec):
        config_text = envoy.render_envoy_yaml(pod_envoy_config(spec))
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": envoy_config_map_name(spec.name, config_text), "namespace": ns,
                         "labels": labels(spec.name)},
            "data": {ENVOY_CONFIG_FILE: config_text},
        }
    # Every wait of the pod's shutdown (preStop sleeps, grace period, the ALB's deregistration delay,
    # the runtime's own grace) follows from the request timeout through the drain plan.
    drain = envoy.drain_plan(request_timeout_seconds=spec.pod.request_timeout)
    return ApiObjects(
        service_account=service_account(spec.name, ns),
        envoy_config=config_map,
        deployment=deployment(spec, ns, context.node_groups, config_text, drain, handler),
        service=service(spec.name, ns, scale_to_zero=spec.autoscaling.min_replicas == 0),
        pod_disruption_budget=pod_disruption_budget(spec.name, ns, spec.autoscaling.min_replicas),
        scaled_object=autoscaling.scaled_object(
            spec, ns, labels=labels(spec.name), prometheus_address=context.prometheus_address
        ),
        interceptor_route=(
            autoscaling.interceptor_route(spec, ns, labels=labels(spec.name)) if spec.autoscaling.min_replicas == 0 else None
        ),
        ingress=routing.api_ingress(
            spec,
            ns,
            https=context.https,
            # The ALB lets a deregistered pod finish what it has for as long as the pod drains.
            deregistration_delay_seconds=drain.app_prestop_sleep_seconds,
            labels=labels(spec.name),
        ),
        iam_policy=iam_policy(spec),
        handler_source=None if handler is None else handler.config_map,
    )


def pod_envoy_config(spec: RealtimeApiSpec, *, app_port: int | None = None, listen_port: int = envoy.LISTEN_PORT,
                     metrics_port: int = envoy.METRICS_PORT, admin_port: int = envoy.ADMIN_PORT,
                     listen_address: str = "0.0.0.0") -> dict[str, Any]:
    """The Envoy config of a pod of ``spec``: what its sidecar runs, and what `cortex serve` runs in
    front of the local runtime (with local ports: ``app_port`` defaults to ``pod.port``)."""
    return envoy.envoy_config(
        app_port=spec.pod.port if app_port is None else app_port,
        listen_port=listen_port,
        metrics_port=metrics_port,
        admin_port=admin_port,
        listen_address=listen_address,
        max_concurrency=spec.pod.max_concurrency,
        max_queue_length=spec.pod.max_queue_length,
        request_timeout_seconds=spec.pod.request_timeout,
    )


# How long the runtime of a pod without the sidecar keeps an idle connection. What sends it requests
# on kept-alive connections must close idle ones first, or a request sent just as the runtime closes
# one fails (the keep-alive race): the shared ALB closes idle connections after its idle timeout
# (routing.ALB_IDLE_TIMEOUT_SECONDS, 300 s), the KEDA interceptor after 90 s (Go's default idle
# connection timeout), the TrafficSplitter routers after 1 s (envoy.UPSTREAM_IDLE_TIMEOUT_SECONDS).
RUNTIME_KEEP_ALIVE_SECONDS = 2 * routing.ALB_IDLE_TIMEOUT_SECONDS + 20
INTERCEPTOR_IDLE_CONNECTION_SECONDS = 90


def direct_traffic(spec: RealtimeApiSpec, *, port: int = envoy.LISTEN_PORT, metrics_port: int = envoy.METRICS_PORT,
                   drain: envoy.DrainPlan | None = None) -> DirectTraffic | None:
    """How the serving runtime takes the pod's traffic itself where ``spec`` has no sidecar
    (:func:`~cortex_iac.specs.kinds.runtime_serves_traffic`), else None: the sidecar's limits
    (``pod.max_concurrency``, ``max_queue_length``, ``request_timeout``, Retry-After, connection cap,
    headers timeout) and its drain (readiness fails on SIGTERM, new connections accepted for the
    deregistration time, then what was accepted finishes), on the sidecar's ports (the Service, the
    load balancer and the NetworkPolicy are the same for both pod shapes). `cortex serve` passes its
    local ``port``, ``metrics_port`` and ``drain``."""
    if not runtime_serves_traffic(spec):
        return None
    plan = drain or envoy.drain_plan(request_timeout_seconds=spec.pod.request_timeout)
    return DirectTraffic(
        port=port, port_name=PROXY_PORT_NAME, metrics_port=metrics_port, readiness_path=READINESS_PATH,
        settings={
            "port": port,
            "metrics_port": metrics_port,
            "max_concurrency": spec.pod.max_concurrency,
            "max_queue_length": spec.pod.max_queue_length,
            "request_timeout": float(spec.pod.request_timeout),
            "retry_after": envoy.DEFAULT_RETRY_AFTER_SECONDS,
            "max_connections": envoy.DEFAULT_MAX_CONNECTIONS,
            "request_headers_timeout": float(envoy.REQUEST_HEADERS_TIMEOUT_SECONDS),
            "keep_alive": float(RUNTIME_KEEP_ALIVE_SECONDS),
            "drain_seconds": float(plan.deregistration_seconds),
            # SIGTERM comes at once (no preStop); exit a second before the kubelet would kill it.
            "grace_period": float(plan.termination_grace_period_seconds - 1),
        },
    )


def pod_shutdown(spec: RealtimeApiSpec) -> workload.Shutdown:
    """How a pod of ``spec`` stops (from the drain plan, which follows from ``pod.request_timeout``)."""
    drain = envoy.drain_plan(request_timeout_seconds=spec.pod.request_timeout)
    return workload.Shutdown(
        prestop_sleep_seconds=drain.app_prestop_sleep_seconds,
        runtime_grace_seconds=drain.termination_grace_period_seconds - drain.app_prestop_sleep_seconds,
    )


def labels(api_name: str) -> dict[str, str]:
    """Labels of every object of a RealtimeAPI (its pods too); :func:`selector_labels` select its pods."""
    return workload.labels(api_name, COMPONENT)


def envoy_config_map_name(api_name: str, envoy_config_text: str) -> str:
    """Name of an API's Envoy ConfigMap: ``<api>-envoy-<first 10 hex digits of its sha256>``.

    A new config is a new ConfigMap: Pulumi creates it, the Deployment rolls over to it, then the
    old one is deleted, so pods still running never lose the file they started from (a ConfigMap
    changed in place would be replaced under the same name, deleted first)."""
    return f"{api_name}-envoy-{workload.sha256(envoy_config_text)[:10]}"


def service_account(api_name: str, namespace: str) -> dict[str, Any]:
    """The API's ServiceAccount (:func:`cortex_iac.render.workload.service_account`)."""
    return workload.service_account(api_name, namespace, COMPONENT)


def service(api_name: str, namespace: str, *, scale_to_zero: bool = False) -> dict[str, Any]:
    """ClusterIP Service in front of the API's Envoy sidecars (port 8888).

    ``scale_to_zero``: the API may have no pod at all (``min_replicas: 0``, whose ``init_replicas``
    defaults to 0), so Pulumi must not wait for the Service to have endpoints, which it does by
    default on a create or update: the update would fail after 10 minutes."""
    metadata: dict[str, Any] = {"name": api_name, "namespace": namespace, "labels": labels(api_name)}
    if scale_to_zero:
        metadata["annotations"] = {SKIP_AWAIT: "true"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(api_name),
            "ports": [{"name": PROXY_PORT_NAME, "port": envoy.LISTEN_PORT, "targetPort": PROXY_PORT_NAME,
                       "protocol": "TCP"}],
        },
    }


def pod_disruption_budget(api_name: str, namespace: str, min_replicas: int) -> dict[str, Any]:
    """Voluntary disruptions (Karpenter consolidation, drift and expiry, node upgrades) evict at most
    one pod of the API at a time and never its last ready one: ``maxUnavailable: 1``, or
    ``minAvailable: 1`` when ``min_replicas`` is 0 or 1 (where one eviction could be all of them).
    Pods that are not ready do not count and may always be evicted, so a crash-looping API never
    blocks a node drain. The trade-off: docs/design.md, "Pod shutdown"."""
    budget = {"minAvailable": 1} if min_replicas <= 1 else {"maxUnavailable": 1}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": api_name, "namespace": namespace, "labels": labels(api_name)},
        "spec": {
            **budget,
            "selector": {"matchLabels": selector_labels(api_name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def deployment(
    spec: RealtimeApiSpec,
    namespace: str,
    node_groups: Sequence[NodeGroupSpec] | None,
    envoy_config_text: str | None,
    drain: envoy.DrainPlan,
    handler: HandlerContainer | None = None,
) -> dict[str, Any]:
    """The API's Deployment (see the module docstring and docs/design.md); ``handler`` is the
    pod's handler container, if any (from :func:`api_objects`); ``envoy_config_text`` is None for a pod
    without the sidecar (:func:`direct_traffic`).

    ``replicas`` is ``init_replicas``: it only matters at creation, after which KEDA owns the
    field (the component tells Pulumi to leave it alone). The metadata annotations are
    :func:`routing_gate`'s.
    """
    allowed = workload.allowed_node_groups(spec, node_groups)
    containers = workload.user_containers(spec, pod_shutdown(spec), handler, direct_traffic(spec, drain=drain))
    volumes: list[dict[str, Any]] = []
    template_metadata: dict[str, Any] = {"labels": labels(spec.name)}
    if envoy_config_text is not None:
        containers.append(_proxy_container(drain))
        volumes.append({"name": ENVOY_CONFIG_VOLUME,
                        "configMap": {"name": envoy_config_map_name(spec.name, envoy_config_text)}})
        template_metadata["annotations"] = {ENVOY_CONFIG_CHECKSUM: workload.sha256(envoy_config_text)}
    volumes += [*workload.handler_volumes(handler), *workload.shm_volumes(spec)]
    pod_spec: dict[str, Any] = {
        "serviceAccountName": spec.name,
        "automountServiceAccountToken": False,
        # The namespace is shared: without this every API's pods get environment variables for
        # every other API's Service.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": drain.termination_grace_period_seconds,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": volumes,
        "affinity": {"nodeAffinity": workload.node_affinity(spec, allowed)},
    }
    tolerations = workload.tolerations(spec, allowed)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": labels(spec.name),
                     "annotations": routing_gate(spec.autoscaling.min_replicas)},
        "spec": {
            "replicas": spec.autoscaling.init_replicas,
            "selector": {"matchLabels": selector_labels(spec.name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxSurge": spec.update_strategy.max_surge,
                    "maxUnavailable": spec.update_strategy.max_unavailable,
                },
            },
            "template": {"metadata": template_metadata, "spec": pod_spec},
        },
    }


def routing_gate(min_replicas: int) -> dict[str, str]:
    """The Deployment's annotations that make it the gate of the scale-from-zero handover.

    With ``min_replicas >= 1`` the Ingress routes straight to the pods, so Pulumi must not create it
    (or move it off the interceptor) before a pod is ready: the Deployment waits for one ready pod
    (:data:`ONE_POD_READY`, instead of Pulumi's rollout check, which passes at once while KEDA has
    not yet raised a zero replica count), and the component makes the Ingress depend on it and it
    on the ScaledObject that raises the count. :data:`MIN_REPLICAS_ANNOTATION` changes with
    ``min_replicas``, so raising it from 0 updates the Deployment (metadata only: no rollout) and
    the wait runs. With ``min_replicas: 0`` there may be no pod, so Pulumi's own check stays.
    See docs/design.md, "Scale-from-zero handover".
    """
    annotations = {MIN_REPLICAS_ANNOTATION: str(min_replicas)}
    if min_replicas >= 1:
        annotations[WAIT_FOR] = ONE_POD_READY
    return annotations


def _proxy_container(drain: envoy.DrainPlan) -> dict[str, Any]:
    return {
        "name": PROXY_CONTAINER,
        "image": ENVOY_IMAGE,
        "command": ["envoy"],
        "args": envoy.envoy_args(f"{ENVOY_CONFIG_DIR}/{ENVOY_CONFIG_FILE}"),
        "ports": [
            {"name": PROXY_PORT_NAME, "containerPort": envoy.LISTEN_PORT, "protocol": "TCP"},
            {"name": envoy.METRICS_PORT_NAME, "containerPort": envoy.METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": envoy.READINESS_PATH, "port": envoy.LISTEN_PORT},
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "failureThreshold": 2,
        },
        "livenessProbe": envoy.liveness_probe(),
        "lifecycle": {"preStop": {"exec": {"command": list(drain.envoy_prestop_command)}}},
        "resources": ENVOY_SIDECAR.to_k8s(),
        "securityContext": workload.locked_down(ENVOY_UID),
        "volumeMounts": [{"name": ENVOY_CONFIG_VOLUME, "mountPath": ENVOY_CONFIG_DIR, "readOnly": True}],
    }


