"""Cortex's batch test API ("sum") as a cortex_iac handler.

The batch worker POSTs each batch of a job to ``/`` as a JSON list; a 200 answer counts the batch as
succeeded, anything else as failed (retried up to the dead-letter queue's ``max_receive_count`` when the
job has one). Cortex stores no batch results: a real API writes its outputs somewhere itself (for
example to S3, with ``iam.s3_write``); this one logs each batch's sum and answers it. When the job
ends, one worker POSTs ``/on-job-complete``, which the runtime hands to ``on_job_complete``.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import JSONResponse

log = logging.getLogger("sum")


class Handler:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def handle_post(self, payload: Any) -> Any:
        numbers = payload if isinstance(payload, list) else None
        if numbers is None or not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
            return JSONResponse({"error": "a batch must be a JSON list of numbers"}, status_code=400)
        total = sum(numbers)
        log.info("batch of %d items: sum %s", len(numbers), total)
        return {"sum": total}

    def on_job_complete(self, payload: dict[str, Any]) -> None:
        """Called once per job, when its last batch is done (Cortex's hook, here with the job's final
        status and metrics); a real API would, say, merge the outputs its batches wrote."""
        log.info("job %s ended %s: %s", payload["job_id"], payload["status"], payload["metrics"])
