"""What a plan says in Cortex's terms: each API and each node group, read back from the resources.

The plan stores resources, not specs, and the base side of a pull request is planned by the base
commit's cortex; so the preview reads the Cortex view back from what any version renders, by
resource type and label, never by API kind:

- an API is a ``cortex:api:<Kind>`` component (``RuntimeImage`` is not an API); its children
  give the rest: the pod template of its Deployment (images, requests, the
  ``cortex.dev/node-group`` affinity), replicas from its KEDA ScaledObject (else the Deployment's
  ``replicas``), the endpoint from its Ingress paths, ``max_concurrency`` / ``max_queue_length``
  from the Envoy circuit breaker of its ``app`` cluster, a splitter's weights from its Envoy routes.
  A kind added later (AsyncAPI, BatchAPI, TaskAPI) shows what of this it has; what it lacks is
  None and shows as "–".
- a node group is the set of Karpenter NodePools with one ``cortex.dev/node-group`` label:
  ``instance_types`` (the instance-type requirement), ``spot`` (spot capacity first),
  ``min_instances`` (a static pool's ``replicas``), ``max_instances`` (that plus the dynamic pool's
  ``limits.nodes``), or an EKS managed node group (``scalingConfig``).
- a job API's worker pod (BatchAPI, TaskAPI: :func:`job_workers`) is the pod of the ``batch/v1``
  Job its gateway creates per job, read from the job template ConfigMap among its children (data
  key ``job.json``): its requests and node-group affinity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml

from cortex_iac.plan.values import SECRET, UNKNOWN

NODE_GROUP_LABEL = "cortex.dev/node-group"
_NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
_MANAGED_NODE_GROUPS = ("aws:eks/nodeGroup:NodeGroup", "eks:index:ManagedNodeGroup")
_WORKLOADS = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet")
_SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
_INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
_CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
_NOT_APIS = ("cortex:api:RuntimeImage",)
# The container cortex_iac adds to each pod (cortex_iac.render.realtime.PROXY_CONTAINER); its
# requests count in the pod's, its image is not the API's.
SIDECAR_CONTAINER = "proxy"
# The API kinds' component type names -> Cortex's kind names; others keep their type name.
_KIND_NAMES = {"RealtimeApi": "RealtimeAPI", "AsyncApi": "AsyncAPI", "BatchApi": "BatchAPI", "TaskApi": "TaskAPI"}


@dataclass(frozen=True)
class Requests:
    """What one pod requests in all (every container, sidecar included; huge pages count as memory,
    as :func:`cortex_iac.specs.placement.pod_requests` counts them)."""

    cpu: Decimal = Decimal(0)
    memory: Decimal = Decimal(0)
    gpu: int = 0
    inf: int = 0


@dataclass(frozen=True)
class ApiView:
    """One API as the plan renders it; None where the plan does not say (or the kind has no such thing)."""

    urn: str
    name: str
    kind: str
    images: dict[str, str] = field(default_factory=dict)  # container -> image (sidecar left out)
    compute: dict[str, dict[str, str]] = field(default_factory=dict)  # container -> requests
    requests: Requests | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    max_concurrency: int | None = None
    max_queue_length: int | None = None
    endpoint: str | None = None
    node_groups: tuple[str, ...] | None = None  # (): any Cortex group; None: not placed on one (system nodes)
    weights: dict[str, int] | None = None  # TrafficSplitter: API -> weight

    def fields(self) -> dict[str, str | None]:
        """The summary's columns as text (None: not applicable / not known)."""
        compute = None
        if self.compute:
            compute = "; ".join(
                f"{c}: " + ", ".join(f"{k} {v}" for k, v in sorted(r.items())) for c, r in sorted(self.compute.items())
            )
        replicas = None
        if self.min_replicas is not None or self.max_replicas is not None:
            replicas = f"{_dash(self.min_replicas)}–{_dash(self.max_replicas)}"
        return {
            "kind": self.kind,
            "image": ", ".join(f"{c}={i}" for c, i in sorted(self.images.items())) if self.images else None,
            "replicas": replicas,
            "compute": compute,
            "max_concurrency": None if self.max_concurrency is None else str(self.max_concurrency),
            "max_queue_length": None if self.max_queue_length is None else str(self.max_queue_length),
            "endpoint": self.endpoint,
            "node_groups": _groups_text(self.node_groups) if self.requests is not None else None,
            "weights": None if self.weights is None else ", ".join(f"{a} {w}" for a, w in sorted(self.weights.items())),
        }


