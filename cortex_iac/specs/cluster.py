"""The cluster spec: Cortex v0.42's `cluster.yaml` (pkg/types/clusterconfig/cluster_config.go).

Deviations from Cortex, on purpose:
- `iam_policy_arns` defaults to [] instead of AmazonS3FullAccess: APIs get least-privilege roles
  (see the API spec's `iam` extension); broader policies must be asked for.
- Cortex's 28 `image_*` overrides are accepted and ignored with one warning each (`warnings`):
  cortex_iac pins its own images (`cortex_iac.versions`), and most of the images they name
  (operator, activator, ...) have no counterpart here.
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
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ModelWrapValidatorHandler, PrivateAttr, model_validator

from cortex_iac.instance_types import INSTANCE_TYPES, MISSING_TYPE_HINT
from cortex_iac.specs.base import NodeGroupName, NonEmptyStr, SpecModel, pattern, rule, written
from cortex_iac.specs.problems import MISSING, Problems, rule_error

CLUSTER_NAME_TAG = "cortex.dev/cluster-name"

# Cortex v0.42's image overrides (docs/clusters/management/create.md): accepted, ignored, warned about.
IGNORED_IMAGE_KEYS = (
    "image_manager", "image_operator", "image_controller_manager", "image_autoscaler", "image_proxy",
    "image_async_gateway", "image_activator", "image_enqueuer", "image_dequeuer", "image_cluster_autoscaler",
    "image_metrics_server", "image_nvidia_device_plugin", "image_neuron_device_plugin", "image_neuron_scheduler",
    "image_fluent_bit", "image_istio_proxy", "image_istio_pilot", "image_prometheus",
    "image_prometheus_config_reloader", "image_prometheus_operator", "image_prometheus_statsd_exporter",
    "image_prometheus_dcgm_exporter", "image_prometheus_kube_state_metrics", "image_prometheus_node_exporter",
    "image_kube_rbac_proxy", "image_grafana", "image_event_exporter", "image_kubexit",
)
# A new VPC gets one public and one private subnet per zone out of 8 blocks of its CIDR.
MAX_ZONES = 4
# Tags EKS and Karpenter set on what they create; a user's tag of the same key would break them.
RESERVED_TAGS = ("eks:eks-cluster-name", "karpenter.sh/nodepool", "karpenter.sh/nodeclaim", "karpenter.k8s.aws/ec2nodeclass")
# Volume types EC2 boots from (st1 and sc1 are HDDs, which cannot be root volumes).
BOOT_VOLUME_TYPES = ("gp3", "gp2", "io1")
# Karpenter NodePool weights go up to 100; a group's on-demand base pool weighs one more than the group.
MAX_POOL_WEIGHT = 100
_OTHER_PARTITIONS = (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-iso-", "aws-iso"), ("us-isob-", "aws-iso-b"))

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
        raise rule_error(name, f"must be an EC2 instance type of the bundled table, e.g. m5.large{hint} ({MISSING_TYPE_HINT})")
    return name


def _network(text: str, *, strict: bool) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if "/" not in text:  # ipaddress would read a bare address as a /32
        return None
    try:
        return ipaddress.ip_network(text, strict=strict)
    except ValueError:
        return None


def _vpc_cidr(text: str) -> bool:
    network = _network(text, strict=True)
    return network is not None and network.version == 4 and 16 <= network.prefixlen <= 24


ANYWHERE = ("0.0.0.0/0", "::/0")
"""``api_egress_cidrs``' default: the whole IPv4 and IPv6 internet (and the VPC)."""


def _anywhere_v4_v6() -> list[str]:
    return list(ANYWHERE)


InstanceTypeName = Annotated[str, AfterValidator(_instance_type)]
Cidr = Annotated[
    str,
    rule(lambda text: _network(text, strict=False) is not None, "must be a CIDR block such as 0.0.0.0/0 or 10.0.0.0/8"),
]
Arn = Annotated[str, pattern(_ARN, "must be an ARN such as arn:aws:iam::aws:policy/ReadOnlyAccess")]
_TAG_CHARACTERS = pattern(_TAG_TEXT, "must use letters, digits, spaces and _ . : / = + - @")
TagKey = Annotated[
    str,
    Field(min_length=1, max_length=127),
    _TAG_CHARACTERS,
    rule(lambda key: not key.lower().startswith("aws:"), "must not start with aws: (reserved by AWS)"),
]
TagValue = Annotated[str, Field(max_length=255), _TAG_CHARACTERS]
VolumeType = Literal["gp3", "gp2", "io1", "st1", "sc1"]


