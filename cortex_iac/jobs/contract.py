"""The job APIs' contract: everything the job gateway and the batch worker read from their pod, and
everything the infrastructure must grant or mount for them, as plain constants and dataclasses.

Shared by the runtime (``cortex_iac.jobs.gateway``, ``cortex_iac.jobs.worker``) and the renderers and
components of BatchAPI and TaskAPI, so the IAM policies and the Role are generated from the same
lists of calls the processes make (least privilege by construction) and the environment is written
and read by one pair of functions. Deliberately a leaf module (no pydantic, no boto3), like
``cortex_iac.runtime_contract``.

What the infrastructure renders (static, by Pulumi) and what the gateway renders (per job, at run
time, with the pure functions named in ``RUNTIME_RENDER_FUNCTIONS``):

* per API: the gateway Deployment (``GATEWAY_COMMAND``, env ``GatewayConfig.to_env()``, port
  ``GATEWAY_PORT``, readiness ``HEALTH_PATH``) behind the API's Ingress at ``networking.endpoint``
  (no path rewrite: the gateway serves under its endpoint itself); its ServiceAccount with a Role of
  ``GATEWAY_RBAC_RULES`` in the job namespace; its IAM role with ``gateway_iam_statements``; the
  DynamoDB job table (``TABLE_*``, TTL on ``Attr.EXPIRES_AT``); and the job template ConfigMap
  (``job_template_config_map_name``, key ``JOB_TEMPLATE_KEY``) mounted at ``JOB_TEMPLATE_DIR``.
* per job (at run time, by the gateway): the per-job SQS queue (BatchAPI, name from
  ``queue_name``), the Kubernetes Job and the ConfigMap holding ``/cortex/spec/job.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

from cortex_iac.errors import CortexError
from cortex_iac.runtime_contract import (
    JOB_ID_HEADER,
    LOG_LEVELS,
    ON_JOB_COMPLETE_PATH,
    parse_float,
    parse_int,
    parse_string_list,
)


class JobConfigError(CortexError):
    """A job gateway or worker setting (an environment variable in its pod) is unusable."""


JobKind = Literal["BatchAPI", "TaskAPI"]
JOB_KINDS: tuple[JobKind, ...] = ("BatchAPI", "TaskAPI")

# --- processes -------------------------------------------------------------------------------------

GATEWAY_COMMAND = ("python", "-m", "cortex_iac.jobs.gateway")
"""The gateway container's command (runtime image)."""
WORKER_COMMAND = ("python", "-m", "cortex_iac.jobs.worker")
"""The batch worker container's command (runtime image)."""
GATEWAY_PORT = 8888
"""The gateway listens here: the port the API namespace's NetworkPolicy already admits."""
HEALTH_PATH = "/-/ready"
"""Gateway readiness and liveness (200 once its settings and job template are loaded). Outside every
endpoint: job API endpoints must not start with ``/-/``."""
MAX_BODY_BYTES = 10 * 1024 * 1024
"""Submissions above this get 413 (Cortex's limit)."""
API_KEY_HEADER = "authorization"
"""With an API key configured, requests carry ``Authorization: Bearer <key>``; off by default."""
# JOB_ID_HEADER (on every batch the worker POSTs to the user's container) and ON_JOB_COMPLETE_PATH
# live in runtime_contract: the serving runtime answers them too.

# --- the pod template and the run-time objects -------------------------------------------------------

