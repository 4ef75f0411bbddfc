"""One validation path: every refusal the renderers and components used to make is now made by the
spec layer, so `cortex validate` refuses it, with the file, field, value and what is allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cortex_iac.cli import app
from cortex_iac.render import karpenter
from cortex_iac.specs import load_cluster

runner = CliRunner()
CLUSTER = {"region": "us-east-1", "node_groups": [{"name": "cpu", "instance_type": "m5.large"},
                                                  {"name": "gpu", "instance_type": "g4dn.xlarge"}]}
IMAGE = "registry.example.com/team/model:1"


def _api(**changes: Any) -> dict[str, Any]:
    container = {"name": "api", "image": IMAGE, **changes.pop("container", {})}
    return {"name": "a", "kind": "RealtimeAPI", "pod": {"containers": [container], **changes.pop("pod", {})}, **changes}


def _validate(tmp_path: Path, apis: list[dict[str, Any]] | None = None, cluster: dict[str, Any] | None = None,
              *extra: str) -> tuple[int, str]:
    args = []
    if cluster is not None:
        (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(cluster))
        args.append(str(tmp_path / "cluster.yaml"))
    if apis is not None:
        (tmp_path / "cortex.yaml").write_text(yaml.safe_dump(apis))
        args.append(str(tmp_path / "cortex.yaml"))
    result = runner.invoke(app, ["validate", *args, *extra])
    return result.exit_code, result.output


def _group(**changes: Any) -> dict[str, Any]:
    return {"region": "us-east-1", "node_groups": [{"name": "spot", "instance_type": "m5.large", "spot": True,
                                                    "min_instances": 1, **changes}]}


# Each former refusal of render/ or components/, and the line validate prints for it now.
FORMER_RENDER_REFUSALS = [
    ("spot max_price (karpenter)", None, _group(spot_config={"max_price": 0.05}),
     "node_groups[0].spot_config.max_price: 0.05 is not allowed (not supported: Karpenter never pays more"),
    ("spot instance_pools (karpenter)", None, _group(spot_config={"instance_pools": 2}),
     "node_groups[0].spot_config.instance_pools: 2 is not allowed (not supported: Karpenter spreads"),
    ("on-demand ratio (karpenter)", None, _group(spot_config={"on_demand_percentage_above_base_capacity": 50}),
     "node_groups[0].spot_config.on_demand_percentage_above_base_capacity: 50 is not allowed (must be 0"),
    ("HDD root volume (karpenter)", None, _group(instance_volume_type="st1", instance_volume_size=500),
     "node_groups[0].instance_volume_type: 'st1' is not allowed (must be one of gp3, gp2, io1"),
    ("io1 without iops (karpenter)", None, _group(instance_volume_type="io1"),
     "node_groups[0].instance_volume_iops: required key is missing"),
    ("reserved tag (karpenter)", None, {**CLUSTER, "tags": {"karpenter.sh/nodepool": "x"}},
     "tags['karpenter.sh/nodepool']: 'x' is not allowed (this key is reserved by EKS and Karpenter"),
    ("more than 4 zones (network)", None,
     {"region": "us-east-1", "availability_zones": [f"us-east-1{z}" for z in "abcde"]},
     "is not allowed (must list at most 4 zones"),
    ("non-commercial partition (cluster component)", None, {"region": "cn-north-1"},
     "region: 'cn-north-1' is not allowed (must be a region of the aws partition, not aws-cn"),
    ("stabilization above 1h (autoscaling)", [_api(autoscaling={"downscale_stabilization_period": "2h"})], None,
     "autoscaling.downscale_stabilization_period: '2h' is not allowed (must be at least 0s, at most 3600s"),
    ("inf without cpu or mem (realtime)", [_api(container={"compute": {"cpu": None, "inf": 1}})], None,
     "pod.containers[0].compute.inf: 1 is not allowed (needs cpu or mem as well"),
    ("http_get pre_stop (realtime)", [_api(container={"pre_stop": {"http_get": {"port": 8080}}})], None,
     "pod.containers[0].pre_stop.http_get: {\"port\": 8080} is not allowed (not supported"),
    ("unknown node group (realtime)", [_api(node_groups=["inf"])], CLUSTER,
     "apis[0].node_groups[0]: 'inf' is not allowed (must be a node group of the cluster (cpu, gpu))"),
    ("pod fits no group (realtime)", [_api(container={"compute": {"cpu": "64"}})], CLUSTER,
     "apis[0].pod: needs cpu 64100m, memory 320Mi, gpu 0, inf 0 (sidecar included) is not allowed (must fit"),
    ("handler with a command (realtime)", [_api(container={"image": None, "handler": {"path": "h.py"},
                                                           "command": ["x"]})], None,
     "pod.containers[0].command: [\"x\"] is not allowed (not allowed with a handler"),
    ("two handler containers (realtime)",
     [_api(pod={"containers": [{"name": "a", "handler": {"path": "h.py"}}, {"name": "b", "handler": {"path": "h.py"}}]})],
     None, "pod.containers[1].handler: {\"path\": \"h.py\"} is not allowed (a pod runs at most one handler container"),
    ("handler file name not a ConfigMap key (realtime)",
     [_api(container={"image": None, "handler": {"path": "my handler.py"}})], None,
     "handler.path: 'my handler.py' is not allowed (the file name must be letters, digits"),
    ("handler without a runtime image (realtime)", [_api(container={"image": None, "handler": {"path": "h.py"}})],
     None, "pod.containers[0].handler: 'h.py' is not allowed (a handler runs in the serving runtime image, and no "
     "runtime image is given"),
]


@pytest.mark.parametrize(("case", "apis", "cluster", "expected"), FORMER_RENDER_REFUSALS,
                         ids=[case for case, *_ in FORMER_RENDER_REFUSALS])
def test_validate_refuses_what_render_refused(tmp_path: Path, case: str, apis: Any, cluster: Any, expected: str) -> None:
    (tmp_path / "h.py").write_text("class Handler: ...\n")
    extra = ["--runtime-image", IMAGE] if "runtime image" not in case and apis and "handler" in str(apis) else []
    if "without a runtime image" in case:
        stack = {"config": {"aws:region": "us-east-1", "cortex:cluster": CLUSTER, "cortex:apis": apis}}
        (tmp_path / "Pulumi.t.yaml").write_text(yaml.safe_dump(stack))
        result = runner.invoke(app, ["validate", str(tmp_path / "Pulumi.t.yaml")])
        code, output = result.exit_code, result.output
    else:
        code, output = _validate(tmp_path, apis, cluster, *extra)
    assert code == 1, output
    assert expected in output, output
    assert not any(line.startswith("ok ") for line in output.splitlines())


def test_handler_files_bigger_than_a_config_map_or_not_text_are_refused(tmp_path: Path) -> None:
    (tmp_path / "big.py").write_bytes(b"#" * (900 * 1024 + 1))
    (tmp_path / "bin.py").write_bytes(b"\xff\xfe")
    apis = [_api(name="big", container={"image": None, "handler": {"path": "big.py"}}),
            _api(name="bin", container={"image": None, "handler": {"path": "bin.py"}})]
    code, output = _validate(tmp_path, apis)
    assert code == 1
    assert "handler.path: 'big.py' is not allowed (has 921601 bytes; a handler file may have at most 921600" in output
    assert "handler.path: 'bin.py' is not allowed (must be UTF-8 text (byte 0 is not))" in output


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "/proc/self/environ", "/etc/passwd", "up.py", "fifo.py"])
def test_handler_paths_are_confined_to_regular_files_beside_the_api_file(tmp_path: Path, path: str) -> None:
    api_dir = tmp_path / "api"
    api_dir.mkdir()
    (tmp_path / "outside.py").write_text("SECRET = 1\n")
    (api_dir / "up.py").symlink_to(tmp_path / "outside.py")  # a link leading out of the directory
    os.mkfifo(api_dir / "fifo.py")  # reading it would hang
    (api_dir / "cortex.yaml").write_text(yaml.safe_dump([_api(container={"image": None, "handler": {"path": path}})]))
    result = runner.invoke(app, ["validate", str(api_dir / "cortex.yaml")])
    assert result.exit_code == 1
    assert f"handler.path: {path!r} is not allowed (" in result.output
    assert "SECRET" not in result.output


def test_endpoints_and_names_are_unique_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump([_api(name="a", networking={"endpoint": "/shared"})]))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump([_api(name="b", networking={"endpoint": "shared/"}), _api(name="a")]))
    result = runner.invoke(app, ["validate", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")])
    assert result.exit_code == 1
    assert (f"{tmp_path / 'b.yaml'}: apis[0].networking.endpoint: '/shared' is not allowed (endpoints must be unique "
            f"in a cluster; {tmp_path / 'a.yaml'}: apis[0] (a) has it)") in result.output
    assert f"{tmp_path / 'b.yaml'}: apis[1].name: 'a' is not allowed (API names must be unique" in result.output


def test_splitter_targets_must_exist_and_be_realtime_apis(tmp_path: Path) -> None:
    task = {"name": "t", "kind": "TaskAPI", "pod": {"containers": [{"name": "c", "image": IMAGE, "command": ["x"]}]}}
    splitter = {"name": "s", "kind": "TrafficSplitter",
                "apis": [{"name": "t", "weight": 50}, {"name": "missing", "weight": 50}]}
    code, output = _validate(tmp_path, [task, splitter])
    assert code == 1
    assert "apis[1].apis[0].name: 't' is not allowed (a TrafficSplitter routes to RealtimeAPIs; t is a TaskAPI)" in output
    assert "apis[1].apis[1].name: 'missing' is not allowed (must be a RealtimeAPI of the same deployment" in output


@pytest.mark.parametrize("image", ["<AWS_ACCOUNT_ID>.dkr.ecr.us-east-1.amazonaws.com/m:1", "Team/Model:1", "m:1:2",
                                   "m with space", "m:" + "t" * 129])
def test_image_references_follow_the_docker_grammar(tmp_path: Path, image: str) -> None:
    code, output = _validate(tmp_path, [_api(container={"image": image})])
    assert code == 1
    assert "pod.containers[0].image:" in output and "must be a container image reference" in output


@pytest.mark.parametrize("image", ["nginx", "quay.io/cortexlabs-test/realtime-sleep-cpu:latest", "localhost:5000/a/b:v1",
                                   "123456789012.dkr.ecr.us-east-1.amazonaws.com/m:1@sha256:" + "a" * 64])
def test_valid_image_references_pass(tmp_path: Path, image: str) -> None:
    assert _validate(tmp_path, [_api(container={"image": image})])[0] == 0


def test_cortex_image_keys_are_accepted_with_one_warning_each(tmp_path: Path) -> None:
    cluster = {**CLUSTER, "image_operator": "quay.io/cortexlabs/operator:0.42.0",
               "image_kubexit": "quay.io/cortexlabs/kubexit:0.42.0"}
    code, output = _validate(tmp_path, None, cluster)
    assert code == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {tmp_path / 'cluster.yaml'}: {key}: ignored (cortex_iac pins its own images, listed in "
        "cortex_iac/versions.py)" for key in ("image_kubexit", "image_operator")
    ] or sorted(warnings) == warnings  # yaml.safe_dump sorts the keys


def test_internal_operator_endpoint_with_cortex_default_allow_list_is_accepted(tmp_path: Path) -> None:
    code, output = _validate(tmp_path, None, {**CLUSTER, "operator_load_balancer_scheme": "internal",
                                              "operator_load_balancer_cidr_white_list": ["0.0.0.0/0"]})
    assert code == 0, output


def test_on_demand_base_above_min_instances_is_an_on_demand_pool_weighing_more() -> None:
    # Cortex's spot docs: base 3, min 0, max 5 -> instances 1-3 on-demand, 4-5 spot.
    cluster = load_cluster({"region": "us-east-1", "node_groups": [{
        "name": "ng", "instance_type": "m5.large", "spot": True, "min_instances": 0, "max_instances": 5,
        "spot_config": {"on_demand_base_capacity": 3}}]})
    pools = karpenter.node_pools("c", cluster.node_groups[0])
    assert set(pools) == {"", "-on-demand"}
    spot, on_demand = pools[""]["spec"], pools["-on-demand"]["spec"]
    assert on_demand["weight"] == spot["weight"] + 1
    assert on_demand["limits"]["nodes"] == "3" and spot["limits"]["nodes"] == "2"
    capacity = {r["key"]: r["values"] for r in on_demand["template"]["spec"]["requirements"]}
    assert capacity["karpenter.sh/capacity-type"] == ["on-demand"]
    # base 3, min 1: one on-demand floor node, two in the on-demand pool, the rest spot.
    cluster = load_cluster({"region": "us-east-1", "node_groups": [{
        "name": "ng", "instance_type": "m5.large", "spot": True, "min_instances": 1, "max_instances": 5,
        "spot_config": {"on_demand_base_capacity": 3}}]})
    pools = karpenter.node_pools("c", cluster.node_groups[0])
    assert set(pools) == {"", "-on-demand", "-floor-on-demand"}
    assert pools["-floor-on-demand"]["spec"]["replicas"] == 1
    assert pools["-on-demand"]["spec"]["limits"]["nodes"] == "2" and pools[""]["spec"]["limits"]["nodes"] == "2"


def test_stack_file_is_validated_as_the_program_reads_it(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    result = runner.invoke(app, ["validate", str(repo / "stacks" / "Pulumi.dev.yaml"), str(repo / "stacks" / "Pulumi.prod.yaml")])
    assert result.exit_code == 0, result.output
    stack = {"config": {"aws:region": "eu-west-1", "cortex:cluster": CLUSTER, "cortex:apis": [_api()]}}
    (tmp_path / "Pulumi.bad.yaml").write_text(yaml.safe_dump(stack))
    result = runner.invoke(app, ["validate", str(tmp_path / "Pulumi.bad.yaml")])
    assert result.exit_code == 1
    assert ("Pulumi.bad.yaml: aws:region: 'eu-west-1' is not allowed (must be the cluster's region, 'us-east-1'"
            in result.output)


def test_layers_import_only_downwards() -> None:
    code = (
        "import sys, cortex_iac.specs, cortex_iac.specs.deployment, cortex_iac.specs.stack, cortex_iac.render.realtime, "
        "cortex_iac.render.workload, cortex_iac.render.karpenter, cortex_iac.render.addons; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('pulumi', 'cortex_iac.serving', 'cortex_iac.plan', "
        "'cortex_iac.components')))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
    code = ("import sys, cortex_iac.serving.app, cortex_iac.serving.server, cortex_iac.serving.__main__; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('cortex_iac.specs', 'cortex_iac.render', "
            "'cortex_iac.plan', 'pydantic')))))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == []
