"""A Cortex RealtimeAPI as Kubernetes objects (pure; plain dicts).

:func:`render_api` gives every object of one API: ServiceAccount, Envoy ConfigMap, Deployment
(the user's containers + the Envoy sidecar ``proxy``), for a container that gives a ``handler``
the handler's ConfigMap (the container runs the serving runtime image), Service (Envoy's port 8888),
PodDisruptionBudget, KEDA ScaledObject, for ``min_replicas: 0`` an InterceptorRoute, and the
Ingress on the shared load balancer. The AWS side (an IAM role through EKS Pod Identity) is
:func:`iam_policy`; the Pulumi component wires it all (``cortex_iac.components.realtime_api``).

All APIs share the namespace :data:`API_NAMESPACE` (:func:`render_namespace`, created once per
cluster). Why shared and not one namespace per API: docs/design.md, "Routing".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cortex_iac.errors import CortexError, SpecError
from cortex_iac.instance_types import InstanceType, get_instance_type
from cortex_iac.render import autoscaling, envoy, iam, karpenter, routing
from cortex_iac.serving.config import RuntimeConfig
from cortex_iac.specs.quantity import Quantity
from cortex_iac.versions import ENVOY_IMAGE

if TYPE_CHECKING:
    from cortex_iac.specs import ClusterSpec, NodeGroupSpec, RealtimeApiSpec
    from cortex_iac.specs.pod import ContainerSpec, ProbeSpec

API_NAMESPACE = "cortex-apis"
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
# The envoy user of the official image (uid/gid 101). The container runs envoy directly as this
# user, bypassing the image's entrypoint, which would otherwise start as root to switch users.
ENVOY_UID = 101
# Envoy with one worker thread proxying to one model container: small and steady. No CPU limit
# (throttling adds latency); the memory limit bounds a leak.
ENVOY_RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
SHM_VOLUME = "shm"

# A container that gives a `handler` instead of an image runs the serving runtime (cortex_iac/serving)
# from the runtime image, as the image's user (serving/Dockerfile: USER 10001:10001).
RUNTIME_COMMAND = ("python", "-m", "cortex_iac.serving")
RUNTIME_UID = 10001
RUNTIME_READINESS_PATH = "/readyz"
RUNTIME_LIVENESS_PATH = "/healthz"
# The handler file comes from a ConfigMap named by a hash of its content (like the Envoy config, so
# a changed handler rolls the pods), mounted read-only here.
HANDLER_VOLUME = "handler"
HANDLER_DIR = "/opt/cortex/handler"
# The runtime runs with a read-only root filesystem; /tmp is its only writable place (the
# python_requirements are installed there).
TMP_VOLUME = "tmp"
# Kubernetes stores a ConfigMap of at most 1 MiB; the rest is room for the object's metadata.
MAX_HANDLER_BYTES = 900 * 1024
_CONFIG_MAP_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")

_PART_OF = {"app.kubernetes.io/part-of": "cortex", "app.kubernetes.io/managed-by": "cortex-iac"}


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
    API scales to zero, ``handler_source`` unless a container gives a handler)."""

    service_account: dict[str, Any]
    envoy_config: dict[str, Any]
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
        objects = [self.service_account, self.envoy_config]
        if self.handler_source is not None:
            objects.append(self.handler_source)
        objects += [self.deployment, self.service, self.pod_disruption_budget, self.scaled_object]
        if self.interceptor_route is not None:
            objects.append(self.interceptor_route)
        objects.append(self.ingress)
        return objects


@dataclass(frozen=True)
class _Handler:
    """The pod's handler container (``index`` in ``pod.containers``), its image, file and ConfigMap."""

    index: int
    container: ContainerSpec
    image: str
    file_name: str
    config_map: dict[str, Any]


