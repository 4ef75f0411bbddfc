"""The kind-neutral workload layer: what the pods and objects of every API kind share (pure; plain dicts).

A kind's renderer (``render/realtime.py`` for RealtimeAPI) builds its Deployment or Job around
:func:`user_containers` (the user's containers with their requests, probes, hooks and security
contexts), places it with :func:`node_affinity` and :func:`tolerations` on the groups
:func:`cortex_iac.specs.placement.placement` allows, ships a handler with :func:`handler_container`,
labels everything with :func:`labels` (the kind's component as a parameter) and grants
:func:`iam_policy`. All APIs share the namespace :data:`API_NAMESPACE` (:func:`render_namespace`,
created once per cluster); why shared and not one per API: docs/design.md, "Routing".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cortex_iac.errors import SpecError
from cortex_iac.render import karpenter
from cortex_iac.render.envoy import API_NAME_LABEL
from cortex_iac.render.iam import policy_document
from cortex_iac.render.routing import INTERCEPTOR_PROXY_PORT as _INTERCEPTOR_PORT
from cortex_iac.render.routing import KEDA_NAMESPACE
from cortex_iac.runtime_contract import RUNTIME_METRICS_PORT_NAME, RuntimeConfig
from cortex_iac.specs.cluster import ANYWHERE
from cortex_iac.specs.deployment import RUNTIME_IMAGE_HINT, problem_line
from cortex_iac.specs.placement import HUGEPAGES_PER_INF, accelerators, placement
from cortex_iac.specs.pod import DEFAULT_MEM_REQUEST
from cortex_iac.specs.quantity import Quantity

if TYPE_CHECKING:
    from cortex_iac.specs import NodeGroupSpec, WorkloadSpec
    from cortex_iac.specs.pod import ContainerSpec, ProbeSpec

API_NAMESPACE = "cortex-apis"
_RESOURCE = {"gpu": karpenter.GPU_RESOURCE, "inf": karpenter.NEURON_RESOURCE}

# A container that gives a `handler` instead of an image runs the serving runtime (cortex_iac/serving)
# from the runtime image, as the image's user (serving/Dockerfile: USER 10001:10001).
RUNTIME_COMMAND = ("python", "-m", "cortex_iac.serving")
RUNTIME_UID = 10001
RUNTIME_READINESS_PATH = "/readyz"
RUNTIME_LIVENESS_PATH = "/healthz"
# The handler file comes from a ConfigMap named by a hash of its content (a changed handler rolls the
# pods), mounted read-only here.
HANDLER_VOLUME = "handler"
HANDLER_DIR = "/opt/cortex/handler"
# The runtime runs with a read-only root filesystem; /tmp is its only writable place (the
# python_requirements are installed there).
TMP_VOLUME = "tmp"
SHM_VOLUME = "shm"

_PART_OF = {"app.kubernetes.io/part-of": "cortex", "app.kubernetes.io/managed-by": "cortex-iac"}


@dataclass(frozen=True)
class Shutdown:
    """How a pod of the kind stops: how long the user containers' preStop keeps them running (and
    their SIGTERM away) while the pod drains, and how long the serving runtime then has to exit."""

    prestop_sleep_seconds: int
    runtime_grace_seconds: int


@dataclass(frozen=True)
class DirectTraffic:
    """The handler container serves the pod's traffic itself (a RealtimeAPI pod without the Envoy
    sidecar): it listens on ``port`` (port name ``port_name``), serves its metrics on
    ``metrics_port`` (:data:`~cortex_iac.runtime_contract.RUNTIME_METRICS_PORT_NAME`), answers
    ``readiness_path`` there, and takes ``settings`` (admission, drain) as its runtime config. It drains
    on SIGTERM itself (``drain_seconds``), so it gets no preStop sleep."""

    port: int
    port_name: str
    metrics_port: int
    readiness_path: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class HandlerContainer:
    """The pod's handler container (``index`` in ``pod.containers``), the image it runs and the
    ConfigMap its file ships in."""

    index: int
    container: ContainerSpec
    image: str
    config_map: dict[str, Any]


def labels(api_name: str, component: str) -> dict[str, str]:
    """Labels of every object of an API (its pods too); ``component`` names the kind's part, e.g.
    ``realtime-api``. :func:`selector_labels` select its pods."""
    return {"app.kubernetes.io/name": api_name, "app.kubernetes.io/component": component, **_PART_OF,
            **selector_labels(api_name)}


def selector_labels(api_name: str) -> dict[str, str]:
    """The labels that select an API's pods; the metrics scrape jobs key on the same label."""
    return {API_NAME_LABEL: api_name}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def handler_config_map_name(api_name: str, file_name: str, source: str) -> str:
    """Name of an API's handler ConfigMap: ``<api>-handler-<first 10 hex digits of a sha256 of the
    file's name and text>``; a changed handler is a new ConfigMap, created before the old one goes,
    so pods still running never lose the file they started from."""
    return f"{api_name}-handler-{sha256(file_name + chr(0) + source)[:10]}"


