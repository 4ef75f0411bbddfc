"""The AsyncAPI runtime contract: what the renderer and the two processes agree on.

Deliberately free of pydantic and boto3 (like :mod:`cortex_iac.runtime_contract`), so the renderer
can import it without the runtime's dependencies and the runtime image without the specs.

**The gateway** (``python -m cortex_iac.queue.gateway``, one Deployment per API, behind the shared
ALB at ``networking.endpoint``; the ALB's ``url-rewrite`` strips the endpoint, as for RealtimeAPIs):

- ``POST /``: refuses a body over ``max_body_bytes`` with 413 before anything is stored (the
  Content-Length first, then a count while streaming; a partial multipart upload is aborted),
  streams the body to ``<prefix><id>/payload`` (parts of :data:`UPLOAD_PART_BYTES`, never whole in
  memory), stores the request headers in ``<prefix><id>/headers.json`` and the ``in_queue`` marker,
  sends the id as the SQS message, and answers ``200 {"id": "<id>"}`` (Cortex's 200, not 202). The id
  is the gateway's own UUID4: a client cannot choose it, so it cannot overwrite another's request.
- ``GET /<id>``: ``{"id", "status"}`` plus ``"result"`` (any JSON value) and ``"timestamp"`` (RFC 3339)
  when ``completed``, or ``"reason"`` when ``failed``; 404 (JSON ``{"error": ...}``) for an unknown id.
- S3 or SQS unreachable: 503 ``{"error": ...}`` with ``Retry-After``, never a traceback; the next
  request tries again (no state to recover).
- ``GET /healthz`` (ALB health check and readiness); ``GET :metrics_port/metrics`` (Prometheus, a
  port the load balancer does not reach).
- When ``CORTEX_ENDPOINT`` is set the gateway also accepts the un-rewritten paths
  ``<endpoint>`` and ``<endpoint>/<id>`` (``cortex serve``, or a load balancer that does not rewrite).

**The queue worker** (``python -m cortex_iac.queue.worker``, a sidecar next to the user's containers):

- Receives only while the user container's readiness probe passes (and never during shutdown), one
  long poll (:data:`RECEIVE_WAIT_SECONDS`) for up to ``max_concurrency`` - held messages at a time,
  so an idle replica costs a fixed number of SQS requests whatever its concurrency.
- Per message: skips (deletes) one whose outcome is already recorded (redelivery after a crash between
  recording and deleting: never processed twice to completion); records ``failed`` "worker lost after
  N attempts" when ``ApproximateReceiveCount`` exceeds ``max_attempts``; else writes ``in_progress``,
  POSTs the payload and the original headers plus ``X-Cortex-Request-ID`` to
  ``http://127.0.0.1:<user_port>/``, and writes ``result.json`` + ``completed`` for a 2xx JSON answer,
  or ``failure.json`` + ``failed`` with the reason (status code and the start of the answer, timed out
  after ``request_timeout``, not reachable, answer not JSON). The message is deleted only after the
  outcome is stored; then the payload and headers are deleted (Cortex did too).
- Keeps every held message invisible (``ChangeMessageVisibility`` every ``visibility_timeout / 3``).
  A worker that dies stops renewing, so the message reappears and another replica takes it.
- Drains the dead-letter queue: a message SQS moved there (received ``max_attempts`` times, every
  worker died on it) is recorded ``failed`` "worker lost after N attempts" and deleted, so no request
  stays ``in_progress`` forever and none loops. The DLQ is polled every :data:`DLQ_POLL_INTERVAL_SECONDS`.
- SIGTERM: stops receiving at once, lets held requests finish until ``grace_period``, then releases
  what is left (visibility 0, its outcome never written) and exits.
- ``:admin_port/healthz`` (200 once the user container is ready, 503 before and while stopping),
  ``:admin_port/metrics``.

Region and endpoint come from the AWS SDK's own variables (:data:`AWS_ENV`: ``AWS_REGION``,
``AWS_ENDPOINT_URL``), credentials from EKS Pod Identity; nothing of ours.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from cortex_iac.errors import CortexError
from cortex_iac.runtime_contract import LOG_LEVELS, parse_float, parse_int


class QueueConfigError(CortexError):
    """An AsyncAPI runtime setting (an environment variable of the gateway or worker) is unusable."""


# --- what the renderer needs -------------------------------------------------------------------------

GATEWAY_COMMAND = ("python", "-m", "cortex_iac.queue.gateway")
WORKER_COMMAND = ("python", "-m", "cortex_iac.queue.worker")
GATEWAY_PORT = 8888
GATEWAY_HEALTH_PATH = "/healthz"  # readiness and the ALB's health check; answers without AWS calls
# Metrics on their own port (not the one the ALB reaches, so the internet cannot read them), like the
# worker's admin port; the API namespace's NetworkPolicy admits 15000 from Prometheus only.
GATEWAY_METRICS_PORT = 15000
GATEWAY_METRICS_PATH = "/metrics"
WORKER_ADMIN_PORT = 15000
WORKER_HEALTH_PATH = "/healthz"  # readiness: 200 once the user container is ready, 503 while stopping
WORKER_METRICS_PATH = "/metrics"

# The gateway sees paths with the endpoint stripped by the ALB's url-rewrite transform (as a RealtimeAPI
# does): POST / and GET /<id>. It also accepts the endpoint-prefixed form when CORTEX_ENDPOINT is set.
GATEWAY_EXPECTS_REWRITTEN_PATH = True

# Standard queue, not FIFO. Cortex's FIFO queue gave every message its own group, i.e. no ordering;
# FIFO's deduplication covers only sends within 5 minutes, not processing (a visibility timeout that
# runs out redelivers either way), and it caps throughput (300 API calls/s per action without
# high-throughput mode). The worker is idempotent instead: an already recorded outcome is never
# overwritten (conditional writes) and a redelivered message with an outcome is just deleted.
FIFO = False

# How many times a message may be received before SQS moves it to the DLQ (the redrive policy's
# maxReceiveCount); the worker's CORTEX_MAX_ATTEMPTS must equal it.
DEFAULT_MAX_ATTEMPTS = 3
# The queue's VisibilityTimeout attribute, also what the worker asks for on receive and renewal.
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 60
# Cortex's results stay queryable 7 days: the bucket's lifecycle rule on the API's prefix.
DEFAULT_RESULT_RETENTION_DAYS = 7
DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024
# Cortex had no per-request timeout (a stuck container held its message for ever).
DEFAULT_REQUEST_TIMEOUT_SECONDS = 3600.0
# Cortex's AsyncAPI Deployment: terminationGracePeriodSeconds 60. The pod's grace period must be
# longer than the worker's (it needs a few seconds to release what it still holds).
DEFAULT_GRACE_PERIOD_SECONDS = 60.0
GRACE_PERIOD_MARGIN_SECONDS = 10
# Long polling: 20 s is SQS's maximum, so an idle replica makes 3600/20 = 180 ReceiveMessage calls an
# hour on the queue, plus 3600/DLQ_POLL_INTERVAL_SECONDS on the dead-letter queue.
RECEIVE_WAIT_SECONDS = 20
DLQ_POLL_INTERVAL_SECONDS = 60
UPLOAD_PART_BYTES = 8 * 1024 * 1024
# Bodies that need more than BUFFER_WITHOUT_SLOT_BYTES of buffer take one of GATEWAY_LARGE_UPLOADS slots
# per gateway process; further large uploads wait (their socket is not read) until one is free. One
# large upload measured +44 MiB of RSS (docs/benchmarks.md), so 8 of them fit a 512Mi limit.
GATEWAY_LARGE_UPLOADS = 8
# A body whose next part does not arrive within this many seconds is answered 408 and nothing is
# stored (the gateway sits behind the ALB, whose idle timeout is 60 s, with no Envoy in front).
DEFAULT_BODY_IDLE_TIMEOUT = 30.0
BUFFER_WITHOUT_SLOT_BYTES = 1024 * 1024
# The worker reads a container's answer whole to check it is JSON before storing it: at most this much
# per request, so the sidecar's memory is bounded by about max_concurrency x this (+ ~60 MiB).
DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024

# The KEDA ScaledObject should scale on both queues: the main one (target_in_flight) and the DLQ
# (any message: a replica must run to mark it failed, also when the API is at zero).
KEDA_SCALES_ON_DEAD_LETTER_QUEUE = True

# Exactly the AWS actions each process calls (least privilege by construction). S3 object actions
# apply to arn:aws:s3:::<bucket>/<key_prefix>*; s3:ListBucket to the bucket with the condition
# s3:prefix like <key_prefix>* (the gateway and the worker list <prefix><id>/status/). Multipart
# uploads (CreateMultipartUpload, UploadPart, CompleteMultipartUpload) are covered by s3:PutObject.
# The queues use SSE-SQS and the bucket SSE-S3, so no KMS action is needed.
GATEWAY_S3_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload")
GATEWAY_S3_BUCKET_ACTIONS = ("s3:ListBucket",)
GATEWAY_SQS_ACTIONS = ("sqs:SendMessage",)  # on the API's queue only
WORKER_S3_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:DeleteObject")
WORKER_S3_BUCKET_ACTIONS = ("s3:ListBucket",)
WORKER_SQS_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")  # the queue
WORKER_DLQ_SQS_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage")  # the dead-letter queue
KEDA_SQS_ACTIONS = ("sqs:GetQueueAttributes",)  # both queues

AWS_ENV = ("AWS_REGION", "AWS_ENDPOINT_URL")
REQUEST_ID_HEADER = "X-Cortex-Request-ID"


# --- the S3 key layout (Cortex's, plus failure.json) ---------------------------------------------

Status = Literal["in_queue", "in_progress", "completed", "failed"]
STATUSES: tuple[Status, ...] = ("in_queue", "in_progress", "completed", "failed")
# When several markers exist, the first of these wins (a fast worker may write in_progress before
# in_queue is visible; a duplicate may fail after another completed).
STATUS_PRIORITY: tuple[Status, ...] = ("completed", "failed", "in_progress", "in_queue")

# Ids are the gateway's UUID4s; anything else is refused before it becomes part of an S3 key.
ID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def default_key_prefix(api_name: str) -> str:
    """The API's own prefix in the bucket: ``workloads/<api>/`` (Cortex's, without its cluster UID)."""
    return f"workloads/{api_name}/"


def request_prefix(prefix: str, request_id: str) -> str:
    return f"{prefix}{request_id}/"


def payload_key(prefix: str, request_id: str) -> str:
    return f"{prefix}{request_id}/payload"


def headers_key(prefix: str, request_id: str) -> str:
    return f"{prefix}{request_id}/headers.json"


def status_prefix(prefix: str, request_id: str) -> str:
    return f"{prefix}{request_id}/status/"


def status_key(prefix: str, request_id: str, status: Status) -> str:
    return f"{prefix}{request_id}/status/{status}"


def result_key(prefix: str, request_id: str) -> str:
    return f"{prefix}{request_id}/result.json"


def failure_key(prefix: str, request_id: str) -> str:
    """``{"reason": "..."}`` of a failed request."""
    return f"{prefix}{request_id}/failure.json"


def resolve_status(markers: set[str]) -> Status | None:
    """The status a set of marker names means (None: no marker, an unknown id)."""
    for status in STATUS_PRIORITY:
        if status in markers:
            return status
    return None


# --- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadinessProbe:
    """The user container's readiness as the worker checks it: an HTTP GET (2xx/3xx passes) or a TCP
    connect on 127.0.0.1. Env form (``CORTEX_READINESS_PROBE``): ``{"http_get": {"path": "/", "port":
    8080}}`` or ``{"tcp_socket": {"port": 8080}}``, the spec's own shape."""

    kind: Literal["http_get", "tcp_socket"]
    port: int
    path: str = "/"

    def to_json(self) -> str:
        inner: dict[str, Any] = {"port": self.port}
        if self.kind == "http_get":
            inner["path"] = self.path
        return json.dumps({self.kind: inner})

    @classmethod
    def from_json(cls, raw: str) -> ReadinessProbe:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"Not valid JSON: {error}.") from None
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("http_get", "tcp_socket"):
            raise ValueError('Not {"http_get": {"path": ..., "port": ...}} or {"tcp_socket": {"port": ...}}.')
        kind, inner = next(iter(value.items()))
        if not isinstance(inner, dict) or not isinstance(inner.get("port"), int):
            raise ValueError(f"{kind} needs an integer port.")
        path = inner.get("path", "/")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"{kind}.path must be a string starting with '/'.")
        return cls(kind=kind, port=inner["port"], path=path)


