"""Job statuses (Cortex's codes) and how a status is read from the job record and the Kubernetes
Job the gateway created: pure functions, so every status is testable without an API server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cortex_iac.jobs.contract import Attr

PENDING = "pending"
ENQUEUING = "enqueuing"
RUNNING = "running"
SUCCEEDED = "succeeded"
COMPLETED_WITH_FAILURES = "completed_with_failures"
ENQUEUE_FAILED = "enqueue_failed"
WORKER_ERROR = "worker_error"
WORKER_OOM = "worker_oom"
TIMED_OUT = "timed_out"
STOPPED = "stopped"
UNEXPECTED_ERROR = "unexpected_error"

IN_PROGRESS = (PENDING, ENQUEUING, RUNNING)
TERMINAL = (SUCCEEDED, COMPLETED_WITH_FAILURES, ENQUEUE_FAILED, WORKER_ERROR, WORKER_OOM, TIMED_OUT, STOPPED,
            UNEXPECTED_ERROR)

ENQUEUE_HEARTBEAT_STALE_SECONDS = 60.0
"""A job still ``enqueuing`` whose gateway has not written a heartbeat for this long lost its gateway."""


def now_rfc3339() -> str:
    """A job's ``start_time`` / ``end_time`` format (UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def final_metrics(record: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics`` of the status JSON. Once a batch job is over, every batch not counted as
    succeeded failed (it was counted failed, or reached the dead-letter queue unrecorded)."""
    succeeded = int(record.get(Attr.SUCCEEDED, 0))
    failed = int(record.get(Attr.FAILED, 0))
    average = record.get(Attr.TIME_SUM_MS, 0) / succeeded / 1000 if succeeded else None
    return {"succeeded": succeeded, "failed": failed, "average_time_per_batch": average}


def drained_status(record: Mapping[str, Any]) -> tuple[str, int]:
    """Status and final ``failed`` of a batch job whose queue is drained."""
    total = int(record.get(Attr.TOTAL_BATCH_COUNT, 0))
    failed = max(total - int(record.get(Attr.SUCCEEDED, 0)), int(record.get(Attr.FAILED, 0)))
    return (COMPLETED_WITH_FAILURES if failed else SUCCEEDED), failed


def oom_killed(pods: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any container of these pods (sidecars and init containers included) was OOM-killed."""
    for pod in pods:
        status = pod.get("status", {})
        for c in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]:
            for state in (c.get("state", {}), c.get("lastState", {})):
                if state.get("terminated", {}).get("reason") == "OOMKilled":
                    return True
    return False


def job_condition(job: Mapping[str, Any]) -> tuple[str, str] | None:
    """``("Complete" | "Failed", reason)`` once the Kubernetes Job has finished, else None."""
    for condition in job.get("status", {}).get("conditions", []) or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return condition["type"], condition.get("reason", "")
    return None


def status_from_job(kind: str, record: Mapping[str, Any], job: Mapping[str, Any] | None,
                    pods: Sequence[Mapping[str, Any]], now: float) -> str:
    """The status of a job the record says is running, from its Kubernetes Job (None: it is gone)."""
    if job is None:
        timeout = record.get("timeout")
        if timeout is not None and now >= float(record[Attr.SUBMITTED_AT]) + float(timeout):
            return TIMED_OUT
        return UNEXPECTED_ERROR
    finished = job_condition(job)
    if finished is None:
        return RUNNING
    kind_of, reason = finished
    if kind_of == "Complete":
        return SUCCEEDED if kind == "TaskAPI" else drained_status(record)[0]
    if reason == "DeadlineExceeded":
        return TIMED_OUT
    return WORKER_OOM if oom_killed(pods) else WORKER_ERROR


def worker_counts(pods: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Cortex's ``worker_counts`` (non-zero ones only): pods by phase."""
    counts: dict[str, int] = {}
    names = {"Pending": "pending", "Running": "ready", "Succeeded": "succeeded", "Failed": "failed"}
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            name = "terminating"
        else:
            name = names.get(pod.get("status", {}).get("phase", ""), "unknown")
        counts[name] = counts.get(name, 0) + 1
    return counts