def _handler(spec: RealtimeApiSpec, namespace: str, runtime_image: str | None,
             sources: Mapping[str, str]) -> _Handler | None:
    found = [(index, c) for index, c in enumerate(spec.pod.containers) if c.handler is not None]
    if not found:
        return None
    index, c = found[0]
    where = f"api {spec.name!r}: pod.containers[{index}]"
    if len(found) > 1:
        raise SpecError(
            f"api {spec.name!r}: pod.containers[{found[1][0]}].handler: a pod runs at most one handler "
            f"container (each would listen on pod.port {spec.pod.port}); containers[{index}] has one"
        )
    if runtime_image is None:
        raise SpecError(
            f"{where}.handler: container {c.name!r} gives a handler, which runs in the serving runtime image, "
            "and no runtime image is given: build and push it (cortex_iac/serving/README.md, or the "
            "RuntimeImage component) and pass its reference as RealtimeApi's runtime_image, the stack "
            "config key cortex:runtimeImage, or cortex render --runtime-image"
        )
    if not runtime_image or any(ch.isspace() for ch in runtime_image):
        raise SpecError(f"runtime image {runtime_image!r} is not allowed (must be a container image reference "
                        "without spaces)")
    for field in ("command", "args"):
        value = getattr(c, field)
        if value is not None:
            raise SpecError(f"{where}.{field}: {value!r} is not allowed with a handler (the container runs "
                            f"the serving runtime, {' '.join(RUNTIME_COMMAND)})")
    assert c.handler is not None
    if c.name not in sources:
        raise CortexError(f"{where}.handler: no source text given for container {c.name!r} (read the handler "
                          "files with cortex_iac.specs.read_handler_sources)")
    source = sources[c.name]
    file_name = Path(c.handler.path).name
    if not _CONFIG_MAP_KEY.fullmatch(file_name):
        raise SpecError(f"{where}.handler.path: {c.handler.path!r} is not allowed (the file name must be "
                        "letters, digits, '-', '_' and '.': it is a ConfigMap key)")
    size = len(source.encode())
    if size > MAX_HANDLER_BYTES:
        raise SpecError(
            f"{where}.handler.path: {c.handler.path!r} has {size} bytes, more than the {MAX_HANDLER_BYTES} "
            "a handler file may have (it ships in a ConfigMap, at most 1 MiB): keep large files such as model "
            "weights in S3 and load them in Handler.__init__"
        )
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": handler_config_map_name(spec.name, file_name, source), "namespace": namespace,
                     "labels": labels(spec.name)},
        "data": {file_name: source},
    }
    return _Handler(index=index, container=c, image=runtime_image, file_name=file_name, config_map=config_map)


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
    handler = _handler(spec, ns, context.runtime_image, handler_sources or {})
    config_text = envoy.render_envoy_yaml(
        envoy.envoy_config(
            app_port=spec.pod.port,
            max_concurrency=spec.pod.max_concurrency,
            max_queue_length=spec.pod.max_queue_length,
            request_timeout_seconds=spec.pod.request_timeout,
        )
    )
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": envoy_config_map_name(spec.name, config_text), "namespace": ns, "labels": labels(spec.name)},
        "data": {ENVOY_CONFIG_FILE: config_text},
    }
    # Every wait of the pod's shutdown (preStop sleeps, grace period, the ALB's deregistration delay,
    # the runtime's own grace) follows from the request timeout through the drain plan.
    drain = envoy.drain_plan(request_timeout_seconds=spec.pod.request_timeout)
    return ApiObjects(
        service_account=service_account(spec.name, ns),
        envoy_config=config_map,
        deployment=deployment(spec, ns, context.node_groups, config_text, drain, handler),
        service=service(spec.name, ns),
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


def labels(api_name: str) -> dict[str, str]:
    """Labels of every object of an API (its pods too); :func:`selector_labels` select its pods."""
    return {"app.kubernetes.io/name": api_name, "app.kubernetes.io/component": "realtime-api", **_PART_OF,
            **selector_labels(api_name)}


def selector_labels(api_name: str) -> dict[str, str]:
    """The labels that select an API's pods; the Envoy scrape job keys on the same label."""
    return {envoy.API_NAME_LABEL: api_name}


def envoy_config_map_name(api_name: str, envoy_config_text: str) -> str:
    """Name of an API's Envoy ConfigMap: ``<api>-envoy-<first 10 hex digits of its sha256>``.

    A new config is a new ConfigMap: Pulumi creates it, the Deployment rolls over to it, then the
    old one is deleted, so pods still running never lose the file they started from (a ConfigMap
    changed in place would be replaced under the same name, deleted first)."""
    return f"{api_name}-envoy-{_sha256(envoy_config_text)[:10]}"


def handler_config_map_name(api_name: str, file_name: str, source: str) -> str:
    """Name of an API's handler ConfigMap: ``<api>-handler-<first 10 hex digits of a sha256 of the
    file's name and text>``; a changed handler is a new ConfigMap, as for
    :func:`envoy_config_map_name`."""
    return f"{api_name}-handler-{_sha256(file_name + chr(0) + source)[:10]}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def render_namespace(name: str = API_NAMESPACE) -> dict[str, Any]:
    """The namespace all APIs share (created once per cluster, by the Cluster component).

    Pod Security: ``baseline`` enforced (no privileged pods, host namespaces or hostPath), and
    ``restricted`` warned and audited: user images may need root, so runAsNonRoot is not enforced.
    The AWS Load Balancer Controller injects its readiness gate into these pods, so a rolling
    update waits until the ALB sends traffic to a new pod before removing an old one.
    """
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                **_PART_OF,
                "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
                "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
            },
        },
    }