WORKER_CONTAINER_NAME = "cortex-worker"
"""BatchAPI: the worker is the pod's only regular container (``containers``); the user's containers
are native sidecars (``initContainers`` with ``restartPolicy: Always``), so the pod ends when the
worker ends. TaskAPI: the user's containers are the regular containers; there is no worker."""
JOB_SPEC_DIR = "/cortex/spec"
JOB_SPEC_FILE = "job.json"
JOB_SPEC_VOLUME = "cortex-job-spec"
"""The per-job ConfigMap (named like the Job) is mounted at ``JOB_SPEC_DIR`` in every user container
by the run-time render; the template must not define this volume."""
JOB_TEMPLATE_DIR = "/cortex/job-template"
JOB_TEMPLATE_KEY = "job.json"
"""The gateway reads ``JOB_TEMPLATE_DIR/JOB_TEMPLATE_KEY``: a complete ``batch/v1`` Job manifest
(JSON) without ``metadata.name`` and without the per-job fields (``parallelism``, ``completions``,
``activeDeadlineSeconds``, ``backoffLimit``, ``podFailurePolicy``, ``ttlSecondsAfterFinished``),
with ``spec.template.spec.restartPolicy: Never``. The run-time render copies it and sets those."""
JOB_ID_LABEL = "cortex.dev/job-id"
"""Label on the Job and its pods (with the template's own labels kept)."""
WORKER_JOB_ENV = ("CORTEX_JOB_ID", "CORTEX_SQS_URL", "CORTEX_MAX_RECEIVE_COUNT", "CORTEX_JOB_TABLE", "AWS_REGION")
"""Worker variables set per job by the run-time render (the table and region are the gateway's own);
the template sets the rest of ``WorkerConfig.to_env()``. So the template holds nothing that is only
known once the table exists, and a plan shows it (and prices its pod) in full."""
WORKER_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
"""The worker container's resources (one boto3 process; for the node-group fit check too)."""
GATEWAY_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
"""The gateway container's resources (a 10 MiB item_list is held while it is enqueued)."""
RUNTIME_RENDER_FUNCTIONS = (
    "cortex_iac.jobs.render:job_object",
    "cortex_iac.jobs.render:job_spec_config_map",
)
"""The pure functions (template + submission → Kubernetes object) the gateway sends to the API server."""


def job_template_config_map_name(api_name: str) -> str:
    """ConfigMap of the job template, in the gateway's namespace."""
    return f"{api_name}-job-template"


def job_object_name(api_name: str, job_id: str) -> str:
    """Name of a job's Kubernetes Job and ConfigMap: ``<api>-<job id>`` (Cortex's; at most 59 chars)."""
    return f"{api_name}-{job_id}"


def job_namespace(api_name: str) -> str:
    """The namespace a job API's workers run in: one per job API. RBAC cannot narrow ``create`` of
    Jobs to one API's objects, and a gateway that may create pods in a namespace may run them as
    any ServiceAccount there (and so with any of their IAM roles): the namespace holds only this
    API's worker ServiceAccount. The gateway itself stays in the API namespace (Ingress, Service)."""
    return f"cortex-job-{api_name}"


# --- AWS: the job table, the queues, the calls each process makes ------------------------------------

TABLE_PARTITION_KEY = "job_id"
TABLE_SORT_KEY = "sk"
"""Both strings (``S``). On-demand billing; TTL attribute ``Attr.EXPIRES_AT``."""
JOB_ITEM_SORT_KEY = "job"
"""The job record: ``(job_id, "job")``. Batch outcomes: ``(job_id, batch_sort_key(n))``."""


def batch_sort_key(index: int) -> str:
    """Sort key of the outcome record of batch ``index`` (written once: the exactly-once ledger)."""
    return f"batch#{index:09d}"


class Attr:
    """Attribute names of the job record (and of batch records: ``OUTCOME``, ``EXPIRES_AT``)."""

    KIND = "kind"
    API_NAME = "api_name"
    STATUS = "status"
    SPEC = "spec"  # the job's JSON (job_id, api_name, kind, workers, config, timeout, ...), a string
    START_TIME = "start_time"  # RFC 3339, submission
    END_TIME = "end_time"
    SUBMITTED_AT = "submitted_at"  # epoch seconds (number), the timeout's clock
    SQS_URL = "sqs_url"
    TOTAL_BATCH_COUNT = "total_batch_count"
    SUCCEEDED = "succeeded"  # atomic counters (ADD)
    FAILED = "failed"
    TIME_SUM_MS = "time_sum_ms"  # sum of succeeded batches' durations, for average_time_per_batch
    ENQUEUE_HEARTBEAT = "enqueue_heartbeat"  # epoch seconds, refreshed while enqueuing
    MESSAGE = "message"  # why a job failed (enqueue_failed, unexpected_error)
    ON_JOB_COMPLETE_BY = "on_job_complete_by"  # set once by the worker that calls the hook
    ON_JOB_COMPLETE_STATUS = "on_job_complete_status"  # HTTP status the hook answered
    EXPIRES_AT = "expires_at"  # epoch seconds: DynamoDB TTL (retention)
    QUEUE_DELETED = "queue_deleted"  # set once the gateway deleted the job's queue
    OUTCOME = "outcome"  # batch records: "succeeded" | "failed"