class SubnetSpec(SpecModel):
    """An existing subnet: ``availability_zone`` and ``subnet_id`` (both required)."""

    availability_zone: NonEmptyStr
    """Availability zone of the subnet, e.g. us-east-1a. Required."""
    subnet_id: Annotated[str, pattern(_SUBNET_ID, "must be a subnet ID such as subnet-0faed05adf6042ab7")]
    """ID of the existing subnet, e.g. subnet-0faed05adf6042ab7; no repeats. Required."""


class SpotConfig(SpecModel):
    """How a spot node group mixes instances: further instance types and on-demand nodes. Cortex's
    ``max_price`` and ``instance_pools`` are read but refused, since Karpenter cannot express them."""

    instance_distribution: list[InstanceTypeName] = Field(default_factory=list)
    """Further instance types for the group's nodes, of instance_type's architecture, GPUs and Inferentia
    chips; no repeats. Default []."""
    on_demand_base_capacity: int = Field(0, ge=0)
    """Nodes of the group that are always on-demand. Default 0, >= 0, <= max_instances; above min_instances it
    needs priority < 100."""
    on_demand_percentage_above_base_capacity: int = Field(0, ge=0, le=100)
    """Above the base: 0 (spot first, on-demand as fallback) or 100 (on-demand only); Karpenter keeps no
    ratio, so 1 to 99 are refused. Default 0."""
    max_price: float | None = Field(None, gt=0)
    """Cortex's spot price cap in USD per hour: refused (Karpenter never pays more than the on-demand price
    and has no lower cap). Default none."""
    instance_pools: int | None = Field(None, ge=1, le=20)
    """Cortex's number of spot pools, 1 to 20: refused (Karpenter spreads spot launches over all listed
    types). Default none."""