@dataclass(frozen=True)
class NodeGroupView:
    """One node group as the plan renders it."""

    name: str
    urns: tuple[str, ...]
    instance_types: tuple[str, ...]
    spot: bool
    min_instances: int | None
    max_instances: int | None

    def fields(self) -> dict[str, str | None]:
        """The summary's columns as text."""
        return {
            "instance_types": ", ".join(self.instance_types) or None,
            "min_instances": _text(self.min_instances),
            "max_instances": _text(self.max_instances),
            "spot": "yes" if self.spot else "no",
        }


def _groups_text(groups: tuple[str, ...] | None) -> str:
    if groups is None:
        return "(system nodes)"
    return ", ".join(groups) or "any"


def _dash(value: int | None) -> str:
    return "?" if value is None else str(value)


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def _get(obj: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(key, int):
            if not isinstance(obj, list) or key >= len(obj):
                return None
            obj = obj[key]
        elif isinstance(obj, dict):
            obj = obj.get(key)
        else:
            return None
    return obj


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity as a number (None when it is not one, e.g. unknown)."""
    from cortex_iac.specs.quantity import Quantity

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    if not isinstance(value, str) or value in (UNKNOWN, SECRET):
        return None
    try:
        return Quantity.parse(value).value
    except ValueError:
        return None


def _resources_and_children(plan: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The plan's resources (those with inputs), and their direct children by parent URN."""
    resources = [r for r in plan.get("resources", []) if isinstance(r, dict) and isinstance(r.get("inputs"), dict)]
    children: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        if r.get("parent"):
            children.setdefault(r["parent"], []).append(r)
    return resources, children


def api_views(plan: dict[str, Any]) -> dict[str, ApiView]:
    """Every API of the plan, by URN of its component."""
    resources, children = _resources_and_children(plan)
    out: dict[str, ApiView] = {}
    for r in resources:
        type_ = r["type"]
        if not type_.startswith("cortex:api:") or type_ in _NOT_APIS:
            continue
        kind = type_.rsplit(":", 1)[1]
        out[r["urn"]] = _api_view(r, _KIND_NAMES.get(kind, kind), _descendants(r["urn"], children))
    return out


def _descendants(urn: str, children: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    found, todo = [], list(children.get(urn, []))
    while todo:
        r = todo.pop(0)
        found.append(r)
        todo.extend(children.get(r["urn"], []))
    return sorted(found, key=lambda r: r["urn"])


def _api_view(component: dict[str, Any], kind: str, parts: list[dict[str, Any]]) -> ApiView:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in parts:
        by_type.setdefault(r["type"], []).append(r)
    images: dict[str, str] = {}
    compute: dict[str, dict[str, str]] = {}
    requests: Requests | None = None
    node_groups: tuple[str, ...] | None = None
    min_replicas = max_replicas = None
    workloads = [r for t in _WORKLOADS for r in by_type.get(t, [])]
    if workloads:
        spec = _get(workloads[0]["inputs"], "spec")
        pod = _get(spec, "template", "spec")
        containers = _get(pod, "containers")
        containers = containers if isinstance(containers, list) else []
        cpu, memory, gpu, inf = Decimal(0), Decimal(0), 0, 0
        for c in containers:
            if not isinstance(c, dict):
                continue
            name = str(c.get("name"))
            req = _get(c, "resources", "requests")
            req = req if isinstance(req, dict) else {}
            cpu += quantity(req.get("cpu")) or 0
            memory += (quantity(req.get("memory")) or 0) + (quantity(req.get("hugepages-2Mi")) or 0)
            gpu += int(quantity(req.get("nvidia.com/gpu")) or 0)
            inf += int(quantity(req.get("aws.amazon.com/neuron")) or 0)
            if name == SIDECAR_CONTAINER:
                continue
            if isinstance(c.get("image"), str):
                images[name] = "(known after apply)" if c["image"] == UNKNOWN else c["image"]
            shown = {k: str(v) for k, v in req.items() if k != "hugepages-2Mi"}
            if shown:
                compute[name] = shown
        requests = Requests(cpu, memory, gpu, inf)
        node_groups = _affinity_groups(pod)
        replicas = _int(_get(spec, "replicas"))
        min_replicas = max_replicas = replicas
    scaled = by_type.get(_SCALED_OBJECT, [])
    if scaled:
        spec = _get(scaled[0]["inputs"], "spec")
        min_replicas = _int(_get(spec, "minReplicaCount"))
        max_replicas = _int(_get(spec, "maxReplicaCount"))
        if min_replicas is None and isinstance(spec, dict) and "minReplicaCount" not in spec:
            min_replicas = 0  # KEDA's default
    endpoint = None
    paths = []
    for ingress in by_type.get(_INGRESS, []):
        for rule in _get(ingress["inputs"], "spec", "rules") or []:
            for p in _get(rule, "http", "paths") or []:
                if isinstance(_get(p, "path"), str):
                    paths.append(p["path"])
    if paths:
        endpoint = ", ".join(sorted(set(paths)))
    max_concurrency = max_queue_length = None
    weights = None
    for cm in by_type.get(_CONFIG_MAP, []):
        data = _get(cm["inputs"], "data")
        if not isinstance(data, dict) or "envoy.yaml" not in data:
            continue
        envoy = _envoy(data["envoy.yaml"])
        for cluster in _get(envoy, "static_resources", "clusters") or []:
            if _get(cluster, "name") == "app":
                thresholds = _get(cluster, "circuit_breakers", "thresholds", 0)
                max_concurrency = _int(_get(thresholds, "max_requests"))
                max_queue_length = _int(_get(thresholds, "max_pending_requests"))
        found = _weights(envoy)
        if found:
            weights = found
    return ApiView(
        urn=component["urn"], name=component["name"], kind=kind, images=images, compute=compute, requests=requests,
        min_replicas=min_replicas, max_replicas=max_replicas, max_concurrency=max_concurrency,
        max_queue_length=max_queue_length, endpoint=endpoint, node_groups=node_groups, weights=weights,
    )


def _envoy(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _weights(envoy: Any) -> dict[str, int] | None:
    for listener in _get(envoy, "static_resources", "listeners") or []:
        for chain in _get(listener, "filter_chains") or []:
            for f in _get(chain, "filters") or []:
                for host in _get(f, "typed_config", "route_config", "virtual_hosts") or []:
                    for route in _get(host, "routes") or []:
                        clusters = _get(route, "route", "weighted_clusters", "clusters")
                        if isinstance(clusters, list) and clusters:
                            return {str(c.get("name")): _int(c.get("weight")) or 0 for c in clusters if isinstance(c, dict)}
    return None


# The job template ConfigMap's key (cortex_iac.jobs.contract.JOB_TEMPLATE_KEY), read here by name.
_JOB_TEMPLATE_KEY = "job.json"


@dataclass(frozen=True)
class JobWorkerView:
    """The worker pod of a job API (one per worker of each submitted job), as its job template says;
    ``problem`` says why the plan does not tell (then ``requests`` is None)."""

    requests: Requests | None
    node_groups: tuple[str, ...] | None = None
    problem: str | None = None


def job_workers(plan: dict[str, Any]) -> dict[str, JobWorkerView]:
    """The worker pod of every API with a job template among its children, by the API's URN."""
    resources, by_parent = _resources_and_children(plan)
    out: dict[str, JobWorkerView] = {}
    for r in resources:
        if not r["type"].startswith("cortex:api:") or r["type"] in _NOT_APIS:
            continue
        for part in _descendants(r["urn"], by_parent):
            data = _get(part["inputs"], "data") if part["type"] == _CONFIG_MAP else None
            if isinstance(data, dict) and _JOB_TEMPLATE_KEY in data:
                out[r["urn"]] = _job_worker(data[_JOB_TEMPLATE_KEY])
                break
    return out


def _job_worker(text: Any) -> JobWorkerView:
    if text == UNKNOWN:
        return JobWorkerView(None, None, "its job template is only known after apply (it holds the job table's name)")
    try:
        job = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        job = None
    pod = _get(job, "spec", "template", "spec")
    if not isinstance(pod, dict):
        return JobWorkerView(None, None, "its job template holds no pod")
    return JobWorkerView(pod_requests_of(pod), _affinity_groups(pod))


def _container_requests(c: Any) -> Requests:
    req = _get(c, "resources", "requests")
    req = req if isinstance(req, dict) else {}
    return Requests(
        quantity(req.get("cpu")) or Decimal(0),
        (quantity(req.get("memory")) or Decimal(0)) + (quantity(req.get("hugepages-2Mi")) or Decimal(0)),
        int(quantity(req.get("nvidia.com/gpu")) or 0),
        int(quantity(req.get("aws.amazon.com/neuron")) or 0),
    )


def _plus(a: Requests, b: Requests) -> Requests:
    return Requests(a.cpu + b.cpu, a.memory + b.memory, a.gpu + b.gpu, a.inf + b.inf)


def _most(a: Requests, b: Requests) -> Requests:
    return Requests(max(a.cpu, b.cpu), max(a.memory, b.memory), max(a.gpu, b.gpu), max(a.inf, b.inf))


def pod_requests_of(pod: dict[str, Any]) -> Requests:
    """A pod's effective requests as Kubernetes schedules it: its containers plus its sidecars
    (init containers with ``restartPolicy: Always``), or more where a plain init container (with
    the sidecars started before it) asks more, per resource."""
    sidecars = Requests()
    peak = Requests()
    for c in _get(pod, "initContainers") or []:
        if _get(c, "restartPolicy") == "Always":
            sidecars = _plus(sidecars, _container_requests(c))
        else:
            peak = _most(peak, _plus(sidecars, _container_requests(c)))
    running = sidecars
    for c in _get(pod, "containers") or []:
        running = _plus(running, _container_requests(c))
    return _most(peak, running)


def _affinity_groups(pod: Any) -> tuple[str, ...] | None:
    terms = _get(pod, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
    for term in terms or []:
        for expr in _get(term, "matchExpressions") or []:
            if _get(expr, "key") == NODE_GROUP_LABEL and _get(expr, "operator") == "In":
                values = _get(expr, "values")
                if isinstance(values, list):
                    return tuple(str(v) for v in values)
            if _get(expr, "key") == NODE_GROUP_LABEL and _get(expr, "operator") == "Exists":
                return ()
    selector = _get(pod, "nodeSelector", NODE_GROUP_LABEL)
    return (selector,) if isinstance(selector, str) else None


def node_group_views(plan: dict[str, Any]) -> dict[str, NodeGroupView]:
    """Every node group of the plan, by name (Karpenter pools by their label; EKS managed groups by name)."""
    pools: dict[str, list[dict[str, Any]]] = {}
    out: dict[str, NodeGroupView] = {}
    for r in plan.get("resources", []):
        inputs = r.get("inputs") if isinstance(r, dict) else None
        if not isinstance(inputs, dict):
            continue
        if r["type"] == _NODE_POOL:
            group = _get(inputs, "metadata", "labels", NODE_GROUP_LABEL)
            if not isinstance(group, str):
                group = str(_get(inputs, "metadata", "name") or r["name"])
            pools.setdefault(group, []).append(r)
        elif r["type"] in _MANAGED_NODE_GROUPS:
            scaling: dict[str, Any] = inputs["scalingConfig"] if isinstance(inputs.get("scalingConfig"), dict) else {}
            listed = inputs.get("instanceTypes")
            out[r["name"]] = NodeGroupView(
                name=r["name"], urns=(r["urn"],),
                instance_types=tuple(t for t in listed if isinstance(t, str)) if isinstance(listed, list) else (),
                spot=inputs.get("capacityType") == "SPOT",
                min_instances=_int(scaling.get("minSize")), max_instances=_int(scaling.get("maxSize")),
            )
    for group, rs in pools.items():
        pool_types: list[str] = []
        spot = False
        floor: int | None = 0
        dynamic: int | None = 0
        for r in rs:
            spec = _get(r["inputs"], "spec")
            for q in _get(spec, "template", "spec", "requirements") or []:
                if _get(q, "key") == "node.kubernetes.io/instance-type" and _get(q, "operator") == "In":
                    values = _get(q, "values")
                    pool_types += [t for t in values if isinstance(t, str) and t not in pool_types] if isinstance(values, list) else []
                if _get(q, "key") == "karpenter.sh/capacity-type":
                    capacity = _get(q, "values")
                    spot = spot or (isinstance(capacity, list) and capacity[:1] == ["spot"])
            if isinstance(spec, dict) and "replicas" in spec:
                n = _int(spec["replicas"])
                floor = None if n is None or floor is None else floor + n
            else:
                n = _int(_get(spec, "limits", "nodes"))
                dynamic = None if n is None or dynamic is None else dynamic + n
        most = None if floor is None or dynamic is None else floor + dynamic
        out[group] = NodeGroupView(
            name=group, urns=tuple(sorted(r["urn"] for r in rs)), instance_types=tuple(pool_types), spot=spot,
            min_instances=floor, max_instances=most,
        )
    return dict(sorted(out.items()))