def handler_container(
    spec: WorkloadSpec,
    namespace: str,
    runtime_image: str | None,
    sources: Mapping[str, str] | None,
    component: str,
) -> HandlerContainer | None:
    """The pod's handler container and its ConfigMap, or None when every container has an image.

    The spec has checked the handler (one per pod, the file's name, size and place); ``sources``
    are the files' texts by container name (default: as the loader read them). Raises `SpecError`
    when no ``runtime_image`` is given, which `cortex_iac.specs.deployment` reports first.
    """
    found = [(index, c) for index, c in enumerate(spec.pod.containers) if c.handler is not None]
    if not found:
        return None
    index, c = found[0]
    assert c.handler is not None
    if runtime_image is None:
        raise SpecError(
            f"{spec.where}.pod.containers[{index}].handler: container {c.name!r} gives a handler, which runs in "
            f"the serving runtime image, and no runtime image is given: {RUNTIME_IMAGE_HINT}"
        )
    source = sources[c.name] if sources is not None and c.name in sources else c.handler.source
    file_name = c.handler.file_name
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": handler_config_map_name(spec.name, file_name, source), "namespace": namespace,
                     "labels": labels(spec.name, component)},
        "data": {file_name: source},
    }
    return HandlerContainer(index=index, container=c, image=runtime_image, config_map=config_map)


def handler_volumes(handler: HandlerContainer | None) -> list[dict[str, Any]]:
    """The pod volumes a handler container mounts: its ConfigMap and a writable /tmp."""
    if handler is None:
        return []
    return [{"name": HANDLER_VOLUME, "configMap": {"name": handler.config_map["metadata"]["name"]}},
            {"name": TMP_VOLUME, "emptyDir": {}}]


def shm_volumes(spec: WorkloadSpec) -> list[dict[str, Any]]:
    """An in-memory /dev/shm volume per container asking for ``compute.shm``."""
    return [
        {"name": shm_volume(c.name), "emptyDir": {"medium": "Memory", "sizeLimit": str(c.compute.shm)}}
        for c in spec.pod.containers
        if c.compute.shm is not None
    ]


def allowed_node_groups(spec: WorkloadSpec, node_groups: Sequence[NodeGroupSpec] | None
                        ) -> tuple[NodeGroupSpec, ...] | None:
    """The node groups the pods of ``spec`` may run on (see :func:`cortex_iac.specs.placement.placement`;
    None when the cluster's groups are unknown). Raises `SpecError` for an API that validation
    would have refused (an unknown group, nothing it fits on)."""
    found = placement(spec, node_groups)
    if found.problems:
        raise SpecError([problem_line(spec, *problem) for problem in found.problems])
    return found.groups


def render_namespace(name: str = API_NAMESPACE, *, readiness_gate: bool = True) -> dict[str, Any]:
    """The namespace all APIs share (created once per cluster, by the Cluster component), or with
    ``readiness_gate=False`` one whose pods are no load balancer targets (a job API's workers).

    Pod Security: ``baseline`` enforced (no privileged pods, host namespaces or hostPath), and
    ``restricted`` warned and audited: user images may need root, so runAsNonRoot is not enforced.
    The AWS Load Balancer Controller injects its readiness gate into these pods, so a rolling
    update waits until the ALB sends traffic to a new pod before removing an old one.
    """
    labels = {
        **_PART_OF,
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }
    if readiness_gate:
        labels["elbv2.k8s.aws/pod-readiness-gate-inject"] = "enabled"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


