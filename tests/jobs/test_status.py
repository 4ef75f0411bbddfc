"""Status derivation from the job record and the Kubernetes Job (pure): every status the gateway can
read from Kubernetes, including worker_oom, which the live tests cannot provoke."""

from __future__ import annotations

from typing import Any

import pytest

from cortex_iac.jobs import status as st
from cortex_iac.jobs.contract import Attr

RECORD = {Attr.SUBMITTED_AT: 1000.0, "timeout": 60, Attr.TOTAL_BATCH_COUNT: 10, Attr.SUCCEEDED: 8, Attr.FAILED: 1,
          Attr.TIME_SUM_MS: 4000}


def job(kind: str | None = None, reason: str = "") -> dict[str, Any]:
    conditions = [] if kind is None else [{"type": "FailureTarget", "status": "True"},
                                          {"type": kind, "status": "True", "reason": reason}]
    return {"status": {"conditions": conditions}}


def pod(reason: str, where: str = "containerStatuses", state: str = "lastState") -> dict[str, Any]:
    return {"status": {"phase": "Running", where: [{"name": "c", state: {"terminated": {"reason": reason}}}]}}


@pytest.mark.parametrize(("kind", "record", "k8s", "pods", "now", "expected"), [
    ("BatchAPI", RECORD, job(), [], 1001, st.RUNNING),
    ("BatchAPI", RECORD, job("Complete"), [], 1001, st.COMPLETED_WITH_FAILURES),  # 8 of 10 succeeded
    ("BatchAPI", {**RECORD, Attr.SUCCEEDED: 10, Attr.FAILED: 0}, job("Complete"), [], 1001, st.SUCCEEDED),
    ("TaskAPI", RECORD, job("Complete"), [], 1001, st.SUCCEEDED),
    ("BatchAPI", RECORD, job("Failed", "DeadlineExceeded"), [], 1061, st.TIMED_OUT),
    ("BatchAPI", RECORD, job("Failed", "BackoffLimitExceeded"), [pod("Error")], 1001, st.WORKER_ERROR),
    ("BatchAPI", RECORD, job("Failed", "PodFailurePolicy"), [pod("OOMKilled", "initContainerStatuses")], 1001,
     st.WORKER_OOM),  # the user's container is a native sidecar
    ("TaskAPI", RECORD, job("Failed", "BackoffLimitExceeded"), [pod("OOMKilled", state="state")], 1001, st.WORKER_OOM),
    ("TaskAPI", RECORD, None, [], 1030, st.UNEXPECTED_ERROR),  # the Job vanished before its time
    ("TaskAPI", RECORD, None, [], 1060, st.TIMED_OUT),
])
def test_status_from_job(kind: str, record: dict[str, Any], k8s: dict[str, Any] | None, pods: list[dict[str, Any]],
                         now: float, expected: str) -> None:
    assert st.status_from_job(kind, record, k8s, pods, now) == expected


def test_drained_job_counts_uncounted_batches_as_failed() -> None:
    # 8 succeeded, 1 counted failed, 1 reached the dead-letter queue without being counted.
    assert st.drained_status(RECORD) == (st.COMPLETED_WITH_FAILURES, 2)
    assert st.final_metrics(RECORD) == {"succeeded": 8, "failed": 1, "average_time_per_batch": 0.5}
    assert st.final_metrics({})["average_time_per_batch"] is None


def test_worker_counts() -> None:
    pods = [{"status": {"phase": "Running"}}, {"status": {"phase": "Running"}}, {"status": {"phase": "Pending"}},
            {"metadata": {"deletionTimestamp": "t"}, "status": {"phase": "Running"}}]
    assert st.worker_counts(pods) == {"ready": 2, "pending": 1, "terminating": 1}
