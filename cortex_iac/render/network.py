"""The cluster's VPC layout as data: availability zones, subnet CIDRs, NAT gateways, subnet tags.

Layout (as eksctl, which Cortex used): the VPC CIDR is cut into eight equal blocks; availability
zone *i* gets block *i* for its public subnet and block *4 + i* for its private one. The blocks do
not depend on how many zones there are or on whether private subnets exist, so adding a zone or a
NAT gateway later never moves (replaces) an existing subnet. Hence at most 4 zones.

Private subnets exist only with a NAT gateway (without one they could reach nothing).
``nat_gateway: single`` puts one NAT gateway in the first zone, ``highly_available`` one per zone;
each private subnet routes through the gateway of its own zone, or the single one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cortex_iac.errors import CortexError
from cortex_iac.render.karpenter import DISCOVERY_TAG

MAX_ZONES = 4
_BLOCKS = 8  # 2 * MAX_ZONES

ELB_TAG = "kubernetes.io/role/elb"
INTERNAL_ELB_TAG = "kubernetes.io/role/internal-elb"


@dataclass(frozen=True)
class ZoneSubnets:
    """The subnets of one availability zone."""

    availability_zone: str
    public_cidr: str
    private_cidr: str | None
    nat_gateway: bool
    """Whether this zone's public subnet holds a NAT gateway."""


@dataclass(frozen=True)
class NetworkLayout:
    """A new VPC: its zones, where the nodes go, and the NAT gateways' zones."""

    vpc_cidr: str
    zones: tuple[ZoneSubnets, ...]
    nodes_in_private_subnets: bool

    def nat_zone_of(self, zone: str) -> str:
        """The zone whose NAT gateway the private subnet of ``zone`` routes through."""
        nat_zones = [z.availability_zone for z in self.zones if z.nat_gateway]
        return zone if zone in nat_zones else nat_zones[0]


def default_availability_zones(region: str) -> list[str]:
    """Zones used when cluster.yaml names none: ``<region>a``, ``b``, ``c``.

    Cortex picked three zones of the account at random; that needs a cloud lookup, which planning
    does without. Accounts lacking one of these zones must list ``availability_zones``.
    """
    return [f"{region}{letter}" for letter in "abc"]


def network_layout(
    *,
    region: str,
    vpc_cidr: str,
    availability_zones: Sequence[str] | None,
    nat_gateway: str,
    subnet_visibility: str,
) -> NetworkLayout:
    """The layout of a new VPC, from the cluster.yaml fields of the same names (already validated
    by :class:`~cortex_iac.specs.ClusterSpec`: zones in the region, a /16../24 CIDR, a NAT gateway
    for private subnets).

    Raises CortexError for more than :data:`MAX_ZONES` zones.
    """
    zones = list(availability_zones) if availability_zones else default_availability_zones(region)
    if len(zones) > MAX_ZONES:
        raise CortexError(
            f"cluster.yaml: availability_zones: {zones} has {len(zones)} zones; at most {MAX_ZONES} are supported"
        )
    network = ipaddress.IPv4Network(vpc_cidr)
    blocks = list(network.subnets(new_prefix=network.prefixlen + 3))
    private = nat_gateway != "none"
    nat_zones = {"none": [], "single": zones[:1], "highly_available": zones}[nat_gateway]
    return NetworkLayout(
        vpc_cidr=str(network),
        zones=tuple(
            ZoneSubnets(
                availability_zone=zone,
                public_cidr=str(blocks[i]),
                private_cidr=str(blocks[MAX_ZONES + i]) if private else None,
                nat_gateway=zone in nat_zones,
            )
            for i, zone in enumerate(zones)
        ),
        nodes_in_private_subnets=subnet_visibility == "private",
    )


def api_server_sources(cidr_allow_list: Sequence[str], vpc_cidr: str | None) -> list[str]:
    """Networks allowed to reach a private-only Kubernetes API endpoint on port 443.

    The VPC's own CIDR (``vpc_cidr``; None for a VPC not made here, whose CIDR is not looked up),
    then each CIDR of ``cidr_allow_list`` (cluster.yaml's ``operator_load_balancer_cidr_white_list``,
    which may hold host bits or IPv6 networks), as network addresses without duplicates. The
    endpoint's network interfaces carry the EKS cluster security group, which otherwise admits only
    the cluster itself.
    """
    # A /0 entry (Cortex's default allow-list) adds nothing to a private endpoint, which only the VPC
    # and networks routed into it can reach; as a rule it would open 443 on the nodes to the internet.
    cidrs = ([vpc_cidr] if vpc_cidr else []) + [c for c in cidr_allow_list if not c.endswith("/0")]
    return list(dict.fromkeys(str(ipaddress.ip_network(cidr, strict=False)) for cidr in cidrs))


def subnet_tags(cluster_name: str, layout: NetworkLayout, *, public: bool) -> dict[str, str]:
    """Role tags of a new subnet: load balancer placement and Karpenter discovery.

    Public subnets take internet-facing load balancers, private ones internal load balancers (or
    the public ones, when there are no private subnets). The subnets the nodes live in carry
    ``karpenter.sh/discovery: <cluster>``.
    """
    has_private = any(z.private_cidr for z in layout.zones)
    tags: dict[str, str] = {}
    if public:
        tags[ELB_TAG] = "1"
    if not public or not has_private:
        tags[INTERNAL_ELB_TAG] = "1"
    nodes_here = layout.nodes_in_private_subnets is not public
    if nodes_here:
        tags[DISCOVERY_TAG] = cluster_name
    return tags
