"""The cluster spec: Cortex v0.42's `cluster.yaml` (pkg/types/clusterconfig/cluster_config.go).

Deviations from Cortex, on purpose:
- `iam_policy_arns` defaults to [] instead of AmazonS3FullAccess: APIs get least-privilege roles
  (see the API spec's `iam` extension); broader policies must be asked for.
- Cortex's `image_*` overrides and `telemetry` are not accepted: the images they name (operator,
  activator, ...) do not exist here, so a key for them would be silently meaningless.
- Node-group names are lowercase RFC 1123 labels (Cortex allowed upper case), since they name
  Karpenter NodePools, which are Kubernetes objects.
- `vpc_cidr` must be a network address (no host bits set), and the CIDR white lists need at least
  one entry, so that what is written is exactly what AWS gets.
- Checks that need AWS (quotas, the region's instance types, spot prices) are left out; instance
  types are checked against the bundled table (`cortex_iac.instance_types`).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from cortex_iac.instance_types import INSTANCE_TYPES
from cortex_iac.specs.base import NodeGroupName, NonEmptyStr, SpecModel, rule
from cortex_iac.specs.problems import MISSING, Problems, rule_error

CLUSTER_NAME_TAG = "cortex.dev/cluster-name"

_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+")
_CLUSTER_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_SUBNET_ID = re.compile(r"subnet-[0-9a-f]{8,17}")
_ZONE = re.compile(r"[a-z0-9-]+")
_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(aws|[0-9]{12})?:\S+")
_TAG_TEXT = re.compile(r"[\w\s.:/=+\-@]*")


def _instance_type(name: str) -> str:
    if name not in INSTANCE_TYPES:
        close = difflib.get_close_matches(name, INSTANCE_TYPES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise rule_error(name, f"must be an EC2 instance type of the bundled table, e.g. m5.large{hint}")
    return name


def _cidr(text: str, *, strict: bool) -> bool:
    try:
        ipaddress.ip_network(text, strict=strict)
    except ValueError:
        return False
    return "/" in text


def _vpc_cidr(text: str) -> bool:
    return _cidr(text, strict=True) and ipaddress.ip_network(text).version == 4 and 16 <= ipaddress.ip_network(text).prefixlen <= 24


def _arn(text: str) -> bool:
    return _ARN.fullmatch(text) is not None


InstanceTypeName = Annotated[str, AfterValidator(_instance_type)]
Cidr = Annotated[str, rule(lambda text: _cidr(text, strict=False), "must be a CIDR block such as 0.0.0.0/0 or 10.0.0.0/8")]
Arn = Annotated[str, rule(_arn, "must be an ARN such as arn:aws:iam::aws:policy/ReadOnlyAccess")]
TagKey = Annotated[
    str,
    Field(min_length=1, max_length=127),
    rule(lambda key: _TAG_TEXT.fullmatch(key) is not None, "must use letters, digits, spaces and _ . : / = + - @"),
    rule(lambda key: not key.lower().startswith("aws:"), "must not start with aws: (reserved by AWS)"),
]
TagValue = Annotated[
    str,
    Field(max_length=255),
    rule(lambda value: _TAG_TEXT.fullmatch(value) is not None, "must use letters, digits, spaces and _ . : / = + - @"),
]
VolumeType = Literal["gp3", "gp2", "io1", "st1", "sc1"]


class SubnetSpec(SpecModel):
    """An existing subnet: ``availability_zone`` and ``subnet_id`` (both required)."""

    availability_zone: NonEmptyStr
    subnet_id: Annotated[str, rule(lambda s: _SUBNET_ID.fullmatch(s) is not None, "must be a subnet ID such as subnet-0faed05adf6042ab7")]


class SpotConfig(SpecModel):
    """How a spot node group mixes instances: ``instance_distribution`` (further instance types of
    the same architecture and accelerators, default []), ``on_demand_base_capacity`` (default 0,
    <= max_instances), ``on_demand_percentage_above_base_capacity`` (0..100, default 0),
    ``max_price`` (USD per hour, > 0, default none = on-demand price), ``instance_pools`` (1..20,
    default none)."""

    instance_distribution: list[InstanceTypeName] = Field(default_factory=list)
    on_demand_base_capacity: int = Field(0, ge=0)
    on_demand_percentage_above_base_capacity: int = Field(0, ge=0, le=100)
    max_price: float | None = Field(None, gt=0)
    instance_pools: int | None = Field(None, ge=1, le=20)


class NodeGroupSpec(SpecModel):
    """One group of worker nodes.

    ``name`` (required, <= 26 characters), ``instance_type`` (required), ``min_instances`` 1,
    ``max_instances`` 5, ``priority`` 1 (1..100, higher is preferred), ``instance_volume_size`` 50
    GB (20..16384), ``instance_volume_type`` gp3 (gp2, io1, st1, sc1), ``instance_volume_iops``
    (io1: 100..64000 and <= 50 per GB; gp3: 3000..16000 and <= 500 per GB), ``instance_volume_throughput``
    (gp3 only, 125..1000 MB/s, at most iops / 4; gp3 takes both or neither), ``spot`` false,
    ``spot_config`` (only with spot).
    """

    name: NodeGroupName
    instance_type: Annotated[
        InstanceTypeName,
        rule(lambda name: name.split(".")[-1] not in ("nano", "micro"), "nano and micro instances are too small for a node"),
    ]
    min_instances: int = Field(1, ge=0)
    max_instances: int = Field(5, ge=0)
    priority: int = Field(1, ge=1, le=100)
    instance_volume_size: int = Field(50, ge=20, le=16384)
    instance_volume_type: VolumeType = "gp3"
    instance_volume_iops: int | None = None
    instance_volume_throughput: int | None = Field(None, ge=125, le=1000)
    spot: bool = False
    spot_config: SpotConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> NodeGroupSpec:
        problems = Problems()
        if self.min_instances > self.max_instances:
            problems.add(("min_instances",), self.min_instances, f"must be <= max_instances ({self.max_instances})")
        self._check_volume(problems)
        if self.spot_config is not None:
            if not self.spot:
                problems.add(("spot_config",), self.spot_config.model_dump(exclude_defaults=True), "only allowed when spot is true")
            else:
                self._check_distribution(self.spot_config, problems)
        problems.check()
        return self

    def _check_volume(self, problems: Problems) -> None:
        kind, iops, throughput, size = self.instance_volume_type, self.instance_volume_iops, self.instance_volume_throughput, self.instance_volume_size
        if iops is not None and kind not in ("io1", "gp3"):
            problems.add(("instance_volume_iops",), iops, f"only io1 and gp3 volumes take iops, not {kind}")
        if throughput is not None and kind != "gp3":
            problems.add(("instance_volume_throughput",), throughput, f"only gp3 volumes take a throughput, not {kind}")
        if kind == "gp3" and (iops is None) != (throughput is None):
            missing = "instance_volume_throughput" if throughput is None else "instance_volume_iops"
            problems.add((missing,), MISSING, "gp3 volumes take both instance_volume_iops and instance_volume_throughput, or neither")
        if iops is not None and kind in ("io1", "gp3"):
            low, high, per_gb = (100, 64000, 50) if kind == "io1" else (3000, 16000, 500)
            if not low <= iops <= min(high, per_gb * size):
                problems.add(
                    ("instance_volume_iops",), iops,
                    f"must be from {low} to {high} and at most {per_gb} per GB of instance_volume_size ({per_gb * size}) for {kind}",
                )
            elif kind == "gp3" and throughput is not None and iops < 4 * throughput:
                problems.add(("instance_volume_throughput",), throughput, f"must be at most instance_volume_iops / 4 ({iops // 4}) for gp3")

    def _check_distribution(self, spot: SpotConfig, problems: Problems) -> None:
        primary = INSTANCE_TYPES[self.instance_type]
        for index, name in enumerate(spot.instance_distribution):
            other = INSTANCE_TYPES[name]
            if (other.arch, other.gpus, other.neuron_devices) != (primary.arch, primary.gpus, primary.neuron_devices):
                problems.add(
                    ("spot_config", "instance_distribution", index), name,
                    f"must match {self.instance_type} in architecture ({primary.arch}), GPUs ({primary.gpus}) "
                    f"and Inferentia chips ({primary.neuron_devices})",
                )
        for index, name in enumerate(spot.instance_distribution):
            if name in spot.instance_distribution[:index]:
                problems.add(("spot_config", "instance_distribution", index), name, "must not repeat an instance type")
        if spot.on_demand_base_capacity > self.max_instances:
            problems.add(("spot_config", "on_demand_base_capacity"), spot.on_demand_base_capacity, f"must be <= max_instances ({self.max_instances})")


class ClusterSpec(SpecModel):
    """A Cortex cluster (`cluster.yaml`).

    ``cluster_name`` "cortex" (3..54 of a-z, 0-9, '-'), ``region`` (required), ``availability_zones``
    (default none: AWS picks; at least two, all in the region) or ``subnets`` (existing VPC, at least
    two), ``node_groups`` [] (unique names, at most 100), ``subnet_visibility`` public,
    ``nat_gateway`` (none for public or existing subnets, single for private), ``api_load_balancer_type``
    nlb, ``api_load_balancer_scheme`` and ``operator_load_balancer_scheme`` internet-facing,
    ``api_load_balancer_cidr_white_list`` and ``operator_load_balancer_cidr_white_list`` [0.0.0.0/0],
    ``tags`` {} (every resource is also tagged cortex.dev/cluster-name), ``ssl_certificate_arn`` none,
    ``iam_policy_arns`` [], ``vpc_cidr`` 192.168.0.0/16 (/16 to /24), ``prometheus_instance_type``
    t3.medium (no GPU or Inferentia).
    """

    cluster_name: Annotated[
        str,
        rule(
            lambda name: 3 <= len(name) <= 54 and _CLUSTER_NAME.fullmatch(name) is not None,
            "must be 3 to 54 characters of a-z, 0-9 and single '-' between them",
        ),
    ] = "cortex"
    region: Annotated[str, rule(lambda region: _REGION.fullmatch(region) is not None, "must be an AWS region such as us-east-1")]
    availability_zones: list[NonEmptyStr] | None = None
    subnets: Annotated[list[SubnetSpec], Field(min_length=2)] | None = None
    node_groups: Annotated[list[NodeGroupSpec], Field(max_length=100)] = Field(default_factory=list)
    subnet_visibility: Literal["public", "private"] = "public"
    nat_gateway: Literal["none", "single", "highly_available"] = Field(None)  # type: ignore[assignment]  # filled in below
    api_load_balancer_type: Literal["nlb", "elb"] = "nlb"
    api_load_balancer_scheme: Literal["internet-facing", "internal"] = "internet-facing"
    operator_load_balancer_scheme: Literal["internet-facing", "internal"] = "internet-facing"
    api_load_balancer_cidr_white_list: Annotated[list[Cidr], Field(min_length=1)] = Field(default_factory=lambda: ["0.0.0.0/0"])
    operator_load_balancer_cidr_white_list: Annotated[list[Cidr], Field(min_length=1)] = Field(default_factory=lambda: ["0.0.0.0/0"])
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    ssl_certificate_arn: Arn | None = None
    iam_policy_arns: list[Arn] = Field(default_factory=list)
    vpc_cidr: Annotated[str, rule(_vpc_cidr, "must be an IPv4 network address with a /16 to /24 prefix, e.g. 192.168.0.0/16")] = "192.168.0.0/16"
    prometheus_instance_type: Annotated[
        InstanceTypeName,
        rule(lambda name: not (INSTANCE_TYPES[name].gpus or INSTANCE_TYPES[name].neuron_devices), "must have no GPU or Inferentia chip"),
    ] = "t3.medium"

    @model_validator(mode="after")
    def _consistent(self) -> ClusterSpec:
        problems = Problems()
        self._check_network(problems)
        seen: dict[str, int] = {}
        for index, group in enumerate(self.node_groups):
            if group.name in seen:
                problems.add(("node_groups", index, "name"), group.name, f"must be unique; node_groups[{seen[group.name]}] has it")
            seen.setdefault(group.name, index)
        for key, value in self.tags.items():
            if key.startswith("cortex.dev/") and (key != CLUSTER_NAME_TAG or value != self.cluster_name):
                problems.add(("tags", key), value, f"cortex.dev/ tags are set by cortex_iac ({CLUSTER_NAME_TAG}: {self.cluster_name})")
        problems.check()
        return self

    def _check_network(self, problems: Problems) -> None:
        zones, subnets = self.availability_zones or [], self.subnets or []
        if zones and subnets:
            problems.add(("subnets",), [s.subnet_id for s in subnets], "give availability_zones or subnets, not both")
        if len(zones) == 1:
            problems.add(("availability_zones",), zones, "must list at least two zones (EKS needs two)")
        for index, zone in enumerate(zones):
            if not (zone.startswith(self.region) and len(zone) > len(self.region) and _ZONE.fullmatch(zone)):
                problems.add(("availability_zones", index), zone, f"must be an availability zone of {self.region}, e.g. {self.region}a")
            elif zone in zones[:index]:
                problems.add(("availability_zones", index), zone, "must not repeat a zone")
        for index, subnet in enumerate(subnets):
            if subnet.subnet_id in [s.subnet_id for s in subnets[:index]]:
                problems.add(("subnets", index, "subnet_id"), subnet.subnet_id, "must not repeat a subnet")
        if self.nat_gateway is None:
            self.nat_gateway = "single" if self.subnet_visibility == "private" and not subnets else "none"
        elif subnets and self.nat_gateway != "none":
            problems.add(("nat_gateway",), self.nat_gateway, "must be none with existing subnets (their routing is given)")
        elif self.subnet_visibility == "private" and not subnets and self.nat_gateway == "none":
            problems.add(("nat_gateway",), self.nat_gateway, "private subnets need a NAT gateway: single or highly_available")
