"""The run-time objects (jobs/render.py): exact per-job fields, and schema-valid for the templates the
static renderer makes of every reference BatchAPI / TaskAPI file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cortex_iac.jobs.contract import (
    JOB_ID_LABEL,
    JOB_SPEC_DIR,
    JOB_SPEC_VOLUME,
    WORKER_CONTAINER_NAME,
    JobConfigError,
    WorkerConfig,
)
from cortex_iac.jobs.render import check_template, job_object, job_spec_config_map
from cortex_iac.render.jobs import JobContext, job_api_objects
from cortex_iac.specs import BatchApiSpec, TaskApiSpec, load_api_files
from tests.jobs.templates import batch_template, task_template
from tests.kube import validate_object
from tests.specs.helpers import REFERENCE

WORKER = WorkerConfig(api_name="sum", job_id="x", sqs_url="x", table="t", aws_region="us-east-1")
JOB_ENV = {"CORTEX_JOB_ID": "6712cf9ddf302fca", "CORTEX_SQS_URL": "https://sqs/q.fifo", "CORTEX_MAX_RECEIVE_COUNT": "3"}
REFERENCE_FILES = sorted(p for p in (REFERENCE / "apis").glob("*.yaml") if p.name.startswith(("batch__", "task__"))) \
    if (REFERENCE / "apis").is_dir() else []


def _batch_job(template: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return job_object(template, kind="BatchAPI", api_name="sum", job_id="6712cf9ddf302fca", parallelism=4,
                      active_deadline_seconds=extra.get("deadline", 120), ttl_seconds_after_finished=3600,
                      worker_env=JOB_ENV)


def test_batch_job_has_every_per_job_field() -> None:
    template = batch_template("sum", ["app"], worker=WORKER)
    job = _batch_job(template)
    validate_object(job)
    assert job["metadata"]["name"] == "sum-6712cf9ddf302fca"
    assert job["metadata"]["labels"][JOB_ID_LABEL] == "6712cf9ddf302fca"
    spec = job["spec"]
    assert (spec["parallelism"], spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) \
        == (4, 4, 120, 3600)
    assert "completions" not in spec
    assert spec["podFailurePolicy"] == {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": WORKER_CONTAINER_NAME, "operator": "In", "values": [1]}},
    ]}
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"][JOB_ID_LABEL] == "6712cf9ddf302fca"
    assert {"name": JOB_SPEC_VOLUME, "configMap": {"name": "sum-6712cf9ddf302fca"}} in pod["volumes"]
    (app,) = pod["initContainers"]
    assert app["volumeMounts"] == [{"name": JOB_SPEC_VOLUME, "mountPath": JOB_SPEC_DIR, "readOnly": True}]
    (worker,) = pod["containers"]
    env = {e["name"]: e["value"] for e in worker["env"]}
    assert {k: env[k] for k in JOB_ENV} == JOB_ENV and "volumeMounts" not in worker
    assert template["spec"]["template"]["spec"].get("volumes") is None  # the template is not changed


def test_task_job_runs_once_with_the_spec_mounted() -> None:
    job = job_object(task_template("train", ["python", "main.py"]), kind="TaskAPI", api_name="train",
                     job_id="6712cf9ddf302fca", parallelism=1, active_deadline_seconds=None,
                     ttl_seconds_after_finished=60)
    validate_object(job)
    assert job["spec"]["backoffLimit"] == 0 and "activeDeadlineSeconds" not in job["spec"]
    assert job["spec"]["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
    (task,) = job["spec"]["template"]["spec"]["containers"]
    assert task["volumeMounts"][0]["mountPath"] == "/cortex/spec"


def test_config_map_holds_job_json_owned_by_the_job() -> None:
    job = _batch_job(batch_template("sum", ["app"], worker=WORKER))
    spec = {"job_id": "6712cf9ddf302fca", "config": {"a": [1, 2]}}
    config_map = job_spec_config_map(job, spec, owner_uid="0000-uid")
    validate_object(config_map)
    assert config_map["metadata"]["name"] == job["metadata"]["name"]
    assert config_map["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "sum-6712cf9ddf302fca", "uid": "0000-uid"}]
    assert json.loads(config_map["data"]["job.json"]) == spec


def test_templates_the_run_time_render_cannot_complete_are_refused() -> None:
    template = batch_template("sum", ["app"], worker=WORKER)
    bad = json.loads(json.dumps(template))
    bad["spec"]["parallelism"] = 3
    bad["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    bad["spec"]["template"]["spec"]["containers"].append({"name": "other"})
    with pytest.raises(JobConfigError) as error:
        check_template(bad, "BatchAPI")
    assert str(error.value) == (
        "job template: spec.parallelism is set per job; leave it out; spec.template.spec.restartPolicy must be "
        "Never; BatchAPI: containers must be exactly [cortex-worker] (the user's containers are native sidecars "
        "in initContainers)")
    check_template(template, "BatchAPI")
    check_template(task_template("t", ["x"]), "TaskAPI")


@pytest.mark.parametrize("path", REFERENCE_FILES, ids=lambda p: p.name)
def test_reference_job_apis_render_valid_jobs(path: Path) -> None:
    specs = [s for s in load_api_files([path]) if isinstance(s, BatchApiSpec | TaskApiSpec)]
    assert specs
    for spec in specs:
        objects = job_api_objects(spec, JobContext(cluster_name="cortex", runtime_image="registry/cortex:1"))
        template = json.loads(objects.job_template["data"]["job.json"])
        check_template(template, spec.kind)  # type: ignore[arg-type]
        batch = spec.kind == "BatchAPI"
        job = job_object(template, kind=spec.kind, api_name=spec.name,  # type: ignore[arg-type]
                         job_id="6712cf9ddf302fca", parallelism=3 if batch else 1, active_deadline_seconds=600,
                         ttl_seconds_after_finished=3600, worker_env=JOB_ENV if batch else None)
        validate_object(job)
        validate_object(job_spec_config_map(job, {"job_id": "6712cf9ddf302fca"}, owner_uid="u"))
