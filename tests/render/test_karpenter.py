"""Karpenter NodePools and EC2NodeClasses rendered from Cortex node groups.

Golden files: ``tests/render/golden/karpenter/<case>.yaml`` hold every object of a case (node class,
dynamic pool, floors). After a deliberate change, regenerate them with
``CORTEX_UPDATE_GOLDEN=1 pytest tests/render/test_karpenter.py`` and review the diff.
"""

from __future__ import annotations

import email
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from cortex_iac.errors import SpecError
from cortex_iac.instance_types import INSTANCE_TYPES
from cortex_iac.render import karpenter
from cortex_iac.specs import NodeGroupSpec, load_cluster
from cortex_iac.specs.quantity import Quantity
from cortex_iac.versions import KARPENTER_AMI_ALIAS
from tests.kube import need_crds, validate_object
from tests.needs import missing

GOLDEN = Path(__file__).parent / "golden" / "karpenter"
REFERENCE_CLUSTER = Path(__file__).resolve().parents[3] / "shared" / "cortex-reference" / "cluster.yaml"
SELECTOR = {"karpenter.sh/discovery": "cortex"}

SYNTHETIC: dict[str, dict[str, Any]] = {
    # Spot across three types, two floor nodes of which one is on-demand base capacity.
    "spot-distribution": {
        "name": "spot",
        "instance_type": "m5.large",
        "min_instances": 2,
        "max_instances": 10,
        "priority": 50,
        "spot": True,
        "spot_config": {"instance_distribution": ["m5a.large", "m5.xlarge"], "on_demand_base_capacity": 1},
    },
    "gpu": {"name": "gpu", "instance_type": "g4dn.xlarge", "min_instances": 0, "max_instances": 4, "priority": 100},
    "inferentia": {"name": "inf", "instance_type": "inf2.xlarge", "min_instances": 1, "max_instances": 3},
    "arm64-spot": {
        "name": "arm",
        "instance_type": "m6g.large",
        "min_instances": 1,
        "max_instances": 5,
        "spot": True,
        "spot_config": {"instance_distribution": ["m7g.large"]},
    },
    "gp3-iops": {
        "name": "fast-disk",
        "instance_type": "c6i.xlarge",
        "instance_volume_size": 200,
        "instance_volume_type": "gp3",
        "instance_volume_iops": 6000,
        "instance_volume_throughput": 500,
    },
    "io1": {"name": "io", "instance_type": "r6i.large", "instance_volume_type": "io1", "instance_volume_iops": 2000},
    "min-zero-on-demand-spot": {
        "name": "burst",
        "instance_type": "c6i.large",
        "min_instances": 0,
        "max_instances": 20,
        "spot": True,
        "spot_config": {"on_demand_percentage_above_base_capacity": 100},
    },
}


def _reference_groups() -> dict[str, NodeGroupSpec]:
    if not REFERENCE_CLUSTER.is_file():
        missing(f"{REFERENCE_CLUSTER} not found (shared/ is only beside the repo in CI and dev)")
    cluster = load_cluster(REFERENCE_CLUSTER)
    assert cluster.cluster_name == "cortex"
    return {f"reference-{g.name}": g for g in cluster.node_groups}


def _group(case: str) -> NodeGroupSpec:
    if case.startswith("reference-"):
        return _reference_groups()[case]
    return NodeGroupSpec.model_validate(SYNTHETIC[case])


def _render(group: NodeGroupSpec) -> list[dict[str, Any]]:
    node_class = karpenter.node_class(
        "cortex",
        group,
        node_role="cortex-karpenter-node",
        subnet_selector_tags=SELECTOR,
        security_group_selector_tags=SELECTOR,
        tags={"team": "ml"},
    )
    return [node_class, *karpenter.node_pools("cortex", group).values()]