class NodeGroupSpec(SpecModel):
    """One group of worker nodes (a Karpenter NodePool): its instance type, size bounds, priority,
    root volume and spot settings."""

    name: NodeGroupName
    """Name of the node group, unique in the cluster: at most 26 characters of a-z, 0-9 and '-' (RFC 1123;
    Cortex allowed upper case). Required."""
    instance_type: Annotated[
        InstanceTypeName,
        rule(lambda name: name.split(".")[-1] not in ("nano", "micro"), "nano and micro instances are too small for a node"),
    ]
    """EC2 instance type of the nodes, e.g. m5.large, from the bundled instance-type table; not nano or micro.
    Required."""
    min_instances: int = Field(1, ge=0)
    """Nodes the group always keeps. Default 1, >= 0, <= max_instances."""
    max_instances: int = Field(5, ge=0)
    """Most nodes of the group. Default 5, >= 0."""
    priority: int = Field(1, ge=1, le=100)
    """Preference among the node groups a pod fits, higher first (the Karpenter NodePool weight). Default 1, 1
    to 100."""
    instance_volume_size: int = Field(50, ge=20, le=16384)
    """Size of each node's root volume in GB. Default 50, 20 to 16384."""
    instance_volume_type: VolumeType = "gp3"
    """Type of the root volume: gp3, gp2 or io1 (st1 and sc1 are refused: EC2 does not boot from HDD volumes).
    Default gp3."""
    instance_volume_iops: int | None = None
    """Root volume IOPS: io1 (needed) 100 to 64000 and <= 50 per GB; gp3 3000 to 16000 and <= 500 per GB, with
    a throughput. Default none."""
    instance_volume_throughput: int | None = Field(None, ge=125, le=1000)
    """Root volume throughput in MB/s, gp3 only (with instance_volume_iops): 125 to 1000 and at most iops / 4.
    Default none."""
    spot: bool = False
    """Run spot instances, falling back to on-demand when spot is unavailable. Default false."""
    spot_config: SpotConfig | None = None
    """How the group mixes instance types and on-demand nodes; only with spot: true. Default none."""

    @model_validator(mode="after")
    def _consistent(self) -> NodeGroupSpec:
        problems = Problems()
        if self.min_instances > self.max_instances:
            problems.add(("min_instances",), self.min_instances, f"must be <= max_instances ({self.max_instances})")
        self._check_volume(problems)
        if self.spot_config is not None:
            if not self.spot:
                problems.add(("spot_config",), written(self.spot_config), "only allowed when spot is true")
            else:
                self._check_distribution(self.spot_config, problems)
                self._check_karpenter_spot(self.spot_config, problems)
        problems.check()
        return self

    def _check_karpenter_spot(self, spot: SpotConfig, problems: Problems) -> None:
        # What Karpenter, which launches the nodes, cannot express.
        at = ("spot_config",)
        if spot.max_price is not None:
            problems.add((*at, "max_price"), spot.max_price, "not supported: Karpenter never pays more than the "
                         "on-demand price for spot and has no lower cap (remove max_price)")
        if spot.instance_pools is not None:
            problems.add((*at, "instance_pools"), spot.instance_pools, "not supported: Karpenter spreads spot "
                         "launches over all listed types with the price-capacity-optimized strategy (remove it)")
        if spot.on_demand_percentage_above_base_capacity not in (0, 100):
            problems.add((*at, "on_demand_percentage_above_base_capacity"),
                         spot.on_demand_percentage_above_base_capacity,
                         "must be 0 (prefer spot) or 100 (on-demand only): Karpenter cannot keep a ratio")
        if spot.on_demand_base_capacity > self.min_instances and self.priority >= MAX_POOL_WEIGHT:
            problems.add(("priority",), self.priority,
                         f"must be < {MAX_POOL_WEIGHT} when spot_config.on_demand_base_capacity exceeds min_instances "
                         "(the on-demand base pool must weigh more than the group's spot pool)")

    def _check_volume(self, problems: Problems) -> None:
        kind, size = self.instance_volume_type, self.instance_volume_size
        iops, throughput = self.instance_volume_iops, self.instance_volume_throughput
        if kind not in BOOT_VOLUME_TYPES:
            problems.add(("instance_volume_type",), kind, f"must be one of {', '.join(BOOT_VOLUME_TYPES)}: the "
                         "volume is the node's root volume, and EC2 does not boot from HDD volumes (st1, sc1)")
        if kind == "io1" and iops is None:
            problems.add(("instance_volume_iops",), MISSING, "io1 volumes need instance_volume_iops (100 to 64000)")
        if iops is not None and kind not in ("io1", "gp3"):
            problems.add(("instance_volume_iops",), iops, f"only io1 and gp3 volumes take iops, not {kind}")
        if throughput is not None and kind != "gp3":
            problems.add(("instance_volume_throughput",), throughput, f"only gp3 volumes take a throughput, not {kind}")
        if kind == "gp3" and (iops is None) != (throughput is None):
            missing = "instance_volume_throughput" if throughput is None else "instance_volume_iops"
            both = "gp3 volumes take both instance_volume_iops and instance_volume_throughput, or neither"
            problems.add((missing,), MISSING, both)
        if iops is None or kind not in ("io1", "gp3"):
            return
        low, high, per_gb = (100, 64000, 50) if kind == "io1" else (3000, 16000, 500)
        if not low <= iops <= min(high, per_gb * size):
            problems.add(
                ("instance_volume_iops",),
                iops,
                f"must be from {low} to {high} and at most {per_gb} per GB of instance_volume_size "
                f"({per_gb * size}) for {kind}",
            )
        elif kind == "gp3" and throughput is not None and iops < 4 * throughput:
            ratio = f"must be at most instance_volume_iops / 4 ({iops // 4}) for gp3"
            problems.add(("instance_volume_throughput",), throughput, ratio)

    def _check_distribution(self, spot: SpotConfig, problems: Problems) -> None:
        primary = INSTANCE_TYPES[self.instance_type]
        match = (
            f"must match {self.instance_type} in architecture ({primary.arch}), GPUs ({primary.gpus}) "
            f"and Inferentia chips ({primary.neuron_devices})"
        )
        for index, name in enumerate(spot.instance_distribution):
            other = INSTANCE_TYPES[name]
            if (other.arch, other.gpus, other.neuron_devices) != (primary.arch, primary.gpus, primary.neuron_devices):
                problems.add(("spot_config", "instance_distribution", index), name, match)
        for index, name in enumerate(spot.instance_distribution):
            if name in spot.instance_distribution[:index]:
                problems.add(("spot_config", "instance_distribution", index), name, "must not repeat an instance type")
        if spot.on_demand_base_capacity > self.max_instances:
            at_most = f"must be <= max_instances ({self.max_instances})"
            problems.add(("spot_config", "on_demand_base_capacity"), spot.on_demand_base_capacity, at_most)


def _everywhere() -> list[str]:
    return ["0.0.0.0/0"]