def service_account(api_name: str, namespace: str) -> dict[str, Any]:
    """The API's ServiceAccount. Its AWS role comes through EKS Pod Identity (an association made
    by the component), so it carries no annotation; no Kubernetes API token is mounted."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": api_name, "namespace": namespace, "labels": labels(api_name)},
        "automountServiceAccountToken": False,
    }


def service(api_name: str, namespace: str) -> dict[str, Any]:
    """ClusterIP Service in front of the API's Envoy sidecars (port 8888)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": api_name, "namespace": namespace, "labels": labels(api_name)},
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
    envoy_config_text: str,
    drain: envoy.DrainPlan,
    handler: _Handler | None = None,
) -> dict[str, Any]:
    """The API's Deployment (see the module docstring and docs/design.md); ``handler`` is the
    pod's handler container, if any (from :func:`api_objects`).

    ``replicas`` is ``init_replicas``: it only matters at creation, after which KEDA owns the
    field (the component tells Pulumi to leave it alone).
    """
    allowed = _allowed_node_groups(spec, node_groups)
    containers = _user_containers(spec, drain, handler)
    containers.append(_proxy_container(drain))
    volumes: list[dict[str, Any]] = [
        {"name": ENVOY_CONFIG_VOLUME, "configMap": {"name": envoy_config_map_name(spec.name, envoy_config_text)}},
    ]
    if handler is not None:
        volumes += [
            {"name": HANDLER_VOLUME, "configMap": {"name": handler.config_map["metadata"]["name"]}},
            {"name": TMP_VOLUME, "emptyDir": {}},
        ]
    volumes += [
        {"name": _shm_volume(c.name), "emptyDir": {"medium": "Memory", "sizeLimit": str(c.compute.shm)}}
        for c in spec.pod.containers
        if c.compute.shm is not None
    ]
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
        "affinity": {"nodeAffinity": _node_affinity(spec, allowed)},
    }
    tolerations = _tolerations(spec, allowed)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": labels(spec.name)},
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
            "template": {
                "metadata": {
                    "labels": labels(spec.name),
                    "annotations": {ENVOY_CONFIG_CHECKSUM: _sha256(envoy_config_text)},
                },
                "spec": pod_spec,
            },
        },
    }


