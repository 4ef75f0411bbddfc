"""cortex:eks:NodeGroup under the recording mock engine: children, parents, provider, inputs, order."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

from cortex_iac.components.node_group import NodeGroup
from cortex_iac.errors import SpecError
from cortex_iac.plan.engine import Recording, record
from cortex_iac.render import karpenter
from cortex_iac.specs import NodeGroupSpec

NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
COMPONENT = "cortex:eks:NodeGroup"

SPOT = NodeGroupSpec.model_validate(
    {
        "name": "spot",
        "instance_type": "m5.large",
        "min_instances": 3,
        "max_instances": 10,
        "priority": 20,
        "spot": True,
        "spot_config": {"instance_distribution": ["m5a.large"], "on_demand_base_capacity": 1},
    }
)
GPU_NO_FLOOR = NodeGroupSpec.model_validate(
    {"name": "gpu", "instance_type": "g4dn.xlarge", "min_instances": 0, "max_instances": 2}
)


def _program(spec: NodeGroupSpec, **kwargs: Any) -> Any:
    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        crds = aws.sqs.Queue("stand-in-for-the-karpenter-release")
        args: dict[str, Any] = {"cluster_name": "cortex", "node_role_name": "cortex-node", **kwargs}
        group = NodeGroup(
            "ng", spec, **args, opts=pulumi.ResourceOptions(providers=[provider], depends_on=[crds])
        )
        pulumi.export("node_class_name", group.node_class_name)
        pulumi.export("node_pool_name", group.node_pool_name)
        pulumi.export("floor_node_pool_names", group.floor_node_pool_names)

    return program


def _object(rec: Recording, type_: str, name: str) -> dict[str, Any]:
    inputs = rec.find(type_, name).inputs
    return {k: inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}


def test_children_types_names_parent_and_provider() -> None:
    rec = record(_program(SPOT))
    component = rec.find(COMPONENT, "ng")
    provider = rec.find("pulumi:providers:kubernetes", "k8s")
    children = rec.children(component.urn)
    # Registration order is up to the engine's scheduling; the set of children is what matters.
    assert sorted((c.type, c.name) for c in children) == [
        (NODE_CLASS, "ng-node-class"),
        (NODE_POOL, "ng-floor-node-pool"),
        (NODE_POOL, "ng-floor-on-demand-node-pool"),
        (NODE_POOL, "ng-node-pool"),
    ]
    for child in children:
        assert child.custom and child.provider == provider.urn


def test_children_carry_exactly_the_rendered_objects() -> None:
    rec = record(_program(SPOT, tags={"team": "ml"}))
    selector = {"karpenter.sh/discovery": "cortex"}
    assert _object(rec, NODE_CLASS, "ng-node-class") == karpenter.node_class(
        "cortex",
        SPOT,
        node_role="cortex-node",
        subnet_selector_tags=selector,
        security_group_selector_tags=selector,
        tags={"team": "ml"},
    )
    assert _object(rec, NODE_POOL, "ng-node-pool") == karpenter.node_pool("cortex", SPOT)
    floors = karpenter.floor_node_pools("cortex", SPOT)
    assert _object(rec, NODE_POOL, "ng-floor-node-pool") == floors["-floor"]
    assert _object(rec, NODE_POOL, "ng-floor-on-demand-node-pool") == floors["-floor-on-demand"]
    assert rec.outputs == {
        "node_class_name": "cortex-spot",
        "node_pool_name": "cortex-spot",
        "floor_node_pool_names": ["cortex-spot-floor", "cortex-spot-floor-on-demand"],
    }


def test_children_wait_for_the_components_dependencies_and_pools_for_their_class() -> None:
    rec = record(_program(SPOT))
    release = rec.find("aws:sqs/queue:Queue", "stand-in-for-the-karpenter-release").urn
    node_class = rec.find(NODE_CLASS, "ng-node-class")
    assert node_class.dependencies == [release]
    for pool in rec.of_type(NODE_POOL):
        assert pool.dependencies == sorted([release, node_class.urn])


def test_selectors_and_role_may_be_outputs_of_other_resources() -> None:
    def program() -> None:
        role = aws.iam.Role("node-role", name="acme-nodes", assume_role_policy="{}")
        sg = aws.ec2.SecurityGroup("nodes", name="acme-nodes")
        NodeGroup(
            "ng",
            GPU_NO_FLOOR,
            cluster_name="acme",
            node_role_name=role.name,
            subnet_selector_tags={"tier": "private"},
            security_group_selector_tags={"Name": sg.name},
        )

    rec = record(program)
    node_class = rec.find(NODE_CLASS, "ng-node-class")
    assert node_class.inputs["spec"]["role"] == "acme-nodes"
    assert node_class.inputs["spec"]["subnetSelectorTerms"] == [{"tags": {"tier": "private"}}]
    assert node_class.inputs["spec"]["securityGroupSelectorTerms"] == [{"tags": {"Name": "acme-nodes"}}]
    assert rec.find("aws:iam/role:Role", "node-role").urn in node_class.dependencies
    assert rec.find("aws:ec2/securityGroup:SecurityGroup", "nodes").urn in node_class.dependencies


def test_only_inferentia_groups_get_a_node_overlay_with_the_rendered_capacity() -> None:
    inf = NodeGroupSpec.model_validate({"name": "inf", "instance_type": "inf2.xlarge", "min_instances": 0})
    rec = record(_program(inf))
    overlay = rec.find("kubernetes:karpenter.sh/v1alpha1:NodeOverlay", "ng-node-overlay")
    assert overlay.parent == rec.find(COMPONENT, "ng").urn
    assert _object(rec, "kubernetes:karpenter.sh/v1alpha1:NodeOverlay", "ng-node-overlay") == karpenter.node_overlay(
        "cortex", inf
    )
    assert rec.of_type("kubernetes:karpenter.sh/v1alpha1:NodeOverlay") == [overlay]
    assert record(_program(GPU_NO_FLOOR)).of_type("kubernetes:karpenter.sh/v1alpha1:NodeOverlay") == []


def test_min_instances_zero_creates_no_floor() -> None:
    rec = record(_program(GPU_NO_FLOOR))
    assert [r.name for r in rec.of_type(NODE_POOL)] == ["ng-node-pool"]
    assert [r.name for r in rec.of_type(NODE_CLASS)] == ["ng-node-class"]
    assert rec.outputs["floor_node_pool_names"] == []
    assert rec.outputs["node_pool_name"] == "cortex-gpu"


def test_known_inputs_stay_known_in_preview() -> None:
    rec = record(_program(SPOT), preview=True)
    assert _object(rec, NODE_POOL, "ng-node-pool") == karpenter.node_pool("cortex", SPOT)
    assert rec.find(NODE_CLASS, "ng-node-class").inputs["spec"]["role"] == "cortex-node"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spec": {"name": "x"}}, "NodeGroup 'ng': spec must be a NodeGroupSpec, got dict"),
        ({"cluster_name": ""}, "NodeGroup 'ng': cluster_name must be a non-empty string, got ''"),
        ({"node_role_name": None}, "NodeGroup 'ng': node_role_name is required"),
        (
            {"subnet_selector_tags": {}},
            "NodeGroup 'ng': subnet_selector_tags must not be empty (it would match everything)",
        ),
        (
            {"security_group_selector_tags": {}},
            "NodeGroup 'ng': security_group_selector_tags must not be empty (it would match everything)",
        ),
        ({"name": ""}, "NodeGroup: name must be a non-empty string, got ''"),
        (
            {"spec": SPOT.model_copy(update={"spot_config": SPOT.spot_config.model_copy(update={"max_price": 0.1})})},
            "NodeGroup 'ng': spot_config.max_price: 0.1 is not allowed (not supported: Karpenter never pays more "
            "than the on-demand price for spot and has no lower cap (remove max_price))",
        ),
        ({"tags": {"karpenter.sh/nodepool": "x"}}, "tags: 'karpenter.sh/nodepool' is reserved by EKS or Karpenter and cannot be set"),
    ],
)
def test_bad_arguments_fail_before_any_resource_with_an_exact_message(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"name": "ng", "spec": SPOT, "cluster_name": "cortex", "node_role_name": "cortex-node", **kwargs}
    registered: list[Any] = []

    def program() -> None:
        registered.append(NodeGroup(args.pop("name"), args.pop("spec"), **args))

    with pytest.raises(SpecError) as e:
        record(program)
    assert str(e.value) == message
    assert registered == []
