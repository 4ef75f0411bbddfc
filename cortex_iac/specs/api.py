"""API specs: the entries of Cortex v0.42's `cortex.yaml`, one model per kind.

Which kind takes which section follows Cortex's validations.go: RealtimeAPI and AsyncAPI have
`autoscaling` and `update_strategy`; BatchAPI and TaskAPI have neither (their workers are sized per
job); TrafficSplitter has only `apis` and `networking`. Our extensions: `pod.containers[].handler`,
`iam` and `alerts` (the thresholds of the API's Prometheus alerts, docs/observability.md).

Deviations from Cortex, on purpose:
- Names are RFC 1035 labels of at most 42 characters as in Cortex, but the `b-` prefix Cortex
  reserved for its SQS queue names is allowed (our queues are named differently).
- `update_strategy` values such as ``"5"`` are read as the integer 5, since Kubernetes rejects a
  number in a string where Cortex passed it through.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PlainValidator, PrivateAttr, WithJsonSchema, model_validator

from cortex_iac.queue import contract as queue_contract
from cortex_iac.specs.base import NodeGroupName, SpecModel, dns_label, rule, written
from cortex_iac.specs.duration import DURATION_SCHEMA, duration_rule
from cortex_iac.specs.pod import PodSpec
from cortex_iac.specs.problems import MISSING, Phrase, Problems, rule_error
from cortex_iac.specs.quantity import Quantity

API_KINDS = ("RealtimeAPI", "AsyncAPI", "BatchAPI", "TaskAPI", "TrafficSplitter")

ApiName = Annotated[str, dns_label(42, letter_first=True)]

# Cortex's autoscaler ticks every 10 s, so windows are whole ticks.
AutoscalingWindow = Annotated[int, duration_rule(multiple_of=10, minimum=10), DURATION_SCHEMA]
# The Kubernetes autoscaler (HPA) accepts stabilization windows of at most one hour.
MAX_STABILIZATION_SECONDS = 3600
StabilizationPeriod = Annotated[int, duration_rule(
    maximum=MAX_STABILIZATION_SECONDS, why="the Kubernetes autoscaler accepts stabilization windows of at most 1h"
), DURATION_SCHEMA]

_ENDPOINT = re.compile(r"[a-zA-Z0-9_\-./]*")
_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?")


class AutoscalingSpec(SpecModel):
    """Cortex's autoscaling parameters (RealtimeAPI and AsyncAPI): replica bounds, the in-flight
    target, and the step limits, stabilization periods and tolerances of its algorithm. Durations are
    held as seconds; ``target_in_flight`` defaults to the pod's max_concurrency, filled in by the API
    model."""

    min_replicas: int = Field(1, ge=0)
    """Fewest replicas kept; 0 lets the API scale to zero when idle (requests are held while a replica
    starts). Default 1, >= 0, <= max_replicas."""
    max_replicas: int = Field(100, ge=1)
    """Most replicas the autoscaler runs. Default 100, >= 1."""
    init_replicas: int = Field(None, ge=0)  # type: ignore[assignment]  # filled in below
    """Replicas when the API is first deployed. Default: min_replicas; from min_replicas to max_replicas."""
    target_in_flight: float = Field(None, gt=0)  # type: ignore[assignment]  # filled in by the API
    """In-flight requests (processing plus queued) per replica the autoscaler aims for. Default:
    pod.max_concurrency; > 0; for RealtimeAPI at most max_concurrency + max_queue_length; for AsyncAPI a
    whole number of messages (visible plus in flight in its queue)."""
    window: AutoscalingWindow = 60
    """How long in-flight requests are averaged over before each decision: a duration (e.g. 60s or 1m; an
    int is seconds), a multiple of 10s. Default 60s. AsyncAPI: accepted, no effect (KEDA reads the queue's
    current depth; the stabilization periods smooth it)."""
    downscale_stabilization_period: StabilizationPeriod = 300
    """Scale down only to the highest recommendation of this trailing period: a duration, at most 1h (the
    Kubernetes autoscaler's limit). Default 300s (5m)."""
    upscale_stabilization_period: StabilizationPeriod = 60
    """Scale up only to the lowest recommendation of this trailing period: a duration, at most 1h (the
    Kubernetes autoscaler's limit). Default 60s (1m)."""
    max_downscale_factor: float = Field(0.75, ge=0, lt=1)
    """Lowest fraction of the current replicas one scale-down step may go to. Default 0.75, in [0, 1)."""
    max_upscale_factor: float = Field(1.5, gt=1)
    """Highest multiple of the current replicas one scale-up step may go to. Default 1.5, > 1."""
    downscale_tolerance: float = Field(0.05, ge=0, lt=1)
    """No scale-down while the recommendation is less than this fraction below the current replicas.
    Default 0.05, in [0, 1)."""
    upscale_tolerance: float = Field(0.05, ge=0)
    """No scale-up while the recommendation is less than this fraction above the current replicas.
    Default 0.05, >= 0."""

    @model_validator(mode="after")
    def _replicas(self) -> AutoscalingSpec:
        if self.init_replicas is None:
            self.init_replicas = self.min_replicas
        problems = Problems()
        if self.min_replicas > self.max_replicas:
            problems.add(("min_replicas",), self.min_replicas, f"must be <= max_replicas ({self.max_replicas})")
        elif not self.min_replicas <= self.init_replicas <= self.max_replicas:
            problems.add(
                ("init_replicas",),
                self.init_replicas,
                f"must be between min_replicas ({self.min_replicas}) and max_replicas ({self.max_replicas})",
            )
        problems.check()
        return self


def _surge(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        if value.endswith("%") and value[:-1].isdigit() and int(value[:-1]) <= 100:
            return value
    raise rule_error(value, "must be a whole number >= 0 or a percentage from 0% to 100%, e.g. 1 or 25%")


Surge = Annotated[int | str, PlainValidator(_surge), WithJsonSchema({"type": ["integer", "string"]})]


class UpdateStrategySpec(SpecModel):
    """Rolling-update limits: ``max_surge`` and ``max_unavailable``, each a replica count or a
    percentage string; not both zero."""

    max_surge: Surge = "25%"
    """Replicas a rolling update may add above the desired count: a whole number or a percentage 0% to 100%
    ("5" is read as 5). Default 25%; not 0 together with max_unavailable."""
    max_unavailable: Surge = "25%"
    """Replicas that may be unavailable during a rolling update: a whole number or a percentage 0% to 100%.
    Default 25%; not 0 together with max_surge."""

    @model_validator(mode="after")
    def _not_both_zero(self) -> UpdateStrategySpec:
        if _is_zero(self.max_surge) and _is_zero(self.max_unavailable):
            raise rule_error(self.max_unavailable, "max_surge and max_unavailable cannot both be 0", "max_unavailable")
        return self


def _is_zero(value: int | str) -> bool:
    return value in (0, "0%")


def _canonical_endpoint(endpoint: str) -> str:
    return "/" + endpoint.strip("/")


Endpoint = Annotated[
    str,
    rule(
        lambda e: len(e) <= 1000 and _ENDPOINT.fullmatch(e) is not None and "//" not in e and e.strip("/") != "",
        "must be a non-empty URL path of letters, digits and _ - . / without '//', at most 1000 characters",
    ),
]


class NetworkingSpec(SpecModel):
    """Where the API is served: ``endpoint``, a path prefix on the shared load balancer (its default
    ``/<api name>`` is filled in by the API model)."""

    endpoint: Endpoint = Field(None)  # type: ignore[assignment]  # filled in by the API
    """URL path prefix of the API on the shared load balancer, unique in the cluster; stored with one leading
    and no trailing /. Default /<name>; letters, digits, _ - . / (at most 1000)."""

    @model_validator(mode="after")
    def _canonical(self) -> NetworkingSpec:
        if self.endpoint is not None:
            self.endpoint = _canonical_endpoint(self.endpoint)
        return self


S3Uri = Annotated[
    str, rule(lambda uri: _S3_URI.fullmatch(uri) is not None, "must be an S3 URI such as s3://bucket/prefix/")
]


class IamSpec(SpecModel):
    """Our extension: AWS access the API's pods get, least privilege (``s3_read``, ``s3_write``)."""

    s3_read: list[S3Uri] = Field(default_factory=list)
    """cortex_iac extension: S3 URIs (s3://bucket or s3://bucket/prefix/) the API's pods may read, through the
    API's own IAM role. Default [] (no S3 access)."""
    s3_write: list[S3Uri] = Field(default_factory=list)
    """cortex_iac extension: S3 URIs (s3://bucket or s3://bucket/prefix/) the API's pods may write objects to
    (s3:PutObject; no delete, no listing), e.g. a trainer's model or a batch job's results. Default []."""


class AlertsSpec(SpecModel):
    """Our extension: the thresholds of the API's Prometheus alerts (docs/observability.md). The
    rules themselves are rendered from these and the API's own bounds (min/max replicas,
    ``pod.request_timeout``) by :mod:`cortex_iac.render.observability.rules`."""

    enabled: bool = True
    """cortex_iac extension: whether the API gets alerting rules at all. Default true."""
    error_ratio: float = Field(0.05, gt=0, le=1)
    """cortex_iac extension: alert when more than this fraction of the API's requests got a 5xx from the app
    (queue-full 503s excluded) over 5m, for 5m. Default 0.05, in (0, 1]."""
    latency_fraction: float = Field(0.8, gt=0, le=1)
    """cortex_iac extension: alert when the API's p99 latency (queueing included) is above pod.request_timeout
    times this, for 10m. Default 0.8, in (0, 1]."""
    queue_full_ratio: float = Field(0.01, gt=0, le=1)
    """cortex_iac extension: alert when more than this fraction of the API's requests were refused 503 because
    every slot and queue place was taken, over 5m, for 10m. Default 0.01, in (0, 1]."""


class _ApiBase(SpecModel):
    name: ApiName
    """Name of the API, unique in the deployment: at most 42 characters of a-z, 0-9 and '-', starting with a
    letter (RFC 1035). Required."""
    kind: str
    """Kind of the API: RealtimeAPI, AsyncAPI, BatchAPI, TaskAPI or TrafficSplitter. Required (it picks the
    model)."""
    networking: NetworkingSpec = Field(default_factory=NetworkingSpec)
    """Where the API is served on the shared load balancer. Every key is optional."""

    # Not YAML keys: where the loader found the spec (file or stack key, and index in its list),
    # so that checks across files name it the way its own problems are named.
    _origin: str = PrivateAttr(default="<data>")
    _index: int = PrivateAttr(default=0)

    def __eq__(self, other: object) -> bool:
        # Two specs are equal when their fields are, wherever they were loaded from.
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    @property
    def where(self) -> str:
        """``<origin>: apis[<index>]``: how messages name this spec."""
        return f"{self._origin}: apis[{self._index}]"

    @model_validator(mode="after")
    def _default_endpoint(self) -> _ApiBase:
        if self.networking.endpoint is None:
            self.networking.endpoint = "/" + self.name
        return self


class WorkloadSpec(_ApiBase):
    """The sections of every kind that runs pods (all but TrafficSplitter): ``pod``, ``node_groups``,
    ``iam``; the class variables say what the kind supports."""

    _KIND_HAS_PORT: ClassVar[bool] = True
    _MAX_CONCURRENCY: ClassVar[int | None] = None  # None: the kind takes no max_concurrency
    _KIND_HAS_QUEUE: ClassVar[bool] = False
    _KIND_HAS_REQUEST_TIMEOUT: ClassVar[bool] = False  # only RealtimeAPI has the Envoy sidecar enforcing it
    _READINESS: ClassVar[Literal["any", "no-exec", "none"]] = "no-exec"
    _KIND_HAS_PRE_STOP: ClassVar[bool] = False
    _NEEDS_COMMAND: ClassVar[bool] = False
    _KIND_HAS_HANDLER: ClassVar[bool] = True

    pod: PodSpec
    """The pod each replica (or worker) of the API runs: its port, request limits and containers. Required."""
    node_groups: Annotated[list[NodeGroupName], Field(min_length=1)] | None = None
    """Names of the cluster's node groups the pods may run on (at least one when given). Default none: any
    node group the pod fits."""
    iam: IamSpec = Field(default_factory=IamSpec)
    """cortex_iac extension: the AWS access the API's pods get (least privilege). Default: none beyond the
    cluster's iam_policy_arns."""

    @model_validator(mode="after")
    def _kind_support(self) -> WorkloadSpec:
        problems = Problems()
        kind, pod, given = self.kind, self.pod, self.pod.model_fields_set
        if "port" in given and not self._KIND_HAS_PORT:
            problems.add(("pod", "port"), pod.port, f"not supported by {kind}: a task serves no requests")
        if self._MAX_CONCURRENCY is None:
            if "max_concurrency" in given:
                problems.add(("pod", "max_concurrency"), pod.max_concurrency, f"not supported by {kind}")
        elif pod.max_concurrency > self._MAX_CONCURRENCY:
            limit = f"must be <= {self._MAX_CONCURRENCY} for {kind}"
            problems.add(("pod", "max_concurrency"), pod.max_concurrency, limit)
        if "max_queue_length" in given and not self._KIND_HAS_QUEUE:
            problems.add(("pod", "max_queue_length"), pod.max_queue_length, f"not supported by {kind}")
        if "request_timeout" in given and not self._KIND_HAS_REQUEST_TIMEOUT:
            problems.add(("pod", "request_timeout"), pod.request_timeout, f"not supported by {kind}")
        for index, container in enumerate(pod.containers):
            at = ("pod", "containers", index)
            probe = container.readiness_probe
            if probe is not None and self._READINESS == "none":
                problems.add((*at, "readiness_probe"), written(probe), f"not supported by {kind}")
            elif probe is not None and probe.exec is not None and self._READINESS == "no-exec":
                use = "use http_get or tcp_socket"
                problems.add((*at, "readiness_probe", "exec"), written(probe.exec), f"not supported by {kind}: {use}")
            if container.pre_stop is not None and not self._KIND_HAS_PRE_STOP:
                problems.add((*at, "pre_stop"), written(container.pre_stop), f"not supported by {kind}")
            elif container.pre_stop is not None and container.pre_stop.http_get is not None:
                problems.add(
                    (*at, "pre_stop", "http_get"),
                    written(container.pre_stop.http_get),
                    "not supported: the container must keep serving while the pod drains, and Kubernetes sends an "
                    "HTTP hook at once; use pre_stop.exec, which runs after the drain",
                )
            if container.handler is not None and container.pre_stop is not None and kind == "RealtimeAPI":
                problems.add((*at, "pre_stop"), written(container.pre_stop),
                             "not supported on a RealtimeAPI's handler container: the serving runtime drains "
                             "itself on SIGTERM (readiness fails, the load balancer deregisters the pod, accepted "
                             "requests finish), and a hook run first would push that drain past the grace period")
            if container.handler is not None and not self._KIND_HAS_HANDLER:
                problems.add((*at, "handler"), written(container.handler),
                             f"not supported by {kind}: a handler serves requests and never exits, so the task would "
                             "not end; give an image and the command that runs the task")
            if self._NEEDS_COMMAND and container.image is not None and container.command is None:
                problems.add((*at, "command"), MISSING, f"{kind} containers with an image need a command")
        problems.check()
        return self


class _ScalingBase(WorkloadSpec):
    _TARGET_WITHIN_QUEUE: ClassVar[bool] = False

    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    """How the replica count follows the in-flight requests, Cortex's algorithm. Every key is optional."""
    update_strategy: UpdateStrategySpec = Field(default_factory=UpdateStrategySpec)
    """How a rolling update replaces the replicas. Every key is optional."""
    alerts: AlertsSpec = Field(default_factory=AlertsSpec)
    """cortex_iac extension: thresholds of the API's alerting rules. Every key is optional."""

    @model_validator(mode="after")
    def _target_in_flight(self) -> _ScalingBase:
        autoscaling, pod = self.autoscaling, self.pod
        if autoscaling.target_in_flight is None:
            autoscaling.target_in_flight = float(pod.max_concurrency)
        limit = pod.max_concurrency + pod.max_queue_length
        if self._TARGET_WITHIN_QUEUE and autoscaling.target_in_flight > limit:
            sum_text = f"{pod.max_concurrency} + {pod.max_queue_length} = {limit}"
            requirement = f"must be <= max_concurrency + max_queue_length ({sum_text})"
            raise rule_error(autoscaling.target_in_flight, requirement, "autoscaling", "target_in_flight")
        return self


class RealtimeApiSpec(_ScalingBase):
    """A synchronous HTTP API (kind RealtimeAPI): ``name``, ``pod``, ``autoscaling``,
    ``update_strategy``, ``node_groups``, ``networking``, ``iam``. ``pod.max_concurrency`` <= 30000;
    ``autoscaling.target_in_flight`` <= max_concurrency + max_queue_length; ``pod.request_timeout``
    is taken by this kind only."""

    _MAX_CONCURRENCY: ClassVar[int | None] = 30000
    _KIND_HAS_QUEUE: ClassVar[bool] = True
    _KIND_HAS_REQUEST_TIMEOUT: ClassVar[bool] = True
    _READINESS: ClassVar[Literal["any", "no-exec", "none"]] = "any"
    _KIND_HAS_PRE_STOP: ClassVar[bool] = True
    _TARGET_WITHIN_QUEUE: ClassVar[bool] = True

    kind: Literal["RealtimeAPI"] = "RealtimeAPI"
    """Kind of the API: RealtimeAPI, AsyncAPI, BatchAPI, TaskAPI or TrafficSplitter. Required (it picks the
    model)."""


# SQS keeps a received message invisible for at most 12 h in all (ChangeMessageVisibility counts from
# the first receive), so a request must be answered well within that: 11 h leaves the worker an hour
# to record the outcome before the message could be delivered again.
MAX_ASYNC_REQUEST_TIMEOUT_SECONDS = 11 * 3600
DEFAULT_ASYNC_REQUEST_TIMEOUT_SECONDS = int(queue_contract.DEFAULT_REQUEST_TIMEOUT_SECONDS)
# SQS's own bounds of a redrive policy's maxReceiveCount.
MAX_ATTEMPTS_LIMIT = 1000
MAX_RETENTION_DAYS = 3650
DEFAULT_MAX_PAYLOAD_SIZE = Quantity(Decimal(queue_contract.DEFAULT_MAX_BODY_BYTES), "BinarySI")
# S3's largest object (a multipart upload); one payload is one object.
MAX_PAYLOAD_SIZE_LIMIT = Quantity.parse("5Ti")
AsyncRequestTimeout = Annotated[int, duration_rule(
    minimum=1, maximum=MAX_ASYNC_REQUEST_TIMEOUT_SECONDS,
    why="SQS keeps a message invisible at most 12h after it is received",
), DURATION_SCHEMA]
_S3_BUCKET_URI = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/([a-zA-Z0-9!_.*'()\-]+/)*)?")


class AsyncQueueSpec(SpecModel):
    """cortex_iac extension (AsyncAPI): the API's queue and payload/result store. Cortex fixed all of
    this (no attempt cap, 7 days, no size limit, the cluster's bucket)."""

    max_attempts: int = Field(queue_contract.DEFAULT_MAX_ATTEMPTS, ge=1, le=MAX_ATTEMPTS_LIMIT)
    """cortex_iac extension: deliveries of a request to workers before it is moved to the dead-letter queue
    and answered `failed` ("worker lost after N attempts"); the queue's redrive maxReceiveCount. Default 3,
    1 to 1000."""
    request_timeout: AsyncRequestTimeout = DEFAULT_ASYNC_REQUEST_TIMEOUT_SECONDS
    """cortex_iac extension: how long the worker waits for the container's answer to one request before the
    request is `failed` (timed out): a duration, 1s to 11h (SQS holds a message at most 12h). Default 1h."""
    max_payload_size: Annotated[Quantity, rule(
        lambda q: 1 <= q.value <= MAX_PAYLOAD_SIZE_LIMIT.value and q.value == q.value.to_integral(),
        "must be a whole number of bytes from 1 to 5Ti (S3's largest object), e.g. 100Mi",
    )] = DEFAULT_MAX_PAYLOAD_SIZE
    """cortex_iac extension: largest request body the gateway accepts; a larger one is answered 413 before
    anything is stored. A quantity in bytes such as 100Mi or 2Gi. Default 100Mi, at most 5Ti."""
    retention_days: int = Field(queue_contract.DEFAULT_RESULT_RETENTION_DAYS, ge=1, le=MAX_RETENTION_DAYS)
    """cortex_iac extension: days a request's payload, status and result are kept (and its result
    queryable), an S3 lifecycle expiration of the API's prefix. Default 7 (Cortex's), 1 to 3650."""
    bucket: Annotated[str | None, rule(
        lambda uri: uri is None or _S3_BUCKET_URI.fullmatch(uri) is not None,
        "must be an S3 URI of a bucket and an optional prefix ending in /, e.g. s3://my-bucket/cortex/",
    )] = None
    """cortex_iac extension: an existing bucket (and prefix) to keep payloads and results in, as
    s3://bucket/prefix/; the API's keys go below <prefix><api name>/. Its owner keeps its lifecycle, encryption
    and policy. Default none: the API gets its own bucket (public access blocked, encrypted, TLS only,
    expiring after retention_days)."""


class AsyncApiSpec(_ScalingBase):
    """A queue-backed API (kind AsyncAPI): as RealtimeAPI, but ``pod.max_concurrency`` <= 100, no
    ``pod.max_queue_length`` and no exec readiness probes; ``queue`` is ours."""

    _MAX_CONCURRENCY: ClassVar[int | None] = 100
    _KIND_HAS_PRE_STOP: ClassVar[bool] = True

    kind: Literal["AsyncAPI"] = "AsyncAPI"
    """Kind of the API: RealtimeAPI, AsyncAPI, BatchAPI, TaskAPI or TrafficSplitter. Required (it picks the
    model)."""
    queue: AsyncQueueSpec = Field(default_factory=AsyncQueueSpec)
    """cortex_iac extension: the API's queue and payload/result store. Every key is optional."""

    @model_validator(mode="after")
    def _whole_target(self) -> AsyncApiSpec:
        target = self.autoscaling.target_in_flight
        if target != int(target):
            raise rule_error(target, "must be a whole number for AsyncAPI (KEDA's SQS scaler counts messages per "
                             "replica)", "autoscaling", "target_in_flight")
        return self


# A finished job's record is kept at least an hour (a client polling for the result must find it)
# and at most a year; whole hours, since DynamoDB's TTL deletes expired items only within days anyway.
DEFAULT_JOB_RETENTION_SECONDS = 30 * 24 * 3600
JobRetention = Annotated[int, duration_rule(
    multiple_of=3600, minimum=3600, maximum=366 * 24 * 3600,
    why="a finished job's record is kept whole hours, from 1h to 8784h (a year)",
), DURATION_SCHEMA]


SecretName = Annotated[str, dns_label(63, letter_first=False)]


class JobsSpec(SpecModel):
    """cortex_iac extension (BatchAPI and TaskAPI): how long the API's job records are kept, and
    whether the job endpoints require an API key."""

    retention: JobRetention = DEFAULT_JOB_RETENTION_SECONDS
    """cortex_iac extension: how long a finished job's status and metrics stay in the API's job table (GET
    ?jobID= reads them) after the job ends: whole hours, 1h to 8784h. Default 720h (30 days); the table's
    TTL then deletes the record."""
    api_key_secret: SecretName | None = None
    """cortex_iac extension: name of a Kubernetes Secret in the API namespace whose key ``api-key`` holds the key
    every job request (submit, status, stop) must carry as ``Authorization: Bearer <key>``; one Secret can
    serve every API of the cluster. Default none: no key, as Cortex (anyone who reaches the endpoint may
    submit). The gateway does not start until the Secret exists."""


# The job gateway answers its health checks under /-/ (cortex_iac.jobs.contract.HEALTH_PATH), outside
# every endpoint it serves.
_RESERVED_ENDPOINT_PREFIX = "/-/"


class _JobApiBase(WorkloadSpec):
    _NEEDS_COMMAND: ClassVar[bool] = True

    jobs: JobsSpec = Field(default_factory=JobsSpec)
    """cortex_iac extension: how the API's job records are kept. Every key is optional."""

    @model_validator(mode="after")
    def _job_rules(self) -> _JobApiBase:
        problems = Problems()
        endpoint = self.networking.endpoint
        if endpoint == "/-" or endpoint.startswith(_RESERVED_ENDPOINT_PREFIX):
            problems.add(("networking", "endpoint"), endpoint,
                         f"must not start with {_RESERVED_ENDPOINT_PREFIX} (the job gateway's health checks)")
        problems.check()
        return self


class BatchApiSpec(_JobApiBase):
    """A batch-job API (kind BatchAPI): ``name``, ``pod`` (containers need a command; no
    max_concurrency, max_queue_length, pre_stop, exec readiness probes), ``node_groups``,
    ``networking``, ``iam``, ``jobs`` (our extension)."""

    kind: Literal["BatchAPI"] = "BatchAPI"
    """Kind of the API: RealtimeAPI, AsyncAPI, BatchAPI, TaskAPI or TrafficSplitter. Required (it picks the
    model)."""


class TaskApiSpec(_JobApiBase):
    """A run-to-completion task API (kind TaskAPI): as BatchAPI, but the pod has no port, and the
    containers no readiness probe and no handler."""

    _KIND_HAS_PORT: ClassVar[bool] = False
    _READINESS: ClassVar[Literal["any", "no-exec", "none"]] = "none"
    _KIND_HAS_HANDLER: ClassVar[bool] = False

    kind: Literal["TaskAPI"] = "TaskAPI"
    """Kind of the API: RealtimeAPI, AsyncAPI, BatchAPI, TaskAPI or TrafficSplitter. Required (it picks the
    model)."""


class TrafficSplitTarget(SpecModel):
    """One RealtimeAPI behind a traffic splitter: its ``name``, ``weight`` and whether it is the
    ``shadow`` (a fire-and-forget copy of the traffic)."""

    name: ApiName
    """Name of a RealtimeAPI of the same deployment. Required."""
    weight: int = Field(ge=0, le=100)
    """Percentage of the splitter's requests routed to this API, 0 to 100. Required."""
    shadow: bool = False
    """True: the API gets a fire-and-forget copy of the traffic, its answers dropped and its weight left out
    of the sum. Default false."""


class SplitterNetworkingSpec(NetworkingSpec):
    """Where a TrafficSplitter is served: ``endpoint`` as for every kind, and ``match`` (our extension:
    ``exact``, the default, or ``prefix``)."""

    match: Literal["exact", "prefix"] = "exact"
    """cortex_iac extension: which request paths the endpoint routes. exact (default, as Cortex): only the
    endpoint itself, which the APIs receive as /; prefix: the endpoint and every path below it (/<endpoint>/x
    reaches the APIs as /x), as for a RealtimeAPI."""


class TrafficSplitterSpec(_ApiBase):
    """Weighted routing across RealtimeAPIs (kind TrafficSplitter): ``name``, ``apis`` (at least one,
    unique names, non-shadow weights summing to 100, at most one shadow), ``networking``."""

    kind: Literal["TrafficSplitter"] = "TrafficSplitter"
    """Kind of the API: RealtimeAPI, AsyncAPI, BatchAPI, TaskAPI or TrafficSplitter. Required (it picks the
    model)."""
    apis: Annotated[list[TrafficSplitTarget], Field(min_length=1)]
    """RealtimeAPIs of the same deployment sharing the traffic: at least one, unique names, non-shadow weights
    summing to 100, at most one shadow. Required."""
    networking: SplitterNetworkingSpec = Field(default_factory=SplitterNetworkingSpec)
    """Where the API is served on the shared load balancer. Every key is optional."""

    @model_validator(mode="after")
    def _weights(self) -> TrafficSplitterSpec:
        problems = Problems()
        seen: dict[str, int] = {}
        shadow: int | None = None
        for index, target in enumerate(self.apis):
            if target.name in seen:
                unique = f"must be unique in the splitter; apis[{seen[target.name]}] has it"
                problems.add(("apis", index, "name"), target.name, unique)
            seen.setdefault(target.name, index)
            if target.shadow:
                if shadow is not None:
                    one = f"at most one shadow API per splitter; its apis[{shadow}] is already the shadow"
                    problems.add(("apis", index, "shadow"), True, one)
                shadow = index if shadow is None else shadow
        weights = [target.weight for target in self.apis if not target.shadow]
        if sum(weights) != 100:
            shown = " + ".join(map(str, weights)) + f" = {sum(weights)}" if len(weights) > 1 else str(sum(weights))
            problems.add(("apis",), Phrase(f"non-shadow weights {shown}"), "the non-shadow weights must sum to 100")
        problems.check()
        return self


ApiSpec = Annotated[
    RealtimeApiSpec | AsyncApiSpec | BatchApiSpec | TaskApiSpec | TrafficSplitterSpec,
    Field(discriminator="kind"),
]
"""Any API spec; pydantic picks the model by ``kind``."""

API_SPEC_MODELS: dict[str, type[_ApiBase]] = {
    "RealtimeAPI": RealtimeApiSpec,
    "AsyncAPI": AsyncApiSpec,
    "BatchAPI": BatchApiSpec,
    "TaskAPI": TaskApiSpec,
    "TrafficSplitter": TrafficSplitterSpec,
}