CASES = ["reference-ng-cpu", "reference-ng-gpu", *SYNTHETIC]


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (a node class's userData) as literal blocks, readable in a diff."""


_BlockDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


@pytest.mark.parametrize("case", CASES)
def test_matches_golden_file_and_crd_schemas(case: str) -> None:
    objects = _render(_group(case))
    for obj in objects:
        validate_object(obj)
    text = yaml.dump_all(objects, Dumper=_BlockDumper, sort_keys=False)
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("CORTEX_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} missing; run with CORTEX_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{path} differs; review and regenerate with CORTEX_UPDATE_GOLDEN=1"


def test_reference_cluster_groups_are_all_covered() -> None:
    assert sorted(_reference_groups()) == ["reference-ng-cpu", "reference-ng-gpu"]


def _requirement(pool: dict[str, Any], key: str) -> list[str]:
    (req,) = [r for r in pool["spec"]["template"]["spec"]["requirements"] if r["key"] == key]
    assert req["operator"] == "In"
    return list(req["values"])


def test_spot_group_prefers_spot_with_on_demand_fallback_and_keeps_its_base_on_demand() -> None:
    group = _group("spot-distribution")
    pool = karpenter.node_pool("cortex", group)
    floors = karpenter.floor_node_pools("cortex", group)

    assert _requirement(pool, "node.kubernetes.io/instance-type") == ["m5.large", "m5a.large", "m5.xlarge"]
    assert _requirement(pool, "karpenter.sh/capacity-type") == ["spot", "on-demand"]
    assert pool["spec"]["weight"] == 50
    assert karpenter.floor_sizes(group) == {"-floor": 1, "-floor-on-demand": 1}
    assert [f["metadata"]["name"] for f in floors.values()] == ["cortex-spot-floor", "cortex-spot-floor-on-demand"]
    assert _requirement(floors["-floor"], "karpenter.sh/capacity-type") == ["spot", "on-demand"]
    assert _requirement(floors["-floor-on-demand"], "karpenter.sh/capacity-type") == ["on-demand"]
    assert [f["spec"]["replicas"] for f in floors.values()] == [1, 1]


def test_limits_cover_max_minus_min_instances_of_the_largest_type() -> None:
    # m5.xlarge (4 vCPU, 16 GiB) is the largest of the distribution; 10 - 2 nodes are dynamic.
    pool = karpenter.node_pool("cortex", _group("spot-distribution"))
    assert pool["spec"]["limits"] == {"nodes": "8", "cpu": "32", "memory": f"{8 * 16384}Mi"}


def test_floor_and_dynamic_pools_together_hold_exactly_max_instances() -> None:
    for case in CASES:
        group = _group(case)
        dynamic = int(karpenter.node_pool("cortex", group)["spec"]["limits"]["nodes"])
        floor = sum(p["spec"]["replicas"] for p in karpenter.floor_node_pools("cortex", group).values())
        assert (floor, dynamic + floor) == (group.min_instances, group.max_instances), case


def test_floor_pools_are_static_without_weight_or_resource_limits() -> None:
    for case in CASES:
        for pool in karpenter.floor_node_pools("cortex", _group(case)).values():
            assert pool["spec"]["replicas"] >= 1
            assert "weight" not in pool["spec"] and "limits" not in pool["spec"], case


def test_min_instances_zero_has_no_floor() -> None:
    group = _group("gpu")
    assert karpenter.floor_sizes(group) == {}
    assert karpenter.floor_node_pools("cortex", group) == {}
    assert karpenter.node_pools("cortex", group) == {"": karpenter.node_pool("cortex", group)}


def test_node_pools_are_the_dynamic_pool_then_the_floors_by_name_suffix() -> None:
    group = _group("spot-distribution")
    pools = karpenter.node_pools("cortex", group)
    assert pools == {"": karpenter.node_pool("cortex", group), **karpenter.floor_node_pools("cortex", group)}
    assert [(suffix, pool["metadata"]["name"]) for suffix, pool in pools.items()] == [
        ("", "cortex-spot"), ("-floor", "cortex-spot-floor"), ("-floor-on-demand", "cortex-spot-floor-on-demand")
    ]


def test_non_spot_group_is_on_demand_only() -> None:
    pool = karpenter.node_pool("cortex", _group("reference-ng-cpu"))
    assert _requirement(pool, "karpenter.sh/capacity-type") == ["on-demand"]
    # 100% on-demand above a base of 0 is on-demand only as well.
    pool = karpenter.node_pool("cortex", _group("min-zero-on-demand-spot"))
    assert _requirement(pool, "karpenter.sh/capacity-type") == ["on-demand"]


def test_gpu_group_is_labelled_tainted_and_limited_in_gpus() -> None:
    pool = karpenter.node_pool("cortex", _group("gpu"))
    template = pool["spec"]["template"]
    assert template["metadata"]["labels"] == {"cortex.dev/node-group": "gpu", "nvidia.com/gpu.present": "true"}
    assert template["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert pool["spec"]["limits"]["nvidia.com/gpu"] == "4"
    assert pool["spec"]["weight"] == 100


def test_inferentia_group_is_labelled_tainted_and_limited_in_neuron_devices() -> None:
    pool = karpenter.node_pool("cortex", _group("inferentia"))
    template = pool["spec"]["template"]
    assert template["metadata"]["labels"]["aws.amazon.com/neuron.present"] == "true"
    assert template["spec"]["taints"] == [{"key": "aws.amazon.com/neuron", "value": "true", "effect": "NoSchedule"}]
    assert pool["spec"]["limits"]["aws.amazon.com/neuron"] == "2"
    assert "nvidia.com/gpu" not in pool["spec"]["limits"]


def test_cpu_group_has_no_taints_and_arch_comes_from_the_table() -> None:
    pool = karpenter.node_pool("cortex", _group("arm64-spot"))
    assert "taints" not in pool["spec"]["template"]["spec"]
    assert _requirement(pool, "kubernetes.io/arch") == ["arm64"]


def test_tolerations_match_the_taints() -> None:
    assert karpenter.tolerations_for("m5.large") == []
    assert karpenter.tolerations_for("g4dn.xlarge") == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert karpenter.tolerations_for("inf2.xlarge") == [
        {"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert karpenter.NODE_GROUP_LABEL == "cortex.dev/node-group"


def test_node_class_volume_metadata_options_ami_and_tags() -> None:
    spec = _render(_group("gp3-iops"))[0]["spec"]
    assert spec["blockDeviceMappings"] == [
        {
            "deviceName": "/dev/xvda",
            "rootVolume": True,
            "ebs": {
                "volumeSize": "200Gi",
                "volumeType": "gp3",
                "encrypted": True,
                "deleteOnTermination": True,
                "iops": 6000,
                "throughput": 500,
            },
        }
    ]
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert spec["amiSelectorTerms"] == [{"alias": KARPENTER_AMI_ALIAS}]
    assert KARPENTER_AMI_ALIAS.startswith("al2023@v") and "latest" not in KARPENTER_AMI_ALIAS
    assert spec["tags"] == {"team": "ml", "cortex.dev/cluster-name": "cortex", "cortex.dev/node-group": "fast-disk"}
    assert spec["role"] == "cortex-karpenter-node"


def test_pools_reference_the_class_and_disrupt_gently() -> None:
    group = _group("reference-ng-cpu")
    node_class, pool, floor = _render(group)
    ref = pool["spec"]["template"]["spec"]["nodeClassRef"]
    assert ref == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": node_class["metadata"]["name"]}
    assert floor["spec"]["template"]["spec"]["nodeClassRef"] == ref
    assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
    assert {"nodes": "1", "reasons": ["Underutilized"]} in pool["spec"]["disruption"]["budgets"]
    assert floor["spec"]["disruption"]["budgets"] == [{"nodes": "1"}]


def test_names_are_stable_lowercase_and_fit_label_values() -> None:
    assert karpenter.node_class_name("cortex", "ng-cpu") == "cortex-ng-cpu"
    group = NodeGroupSpec.model_validate({"name": "ng-cpu", "instance_type": "m5.large"})
    assert karpenter.node_pool("cortex", group)["metadata"]["name"] == "cortex-ng-cpu"  # the class's name
    long_cluster, long_group = "c" * 54, "g" * 26
    name = karpenter.object_name(long_cluster, long_group, "-floor-on-demand")
    assert len(name) == 63 and name.endswith("-floor-on-demand")
    assert name == karpenter.object_name(long_cluster, long_group, "-floor-on-demand")
    assert name != karpenter.object_name(long_cluster, "h" * 26, "-floor-on-demand")
    group = NodeGroupSpec.model_validate({"name": long_group, "instance_type": "m5.large"})
    for obj in [karpenter.node_class(long_cluster, group, node_role="r", subnet_selector_tags=SELECTOR,
                                     security_group_selector_tags=SELECTOR), *karpenter.node_pools(long_cluster, group).values()]:
        validate_object(obj)
        assert len(obj["metadata"]["name"]) <= 63



@pytest.mark.parametrize("key", ["kubernetes.io/cluster/cortex", "karpenter.sh/nodepool", "eks:eks-cluster-name"])
def test_reserved_tags_are_rejected(key: str) -> None:
    with pytest.raises(SpecError) as e:
        karpenter.check_tags({key: "x"})
    assert str(e.value) == f"tags: {key!r} is reserved by EKS or Karpenter and cannot be set"


# --- Inferentia huge pages ---------------------------------------------------------------------------


def _user_data_script(node_class: dict[str, Any]) -> str:
    # Parsed as cloud-init and Karpenter do: a MIME multi-part archive, here with one shell script.
    text = node_class["spec"]["userData"]
    assert text.startswith("MIME-Version:")  # how Karpenter tells a MIME archive from a bare script
    message = email.message_from_string(text)
    assert message.is_multipart()
    (part,) = message.get_payload()
    assert part.get_content_type() == "text/x-shellscript"
    return str(part.get_payload())


NEURON_TYPES = sorted(name for name, t in INSTANCE_TYPES.items() if t.neuron_devices)


@pytest.mark.parametrize("instance_type", NEURON_TYPES)
def test_inferentia_nodes_pre_allocate_the_huge_pages_of_every_chip(instance_type: str) -> None:
    group = NodeGroupSpec.model_validate({"name": "inf", "instance_type": instance_type})
    node_class = _render(group)[0]
    validate_object(node_class)
    script = _user_data_script(node_class)
    chips = INSTANCE_TYPES[instance_type].neuron_devices
    # 128 pages of 2 MiB per chip: what a RealtimeApi pod requests per chip (HUGEPAGES_PER_INF).
    assert karpenter.HUGEPAGES_PER_INF == Quantity.parse("256Mi")
    assert karpenter.node_hugepages(INSTANCE_TYPES[instance_type]) == Quantity(chips * 256 * 2**20)
    assert script.splitlines() == [
        "#!/bin/bash",
        "set -euo pipefail",
        f"echo 'vm.nr_hugepages = {chips * 128}' > /etc/sysctl.d/90-cortex-hugepages.conf",
        "sysctl -p /etc/sysctl.d/90-cortex-hugepages.conf",
    ]
    overlay = karpenter.node_overlay("cortex", group)
    assert overlay is not None
    assert Quantity.parse(overlay["spec"]["capacity"]["hugepages-2Mi"]) == Quantity(chips * 128 * 2 * 2**20)


@pytest.mark.parametrize("case", [c for c in CASES if c != "inferentia"])
def test_other_groups_get_no_user_data_and_no_overlay(case: str) -> None:
    group = _group(case)
    assert "userData" not in _render(group)[0]["spec"]
    assert karpenter.node_overlay("cortex", group) is None


def test_inferentia_overlay_applies_to_the_groups_node_pools_only() -> None:
    group = _group("inferentia")
    overlay = karpenter.node_overlay("cortex", group)
    assert overlay == {
        "apiVersion": "karpenter.sh/v1alpha1",
        "kind": "NodeOverlay",
        "metadata": {"name": "cortex-inf", "labels": {"cortex.dev/node-group": "inf"}},
        "spec": {
            "requirements": [{"key": "cortex.dev/node-group", "operator": "In", "values": ["inf"]}],
            "capacity": {"hugepages-2Mi": "256Mi"},
        },
    }
    # Karpenter matches overlay requirements against each NodePool's template labels.
    (requirement,) = overlay["spec"]["requirements"]
    for pool in karpenter.node_pools("cortex", group).values():
        assert pool["spec"]["template"]["metadata"]["labels"][requirement["key"]] in requirement["values"]
    for case in ("gpu", "spot-distribution"):
        for pool in karpenter.node_pools("cortex", _group(case)).values():
            assert pool["spec"]["template"]["metadata"]["labels"][requirement["key"]] not in requirement["values"]


def test_node_overlay_validates_against_the_crd() -> None:
    # The NodeOverlay CRD (Karpenter v1.14.1) is among the shared schemas: validate_object fails if not.
    need_crds()
    overlay = karpenter.node_overlay("cortex", _group("inferentia"))
    assert overlay is not None
    validate_object(overlay)
