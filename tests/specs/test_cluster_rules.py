"""Each rule of the cluster spec, with the exact message it gives."""

from __future__ import annotations

from typing import Any

import pytest

from cortex_iac.instance_types import MISSING_TYPE_HINT
from cortex_iac.specs import load_cluster
from tests.specs.helpers import problems

P = "cluster.yaml"


def cluster(**fields: Any) -> dict[str, Any]:
    return {"region": "us-east-1", "node_groups": [{"name": "cpu", "instance_type": "m5.large"}], **fields}


def group(**fields: Any) -> dict[str, Any]:
    return cluster(node_groups=[{"name": "cpu", "instance_type": "m5.large", **fields}])


LABEL = "must be at most 26 characters of a-z, 0-9 and '-', starting with a letter or digit and ending with a letter or digit"

CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "node-group names: length, case, uniqueness",
        cluster(
            node_groups=[
                {"name": "a" * 27, "instance_type": "m5.large"},
                {"name": "GPU", "instance_type": "g4dn.xlarge"},
                {"name": "cpu", "instance_type": "m5.large"},
                {"name": "cpu", "instance_type": "c5.large"},
            ]
        ),
        [
            f"{P}: node_groups[0].name: {'a' * 27!r} is not allowed ({LABEL})",
            f"{P}: node_groups[1].name: 'GPU' is not allowed ({LABEL})",
        ],
    ),
    (
        "node-group names unique",
        cluster(node_groups=[{"name": "cpu", "instance_type": "m5.large"}, {"name": "cpu", "instance_type": "c5.large"}]),
        [f"{P}: node_groups[1].name: 'cpu' is not allowed (must be unique; node_groups[0] has it)"],
    ),
    (
        "unknown instance types, with a suggestion",
        cluster(node_groups=[{"name": "a", "instance_type": "m5.lage"}, {"name": "b", "instance_type": "x1.weird"}]),
        [
            f"{P}: node_groups[0].instance_type: 'm5.lage' is not allowed "
            f"(must be an EC2 instance type of the bundled table, e.g. m5.large; did you mean 'm5.large'? ({MISSING_TYPE_HINT}))",
            f"{P}: node_groups[1].instance_type: 'x1.weird' is not allowed (must be an EC2 instance type of the bundled table, e.g. m5.large ({MISSING_TYPE_HINT}))",
        ],
    ),
    (
        "too small instance types",
        group(instance_type="t3.nano"),
        [f"{P}: node_groups[0].instance_type: 't3.nano' is not allowed (nano and micro instances are too small for a node)"],
    ),
    (
        "prometheus instance type",
        cluster(prometheus_instance_type="inf2.xlarge"),
        [f"{P}: prometheus_instance_type: 'inf2.xlarge' is not allowed (must have no GPU or Inferentia chip)"],
    ),
    (
        "CIDR white lists",
        cluster(api_load_balancer_cidr_white_list=["10.0.0.0/33", "1.2.3.4"], operator_load_balancer_cidr_white_list=[]),
        [
            f"{P}: api_load_balancer_cidr_white_list[0]: '10.0.0.0/33' is not allowed (must be a CIDR block such as 0.0.0.0/0 or 10.0.0.0/8)",
            f"{P}: api_load_balancer_cidr_white_list[1]: '1.2.3.4' is not allowed (must be a CIDR block such as 0.0.0.0/0 or 10.0.0.0/8)",
            f"{P}: operator_load_balancer_cidr_white_list: [] is not allowed (must have at least 1 item)",
        ],
    ),
    (
        "VPC CIDR",
        cluster(vpc_cidr="10.0.0.0/8"),
        [f"{P}: vpc_cidr: '10.0.0.0/8' is not allowed (must be an IPv4 network address with a /16 to /24 prefix, e.g. 192.168.0.0/16)"],
    ),
    (
        "VPC CIDR with host bits",
        cluster(vpc_cidr="10.0.0.1/16"),
        [f"{P}: vpc_cidr: '10.0.0.1/16' is not allowed (must be an IPv4 network address with a /16 to /24 prefix, e.g. 192.168.0.0/16)"],
    ),
    (
        "availability zones and subnets are exclusive",
        cluster(
            availability_zones=["us-east-1a", "us-east-1b"],
            subnets=[
                {"availability_zone": "us-east-1a", "subnet_id": "subnet-060f3961c876872ae"},
                {"availability_zone": "us-east-1b", "subnet_id": "subnet-0faed05adf6042ab7"},
            ],
        ),
        [
            f'{P}: subnets: ["subnet-060f3961c876872ae", "subnet-0faed05adf6042ab7"] is not allowed '
            "(give availability_zones or subnets, not both)"
        ],
    ),
    (
        "availability zones: in the region, at least two, no repeats",
        cluster(availability_zones=["us-west-2a", "us-east-1b", "us-east-1b"]),
        [
            f"{P}: availability_zones[0]: 'us-west-2a' is not allowed (must be an availability zone of us-east-1, e.g. us-east-1a)",
            f"{P}: availability_zones[2]: 'us-east-1b' is not allowed (must not repeat a zone)",
        ],
    ),
    (
        "a single availability zone",
        cluster(availability_zones=["us-east-1a"]),
        [f'{P}: availability_zones: ["us-east-1a"] is not allowed (must list at least two zones (EKS needs two))'],
    ),
    (
        "subnets: at least two, valid IDs",
        cluster(subnets=[{"availability_zone": "us-east-1a", "subnet_id": "sn-1"}]),
        [f"{P}: subnets[0].subnet_id: 'sn-1' is not allowed (must be a subnet ID such as subnet-0faed05adf6042ab7)"],
    ),
    (
        "NAT gateway with existing subnets",
        cluster(
            nat_gateway="single",
            subnets=[
                {"availability_zone": "us-east-1a", "subnet_id": "subnet-060f3961c876872ae"},
                {"availability_zone": "us-east-1b", "subnet_id": "subnet-060f3961c876872ae"},
            ],
        ),
        [
            f"{P}: subnets[1].subnet_id: 'subnet-060f3961c876872ae' is not allowed (must not repeat a subnet)",
            f"{P}: nat_gateway: 'single' is not allowed (must be none with existing subnets (their routing is given))",
        ],
    ),
    (
        "private subnets need a NAT gateway",
        cluster(subnet_visibility="private", nat_gateway="none"),
        [f"{P}: nat_gateway: 'none' is not allowed (private subnets need a NAT gateway: single or highly_available)"],
    ),
    (
        "enumerations, with suggestions",
        cluster(subnet_visibility="Private", api_load_balancer_type="alb", nat_gateway="highly-available"),
        [
            f"{P}: subnet_visibility: 'Private' is not allowed (must be one of: public, private; did you mean 'private'?)",
            f"{P}: nat_gateway: 'highly-available' is not allowed (must be one of: none, single, highly_available; did you mean 'highly_available'?)",
            f"{P}: api_load_balancer_type: 'alb' is not allowed (must be one of: nlb, elb; did you mean 'nlb'?)",
        ],
    ),
    (
        "volume iops only for io1 and gp3",
        group(instance_volume_type="gp2", instance_volume_iops=3000),
        [f"{P}: node_groups[0].instance_volume_iops: 3000 is not allowed (only io1 and gp3 volumes take iops, not gp2)"],
    ),
    (
        "volume throughput only for gp3",
        group(instance_volume_type="io1", instance_volume_iops=1000, instance_volume_throughput=250),
        [f"{P}: node_groups[0].instance_volume_throughput: 250 is not allowed (only gp3 volumes take a throughput, not io1)"],
    ),
    (
        "gp3 takes iops and throughput together",
        group(instance_volume_iops=3000),
        [
            f"{P}: node_groups[0].instance_volume_throughput: required key is missing "
            "(gp3 volumes take both instance_volume_iops and instance_volume_throughput, or neither)"
        ],
    ),
    (
        "gp3 iops range and ratio",
        group(instance_volume_iops=20000, instance_volume_throughput=125),
        [
            f"{P}: node_groups[0].instance_volume_iops: 20000 is not allowed "
            "(must be from 3000 to 16000 and at most 500 per GB of instance_volume_size (25000) for gp3)"
        ],
    ),
    (
        "io1 iops per GB",
        group(instance_volume_type="io1", instance_volume_iops=3000, instance_volume_size=50),
        [
            f"{P}: node_groups[0].instance_volume_iops: 3000 is not allowed "
            "(must be from 100 to 64000 and at most 50 per GB of instance_volume_size (2500) for io1)"
        ],
    ),
    (
        "gp3 throughput at most iops / 4",
        group(instance_volume_iops=3000, instance_volume_throughput=1000),
        [f"{P}: node_groups[0].instance_volume_throughput: 1000 is not allowed (must be at most instance_volume_iops / 4 (750) for gp3)"],
    ),
    (
        "volume size and throughput ranges, priority",
        group(instance_volume_size=19, instance_volume_throughput=1001, priority=101),
        [
            f"{P}: node_groups[0].priority: 101 is not allowed (must be <= 100)",
            f"{P}: node_groups[0].instance_volume_size: 19 is not allowed (must be >= 20)",
            f"{P}: node_groups[0].instance_volume_throughput: 1001 is not allowed (must be <= 1000)",
        ],
    ),
    (
        "min_instances above max_instances",
        group(min_instances=6),
        [f"{P}: node_groups[0].min_instances: 6 is not allowed (must be <= max_instances (5))"],
    ),
    (
        "spot_config only with spot",
        group(spot_config={"on_demand_base_capacity": 1}),
        [f'{P}: node_groups[0].spot_config: {{"on_demand_base_capacity": 1}} is not allowed (only allowed when spot is true)'],
    ),
    (
        "spot distribution must match",
        group(
            spot=True,
            spot_config={"instance_distribution": ["m6g.large", "m5a.large", "m5a.large", "nope"], "on_demand_base_capacity": 6},
        ),
        [
            f"{P}: node_groups[0].spot_config.instance_distribution[3]: 'nope' is not allowed "
            f"(must be an EC2 instance type of the bundled table, e.g. m5.large ({MISSING_TYPE_HINT}))"
        ],
    ),
    (
        "spot distribution architecture, repeats, base capacity",
        group(spot=True, spot_config={"instance_distribution": ["m6g.large", "m5a.large", "m5a.large"], "on_demand_base_capacity": 6}),
        [
            f"{P}: node_groups[0].spot_config.instance_distribution[0]: 'm6g.large' is not allowed "
            "(must match m5.large in architecture (amd64), GPUs (0) and Inferentia chips (0))",
            f"{P}: node_groups[0].spot_config.instance_distribution[2]: 'm5a.large' is not allowed (must not repeat an instance type)",
            f"{P}: node_groups[0].spot_config.on_demand_base_capacity: 6 is not allowed (must be <= max_instances (5))",
        ],
    ),
    (
        "spot config ranges",
        group(spot=True, spot_config={"on_demand_percentage_above_base_capacity": 101, "max_price": 0, "instance_pools": 21}),
        [
            f"{P}: node_groups[0].spot_config.on_demand_percentage_above_base_capacity: 101 is not allowed (must be <= 100)",
            f"{P}: node_groups[0].spot_config.max_price: 0 is not allowed (must be > 0)",
            f"{P}: node_groups[0].spot_config.instance_pools: 21 is not allowed (must be <= 20)",
        ],
    ),
    (
        "region and cluster name",
        cluster(region="us-east", cluster_name="My_Cluster"),
        [
            f"{P}: cluster_name: 'My_Cluster' is not allowed (must be 3 to 54 characters of a-z, 0-9 and single '-' between them)",
            f"{P}: region: 'us-east' is not allowed (must be an AWS region such as us-east-1)",
        ],
    ),
    (
        "tags",
        cluster(tags={"aws:owner": "me", "cortex.dev/cluster-name": "other", "team": 7, "ok": "fine"}),
        [
            f"{P}: tags['aws:owner']: key 'aws:owner' is not allowed (must not start with aws: (reserved by AWS))",
            f"{P}: tags.team: 7 is not allowed (must be a string)",
        ],
    ),
    (
        "cortex.dev tags are ours",
        cluster(tags={"cortex.dev/cluster-name": "other"}),
        [f"{P}: tags['cortex.dev/cluster-name']: 'other' is not allowed (cortex.dev/ tags are set by cortex_iac (cortex.dev/cluster-name: cortex))"],
    ),
    (
        "ARNs",
        cluster(ssl_certificate_arn="my-cert", iam_policy_arns=["arn:aws:iam::123456789012:policy/x", "AmazonS3FullAccess"]),
        [
            f"{P}: ssl_certificate_arn: 'my-cert' is not allowed (must be an ARN such as arn:aws:iam::aws:policy/ReadOnlyAccess)",
            f"{P}: iam_policy_arns[1]: 'AmazonS3FullAccess' is not allowed (must be an ARN such as arn:aws:iam::aws:policy/ReadOnlyAccess)",
        ],
    ),
    (
        "missing region, unknown and misspelt keys",
        {"node_group": [], "telemetry": False},
        [
            f"{P}: region: required key is missing",
            f"{P}: node_group: unknown key (did you mean 'node_groups'? allowed keys: cluster_name, region, availability_zones, "
            "subnets, node_groups, subnet_visibility, nat_gateway, api_load_balancer_type, api_load_balancer_scheme, "
            "operator_load_balancer_scheme, api_load_balancer_cidr_white_list, operator_load_balancer_cidr_white_list, tags, "
            "ssl_certificate_arn, iam_policy_arns, vpc_cidr, prometheus_instance_type, api_egress_cidrs)",
            f"{P}: telemetry: unknown key (allowed keys: cluster_name, region, availability_zones, "
            "subnets, node_groups, subnet_visibility, nat_gateway, api_load_balancer_type, api_load_balancer_scheme, "
            "operator_load_balancer_scheme, api_load_balancer_cidr_white_list, operator_load_balancer_cidr_white_list, tags, "
            "ssl_certificate_arn, iam_policy_arns, vpc_cidr, prometheus_instance_type, api_egress_cidrs)",
        ],
    ),
    (
        "a misspelt key is reported even when its value is null",
        cluster(tgas=None),
        [
            f"{P}: tgas: unknown key (did you mean 'tags'? allowed keys: cluster_name, region, availability_zones, "
            "subnets, node_groups, subnet_visibility, nat_gateway, api_load_balancer_type, api_load_balancer_scheme, "
            "operator_load_balancer_scheme, api_load_balancer_cidr_white_list, operator_load_balancer_cidr_white_list, tags, "
            "ssl_certificate_arn, iam_policy_arns, vpc_cidr, prometheus_instance_type, api_egress_cidrs)"
        ],
    ),
    (
        "wrong types",
        cluster(node_groups={"name": "x"}, spot=True, availability_zones="us-east-1a"),
        [
            f"{P}: availability_zones: 'us-east-1a' is not allowed (must be a list)",
            f'{P}: node_groups: {{"name": "x"}} is not allowed (must be a list)',
            f"{P}: spot: unknown key (allowed keys: cluster_name, region, availability_zones, "
            "subnets, node_groups, subnet_visibility, nat_gateway, api_load_balancer_type, api_load_balancer_scheme, "
            "operator_load_balancer_scheme, api_load_balancer_cidr_white_list, operator_load_balancer_cidr_white_list, tags, "
            "ssl_certificate_arn, iam_policy_arns, vpc_cidr, prometheus_instance_type, api_egress_cidrs)",
        ],
    ),
]


@pytest.mark.parametrize(("data", "expected"), [(data, expected) for _, data, expected in CASES], ids=[case[0] for case in CASES])
def test_rule_message(data: dict[str, Any], expected: list[str]) -> None:
    assert problems(data, load_cluster, origin=P) == expected


def test_valid_edges_pass() -> None:
    spec = load_cluster(
        cluster(
            availability_zones=["us-east-1a", "us-east-1-bos-1a"],
            node_groups=[
                {"name": "a" * 26, "instance_type": "g5.xlarge", "spot": True, "spot_config": {"instance_distribution": ["g5.2xlarge"]}},
                {"name": "io", "instance_type": "m5.large", "instance_volume_type": "io1", "instance_volume_iops": 2500},
                {"name": "gp3", "instance_type": "m5.large", "instance_volume_iops": 16000, "instance_volume_throughput": 1000},
            ],
            tags={"cortex.dev/cluster-name": "cortex", "team": ""},
            subnet_visibility="private",
            nat_gateway="highly_available",
            ssl_certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc",
        )
    )
    assert [g.name for g in spec.node_groups] == ["a" * 26, "io", "gp3"]