QUEUE_NAME_MAX = 80


def queue_name_prefix(cluster_name: str, api_name: str) -> str:
    """Every queue of a BatchAPI starts with this (Cortex's ``cx_<hash8>_b_<api>_``): the IAM
    resource ``arn:<partition>:sqs:<region>:<account>:<prefix>*`` names exactly that API's queues."""
    digest = hashlib.sha256(cluster_name.encode()).hexdigest()[:8]
    return f"cx_{digest}_b_{api_name}_"


def queue_name(cluster_name: str, api_name: str, job_id: str) -> str:
    """The per-job queue: FIFO (a Cortex user's dead-letter queue is FIFO, and SQS wants both of
    one type), at most 78 characters."""
    return f"{queue_name_prefix(cluster_name, api_name)}{job_id}.fifo"


def queue_arn_pattern(cluster_name: str, api_name: str, *, partition: str = "aws", region: str = "*",
                      account: str = "*") -> str:
    """IAM resource of the API's queues (region and account may stay ``*``: the prefix scopes it)."""
    return f"arn:{partition}:sqs:{region}:{account}:{queue_name_prefix(cluster_name, api_name)}*"


GATEWAY_SQS_ACTIONS = ("sqs:CreateQueue", "sqs:TagQueue", "sqs:SendMessage", "sqs:GetQueueAttributes",
                       "sqs:DeleteQueue")
"""On ``queue_arn_pattern`` (BatchAPI only). SendMessageBatch is authorized as sqs:SendMessage."""
GATEWAY_DYNAMODB_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
"""On the job table."""
GATEWAY_S3_ACTIONS = ("s3:ListBucket", "s3:GetObject")
"""BatchAPI listers, on the API's ``iam.s3_read`` grants only (as the API's own role:
``workload.iam_policy``); the gateway refuses s3_paths outside them with 400."""
WORKER_SQS_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                      "sqs:GetQueueAttributes")
"""On ``queue_arn_pattern`` (BatchAPI workers)."""
WORKER_DYNAMODB_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem",
                           "dynamodb:UpdateItem")
"""On the job table. TransactWriteItems is authorized as the PutItem / UpdateItem it contains."""


def gateway_iam_statements(kind: JobKind, *, table_arn: str, queue_arn: str) -> list[dict[str, Any]]:
    """The gateway role's statements without S3 (which comes from the API's ``iam.s3_read``)."""
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": list(GATEWAY_DYNAMODB_ACTIONS), "Resource": [table_arn]},
    ]
    if kind == "BatchAPI":
        statements.append({"Effect": "Allow", "Action": list(GATEWAY_SQS_ACTIONS), "Resource": [queue_arn]})
    return statements


def worker_iam_statements(*, table_arn: str, queue_arn: str) -> list[dict[str, Any]]:
    """What the BatchAPI worker sidecar adds to the API's pod role (TaskAPI pods: nothing)."""
    return [
        {"Effect": "Allow", "Action": list(WORKER_DYNAMODB_ACTIONS), "Resource": [table_arn]},
        {"Effect": "Allow", "Action": list(WORKER_SQS_ACTIONS), "Resource": [queue_arn]},
    ]


# --- Kubernetes: what the gateway may do in the job namespace -------------------------------------------

GATEWAY_RBAC_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "delete"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},  # OOMKilled reasons of a job's pods
)
"""The rules of the gateway's Role in ``job_namespace(api)`` (bound to its ServiceAccount in the API
namespace). Nothing cluster-wide, no watch, no update: a ConfigMap is garbage-collected with its Job
through an owner reference; Jobs are deleted with ``propagationPolicy: Background``."""
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


# --- settings ----------------------------------------------------------------------------------------



def _require(ok: bool, name: str, value: object, rule: str) -> None:
    if not ok:
        raise JobConfigError(f"{name}: {value!r} is not allowed ({rule})")








def _env_name(name: str) -> str:
    return _ENV_OVERRIDES.get(name, "CORTEX_" + name.upper())


