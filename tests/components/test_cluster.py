"""``cortex:eks:Cluster`` under the recording engine: children, names, parents and key inputs.

Recordings are made once per scenario (``_recording``) and shared by the tests reading them.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from cortex_iac.components.addons import AddonsArgs
from cortex_iac.components.cluster import NODE_POLICIES, SYSTEM_INSTANCE_TYPE, Cluster
from cortex_iac.components.handle import ClusterHandle, cluster_handle
from cortex_iac.components.realtime_api import RealtimeApi
from cortex_iac.errors import CortexError
from cortex_iac.plan.engine import (
    FAKE_ACCOUNT,
    FAKE_REGION,
    UNKNOWN,
    RecordedResource,
    Recording,
    record,
)
from cortex_iac.render import addons as render
from cortex_iac.render.iam import pod_identity_trust_policy, service_trust_policy
from cortex_iac.specs import ClusterSpec, RealtimeApiSpec, load_apis, load_cluster
from cortex_iac.versions import (
    AWS_FOR_FLUENT_BIT_CHART,
    AWS_LOAD_BALANCER_CONTROLLER_CHART,
    COREDNS_ADDON_VERSION,
    DCGM_EXPORTER_CHART,
    GRAFANA_CHART,
    KARPENTER_CHART,
    KARPENTER_CRD_CHART,
    KEDA_CHART,
    KEDA_HTTP_ADD_ON_CHART,
    KUBERNETES_VERSION,
    METRICS_SERVER_CHART,
    NEURON_HELM_CHART,
    NVIDIA_DEVICE_PLUGIN_CHART,
    PROMETHEUS_CHART,
)
from tests.clusters import BASE, ZONES

TAGS = {"team": "ml", "cortex.dev/cluster-name": "demo"}

CLUSTER = "cortex:eks:Cluster"
EKS = "eks:index:Cluster"
SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE = "aws:iam/role:Role"
POD_IDENTITY = "aws:eks/podIdentityAssociation:PodIdentityAssociation"


def _spec(**changes: Any) -> ClusterSpec:
    return load_cluster({**BASE, **changes}, origin="test")


_RECORDINGS: dict[str, Recording] = {}


def _recording(preview: bool = False, addons: AddonsArgs | None = None, **changes: Any) -> Recording:
    """The recording of Cluster("demo") of BASE updated with ``changes``, made once per scenario."""
    key = repr((preview, addons, json.dumps(changes, sort_keys=True)))
    if key not in _RECORDINGS:
        spec = _spec(**changes)
        _RECORDINGS[key] = record(lambda: Cluster("demo", spec, addons=addons), preview=preview)
    return _RECORDINGS[key]


def _cluster_urn(rec: Recording) -> str:
    (cluster,) = rec.of_type(CLUSTER)
    return cluster.urn


def _releases(rec: Recording) -> dict[str, RecordedResource]:
    return {r.inputs["name"]: r for r in rec.of_type(RELEASE)}


def _policy(resource: RecordedResource, key: str) -> Any:
    return json.loads(resource.inputs[key])


# --- structure ---------------------------------------------------------------------------------------


def test_children_are_named_after_the_component_and_parented_to_it() -> None:
    rec = _recording()
    urn = _cluster_urn(rec)
    node_group_urns = {r.urn for r in rec.of_type("cortex:eks:NodeGroup")}
    for r in rec.resources:
        if r.type == CLUSTER:
            continue
        assert r.name.startswith("demo-"), r.name
        assert r.parent == urn or r.parent in node_group_urns, (r.type, r.name, r.parent)
    expected = {
        ("aws:ec2/vpc:Vpc", "demo-vpc"),
        ("aws:ec2/internetGateway:InternetGateway", "demo-igw"),
        ("aws:kms/key:Key", "demo-secrets"),
        (EKS, "demo-eks"),
        ("pulumi:providers:kubernetes", "demo-k8s"),
        ("aws:eks/nodeGroup:NodeGroup", "demo-system"),
        ("aws:eks/nodeGroup:NodeGroup", "demo-prometheus"),
        ("aws:eks/addon:Addon", "demo-pod-identity-agent"),
        ("aws:eks/addon:Addon", "demo-coredns"),
        (ROLE, "demo-karpenter-node-role"),
        (ROLE, "demo-system-node-role"),
        ("aws:sqs/queue:Queue", "demo-karpenter-interruption"),
        ("aws:cloudwatch/logGroup:LogGroup", "demo-logs"),
        ("cortex:eks:NodeGroup", "demo-cpu"),
        ("cortex:eks:NodeGroup", "demo-gpu"),
        ("kubernetes:core/v1:Namespace", "demo-cortex-apis-namespace"),
        ("kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams", "demo-api-ingress-class-params"),
        ("kubernetes:networking.k8s.io/v1:IngressClass", "demo-api-ingress-class"),
    }
    assert expected <= {(r.type, r.name) for r in rec.resources}


def test_kubernetes_children_use_the_clusters_provider() -> None:
    rec = _recording()
    provider = rec.find("pulumi:providers:kubernetes", "demo-k8s")
    assert provider.property_dependencies["kubeconfig"] == [rec.find(EKS, "demo-eks").urn]
    kube = [r for r in rec.resources if r.type.startswith("kubernetes:") and r.custom]
    assert len(kube) > 10
    assert all(r.provider == provider.urn for r in kube), [r.name for r in kube if r.provider != provider.urn]


def test_preview_makes_no_cloud_lookup() -> None:
    # record() refuses invokes, so this passing proves the cluster needs no credentials to plan.
    rec = _recording(preview=True)
    eks = rec.find(EKS, "demo-eks")
    assert eks.inputs["name"] == "demo"
    assert eks.inputs["encryptionConfigKeyArn"] == UNKNOWN  # a key's ARN is unknown until it exists
    assert len(rec.resources) == len(_recording().resources)


# --- network -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nat", "visibility", "private_subnets", "gateways"),
    [("none", "public", 0, 0), ("single", "private", 3, 1), ("highly_available", "private", 3, 3)],
)
def test_subnets_per_zone_and_nat_gateways(nat: str, visibility: str, private_subnets: int, gateways: int) -> None:
    rec = _recording(nat_gateway=nat, subnet_visibility=visibility)
    subnets = {r.name: r.inputs for r in rec.of_type(SUBNET)}
    assert sorted(n for n in subnets if "-public-" in n) == [f"demo-public-{z}" for z in ZONES]
    assert len([n for n in subnets if "-private-" in n]) == private_subnets
    assert [z["availabilityZone"] for n, z in sorted(subnets.items()) if "-public-" in n] == ZONES
    assert len(rec.of_type(NAT)) == gateways == len(rec.of_type("aws:ec2/eip:Eip"))
    for zone in ZONES if private_subnets else []:
        route = rec.find("aws:ec2/routeTable:RouteTable", f"demo-private-{zone}").inputs["routes"]
        nat_zone = zone if nat == "highly_available" else ZONES[0]
        assert route == [{"cidrBlock": "0.0.0.0/0", "natGatewayId": f"demo-nat-{nat_zone}-id"}]
    # Nodes (system node group, Karpenter discovery tag) live in the subnets of the chosen visibility.
    kind = "private" if visibility == "private" else "public"
    system = rec.find("aws:eks/nodeGroup:NodeGroup", "demo-system").inputs
    assert system["subnetIds"] == [f"demo-{kind}-{z}-id" for z in ZONES]
    discovered = sorted(n for n, s in subnets.items() if s["tags"].get("karpenter.sh/discovery") == "demo")
    assert discovered == [f"demo-{kind}-{z}" for z in ZONES]
    assert all(s["mapPublicIpOnLaunch"] is (visibility == "public") for n, s in subnets.items() if "-public-" in n)


@pytest.mark.parametrize(("nat", "visibility"), [("none", "public"), ("highly_available", "private")])
def test_eks_and_managed_nodes_wait_for_routes_so_destroy_removes_them_last(nat: str, visibility: str) -> None:
    # Controllers on the cluster reach AWS through these routes until their finalizers have run.
    rec = _recording(nat_gateway=nat, subnet_visibility=visibility)
    routing = {r.urn for r in rec.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation") + rec.of_type(NAT)}
    assert len(routing) == {"none": 3, "highly_available": 9}[nat]
    for waiting in (rec.find(EKS, "demo-eks"), *rec.of_type("aws:eks/nodeGroup:NodeGroup")):
        assert routing <= set(waiting.dependencies), waiting.name


def test_subnet_roles_for_load_balancers() -> None:
    rec = _recording(nat_gateway="single", subnet_visibility="private")
    public = rec.find(SUBNET, "demo-public-us-east-1a").inputs["tags"]
    private = rec.find(SUBNET, "demo-private-us-east-1a").inputs["tags"]
    assert public["kubernetes.io/role/elb"] == "1" and "kubernetes.io/role/internal-elb" not in public
    assert private["kubernetes.io/role/internal-elb"] == "1" and "kubernetes.io/role/elb" not in private
    eks = rec.find(EKS, "demo-eks").inputs
    assert eks["publicSubnetIds"] == [f"demo-public-{z}-id" for z in ZONES]
    assert eks["privateSubnetIds"] == [f"demo-private-{z}-id" for z in ZONES]
    assert eks["vpcId"] == "demo-vpc-id"


EXISTING = (
    {"availability_zone": "us-east-1a", "subnet_id": "subnet-0aaaaaaaaaaaaaaaa"},
    {"availability_zone": "us-east-1b", "subnet_id": "subnet-0bbbbbbbbbbbbbbbb"},
)


def test_existing_subnets_make_no_vpc() -> None:
    spec = load_cluster({**BASE, "availability_zones": None, "subnets": list(EXISTING)}, origin="test")
    rec = record(lambda: Cluster("demo", spec, vpc_id="vpc-0123"))
    assert not [r for r in rec.resources if r.type.startswith("aws:ec2/") and r.type != "aws:ec2/tag:Tag"]
    ids = [s["subnet_id"] for s in EXISTING]
    eks = rec.find(EKS, "demo-eks").inputs
    assert (eks["subnetIds"], eks["vpcId"]) == (ids, "vpc-0123")
    assert "publicSubnetIds" not in eks
    assert rec.find("aws:eks/nodeGroup:NodeGroup", "demo-system").inputs["subnetIds"] == ids
    tagged = {r.inputs["resourceId"]: r.inputs for r in rec.of_type("aws:ec2/tag:Tag")}
    assert {i: (tagged[i]["key"], tagged[i]["value"]) for i in ids} == {i: ("karpenter.sh/discovery", "demo") for i in ids}
    lb = _releases(rec)["aws-load-balancer-controller"].inputs["values"]
    assert lb["vpcId"] == "vpc-0123"


def test_existing_subnets_need_the_vpc_id_and_new_vpcs_refuse_one() -> None:
    spec = load_cluster({**BASE, "availability_zones": None, "subnets": list(EXISTING)}, origin="test")
    with pytest.raises(CortexError) as e:
        record(lambda: Cluster("demo", spec))
    assert str(e.value) == (
        "Cluster 'demo': vpc_id is required with cluster.yaml subnets (the VPC of subnet-0aaaaaaaaaaaaaaaa, "
        "subnet-0bbbbbbbbbbbbbbbb; it is not looked up)"
    )
    with pytest.raises(CortexError, match="vpc_id is only for cluster.yaml subnets"):
        record(lambda: Cluster("demo", _spec(), vpc_id="vpc-1"))


# --- tags ------------------------------------------------------------------------------------------


def _aws_classes() -> dict[str, type]:
    modules = (aws.ec2, aws.vpc, aws.iam, aws.eks, aws.kms, aws.sqs, aws.cloudwatch)
    return {
        cls.pulumi_type: cls
        for module in modules
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, pulumi.CustomResource) and isinstance(getattr(cls, "pulumi_type", None), str)
    }


def _takes_tags(cls: type) -> bool:
    return "tags" in inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]


@pytest.mark.parametrize("nat", ["none", "highly_available"])
def test_every_aws_resource_that_takes_tags_has_the_cluster_tags(nat: str) -> None:
    rec = _recording(nat_gateway=nat, subnet_visibility="private" if nat != "none" else "public")
    classes = _aws_classes()
    untagged = set()
    for r in rec.resources:
        if not r.type.startswith("aws:"):
            continue
        if _takes_tags(classes[r.type]):
            assert TAGS.items() <= r.inputs.get("tags", {}).items(), (r.type, r.name)
        else:
            untagged.add(r.type)
    # Only these types cannot carry tags at all.
    assert untagged == {
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:sqs/queuePolicy:QueuePolicy",
        "aws:cloudwatch/eventTarget:EventTarget",
        "aws:ec2/tag:Tag",
    }
    assert rec.find(EKS, "demo-eks").inputs["tags"] == TAGS  # pulumi-eks tags everything it makes
    assert _releases(rec)["aws-load-balancer-controller"].inputs["values"]["defaultTags"] == TAGS


# --- EKS ---------------------------------------------------------------------------------------------


def test_eks_cluster_settings() -> None:
    rec = _recording()
    eks = rec.find(EKS, "demo-eks").inputs
    key = rec.find("aws:kms/key:Key", "demo-secrets").inputs
    assert key["enableKeyRotation"] is True
    assert eks["encryptionConfigKeyArn"] == f"arn:aws:kms:{FAKE_REGION}:{FAKE_ACCOUNT}:demo-secrets"
    assert (eks["name"], eks["version"]) == ("demo", KUBERNETES_VERSION)
    assert eks["authenticationMode"] == "API"
    assert eks["createOidcProvider"] is True
    assert eks["skipDefaultNodeGroup"] is True
    assert eks["skipDefaultSecurityGroups"] is True


def test_access_entries_let_karpenter_nodes_join_and_admins_in() -> None:
    admin = "arn:aws:iam::123456789012:role/platform-admin"
    rec = record(lambda: Cluster("demo", _spec(), admin_principal_arns=[admin]))
    entries = rec.find(EKS, "demo-eks").inputs["accessEntries"]
    assert entries == {
        "karpenter-nodes": {
            "principalArn": f"arn:aws:iam:{FAKE_REGION}:{FAKE_ACCOUNT}:demo-karpenter-node-role",
            "type": "EC2_LINUX",
        },
        "admin-0": {
            "principalArn": admin,
            "accessPolicies": {
                "cluster-admin": {
                    "policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                    "accessScope": {"type": "cluster"},
                }
            },
        },
    }


@pytest.mark.parametrize(
    ("scheme", "public", "cidrs"),
    [("internet-facing", True, ["203.0.113.0/24"]), ("internal", False, None)],
)
def test_endpoint_access_follows_the_operator_scheme(scheme: str, public: bool, cidrs: list[str] | None) -> None:
    rec = _recording(operator_load_balancer_scheme=scheme, operator_load_balancer_cidr_white_list=["203.0.113.0/24"])
    eks = rec.find(EKS, "demo-eks").inputs
    assert eks["endpointPrivateAccess"] is True
    assert eks["endpointPublicAccess"] is public
    assert eks.get("publicAccessCidrs") == cidrs


INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def test_private_endpoint_admits_the_vpc_and_the_operator_allow_list_on_443() -> None:
    rec = _recording(
        operator_load_balancer_scheme="internal", operator_load_balancer_cidr_white_list=["10.8.0.0/16", "2001:db8::/32"]
    )
    rules = {r.name: r for r in rec.of_type(INGRESS_RULE)}
    assert sorted(rules) == ["demo-api-server-from-10.8.0.0-16", "demo-api-server-from-192.168.0.0-16", "demo-api-server-from-2001-db8---32"]
    eks = rec.find(EKS, "demo-eks")
    for rule in rules.values():
        assert rule.inputs["securityGroupId"] == "sg-demo-cluster"  # the EKS-made cluster security group
        assert rule.property_dependencies["securityGroupId"] == [eks.urn]
        assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == ("tcp", 443, 443)
        assert rule.inputs["tags"] == TAGS
    assert rules["demo-api-server-from-192.168.0.0-16"].inputs["cidrIpv4"] == "192.168.0.0/16"  # the VPC
    assert rules["demo-api-server-from-2001-db8---32"].inputs["cidrIpv6"] == "2001:db8::/32"
    # Pulumi reaches the API through the private endpoint too, so the provider waits for the rules.
    provider = rec.find("pulumi:providers:kubernetes", "demo-k8s")
    assert {r.urn for r in rules.values()} <= set(provider.dependencies)


def test_public_endpoint_needs_no_ingress_rule_and_existing_vpcs_only_admit_the_allow_list() -> None:
    assert _recording().of_type(INGRESS_RULE) == []
    spec = load_cluster(
        {**BASE, "availability_zones": None, "subnets": list(EXISTING), "operator_load_balancer_scheme": "internal",
         "operator_load_balancer_cidr_white_list": ["10.8.0.0/16"]},
        origin="test",
    )
    rec = record(lambda: Cluster("demo", spec, vpc_id="vpc-0123"))
    assert [r.inputs["cidrIpv4"] for r in rec.of_type(INGRESS_RULE)] == ["10.8.0.0/16"]


def test_system_and_prometheus_node_groups() -> None:
    rec = _recording()
    system = rec.find("aws:eks/nodeGroup:NodeGroup", "demo-system").inputs
    assert system["instanceTypes"] == [SYSTEM_INSTANCE_TYPE]
    assert (system["capacityType"], system["amiType"]) == ("ON_DEMAND", "AL2023_x86_64_STANDARD")
    # Nodes follow the control plane when KUBERNETES_VERSION is bumped (EKS never upgrades them itself).
    assert system["version"] == KUBERNETES_VERSION
    assert system["scalingConfig"] == {"desiredSize": 2, "minSize": 2, "maxSize": 2}
    assert system["labels"] == {"cortex.dev/role": "system"}
    assert system["taints"] == [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}]
    prometheus = rec.find("aws:eks/nodeGroup:NodeGroup", "demo-prometheus").inputs
    assert prometheus["instanceTypes"] == ["t3.medium"]  # cluster.yaml's prometheus_instance_type default
    assert prometheus["version"] == KUBERNETES_VERSION
    assert prometheus["scalingConfig"]["desiredSize"] == 1
    assert prometheus["taints"] == [{"key": "cortex.dev/role", "value": "prometheus", "effect": "NO_SCHEDULE"}]
    arm = _recording(prometheus_instance_type="t4g.medium").find("aws:eks/nodeGroup:NodeGroup", "demo-prometheus")
    assert arm.inputs["amiType"] == "AL2023_ARM_64_STANDARD"


def test_node_roles_trust_ec2_and_have_the_node_policies() -> None:
    rec = _recording(preview=True)
    for role in ("demo-karpenter-node-role", "demo-system-node-role"):
        assert _policy(rec.find(ROLE, role), "assumeRolePolicy") == service_trust_policy("ec2.amazonaws.com")
        prefix = role.removesuffix("-role")
        for policy in NODE_POLICIES:
            attachment = rec.find("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{prefix}-{policy}")
            assert attachment.inputs["policyArn"] == f"arn:aws:iam::aws:policy/{policy}"
            assert attachment.property_dependencies["role"] == [rec.find(ROLE, role).urn]


# --- add-ons -----------------------------------------------------------------------------------------


def test_releases_with_pinned_charts() -> None:
    releases = _releases(_recording())
    expected = {  # the default recording has a GPU node group: DCGM exporter too
        "karpenter-crd": (KARPENTER_CRD_CHART, "kube-system"),
        "karpenter": (KARPENTER_CHART, "kube-system"),
        "aws-load-balancer-controller": (AWS_LOAD_BALANCER_CONTROLLER_CHART, "kube-system"),
        "keda": (KEDA_CHART, "keda"),
        "keda-add-ons-http": (KEDA_HTTP_ADD_ON_CHART, "keda"),
        "metrics-server": (METRICS_SERVER_CHART, "kube-system"),
        "prometheus": (PROMETHEUS_CHART, "prometheus"),
        "nvidia-device-plugin": (NVIDIA_DEVICE_PLUGIN_CHART, "kube-system"),
        "aws-for-fluent-bit": (AWS_FOR_FLUENT_BIT_CHART, "logging"),
        "grafana": (GRAFANA_CHART, "prometheus"),
        "dcgm-exporter": (DCGM_EXPORTER_CHART, "kube-system"),
    }
    assert set(releases) == set(expected)
    for release_name, (chart, namespace) in expected.items():
        inputs = releases[release_name].inputs
        assert (inputs["chart"], inputs["version"], inputs["namespace"]) == (chart.chart, chart.version, namespace)
        assert inputs.get("repositoryOpts") == ({"repo": chart.repository} if chart.repository else None)
    assert releases["karpenter"].inputs["skipCrds"] is True
    assert releases["karpenter"].inputs["values"]["settings"]["interruptionQueue"] == "demo-karpenter"


def test_nvidia_plugin_only_with_a_gpu_node_group() -> None:
    rec = _recording(node_groups=[{"name": "cpu", "instance_type": "m5.large"}])
    assert "nvidia-device-plugin" not in _releases(rec)
    assert "nvidia-device-plugin" not in _releases(_recording(addons=AddonsArgs(nvidia_device_plugin=False)))


INF_GROUPS = [
    {"name": "cpu", "instance_type": "m5.large"},
    {"name": "inf", "instance_type": "inf2.xlarge", "min_instances": 0},
]


def test_neuron_plugin_only_with_an_inferentia_node_group_and_switchable() -> None:
    assert "neuron-device-plugin" not in _releases(_recording())  # cpu and gpu groups only
    rec = _recording(node_groups=INF_GROUPS)
    releases = _releases(rec)
    assert "nvidia-device-plugin" not in releases
    inputs = releases["neuron-device-plugin"].inputs
    assert (inputs["chart"], inputs["version"], inputs["namespace"]) == (
        NEURON_HELM_CHART.chart, NEURON_HELM_CHART.version, "kube-system"
    )
    assert inputs["chart"].startswith("oci://") and inputs.get("repositoryOpts") is None
    assert inputs["values"] == render.neuron_device_plugin_values()
    off = _recording(node_groups=INF_GROUPS, addons=AddonsArgs(neuron_device_plugin=False))
    assert set(_releases(off)) == set(releases) - {"neuron-device-plugin"}


def test_inferentia_node_class_pre_allocates_huge_pages() -> None:
    rec = _recording(node_groups=INF_GROUPS)
    inf = rec.find("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "demo-inf-node-class").inputs["spec"]
    assert "echo 'vm.nr_hugepages = 128' > /etc/sysctl.d/90-cortex-hugepages.conf" in inf["userData"]
    cpu = rec.find("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "demo-cpu-node-class").inputs["spec"]
    assert "userData" not in cpu


@pytest.mark.parametrize(
    ("switch", "gone"),
    [
        ("aws_load_balancer_controller", {"aws-load-balancer-controller"}),
        ("metrics_server", {"metrics-server"}),
        ("prometheus", {"prometheus", "grafana", "dcgm-exporter"}),  # Grafana and DCGM need it
        ("fluent_bit", {"aws-for-fluent-bit"}),
        ("keda_http_add_on", {"keda-add-ons-http"}),
    ],
)
def test_each_switch_removes_its_release(switch: str, gone: set[str]) -> None:
    all_on = set(_releases(_recording()))
    rec = _recording(addons=AddonsArgs(**{switch: False}))
    assert set(_releases(rec)) == all_on - gone


def test_switched_off_addons_leave_no_aws_resources_or_namespaces() -> None:
    rec = _recording(addons=AddonsArgs(prometheus=False, fluent_bit=False, aws_load_balancer_controller=False))
    names = {r.name for r in rec.resources}
    assert not {"demo-prometheus", "demo-logs", "demo-fluent-bit-role", "demo-load-balancer-controller-role"} & names
    assert not {"demo-prometheus-namespace", "demo-logging-namespace", "demo-api-ingress-class"} & names


def test_ingresses_wait_for_the_load_balancer_controller() -> None:
    # The controller's webhooks validate Ingresses and IngressClassParams: nothing routed may come first.
    (api,) = load_apis([{"name": "hello", "kind": "RealtimeAPI", "pod": {"containers": [{"name": "api", "image": "m:1"}]}}])
    assert isinstance(api, RealtimeApiSpec)

    def program() -> None:
        RealtimeApi("hello", api, Cluster("demo", _spec()))

    rec = record(program)
    controller = _releases(rec)["aws-load-balancer-controller"].urn
    params = rec.find("kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams", "demo-api-ingress-class-params")
    ingress_class = rec.find("kubernetes:networking.k8s.io/v1:IngressClass", "demo-api-ingress-class")
    assert controller in params.dependencies
    assert {controller, params.urn} <= set(ingress_class.dependencies)
    ingress = rec.find("kubernetes:networking.k8s.io/v1:Ingress", "hello-ingress")
    assert {controller, ingress_class.urn} <= set(ingress.dependencies)


def test_no_karpenter_means_no_node_groups_allowed() -> None:
    with pytest.raises(CortexError) as e:
        record(lambda: Cluster("demo", _spec(), addons=AddonsArgs(karpenter=False)))
    assert str(e.value) == (
        "addons: karpenter is off but cluster.yaml has node_groups ['cpu', 'gpu']; Karpenter launches their nodes"
    )
    rec = _recording(node_groups=[], addons=AddonsArgs(karpenter=False))
    assert not [r for r in rec.resources if "karpenter" in r.name]
    assert not rec.of_type("cortex:eks:NodeGroup")


def test_http_add_on_needs_keda() -> None:
    with pytest.raises(CortexError, match="keda_http_add_on needs keda"):
        record(lambda: Cluster("demo", _spec(), addons=AddonsArgs(keda=False)))


@pytest.mark.parametrize(
    ("key", "namespace", "service_account"),
    [
        ("karpenter", "kube-system", "karpenter"),
        ("load-balancer-controller", "kube-system", "aws-load-balancer-controller"),
        ("fluent-bit", "logging", "aws-for-fluent-bit"),
    ],
)
def test_controller_roles_through_pod_identity(key: str, namespace: str, service_account: str) -> None:
    rec = _recording(preview=True)
    role = rec.find(ROLE, f"demo-{key}-role")
    assert _policy(role, "assumeRolePolicy") == pod_identity_trust_policy("demo", namespace, service_account)
    association = rec.find(POD_IDENTITY, f"demo-{key}")
    assert association.inputs["clusterName"] == "demo"
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == (namespace, service_account)
    assert association.property_dependencies["roleArn"] == [role.urn]
    assert rec.find(EKS, "demo-eks").urn in association.dependencies
    # The chart's service account is the associated one, and its release waits for the association.
    release = next(r for r in rec.of_type(RELEASE) if r.name == f"demo-{key}")
    assert association.urn in release.dependencies
    assert release.inputs["values"]["serviceAccount"]["name"] == service_account


def test_coredns_add_on_is_pinned_and_waits_for_the_system_nodes() -> None:
    rec = _recording()
    coredns = rec.find("aws:eks/addon:Addon", "demo-coredns")
    assert (coredns.inputs["addonName"], coredns.inputs["addonVersion"]) == ("coredns", COREDNS_ADDON_VERSION)
    assert rec.find("aws:eks/nodeGroup:NodeGroup", "demo-system").urn in coredns.dependencies


def test_pod_identity_agent_is_installed_and_releases_wait_for_it_and_the_system_nodes() -> None:
    rec = _recording()
    agent = rec.find("aws:eks/addon:Addon", "demo-pod-identity-agent")
    assert (agent.inputs["addonName"], agent.inputs["clusterName"]) == ("eks-pod-identity-agent", "demo")
    system = rec.find("aws:eks/nodeGroup:NodeGroup", "demo-system")
    for release in rec.of_type(RELEASE):
        assert {agent.urn, system.urn} <= set(release.dependencies), release.name


def test_karpenter_controller_policies_name_the_node_role_and_queue() -> None:
    rec = _recording()
    queue_arn = f"arn:aws:sqs:{FAKE_REGION}:{FAKE_ACCOUNT}:demo-karpenter-interruption"
    node_role_arn = f"arn:aws:iam:{FAKE_REGION}:{FAKE_ACCOUNT}:demo-karpenter-node-role"
    for name in render.KARPENTER_POLICY_NAMES:
        doc = _policy(rec.find("aws:iam/policy:Policy", f"demo-karpenter-{name}"), "policy")
        assert doc == render.karpenter_controller_policies("demo", "us-east-1", node_role_arn, queue_arn)[name]


def test_interruption_queue_and_its_rules() -> None:
    rec = _recording(preview=True)
    queue = rec.find("aws:sqs/queue:Queue", "demo-karpenter-interruption")
    assert queue.inputs["name"] == "demo-karpenter"
    assert queue.inputs["messageRetentionSeconds"] == 300
    assert queue.inputs["sqsManagedSseEnabled"] is True
    policy = rec.find("aws:sqs/queuePolicy:QueuePolicy", "demo-karpenter-interruption")
    assert policy.property_dependencies["queueUrl"] == [queue.urn]
    for event, pattern in render.KARPENTER_INTERRUPTION_EVENTS.items():
        rule = rec.find("aws:cloudwatch/eventRule:EventRule", f"demo-karpenter-{event}")
        assert json.loads(rule.inputs["eventPattern"]) == pattern
        target = rec.find("aws:cloudwatch/eventTarget:EventTarget", f"demo-karpenter-{event}")
        assert target.property_dependencies == {"arn": [queue.urn], "rule": [rule.urn]}
    assert len(rec.of_type("aws:cloudwatch/eventRule:EventRule")) == 5


def test_node_groups_get_karpenters_role_and_selectors_and_wait_for_it() -> None:
    rec = _recording(preview=True)
    releases = {r.name: r.urn for r in rec.of_type(RELEASE)}
    node_role = rec.find(ROLE, "demo-karpenter-node-role").urn
    for group in ("cpu", "gpu"):
        node_class = rec.find("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", f"demo-{group}-node-class")
        assert node_class.property_dependencies["spec"] == [node_role]
        assert {releases["demo-karpenter-crd"], releases["demo-karpenter"]} <= set(node_class.dependencies)
    # In test mode the class is fully known: subnets and security groups found by the discovery tag.
    spec = _recording().find("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "demo-cpu-node-class").inputs["spec"]
    assert spec["subnetSelectorTerms"] == spec["securityGroupSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "demo"}}]
    tag = _recording().find("aws:ec2/tag:Tag", "demo-cluster-security-group-discovery").inputs
    assert tag == {"resourceId": "sg-demo-cluster", "key": "karpenter.sh/discovery", "value": "demo"}


def test_fluent_bit_log_group_and_its_policy() -> None:
    rec = _recording(addons=AddonsArgs(log_retention_days=14))
    group = rec.find("aws:cloudwatch/logGroup:LogGroup", "demo-logs").inputs
    assert (group["name"], group["retentionInDays"]) == ("/cortex/demo", 14)
    doc = _policy(rec.find("aws:iam/policy:Policy", "demo-fluent-bit-logs"), "policy")
    arn = f"arn:aws:cloudwatch:{FAKE_REGION}:{FAKE_ACCOUNT}:demo-logs"
    assert doc == render.fluent_bit_policy(arn)
    assert _releases(rec)["aws-for-fluent-bit"].inputs["values"]["cloudWatchLogs"]["logGroupName"] == "/cortex/demo"


def test_log_retention_must_be_a_cloudwatch_value() -> None:
    with pytest.raises(CortexError, match="log_retention_days: 10 is not a CloudWatch retention"):
        record(lambda: Cluster("demo", _spec(), addons=AddonsArgs(log_retention_days=10)))


# --- outputs and argument checks ---------------------------------------------------------------------


def test_outputs() -> None:
    def program() -> None:
        cluster = Cluster("demo", _spec(ssl_certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc"))
        assert cluster.namespaces == {
            "apis": "cortex-apis", "keda": "keda", "prometheus": "prometheus", "logging": "logging",
            "karpenter": "kube-system", "load_balancer_controller": "kube-system",
        }
        assert cluster.load_balancer == render.LoadBalancerSettings(
            scheme="internet-facing", cidr_allow_list=("0.0.0.0/0",),
            certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc",
        )
        assert cluster.prometheus_url == "http://prometheus-server.prometheus.svc.cluster.local:80"
        assert set(cluster.node_groups) == {"cpu", "gpu"}
        assert [g.name for g in cluster.node_group_specs] == ["cpu", "gpu"]
        assert cluster.tags == TAGS
        assert cluster.keda_http_interceptor == "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local:8080"
        assert {"keda", "keda-add-ons-http", "aws-load-balancer-controller", "prometheus", "api-ingress-class"} <= set(
            cluster.addon_releases
        )
        pulumi.export("cluster_name", cluster.cluster_name)
        pulumi.export("kubeconfig", cluster.kubeconfig)
        pulumi.export("oidc_provider_arn", cluster.oidc_provider_arn)
        pulumi.export("oidc_provider_url", cluster.oidc_provider_url)
        pulumi.export("api_namespace", cluster.api_namespace)
        pulumi.export("vpc_id", cluster.vpc_id)

    outputs = record(program).outputs
    assert outputs["cluster_name"] == "demo"
    assert outputs["kubeconfig"] == "$secret"
    assert outputs["oidc_provider_arn"].startswith(f"arn:aws:iam::{FAKE_ACCOUNT}:oidc-provider/")
    assert outputs["oidc_provider_url"].startswith("https://oidc.eks.")
    assert (outputs["api_namespace"], outputs["vpc_id"]) == ("cortex-apis", "demo-vpc-id")


def test_handle_carries_what_api_components_need() -> None:
    arn = "arn:aws:iam::123456789012:policy/models-read"

    def program() -> None:
        cluster = Cluster("demo", _spec(iam_policy_arns=[arn]))
        handle = cluster.handle
        assert isinstance(handle, ClusterHandle)
        assert cluster_handle(cluster, "test") is handle
        assert handle.k8s_provider is cluster.k8s_provider
        assert handle.cluster_name is cluster.cluster_name
        assert handle.api_namespace is cluster.api_namespace
        assert (handle.api_namespace_name, handle.namespace_name) == ("cortex-apis", "cortex-apis")
        assert handle.node_group_specs == tuple(cluster.node_group_specs)
        assert [g.name for g in handle.node_group_specs or ()] == ["cpu", "gpu"]
        assert handle.load_balancer == cluster.load_balancer is not None
        assert handle.prometheus_url == cluster.prometheus_url == render.PROMETHEUS_URL
        assert handle.keda_http_interceptor == cluster.keda_http_interceptor == render.KEDA_HTTP_INTERCEPTOR_SERVICE
        assert handle.iam_policy_arns == (arn,)
        assert dict(handle.tags) == TAGS
        assert dict(handle.addon_releases) == cluster.addon_releases
        assert all(handle.addon_releases[k] is r for k, r in cluster.addon_releases.items())
        with pytest.raises(dataclasses.FrozenInstanceError):
            handle.cluster_name = "other"  # type: ignore[misc]
        pulumi.export("handle_api_namespace", handle.api_namespace)
        pulumi.export("handle_cluster_name", handle.cluster_name)

    outputs = record(program).outputs
    assert (outputs["handle_api_namespace"], outputs["handle_cluster_name"]) == ("cortex-apis", "demo")


def test_handle_of_a_cluster_without_optional_addons() -> None:
    def program() -> None:
        addons = AddonsArgs(aws_load_balancer_controller=False, prometheus=False, keda_http_add_on=False)
        handle = Cluster("demo", _spec(), addons=addons).handle
        assert (handle.load_balancer, handle.prometheus_url, handle.keda_http_interceptor) == (None, None, None)
        assert set(handle.addon_releases) == {"karpenter-crd", "karpenter", "keda", "metrics-server",
                                              "nvidia-device-plugin", "aws-for-fluent-bit"}

    record(program)


def test_addons_args_is_the_render_layers_class() -> None:
    # Moved to render (pulumi-free, used by cluster_layout); programs still import it from components.
    assert AddonsArgs is render.AddonsArgs


def test_the_aws_region_config_is_not_read() -> None:
    # The stack program compares aws:region with cluster.yaml's region; the component reads no global config.
    rec = record(lambda: Cluster("demo", _spec()), config={"aws:region": "eu-west-1"})
    assert len(rec.resources) == len(_recording().resources)


def test_spec_must_be_a_cluster_spec() -> None:
    with pytest.raises(CortexError, match="spec must be a ClusterSpec, got dict"):
        record(lambda: Cluster("demo", BASE))  # type: ignore[arg-type]


def test_system_instance_type_must_be_known() -> None:
    with pytest.raises(CortexError) as e:
        record(lambda: Cluster("demo", _spec(), system_instance_type="m5.huge"))
    assert str(e.value) == "Cluster 'demo': system_instance_type: 'm5.huge' is not in the bundled instance table"


def test_the_api_namespace_gets_its_network_policy_and_the_cni_enforces_it() -> None:
    from cortex_iac.render.workload import network_policy

    rec = record(lambda: Cluster("demo", _spec()))
    policy = rec.find("kubernetes:networking.k8s.io/v1:NetworkPolicy", "demo-api-network-policy")
    assert policy.inputs["spec"] == network_policy()["spec"]
    namespace = rec.find("kubernetes:core/v1:Namespace", "demo-cortex-apis-namespace")
    assert namespace.urn in policy.dependencies  # placed in the namespace once it exists
    assert rec.find("eks:index:Cluster", "demo-eks").inputs["vpcCniOptions"]["enableNetworkPolicy"] is True


def test_api_egress_cidrs_reach_the_network_policy() -> None:
    from cortex_iac.render.workload import network_policy

    rec = _recording(api_egress_cidrs=["10.0.0.0/8"])
    policy = rec.find("kubernetes:networking.k8s.io/v1:NetworkPolicy", "demo-api-network-policy")
    assert policy.inputs["spec"] == network_policy(egress_cidrs=["10.0.0.0/8"])["spec"]

def test_keda_gets_a_role_that_may_only_assume_the_clusters_queue_scaler_roles() -> None:
    rec = _recording(preview=True)
    role = rec.find(ROLE, "demo-keda-operator-role")
    assert _policy(role, "assumeRolePolicy") == pod_identity_trust_policy("demo", "keda", "keda-operator")
    policy = rec.find("aws:iam/policy:Policy", "demo-keda-operator-assume-queue-scalers")
    assert _policy(policy, "policy") == {"Version": "2012-10-17", "Statement": [{
        "Sid": "AssumeQueueScalerRoles", "Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Resource": "arn:aws:iam::*:role/cortex/demo/queue-scalers/*"}]}
    association = rec.find(POD_IDENTITY, "demo-keda-operator")
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == ("keda", "keda-operator")
    # The operator starts with its credentials.
    release = next(r for r in rec.of_type(RELEASE) if r.name == "demo-keda")
    assert association.urn in release.dependencies


def test_handle_carries_what_async_apis_need() -> None:
    def program() -> None:
        cluster = Cluster("demo", _spec())
        handle = cluster.handle
        assert handle.region == "us-east-1"
        assert handle.keda_operator_role_arn is cluster.keda_operator_role_arn is not None
        assert handle.queue_scaler_role_path == "/cortex/demo/queue-scalers/"
        without = Cluster("other", _spec(cluster_name="other"), addons=AddonsArgs(keda=False, keda_http_add_on=False))
        assert without.handle.keda_operator_role_arn is None

    record(program)
