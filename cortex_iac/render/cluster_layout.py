"""The Cluster component's decisions as data: what it makes, given cluster.yaml and the add-on switches.

:func:`cluster_layout` is a pure function of the :class:`~cortex_iac.specs.ClusterSpec` and the
:class:`~cortex_iac.render.addons.AddonsArgs`; the ``cortex:eks:Cluster`` component
(:mod:`cortex_iac.components.cluster`) only turns the :class:`ClusterLayout` into resources. It
decides:

- the network: a new VPC (:func:`~cortex_iac.render.network.network_layout`) or cluster.yaml's
  existing subnets, and which of those get Karpenter's discovery tag;
- the API server endpoint: public (limited to ``operator_load_balancer_cidr_white_list``) unless
  ``operator_load_balancer_scheme: internal``, which makes it private only and opens 443 to the
  VPC (when made here) and to the allow list through ingress rules on the cluster security group;
- the EKS managed node groups (system nodes, the Prometheus node): size, AMI type, labels, taint;
- the namespaces the cluster makes (the APIs', and KEDA's, Prometheus' and logging's per switch);
- which device plugins to install (NVIDIA with GPU node groups, Neuron with Inferentia ones);
- what API components are told of the cluster: load balancer settings, Prometheus and the KEDA
  HTTP interceptor addresses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cortex_iac.instance_types import get_instance_type
from cortex_iac.render import addons as render
from cortex_iac.render.addons import AddonsArgs, LoadBalancerSettings
from cortex_iac.render.iam import require_commercial_partition
from cortex_iac.render.karpenter import GPU_RESOURCE, NEURON_RESOURCE, accelerator_resource
from cortex_iac.render.network import NetworkLayout, api_server_sources, network_layout
from cortex_iac.render.routing import KEDA_NAMESPACE
from cortex_iac.render.workload import render_namespace

if TYPE_CHECKING:
    from cortex_iac.specs import ClusterSpec

# Instance type of the two on-demand system nodes that run the add-ons' controllers.
SYSTEM_INSTANCE_TYPE = "t3.large"
SYSTEM_NODES = 2  # Karpenter runs two replicas, never on the same node

# Policies of every node role (Karpenter's v1.14 node role; EKS managed node groups need the first three).
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
)
ADMIN_ACCESS_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

# The API server's port, opened by the ingress rules of a private-only endpoint.
API_SERVER_PORT = 443


@dataclass(frozen=True)
class ManagedNodes:
    """A fixed-size on-demand EKS managed node group of the Cluster itself (not Karpenter's).

    ``key`` names the child (``<component>-<key>``); ``taint`` holds ``key``, ``value`` and
    ``effect`` as the EKS API spells them; ``disk_size`` (GiB) None keeps EKS's default.
    """

    key: str
    instance_type: str
    ami_type: str
    size: int
    labels: Mapping[str, str]
    taint: Mapping[str, str]
    disk_size: int | None = None


@dataclass(frozen=True)
class ApiServerSource:
    """One network admitted on 443 to a private-only API endpoint: an ingress rule named
    ``<component>-<key>`` (after the network, so that editing the list replaces no other rule)."""

    cidr: str
    key: str

    @property
    def ipv6(self) -> bool:
        """Whether ``cidr`` is an IPv6 network."""
        return ":" in self.cidr


@dataclass(frozen=True)
class EndpointAccess:
    """The Kubernetes API server endpoint. The private endpoint is always on (nodes use it).

    ``public``: whether the public endpoint is on too; ``public_access_cidrs``: who may reach it
    (None when it is off); ``ingress``: the networks opened on the cluster security group (empty
    with a public endpoint).
    """

    public: bool
    public_access_cidrs: tuple[str, ...] | None
    ingress: tuple[ApiServerSource, ...]


@dataclass(frozen=True)
class NamespaceLayout:
    """A namespace the Cluster makes: its role (``apis``, ``keda``, ``prometheus``, ``logging``),
    name and rendered metadata."""

    role: str
    name: str
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class ClusterLayout:
    """What the Cluster component makes, decided from cluster.yaml and the add-on switches.

    - ``cluster_name``, ``region``; ``tags``: of every AWS resource (cluster.yaml's +
      ``cortex.dev/cluster-name``).
    - ``network``: the new VPC, or None with cluster.yaml ``subnets``: then ``existing_subnet_ids``
      are those subnets (the nodes' and the control plane's), of which ``discovery_subnet_ids``
      get the ``karpenter.sh/discovery`` tag (all of them with Karpenter, none without).
    - ``endpoint``: the API server endpoint's access (:class:`EndpointAccess`).
    - ``system_nodes`` and ``prometheus_nodes`` (None without Prometheus): the managed node groups.
    - ``karpenter``: Karpenter (node role, access entry, security group discovery tag, controller)
      and thereby the Cortex node groups.
    - ``namespaces``: the namespaces made, in creation order; ``namespace_names``: role -> name of
      every namespace the add-ons use, made here or not (``kube-system``).
    - ``load_balancer``: the API load balancer (None without its controller; then no IngressClass).
    - ``keda``, ``keda_http_add_on``; ``keda_http_interceptor``: the interceptor's address (None
      without the HTTP add-on).
    - ``metrics_server``; ``prometheus_url`` (None without Prometheus).
    - ``nvidia_device_plugin`` and ``neuron_device_plugin``: installed (switched on and a node
      group with that accelerator).
    - ``fluent_bit``, ``log_retention_days``: log shipping and its log group's retention.
    - ``dcgm_exporter``: NVIDIA's GPU metrics exporter (switched on, Prometheus, and a GPU node group).
    - ``instance_types``: every instance type the cluster's nodes may be (system, Prometheus, node
      groups and their spot distributions): the prices the cost rule needs.
    """

    cluster_name: str
    region: str
    tags: dict[str, str]
    network: NetworkLayout | None
    existing_subnet_ids: tuple[str, ...]
    discovery_subnet_ids: tuple[str, ...]
    endpoint: EndpointAccess
    system_nodes: ManagedNodes
    prometheus_nodes: ManagedNodes | None
    karpenter: bool
    namespaces: tuple[NamespaceLayout, ...]
    namespace_names: Mapping[str, str]
    load_balancer: LoadBalancerSettings | None
    keda: bool
    keda_http_add_on: bool
    keda_http_interceptor: str | None
    metrics_server: bool
    prometheus_url: str | None
    nvidia_device_plugin: bool
    neuron_device_plugin: bool
    fluent_bit: bool
    log_retention_days: int
    dcgm_exporter: bool = False
    instance_types: tuple[str, ...] = ()

    @property
    def api_namespace_name(self) -> str:
        """The name of the namespace all APIs share."""
        return self.namespace_names["apis"]


def managed_node_ami_type(instance_type: str) -> str:
    """The EKS AMI type of a managed node group of ``instance_type``: Amazon Linux 2023, of the
    instance type's architecture."""
    arch = get_instance_type(instance_type).arch
    return "AL2023_ARM_64_STANDARD" if arch == "arm64" else "AL2023_x86_64_STANDARD"


