from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cortex_iac.cli import app, main
from tests.needs import missing

TINY = Path(__file__).parent / "plan" / "fixtures" / "tiny"
runner = CliRunner()


def test_plan_prints_tree_and_writes_json_and_manifests(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", str(TINY), "--stack", "dev", "--json", str(tmp_path / "p.json"), "--manifests", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "aws:ec2/vpc:Vpc  vpc" in result.output
    assert "5 resources, 2 Kubernetes objects, stack 'dev'" in result.output
    assert json.loads((tmp_path / "p.json").read_text())["stack"] == "dev"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["configmap.default.greeting.yaml", "secret.default.password.yaml"]


def test_plan_of_a_missing_stack_is_one_line_and_exit_1() -> None:
    result = runner.invoke(app, ["plan", str(TINY), "--stack", "nope"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {TINY}/Pulumi.nope.yaml: no such stack config; stacks here: dev"
    ]


SHARED = Path(__file__).resolve().parents[2] / "shared" / "cortex-reference"


def test_validate_accepts_every_reference_config(tmp_path: Path) -> None:

    if not SHARED.is_dir():
        missing(f"Cortex reference configs not found at {SHARED} (shared/ sits beside the repo in dev and CI)")
    # Cortex deployed one file at a time, and the reference files reuse API names across files: each
    # file is validated with the reference cluster, as one deployment of its own.
    files = sorted((SHARED / "apis").glob("*.yaml"))
    assert len(files) == 20
    cluster = str(SHARED / "cluster.yaml")
    for file in files:
        apis = yaml.safe_load(file.read_text())
        wants_inf = any(c.get("compute", {}).get("inf") for api in apis for c in api.get("pod", {}).get("containers", []))
        result = runner.invoke(app, ["validate", cluster, str(file)])
        if wants_inf:
            # The reference cluster has no Inferentia group: that is said, and one with it accepts the file.
            assert result.exit_code == 1
            assert "inf 1 (sidecar included) is not allowed (must fit an instance type" in result.output
            with_inf = tmp_path / "cluster-inf.yaml"
            with_inf.write_text("region: us-east-1\nnode_groups: [{name: inf, instance_type: inf1.xlarge}]\n")
            result = runner.invoke(app, ["validate", str(with_inf), str(file)])
            assert result.exit_code == 0, result.output
            continue
        # Every kind deploys (cortex_iac.specs.kinds).
        assert result.exit_code == 0, result.output
        assert f"ok {file}: {apis[0]['kind']} " in result.output
        assert ("warning: " + cluster + ": api_load_balancer_type: ignored") in result.output


def test_validate_accepts_the_project_stacks_and_examples() -> None:
    repo = Path(__file__).resolve().parents[1]
    files = [repo / "stacks" / "apis" / "dev.yaml", repo / "stacks" / "clusters" / "prod.yaml"]
    result = runner.invoke(app, ["validate", *map(str, files)])
    assert result.exit_code == 0, result.output


BAD = {
    "syntax.yaml": ("- name: [x\n", "invalid YAML"),
    "empty.yaml": ("", "empty"),
    "scalar.yaml": ("42\n", None),
    "misspelt.yaml": (
        "- name: a\n  kind: RealtimeAPI\n  pod:\n    containers: [{name: c, image: i}]\n  autoscaling: {max_replica: 3}\n",
        "apis[0].autoscaling.max_replica: unknown key (did you mean 'max_replicas'?",
    ),
    "range.yaml": (
        "- name: a\n  kind: RealtimeAPI\n  pod:\n    containers: [{name: c, image: i}]\n  autoscaling: {max_replicas: 0}\n",
        "apis[0].autoscaling.max_replicas: 0",
    ),
    "quantity.yaml": (
        "- name: a\n  kind: RealtimeAPI\n  pod:\n    containers: [{name: c, image: i, compute: {mem: 2GiB}}]\n",
        "apis[0].pod.containers[0].compute.mem: '2GiB'",
    ),
    "duplicate.yaml": (
        "- {name: a, kind: TaskAPI, pod: {containers: [{name: c, image: i, command: [x]}]}}\n"
        "- {name: a, kind: TaskAPI, pod: {containers: [{name: c, image: i, command: [x]}]}}\n",
        "apis[1].name: 'a'",
    ),
}


def test_validate_rejects_each_malformed_file_with_one_line_per_problem(tmp_path: Path) -> None:
    for name, (content, expected) in BAD.items():
        path = tmp_path / name
        path.write_text(content)
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 1, (name, result.output)
        assert "Traceback" not in result.output
        lines = result.output.strip().splitlines()
        assert lines and all(line.startswith(f"error: {path}") for line in lines), (name, lines)
        if expected:
            assert expected in result.output, (name, result.output)


def test_render_writes_valid_objects_for_every_reference_realtime_api(tmp_path: Path) -> None:
    import yaml

    from tests.kube import need_crds, validate_all

    if not SHARED.is_dir():
        missing(f"Cortex reference configs not found at {SHARED}")
    need_crds()
    files = sorted((SHARED / "apis").glob("realtime__*.yaml"))
    assert len(files) == 12
    for i, path in enumerate(files):
        for cluster in ([], ["--cluster", str(SHARED / "cluster.yaml")]):
            out = tmp_path / f"{i}-{len(cluster)}"
            result = runner.invoke(app, ["render", str(path), "--out", str(out), *cluster])
            if "inf" in path.name and cluster:
                # The reference cluster has no Inferentia node group: nothing to place the API on.
                assert result.exit_code == 1 and "error:" in result.output, result.output
                continue
            assert result.exit_code == 0, (path.name, result.output)
            objects = [yaml.safe_load(p.read_text()) for p in sorted(out.iterdir())]
            assert {o["kind"] for o in objects} >= {"Deployment", "Service", "ScaledObject", "ConfigMap"}
            assert validate_all(objects) == len(objects)


def test_render_writes_valid_objects_for_every_reference_job_api(tmp_path: Path) -> None:
    import yaml

    from tests.kube import validate_all

    if not SHARED.is_dir():
        missing(f"Cortex reference configs not found at {SHARED}")
    files = sorted(p for p in (SHARED / "apis").glob("*.yaml") if p.name.startswith(("batch__", "task__")))
    assert len(files) == 4
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cortex-serving:0.1.0"
    for i, path in enumerate(files):
        # Job APIs need the runtime image (their gateway runs it): said in one line without it.
        result = runner.invoke(app, ["render", str(path), "--out", str(tmp_path / f"none-{i}")])
        assert result.exit_code == 1 and "no runtime image is given" in result.output, result.output
        for cluster in ([], ["--cluster", str(SHARED / "cluster.yaml")]):
            out = tmp_path / f"{i}-{len(cluster)}"
            result = runner.invoke(app, ["render", str(path), "--out", str(out), "--runtime-image", image, *cluster])
            assert result.exit_code == 0, (path.name, result.output)
            objects = [yaml.safe_load(p.read_text()) for p in sorted(out.iterdir())]
            assert {o["kind"] for o in objects} == {"Namespace", "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding",
                                                    "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "Ingress"}
            assert validate_all(objects) == len(objects) == 11


def test_render_writes_valid_objects_for_every_reference_async_api(tmp_path: Path) -> None:
    import yaml

    from tests.kube import need_crds, validate_all

    if not SHARED.is_dir():
        missing(f"Cortex reference configs not found at {SHARED}")
    need_crds()
    files = sorted((SHARED / "apis").glob("async__*.yaml"))
    assert len(files) == 3
    for i, path in enumerate(files):
        # Without a runtime image the gateway and the worker have nothing to run: said, nothing written.
        result = runner.invoke(app, ["render", str(path), "--out", str(tmp_path / f"none-{i}")])
        assert result.exit_code == 1 and "no runtime image is given" in result.output, result.output
        assert not (tmp_path / f"none-{i}").exists()
        for cluster in ([], ["--cluster", str(SHARED / "cluster.yaml")]):
            out = tmp_path / f"{i}-{len(cluster)}"
            result = runner.invoke(app, ["render", str(path), "--out", str(out), *cluster,
                                         "--runtime-image", "registry.example/cortex-serving:1"])
            assert result.exit_code == 0, (path.name, result.output)
            objects = [yaml.safe_load(p.read_text()) for p in sorted(out.iterdir())]
            assert sorted(o["kind"] for o in objects) == sorted([
                "ServiceAccount", "ServiceAccount", "Deployment", "Deployment", "PodDisruptionBudget",
                "PodDisruptionBudget", "Service", "TriggerAuthentication", "ScaledObject", "Ingress"])
            assert validate_all(objects) == len(objects)


def test_diff_and_cost_commands(tmp_path: Path) -> None:
    base, head = tmp_path / "base.json", tmp_path / "head.json"
    assert runner.invoke(app, ["plan", str(TINY), "--stack", "dev", "--json", str(base)]).exit_code == 0
    doc = json.loads(base.read_text())
    for r in doc["resources"]:
        if r["name"] == "greeting":
            r["inputs"]["data"]["greeting"] = "bonjour"
    head.write_text(json.dumps(doc))
    result = runner.invoke(app, ["diff", str(base), str(head), "--format", "text"])
    assert result.exit_code == 0, result.output
    # pulumi-kubernetes replaces a ConfigMap whose data changes (ConfigMaps are immutable to it).
    assert "Plan: 0 to create, 0 to update, 1 to replace, 0 to delete, 4 unchanged." in result.output
    assert 'data.greeting: "hello" -> "bonjour"  [forces replacement]' in result.output


def test_diff_and_cost_of_a_bad_plan_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args in (["diff", str(bad), str(bad)], ["cost", str(bad)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        (line,) = result.output.strip().splitlines()
        assert line.startswith(f"error: {bad}: not a JSON plan file")


def test_plan_accepts_the_project_or_its_main_directory() -> None:
    repo = Path(__file__).resolve().parents[1]
    for program_dir in (repo, repo / "stacks"):
        result = runner.invoke(app, ["plan", str(program_dir), "--stack", "dev"])
        assert result.exit_code == 0, result.output
        assert "cortex:api:RealtimeApi  hello-world" in result.output


def test_plan_of_a_stack_with_a_bad_spec_names_the_stack_file_and_field(tmp_path: Path) -> None:
    import shutil

    repo = Path(__file__).resolve().parents[1]
    shutil.copytree(repo / "stacks", tmp_path / "stacks")
    shutil.copy(repo / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    dev = (tmp_path / "stacks" / "Pulumi.dev.yaml").read_text()
    (tmp_path / "stacks" / "Pulumi.bad.yaml").write_text(dev.replace("max_instances: 3", "max_instances: many"))
    result = runner.invoke(app, ["plan", str(tmp_path), "--stack", "bad"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        "error: Pulumi.bad.yaml: cortex:cluster: node_groups[0].max_instances: 'many' is not allowed (must be an integer)"
    ]


def test_serve_refuses_an_image_api_with_one_line() -> None:
    repo = Path(__file__).resolve().parents[1]
    result = runner.invoke(app, ["serve", str(repo / "stacks" / "apis" / "dev.yaml"), "--name", "hello-world"])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and "hello-world" in line and "image" in line


def test_render_a_handler_api_needs_a_runtime_image(tmp_path: Path) -> None:
    import yaml

    from tests.kube import validate_all

    api = Path(__file__).resolve().parents[1] / "examples" / "iris-classifier" / "api.yaml"
    result = runner.invoke(app, ["render", str(api), "--out", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "runtime image" in result.output and "Traceback" not in result.output
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cortex-runtime:src-0123abcd"
    result = runner.invoke(app, ["render", str(api), "--out", str(tmp_path / "o"), "--runtime-image", image])
    assert result.exit_code == 0, result.output
    objects = [yaml.safe_load(p.read_text()) for p in sorted((tmp_path / "o").iterdir())]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "api"]
    assert container["image"] == image
    assert container["command"] == ["python", "-m", "cortex_iac.serving"]
    assert any(o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("iris-classifier-handler-") for o in objects)
    assert validate_all(objects) == len(objects)


def test_the_console_entry_point_leaves_what_is_alive_to_the_process_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    # The interpreter's last collections at exit would walk a large plan's objects (docs/benchmarks.md).
    monkeypatch.setattr("sys.argv", ["cortex", "--help"])
    assert gc.get_freeze_count() == 0
    try:
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
