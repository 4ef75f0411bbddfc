"""The AsyncAPI queue worker: a sidecar that feeds the user's container from the API's queue.

What it does is in :mod:`.contract`'s docstring. How, here: plain threads, because every call it makes
(boto3, the POST to the container) blocks:

- the *receiver* long-polls the queue while the container is ready and a slot is free, and hands each
  message to a pool of ``max_concurrency`` threads;
- the *keeper* renews the visibility of every held message every third of the visibility timeout, and
  aborts a POST that is past ``request_timeout`` (it shuts the socket down, which ends the blocked read);
- the *prober* runs the container's readiness probe;
- the *dead-letter drainer* turns messages SQS gave up on into ``failed`` outcomes;
- the main thread waits for SIGTERM, then runs the shutdown (stop receiving, wait for what is held
  until the grace period ends, release the rest with visibility 0).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from cortex_iac.queue import contract, storage
from cortex_iac.queue.contract import QueueConfigError, WorkerConfig
from cortex_iac.queue.storage import BackendUnavailable, Store

log = logging.getLogger("cortex.async.worker")

# How much of a failing answer the reason quotes.
_REASON_BODY_CHARS = 500
# Headers the worker sets itself on the POST.
_OWN_HEADERS = frozenset({"content-length", "host", contract.REQUEST_ID_HEADER.lower()})
_PROBE_INTERVAL_SECONDS = 1.0
_KEEPER_TICK_SECONDS = 0.25


@dataclass
class Job:
    """One held message."""

    request_id: str
    receipt: str
    receive_count: int
    deadline: float = 0.0  # monotonic time the POST must end by (0: not posting)
    conn: http.client.HTTPConnection | None = None
    timed_out: bool = False
    released: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Worker:
    """The worker's state and threads (see the module docstring)."""

    def __init__(self, config: WorkerConfig, *, s3: Any = None, sqs: Any = None) -> None:
        self.config = config
        pool = config.max_concurrency + 4
        self.store = Store(s3 or storage.s3_client(pool), config.bucket, config.key_prefix)
        # The long poll holds a connection for RECEIVE_WAIT_SECONDS: the read timeout must be longer.
        self.sqs = sqs or storage.sqs_client(pool, read_timeout=config.receive_wait + 10)
        self.held: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.slots = threading.Semaphore(config.max_concurrency)
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.pool = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="request")
        self.registry = CollectorRegistry()
        labels = ["api_name"]
        self.outcomes = Counter("cortex_async_worker_requests", "Messages handled, by outcome.",
                                ["api_name", "outcome"], registry=self.registry)
        self.duration = Histogram("cortex_async_worker_request_duration_seconds",
                                  "Time from receiving a message to recording its outcome.", labels,
                                  registry=self.registry, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
                                                                   900, 3600))
        self.in_flight = Gauge("cortex_async_worker_in_flight", "Messages held now.", labels, registry=self.registry)
        self.sqs_calls = Counter("cortex_async_worker_sqs_requests", "SQS requests made, by queue and action.",
                                 ["api_name", "queue", "action"], registry=self.registry)

    # -- SQS, counted --
    def _sqs(self, queue: str, action: str, **kwargs: Any) -> Any:
        self.sqs_calls.labels(self.config.api_name, queue, action).inc()
        method = {"ReceiveMessage": self.sqs.receive_message, "DeleteMessage": self.sqs.delete_message,
                  "ChangeMessageVisibility": self.sqs.change_message_visibility,
                  "ChangeMessageVisibilityBatch": self.sqs.change_message_visibility_batch}[action]
        url = self.config.queue_url if queue == "queue" else self.config.dead_letter_queue_url
        try:
            return method(QueueUrl=url, **kwargs)
        except Exception as error:
            raise BackendUnavailable(f"SQS {action}", error) from error

    def _delete(self, job: Job) -> None:
        self._sqs("queue", "DeleteMessage", ReceiptHandle=job.receipt)

    def _release(self, job: Job) -> None:
        try:
            self._sqs("queue", "ChangeMessageVisibility", ReceiptHandle=job.receipt, VisibilityTimeout=0)
        except BackendUnavailable as error:
            log.warning("release failed; the message reappears after its visibility timeout",
                        extra={"request_id": job.request_id, "error": str(error)})

    # -- receiving --
    def receive_loop(self) -> None:
        while not self.stopping.is_set():
            if not self.ready.wait(0.5):
                continue
            if not self.slots.acquire(timeout=0.5):
                continue
            free = 1
            while free < 10 and self.slots.acquire(blocking=False):
                free += 1
            if self.stopping.is_set():
                for _ in range(free):
                    self.slots.release()
                break
            try:
                messages = self._sqs("queue", "ReceiveMessage", MaxNumberOfMessages=free,
                                     WaitTimeSeconds=self.config.receive_wait,
                                     VisibilityTimeout=self.config.visibility_timeout,
                                     MessageSystemAttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
            except BackendUnavailable as error:
                log.warning("receive failed", extra={"error": str(error)})
                messages = []
                self.stopping.wait(2.0)
            for _ in range(free - len(messages)):
                self.slots.release()
            for message in messages:
                job = Job(request_id=message.get("Body", ""), receipt=message["ReceiptHandle"],
                          receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")))
                if self.stopping.is_set():  # received during the shutdown: give it straight back
                    self._release(job)
                    self.slots.release()
                    continue
                with self.lock:
                    self.held[job.receipt] = job
                    self.in_flight.labels(self.config.api_name).set(len(self.held))
                self.pool.submit(self._handle, job)

    def _handle(self, job: Job) -> None:
        started = time.monotonic()
        outcome = "error"
        try:
            outcome = self._process(job)
        except BackendUnavailable as error:
            # Left as it is: the message reappears after its visibility timeout and is tried again
            # (it counts as an attempt, so a store that stays down ends in the DLQ, not a loop).
            log.warning("could not finish a request", extra={"request_id": job.request_id, "error": str(error)})
            with self.lock:
                self.held.pop(job.receipt, None)
        except Exception:
            log.exception("unexpected error", extra={"request_id": job.request_id})
        finally:
            with self.lock:
                self.held.pop(job.receipt, None)
                self.in_flight.labels(self.config.api_name).set(len(self.held))
            self.outcomes.labels(self.config.api_name, outcome).inc()
            self.duration.labels(self.config.api_name).observe(time.monotonic() - started)
            self.slots.release()

    def _process(self, job: Job) -> str:
        store, request_id = self.store, job.request_id
        if not contract.ID_PATTERN.match(request_id):
            log.warning("message is not a request id; deleted", extra={"body": request_id[:100]})
            self._delete(job)
            return "invalid"
        if store.terminal(request_id) is not None:
            # Its outcome was stored by a worker that did not live to delete the message.
            self._delete(job)
            return "duplicate"
        if job.receive_count > self.config.max_attempts:
            store.record_failed(request_id, _lost_reason(job.receive_count - 1))
            store.delete_inputs(request_id)
            self._delete(job)
            return "failed"
        store.put_marker(request_id, "in_progress")
        payload = store.get_payload(request_id)
        detail: bytes | str
        if payload is None:
            kind, detail = "failed", "the payload is gone (expired or deleted before a worker took it)"
        else:
            headers = store.get_headers(request_id)
            kind, detail = self._post(job, payload, headers)
        with job.lock:
            if job.released:  # the shutdown gave it back: another worker records the outcome
                return "released"
        if isinstance(detail, bytes):
            store.record_completed(request_id, detail)
        else:
            store.record_failed(request_id, str(detail))
        store.delete_inputs(request_id)
        self._delete(job)
        log.info("request done", extra={"request_id": request_id, "status": kind,
                                        **({"reason": detail} if kind == "failed" else {})})
        return kind

    def _post(self, job: Job, payload: Any, headers: list[tuple[str, str]]) -> tuple[str, bytes | str]:
        """POST the payload to the container: ("completed", the JSON answer) or ("failed", why)."""
        config = self.config
        conn = http.client.HTTPConnection("127.0.0.1", config.user_port, timeout=config.request_timeout,
                                          blocksize=64 * 1024)
        send = [(k, v) for k, v in headers if k.lower() not in _OWN_HEADERS]
        send.append((contract.REQUEST_ID_HEADER, job.request_id))
        send.append(("Content-Length", str(payload["ContentLength"])))
        with job.lock:
            job.conn, job.deadline = conn, time.monotonic() + config.request_timeout
        try:
            conn.putrequest("POST", "/", skip_accept_encoding=True)
            for name, value in send:
                conn.putheader(name, value)
            conn.endheaders()
            for chunk in storage.iter_body(payload["Body"]):
                conn.send(chunk)
            response = conn.getresponse()
            body = response.read(config.max_result_bytes + 1)
        except ConnectionRefusedError:
            return "failed", f"the container was not reachable on port {config.user_port} (connection refused)"
        except (OSError, http.client.HTTPException) as error:
            if job.timed_out or isinstance(error, TimeoutError):
                return "failed", f"the container did not answer within {config.request_timeout:g} s (request timeout)"
            return "failed", f"the container closed the connection without a complete answer ({type(error).__name__})"
        finally:
            with job.lock:
                job.conn, job.deadline = None, 0.0
            conn.close()
        if job.timed_out:
            return "failed", f"the container did not answer within {config.request_timeout:g} s (request timeout)"
        if not 200 <= response.status < 300:
            start = body[:_REASON_BODY_CHARS].decode("utf-8", "replace")
            return "failed", f"the container answered {response.status}: {start}"
        if len(body) > config.max_result_bytes:
            return "failed", f"the container's answer is over {config.max_result_bytes} bytes"
        try:
            json.loads(body)
        except ValueError:
            start = body[:_REASON_BODY_CHARS].decode("utf-8", "replace")
            return "failed", f"the container's answer is not JSON: {start}"
        return "completed", body

    # -- keeping messages --
    def keeper_loop(self) -> None:
        interval = self.config.visibility_timeout / 3
        next_renewal = time.monotonic() + interval
        while not (self.stopping.is_set() and not self.held):
            time.sleep(_KEEPER_TICK_SECONDS)
            now = time.monotonic()
            with self.lock:
                jobs = list(self.held.values())
            for job in jobs:
                with job.lock:
                    if job.conn is not None and job.deadline and now > job.deadline and not job.timed_out:
                        job.timed_out = True
                        _abort(job.conn)
            if now >= next_renewal:
                next_renewal = now + interval
                self._renew([job for job in jobs if not job.released])

    def _renew(self, jobs: list[Job]) -> None:
        for start in range(0, len(jobs), 10):
            entries = [{"Id": str(i), "ReceiptHandle": job.receipt, "VisibilityTimeout": self.config.visibility_timeout}
                       for i, job in enumerate(jobs[start:start + 10])]
            try:
                answer = self._sqs("queue", "ChangeMessageVisibilityBatch", Entries=entries)
            except BackendUnavailable as error:
                log.warning("visibility renewal failed", extra={"error": str(error)})
                continue
            for failure in answer.get("Failed", []):
                log.warning("visibility renewal refused", extra={"error": failure.get("Code")})

    # -- the dead-letter queue --
    def dead_letter_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                messages = self._sqs("dlq", "ReceiveMessage", MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     VisibilityTimeout=30).get("Messages", [])
            except BackendUnavailable as error:
                log.warning("dead-letter receive failed", extra={"error": str(error)})
                messages = []
            for message in messages:
                request_id = message.get("Body", "")
                try:
                    if contract.ID_PATTERN.match(request_id):
                        reason = _lost_reason(self.config.max_attempts)
                        if self.store.record_failed(request_id, reason):
                            log.warning("request failed: it went to the dead-letter queue",
                                        extra={"request_id": request_id, "reason": reason})
                            self.outcomes.labels(self.config.api_name, "dead_letter").inc()
                        self.store.delete_inputs(request_id)
                    self._sqs("dlq", "DeleteMessage", ReceiptHandle=message["ReceiptHandle"])
                except BackendUnavailable as error:
                    log.warning("dead-letter message kept for later", extra={"request_id": request_id,
                                                                             "error": str(error)})
            if not messages:
                self.stopping.wait(self.config.dead_letter_poll_interval)

    # -- readiness --
    def probe_loop(self) -> None:
        while not self.stopping.is_set():
            if _probe(self.config.probe):
                if not self.ready.is_set():
                    log.info("user container ready", extra={"port": self.config.user_port})
                self.ready.set()
            else:
                if self.ready.is_set():
                    log.warning("user container not ready: receiving paused")
                self.ready.clear()
            self.stopping.wait(_PROBE_INTERVAL_SECONDS)

    # -- lifecycle --
    def run(self, shutdown: threading.Event) -> int:
        admin = _admin_server(self)
        threads = [threading.Thread(target=target, name=name, daemon=True) for name, target in (
            ("admin", admin.serve_forever), ("prober", self.probe_loop), ("receiver", self.receive_loop),
            ("keeper", self.keeper_loop), ("dead-letter", self.dead_letter_loop))]
        for thread in threads:
            thread.start()
        log.info("started", extra={"api_name": self.config.api_name, "max_concurrency": self.config.max_concurrency,
                                   "user_port": self.config.user_port, "admin_port": self.config.admin_port})
        shutdown.wait()
        deadline = time.monotonic() + self.config.grace_period
        self.stopping.set()
        with self.lock:
            log.info("stopping: receiving stopped", extra={"held": len(self.held)})
        while time.monotonic() < deadline:
            with self.lock:
                if not self.held:
                    break
            time.sleep(0.05)
        with self.lock:
            left = list(self.held.values())
        for job in left:
            with job.lock:
                job.released = True
                if job.conn is not None:
                    _abort(job.conn)
            self._release(job)
        if left:
            log.warning("grace period over: released what was still held", extra={"released": len(left)})
        # A long poll under way may still return messages: wait for it (bounded by the grace period) so
        # they are released at once, not left to count an attempt and reappear a visibility timeout later.
        threads[2].join(max(deadline - time.monotonic(), 0.1))
        self.pool.shutdown(wait=False, cancel_futures=True)
        admin.shutdown()
        admin.server_close()
        log.info("exited", extra={"released": len(left)})
        return 0


def _lost_reason(attempts: int) -> str:
    return f"worker lost after {attempts} attempts (every worker that took the request died or was stopped)"


def _abort(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _probe(probe: contract.ReadinessProbe) -> bool:
    try:
        if probe.kind == "tcp_socket":
            with socket.create_connection(("127.0.0.1", probe.port), timeout=1.0):
                return True
        conn = http.client.HTTPConnection("127.0.0.1", probe.port, timeout=1.0)
        try:
            conn.request("GET", probe.path)
            return 200 <= conn.getresponse().status < 400
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return False


def _admin_server(worker: Worker) -> ThreadingHTTPServer:
    class Admin(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == contract.WORKER_HEALTH_PATH:
                ok = worker.ready.is_set() and not worker.stopping.is_set()
                self._answer(200 if ok else 503, b"ok" if ok else b"not ready", "text/plain")
            elif self.path == contract.WORKER_METRICS_PATH:
                self._answer(200, generate_latest(worker.registry), CONTENT_TYPE_LATEST)
            else:
                self._answer(404, b"not found", "text/plain")

        def _answer(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            pass

    server = ThreadingHTTPServer(("0.0.0.0", worker.config.admin_port), Admin)
    server.daemon_threads = True
    return server


def main() -> int:
    from cortex_iac.serving.logs import configure_logging

    try:
        config = WorkerConfig.from_env(os.environ)
    except QueueConfigError as error:
        print(f"cortex async worker: {error}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    shutdown = threading.Event()

    def on_signal(sig: int, frame: FrameType | None) -> None:
        shutdown.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return Worker(config).run(shutdown)


if __name__ == "__main__":
    sys.exit(main())