def _user_containers(spec: RealtimeApiSpec, drain: envoy.DrainPlan, handler: _Handler | None) -> list[dict[str, Any]]:
    # Cortex's proxy probed the app's port over TCP when no readiness probe did; the same probe goes
    # on the first container that has none (the pod's containers share one network namespace). A
    # handler container listens on the port and has its own probes.
    probes_port = handler is not None or any(_probe_port(c.readiness_probe) == spec.pod.port for c in spec.pod.containers)
    default_probe_owner = None if probes_port else next(
        (c.name for c in spec.pod.containers if c.readiness_probe is None), None
    )
    containers = []
    for index, c in enumerate(spec.pod.containers):
        runtime = handler if handler is not None and handler.index == index else None
        env = {**_runtime_env(spec, runtime, drain), **c.env} if runtime is not None else c.env
        container: dict[str, Any] = {"name": c.name, "image": c.image if runtime is None else runtime.image}
        if runtime is not None:
            container["command"] = list(RUNTIME_COMMAND)
        if c.command is not None:
            container["command"] = list(c.command)
        if c.args is not None:
            container["args"] = list(c.args)
        if env:
            container["env"] = [{"name": k, "value": v} for k, v in env.items()]
        resources = _resources(spec.name, index, c)
        if resources:
            container["resources"] = resources
        if c.readiness_probe is not None:
            container["readinessProbe"] = _probe(c.readiness_probe)
        elif runtime is not None:
            # Ready once Handler.__init__ returned (the runtime answers 503 while it loads).
            container["readinessProbe"] = {"httpGet": {"path": RUNTIME_READINESS_PATH, "port": spec.pod.port},
                                           "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 3}
        elif c.name == default_probe_owner:
            container["readinessProbe"] = {"tcpSocket": {"port": spec.pod.port}, "periodSeconds": 10,
                                           "timeoutSeconds": 1, "failureThreshold": 3}
        if c.liveness_probe is not None:
            container["livenessProbe"] = _probe(c.liveness_probe)
        elif runtime is not None:
            # The event loop answers while the handler loads and while its threads compute; a generous
            # timeout still tolerates a handler that holds the GIL for a while.
            container["livenessProbe"] = {"httpGet": {"path": RUNTIME_LIVENESS_PATH, "port": spec.pod.port},
                                          "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
        container["lifecycle"] = {"preStop": _pre_stop(spec.name, index, c, drain)}
        mounts = []
        if runtime is not None:
            # Our own image: it runs as its non-root user and writes nowhere but /tmp.
            container["securityContext"] = _locked_down(RUNTIME_UID)
            mounts += [{"name": HANDLER_VOLUME, "mountPath": HANDLER_DIR, "readOnly": True},
                       {"name": TMP_VOLUME, "mountPath": "/tmp"}]
        else:
            container["securityContext"] = {
                # User images may need root (most model-server images do), so runAsNonRoot and a
                # read-only root filesystem are not imposed; everything else of "restricted" is.
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            }
        if c.compute.shm is not None:
            mounts.append({"name": _shm_volume(c.name), "mountPath": "/dev/shm"})
        if mounts:
            container["volumeMounts"] = mounts
        containers.append(container)
    return containers


def _runtime_env(spec: RealtimeApiSpec, handler: _Handler, drain: envoy.DrainPlan) -> dict[str, str]:
    settings = handler.container.handler
    assert settings is not None
    return RuntimeConfig(
        handler_path=f"{HANDLER_DIR}/{handler.file_name}",
        handler_config=settings.config,
        threads_per_process=settings.threads_per_process,
        max_batch_size=settings.max_batch_size,
        batch_interval=settings.batch_interval,
        port=spec.pod.port,
        # The runtime gets SIGTERM after its preStop sleep, when Envoy has drained; it must exit
        # before the kubelet kills the pod, i.e. within what is left of the termination grace period.
        grace_period=drain.termination_grace_period_seconds - drain.app_prestop_sleep_seconds,
        python_requirements=tuple(settings.python_requirements),
    ).to_env()


def _locked_down(uid: int) -> dict[str, Any]:
    """The securityContext of a container running our own image as ``uid``."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _shm_volume(container_name: str) -> str:
    # Volume names are DNS labels of at most 63 characters; container names are at most 63 too.
    return f"{SHM_VOLUME}-{container_name}"[:63].rstrip("-")


def _resources(api_name: str, index: int, c: ContainerSpec) -> dict[str, dict[str, str]]:
    compute = c.compute
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if compute.cpu is not None:
        requests["cpu"] = str(compute.cpu)
    if compute.mem is not None:
        # Requests = limit: a model that outgrows its memory is restarted instead of pushing its
        # neighbours out of the node. /dev/shm (at most mem) is charged to this limit.
        requests["memory"] = limits["memory"] = str(compute.mem)
    if compute.gpu:
        requests[karpenter.GPU_RESOURCE] = limits[karpenter.GPU_RESOURCE] = str(compute.gpu)
    if compute.inf:
        if compute.cpu is None and compute.mem is None:
            raise SpecError(
                f"api {api_name!r}: pod.containers[{index}].compute: inf needs cpu or mem as well "
                "(Kubernetes refuses huge pages without a cpu or memory request)"
            )
        hugepages = str(Quantity(karpenter.HUGEPAGES_PER_INF.value * compute.inf, "BinarySI"))
        requests[karpenter.NEURON_RESOURCE] = limits[karpenter.NEURON_RESOURCE] = str(compute.inf)
        requests[karpenter.HUGEPAGES_RESOURCE] = limits[karpenter.HUGEPAGES_RESOURCE] = hugepages
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _probe_port(probe: ProbeSpec | None) -> int | None:
    if probe is None:
        return None
    handler = probe.http_get or probe.tcp_socket
    return handler.port if handler is not None else None


def _probe(p: ProbeSpec) -> dict[str, Any]:
    if p.http_get is not None:
        probe: dict[str, Any] = {"httpGet": {"path": p.http_get.path, "port": p.http_get.port}}
    elif p.tcp_socket is not None:
        probe = {"tcpSocket": {"port": p.tcp_socket.port}}
    else:
        assert p.exec is not None  # the spec holds exactly one handler
        probe = {"exec": {"command": list(p.exec.command)}}
    probe.update({
        "initialDelaySeconds": p.initial_delay_seconds,
        "timeoutSeconds": p.timeout_seconds,
        "periodSeconds": p.period_seconds,
        "successThreshold": p.success_threshold,
        "failureThreshold": p.failure_threshold,
    })
    return probe


def _pre_stop(api_name: str, index: int, c: ContainerSpec, drain: envoy.DrainPlan) -> dict[str, Any]:
    """The preStop hook of a user container: it keeps the container running (and its SIGTERM away)
    for the drain plan's ``app_prestop_sleep_seconds``, while Envoy finishes what it accepted.

    Without a ``pre_stop`` that is a plain ``sleep``. An ``exec`` pre_stop runs after that sleep,
    just before the SIGTERM, as ``/bin/sh -c 'sleep N; exec "$@"' -- <command...>`` (the command's
    words are passed as arguments, never parsed by the shell): the image needs ``/bin/sh``, otherwise
    the hook fails at once and the app gets SIGTERM while Envoy still sends it requests. The hook
    then has what is left of the grace period (``termination_grace_period_seconds`` minus the sleep)
    before the container is killed. An ``http_get`` pre_stop is refused: Kubernetes sends it as
    soon as the pod is deleted and has no way to delay it.
    """
    sleep = drain.app_prestop_sleep_seconds
    if c.pre_stop is None:
        return {"sleep": {"seconds": sleep}}
    if c.pre_stop.http_get is not None:
        hook = {"path": c.pre_stop.http_get.path, "port": c.pre_stop.http_get.port}
        raise SpecError(
            f"api {api_name!r}: pod.containers[{index}].pre_stop.http_get: {hook!r} is not allowed (container "
            f"{c.name!r} must keep serving while its Envoy sidecar drains, {sleep} s after the pod is deleted, and "
            "Kubernetes sends an HTTP hook at once; use pre_stop.exec, which runs after the drain)"
        )
    assert c.pre_stop.exec is not None  # the spec holds exactly one handler
    return {"exec": {"command": ["/bin/sh", "-c", f'sleep {sleep}; exec "$@"', "--", *c.pre_stop.exec.command]}}


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
        "lifecycle": {"preStop": {"exec": {"command": list(drain.envoy_prestop_command)}}},
        "resources": {k: dict(v) for k, v in ENVOY_RESOURCES.items()},
        "securityContext": _locked_down(ENVOY_UID),
        "volumeMounts": [{"name": ENVOY_CONFIG_VOLUME, "mountPath": ENVOY_CONFIG_DIR, "readOnly": True}],
    }


def _allowed_node_groups(spec: RealtimeApiSpec, node_groups: Sequence[NodeGroupSpec] | None
                         ) -> list[NodeGroupSpec] | None:
    # The node groups the API's pods may run on: those it names, or else every group it fits on
    # whose accelerator taint (if any) it tolerates, i.e. whose accelerator it requests. A pod that
    # fits no allowed instance type would stay Pending for ever: say so at plan time. (Necessary,
    # not sufficient: the kubelet and daemon sets reserve part of every node.)
    if node_groups is None:
        return None
    by_name = {g.name: g for g in node_groups}
    unknown = [n for n in spec.node_groups or () if n not in by_name]
    if unknown:
        raise SpecError(
            f"api {spec.name!r}: node_groups: {', '.join(map(repr, unknown))} "
            f"{'is not a node group' if len(unknown) == 1 else 'are not node groups'} of the cluster "
            f"(node groups: {', '.join(by_name) or 'none'})"
        )
    named = list(node_groups) if spec.node_groups is None else [by_name[n] for n in spec.node_groups]
    need = _pod_requests(spec)
    fitting = [g for g in named if _fits(need, _instance(g))]
    if spec.node_groups is None:
        fitting = [g for g in fitting if karpenter.accelerator_resource(_instance(g)) in (None, *_accelerators(spec))]
    if not fitting:
        wanted = (f"cpu {Quantity(need['cpu'])}, memory {Quantity(need['memory'], 'BinarySI')}, "
                  f"gpu {need['gpu']}, inf {need['inf']} (sidecar included)")
        offered = "; ".join(
            f"{g.name}: {t.name} (cpu {t.vcpus}, memory {t.memory_mib}Mi, gpu {t.gpus}, inf {t.neuron_devices})"
            for g, t in ((g, _instance(g)) for g in named)
        ) or "none"
        raise SpecError(f"api {spec.name!r}: pod: needs {wanted}; no node group it may use offers that "
                        f"({offered})")
    return named if spec.node_groups is not None else fitting


def _fits(need: dict[str, Decimal], t: InstanceType) -> bool:
    return (need["cpu"] <= t.vcpus and need["memory"] <= Decimal(t.memory_mib) * 2**20
            and need["gpu"] <= t.gpus and need["inf"] <= t.neuron_devices)


def _accelerators(spec: RealtimeApiSpec) -> list[str]:
    """Device-plugin resources the API's pods request."""
    found = []
    if any(c.compute.gpu for c in spec.pod.containers):
        found.append(karpenter.GPU_RESOURCE)
    if any(c.compute.inf for c in spec.pod.containers):
        found.append(karpenter.NEURON_RESOURCE)
    return found


def _node_affinity(spec: RealtimeApiSpec, allowed: list[NodeGroupSpec] | None) -> dict[str, Any]:
    # Required: one of the allowed Cortex node groups (never the cluster's system nodes).
    # Preferred: higher-priority groups first, weight = priority (1..100), as in Cortex.
    if allowed is not None:
        names = [g.name for g in allowed]
    elif spec.node_groups is not None:
        names = list(spec.node_groups)
    else:
        names = []
    requirement: dict[str, Any] = (
        {"key": karpenter.NODE_GROUP_LABEL, "operator": "In", "values": names}
        if names else {"key": karpenter.NODE_GROUP_LABEL, "operator": "Exists"}
    )
    affinity: dict[str, Any] = {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [requirement]}]},
    }
    if allowed is not None and len(allowed) > 1:
        affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": g.priority,
             "preference": {"matchExpressions": [{"key": karpenter.NODE_GROUP_LABEL, "operator": "In", "values": [g.name]}]}}
            for g in sorted(allowed, key=lambda g: (-g.priority, g.name))
        ]
    return affinity