class ClusterSpec(SpecModel):
    """A Cortex cluster (`cluster.yaml`): its name and region, a new VPC (``availability_zones``,
    ``vpc_cidr``) or existing ``subnets``, the node groups, the load balancers' schemes and allow
    lists, tags, and the IAM policies of the APIs' roles. ``nat_gateway`` defaults by
    ``subnet_visibility`` (single for private, else none), filled in by the model."""

    cluster_name: Annotated[
        str,
        rule(
            lambda name: 3 <= len(name) <= 54 and _CLUSTER_NAME.fullmatch(name) is not None,
            "must be 3 to 54 characters of a-z, 0-9 and single '-' between them",
        ),
    ] = "cortex"
    """Name of the cluster, also the cortex.dev/cluster-name tag: 3 to 54 characters of a-z, 0-9 and single
    '-' between them. Default cortex."""
    region: Annotated[str, pattern(_REGION, "must be an AWS region such as us-east-1")]
    """AWS region of the cluster, e.g. us-east-1, in the aws partition; the AWS provider's aws:region must be
    the same. Required."""
    availability_zones: list[NonEmptyStr] | None = None
    """Zones of a new VPC: 2 to 4 zones of the region, no repeats; not with subnets. Default none: <region>a,
    <region>b, <region>c."""
    subnets: Annotated[list[SubnetSpec], Field(min_length=2)] | None = None
    """Existing subnets to use instead of a new VPC: at least two, no repeated IDs; not with
    availability_zones. Default none (a new VPC)."""
    node_groups: Annotated[list[NodeGroupSpec], Field(max_length=100)] = Field(default_factory=list)
    """The groups of worker nodes the APIs run on: unique names, at most 100. Default []."""
    subnet_visibility: Literal["public", "private"] = "public"
    """Whether the worker nodes run in public or private subnets (private ones need a NAT gateway).
    Default public."""
    nat_gateway: Literal["none", "single", "highly_available"] = Field(None)  # type: ignore[arg-type]  # see below
    """NAT gateways of a new VPC: none, single or highly_available (one per zone). Default single for private
    subnets, else none; none with subnets."""
    api_load_balancer_type: Literal["nlb", "elb"] = "nlb"
    """Cortex's nlb or elb: accepted and ignored with a warning, since the API load balancer is always an ALB
    (path routing). Default nlb."""
    api_load_balancer_scheme: Literal["internet-facing", "internal"] = "internet-facing"
    """Whether the API load balancer is internet-facing or internal (reachable from the VPC only).
    Default internet-facing."""
    operator_load_balancer_scheme: Literal["internet-facing", "internal"] = "internet-facing"
    """internet-facing: the Kubernetes API endpoint is public (within its CIDR white list); internal: private
    only. Default internet-facing."""
    api_load_balancer_cidr_white_list: Annotated[list[Cidr], Field(min_length=1)] = Field(default_factory=_everywhere)
    """CIDR blocks allowed to reach the API load balancer, at least one. Default [0.0.0.0/0]."""
    operator_load_balancer_cidr_white_list: Annotated[list[Cidr], Field(min_length=1)] = Field(default_factory=_everywhere)
    """CIDR blocks allowed to reach the Kubernetes API endpoint, at least one. Default [0.0.0.0/0]."""
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    """Tags of every AWS resource, besides cortex.dev/cluster-name: keys of 1 to 127 characters (not aws:,
    EKS's or Karpenter's), values up to 255. Default {}."""
    ssl_certificate_arn: Arn | None = None
    """ARN of an ACM certificate: the API load balancer then serves HTTPS and redirects HTTP to it.
    Default none (HTTP only)."""
    iam_policy_arns: list[Arn] = Field(default_factory=list)
    """ARNs of IAM policies attached to every API's role. Default [] (Cortex: AmazonS3FullAccess; see the
    API's iam.s3_read)."""
    vpc_cidr: Annotated[
        str, rule(_vpc_cidr, "must be an IPv4 network address with a /16 to /24 prefix, e.g. 192.168.0.0/16")
    ] = "192.168.0.0/16"
    """IPv4 CIDR block of a new VPC, a network address with a /16 to /24 prefix. Default 192.168.0.0/16."""
    prometheus_instance_type: Annotated[
        InstanceTypeName,
        rule(
            lambda name: not (INSTANCE_TYPES[name].gpus or INSTANCE_TYPES[name].neuron_devices),
            "must have no GPU or Inferentia chip",
        ),
    ] = "t3.medium"
    """EC2 instance type of the node running Prometheus, from the bundled table, without GPU or Inferentia
    chips. Default t3.medium."""
    api_egress_cidrs: Annotated[list[Cidr], Field(max_length=100)] = Field(default_factory=_anywhere_v4_v6)
    """cortex_iac extension: CIDR blocks the API and job pods may open connections to (the
    NetworkPolicies of the API namespace and of each job API's namespace), at most 100; DNS, EKS Pod
    Identity and the platform's own in-cluster paths are always allowed. [] allows nothing else.
    Default [0.0.0.0/0, ::/0]."""

    # Not YAML keys: the Cortex keys given but ignored, and where the loader read the spec.
    _ignored: tuple[str, ...] = PrivateAttr(default=())
    _origin: str = PrivateAttr(default="<data>")

    @model_validator(mode="wrap")
    @classmethod
    def _ignore_image_keys(cls, data: Any, handler: ModelWrapValidatorHandler[ClusterSpec]) -> ClusterSpec:
        ignored: list[str] = []
        if isinstance(data, dict):
            ignored = [key for key in data if key in IGNORED_IMAGE_KEYS]
            data = {key: value for key, value in data.items() if key not in IGNORED_IMAGE_KEYS}
        spec = handler(data)
        spec._ignored = tuple(ignored)
        return spec

    @property
    def warnings(self) -> list[str]:
        """One line per Cortex key that is accepted but has no effect here."""
        lines = [
            f"{self._origin}: {key}: ignored (cortex_iac pins its own images, listed in cortex_iac/versions.py)"
            for key in self._ignored
        ]
        if "api_load_balancer_type" in self.model_fields_set:
            lines.append(f"{self._origin}: api_load_balancer_type: ignored (the API load balancer is always an ALB, "
                         "which does the path routing; see docs/design.md, Routing)")
        return lines

    @model_validator(mode="after")
    def _consistent(self) -> ClusterSpec:
        problems = Problems()
        for prefix, partition in _OTHER_PARTITIONS:
            if self.region.startswith(prefix):
                problems.add(("region",), self.region, f"must be a region of the aws partition, not {partition} "
                             "(the bundled add-on policies use arn:aws: ARNs)")
        self._check_network(problems)
        seen: dict[str, int] = {}
        for index, group in enumerate(self.node_groups):
            if group.name in seen:
                unique = f"must be unique; node_groups[{seen[group.name]}] has it"
                problems.add(("node_groups", index, "name"), group.name, unique)
            seen.setdefault(group.name, index)
        ours = f"cortex.dev/ tags are set by cortex_iac ({CLUSTER_NAME_TAG}: {self.cluster_name})"
        for key, value in self.tags.items():
            if key.startswith("cortex.dev/") and (key != CLUSTER_NAME_TAG or value != self.cluster_name):
                problems.add(("tags", key), value, ours)
            elif key in RESERVED_TAGS or key.startswith("kubernetes.io/cluster"):
                problems.add(("tags", key), value, "this key is reserved by EKS and Karpenter (they set it)")
        problems.check()
        return self

    def _check_network(self, problems: Problems) -> None:
        zones, subnets = self.availability_zones or [], self.subnets or []
        if zones and subnets:
            problems.add(("subnets",), [s.subnet_id for s in subnets], "give availability_zones or subnets, not both")
        if len(zones) == 1:
            problems.add(("availability_zones",), zones, "must list at least two zones (EKS needs two)")
        elif len(zones) > MAX_ZONES:
            problems.add(("availability_zones",), zones, f"must list at most {MAX_ZONES} zones (the VPC CIDR is "
                         f"split into {2 * MAX_ZONES} subnets)")
        in_region = f"must be an availability zone of {self.region}, e.g. {self.region}a"
        for index, zone in enumerate(zones):
            if not (zone.startswith(self.region) and len(zone) > len(self.region) and _ZONE.fullmatch(zone)):
                problems.add(("availability_zones", index), zone, in_region)
            elif zone in zones[:index]:
                problems.add(("availability_zones", index), zone, "must not repeat a zone")
        for index, subnet in enumerate(subnets):
            if subnet.subnet_id in [s.subnet_id for s in subnets[:index]]:
                problems.add(("subnets", index, "subnet_id"), subnet.subnet_id, "must not repeat a subnet")
        if self.nat_gateway is None:
            self.nat_gateway = "single" if self.subnet_visibility == "private" and not subnets else "none"
        elif subnets and self.nat_gateway != "none":
            given = "must be none with existing subnets (their routing is given)"
            problems.add(("nat_gateway",), self.nat_gateway, given)
        elif self.subnet_visibility == "private" and not subnets and self.nat_gateway == "none":
            needed = "private subnets need a NAT gateway: single or highly_available"
            problems.add(("nat_gateway",), self.nat_gateway, needed)