# EKS Pod Identity's agent, on every node's link-local address: pods get their AWS role from it.
POD_IDENTITY_AGENT = "169.254.170.23/32"
POD_IDENTITY_AGENT_PORT = 80
# The sidecars' traffic and metrics ports (render/envoy.py: LISTEN_PORT, METRICS_PORT).
_TRAFFIC_PORT, _METRICS_PORT = 8888, 15000


def network_policy(namespace: str = API_NAMESPACE, *, prometheus_namespace: str = "prometheus",
                   dns_namespace: str = "kube-system", interceptor_namespace: str = KEDA_NAMESPACE,
                   egress_cidrs: Sequence[str] = ANYWHERE, name: str = "cortex-apis",
                   ingress: bool = True) -> dict[str, Any]:
    """The API namespace's NetworkPolicy: default deny, with exactly what traffic needs.

    Ingress: the pods' traffic port 8888 (the sidecar's, or in a pod without one the serving
    runtime's) from anywhere (the load balancer's targets are pod IPs it reaches from the VPC; the
    KEDA interceptor and the TrafficSplitter routers reach API Services there), and their metrics
    port 15000 from the Prometheus namespace only. Nothing else: the app's own port (``pod.port``)
    is reachable only by its pod's Envoy over loopback, which a NetworkPolicy does not filter, so no
    other pod can bypass the sidecar's limits.
    Egress, always: DNS in ``kube-system``, the EKS Pod Identity agent (the pods' AWS credentials),
    and the platform's own paths of the TrafficSplitter routers, 8888 of this namespace's pods and
    the interceptor's proxy port in ``interceptor_namespace``. Beyond that ``egress_cidrs``
    (cluster.yaml's ``api_egress_cidrs``; default the internet and VPC, since models download from
    S3 and registries; empty: nothing more). With ``ingress=False`` (a job API's worker namespace,
    whose pods only talk to their own containers over loopback and to AWS) nothing may come in and
    the routers' paths are left out.
    """
    egress: list[dict[str, Any]] = [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": dns_namespace}}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [{"ipBlock": {"cidr": POD_IDENTITY_AGENT}}],
         "ports": [{"protocol": "TCP", "port": POD_IDENTITY_AGENT_PORT}]},
    ]
    if ingress:  # the API namespace: the routers' paths (a job namespace has no routers)
        egress += [
            {"to": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": _TRAFFIC_PORT}]},
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": interceptor_namespace}}}],
             "ports": [{"protocol": "TCP", "port": _INTERCEPTOR_PORT}]},
        ]
    if egress_cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in egress_cidrs]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(_PART_OF)},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"ports": [{"protocol": "TCP", "port": _TRAFFIC_PORT}]},
                {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": prometheus_namespace}}}],
                 "ports": [{"protocol": "TCP", "port": _METRICS_PORT}]},
            ] if ingress else [],
            "egress": egress,
        },
    }