def _tolerations(spec: RealtimeApiSpec, allowed: list[NodeGroupSpec] | None) -> list[dict[str, str]]:
    # The accelerators the pod requests, plus the taints of node groups the API names explicitly (a
    # CPU API pinned to a GPU group means it); an unpinned CPU API keeps off accelerator nodes.
    tolerations = [{"key": k, "operator": "Exists", "effect": "NoSchedule"} for k in _accelerators(spec)]
    if spec.node_groups is not None and allowed is not None:
        for group in allowed:
            for t in karpenter.tolerations_for(group.instance_type):
                if t not in tolerations:
                    tolerations.append(t)
    return sorted(tolerations, key=lambda t: (t["key"], t["effect"]))


def _pod_requests(spec: RealtimeApiSpec) -> dict[str, Decimal]:
    need = {"cpu": Quantity.parse(ENVOY_RESOURCES["requests"]["cpu"]).value,
            "memory": Quantity.parse(ENVOY_RESOURCES["requests"]["memory"]).value,
            "gpu": Decimal(0), "inf": Decimal(0)}
    for c in spec.pod.containers:
        if c.compute.cpu is not None:
            need["cpu"] += c.compute.cpu.value
        if c.compute.mem is not None:
            need["memory"] += c.compute.mem.value
        if c.compute.inf:
            need["memory"] += karpenter.HUGEPAGES_PER_INF.value * c.compute.inf
        need["gpu"] += c.compute.gpu
        need["inf"] += c.compute.inf
    return need


