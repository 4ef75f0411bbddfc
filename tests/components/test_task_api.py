"""``cortex:api:TaskApi`` under the recording mock engine: the same wiring as BatchApi
(test_batch_api.py), without queues: exact children, no SQS anywhere, the contract's Role."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cortex_iac.components.task_api import TYPE, TaskApi
from cortex_iac.errors import SpecError
from cortex_iac.jobs import contract
from cortex_iac.plan.engine import record
from cortex_iac.render import jobs
from cortex_iac.specs import TaskApiSpec, load_apis
from tests.components.test_batch_api import check_policy, children, expected_children, program, table_arn


def task_spec(**extra: Any) -> TaskApiSpec:
    data = {"name": "train", "kind": "TaskAPI", "pod": {"containers": [
        {"name": "trainer", "image": "example/train:1", "command": ["python", "main.py"]}]}, **extra}
    (spec,) = load_apis([data], origin="test")
    assert isinstance(spec, TaskApiSpec)
    return spec


def test_children_without_s3_have_no_worker_policy() -> None:
    rec = record(program(TaskApi, task_spec()))
    assert children(rec, TYPE, "train") == expected_children("train", worker_policy=False)
    gateway = check_policy(rec.find("aws:iam/rolePolicy:RolePolicy", "train-gateway-policy").inputs["policy"])
    assert gateway == contract.gateway_iam_statements("TaskAPI", table_arn=table_arn("train"), queue_arn="unused")
    assert not any("sqs:" in json.dumps(r.inputs) for r in rec.resources if r.type.startswith("aws:iam/"))


def test_task_pods_get_the_apis_s3_grants_only() -> None:
    spec = task_spec(iam={"s3_read": ["s3://models/iris/"]})
    rec = record(program(TaskApi, spec))
    assert children(rec, TYPE, "train") == expected_children("train")
    worker = check_policy(rec.find("aws:iam/rolePolicy:RolePolicy", "train-policy").inputs["policy"])
    assert worker == jobs._s3_statements(spec, "aws")
    # The gateway of a task has no lister: no S3 for it.
    gateway = check_policy(rec.find("aws:iam/rolePolicy:RolePolicy", "train-gateway-policy").inputs["policy"])
    assert [s["Action"] for s in gateway] == [list(contract.GATEWAY_DYNAMODB_ACTIONS)]


def test_template_and_role() -> None:
    rec = record(program(TaskApi, task_spec()))
    role = rec.find("kubernetes:rbac.authorization.k8s.io/v1:Role", "train-gateway-rbac-role").inputs
    assert role["rules"] == [dict(rule) for rule in contract.GATEWAY_RBAC_RULES]
    text = rec.find("kubernetes:core/v1:ConfigMap", "train-job-template").inputs["data"][contract.JOB_TEMPLATE_KEY]
    pod = json.loads(text)["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["trainer"] and "initContainers" not in pod
    env = {e["name"]: e["value"] for e in
           rec.find("kubernetes:apps/v1:Deployment", "train-deployment").inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CORTEX_KIND"] == "TaskAPI" and env["CORTEX_JOB_TABLE"] == "train-jobs"


def test_needs_the_runtime_image_for_its_gateway() -> None:
    with pytest.raises(SpecError, match=r"a TaskAPI's job gateway runs in the serving runtime image"):
        record(program(TaskApi, task_spec(), runtime_image=None))