def endpoint_access(spec: ClusterSpec) -> EndpointAccess:
    """The API server endpoint's access, from ``operator_load_balancer_scheme`` and
    ``operator_load_balancer_cidr_white_list`` (see :func:`~cortex_iac.render.network.api_server_sources`
    for the networks a private-only endpoint admits)."""
    if spec.operator_load_balancer_scheme != "internal":
        return EndpointAccess(
            public=True, public_access_cidrs=tuple(spec.operator_load_balancer_cidr_white_list), ingress=()
        )
    vpc_cidr = None if spec.subnets else spec.vpc_cidr
    sources = api_server_sources(spec.operator_load_balancer_cidr_white_list, vpc_cidr)
    return EndpointAccess(
        public=False,
        public_access_cidrs=None,
        ingress=tuple(
            ApiServerSource(cidr=cidr, key=f"api-server-from-{re.sub(r'[^0-9a-z.]', '-', cidr)}") for cidr in sources
        ),
    )


def cluster_layout(
    spec: ClusterSpec, addons: AddonsArgs | None = None, *, system_instance_type: str = SYSTEM_INSTANCE_TYPE
) -> ClusterLayout:
    """The layout of the Cluster of ``spec`` with the add-on switches ``addons`` (default: all on)
    and system nodes of ``system_instance_type``.

    Raises CortexError for a region outside the ``aws`` partition, switches that contradict each
    other or the node groups (:meth:`~cortex_iac.render.addons.AddonsArgs.check`), and a new VPC of
    more than :data:`~cortex_iac.render.network.MAX_ZONES` zones.
    """
    addons = addons or AddonsArgs()
    require_commercial_partition(spec.region, "cluster.yaml: region")
    addons.check([g.name for g in spec.node_groups])
    cluster_name = spec.cluster_name

    network = None
    existing: tuple[str, ...] = ()
    if spec.subnets:
        existing = tuple(s.subnet_id for s in spec.subnets)
    else:
        network = network_layout(
            region=spec.region,
            vpc_cidr=spec.vpc_cidr,
            availability_zones=spec.availability_zones,
            nat_gateway=spec.nat_gateway,
            subnet_visibility=spec.subnet_visibility,
        )

    wanted = [
        ("apis", render_namespace(), True),
        ("keda", render.namespace_object(KEDA_NAMESPACE, cluster_name), addons.keda),
        ("prometheus", render.namespace_object(render.PROMETHEUS_NAMESPACE, cluster_name), addons.prometheus),
        ("logging", render.namespace_object(render.LOGGING_NAMESPACE, cluster_name), addons.fluent_bit),
    ]
    namespaces = tuple(
        NamespaceLayout(role=role, name=obj["metadata"]["name"], metadata=obj["metadata"])
        for role, obj, made in wanted
        if made
    )
    namespace_names = {
        "karpenter": render.KUBE_SYSTEM,
        "load_balancer_controller": render.KUBE_SYSTEM,
        **{ns.role: ns.name for ns in namespaces},
    }

    accelerators = {accelerator_resource(get_instance_type(g.instance_type)) for g in spec.node_groups}
    return ClusterLayout(
        cluster_name=cluster_name,
        region=spec.region,
        tags=render.resource_tags(cluster_name, spec.tags),
        network=network,
        existing_subnet_ids=existing,
        discovery_subnet_ids=existing if addons.karpenter else (),
        endpoint=endpoint_access(spec),
        system_nodes=ManagedNodes(
            key="system",
            instance_type=system_instance_type,
            ami_type=managed_node_ami_type(system_instance_type),
            size=SYSTEM_NODES,
            labels=render.SYSTEM_NODE_LABELS,
            taint=render.SYSTEM_TAINT,
        ),
        prometheus_nodes=ManagedNodes(
            key="prometheus",
            instance_type=spec.prometheus_instance_type,
            ami_type=managed_node_ami_type(spec.prometheus_instance_type),
            size=1,
            labels=render.PROMETHEUS_NODE_LABELS,
            taint=render.PROMETHEUS_TAINT,
            disk_size=render.PROMETHEUS_DISK_GIB,
        )
        if addons.prometheus
        else None,
        karpenter=addons.karpenter,
        namespaces=namespaces,
        namespace_names=namespace_names,
        load_balancer=LoadBalancerSettings(
            scheme=spec.api_load_balancer_scheme,
            cidr_allow_list=tuple(spec.api_load_balancer_cidr_white_list),
            certificate_arn=spec.ssl_certificate_arn,
        )
        if addons.aws_load_balancer_controller
        else None,
        keda=addons.keda,
        keda_http_add_on=addons.keda and addons.keda_http_add_on,
        keda_http_interceptor=render.KEDA_HTTP_INTERCEPTOR_SERVICE if addons.keda and addons.keda_http_add_on else None,
        metrics_server=addons.metrics_server,
        prometheus_url=render.PROMETHEUS_URL if addons.prometheus else None,
        nvidia_device_plugin=addons.nvidia_device_plugin and GPU_RESOURCE in accelerators,
        neuron_device_plugin=addons.neuron_device_plugin and NEURON_RESOURCE in accelerators,
        fluent_bit=addons.fluent_bit,
        log_retention_days=addons.log_retention_days,
        dcgm_exporter=addons.dcgm_exporter and addons.prometheus and GPU_RESOURCE in accelerators,
        instance_types=_instance_types(spec, system_instance_type),
    )


def _instance_types(spec: ClusterSpec, system_instance_type: str) -> tuple[str, ...]:
    types = {system_instance_type, spec.prometheus_instance_type}
    for group in spec.node_groups:
        types.add(group.instance_type)
        if group.spot_config is not None:
            types.update(group.spot_config.instance_distribution)
    return tuple(sorted(types))
