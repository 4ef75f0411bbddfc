"""The job gateway of one BatchAPI or TaskAPI: ``POST`` submits, ``GET ?jobID=`` reports,
``DELETE ?jobID=`` stops, at the API's ``networking.endpoint`` (``python -m cortex_iac.jobs.gateway``).

It keeps no state of its own (the job table holds it), so replicas are interchangeable; it acts only
when asked, and Kubernetes' Job controller does the scheduling.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cortex_iac.jobs import status as st
from cortex_iac.jobs.contract import (
    HEALTH_PATH,
    JOB_ID_LABEL,
    Attr,
    GatewayConfig,
    JobConfigError,
    job_object_name,
    queue_name,
)
from cortex_iac.jobs.enqueue import EnqueueError, Stopped, enqueue, item_list_bodies, list_files, lister_bodies
from cortex_iac.jobs.kube import KubeClient, KubeError
from cortex_iac.jobs.render import check_template, job_object, job_spec_config_map
from cortex_iac.jobs.store import JobStore
from cortex_iac.jobs.submission import BatchSubmission, SubmissionError, TaskSubmission, parse

log = logging.getLogger("cortex.jobs.gateway")

_HEARTBEAT_SECONDS = 5.0
_MAX_INT64 = 2**63 - 1


def new_job_id() -> str:
    """Cortex's job id: hex of MaxInt64 − now in ns (16 digits, newest sorts first)."""
    return format(_MAX_INT64 - time.time_ns(), "016x")


