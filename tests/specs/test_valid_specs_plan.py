"""No spec that `cortex validate` accepts is refused later: generated deployments (a cluster,
RealtimeAPIs and AsyncAPIs, with values inside and outside every limit) either fail validation with
`SpecError` lines, or render and plan (the stack program's Cluster, RealtimeApi and AsyncApi
components under the mock engine) without any error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cortex_iac.components.async_api import AsyncApi
from cortex_iac.components.cluster import Cluster
from cortex_iac.components.realtime_api import RealtimeApi
from cortex_iac.errors import SpecError
from cortex_iac.plan.engine import record
from cortex_iac.render import async_api
from cortex_iac.render.realtime import render_api
from cortex_iac.specs import AsyncApiSpec, RealtimeApiSpec, load_apis, load_cluster
from cortex_iac.specs.deployment import deployment_problems

IMAGE = "registry.example.com/team/model:1"
RUNTIME_IMAGE = "registry.example.com/cortex-serving:1"

GROUPS = [
    {"name": "cpu", "instance_type": "m5.large", "min_instances": 1, "max_instances": 3},
    {"name": "big", "instance_type": "r5.4xlarge", "min_instances": 0, "max_instances": 2, "priority": 50},
    {"name": "spot", "instance_type": "c5.xlarge", "spot": True, "min_instances": 0, "max_instances": 5,
     "spot_config": {"on_demand_base_capacity": 3, "instance_distribution": ["c5a.xlarge"]}},
    {"name": "gpu", "instance_type": "g4dn.xlarge", "min_instances": 0, "max_instances": 2},
    {"name": "inf", "instance_type": "inf1.2xlarge", "min_instances": 0, "max_instances": 1},
]



def mostly(valid: list[Any], invalid: list[Any]) -> st.SearchStrategy[Any]:
    """One of ``valid``, or (one draw in twenty) one of ``invalid``: most generated deployments are
    then valid, and every limit is still crossed now and then."""
    return st.integers(0, 19).flatmap(lambda n: st.sampled_from(invalid if n == 19 and invalid else valid))


quantity_cpu = mostly([None, "50m", "200m", "1", "1.5"], ["7", "64"])
quantity_mem = mostly([None, "64Mi", "512Mi", "4Gi"], ["30Gi", "1Ti"])


@st.composite
def containers(draw: st.DrawFn, index: int) -> dict[str, Any]:
    container: dict[str, Any] = {"name": f"c{index}"}
    if draw(st.booleans()) and index == 0:
        container["handler"] = {"path": "handler.py", "threads_per_process": draw(st.integers(1, 4))}
        if draw(mostly([False], [True])):
            container["command"] = ["python"]  # refused with a handler
    else:
        container["image"] = draw(mostly([IMAGE, "nginx", "localhost:5000/m@sha256:" + "a" * 64],
                                         ["Upper/case:1", "a:b:c"]))
    accelerator = draw(mostly(["none", "none", "none", "gpu", "inf"], ["both", "many"]))
    compute: dict[str, Any] = {"cpu": draw(quantity_cpu),
                               "gpu": {"gpu": 1, "both": 1, "many": 4}.get(accelerator, 0),
                               "inf": {"inf": 1, "both": 1, "many": 2}.get(accelerator, 0)}
    memory = draw(quantity_mem)
    if memory is not None:
        compute["mem"] = memory
    if draw(st.booleans()):
        compute["shm"] = draw(mostly(["32Mi"], ["1Gi"]))
    container["compute"] = compute
    hook = draw(mostly([None, None, {"exec": {"command": ["/bin/stop"]}}], [{"http_get": {"port": 8080}}]))
    if hook is not None:
        container["pre_stop"] = hook
    if draw(st.booleans()):
        container["readiness_probe"] = {"http_get": {"path": "/ready", "port": draw(st.sampled_from([8080, 9000]))}}
    return container


@st.composite
def realtime_api(draw: st.DrawFn, index: int) -> dict[str, Any]:
    count = draw(mostly([1, 1, 2], []))
    api: dict[str, Any] = {
        "name": f"api-{index}",
        "kind": "RealtimeAPI",
        "pod": {
            "port": draw(st.sampled_from([8080, 9000])),
            "max_concurrency": draw(st.integers(1, 40)),
            "max_queue_length": draw(st.integers(40, 200)),
            "request_timeout": draw(mostly(["30s", "60s", "5m"], ["6m"])),
            "containers": [draw(containers(i)) for i in range(count)],
        },
        "autoscaling": {
            "min_replicas": draw(st.integers(0, 3)),
            "max_replicas": draw(mostly([3, 5, 10], [1])),
            "upscale_stabilization_period": draw(mostly(["0s", "1m", "1h"], ["2h"])),
        },
    }
    if draw(st.booleans()):
        api["node_groups"] = draw(st.lists(mostly(["cpu", "big", "spot", "gpu", "inf"], ["none"]),
                                           min_size=1, max_size=2, unique=True))
    if draw(st.booleans()):
        api["networking"] = {"endpoint": draw(st.sampled_from(["/a", "/b/c", "/shared", f"/api-{index}/v1"]))}
    return api


@st.composite
def async_api_spec(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """An AsyncAPI: a RealtimeAPI's pod without the queue length and request timeout, and the ``queue``
    section, each limit crossed now and then."""
    api = draw(realtime_api(index))
    api["kind"] = "AsyncAPI"
    pod = api["pod"]
    del pod["request_timeout"]
    if draw(mostly([True], [False])):
        del pod["max_queue_length"]
    pod["max_concurrency"] = draw(mostly([1, 4, 100], [101]))
    api["autoscaling"]["target_in_flight"] = draw(mostly([1, 3, 8], [2.5]))
    api["queue"] = {
        "max_attempts": draw(mostly([1, 3, 1000], [0, 1001])),
        "request_timeout": draw(mostly(["1s", "5m", "11h"], ["12h"])),
        "max_payload_size": draw(mostly(["1Ki", "100Mi", "5Ti"], ["6Ti", "0.5"])),
        "retention_days": draw(mostly([1, 7, 3650], [0])),
    }
    if draw(st.booleans()):
        api["queue"]["bucket"] = draw(mostly(["s3://their-bucket/", "s3://their-bucket/a/b/"], ["s3://b/no-slash"]))
    return api


@st.composite
def deployments(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    groups = draw(st.lists(st.sampled_from(GROUPS), min_size=2, max_size=5, unique_by=lambda g: g["name"]))
    cluster = {"cluster_name": "gen", "region": "us-east-1", "node_groups": groups}
    if draw(st.booleans()):
        cluster["operator_load_balancer_scheme"] = "internal"
        cluster["operator_load_balancer_cidr_white_list"] = draw(st.sampled_from([["0.0.0.0/0"], ["10.8.0.0/16"]]))
    apis = [draw(st.one_of(realtime_api(i), async_api_spec(i))) for i in range(draw(st.integers(1, 3)))]
    return cluster, apis


def _validated(tmp_path: Path, cluster: dict[str, Any], apis: list[dict[str, Any]]) -> Any:
    """(cluster, APIs) if the deployment validates, else None."""
    try:
        cluster_spec = load_cluster(cluster, origin="gen/cluster.yaml")
        specs = load_apis(apis, origin="gen/cortex.yaml", base_dir=tmp_path)
    except SpecError as error:
        assert error.problems and all(line.startswith("gen/") for line in error.problems), error.problems
        event("refused by the models")
        return None
    if deployment_problems(cluster_spec.node_groups, specs, runtime_image=RUNTIME_IMAGE):
        event("refused by the deployment checks")
        return None
    event("valid")
    return cluster_spec, specs


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(deployment=deployments())
def test_valid_deployments_render_and_plan(tmp_path: Path, deployment: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    (tmp_path / "handler.py").write_text("class Handler:\n    def handle_post(self, payload):\n        return payload\n")
    found = _validated(tmp_path, *deployment)
    if found is None:
        return
    cluster_spec, specs = found
    for spec in specs:
        assert _render(spec, cluster_spec)

    def program() -> None:
        cluster = Cluster(cluster_spec.cluster_name, cluster_spec)
        for spec in specs:
            if isinstance(spec, AsyncApiSpec):
                AsyncApi(spec.name, spec, cluster, runtime_image=RUNTIME_IMAGE)
            else:
                RealtimeApi(spec.name, spec, cluster, runtime_image=RUNTIME_IMAGE)
        pulumi.export("n", len(specs))

    recording = record(program)
    apis = [r for r in recording.resources if r.type in ("cortex:api:RealtimeApi", "cortex:api:AsyncApi")]
    assert len(apis) == len(specs)


def _render(spec: Any, cluster_spec: Any) -> list[dict[str, Any]]:
    if isinstance(spec, AsyncApiSpec):
        return async_api.render_api(spec, cluster_spec, runtime_image=RUNTIME_IMAGE)
    assert isinstance(spec, RealtimeApiSpec)
    return render_api(spec, cluster_spec, runtime_image=RUNTIME_IMAGE)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(deployment=deployments())
def test_valid_deployments_render(tmp_path: Path, deployment: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    (tmp_path / "handler.py").write_text("class Handler: ...\n")
    found = _validated(tmp_path, *deployment)
    if found is None:
        return
    cluster_spec, specs = found
    for spec in specs:
        assert _render(spec, cluster_spec)
