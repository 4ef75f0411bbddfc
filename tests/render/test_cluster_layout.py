"""The Cluster's decisions as data: network, endpoint, managed nodes, namespaces, add-ons, device plugins."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest

from cortex_iac.errors import CortexError
from cortex_iac.render import addons as render
from cortex_iac.render.addons import AddonsArgs, LoadBalancerSettings
from cortex_iac.render.cluster_layout import (
    SYSTEM_INSTANCE_TYPE,
    SYSTEM_NODES,
    ApiServerSource,
    ClusterLayout,
    EndpointAccess,
    ManagedNodes,
    cluster_layout,
    endpoint_access,
    managed_node_ami_type,
)
from cortex_iac.render.network import network_layout
from cortex_iac.specs import ClusterSpec, load_cluster
from tests.clusters import BASE, ZONES

EXISTING = [
    {"availability_zone": "us-east-1a", "subnet_id": "subnet-0aaaaaaaaaaaaaaaa"},
    {"availability_zone": "us-east-1b", "subnet_id": "subnet-0bbbbbbbbbbbbbbbb"},
]
CPU = [{"name": "cpu", "instance_type": "m5.large"}]
INF = [{"name": "inf", "instance_type": "inf2.xlarge", "min_instances": 0}]


def _spec(**changes: Any) -> ClusterSpec:
    return load_cluster({**BASE, **changes}, origin="test")


def _layout(addons: AddonsArgs | None = None, **changes: Any) -> ClusterLayout:
    return cluster_layout(_spec(**changes), addons)


# --- defaults: everything on -------------------------------------------------------------------------


def test_default_layout() -> None:
    layout = _layout()
    assert (layout.cluster_name, layout.region) == ("demo", "us-east-1")
    assert layout.tags == {"team": "ml", "cortex.dev/cluster-name": "demo"}
    assert layout.network == network_layout(
        region="us-east-1", vpc_cidr="192.168.0.0/16", availability_zones=ZONES, nat_gateway="none", subnet_visibility="public"
    )
    assert (layout.existing_subnet_ids, layout.discovery_subnet_ids) == ((), ())
    assert layout.endpoint == EndpointAccess(public=True, public_access_cidrs=("0.0.0.0/0",), ingress=())
    assert layout.system_nodes == ManagedNodes(
        key="system",
        instance_type=SYSTEM_INSTANCE_TYPE,
        ami_type="AL2023_x86_64_STANDARD",
        size=SYSTEM_NODES,
        labels={"cortex.dev/role": "system"},
        taint={"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"},
    )
    assert layout.prometheus_nodes == ManagedNodes(
        key="prometheus",
        instance_type="t3.medium",
        ami_type="AL2023_x86_64_STANDARD",
        size=1,
        labels={"cortex.dev/role": "prometheus"},
        taint={"key": "cortex.dev/role", "value": "prometheus", "effect": "NO_SCHEDULE"},
        disk_size=render.PROMETHEUS_DISK_GIB,
    )
    assert layout.karpenter is True
    assert layout.load_balancer == LoadBalancerSettings(
        scheme="internet-facing", cidr_allow_list=("0.0.0.0/0",), certificate_arn=None
    )
    assert (layout.keda, layout.keda_http_add_on, layout.metrics_server) == (True, True, True)
    assert layout.keda_http_interceptor == "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local:8080"
    assert layout.prometheus_url == "http://prometheus-server.prometheus.svc.cluster.local:80"
    assert (layout.nvidia_device_plugin, layout.neuron_device_plugin) == (True, False)  # cpu and gpu groups
    assert (layout.fluent_bit, layout.log_retention_days) == (True, 30)


def test_layout_is_frozen() -> None:
    layout = _layout()
    with pytest.raises(dataclasses.FrozenInstanceError):
        layout.karpenter = False  # type: ignore[misc]
    assert cluster_layout(_spec()) == layout  # no switches given: all on


# --- namespaces ----------------------------------------------------------------------------------------


def test_namespaces_all_on() -> None:
    layout = _layout()
    assert [(ns.role, ns.name) for ns in layout.namespaces] == [
        ("apis", "cortex-apis"), ("keda", "keda"), ("prometheus", "prometheus"), ("logging", "logging"),
    ]
    assert layout.namespace_names == {
        "karpenter": "kube-system", "load_balancer_controller": "kube-system",
        "apis": "cortex-apis", "keda": "keda", "prometheus": "prometheus", "logging": "logging",
    }
    assert list(layout.namespace_names)[:2] == ["karpenter", "load_balancer_controller"]
    assert layout.api_namespace_name == "cortex-apis"
    apis, keda = layout.namespaces[:2]
    assert apis.metadata["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert keda.metadata == render.namespace_object("keda", "demo")["metadata"]


@pytest.mark.parametrize(
    ("switch", "gone"), [("keda", "keda"), ("prometheus", "prometheus"), ("fluent_bit", "logging")]
)
def test_each_namespace_follows_its_switch(switch: str, gone: str) -> None:
    changes: dict[str, bool] = {switch: False}
    if switch == "keda":
        changes["keda_http_add_on"] = False
    layout = _layout(AddonsArgs(**changes))  # type: ignore[arg-type]
    roles = [ns.role for ns in layout.namespaces]
    assert gone not in roles and "apis" in roles
    assert gone not in layout.namespace_names


# --- endpoint --------------------------------------------------------------------------------------------


def test_public_endpoint_is_limited_to_the_operator_allow_list() -> None:
    access = endpoint_access(_spec(operator_load_balancer_cidr_white_list=["203.0.113.0/24", "198.51.100.7/32"]))
    assert access == EndpointAccess(public=True, public_access_cidrs=("203.0.113.0/24", "198.51.100.7/32"), ingress=())


def test_internal_endpoint_is_private_and_admits_the_vpc_and_the_allow_list() -> None:
    layout = _layout(operator_load_balancer_scheme="internal",
                     operator_load_balancer_cidr_white_list=["10.8.0.1/16", "2001:db8::/32", "192.168.0.0/16"])
    assert layout.endpoint == EndpointAccess(
        public=False,
        public_access_cidrs=None,
        ingress=(
            ApiServerSource(cidr="192.168.0.0/16", key="api-server-from-192.168.0.0-16"),  # the VPC, once
            ApiServerSource(cidr="10.8.0.0/16", key="api-server-from-10.8.0.0-16"),  # host bits dropped
            ApiServerSource(cidr="2001:db8::/32", key="api-server-from-2001-db8---32"),
        ),
    )
    assert [s.ipv6 for s in layout.endpoint.ingress] == [False, False, True]


def test_internal_endpoint_of_existing_subnets_admits_only_the_allow_list() -> None:
    spec = _spec(availability_zones=None, subnets=EXISTING, operator_load_balancer_scheme="internal",
                 operator_load_balancer_cidr_white_list=["10.8.0.0/16"])
    assert [s.cidr for s in endpoint_access(spec).ingress] == ["10.8.0.0/16"]  # their VPC's CIDR is not looked up


# --- network -----------------------------------------------------------------------------------------------


def test_existing_subnets_make_no_network_and_get_the_discovery_tag_with_karpenter() -> None:
    layout = _layout(availability_zones=None, subnets=EXISTING)
    ids = ("subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb")
    assert layout.network is None
    assert layout.existing_subnet_ids == layout.discovery_subnet_ids == ids
    off = _layout(AddonsArgs(karpenter=False), availability_zones=None, subnets=EXISTING, node_groups=[])
    assert (off.existing_subnet_ids, off.discovery_subnet_ids, off.karpenter) == (ids, (), False)


def test_private_network_layout_is_passed_through() -> None:
    layout = _layout(subnet_visibility="private", nat_gateway="highly_available")
    assert layout.network is not None and layout.network.nodes_in_private_subnets
    assert [z.nat_gateway for z in layout.network.zones] == [True, True, True]


# --- managed nodes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance_type", "ami"),
    [("t3.large", "AL2023_x86_64_STANDARD"), ("t4g.medium", "AL2023_ARM_64_STANDARD"), ("m7g.large", "AL2023_ARM_64_STANDARD")],
)
def test_ami_type_follows_the_architecture(instance_type: str, ami: str) -> None:
    assert managed_node_ami_type(instance_type) == ami


def test_system_and_prometheus_instance_types() -> None:
    layout = cluster_layout(_spec(prometheus_instance_type="t4g.medium"), system_instance_type="m6g.large")
    assert (layout.system_nodes.instance_type, layout.system_nodes.ami_type) == ("m6g.large", "AL2023_ARM_64_STANDARD")
    assert layout.prometheus_nodes is not None
    assert (layout.prometheus_nodes.instance_type, layout.prometheus_nodes.ami_type) == ("t4g.medium", "AL2023_ARM_64_STANDARD")
    assert _layout(AddonsArgs(prometheus=False)).prometheus_nodes is None


# --- add-ons and device plugins -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "nvidia", "neuron"),
    [([], False, False), (CPU, False, False), (BASE["node_groups"], True, False), (CPU + INF, False, True),
     (BASE["node_groups"] + INF, True, True)],
)
def test_device_plugins_only_with_their_accelerators(groups: list[dict[str, Any]], nvidia: bool, neuron: bool) -> None:
    layout = _layout(node_groups=groups)
    assert (layout.nvidia_device_plugin, layout.neuron_device_plugin) == (nvidia, neuron)
    off = _layout(AddonsArgs(nvidia_device_plugin=False, neuron_device_plugin=False), node_groups=groups)
    assert (off.nvidia_device_plugin, off.neuron_device_plugin) == (False, False)


def test_switched_off_addons() -> None:
    layout = _layout(AddonsArgs(aws_load_balancer_controller=False, prometheus=False, keda_http_add_on=False,
                                metrics_server=False, fluent_bit=False, log_retention_days=14))
    assert (layout.load_balancer, layout.prometheus_url, layout.keda_http_interceptor) == (None, None, None)
    assert (layout.keda, layout.keda_http_add_on, layout.metrics_server, layout.fluent_bit) == (True, False, False, False)
    assert layout.log_retention_days == 14
    no_keda = _layout(AddonsArgs(keda=False, keda_http_add_on=False))
    assert (no_keda.keda, no_keda.keda_http_add_on, no_keda.keda_http_interceptor) == (False, False, None)


def test_load_balancer_settings_come_from_the_api_fields() -> None:
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    layout = _layout(api_load_balancer_scheme="internal", api_load_balancer_cidr_white_list=["10.0.0.0/8"],
                     ssl_certificate_arn=cert)
    assert layout.load_balancer == LoadBalancerSettings(scheme="internal", cidr_allow_list=("10.0.0.0/8",), certificate_arn=cert)


# --- refusals ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addons", "message"),
    [
        (AddonsArgs(keda=False), "addons: keda_http_add_on needs keda"),
        (AddonsArgs(karpenter=False), r"addons: karpenter is off but cluster.yaml has node_groups \['cpu', 'gpu'\]"),
        (AddonsArgs(log_retention_days=10), "addons: log_retention_days: 10 is not a CloudWatch retention"),
    ],
)
def test_contradicting_switches_are_refused(addons: AddonsArgs, message: str) -> None:
    with pytest.raises(CortexError, match=message):
        _layout(addons)


def test_regions_outside_the_aws_partition_are_refused() -> None:
    # The spec refuses them too; model_copy skips its validation, as a spec changed in code may.
    spec = _spec().model_copy(update={"region": "cn-north-1", "availability_zones": ["cn-north-1a", "cn-north-1b"]})
    with pytest.raises(CortexError, match=r"cluster.yaml: region: 'cn-north-1' is in the aws-cn partition"):
        cluster_layout(spec)


# --- purity ---------------------------------------------------------------------------------------------------------


def test_render_layer_imports_no_pulumi() -> None:
    code = (
        "import sys, cortex_iac.render.cluster_layout, cortex_iac.render.addons; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0].startswith('pulumi'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
