"""TaskAPI live: the real gateway against a real moto server and the Kubernetes double, which runs the
task's command as a process with the job spec mounted (tests/live/jobs_kube.py). The gateway here
requires an API key (off by default)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cortex_iac.jobs.contract import job_object_name
from tests.jobs.templates import task_template
from tests.live.jobs_harness import JobApi, job_api
from tests.live.jobs_kube import fake_kube
from tests.live.jobs_moto import moto_server

pytestmark = pytest.mark.live

APPS = Path(__file__).with_name("jobs_apps.py")
KEY = "s3cr3t-key"
TERMINAL = ("succeeded", "worker_error", "worker_oom", "timed_out", "stopped", "unexpected_error")


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[JobApi, Path]]:
    tmp = tmp_path_factory.mktemp("jobs-task")
    out = tmp / "task-runs.jsonl"
    out.touch()
    template = task_template("train", [sys.executable, str(APPS), "task", "/cortex/spec/job.json", str(out)])
    with moto_server(tmp) as moto, fake_kube(tmp) as kube, \
            job_api(tmp, moto, kube, kind="TaskAPI", api="train", template=template, api_key=KEY) as api:
        api.http.headers["Authorization"] = f"Bearer {KEY}"
        yield api, out
        assert kube.errors == []


def runs(out: Path, job_id: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, out.read_text().splitlines()) if r["job_id"] == job_id]


def submit(api: JobApi, body: dict[str, Any]) -> str:
    response = api.submit(body)
    assert response.status_code == 200, response.text
    assert response.json()["kind"] == "TaskAPI" and response.json()["workers"] == 1
    return str(response.json()["job_id"])


def test_task_succeeds_with_its_spec_at_cortex_spec_job_json(task: tuple[JobApi, Path]) -> None:
    api, out = task
    job_id = submit(api, {"config": {"dataset": "iris", "exit": 0}})
    final = api.wait_status(job_id, *TERMINAL)
    assert final["job_status"]["status"] == "succeeded", final
    assert "end_time" in final["job_status"] and "metrics" not in final
    (run,) = runs(out, job_id)
    assert run["config"] == {"dataset": "iris", "exit": 0} and run["kind"] == "TaskAPI" and run["api_name"] == "train"


def test_task_failing_is_worker_error(task: tuple[JobApi, Path]) -> None:
    api, out = task
    job_id = submit(api, {"config": {"exit": 3}})
    final = api.wait_status(job_id, *TERMINAL)
    assert final["job_status"]["status"] == "worker_error", final
    assert len(runs(out, job_id)) == 1  # not retried (Cortex: a task runs once)


def test_task_times_out(task: tuple[JobApi, Path]) -> None:
    api, _ = task
    job_id = submit(api, {"config": {"sleep": 60}, "timeout": 3})
    final = api.wait_status(job_id, *TERMINAL)
    assert final["job_status"]["status"] == "timed_out", final
    job = api.kube.job(job_object_name("train", job_id))
    assert job is not None and job.spec["activeDeadlineSeconds"] == 3


def test_task_stopped(task: tuple[JobApi, Path]) -> None:
    api, out = task
    job_id = submit(api, {"config": {"sleep": 60}})
    deadline = time.monotonic() + 30
    while not runs(out, job_id):  # the task has started
        assert time.monotonic() < deadline
        time.sleep(0.1)
    response = api.stop(job_id)
    assert response.status_code == 200 and response.json() == {"message": f"stopped job {job_id}"}
    assert api.status(job_id)["job_status"]["status"] == "stopped"
    assert job_object_name("train", job_id) in api.kube.deleted_jobs
    deadline = time.monotonic() + 10
    while any(c.poll() is None for c in api.kube.all_processes() if job_id in str(c.log)):
        assert time.monotonic() < deadline, "the stopped task still runs"
        time.sleep(0.1)
    assert ("cortex-job-sum", job_object_name("train", job_id)) not in api.kube.config_maps  # owned: deleted


def test_task_input_and_api_key(task: tuple[JobApi, Path]) -> None:
    api, _ = task
    response = api.submit({"workers": 2, "config": []})
    assert response.status_code == 400
    assert response.json()["problems"] == ["config: Input should be a valid dictionary",
                                           "workers: Input should be less than or equal to 1"]
    assert api.submit({"timeout": 5}, dryRun="true").text == "validations passed\n"
    del api.http.headers["Authorization"]
    try:
        refused = api.submit({})
        assert refused.status_code == 401
        assert api.http.get(api.url, params={"jobID": "x"}).status_code == 401
    finally:
        api.http.headers["Authorization"] = f"Bearer {KEY}"