# Standard AWS variables (boto3 reads them itself too), not CORTEX_*; two names made unambiguous.
_ENV_OVERRIDES = {"aws_region": "AWS_REGION", "aws_endpoint_url": "AWS_ENDPOINT_URL",
                  "namespace": "CORTEX_JOB_NAMESPACE", "table": "CORTEX_JOB_TABLE"}


def _from_env(cls: Any, env: Mapping[str, str], parsers: Mapping[str, Callable[[str], Any]]) -> Any:
    values: dict[str, Any] = {}
    for f in fields(cls):
        key = _env_name(f.name)
        raw = env.get(key)
        if raw is None or raw == "":
            continue
        try:
            values[f.name] = parsers.get(f.name, str)(raw)
        except ValueError as error:
            raise JobConfigError(f"Config '{key}' has value {raw!r}. {error}") from error
    missing = [_env_name(f.name) for f in fields(cls) if f.name in cls._REQUIRED and f.name not in values]
    if missing:
        raise JobConfigError(f"{', '.join(missing)} not set ({cls.__name__})")
    return cls(**values)


def _to_env(config: Any) -> dict[str, str]:
    env: dict[str, str] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if value is None:
            continue
        env[_env_name(f.name)] = json.dumps(list(value)) if isinstance(value, tuple) else str(value)
    return env


