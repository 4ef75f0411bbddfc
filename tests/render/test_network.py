"""VPC layout: zones, subnet CIDRs, NAT gateways and subnet tags."""

from __future__ import annotations

import ipaddress

import pytest

from cortex_iac.errors import CortexError
from cortex_iac.render.network import (
    ELB_TAG,
    INTERNAL_ELB_TAG,
    api_server_sources,
    default_availability_zones,
    network_layout,
    subnet_tags,
)

ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


def _layout(nat: str = "none", visibility: str = "public", zones: list[str] | None = ZONES, cidr: str = "192.168.0.0/16"):  # type: ignore[no-untyped-def]
    return network_layout(
        region="us-east-1", vpc_cidr=cidr, availability_zones=zones, nat_gateway=nat, subnet_visibility=visibility
    )


def test_cortex_default_cidr_gives_eksctl_like_slash_19_subnets() -> None:
    layout = _layout(nat="single")
    assert [(z.public_cidr, z.private_cidr) for z in layout.zones] == [
        ("192.168.0.0/19", "192.168.128.0/19"),
        ("192.168.32.0/19", "192.168.160.0/19"),
        ("192.168.64.0/19", "192.168.192.0/19"),
    ]


@pytest.mark.parametrize(("nat", "gateways"), [("none", []), ("single", ["us-east-1a"]), ("highly_available", ZONES)])
def test_nat_gateways_per_setting(nat: str, gateways: list[str]) -> None:
    layout = _layout(nat=nat)
    assert [z.availability_zone for z in layout.zones if z.nat_gateway] == gateways
    assert all((z.private_cidr is None) == (nat == "none") for z in layout.zones)
    if gateways:
        assert [layout.nat_zone_of(z) for z in ZONES] == (ZONES if nat == "highly_available" else ["us-east-1a"] * 3)


def test_adding_a_nat_gateway_or_a_zone_moves_no_existing_subnet() -> None:
    before = _layout(nat="none", zones=ZONES[:2])
    after = _layout(nat="highly_available", zones=[*ZONES, "us-east-1d"])
    assert [z.public_cidr for z in before.zones] == [z.public_cidr for z in after.zones[:2]]


def test_subnets_are_disjoint_and_inside_the_vpc() -> None:
    layout = _layout(nat="single", zones=[*ZONES, "us-east-1d"], cidr="10.20.0.0/20")
    blocks = [ipaddress.ip_network(c) for z in layout.zones for c in (z.public_cidr, z.private_cidr) if c]
    assert len(blocks) == 8
    assert all(b.subnet_of(ipaddress.ip_network("10.20.0.0/20")) for b in blocks)  # type: ignore[arg-type]
    assert all(not a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])


def test_default_zones_are_a_b_c_of_the_region() -> None:
    assert default_availability_zones("eu-west-1") == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    assert [z.availability_zone for z in _layout(zones=None).zones] == ZONES


def test_more_than_four_zones_is_an_error() -> None:
    zones = [f"us-east-1{c}" for c in "abcde"]
    with pytest.raises(CortexError) as e:
        _layout(zones=zones)
    assert str(e.value) == f"cluster.yaml: availability_zones: {zones} has 5 zones; at most 4 are supported"


def test_tags_public_nodes_without_nat() -> None:
    layout = _layout(nat="none", visibility="public")
    # No private subnets: internal load balancers go to the public ones too.
    assert subnet_tags("c1", layout, public=True) == {ELB_TAG: "1", INTERNAL_ELB_TAG: "1", "karpenter.sh/discovery": "c1"}


def test_tags_private_nodes() -> None:
    layout = _layout(nat="single", visibility="private")
    assert subnet_tags("c1", layout, public=True) == {ELB_TAG: "1"}
    assert subnet_tags("c1", layout, public=False) == {INTERNAL_ELB_TAG: "1", "karpenter.sh/discovery": "c1"}


def test_tags_public_nodes_with_nat() -> None:
    layout = _layout(nat="single", visibility="public")
    assert subnet_tags("c1", layout, public=True) == {ELB_TAG: "1", "karpenter.sh/discovery": "c1"}
    assert subnet_tags("c1", layout, public=False) == {INTERNAL_ELB_TAG: "1"}


def test_api_server_sources_are_the_vpc_then_the_allow_list_as_networks_once_each() -> None:
    sources = api_server_sources(["10.8.0.0/16", "203.0.113.7/24", "192.168.0.0/16", "2001:db8::1/32"], "192.168.0.0/16")
    assert sources == ["192.168.0.0/16", "10.8.0.0/16", "203.0.113.0/24", "2001:db8::/32"]
    assert api_server_sources(["10.8.0.0/16"], None) == ["10.8.0.0/16"]  # a VPC not made here: not looked up
