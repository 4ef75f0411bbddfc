"""One Cortex node group as Karpenter objects: an ``EC2NodeClass`` and its ``NodePool``\\ s.

Pure functions of a :class:`~cortex_iac.specs.NodeGroupSpec`; Karpenter v1 API (``karpenter.sh/v1``,
``karpenter.k8s.aws/v1``), checked against the v1.14 CRDs.

How Cortex's node group fields are realised:

- ``instance_type`` + ``spot_config.instance_distribution`` -> ``node.kubernetes.io/instance-type``
  requirement; ``kubernetes.io/arch`` from the instance table (the spec makes all types share it).
- ``spot`` -> capacity types ``[spot, on-demand]``: Karpenter launches spot first and falls back to
  on-demand when spot is unavailable. Otherwise ``[on-demand]``.
- ``priority`` -> NodePool ``weight`` (both 1..100, higher first).
- ``max_instances`` -> NodePool ``limits``: ``nodes`` plus cpu / memory / accelerators of the largest
  allowed type, times the node count the pool may hold.
- ``min_instances`` -> a *static* NodePool (``spec.replicas``, alpha in Karpenter v1.14, needs the
  chart value ``settings.featureGates.staticCapacity: true``) holding the floor; the dynamic pool
  then covers ``max_instances - min_instances``. ``min_instances: 0`` renders no floor.
- ``spot_config.on_demand_base_capacity`` -> that many floor nodes in a second, on-demand-only static
  pool. Karpenter keeps no on-demand count outside a static pool, so it must be <= ``min_instances``.
- ``spot_config.on_demand_percentage_above_base_capacity``: 0 (spot preferred) or 100 (on-demand
  only); Karpenter cannot hold a ratio between the two, so other values are rejected.
- ``spot_config.max_price`` / ``instance_pools``: Karpenter has no equivalent (it bids at most the
  on-demand price and chooses pools with the price-capacity-optimized strategy); rejected.
- ``instance_volume_*`` -> the root volume in ``blockDeviceMappings``, always encrypted. EC2 cannot
  boot from st1/sc1 (rejected), and io1 needs ``instance_volume_iops``.
- Nodes run the EKS-optimized AL2023 AMI (:data:`cortex_iac.versions.KARPENTER_AMI_ALIAS`), IMDSv2 only with hop limit 1.
- GPU (NVIDIA) and Inferentia groups get a ``<resource>.present: "true"`` label and a
  ``NoSchedule`` taint keyed by the device plugin's resource name (``nvidia.com/gpu``,
  ``aws.amazon.com/neuron``); pods use :func:`tolerations_for`. Every node carries
  :data:`NODE_GROUP_LABEL` so APIs can be pinned to their ``node_groups``.
- Inferentia groups pre-allocate the 2 MiB huge pages their pods request (:data:`HUGEPAGES_PER_INF`
  per chip) through the node class's ``userData`` (:func:`node_hugepages`), and a ``NodeOverlay``
  (:func:`node_overlay`) tells Karpenter's scheduling simulation that their nodes offer them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cortex_iac.errors import SpecError
from cortex_iac.instance_types import InstanceType, get_instance_type
from cortex_iac.specs import CLUSTER_NAME_TAG
from cortex_iac.specs.cluster import RESERVED_TAGS
from cortex_iac.specs.placement import HUGEPAGE_BYTES, HUGEPAGES_PER_INF
from cortex_iac.specs.quantity import Quantity
from cortex_iac.versions import KARPENTER_AMI_ALIAS

if TYPE_CHECKING:
    from cortex_iac.specs import NodeGroupSpec

NODE_POOL_API_VERSION = "karpenter.sh/v1"
NODE_CLASS_API_VERSION = "karpenter.k8s.aws/v1"
# Alpha in v1.14: needs the chart value settings.featureGates.nodeOverlay (render/addons.py).
NODE_OVERLAY_API_VERSION = "karpenter.sh/v1alpha1"

# Node label naming the Cortex node group; API pods select node groups with it.
NODE_GROUP_LABEL = "cortex.dev/node-group"

# Extended resource names of the NVIDIA and Neuron device plugins, reused as label and taint keys so
# that "may run on a GPU node" and "requests a GPU" read the same.
GPU_RESOURCE = "nvidia.com/gpu"
NEURON_RESOURCE = "aws.amazon.com/neuron"

# Huge pages of Inferentia pods: RealtimeApi requests HUGEPAGES_PER_INF of HUGEPAGES_RESOURCE per
# chip, and the nodes of an Inferentia group pre-allocate that much per chip they have. Cortex's
# figure from the AWS Neuron docs: every Inferentia chip needs 128 huge pages of 2 MiB.
HUGEPAGES_RESOURCE = "hugepages-2Mi"
_HUGEPAGE_BYTES = HUGEPAGE_BYTES
# Kept when the node reboots: systemd-sysctl applies it early in boot, before memory fragments.
_HUGEPAGES_SYSCTL_FILE = "/etc/sysctl.d/90-cortex-hugepages.conf"
# MIME boundary of the userData archive (Karpenter's own serializer uses the same one).
_MIME_BOUNDARY = "//"

# Tag key (value: the cluster name) by which EC2NodeClasses select subnets and security groups.
DISCOVERY_TAG = "karpenter.sh/discovery"
# AL2023's root device; Karpenter's default mapping for the family uses the same name.
ROOT_DEVICE = "/dev/xvda"

# Nodes are replaced after 30 days (Karpenter's default, stated so it is visible and reviewed), and a
# drain may take at most a day: a PodDisruptionBudget that can never be met must not keep an expired
# or drifted node (and its unpatched AMI) alive for ever.
EXPIRE_AFTER = "720h"
TERMINATION_GRACE_PERIOD = "24h"
# Serving traffic follows KEDA scaling, which settles within minutes (Cortex's default downscale
# stabilization is 5m); consolidating sooner would churn nodes between bursts.
CONSOLIDATE_AFTER = "5m"

_MAX_NAME = 63  # label values (karpenter.sh/nodepool, karpenter.k8s.aws/ec2nodeclass) hold the names
_FLOOR = "-floor"
_FLOOR_ON_DEMAND = "-floor-on-demand"
_ON_DEMAND = "-on-demand"
# EC2 refuses HDD volumes as boot volumes.
def object_name(cluster_name: str, group_name: str, suffix: str = "") -> str:
    """Kubernetes name ``<cluster>-<group><suffix>``, lower-cased, at most 63 characters.

    Karpenter copies NodePool and EC2NodeClass names into node label values, hence the limit. A name
    that would be longer keeps its suffix and gets its prefix shortened with a hash of it, so it stays
    stable and unique.
    """
    prefix = re.sub(r"[^a-z0-9-]+", "-", f"{cluster_name}-{group_name}".lower()).strip("-")
    if len(prefix) + len(suffix) > _MAX_NAME:
        digest = hashlib.sha256(prefix.encode()).hexdigest()[:8]
        prefix = f"{prefix[: _MAX_NAME - len(suffix) - len(digest) - 1].rstrip('-')}-{digest}"
    return prefix + suffix


def node_class_name(cluster_name: str, group_name: str) -> str:
    """Name of a node group's EC2NodeClass: :func:`object_name` without suffix, which its dynamic
    NodePool and NodeOverlay carry too."""
    return object_name(cluster_name, group_name)


def accelerator_resource(instance_type: InstanceType) -> str | None:
    """The device plugin resource an instance type offers (GPU or Neuron), or None."""
    if instance_type.gpus:
        return GPU_RESOURCE
    if instance_type.neuron_devices:
        return NEURON_RESOURCE
    return None


def accelerator_label(resource: str) -> str:
    """Node label ``<resource>.present`` (value ``"true"``) of the nodes offering ``resource``.

    ``nvidia.com/gpu.present`` is the label the NVIDIA device plugin chart's default node affinity
    accepts in place of node-feature-discovery; the Neuron label mirrors it, and the Neuron device
    plugin selects its nodes by it (render/addons.py).
    """
    return f"{resource}.present"


def node_hugepages(instance_type: InstanceType) -> Quantity:
    """Bytes of 2 MiB huge pages a node of this type pre-allocates: :data:`HUGEPAGES_PER_INF` per
    Inferentia chip, 0 for every other type."""
    return Quantity(HUGEPAGES_PER_INF.value * instance_type.neuron_devices, "BinarySI")


def taints_for(instance_type: str) -> list[dict[str, str]]:
    """Node taints of a node group of this instance type: accelerators repel other workloads.

    Raises KeyError for a type missing from :data:`cortex_iac.instance_types.INSTANCE_TYPES`.
    """
    resource = accelerator_resource(get_instance_type(instance_type))
    return [] if resource is None else [{"key": resource, "value": "true", "effect": "NoSchedule"}]


def tolerations_for(instance_type: str) -> list[dict[str, str]]:
    """Pod tolerations needed to run on a node group of this instance type ([] for plain CPU types).

    They use ``operator: Exists``, so they match the taint whatever its value.
    """
    return [{"key": t["key"], "operator": "Exists", "effect": t["effect"]} for t in taints_for(instance_type)]


def instance_types(group: NodeGroupSpec) -> list[InstanceType]:
    """The instance types a group may launch: ``instance_type`` first, then the spot distribution.

    The spec has already checked that they share architecture and accelerators.
    """
    names = [group.instance_type]
    if group.spot and group.spot_config is not None:
        names += [n for n in group.spot_config.instance_distribution if n not in names]
    return [get_instance_type(n) for n in names]


def check_tags(tags: Mapping[str, str]) -> None:
    """Raise SpecError if ``tags`` (given to a NodeGroup component directly) sets a tag EKS or
    Karpenter reserves for itself (cluster.yaml's ``tags`` are checked by the spec)."""
    for key in tags:
        if key in RESERVED_TAGS or key.startswith("kubernetes.io/cluster"):
            raise SpecError(f"tags: {key!r} is reserved by EKS or Karpenter and cannot be set")


def floor_sizes(group: NodeGroupSpec) -> dict[str, int]:
    """Static (floor) NodePools of a group, by name suffix, with their node counts.

    ``-floor`` holds ``min_instances`` nodes, less the ``on_demand_base_capacity`` of a spot group
    (up to ``min_instances`` of it), which ``-floor-on-demand`` holds. Pools with no nodes are left
    out, so ``min_instances: 0`` gives ``{}``.
    """
    on_demand = min(_on_demand_base(group), group.min_instances)
    sizes = {_FLOOR: group.min_instances - on_demand, _FLOOR_ON_DEMAND: on_demand}
    return {suffix: n for suffix, n in sizes.items() if n > 0}


def on_demand_base_above_floor(group: NodeGroupSpec) -> int:
    """How many of a spot group's ``on_demand_base_capacity`` nodes lie above ``min_instances``: the
    node limit of its on-demand base pool (:func:`on_demand_base_pool`), 0 for most groups."""
    return max(0, _on_demand_base(group) - group.min_instances)


def _on_demand_base(group: NodeGroupSpec) -> int:
    return group.spot_config.on_demand_base_capacity if group.spot and group.spot_config else 0


def node_class(
    cluster_name: str,
    group: NodeGroupSpec,
    *,
    node_role: str,
    subnet_selector_tags: Mapping[str, str],
    security_group_selector_tags: Mapping[str, str],
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The group's EC2NodeClass.

    ``node_role`` is the IAM role name of the nodes (Karpenter makes the instance profile);
    subnets and security groups are found by the given tags. ``tags`` (default none) go on every
    instance, volume and network interface, with ``cortex.dev/cluster-name`` and the group name
    added. IMDSv2 is required with a hop limit of 1, so pods cannot use the node's role.
    Inferentia groups get ``userData`` pre-allocating their huge pages (:func:`node_hugepages`).
    """
    all_tags = {**(tags or {}), CLUSTER_NAME_TAG: cluster_name, NODE_GROUP_LABEL: group.name}
    node_class: dict[str, Any] = {
        "apiVersion": NODE_CLASS_API_VERSION,
        "kind": "EC2NodeClass",
        "metadata": {"name": node_class_name(cluster_name, group.name), "labels": {NODE_GROUP_LABEL: group.name}},
        "spec": {
            "role": node_role,
            "amiSelectorTerms": [{"alias": KARPENTER_AMI_ALIAS}],
            "subnetSelectorTerms": [{"tags": dict(subnet_selector_tags)}],
            "securityGroupSelectorTerms": [{"tags": dict(security_group_selector_tags)}],
            "metadataOptions": {
                "httpEndpoint": "enabled",
                "httpProtocolIPv6": "disabled",
                "httpPutResponseHopLimit": 1,
                "httpTokens": "required",
            },
            "blockDeviceMappings": [_root_volume(group)],
            "tags": all_tags,
        },
    }
    hugepages = node_hugepages(get_instance_type(group.instance_type))
    if hugepages.value:
        node_class["spec"]["userData"] = _hugepages_user_data(hugepages)
    return node_class


def node_overlay(cluster_name: str, group: NodeGroupSpec) -> dict[str, Any] | None:
    """The group's ``NodeOverlay`` (Inferentia groups only; None for the others).

    Karpenter's instance types list no huge pages, so without it Karpenter would find no instance
    type for a pod requesting ``hugepages-2Mi`` and never launch a node for it. The overlay adds
    the pages the group's node class pre-allocates to the capacity Karpenter simulates, for the
    NodePools carrying the group's :data:`NODE_GROUP_LABEL` (overlays match NodePool template
    labels). Needs the ``nodeOverlay`` feature gate of the Karpenter chart.
    """
    hugepages = node_hugepages(get_instance_type(group.instance_type))
    if not hugepages.value:
        return None
    return {
        "apiVersion": NODE_OVERLAY_API_VERSION,
        "kind": "NodeOverlay",
        "metadata": {"name": object_name(cluster_name, group.name), "labels": {NODE_GROUP_LABEL: group.name}},
        "spec": {
            "requirements": [{"key": NODE_GROUP_LABEL, "operator": "In", "values": [group.name]}],
            "capacity": {HUGEPAGES_RESOURCE: str(hugepages)},
        },
    }


def node_pool(cluster_name: str, group: NodeGroupSpec) -> dict[str, Any]:
    """The group's dynamic NodePool: scales with pending pods up to ``max_instances - min_instances``.

    Consolidation removes empty or underutilised nodes after :data:`CONSOLIDATE_AFTER`; budgets let
    at most 10% of the pool's nodes be disrupted at once, and only one node at a time for
    underutilisation (which moves running pods).
    """
    types = instance_types(group)
    pool = _pool(cluster_name, group, object_name(cluster_name, group.name), types, _dynamic_capacity_types(group))
    pool["spec"]["weight"] = group.priority
    pool["spec"]["limits"] = _limits(types, group.max_instances - group.min_instances - on_demand_base_above_floor(group))
    pool["spec"]["disruption"] = {
        "consolidationPolicy": "WhenEmptyOrUnderutilized",
        "consolidateAfter": CONSOLIDATE_AFTER,
        "budgets": [{"nodes": "10%"}, {"nodes": "1", "reasons": ["Underutilized"]}],
    }
    return pool


def on_demand_base_pool(cluster_name: str, group: NodeGroupSpec) -> dict[str, Any] | None:
    """The group's on-demand base pool, for a spot group whose ``on_demand_base_capacity`` exceeds
    ``min_instances`` (None otherwise): Cortex's "the first N instances on-demand, the rest spot".

    A dynamic on-demand NodePool limited to the base nodes above the floor, weighing one more than
    the group's spot pool (``priority + 1``; the spec keeps priority below 100), so Karpenter
    launches its nodes first and turns to spot once it is full. E.g. base 3, min 0, max 5: nodes 1-3
    on-demand, 4-5 spot. Like the spot pool it scales down when idle, so the base is the first
    nodes launched, not nodes kept running (``min_instances`` is what keeps nodes).
    """
    extra = on_demand_base_above_floor(group)
    if not extra:
        return None
    types = instance_types(group)
    pool = _pool(cluster_name, group, object_name(cluster_name, group.name, _ON_DEMAND), types, ["on-demand"])
    pool["spec"]["weight"] = group.priority + 1
    pool["spec"]["limits"] = _limits(types, extra)
    pool["spec"]["disruption"] = {
        "consolidationPolicy": "WhenEmptyOrUnderutilized",
        "consolidateAfter": CONSOLIDATE_AFTER,
        "budgets": [{"nodes": "10%"}, {"nodes": "1", "reasons": ["Underutilized"]}],
    }
    return pool


def floor_node_pools(cluster_name: str, group: NodeGroupSpec) -> dict[str, dict[str, Any]]:
    """The group's static NodePools holding ``min_instances`` nodes, keyed as :func:`floor_sizes`.

    Static pools are never consolidated; drift and expiry replace one node at a time. Karpenter
    forbids ``weight`` and resource limits on them.
    """
    types = instance_types(group)
    pools = {}
    for suffix, replicas in floor_sizes(group).items():
        capacity_types = ["on-demand"] if suffix == _FLOOR_ON_DEMAND else _dynamic_capacity_types(group)
        pool = _pool(cluster_name, group, object_name(cluster_name, group.name, suffix), types, capacity_types)
        pool["spec"]["replicas"] = replicas
        pool["spec"]["disruption"] = {"consolidateAfter": "Never", "budgets": [{"nodes": "1"}]}
        pools[suffix] = pool
    return pools


def node_pools(cluster_name: str, group: NodeGroupSpec) -> dict[str, dict[str, Any]]:
    """All NodePools of a group by name suffix: ``""`` for the dynamic one, ``-on-demand`` for an
    on-demand base pool (:func:`on_demand_base_pool`), then the floors (:func:`floor_node_pools`)."""
    pools = {"": node_pool(cluster_name, group)}
    base = on_demand_base_pool(cluster_name, group)
    if base is not None:
        pools[_ON_DEMAND] = base
    return {**pools, **floor_node_pools(cluster_name, group)}


def _pool(
    cluster_name: str,
    group: NodeGroupSpec,
    name: str,
    types: list[InstanceType],
    capacity_types: list[str],
) -> dict[str, Any]:
    labels = {NODE_GROUP_LABEL: group.name}
    resource = accelerator_resource(types[0])
    if resource is not None:
        labels[accelerator_label(resource)] = "true"
    node_spec: dict[str, Any] = {
        "nodeClassRef": {
            "group": NODE_CLASS_API_VERSION.split("/")[0],
            "kind": "EC2NodeClass",
            "name": node_class_name(cluster_name, group.name),
        },
        "requirements": [
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [t.name for t in types]},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity_types},
            {"key": "kubernetes.io/arch", "operator": "In", "values": [types[0].arch]},
        ],
        "expireAfter": EXPIRE_AFTER,
        "terminationGracePeriod": TERMINATION_GRACE_PERIOD,
    }
    taints = taints_for(group.instance_type)
    if taints:
        node_spec["taints"] = taints
    return {
        "apiVersion": NODE_POOL_API_VERSION,
        "kind": "NodePool",
        "metadata": {"name": name, "labels": {NODE_GROUP_LABEL: group.name}},
        "spec": {"template": {"metadata": {"labels": labels}, "spec": node_spec}},
    }


def _dynamic_capacity_types(group: NodeGroupSpec) -> list[str]:
    # Karpenter tries spot before on-demand when both are allowed (reserved > spot > on-demand).
    if group.spot and (group.spot_config is None or group.spot_config.on_demand_percentage_above_base_capacity == 0):
        return ["spot", "on-demand"]
    return ["on-demand"]


def _limits(types: list[InstanceType], nodes: int) -> dict[str, str]:
    # Karpenter checks limits against the launched type's capacity; the largest allowed type times
    # the node count is a bound that never blocks a launch within `nodes`.
    limits = {
        "nodes": str(nodes),
        "cpu": str(nodes * max(t.vcpus for t in types)),
        "memory": f"{nodes * max(t.memory_mib for t in types)}Mi",
    }
    resource = accelerator_resource(types[0])
    if resource == GPU_RESOURCE:
        limits[resource] = str(nodes * max(t.gpus for t in types))
    elif resource == NEURON_RESOURCE:
        limits[resource] = str(nodes * max(t.neuron_devices for t in types))
    return limits


def _hugepages_user_data(hugepages: Quantity) -> str:
    # Neither the kubelet nor nodeadm's NodeConfig can allocate huge pages, so a shell script part
    # does. Karpenter v1.14 keeps the parts of a MIME archive given as AL2023 userData and appends
    # its own NodeConfig part. Cloud-init runs the script in cloud-final, and nodeadm-run.service
    # (which starts the kubelet) is ordered after cloud-final, so the pool exists before the
    # kubelet first reports the node's capacity.
    pages = int(hugepages.value) // _HUGEPAGE_BYTES
    script = "\n".join([
        "#!/bin/bash",
        "set -euo pipefail",
        f"echo 'vm.nr_hugepages = {pages}' > {_HUGEPAGES_SYSCTL_FILE}",
        f"sysctl -p {_HUGEPAGES_SYSCTL_FILE}",
    ])
    return "\n".join([
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{_MIME_BOUNDARY}"',
        "",
        f"--{_MIME_BOUNDARY}",
        'Content-Type: text/x-shellscript; charset="us-ascii"',
        "",
        script,
        "",
        f"--{_MIME_BOUNDARY}--",
        "",
    ])


def _root_volume(group: NodeGroupSpec) -> dict[str, Any]:
    # The spec allows only boot volume types here, and iops for io1.
    volume_type = group.instance_volume_type
    ebs: dict[str, Any] = {
        "volumeSize": f"{group.instance_volume_size}Gi",
        "volumeType": volume_type,
        "encrypted": True,
        "deleteOnTermination": True,
    }
    if group.instance_volume_iops is not None:
        ebs["iops"] = group.instance_volume_iops
    if group.instance_volume_throughput is not None:
        ebs["throughput"] = group.instance_volume_throughput
    return {"deviceName": ROOT_DEVICE, "rootVolume": True, "ebs": ebs}