@dataclass(frozen=True)
class GatewayConfig:
    """The job gateway of one BatchAPI or TaskAPI (``python -m cortex_iac.jobs.gateway``).

    Attributes:
        kind: ``BatchAPI`` or ``TaskAPI`` (``CORTEX_KIND``). Required.
        api_name: the API (``CORTEX_API_NAME``). Required.
        cluster_name: the cluster, for queue names (``CORTEX_CLUSTER_NAME``). Required for BatchAPI.
        endpoint: ``networking.endpoint``; the gateway serves ``POST|GET|DELETE`` at it, with or
            without a trailing ``/`` (``CORTEX_ENDPOINT``). Required.
        namespace: where jobs are created, ``job_namespace(api)`` (``CORTEX_JOB_NAMESPACE``). Required.
        table: the DynamoDB job table's name (``CORTEX_JOB_TABLE``). Required.
        aws_region: ``AWS_REGION``. Required.
        aws_endpoint_url: ``AWS_ENDPOINT_URL`` (tests and ``cortex serve``: a moto server). Default unset.
        job_template: path of the job template (default ``JOB_TEMPLATE_DIR/JOB_TEMPLATE_KEY``).
        kube_api_url: the API server (default from ``KUBERNETES_SERVICE_HOST``/``_PORT`` in the pod;
            tests: the double).
        kube_token_file / kube_ca_file: the ServiceAccount's projected token (re-read on every call:
            the kubelet rotates it) and CA; empty strings send no token / use the system CAs.
        api_key_file: a file holding the key requests must carry as ``Authorization: Bearer``
            (a Secret mounted into the gateway). Default unset: no key, as Cortex.
        s3_read: the API's ``iam.s3_read`` URIs; lister paths outside them are refused (JSON list).
        host / port: listen address (default ``0.0.0.0`` / ``GATEWAY_PORT``).
        max_body_bytes: 413 above (default 10 MiB).
        retention_seconds: how long a job's record outlives its end (DynamoDB TTL; default 30 days).
        job_ttl_seconds: ``ttlSecondsAfterFinished`` of the Kubernetes Jobs (default 3600): their
            status is read and persisted before (on any GET), and the record survives them.
        visibility_timeout: the queues' VisibilityTimeout, seconds (default 30; workers renew it).
        enqueue_threads: concurrent SendMessageBatch calls while enqueuing (default 8).
        log_level: ``debug|info|warning|error`` (default ``info``).
    """

    _REQUIRED: ClassVar[tuple[str, ...]] = ("kind", "api_name", "endpoint", "namespace", "table", "aws_region")

    kind: JobKind = "BatchAPI"
    api_name: str = ""
    cluster_name: str = ""
    endpoint: str = ""
    namespace: str = ""
    table: str = ""
    aws_region: str = ""
    aws_endpoint_url: str | None = None
    job_template: str = f"{JOB_TEMPLATE_DIR}/{JOB_TEMPLATE_KEY}"
    kube_api_url: str = ""
    kube_token_file: str = f"{SERVICE_ACCOUNT_DIR}/token"
    kube_ca_file: str = f"{SERVICE_ACCOUNT_DIR}/ca.crt"
    api_key_file: str | None = None
    s3_read: tuple[str, ...] = ()
    host: str = "0.0.0.0"
    port: int = GATEWAY_PORT
    max_body_bytes: int = MAX_BODY_BYTES
    retention_seconds: int = 30 * 24 * 3600
    job_ttl_seconds: int = 3600
    visibility_timeout: int = 30
    enqueue_threads: int = 8
    log_level: str = "info"

    def __post_init__(self) -> None:
        _require(self.kind in JOB_KINDS, "kind", self.kind, "must be BatchAPI or TaskAPI")
        _require(self.endpoint.startswith("/") and not self.endpoint.startswith("/-/"), "endpoint",
                 self.endpoint, "must start with / and not with /-/")
        _require(self.kind != "BatchAPI" or bool(self.cluster_name), "cluster_name", self.cluster_name,
                 "required for BatchAPI (queue names)")
        _require(0 <= self.port <= 65535, "port", self.port, "must be 0..65535")
        _require(self.max_body_bytes >= 1, "max_body_bytes", self.max_body_bytes, "must be >= 1")
        _require(self.retention_seconds >= 1, "retention_seconds", self.retention_seconds, "must be >= 1")
        _require(self.job_ttl_seconds >= 0, "job_ttl_seconds", self.job_ttl_seconds, "must be >= 0")
        _require(0 <= self.visibility_timeout <= 43200, "visibility_timeout", self.visibility_timeout,
                 "must be 0..43200 seconds (SQS)")
        _require(self.enqueue_threads >= 1, "enqueue_threads", self.enqueue_threads, "must be >= 1")
        _require(self.log_level in LOG_LEVELS, "log_level", self.log_level, f"one of {', '.join(LOG_LEVELS)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewayConfig:
        """Read ``CORTEX_*`` / ``AWS_*``; ``kube_api_url`` falls back to the in-cluster service address."""
        config: GatewayConfig = _from_env(cls, env, _GATEWAY_PARSERS)
        if not config.kube_api_url and env.get("KUBERNETES_SERVICE_HOST"):
            host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
            host = f"[{host}]" if ":" in host else host
            config = dataclasses.replace(config, kube_api_url=f"https://{host}:{port}")
        return config

    def to_env(self) -> dict[str, str]:
        """The variables ``from_env`` turns back into this config."""
        return _to_env(self)


@dataclass(frozen=True)
class WorkerConfig:
    """The batch worker of one BatchAPI job pod (``python -m cortex_iac.jobs.worker``).

    Attributes:
        api_name: ``CORTEX_API_NAME``. Required.
        job_id: ``CORTEX_JOB_ID`` (per job). Required.
        sqs_url: the job's queue (``CORTEX_SQS_URL``, per job). Required.
        table: the job table (``CORTEX_JOB_TABLE``). Required.
        aws_region / aws_endpoint_url: ``AWS_REGION`` (required) / ``AWS_ENDPOINT_URL``.
        app_port: the user's container port, ``pod.port`` (``CORTEX_APP_PORT``, default 8080).
        max_receive_count: the dead-letter queue's ``max_receive_count``; 0 = no dead-letter queue
            (``CORTEX_MAX_RECEIVE_COUNT``, per job; default 0).
        visibility_timeout: seconds a received batch stays hidden (default 30, Cortex's).
        renew_interval: the visibility is extended this often while the app works (default 10).
        poll_wait: SQS long-poll seconds (default 10).
        empty_check_interval: with the queue empty but not every batch recorded, the worker looks
            again after this long before it concludes (default 10, Cortex's).
        app_wait_timeout: how long the app may be unreachable (at start or after a crash) before the
            worker gives up and the pod fails (default 600).
        retention_seconds: TTL of the batch records (default 30 days, as the gateway's).
        log_level: ``debug|info|warning|error`` (default ``info``).
    """

    _REQUIRED: ClassVar[tuple[str, ...]] = ("api_name", "job_id", "sqs_url", "table", "aws_region")

    api_name: str = ""
    job_id: str = ""
    sqs_url: str = ""
    table: str = ""
    aws_region: str = ""
    aws_endpoint_url: str | None = None
    app_port: int = 8080
    max_receive_count: int = 0
    visibility_timeout: int = 30
    renew_interval: float = 10.0
    poll_wait: int = 10
    empty_check_interval: float = 10.0
    app_wait_timeout: float = 600.0
    retention_seconds: int = 30 * 24 * 3600
    log_level: str = "info"

    def __post_init__(self) -> None:
        _require(0 < self.app_port <= 65535, "app_port", self.app_port, "must be 1..65535")
        _require(self.max_receive_count >= 0, "max_receive_count", self.max_receive_count, "must be >= 0")
        _require(1 <= self.visibility_timeout <= 43200, "visibility_timeout", self.visibility_timeout,
                 "must be 1..43200 seconds")
        _require(0 < self.renew_interval < self.visibility_timeout, "renew_interval", self.renew_interval,
                 "must be > 0 and below visibility_timeout")
        _require(0 <= self.poll_wait <= 20, "poll_wait", self.poll_wait, "must be 0..20 seconds (SQS)")
        _require(self.empty_check_interval >= 0, "empty_check_interval", self.empty_check_interval, "must be >= 0")
        _require(self.app_wait_timeout > 0, "app_wait_timeout", self.app_wait_timeout, "must be > 0")
        _require(self.log_level in LOG_LEVELS, "log_level", self.log_level, f"one of {', '.join(LOG_LEVELS)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerConfig:
        """Read ``CORTEX_*`` / ``AWS_*``; raises ``JobConfigError`` naming the variable."""
        config: WorkerConfig = _from_env(cls, env, _WORKER_PARSERS)
        return config

    def to_env(self) -> dict[str, str]:
        """The variables ``from_env`` turns back into this config."""
        return _to_env(self)


_GATEWAY_PARSERS: dict[str, Callable[[str], Any]] = {
    "s3_read": parse_string_list,
    "port": parse_int,
    "max_body_bytes": parse_int,
    "retention_seconds": parse_int,
    "job_ttl_seconds": parse_int,
    "visibility_timeout": parse_int,
    "enqueue_threads": parse_int,
    "log_level": str.lower,
}
_WORKER_PARSERS: dict[str, Callable[[str], Any]] = {
    "app_port": parse_int,
    "max_receive_count": parse_int,
    "visibility_timeout": parse_int,
    "renew_interval": parse_float,
    "poll_wait": parse_int,
    "empty_check_interval": parse_float,
    "app_wait_timeout": parse_float,
    "retention_seconds": parse_int,
    "log_level": str.lower,
}

__all__ = [
    "API_KEY_HEADER", "GATEWAY_COMMAND", "GATEWAY_DYNAMODB_ACTIONS", "GATEWAY_PORT", "GATEWAY_RBAC_RULES",
    "GATEWAY_RESOURCES", "GATEWAY_S3_ACTIONS", "GATEWAY_SQS_ACTIONS", "HEALTH_PATH", "JOB_ID_HEADER", "JOB_ID_LABEL",
    "JOB_ITEM_SORT_KEY", "JOB_KINDS", "JOB_SPEC_DIR", "JOB_SPEC_FILE", "JOB_SPEC_VOLUME", "JOB_TEMPLATE_DIR",
    "JOB_TEMPLATE_KEY", "MAX_BODY_BYTES", "ON_JOB_COMPLETE_PATH", "RUNTIME_RENDER_FUNCTIONS", "TABLE_PARTITION_KEY",
    "TABLE_SORT_KEY", "WORKER_COMMAND", "WORKER_CONTAINER_NAME", "WORKER_DYNAMODB_ACTIONS", "WORKER_JOB_ENV",
    "WORKER_RESOURCES", "WORKER_SQS_ACTIONS", "Attr", "GatewayConfig", "JobConfigError", "JobKind", "WorkerConfig", "batch_sort_key",
    "gateway_iam_statements", "job_namespace", "job_object_name", "job_template_config_map_name",
    "queue_arn_pattern", "queue_name", "queue_name_prefix", "worker_iam_statements",
]
