"""No BatchAPI or TaskAPI that `cortex validate` accepts is refused later: generated job APIs (on
generated clusters, crossing the limits now and then) either fail validation with `SpecError` lines,
or render valid objects and plan with the Cluster and BatchApi / TaskApi components."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cortex_iac.components.batch_api import BatchApi
from cortex_iac.components.cluster import Cluster
from cortex_iac.components.task_api import TaskApi
from cortex_iac.errors import SpecError
from cortex_iac.plan.engine import record
from cortex_iac.render.jobs import render_job_api
from cortex_iac.specs import BatchApiSpec, load_apis, load_cluster
from cortex_iac.specs.deployment import deployment_problems
from tests.specs.test_valid_specs_plan import GROUPS, RUNTIME_IMAGE, containers, mostly


@st.composite
def job_api(draw: st.DrawFn, index: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["BatchAPI", "TaskAPI"]))
    pod_containers = []
    for i in range(draw(mostly([1, 1, 2], []))):
        container = draw(containers(i))
        if draw(mostly([True], [False])):
            container.pop("pre_stop", None)  # job kinds refuse pre_stop: now and then keep it
        if "image" in container and draw(mostly([True], [False])):
            container["command"] = ["run", "$(CORTEX_PORT)"]
        if kind == "TaskAPI" and draw(mostly([True], [False])):
            container.pop("readiness_probe", None)
        pod_containers.append(container)
    api: dict[str, Any] = {"name": f"job-{index}", "kind": kind, "pod": {"containers": pod_containers}}
    if kind == "BatchAPI" and draw(st.booleans()):
        api["pod"]["port"] = draw(st.sampled_from([8080, 9000]))
    if draw(st.booleans()):
        api["jobs"] = {"retention": draw(mostly(["1h", "720h", "8784h"], ["30m", "9000h"]))}
    if draw(st.booleans()):
        api["iam"] = {"s3_read": ["s3://data/in/"], "s3_write": draw(mostly([["s3://data/out/"]], [["data/out"]]))}
    if draw(st.booleans()):
        api["node_groups"] = draw(st.lists(mostly(["cpu", "big", "spot", "gpu", "inf"], ["none"]),
                                           min_size=1, max_size=2, unique=True))
    if draw(st.booleans()):
        api["networking"] = {"endpoint": draw(mostly(["/jobs", f"/job-{index}/v1"], ["/-/x"]))}
    return api


@st.composite
def deployments(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    groups = draw(st.lists(st.sampled_from(GROUPS), min_size=2, max_size=5, unique_by=lambda g: g["name"]))
    cluster = {"cluster_name": "gen", "region": "us-east-1", "node_groups": groups}
    return cluster, [draw(job_api(i)) for i in range(draw(st.integers(1, 2)))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                               HealthCheck.function_scoped_fixture])
@given(deployment=deployments())
def test_valid_job_apis_render_and_plan(tmp_path: Path, deployment: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    from tests.kube import validate_all

    (tmp_path / "handler.py").write_text("class Handler:\n    def handle_post(self, payload):\n        return payload\n")
    cluster_data, apis = deployment
    try:
        cluster_spec = load_cluster(cluster_data, origin="gen/cluster.yaml")
        specs = load_apis(apis, origin="gen/cortex.yaml", base_dir=tmp_path)
    except SpecError as error:
        assert error.problems and all(line.startswith("gen/") for line in error.problems), error.problems
        event("refused by the models")
        return
    if deployment_problems(cluster_spec.node_groups, specs, runtime_image=RUNTIME_IMAGE):
        event("refused by the deployment checks")
        return
    event("valid")
    for spec in specs:
        objects = render_job_api(spec, cluster_spec, runtime_image=RUNTIME_IMAGE)  # type: ignore[arg-type]
        assert validate_all(objects) == len(objects)

    def program() -> None:
        cluster = Cluster(cluster_spec.cluster_name, cluster_spec)
        for spec in specs:
            (BatchApi if isinstance(spec, BatchApiSpec) else TaskApi)(spec.name, spec, cluster, runtime_image=RUNTIME_IMAGE)
        pulumi.export("n", len(specs))

    recording = record(program)
    assert len([r for r in recording.resources if r.type in ("cortex:api:BatchApi", "cortex:api:TaskApi")]) == len(specs)