def _error(status: int, message: str, problems: list[str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if problems is not None:
        body["problems"] = problems
    return JSONResponse(body, status_code=status)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _within(uri: str, grants: tuple[str, ...]) -> bool:
    """Whether an S3 path lies below one of the API's ``iam.s3_read`` URIs (the role's grants)."""
    for grant in grants:
        bucket, _, prefix = grant.removeprefix("s3://").partition("/")
        path_bucket, _, path = uri.removeprefix("s3://").partition("/")
        if path_bucket != bucket:
            continue
        if not prefix:
            return True
        if prefix.endswith("/") and path.startswith(prefix):
            return True
        if not prefix.endswith("/") and (path == prefix or path.startswith(prefix + "/")):
            return True
    return False


class Gateway:
    """The handlers and their clients (boto3 clients are thread-safe; calls run in the thread pool)."""

    def __init__(self, config: GatewayConfig, *, store: JobStore, sqs: Any, s3: Any, kube: KubeClient,
                 template: dict[str, Any]) -> None:
        check_template(template, config.kind)
        self.config = config
        self.store = store
        self.sqs = sqs
        self.s3 = s3
        self.kube = kube
        self.template = template
        self.api_key = Path(config.api_key_file).read_text().strip() if config.api_key_file else None
        if config.api_key_file and not self.api_key:
            raise JobConfigError(f"CORTEX_API_KEY_FILE {config.api_key_file} is empty")

    # --- routing ---------------------------------------------------------------------------------

    def app(self) -> Starlette:
        endpoint = self.config.endpoint.rstrip("/")
        routes = [
            Route(HEALTH_PATH, self.ready, methods=["GET"]),
            Route(endpoint, self.dispatch, methods=["GET", "POST", "DELETE"]),
            Route(endpoint + "/", self.dispatch, methods=["GET", "POST", "DELETE"]),
        ]
        return Starlette(routes=routes, lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.kube.aclose()

    async def ready(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def dispatch(self, request: Request) -> Response:
        if self.api_key is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                return _error(401, "missing or wrong API key (send Authorization: Bearer <key>)")
        try:
            if request.method == "POST":
                return await self.submit(request)
            job_id = request.query_params.get("jobID")
            if not job_id:
                return _error(400, "jobID: required query parameter")
            if request.method == "GET":
                return await self.get(job_id)
            return await self.stop(job_id)
        except ClientDisconnect:
            return Response(status_code=400)

    # --- submit ------------------------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        try:
            body = await _read_body(request, self.config.max_body_bytes)
        except _TooLarge:
            return _error(413, f"body: larger than {self.config.max_body_bytes} bytes")
        dry_run = request.query_params.get("dryRun", "").lower() == "true"
        try:
            if self.config.kind == "TaskAPI":
                return await self._submit_task(parse(TaskSubmission, body), dry_run)
            return await self._submit_batch(parse(BatchSubmission, body), dry_run)
        except SubmissionError as error:
            return _error(400, str(error), error.problems)

    def _spec(self, job_id: str, submission: BatchSubmission | TaskSubmission) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "job_id": job_id, "api_name": self.config.api_name, "kind": self.config.kind,
            "workers": submission.workers, "config": submission.config or {}, "timeout": submission.timeout,
            "start_time": st.now_rfc3339(),
        }
        if isinstance(submission, BatchSubmission):
            dlq = submission.sqs_dead_letter_queue
            spec["sqs_dead_letter_queue"] = dlq.model_dump() if dlq else None
            spec["sqs_url"] = ""
            spec["total_batch_count"] = 0
        return spec

    def _record(self, spec: dict[str, Any], status: str, **extra: Any) -> dict[str, Any]:
        return {Attr.KIND: self.config.kind, Attr.API_NAME: self.config.api_name, Attr.STATUS: status,
                Attr.SPEC: json.dumps(spec), Attr.START_TIME: spec["start_time"], Attr.SUBMITTED_AT: time.time(),
                "timeout": spec["timeout"], **extra}

    async def _new_record(self, submission: BatchSubmission | TaskSubmission, status: str) -> tuple[str, dict[str, Any]]:
        """Draw a job id, create the job's queue (BatchAPI), write the record."""
        for _ in range(5):  # two replicas may draw the same nanosecond
            job_id = new_job_id()
            spec = self._spec(job_id, submission)
            extra: dict[str, Any] = {}
            if isinstance(submission, BatchSubmission):
                spec["sqs_url"] = await run_in_threadpool(self._create_queue, job_id, submission)
                extra = {Attr.SQS_URL: spec["sqs_url"], Attr.ENQUEUE_HEARTBEAT: time.time(), Attr.SUCCEEDED: 0,
                         Attr.FAILED: 0, Attr.TIME_SUM_MS: 0, Attr.TOTAL_BATCH_COUNT: 0}
            if await run_in_threadpool(self.store.create, job_id, self._record(spec, status, **extra)):
                return job_id, spec
            if isinstance(submission, BatchSubmission):
                await run_in_threadpool(self._delete_queue_url, spec["sqs_url"])
        raise RuntimeError("could not draw a unique job id")

    async def _submit_task(self, submission: TaskSubmission, dry_run: bool) -> Response:
        if dry_run:
            return PlainTextResponse("validations passed\n")
        job_id, spec = await self._new_record(submission, st.RUNNING)
        job = job_object(self.template, kind="TaskAPI", api_name=self.config.api_name, job_id=job_id, parallelism=1,
                         active_deadline_seconds=submission.timeout,
                         ttl_seconds_after_finished=self.config.job_ttl_seconds)
        try:
            await self._create_job(job, spec)
        except KubeError as error:
            await self._fail(job_id, st.UNEXPECTED_ERROR, str(error), from_statuses=[st.RUNNING])
            return _error(500, f"job {job_id}: could not create its Kubernetes Job: {error}")
        return JSONResponse(spec)

    async def _create_job(self, job: dict[str, Any], spec: dict[str, Any]) -> None:
        created = await self.kube.create_job(job)
        try:
            await self.kube.create_config_map(job_spec_config_map(job, spec, owner_uid=created["metadata"]["uid"]))
        except KubeError:
            await self.kube.delete_job(job["metadata"]["name"])
            raise

    async def _submit_batch(self, submission: BatchSubmission, dry_run: bool) -> Response:
        lister = submission.lister
        field = "file_path_lister" if submission.file_path_lister else "delimited_files"
        if lister is not None:
            outside = [(i, p) for i, p in enumerate(lister.s3_paths) if not _within(p, self.config.s3_read)]
            if outside:
                allowed = ", ".join(self.config.s3_read) or "none (the API's iam.s3_read is empty)"
                raise SubmissionError([f"{field}.s3_paths[{i}]: {p!r} is outside the API's iam.s3_read "
                                       f"(allowed: {allowed})" for i, p in outside])
        bodies: list[str] | None = None
        if submission.item_list is not None:
            try:
                bodies = item_list_bodies(submission)
            except EnqueueError as error:
                raise SubmissionError([str(error)]) from None
        if dry_run:
            return await self._dry_run(submission, field)
        try:
            job_id, spec = await self._new_record(submission, st.PENDING)
        except _DeadLetterQueueError as error:
            raise SubmissionError([f"sqs_dead_letter_queue.arn: {error}"]) from None
        return JSONResponse(spec, background=BackgroundTask(self._enqueue_and_start, job_id, submission, bodies, spec))

    async def _dry_run(self, submission: BatchSubmission, field: str) -> Response:
        if submission.lister is None:
            return PlainTextResponse("validations passed\n")
        lister = submission.lister

        def listed() -> list[str]:
            return list(list_files(self.s3, lister))

        try:
            files = await run_in_threadpool(listed)
        except (ClientError, EnqueueError) as error:
            raise SubmissionError([f"{field}.s3_paths: {error}"]) from None
        if not files:
            raise SubmissionError([f"{field}: no S3 object matches s3_paths, includes and excludes"])
        return PlainTextResponse("".join(f + "\n" for f in files) + "validations passed\n")

    def _create_queue(self, job_id: str, submission: BatchSubmission) -> str:
        attributes = {"FifoQueue": "true", "VisibilityTimeout": str(self.config.visibility_timeout),
                      "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId",
                      "MessageRetentionPeriod": str(14 * 24 * 3600)}
        dlq = submission.sqs_dead_letter_queue
        if dlq is not None:
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq.arn,
                                                      "maxReceiveCount": dlq.max_receive_count})
        name = queue_name(self.config.cluster_name, self.config.api_name, job_id)
        tags = {"cortex.dev/api-name": self.config.api_name, "cortex.dev/job-id": job_id}
        try:
            url: str = self.sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"]
        except ClientError as error:
            if dlq is not None:
                raise _DeadLetterQueueError(error.response.get("Error", {}).get("Message", str(error))) from None
            raise
        return url

    async def _enqueue_and_start(self, job_id: str, submission: BatchSubmission, bodies: list[str] | None,
                                 spec: dict[str, Any]) -> None:
        """Background of a submit: enqueue, then create the workers' Job (Cortex's order: an
        ``enqueue_failed`` job starts no workers)."""
        try:
            await self._run_enqueue(job_id, submission, bodies, spec)
        except Exception as error:  # the job must not stay "enqueuing" forever
            log.exception("job %s: enqueue or start failed", job_id)
            await self._fail(job_id, st.UNEXPECTED_ERROR, f"{type(error).__name__}: {error}",
                             from_statuses=[st.PENDING, st.ENQUEUING])

    async def _run_enqueue(self, job_id: str, submission: BatchSubmission, bodies: list[str] | None,
                           spec: dict[str, Any]) -> None:
        started = {Attr.STATUS: st.ENQUEUING, Attr.ENQUEUE_HEARTBEAT: time.time()}
        if not await run_in_threadpool(self.store.update, job_id, started, from_statuses=[st.PENDING]):
            return
        record = await run_in_threadpool(self.store.get, job_id)
        assert record is not None
        url = record[Attr.SQS_URL]
        deadline = record[Attr.SUBMITTED_AT] + submission.timeout if submission.timeout else None

        def send_all() -> int:
            source = bodies if bodies is not None else lister_bodies(self.s3, submission)
            heartbeat = _Heartbeat(self.store, job_id, deadline)
            heartbeat.start()
            try:
                return enqueue(self.sqs, url, source, threads=self.config.enqueue_threads, keep_going=heartbeat.check)
            finally:
                heartbeat.stop()

        try:
            count = await run_in_threadpool(send_all)
        except Stopped:
            await run_in_threadpool(self._delete_queue, job_id)
            return
        except (EnqueueError, ClientError) as error:
            await self._fail(job_id, st.ENQUEUE_FAILED, str(error), from_statuses=[st.ENQUEUING])
            return
        if count == 0:
            field = "file_path_lister" if submission.file_path_lister else "delimited_files"
            what = "S3 object" if submission.file_path_lister else "item in the matched S3 objects"
            await self._fail(job_id, st.ENQUEUE_FAILED, f"{field}: no {what} matches s3_paths, includes and excludes",
                             from_statuses=[st.ENQUEUING])
            return
        left = None if deadline is None else math.ceil(deadline - time.time())
        if left is not None and left <= 0:
            await self._fail(job_id, st.TIMED_OUT, "", from_statuses=[st.ENQUEUING])
            return
        running = {Attr.STATUS: st.RUNNING, Attr.TOTAL_BATCH_COUNT: count}
        if not await run_in_threadpool(self.store.update, job_id, running, from_statuses=[st.ENQUEUING]):
            await run_in_threadpool(self._delete_queue, job_id)  # stopped meanwhile
            return
        dlq = submission.sqs_dead_letter_queue
        worker_env = {"CORTEX_JOB_ID": job_id, "CORTEX_SQS_URL": url,
                      "CORTEX_MAX_RECEIVE_COUNT": str(dlq.max_receive_count if dlq else 0),
                      "CORTEX_JOB_TABLE": self.config.table, "AWS_REGION": self.config.aws_region}
        job = job_object(self.template, kind="BatchAPI", api_name=self.config.api_name, job_id=job_id,
                         parallelism=submission.workers, active_deadline_seconds=left,
                         ttl_seconds_after_finished=self.config.job_ttl_seconds, worker_env=worker_env)
        spec = {**spec, "sqs_url": url, "total_batch_count": count}
        try:
            await self._create_job(job, spec)
        except KubeError as error:
            await self._fail(job_id, st.UNEXPECTED_ERROR, str(error), from_statuses=[st.RUNNING])

    async def _fail(self, job_id: str, status: str, message: str, *, from_statuses: list[str]) -> None:
        values = {Attr.STATUS: status, Attr.END_TIME: st.now_rfc3339(), Attr.MESSAGE: message}
        await run_in_threadpool(self.store.update, job_id, values, from_statuses=from_statuses)
        if self.config.kind == "BatchAPI":
            await run_in_threadpool(self._delete_queue, job_id)

    def _delete_queue_url(self, url: str) -> None:
        self.sqs.delete_queue(QueueUrl=url)

    def _delete_queue(self, job_id: str) -> None:
        record = self.store.get(job_id)
        if not record or not record.get(Attr.SQS_URL) or record.get(Attr.QUEUE_DELETED):
            return
        try:
            self.sqs.delete_queue(QueueUrl=record[Attr.SQS_URL])
        except ClientError as error:
            if "NonExistentQueue" not in error.response.get("Error", {}).get("Code", ""):
                raise
        self.store.update(job_id, {Attr.QUEUE_DELETED: True})

    async def _get(self, job_id: str) -> dict[str, Any] | None:
        return await run_in_threadpool(self.store.get, job_id)

    # --- status ------------------------------------------------------------------------------------

    async def get(self, job_id: str) -> Response:
        record = await run_in_threadpool(self.store.get, job_id)
        if record is None:
            return _error(404, f"job {job_id} not found")
        pods: list[dict[str, Any]] = []
        if record[Attr.STATUS] in st.IN_PROGRESS:
            record, pods = await self._observe(job_id, record)
        if record[Attr.STATUS] in st.TERMINAL and self.config.kind == "BatchAPI" and not record.get(Attr.QUEUE_DELETED):
            await run_in_threadpool(self._delete_queue, job_id)
        return JSONResponse(await self._status_json(record, pods))

    async def _observe(self, job_id: str, record: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read a job in progress from its Kubernetes Job; persist the status once it is terminal."""
        status, now = record[Attr.STATUS], time.time()
        if status in (st.PENDING, st.ENQUEUING):
            if now - float(record.get(Attr.ENQUEUE_HEARTBEAT, now)) > st.ENQUEUE_HEARTBEAT_STALE_SECONDS:
                await self._fail(job_id, st.ENQUEUE_FAILED, "the gateway enqueuing this job stopped",
                                 from_statuses=[status])
                record = (await self._get(job_id)) or record
            return record, []
        name = job_object_name(self.config.api_name, job_id)
        job = await self.kube.get_job(name)
        pods = await self.kube.list_pods(f"{JOB_ID_LABEL}={job_id}") if job is not None else []
        new = st.status_from_job(self.config.kind, record, job, pods, now)
        if new == st.RUNNING:
            return record, pods
        values: dict[str, Any] = {Attr.STATUS: new, Attr.END_TIME: st.now_rfc3339()}
        if new in (st.SUCCEEDED, st.COMPLETED_WITH_FAILURES) and self.config.kind == "BatchAPI":
            values[Attr.FAILED] = st.drained_status(record)[1]
        if new == st.UNEXPECTED_ERROR:
            values[Attr.MESSAGE] = "the job's Kubernetes Job disappeared"
        await run_in_threadpool(self.store.update, job_id, values, from_statuses=[st.RUNNING])
        return (await self._get(job_id)) or record, pods

    async def _status_json(self, record: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
        spec = json.loads(record[Attr.SPEC])
        job_status: dict[str, Any] = {**spec, "status": record[Attr.STATUS]}
        if record.get(Attr.END_TIME):
            job_status["end_time"] = record[Attr.END_TIME]
        if record.get(Attr.MESSAGE):
            job_status["message"] = record[Attr.MESSAGE]
        if pods:
            job_status["worker_counts"] = st.worker_counts(pods)
        body: dict[str, Any] = {"job_status": job_status,
                                "endpoint": f"{self.config.endpoint}?jobID={spec['job_id']}"}
        if self.config.kind == "BatchAPI":
            job_status["sqs_url"] = record.get(Attr.SQS_URL, "")
            job_status["total_batch_count"] = int(record.get(Attr.TOTAL_BATCH_COUNT, 0))
            job_status["batches_in_queue"] = 0
            if record[Attr.STATUS] in st.IN_PROGRESS and record.get(Attr.SQS_URL):
                job_status["batches_in_queue"] = await run_in_threadpool(self._in_queue, record[Attr.SQS_URL])
            body["metrics"] = st.final_metrics(record)
        return body

    def _in_queue(self, url: str) -> int:
        try:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
        except ClientError:
            return 0
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    # --- stop --------------------------------------------------------------------------------------

    async def stop(self, job_id: str) -> Response:
        record = await run_in_threadpool(self.store.get, job_id)
        if record is None:
            return _error(404, f"job {job_id} not found")
        stopped = {Attr.STATUS: st.STOPPED, Attr.END_TIME: st.now_rfc3339()}
        if not await run_in_threadpool(self.store.update, job_id, stopped, from_statuses=st.IN_PROGRESS):
            current = (await self._get(job_id)) or record
            return _error(400, f"job {job_id} is not in progress (status {current[Attr.STATUS]})")
        await self.kube.delete_job(job_object_name(self.config.api_name, job_id))
        if self.config.kind == "BatchAPI":
            await run_in_threadpool(self._delete_queue, job_id)
        return JSONResponse({"message": f"stopped job {job_id}"})


class _DeadLetterQueueError(Exception):
    pass


class _Heartbeat(threading.Thread):
    """While a job enqueues: every few seconds, refresh its heartbeat and progress in the record
    (also while a lister is still walking S3 and nothing is sent), and notice a stop or the timeout;
    ``check`` (called between SendMessageBatch requests) then raises ``Stopped``."""

    def __init__(self, store: JobStore, job_id: str, deadline: float | None) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.store, self.job_id, self.deadline = store, job_id, deadline
        self.sent = 0
        self.stopped = False
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(_HEARTBEAT_SECONDS):
            if self.deadline is not None and time.time() >= self.deadline:
                self.store.update(self.job_id, {Attr.STATUS: st.TIMED_OUT, Attr.END_TIME: st.now_rfc3339()},
                                  from_statuses=[st.ENQUEUING])
                self.stopped = True
                return
            progress = {Attr.ENQUEUE_HEARTBEAT: time.time(), Attr.TOTAL_BATCH_COUNT: self.sent}
            if not self.store.update(self.job_id, progress, from_statuses=[st.ENQUEUING]):
                self.stopped = True
                return

    def check(self, sent: int) -> None:
        self.sent = sent
        if self.stopped:
            raise Stopped

    def stop(self) -> None:
        self._done.set()
        self.join()


def build(config: GatewayConfig) -> Gateway:
    """The gateway with real clients (boto3 reads credentials the usual way: Pod Identity in a pod)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=config.aws_region)
    client_config = Config(max_pool_connections=config.enqueue_threads + 8, retries={"mode": "standard"})

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=config.aws_endpoint_url, config=client_config)

    template = json.loads(Path(config.job_template).read_text())
    store = JobStore(client("dynamodb"), config.table, config.retention_seconds)
    kube = KubeClient(config.kube_api_url, config.namespace, token_file=config.kube_token_file,
                      ca_file=config.kube_ca_file)
    return Gateway(config, store=store, sqs=client("sqs"), s3=client("s3"), kube=kube, template=template)


def main() -> None:
    import uvicorn

    config = GatewayConfig.from_env(os.environ)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not config.kube_api_url:
        raise JobConfigError("CORTEX_KUBE_API_URL is not set and KUBERNETES_SERVICE_HOST is not either")
    app = build(config).app()
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level,
                timeout_graceful_shutdown=30, access_log=config.log_level == "debug")


if __name__ == "__main__":
    main()