def service_account(api_name: str, namespace: str, component: str) -> dict[str, Any]:
    """The API's ServiceAccount. Its AWS role comes through EKS Pod Identity (an association made
    by the component), so it carries no annotation; no Kubernetes API token is mounted."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": api_name, "namespace": namespace, "labels": labels(api_name, component)},
        "automountServiceAccountToken": False,
    }


def user_containers(spec: WorkloadSpec, shutdown: Shutdown, handler: HandlerContainer | None,
                    direct: DirectTraffic | None = None) -> list[dict[str, Any]]:
    """The pod's containers as the user declared them (image or handler), with their requests,
    probes, preStop hook (:func:`pre_stop`), security context and mounts; ``handler`` is the pod's
    handler container (:func:`handler_container`), if any; ``direct``: it serves the pod's traffic
    itself (see :class:`DirectTraffic`)."""
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
        serves = direct if runtime is not None else None
        settings = dict(serves.settings) if serves is not None else {}
        env = {**runtime_config(spec, runtime, shutdown, **settings).to_env(), **c.env} if runtime is not None else c.env
        container: dict[str, Any] = {"name": c.name, "image": c.image if runtime is None else runtime.image}
        if runtime is not None:
            container["command"] = list(RUNTIME_COMMAND)
        if c.command is not None:
            container["command"] = list(c.command)
        if c.args is not None:
            container["args"] = list(c.args)
        if env:
            container["env"] = [{"name": k, "value": v} for k, v in env.items()]
        resources = resources_of(c)
        if resources:
            container["resources"] = resources
        if serves is not None:
            container["ports"] = [
                {"name": serves.port_name, "containerPort": serves.port, "protocol": "TCP"},
                {"name": RUNTIME_METRICS_PORT_NAME, "containerPort": serves.metrics_port, "protocol": "TCP"},
            ]
        if c.readiness_probe is not None:
            container["readinessProbe"] = _on_traffic_port(probe(c.readiness_probe), spec, serves)
        elif serves is not None:
            # The load balancer's health check too; fails from the drain's start. Answered by the
            # event loop (Envoy answered it in a pod with the sidecar), so a call holding the GIL
            # for a while must not make it flap: 2 s per probe, three misses.
            container["readinessProbe"] = {"httpGet": {"path": serves.readiness_path, "port": serves.port},
                                           "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3}
        elif runtime is not None:
            # Ready once Handler.__init__ returned (the runtime answers 503 while it loads).
            container["readinessProbe"] = {"httpGet": {"path": RUNTIME_READINESS_PATH, "port": spec.pod.port},
                                           "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 3}
        elif c.name == default_probe_owner:
            container["readinessProbe"] = {"tcpSocket": {"port": spec.pod.port}, "periodSeconds": 10,
                                           "timeoutSeconds": 1, "failureThreshold": 3}
        if c.liveness_probe is not None:
            container["livenessProbe"] = _on_traffic_port(probe(c.liveness_probe), spec, serves)
        elif serves is not None:
            container["livenessProbe"] = runtime_liveness_probe(serves.metrics_port)
        elif runtime is not None:
            # The event loop answers while the handler loads and while its threads compute; a generous
            # timeout still tolerates a handler that holds the GIL for a while.
            container["livenessProbe"] = {"httpGet": {"path": RUNTIME_LIVENESS_PATH, "port": spec.pod.port},
                                          "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
        if serves is None:  # a runtime serving traffic drains on SIGTERM itself (the spec refuses a pre_stop)
            container["lifecycle"] = {"preStop": pre_stop(c, shutdown)}
        mounts = []
        if runtime is not None:
            # Our own image: it runs as its non-root user and writes nowhere but /tmp.
            container["securityContext"] = locked_down(RUNTIME_UID)
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
            mounts.append({"name": shm_volume(c.name), "mountPath": "/dev/shm"})
        if mounts:
            container["volumeMounts"] = mounts
        containers.append(container)
    return containers


def runtime_liveness_probe(metrics_port: int) -> dict[str, Any]:
    """The liveness probe of a runtime that serves the pod's traffic: ``GET /healthz`` on its metrics
    port over the pod's loopback, from inside the container (as the sidecar's probe is): that port
    is not under the traffic port's connection cap, so a full traffic port does not restart a busy
    pod, and the NetworkPolicy, which admits it only from Prometheus, does not filter loopback.
    Python without ``site`` and a socket: about 15 ms of CPU every 10 s."""
    script = (
        "import socket,sys\n"
        f"s=socket.create_connection(('127.0.0.1',{metrics_port}),4)\n"
        f"s.sendall(b'GET {RUNTIME_LIVENESS_PATH} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n')\n"
        "sys.exit(0 if s.recv(12)==b'HTTP/1.1 200' else 1)\n"
    )
    return {
        "exec": {"command": ["python", "-I", "-S", "-c", script]},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def _on_traffic_port(rendered: dict[str, Any], spec: WorkloadSpec, serves: DirectTraffic | None) -> dict[str, Any]:
    """A handler container's own probe of ``pod.port``, pointed at the port the runtime listens on
    when it serves the pod's traffic itself (there it is the API's port; ``pod.port`` is unused)."""
    if serves is None:
        return rendered
    for action in ("httpGet", "tcpSocket"):
        if action in rendered and rendered[action].get("port") == spec.pod.port:
            rendered[action] = {**rendered[action], "port": serves.port}
    return rendered


def runtime_config(spec: WorkloadSpec, handler: HandlerContainer, shutdown: Shutdown, **local: Any) -> RuntimeConfig:
    """The serving runtime's settings for the handler container of ``spec``: what a pod's
    ``CORTEX_*`` variables carry, and what `cortex serve` runs (``local`` overrides, such as the
    handler's path on this machine, the host and the port)."""
    settings = handler.container.handler
    assert settings is not None
    values: dict[str, Any] = {
        "handler_path": f"{HANDLER_DIR}/{settings.file_name}",
        "handler_config": settings.config,
        "threads_per_process": settings.threads_per_process,
        "max_batch_size": settings.max_batch_size,
        "batch_interval": settings.batch_interval,
        "port": spec.pod.port,
        # The runtime gets SIGTERM after its preStop sleep, when the pod has drained; it must exit
        # before the kubelet kills the pod, i.e. within what is left of the termination grace period.
        "grace_period": shutdown.runtime_grace_seconds,
        "python_requirements": tuple(settings.python_requirements),
        # A BatchAPI's worker posts /on-job-complete to its app when the job ends.
        "on_job_complete": spec.kind == "BatchAPI",
    }
    return RuntimeConfig(**{**values, **local})


def locked_down(uid: int) -> dict[str, Any]:
    """The securityContext of a container running our own image as ``uid``."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def shm_volume(container_name: str) -> str:
    # Volume names are DNS labels of at most 63 characters; container names are at most 63 too.
    return f"{SHM_VOLUME}-{container_name}"[:63].rstrip("-")


def resources_of(c: ContainerSpec) -> dict[str, dict[str, str]]:
    """The container's requests and limits (memory request = limit; accelerators and their huge pages)."""
    compute = c.compute
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if compute.cpu is not None:
        requests["cpu"] = str(compute.cpu)
    if compute.mem is not None:
        # Requests = limit: a model that outgrows its memory is restarted instead of pushing its
        # neighbours out of the node. /dev/shm (at most mem) is charged to this limit.
        requests["memory"] = limits["memory"] = str(compute.mem)
    else:
        # No mem: a request of DEFAULT_MEM_REQUEST (counted by the spec layer's fit check too), no limit.
        requests["memory"] = str(DEFAULT_MEM_REQUEST)
    if compute.gpu:
        requests[karpenter.GPU_RESOURCE] = limits[karpenter.GPU_RESOURCE] = str(compute.gpu)
    if compute.inf:
        hugepages = str(Quantity(HUGEPAGES_PER_INF.value * compute.inf, "BinarySI"))
        requests[karpenter.NEURON_RESOURCE] = limits[karpenter.NEURON_RESOURCE] = str(compute.inf)
        requests[karpenter.HUGEPAGES_RESOURCE] = limits[karpenter.HUGEPAGES_RESOURCE] = hugepages
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _probe_port(probe: ProbeSpec | None) -> int | None:
    if probe is None:
        return None
    handler = probe.http_get or probe.tcp_socket
    return handler.port if handler is not None else None


def probe(p: ProbeSpec) -> dict[str, Any]:
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


def pre_stop(c: ContainerSpec, shutdown: Shutdown) -> dict[str, Any]:
    """The preStop hook of a user container: it keeps the container running (and its SIGTERM away)
    for ``shutdown.prestop_sleep_seconds``, while the pod drains what it accepted.

    Without a ``pre_stop`` that is a plain ``sleep``. An ``exec`` pre_stop runs after that sleep,
    just before the SIGTERM, as ``/bin/sh -c 'sleep N; exec "$@"' -- <command...>`` (the command's
    words are passed as arguments, never parsed by the shell): the image needs ``/bin/sh``, otherwise
    the hook fails at once and the app gets SIGTERM while the pod still sends it requests. (An
    ``http_get`` pre_stop, which Kubernetes cannot delay, is refused by the spec.)
    """
    sleep = shutdown.prestop_sleep_seconds
    if c.pre_stop is None:
        return {"sleep": {"seconds": sleep}}
    assert c.pre_stop.exec is not None  # the spec refuses http_get
    return {"exec": {"command": ["/bin/sh", "-c", f'sleep {sleep}; exec "$@"', "--", *c.pre_stop.exec.command]}}


def node_affinity(spec: WorkloadSpec, allowed: Sequence[NodeGroupSpec] | None) -> dict[str, Any]:
    """Required: one of the allowed Cortex node groups (never the system nodes); preferred: higher priority."""
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


def tolerations(spec: WorkloadSpec, allowed: Sequence[NodeGroupSpec] | None) -> list[dict[str, str]]:
    """Tolerations of the accelerators the pod requests and of the groups the API names."""
    # The accelerators the pod requests, plus the taints of node groups the API names explicitly (a
    # CPU API pinned to a GPU group means it); an unpinned CPU API keeps off accelerator nodes.
    found = [{"key": _RESOURCE[a], "operator": "Exists", "effect": "NoSchedule"} for a in accelerators(spec)]
    if spec.node_groups is not None and allowed is not None:
        for group in allowed:
            for t in karpenter.tolerations_for(group.instance_type):
                if t not in found:
                    found.append(t)
    return sorted(found, key=lambda t: (t["key"], t["effect"]))


def iam_policy(spec: WorkloadSpec, partition: str = "aws") -> dict[str, Any] | None:
    """The API role's inline policy: exactly what ``iam.s3_read`` and ``iam.s3_write`` ask for, or
    None (no policy). ``s3_write`` grants ``s3:PutObject`` on the same key patterns (statement
    ``WriteObjects``), nothing to delete or list.

    For each ``s3://bucket/prefix``: ``s3:GetObject`` on the prefix's keys, and ``s3:ListBucket``
    on the bucket only for keys under the prefixes (an ``s3:prefix`` condition). A prefix ending in
    ``/`` (or a whole bucket) covers every key below it (``prefix*``); one without a trailing ``/``
    is a path: the key itself and the keys below ``prefix/``, so ``s3://b/resnet50`` does not grant
    ``resnet50-private/...``. ``partition`` defaults to ``aws``.
    """
    prefixes: dict[str, list[str]] = {}
    for uri in spec.iam.s3_read:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        prefixes.setdefault(bucket, [])
        if prefix not in prefixes[bucket]:
            prefixes[bucket].append(prefix)
    writes = [f"arn:{partition}:s3:::{bucket}/{pattern}" for uri in dict.fromkeys(spec.iam.s3_write)
              for bucket, _, prefix in [uri.removeprefix("s3://").partition("/")] for pattern in _key_patterns(prefix)]
    if not prefixes and not writes:
        return None
    statements: list[dict[str, Any]] = []
    if prefixes:
        statements.append({
            "Sid": "ReadObjects",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": [f"arn:{partition}:s3:::{bucket}/{pattern}" for bucket, ps in prefixes.items()
                         for prefix in ps for pattern in _key_patterns(prefix)],
        })
    if writes:
        statements.append({"Sid": "WriteObjects", "Effect": "Allow", "Action": "s3:PutObject", "Resource": writes})
    for number, (bucket, ps) in enumerate(prefixes.items()):
        statement: dict[str, Any] = {
            "Sid": f"ListBucket{number}",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:{partition}:s3:::{bucket}",
        }
        if "" not in ps:  # a whole bucket given: list all of it
            statement["Condition"] = {"StringLike": {"s3:prefix": [pattern for p in ps for pattern in _key_patterns(p)]}}
        statements.append(statement)
    return policy_document(statements)


def _key_patterns(prefix: str) -> list[str]:
    """The S3 key patterns of an ``iam.s3_read`` prefix (see :func:`iam_policy`)."""
    if prefix == "" or prefix.endswith("/"):
        return [f"{prefix}*"]
    return [prefix, f"{prefix}/*"]