def _instance(group: NodeGroupSpec) -> InstanceType:
    try:
        return get_instance_type(group.instance_type)
    except KeyError:
        raise SpecError(f"node group {group.name!r}: instance_type: {group.instance_type!r} is not a known "
                        "instance type") from None


def iam_policy(spec: RealtimeApiSpec, partition: str = "aws") -> dict[str, Any] | None:
    """The API role's inline policy: exactly what ``iam.s3_read`` asks for, or None (no policy).

    For each ``s3://bucket/prefix``: ``s3:GetObject`` on ``bucket/prefix*``, and ``s3:ListBucket``
    on the bucket only for keys under the prefixes (an ``s3:prefix`` condition). ``partition``
    defaults to ``aws``.
    """
    prefixes: dict[str, list[str]] = {}
    for uri in spec.iam.s3_read:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        prefixes.setdefault(bucket, [])
        if prefix not in prefixes[bucket]:
            prefixes[bucket].append(prefix)
    if not prefixes:
        return None
    statements: list[dict[str, Any]] = [{
        "Sid": "ReadObjects",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": [f"arn:{partition}:s3:::{bucket}/{prefix}*" for bucket, ps in prefixes.items() for prefix in ps],
    }]
    for number, (bucket, ps) in enumerate(prefixes.items()):
        statement: dict[str, Any] = {
            "Sid": f"ListBucket{number}",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:{partition}:s3:::{bucket}",
        }
        if "" not in ps:  # a whole bucket given: list all of it
            statement["Condition"] = {"StringLike": {"s3:prefix": [f"{p}*" for p in ps]}}
        statements.append(statement)
    return iam.policy_document(statements)