@dataclass(frozen=True)
class GatewayConfig:
    """The gateway's settings (``CORTEX_*`` variables, see :meth:`from_env`).

    Attributes:
        api_name: the API's name (labels, logs).
        queue_url: the API's SQS queue (SendMessage).
        bucket: the payload/result bucket.
        key_prefix: the API's own prefix in it, ending in ``/`` (default ``workloads/<api>/``).
        endpoint: ``networking.endpoint``; also accepted as a path prefix (default none).
        max_body_bytes: larger bodies get 413 and nothing is stored (default 100 MiB).
        body_idle_timeout: seconds the gateway waits for the next part of a body before it answers
            408 and stores nothing (default 30): a stalled client cannot hold an upload slot.
        result_retention_days: how long results stay queryable (the bucket's lifecycle rule does it;
            informational here, logged at start).
        host, port: where to listen (default ``0.0.0.0:8888``).
        metrics_port: where ``/metrics`` is served (default 15000; 0 turns it off).
        grace_period: seconds from SIGTERM to exit; accepted requests finish (default 30).
        log_level: debug, info, warning or error.
    """

    api_name: str
    queue_url: str
    bucket: str
    key_prefix: str = ""
    endpoint: str = ""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_idle_timeout: float = DEFAULT_BODY_IDLE_TIMEOUT
    result_retention_days: int = DEFAULT_RESULT_RETENTION_DAYS
    host: str = "0.0.0.0"
    port: int = GATEWAY_PORT
    metrics_port: int = GATEWAY_METRICS_PORT
    grace_period: float = 30.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        _check_common(self.api_name, self.queue_url, self.bucket, self)
        if self.endpoint:
            _require(self.endpoint.startswith("/") and not self.endpoint.endswith("/"), "CORTEX_ENDPOINT",
                     self.endpoint, "a path starting with '/' and not ending with '/'")
        _require(self.max_body_bytes >= 1, "CORTEX_MAX_BODY_BYTES", self.max_body_bytes, "must be >= 1")
        _require(self.body_idle_timeout > 0, "CORTEX_BODY_IDLE_TIMEOUT", self.body_idle_timeout, "must be > 0 seconds")
        _require(self.result_retention_days >= 1, "CORTEX_RESULT_RETENTION_DAYS", self.result_retention_days,
                 "must be >= 1")
        _require(0 <= self.port <= 65535, "CORTEX_GATEWAY_PORT", self.port, "must be 0..65535")
        _require(0 <= self.metrics_port <= 65535 and (self.metrics_port != self.port or self.port == 0),
                 "CORTEX_GATEWAY_METRICS_PORT", self.metrics_port, "must be 0..65535 and not the gateway port")
        _require(self.grace_period > 0, "CORTEX_GRACE_PERIOD", self.grace_period, "must be > 0 seconds")
        _require(self.log_level in LOG_LEVELS, "CORTEX_LOG_LEVEL", self.log_level, f"one of {', '.join(LOG_LEVELS)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewayConfig:
        """Read ``CORTEX_API_NAME``, ``CORTEX_QUEUE_URL``, ``CORTEX_BUCKET`` (required) and the optional
        ``CORTEX_KEY_PREFIX``, ``CORTEX_ENDPOINT``, ``CORTEX_MAX_BODY_BYTES``, ``CORTEX_BODY_IDLE_TIMEOUT``,
        ``CORTEX_RESULT_RETENTION_DAYS``, ``CORTEX_GATEWAY_HOST``, ``CORTEX_GATEWAY_PORT``,
        ``CORTEX_GATEWAY_METRICS_PORT``,
        ``CORTEX_GRACE_PERIOD``, ``CORTEX_LOG_LEVEL``. Raises ``QueueConfigError`` naming the variable."""
        return cls(**_read_env(cls, env, _GATEWAY_VARS))

    def to_env(self) -> dict[str, str]:
        return _write_env(self, _GATEWAY_VARS)


@dataclass(frozen=True)
class WorkerConfig:
    """The queue worker's settings (``CORTEX_*`` variables, see :meth:`from_env`).

    Attributes:
        api_name, queue_url, bucket, key_prefix: as the gateway's.
        dead_letter_queue_url: the queue's DLQ, drained into ``failed`` outcomes.
        user_port: the user container's port (``pod.port``, default 8080).
        max_concurrency: requests held and sent to the container at once (``pod.max_concurrency``).
        visibility_timeout: seconds a received message stays invisible; renewed every third of it.
        max_attempts: deliveries before SQS moves a message to the DLQ (the redrive maxReceiveCount).
        request_timeout: seconds the container gets per request; then ``failed`` "timed out".
        grace_period: seconds from SIGTERM until what is still held is released.
        readiness_probe: the user container's readiness (default: TCP on ``user_port``).
        admin_port: ``/healthz`` and ``/metrics`` (default 15000).
        max_result_bytes: larger answers end ``failed`` (the worker holds an answer to check it is JSON).
        receive_wait: seconds a ReceiveMessage long poll waits (default :data:`RECEIVE_WAIT_SECONDS`,
            SQS's maximum; a shutdown waits for the poll under way, so the tests shorten it).
        dead_letter_poll_interval: seconds between polls of an empty DLQ (default
            :data:`DLQ_POLL_INTERVAL_SECONDS`; the live tests shorten it).
        log_level: debug, info, warning or error.
    """

    api_name: str
    queue_url: str
    bucket: str
    dead_letter_queue_url: str
    key_prefix: str = ""
    user_port: int = 8080
    max_concurrency: int = 1
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    grace_period: float = DEFAULT_GRACE_PERIOD_SECONDS
    readiness_probe: ReadinessProbe | None = None
    admin_port: int = WORKER_ADMIN_PORT
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    receive_wait: int = RECEIVE_WAIT_SECONDS
    dead_letter_poll_interval: float = DLQ_POLL_INTERVAL_SECONDS
    log_level: str = "info"

    def __post_init__(self) -> None:
        _check_common(self.api_name, self.queue_url, self.bucket, self)
        _require(1 <= self.receive_wait <= 20, "CORTEX_RECEIVE_WAIT", self.receive_wait, "must be 1..20 seconds")
        _require(self.dead_letter_poll_interval > 0, "CORTEX_DEAD_LETTER_POLL_INTERVAL",
                 self.dead_letter_poll_interval, "must be > 0 seconds")
        _require(bool(self.dead_letter_queue_url), "CORTEX_DEAD_LETTER_QUEUE_URL", self.dead_letter_queue_url,
                 "required: the queue's dead-letter queue")
        _require(0 < self.user_port <= 65535, "CORTEX_USER_PORT", self.user_port, "must be 1..65535")
        _require(1 <= self.max_concurrency <= 100, "CORTEX_MAX_CONCURRENCY", self.max_concurrency, "must be 1..100")
        # SQS allows 0..43200; below 3 s the renewal (every third) could not keep up.
        _require(3 <= self.visibility_timeout <= 43200, "CORTEX_VISIBILITY_TIMEOUT", self.visibility_timeout,
                 "must be 3..43200 seconds")
        _require(1 <= self.max_attempts <= 1000, "CORTEX_MAX_ATTEMPTS", self.max_attempts, "must be 1..1000")
        _require(self.request_timeout > 0, "CORTEX_REQUEST_TIMEOUT", self.request_timeout, "must be > 0 seconds")
        _require(self.grace_period > 0, "CORTEX_GRACE_PERIOD", self.grace_period, "must be > 0 seconds")
        _require(0 <= self.admin_port <= 65535 and self.admin_port != self.user_port, "CORTEX_ADMIN_PORT",
                 self.admin_port, "must be 0..65535 and not the user port")
        _require(self.max_result_bytes >= 1, "CORTEX_MAX_RESULT_BYTES", self.max_result_bytes, "must be >= 1")
        _require(self.log_level in LOG_LEVELS, "CORTEX_LOG_LEVEL", self.log_level, f"one of {', '.join(LOG_LEVELS)}")
        if self.readiness_probe is None:
            object.__setattr__(self, "readiness_probe", ReadinessProbe("tcp_socket", self.user_port))

    @property
    def probe(self) -> ReadinessProbe:
        assert self.readiness_probe is not None
        return self.readiness_probe

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerConfig:
        """Read ``CORTEX_API_NAME``, ``CORTEX_QUEUE_URL``, ``CORTEX_DEAD_LETTER_QUEUE_URL``,
        ``CORTEX_BUCKET`` (required) and the optional ``CORTEX_KEY_PREFIX``, ``CORTEX_USER_PORT``,
        ``CORTEX_MAX_CONCURRENCY``, ``CORTEX_VISIBILITY_TIMEOUT``, ``CORTEX_MAX_ATTEMPTS``,
        ``CORTEX_REQUEST_TIMEOUT``, ``CORTEX_GRACE_PERIOD``, ``CORTEX_READINESS_PROBE``,
        ``CORTEX_ADMIN_PORT``, ``CORTEX_MAX_RESULT_BYTES``, ``CORTEX_RECEIVE_WAIT``, ``CORTEX_DEAD_LETTER_POLL_INTERVAL``,
        ``CORTEX_LOG_LEVEL``. Raises
        ``QueueConfigError`` naming the variable."""
        return cls(**_read_env(cls, env, _WORKER_VARS))

    def to_env(self) -> dict[str, str]:
        return _write_env(self, _WORKER_VARS)




def _check_common(api_name: str, queue_url: str, bucket: str, config: GatewayConfig | WorkerConfig) -> None:
    _require(bool(api_name), "CORTEX_API_NAME", api_name, "required: the API's name")
    _require(bool(queue_url), "CORTEX_QUEUE_URL", queue_url, "required: the API's SQS queue URL")
    _require(bool(bucket), "CORTEX_BUCKET", bucket, "required: the payload and result bucket")
    if not config.key_prefix:
        object.__setattr__(config, "key_prefix", default_key_prefix(api_name))
    _require(config.key_prefix.endswith("/") and not config.key_prefix.startswith("/"), "CORTEX_KEY_PREFIX",
             config.key_prefix, "must end with '/' and not start with '/'")


def _require(ok: bool, variable: str, value: object, rule: str) -> None:
    if not ok:
        raise QueueConfigError(f"{variable}: {value!r} is not allowed ({rule})")






# field -> (variable, parser)
_Vars = dict[str, tuple[str, Any]]
_COMMON_VARS: _Vars = {
    "api_name": ("CORTEX_API_NAME", str),
    "queue_url": ("CORTEX_QUEUE_URL", str),
    "bucket": ("CORTEX_BUCKET", str),
    "key_prefix": ("CORTEX_KEY_PREFIX", str),
    "grace_period": ("CORTEX_GRACE_PERIOD", parse_float),
    "log_level": ("CORTEX_LOG_LEVEL", str.lower),
}
_GATEWAY_VARS: _Vars = {
    **_COMMON_VARS,
    "endpoint": ("CORTEX_ENDPOINT", str),
    "max_body_bytes": ("CORTEX_MAX_BODY_BYTES", parse_int),
    "body_idle_timeout": ("CORTEX_BODY_IDLE_TIMEOUT", parse_float),
    "result_retention_days": ("CORTEX_RESULT_RETENTION_DAYS", parse_int),
    "host": ("CORTEX_GATEWAY_HOST", str),
    "port": ("CORTEX_GATEWAY_PORT", parse_int),
    "metrics_port": ("CORTEX_GATEWAY_METRICS_PORT", parse_int),
}
_WORKER_VARS: _Vars = {
    **_COMMON_VARS,
    "dead_letter_queue_url": ("CORTEX_DEAD_LETTER_QUEUE_URL", str),
    "user_port": ("CORTEX_USER_PORT", parse_int),
    "max_concurrency": ("CORTEX_MAX_CONCURRENCY", parse_int),
    "visibility_timeout": ("CORTEX_VISIBILITY_TIMEOUT", parse_int),
    "max_attempts": ("CORTEX_MAX_ATTEMPTS", parse_int),
    "request_timeout": ("CORTEX_REQUEST_TIMEOUT", parse_float),
    "readiness_probe": ("CORTEX_READINESS_PROBE", ReadinessProbe.from_json),
    "admin_port": ("CORTEX_ADMIN_PORT", parse_int),
    "max_result_bytes": ("CORTEX_MAX_RESULT_BYTES", parse_int),
    "receive_wait": ("CORTEX_RECEIVE_WAIT", parse_int),
    "dead_letter_poll_interval": ("CORTEX_DEAD_LETTER_POLL_INTERVAL", parse_float),
}
_REQUIRED = ("api_name", "queue_url", "bucket", "dead_letter_queue_url")


def _read_env(cls: type[GatewayConfig] | type[WorkerConfig], env: Mapping[str, str], variables: _Vars) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    values: dict[str, Any] = {}
    for name, (variable, parse) in variables.items():
        raw = env.get(variable)
        if raw is None or raw == "":
            if name in _REQUIRED and name in names:
                raise QueueConfigError(f"{variable} is not set (required by {cls.__name__})")
            continue
        try:
            values[name] = parse(raw)
        except ValueError as error:
            raise QueueConfigError(f"Config '{variable}' has value {raw!r}. {error}") from error
    return values


def _write_env(config: GatewayConfig | WorkerConfig, variables: _Vars) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, (variable, _) in variables.items():
        value = getattr(config, name)
        if value is None or value == "":
            continue
        env[variable] = value.to_json() if isinstance(value, ReadinessProbe) else str(value)
    return env
