"""The ready program's stack config: ``cortex:runtimeImage`` reaches every API's handler container,
and handler paths of inline specs are taken from the stack directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cortex_iac.errors import SpecError
from cortex_iac.plan.engine import Recording, record
from cortex_iac.program import deploy
from cortex_iac.specs import load_cluster
from cortex_iac.specs.cluster import IGNORED_IMAGE_KEYS

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cortex-serving:src-0123456789abcdef"
CLUSTER = {"cluster_name": "cortex-test", "region": "us-east-1", "availability_zones": ["us-east-1a", "us-east-1b"],
           "node_groups": [{"name": "cpu", "instance_type": "m5.large"}]}
APIS = [
    {"name": "echo", "kind": "RealtimeAPI", "pod": {"containers": [{"name": "api", "handler": {"path": "echo.py"}}]}},
    {"name": "hello", "kind": "RealtimeAPI", "pod": {"containers": [{"name": "api", "image": "registry.example/h:1"}]}},
]


def _deploy(stack_dir: Path, **config: str) -> Recording:
    (stack_dir / "echo.py").write_text("class Handler: ...\n")
    keys = {"cortex:cluster": json.dumps(CLUSTER), "cortex:apis": json.dumps(APIS), **config}
    return record(lambda: deploy(stack_dir), config=keys, preview=True)


def _images(rec: Recording, api: str) -> list[str]:
    deployment = rec.find("kubernetes:apps/v1:Deployment", f"{api}-deployment")
    return [c["image"] for c in deployment.inputs["spec"]["template"]["spec"]["containers"]]


def test_runtime_image_key_reaches_handler_containers(tmp_path: Path) -> None:
    rec = _deploy(tmp_path, **{"cortex:runtimeImage": IMAGE})
    assert _images(rec, "echo")[0] == IMAGE
    assert _images(rec, "hello")[0] == "registry.example/h:1"
    handler = rec.find("kubernetes:core/v1:ConfigMap", "echo-handler")
    assert handler.inputs["data"] == {"echo.py": "class Handler: ...\n"}  # read from the stack directory


def test_without_the_key_a_handler_api_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"apis\[0\].pod.containers\[0\].handler: 'echo.py' is not allowed \(a handler "
                                        r"runs in the serving runtime image, and no runtime image is given: .* the "
                                        r"stack config key cortex:runtimeImage"):
        _deploy(tmp_path)


def test_the_aws_region_must_be_the_clusters(tmp_path: Path) -> None:
    # The stack program checks it (the Cluster component reads no global config).
    region = CLUSTER["region"]
    with pytest.raises(SpecError, match=rf"Pulumi\.\w+\.yaml: aws:region: 'eu-west-3' is not allowed \(must be the "
                                        rf"cluster's region, '{region}'"):
        _deploy(tmp_path, **{"cortex:runtimeImage": IMAGE, "aws:region": "eu-west-3"})
    assert _deploy(tmp_path, **{"cortex:runtimeImage": IMAGE, "aws:region": region}).resources


# A cluster.yaml with every field of Cortex v0.42's cluster config set (docs/clusters/management/
# create.md), the 28 image overrides and a spot group whose on-demand base is above min_instances
# (Cortex's spot docs: base 3, min 0, max 5) included.
EVERY_FIELD = {
    "cluster_name": "cortex-all", "region": "us-west-2",
    "availability_zones": ["us-west-2a", "us-west-2b", "us-west-2c"],
    "node_groups": [
        {"name": "ng-cpu", "instance_type": "m5.large", "min_instances": 1, "max_instances": 5, "priority": 10,
         "instance_volume_size": 80, "instance_volume_type": "io1", "instance_volume_iops": 3000, "spot": False},
        {"name": "ng-spot", "instance_type": "c5.xlarge", "min_instances": 0, "max_instances": 5, "priority": 1,
         "instance_volume_size": 50, "instance_volume_type": "gp3", "instance_volume_iops": 3000,
         "instance_volume_throughput": 125, "spot": True,
         "spot_config": {"instance_distribution": ["c5a.xlarge", "c6i.xlarge"], "on_demand_base_capacity": 3,
                         "on_demand_percentage_above_base_capacity": 0}},
        {"name": "ng-gpu", "instance_type": "g4dn.xlarge", "min_instances": 0, "max_instances": 2},
        {"name": "ng-inf", "instance_type": "inf1.xlarge", "min_instances": 0, "max_instances": 1},
    ],
    "subnet_visibility": "private", "nat_gateway": "highly_available",
    "api_load_balancer_type": "nlb", "api_load_balancer_scheme": "internet-facing",
    "operator_load_balancer_scheme": "internal",
    "api_load_balancer_cidr_white_list": ["0.0.0.0/0"], "operator_load_balancer_cidr_white_list": ["0.0.0.0/0"],
    "tags": {"team": "ml"}, "ssl_certificate_arn": "arn:aws:acm:us-west-2:123456789012:certificate/abc",
    "iam_policy_arns": ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"], "vpc_cidr": "10.0.0.0/16",
    "prometheus_instance_type": "t3.large",
    **{key: f"quay.io/cortexlabs/{key.removeprefix('image_').replace('_', '-')}:0.42.0" for key in IGNORED_IMAGE_KEYS},
}


def test_a_cluster_yaml_with_every_cortex_field_validates_and_plans(tmp_path: Path) -> None:
    cluster = load_cluster(EVERY_FIELD, origin="cluster.yaml")
    assert len(cluster.warnings) == 29  # the 28 image keys and api_load_balancer_type
    (tmp_path / "echo.py").write_text("class Handler: ...\n")
    keys = {"cortex:cluster": json.dumps(EVERY_FIELD), "cortex:apis": json.dumps(APIS),
            "cortex:runtimeImage": IMAGE, "aws:region": "us-west-2"}
    rec = record(lambda: deploy(tmp_path), config=keys, preview=True)
    pools = {r.name for r in rec.resources if r.type == "kubernetes:karpenter.sh/v1:NodePool"}
    assert {n for n in pools if "ng-spot" in n} == {"cortex-all-ng-spot-node-pool", "cortex-all-ng-spot-on-demand-node-pool"}
