"""BatchAPI live: the real gateway and worker processes against a real moto server and the
Kubernetes double (tests/live/jobs_kube.py).

Timings are shortened so the file runs in about a minute on a loaded machine (the mechanisms are the
real ones): visibility timeout 3 s instead of 30, renewal every 1 s instead of 10, long poll 1 s
instead of 10, the empty-queue re-check after 1 s instead of 10.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cortex_iac.jobs.contract import WORKER_CONTAINER_NAME, WorkerConfig, job_object_name, queue_name_prefix
from tests.jobs.templates import batch_template
from tests.live.jobs_harness import CLUSTER, JobApi, job_api
from tests.live.jobs_kube import FakeKube, fake_kube
from tests.live.jobs_moto import REGION, Moto, moto_server

pytestmark = pytest.mark.live

APPS = Path(__file__).with_name("jobs_apps.py")
BUCKET = "batch-data"
TERMINAL = ("succeeded", "completed_with_failures", "enqueue_failed", "worker_error", "worker_oom", "timed_out",
            "stopped", "unexpected_error")


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs-batch")


@pytest.fixture(scope="module")
def moto(tmp: Path) -> Iterator[Moto]:
    with moto_server(tmp) as server:
        s3 = server.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for i in range(3):  # 3 newline-delimited files of 10 numbers each, and a file to exclude
            s3.put_object(Bucket=BUCKET, Key=f"numbers/part-{i}.jsonl",
                          Body="".join(f"{10 * i + j}\n" for j in range(10)).encode())
        s3.put_object(Bucket=BUCKET, Key="numbers/README.md", Body=b"not data")
        yield server


@pytest.fixture(scope="module")
def kube(tmp: Path) -> Iterator[FakeKube]:
    with fake_kube(tmp) as double:
        yield double


class App:
    """A BatchAPI whose container (tests/live/jobs_apps.py) records every request it gets."""

    def __init__(self, tmp: Path, moto: Moto, name: str, app_args: list[str]) -> None:
        self.record = tmp / f"{name}-requests.jsonl"
        self.record.touch()
        worker = WorkerConfig(api_name=name, job_id="per-job", sqs_url="per-job", table=f"{name}-jobs",
                              aws_region=REGION, aws_endpoint_url=moto.url, app_port=8080, visibility_timeout=3,
                              renew_interval=1.0, poll_wait=1, empty_check_interval=1.0, app_wait_timeout=20.0)
        argv = [sys.executable, str(APPS), "batch", "8080", str(self.record), *app_args]
        credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        self.template = batch_template(name, argv, worker=worker, extra_env=credentials)
        self.name = name

    def requests(self, job_id: str, path: str = "/") -> list[dict[str, Any]]:
        lines = self.record.read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["path"] == path and r["job_id"] == job_id]


@pytest.fixture(scope="module")
def plain(tmp: Path, moto: Moto, kube: FakeKube) -> Iterator[tuple[JobApi, App]]:
    app = App(tmp, moto, "sum", [])
    with job_api(tmp, moto, kube, kind="BatchAPI", api="sum", template=app.template,
                 s3_read=(f"s3://{BUCKET}/numbers/",)) as api:
        yield api, app


@pytest.fixture(scope="module")
def failing(tmp: Path, moto: Moto, kube: FakeKube) -> Iterator[tuple[JobApi, App]]:
    app = App(tmp, moto, "flaky", ["--fail-every", "10", "--batch-size", "7"])
    with job_api(tmp, moto, kube, kind="BatchAPI", api="flaky", template=app.template) as api:
        yield api, app


@pytest.fixture(scope="module")
def slow(tmp: Path, moto: Moto, kube: FakeKube) -> Iterator[tuple[JobApi, App]]:
    app = App(tmp, moto, "slow", ["--sleep", "0.5"])
    with job_api(tmp, moto, kube, kind="BatchAPI", api="slow", template=app.template) as api:
        yield api, app


def items(count: int, batch_size: int, workers: int, **extra: Any) -> dict[str, Any]:
    return {"workers": workers, "item_list": {"items": list(range(count)), "batch_size": batch_size}, **extra}


def submit(api: JobApi, body: dict[str, Any]) -> str:
    response = api.submit(body)
    assert response.status_code == 200, response.text
    return str(response.json()["job_id"])


def test_1000_items_in_batches_of_7(plain: tuple[JobApi, App], kube: FakeKube) -> None:
    api, app = plain
    response = api.submit(items(1000, 7, workers=3, config={"k": "v"}))
    assert response.status_code == 200, response.text
    job = response.json()
    assert (job["kind"], job["workers"], job["api_name"], job["config"]) == ("BatchAPI", 3, "sum", {"k": "v"})
    assert job["sqs_url"].split("/")[-1].startswith(queue_name_prefix(CLUSTER, "sum"))
    final = api.wait_status(job["job_id"], *TERMINAL, timeout=90)
    status, metrics = final["job_status"], final["metrics"]
    assert status["status"] == "succeeded", final
    assert status["total_batch_count"] == 143 and status["batches_in_queue"] == 0
    assert metrics["succeeded"] == 143 and metrics["failed"] == 0 and metrics["average_time_per_batch"] > 0
    batches = app.requests(job["job_id"])
    assert len(batches) == 143  # nothing redelivered in a clean run
    assert sorted(i for b in batches for i in b["body"]) == list(range(1000))
    assert min(len(b["body"]) for b in batches) == 6  # the last batch is short
    hooks = app.requests(job["job_id"], "/on-job-complete")
    assert len(hooks) == 1, hooks  # three workers drained the queue together; one called the hook
    assert hooks[0]["body"]["status"] == "succeeded"
    assert {k: v for k, v in hooks[0]["body"]["metrics"].items() if k != "average_time_per_batch"} == \
        {"succeeded": 143, "failed": 0}
    assert kube.errors == []


def test_one_batch_in_ten_fails(failing: tuple[JobApi, App], kube: FakeKube) -> None:
    api, app = failing
    job_id = submit(api, items(210, 7, workers=2))  # 30 batches; 0, 10 and 20 fail
    final = api.wait_status(job_id, *TERMINAL)
    assert final["job_status"]["status"] == "completed_with_failures", final
    assert (final["metrics"]["succeeded"], final["metrics"]["failed"]) == (27, 3)
    assert len(app.requests(job_id)) == 30  # no dead-letter queue: each batch tried once (Cortex)
    hook = app.requests(job_id, "/on-job-complete")
    assert [h["body"]["metrics"]["failed"] for h in hook] == [3]
    assert kube.errors == []


def test_failed_batches_are_retried_then_dead_lettered(failing: tuple[JobApi, App], moto: Moto) -> None:
    api, app = failing
    sqs = moto.client("sqs")
    dlq_url = sqs.create_queue(QueueName="flaky-dead-letters.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    job_id = submit(api, items(210, 7, workers=2, sqs_dead_letter_queue={"arn": dlq_arn, "max_receive_count": 3}))
    final = api.wait_status(job_id, *TERMINAL)
    assert final["job_status"]["status"] == "completed_with_failures", final
    assert (final["metrics"]["succeeded"], final["metrics"]["failed"]) == (27, 3)
    attempts: dict[int, int] = {}
    for request in app.requests(job_id):
        attempts[request["body"][0]] = attempts.get(request["body"][0], 0) + 1
    assert {first: n for first, n in attempts.items() if n > 1} == {0: 3, 70: 3, 140: 3}
    dead = []
    for _ in range(10):
        dead += sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", [])
        if len(dead) >= 3:
            break
    assert sorted(json.loads(m["Body"])[0] for m in dead) == [0, 70, 140]


def test_worker_killed_mid_batch(slow: tuple[JobApi, App], kube: FakeKube) -> None:
    api, app = slow
    job_id = submit(api, items(24, 2, workers=2))  # 12 batches of 0.5 s
    name = job_object_name("slow", job_id)
    deadline = time.monotonic() + 30
    while True:  # wait until pod 0's app is working on a batch, then SIGKILL pod 0's worker
        job = kube.job(name)
        if job is not None and job.pods and job.pods[0].sidecars[0].proc is not None:
            app_pid = job.pods[0].sidecars[0].proc.pid
            mine = [r for r in app.requests(job_id) if r["pid"] == app_pid]
            if mine:
                worker = next(c for c in job.pods[0].regular if c.name == WORKER_CONTAINER_NAME)
                assert worker.proc is not None
                os.killpg(worker.proc.pid, signal.SIGKILL)
                killed_batch = mine[-1]["body"]
                break
        assert time.monotonic() < deadline, "no batch reached pod 0"
        time.sleep(0.02)
    final = api.wait_status(job_id, *TERMINAL)
    assert final["job_status"]["status"] == "succeeded", final
    assert (final["metrics"]["succeeded"], final["metrics"]["failed"]) == (12, 0)  # none counted twice
    bodies = [r["body"] for r in app.requests(job_id)]
    assert bodies.count(killed_batch) == 2  # redelivered after the visibility timeout
    assert len(app.requests(job_id, "/on-job-complete")) == 1
    assert kube.job(name) is not None and kube.job(name).failed == 1  # replaced, within backoffLimit


def test_spot_interruption_replaces_the_pod_uncounted(slow: tuple[JobApi, App], kube: FakeKube) -> None:
    api, app = slow
    job_id = submit(api, items(16, 2, workers=2))  # 8 batches of 0.5 s
    name = job_object_name("slow", job_id)
    deadline = time.monotonic() + 30
    while True:  # once pod 0 works on a batch, the node is interrupted: DisruptionTarget and SIGTERM
        job = kube.job(name)
        if job is not None and job.pods and job.pods[0].sidecars[0].proc is not None:
            app_pid = job.pods[0].sidecars[0].proc.pid
            if any(r["pid"] == app_pid for r in app.requests(job_id)):
                kube.disrupt(job.pods[0])
                break
        assert time.monotonic() < deadline, "no batch reached pod 0"
        time.sleep(0.02)
    final = api.wait_status(job_id, *TERMINAL)
    assert final["job_status"]["status"] == "succeeded", final
    assert (final["metrics"]["succeeded"], final["metrics"]["failed"]) == (8, 0)
    job = kube.job(name)
    assert job is not None and job.failed == 0 and job.created_pods == 3  # replaced, not counted as a failure
    assert len(app.requests(job_id, "/on-job-complete")) == 1


def test_timeout_from_submission(slow: tuple[JobApi, App], kube: FakeKube) -> None:
    api, app = slow
    job_id = submit(api, items(100, 1, workers=1, timeout=5))  # 100 batches of 0.5 s: cannot finish
    final = api.wait_status(job_id, *TERMINAL)
    assert final["job_status"]["status"] == "timed_out", final
    assert final["metrics"]["succeeded"] < 100
    job = kube.job(job_object_name("slow", job_id))
    assert job is not None and job.spec["activeDeadlineSeconds"] <= 5  # the clock started at submission
    assert job.condition == ("Failed", "DeadlineExceeded")
    time.sleep(1.0)
    seen = len(app.requests(job_id))
    time.sleep(2.0)
    assert len(app.requests(job_id)) == seen  # the workers are gone
    assert app.requests(job_id, "/on-job-complete") == []


def test_stop(slow: tuple[JobApi, App], kube: FakeKube, moto: Moto) -> None:
    api, app = slow
    job_id = submit(api, items(60, 1, workers=2))
    api.wait(job_id, lambda b: b["metrics"]["succeeded"] >= 2)
    response = api.stop(job_id)
    assert response.status_code == 200 and response.json() == {"message": f"stopped job {job_id}"}
    assert api.status(job_id)["job_status"]["status"] == "stopped"
    time.sleep(1.0)  # a batch already at the app may still finish
    seen = len(app.requests(job_id))
    time.sleep(3.0)
    assert len(app.requests(job_id)) == seen < 60  # no further batch
    assert api.status(job_id)["job_status"]["status"] == "stopped"
    assert job_object_name("slow", job_id) in kube.deleted_jobs
    queues = moto.client("sqs").list_queues(QueueNamePrefix=queue_name_prefix(CLUSTER, "slow")).get("QueueUrls", [])
    assert not [q for q in queues if job_id in q]
    again = api.stop(job_id)
    assert again.status_code == 400 and "not in progress" in again.json()["error"]


def test_file_path_lister_dry_run_and_delimited_files(plain: tuple[JobApi, App]) -> None:
    api, app = plain
    lister = {"s3_paths": [f"s3://{BUCKET}/numbers/"], "includes": ["**.jsonl"], "batch_size": 2}
    dry = api.submit({"workers": 1, "file_path_lister": lister}, dryRun="true")
    assert dry.status_code == 200
    assert dry.text.splitlines() == [f"s3://{BUCKET}/numbers/part-{i}.jsonl" for i in range(3)] + ["validations passed"]
    job_id = submit(api, {"workers": 1, "file_path_lister": lister})
    final = api.wait_status(job_id, *TERMINAL)
    assert final["job_status"]["status"] == "succeeded" and final["job_status"]["total_batch_count"] == 2
    assert sorted(len(r["body"]) for r in app.requests(job_id)) == [1, 2]
    job_id = submit(api, {"workers": 2, "delimited_files": {**lister, "batch_size": 4}})
    final = api.wait_status(job_id, *TERMINAL)
    assert final["job_status"]["status"] == "succeeded" and final["metrics"]["succeeded"] == 8  # 30 items / 4
    assert sorted(i for r in app.requests(job_id) for i in r["body"]) == list(range(30))


def test_lister_matching_nothing_is_enqueue_failed(plain: tuple[JobApi, App], kube: FakeKube) -> None:
    api, _ = plain
    job_id = submit(api, {"workers": 1, "file_path_lister": {"s3_paths": [f"s3://{BUCKET}/numbers/none-"],
                                                             "batch_size": 1}})
    final = api.wait_status(job_id, *TERMINAL)
    assert final["job_status"]["status"] == "enqueue_failed", final
    assert "file_path_lister: no S3 object matches" in final["job_status"]["message"]
    assert kube.job(job_object_name("sum", job_id)) is None  # no workers were started


def test_bad_submissions_are_refused_and_nothing_is_enqueued(plain: tuple[JobApi, App], moto: Moto) -> None:
    api, _ = plain
    sqs, db = moto.client("sqs"), moto.client("dynamodb")
    prefix = queue_name_prefix(CLUSTER, "sum")
    queues_before = sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    jobs_before = db.scan(TableName="sum-jobs", Select="COUNT")["Count"]
    lister = {"s3_paths": [f"s3://{BUCKET}/numbers/"], "batch_size": 1}
    cases: list[tuple[Any, int, str]] = [
        (b"{not json", 400, "body: not valid JSON"),
        ({"workers": "2", "item_list": {"items": [1], "batch_size": 1}}, 400, "workers: Input should be a valid integer"),
        ({"workers": 1, "item_list": {"items": [1], "batch_size": 1}, "file_path_lister": lister}, 400,
         "item_list | file_path_lister | delimited_files: exactly one is required (got item_list, file_path_lister)"),
        ({"workers": 1, "item_list": {"items": [1], "batch_size": 1}, "timout": 5}, 400, "timout: unknown key"),
        ({"workers": 1, "item_list": {"items": [1], "batch_size": 1, "extra": 1}}, 400, "item_list.extra: unknown key"),
        ({"workers": 1, "file_path_lister": {**lister, "s3_paths": ["s3://elsewhere/x"]}}, 400,
         "file_path_lister.s3_paths[0]: 's3://elsewhere/x' is outside the API's iam.s3_read"),
        ({"workers": 1, "item_list": {"items": ["x" * 200_000, "y" * 100_000], "batch_size": 2}}, 400,
         "item_list.batch_size: batch 0 is"),
    ]
    for body, code, message in cases:
        response = api.http.post(api.url, content=body if isinstance(body, bytes) else json.dumps(body).encode())
        assert response.status_code == code, (body, response.text)
        assert message in response.json()["error"], response.json()
    big = json.dumps({"workers": 1, "item_list": {"items": ["x" * 1024] * (11 * 1024), "batch_size": 1}}).encode()
    response = api.http.post(api.url, content=big)
    assert response.status_code == 413 and response.json()["error"].startswith("body: larger than 10485760 bytes")
    assert sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []) == queues_before
    assert db.scan(TableName="sum-jobs", Select="COUNT")["Count"] == jobs_before


def test_unknown_job_and_missing_job_id(plain: tuple[JobApi, App]) -> None:
    api, _ = plain
    assert api.http.get(api.url, params={"jobID": "0123456789abcdef"}).status_code == 404
    response = api.http.get(api.url)
    assert response.status_code == 400 and response.json()["error"] == "jobID: required query parameter"
