"""The ready stacks and the example programs plan without credentials, and what they declare is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortex_iac.plan.engine import run_program
from cortex_iac.plan.plan import dumps, kubernetes_objects, to_plan
from tests.kube import need_crds, validate_all

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = [(REPO, "dev"), (REPO, "prod"), (REPO / "examples" / "own-program", "dev")]


@pytest.fixture(scope="module", params=PROGRAMS, ids=lambda p: f"{p[0].name}-{p[1]}")
def recording(request: pytest.FixtureRequest):
    program_dir, stack = request.param
    return run_program(program_dir, stack, preview=True)


def test_every_kubernetes_object_validates(recording) -> None:
    need_crds()
    objects = kubernetes_objects(recording)
    assert validate_all(objects) >= 10


def test_every_api_of_the_stack_is_declared(recording) -> None:
    apis = {r.name for r in recording.of_type("cortex:api:RealtimeApi")}
    expected = {
        ("cortex", "dev"): {"hello-world", "hello-world-canary"},
        ("cortex", "prod"): {"text-generator", "image-classifier", "sentiment"},
        ("acme-ml-platform", "dev"): {"fraud-score"},
    }[(recording.project, recording.stack)]
    assert apis == expected


def test_the_dev_stack_has_an_async_api(recording) -> None:
    apis = {r.name for r in recording.of_type("cortex:api:AsyncApi")}
    expected = {("cortex", "dev"): {"hello-async"}}.get((recording.project, recording.stack), set())
    assert apis == expected


def test_the_dev_stack_splits_traffic_over_its_two_apis(recording) -> None:
    splitters = {r.name for r in recording.of_type("cortex:api:TrafficSplitter")}
    expected = {("cortex", "dev"): {"hello"}}.get((recording.project, recording.stack), set())
    assert splitters == expected


def test_the_dev_stack_runs_one_batch_api_and_one_task_api(recording) -> None:
    found = {(r.type, r.name) for r in recording.resources if r.type in ("cortex:api:BatchApi", "cortex:api:TaskApi")}
    expected = {("cortex", "dev"): {("cortex:api:BatchApi", "sum"), ("cortex:api:TaskApi", "iris-trainer")}}
    assert found == expected.get((recording.project, recording.stack), set())
    for table in recording.of_type("aws:dynamodb/table:Table"):
        assert table.inputs["billingMode"] == "PAY_PER_REQUEST" and table.inputs["pointInTimeRecovery"] == {"enabled": True}


def test_one_cluster_and_one_node_group_component_per_cortex_node_group(recording) -> None:
    (cluster,) = recording.of_type("cortex:eks:Cluster")
    groups = sorted(r.name for r in recording.of_type("cortex:eks:NodeGroup"))
    expected = {
        ("cortex", "dev"): ["cortex-dev-cpu-spot", "cortex-dev-gpu"],
        ("cortex", "prod"): ["cortex-prod-cpu", "cortex-prod-cpu-spot", "cortex-prod-gpu", "cortex-prod-inf"],
        ("acme-ml-platform", "dev"): ["ml-cpu"],
    }[(recording.project, recording.stack)]
    assert groups == expected
    assert all(r.parent == cluster.urn for r in recording.of_type("cortex:eks:NodeGroup"))


def test_plans_are_deterministic() -> None:
    first = dumps(to_plan(run_program(REPO, "prod")))
    second = dumps(to_plan(run_program(REPO, "prod")))
    assert first == second
