"""The batch worker: the regular container of a BatchAPI pod (``python -m cortex_iac.jobs.worker``).

It takes one batch at a time from the job's queue, POSTs it to the user's container on
``127.0.0.1:<pod.port>`` with ``X-Cortex-Job-ID``, counts a 200 as success and anything else as a
failure, and counts each batch exactly once in the job table's ledger. When the queue is drained it
exits 0, which ends the pod (the user's containers are native sidecars); the one worker that claims
the job's completion first POSTs ``/on-job-complete`` with the final metrics.

Exit codes: 0 the job is over for this worker (drained, stopped, or another worker finished it);
1 the app stayed unreachable for ``app_wait_timeout`` or a setting is wrong; 143 SIGTERM (a
disruption: the Job's pod failure policy ignores it and replaces the pod).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from typing import Any

import httpx
from botocore.exceptions import ClientError

from cortex_iac.jobs import status as st
from cortex_iac.jobs.contract import JOB_ID_HEADER, ON_JOB_COMPLETE_PATH, Attr, JobConfigError, WorkerConfig
from cortex_iac.jobs.enqueue import BATCH_INDEX_ATTRIBUTE
from cortex_iac.jobs.render import WORKER_EXIT_FATAL
from cortex_iac.jobs.store import JobStore

log = logging.getLogger("cortex.jobs.worker")

EXIT_DONE = 0
EXIT_APP_GONE = WORKER_EXIT_FATAL
EXIT_TERMINATED = 143


class _AppUnreachable(Exception):
    pass


def _queue_gone(error: ClientError) -> bool:
    return "NonExistentQueue" in error.response.get("Error", {}).get("Code", "")


class Worker:
    """One worker process. ``sqs`` and ``dynamodb`` are boto3 clients."""

    def __init__(self, config: WorkerConfig, *, sqs: Any, dynamodb: Any) -> None:
        self.config = config
        self.sqs = sqs
        self.store = JobStore(dynamodb, config.table, config.retention_seconds)
        self.app = httpx.Client(base_url=f"http://127.0.0.1:{config.app_port}", timeout=None)
        self.terminating = threading.Event()
        self.name = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._empty_since: float | None = None

    # --- the loop ----------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self._wait_for_app()
            while not self.terminating.is_set():
                try:
                    response = self.sqs.receive_message(
                        QueueUrl=self.config.sqs_url, MaxNumberOfMessages=1, WaitTimeSeconds=self.config.poll_wait,
                        VisibilityTimeout=self.config.visibility_timeout, AttributeNames=["ApproximateReceiveCount"],
                        MessageAttributeNames=[BATCH_INDEX_ATTRIBUTE],
                    )
                except ClientError as error:
                    if _queue_gone(error):  # stopped, timed out or finished: the gateway deleted it
                        return EXIT_DONE
                    raise
                messages = response.get("Messages", [])
                if not messages:
                    if self._finished():
                        return EXIT_DONE
                    continue
                self._empty_since = None
                if self.terminating.is_set():  # SIGTERM during the receive: hand the batch back
                    self._release(messages[0]["ReceiptHandle"])
                    break
                if not self._handle(messages[0]):
                    return EXIT_DONE
            return EXIT_TERMINATED
        except _AppUnreachable as error:
            log.error("%s", error)
            return EXIT_APP_GONE
        finally:
            self.app.close()

    def _accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.config.app_port), timeout=1):
                return True
        except OSError:
            return False

    def _wait_for_app(self) -> None:
        deadline = time.monotonic() + self.config.app_wait_timeout
        while not self.terminating.is_set() and not self._accepting():
            if time.monotonic() > deadline:
                raise _AppUnreachable(f"nothing accepts connections on port {self.config.app_port} after "
                                      f"{self.config.app_wait_timeout:g} s")
            time.sleep(0.2)

    # --- one batch ---------------------------------------------------------------------------------

    def _handle(self, message: dict[str, Any]) -> bool:
        """Process one batch; False when the job is no longer running (stop)."""
        index = int(message["MessageAttributes"][BATCH_INDEX_ATTRIBUTE]["StringValue"])
        receipt = message["ReceiptHandle"]
        receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        dlq = self.config.max_receive_count > 0
        last_attempt = not dlq or receives >= self.config.max_receive_count
        status, counted = self.store.status_and_batch(self.config.job_id, index)
        if status != st.RUNNING:
            log.info("job is %s: not processing batch %d", status, index)
            return False
        if counted:  # a redelivery of a batch already counted (its worker died before deleting it)
            self._delete(receipt)
            return True
        started = time.monotonic()
        outcome = self._post(index, message["Body"], receipt)
        milliseconds = int((time.monotonic() - started) * 1000)
        if outcome == "unreachable" and not (dlq and last_attempt):
            # The app crashed (it is restarted in place): the batch is not its fault yet; hand it back.
            log.warning("batch %d: the app is unreachable; returning it to the queue", index)
            self._wait_for_app()
            self._release(receipt)
            return True
        if outcome == "succeeded":
            self.store.record_batch(self.config.job_id, index, "succeeded", milliseconds)
            self._delete(receipt)
        elif not last_attempt:
            log.info("batch %d failed (attempt %d of %d); retrying", index, receives, self.config.max_receive_count)
            self._release(receipt)
        else:
            self.store.record_batch(self.config.job_id, index, "failed", milliseconds)
            if dlq:  # visible again: SQS moves it to the dead-letter queue on its next receive
                self._release(receipt)
            else:
                self._delete(receipt)
        return True

    def _post(self, index: int, body: str, receipt: str) -> str:
        stop_renewing = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(receipt, stop_renewing), daemon=True)
        renewer.start()
        try:
            response = self.app.post("/", content=body.encode(), headers={
                "Content-Type": "application/json", JOB_ID_HEADER: self.config.job_id})
        except httpx.TransportError as error:
            log.info("batch %d: %s", index, error)
            if isinstance(error, httpx.ConnectError) or not self._accepting():
                return "unreachable"
            return "failed"  # the app is up but dropped the request without an answer
        finally:
            stop_renewing.set()
            renewer.join()
        if response.status_code != 200:
            log.info("batch %d: the app answered %d", index, response.status_code)
        return "succeeded" if response.status_code == 200 else "failed"

    def _renew(self, receipt: str, stop: threading.Event) -> None:
        while not stop.wait(self.config.renew_interval):
            try:
                self.sqs.change_message_visibility(QueueUrl=self.config.sqs_url, ReceiptHandle=receipt,
                                                   VisibilityTimeout=self.config.visibility_timeout)
            except ClientError as error:
                log.warning("could not extend the batch's visibility: %s", error)

    def _delete(self, receipt: str) -> None:
        try:
            self.sqs.delete_message(QueueUrl=self.config.sqs_url, ReceiptHandle=receipt)
        except ClientError as error:
            if not _queue_gone(error):
                raise

    def _release(self, receipt: str) -> None:
        try:
            self.sqs.change_message_visibility(QueueUrl=self.config.sqs_url, ReceiptHandle=receipt,
                                               VisibilityTimeout=0)
        except ClientError as error:
            if not _queue_gone(error):
                raise

    # --- the end of the job ------------------------------------------------------------------------

    def _in_queue(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.config.sqs_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def _finished(self) -> bool:
        """After an empty receive: is the job over? If so and this worker claims it first, call
        ``on_job_complete`` and write the final status."""
        try:
            if self._in_queue() > 0:
                self._empty_since = None
                return False
        except ClientError as error:
            if _queue_gone(error):
                return True
            raise
        record = self.store.get(self.config.job_id)
        if record is None or record[Attr.STATUS] != st.RUNNING:
            return True
        if record.get(Attr.ON_JOB_COMPLETE_BY):
            return True
        total = int(record.get(Attr.TOTAL_BATCH_COUNT, 0))
        all_counted = int(record.get(Attr.SUCCEEDED, 0)) + int(record.get(Attr.FAILED, 0)) >= total
        if not all_counted:
            # Empty but not all counted: a batch went to the dead-letter queue uncounted, or the
            # queue's counts lag (they are approximate). Conclude only when it stays empty.
            now = time.monotonic()
            if self._empty_since is None or now - self._empty_since < self.config.empty_check_interval:
                self._empty_since = self._empty_since or now
                return False
        if not self.store.update(self.config.job_id, {Attr.ON_JOB_COMPLETE_BY: self.name},
                                 from_statuses=[st.RUNNING], unclaimed=True):
            return True
        self._complete()
        return True

    def _complete(self) -> None:
        record = self.store.get(self.config.job_id)
        assert record is not None
        status, failed = st.drained_status(record)
        metrics = {**st.final_metrics(record), "failed": failed}
        body = {"message": "job_complete", "job_id": self.config.job_id, "api_name": self.config.api_name,
                "status": status, "total_batch_count": int(record.get(Attr.TOTAL_BATCH_COUNT, 0)), "metrics": metrics}
        code = 0
        try:
            response = self.app.post(ON_JOB_COMPLETE_PATH, content=json.dumps(body).encode(), headers={
                "Content-Type": "application/json", JOB_ID_HEADER: self.config.job_id})
            code = response.status_code
            if code not in (200, 404):  # 404: the app has no hook (Cortex ignored it too)
                log.error("%s answered %d: %s", ON_JOB_COMPLETE_PATH, code, response.text[:500])
        except httpx.TransportError as error:
            log.error("%s failed: %s", ON_JOB_COMPLETE_PATH, error)
        self.store.update(self.config.job_id, {Attr.STATUS: status, Attr.FAILED: failed, Attr.END_TIME: st.now_rfc3339(),
                                               Attr.ON_JOB_COMPLETE_STATUS: code}, from_statuses=[st.RUNNING])


def main() -> None:
    try:
        config = WorkerConfig.from_env(os.environ)
    except JobConfigError as error:
        print(f"cortex worker: {error}", file=sys.stderr)
        sys.exit(EXIT_APP_GONE)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per batch otherwise
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=config.aws_region)
    client_config = Config(retries={"mode": "standard"}, read_timeout=config.poll_wait + 10)
    worker = Worker(
        config,
        sqs=session.client("sqs", endpoint_url=config.aws_endpoint_url, config=client_config),
        dynamodb=session.client("dynamodb", endpoint_url=config.aws_endpoint_url, config=client_config),
    )
    # SIGTERM (pod deleted or node drained): finish the batch in hand, take no other, exit 143.
    signal.signal(signal.SIGTERM, lambda *_: worker.terminating.set())
    sys.exit(worker.run())


if __name__ == "__main__":
    main()
