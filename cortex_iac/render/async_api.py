"""A Cortex AsyncAPI as Kubernetes objects and IAM documents (pure; plain dicts).

:func:`api_objects` gives every object of one API:

- the **worker** Deployment ``<api>``: the user's containers (image or ``handler:``, from the workload
  layer) plus the queue worker sidecar ``dequeuer`` (Cortex's name for it), which long-polls the API's
  SQS queue, POSTs each payload to the user container and records the outcome
  (``cortex_iac/queue/contract.py``). Pods are ready when the worker's ``/healthz`` is (the user
  container ready too), get ``terminationGracePeriodSeconds`` 60 as in Cortex, and the user
  containers keep running (a preStop sleep) while the worker finishes or releases what it holds.
- the **gateway** Deployment/Service/PodDisruptionBudget ``<api>-gateway`` (our code, from the
  runtime image; one per API so its role can only touch that API's queue and prefix), and the
  Ingress routing ``networking.endpoint`` on the shared ALB to it (``render/routing.py``).
- the KEDA ``ScaledObject`` ``<api>`` with two ``aws-sqs-queue`` triggers: the queue (``queueLength``
  = ``target_in_flight``, ``scaleOnInFlight``: Cortex's visible + in-flight metric) and the
  dead-letter queue (a replica must run to record a dead request ``failed``, also at zero), with the
  RealtimeAPI's HPA behaviour (``render/autoscaling.py``); and the ``TriggerAuthentication``
  ``<api>-queue-scaler`` (``podIdentity`` ``aws`` with the API's scaler role, which KEDA assumes).
- ServiceAccounts ``<api>`` (worker pods) and ``<api>-gateway``, each given its own role by the
  component through EKS Pod Identity; the IAM documents of those roles, of the scaler role, and the
  resource policies of the queues and the bucket are :func:`worker_policy`, :func:`gateway_policy`,
  :func:`scaler_policy`, :func:`scaler_trust_policy`, :func:`queue_policy`, :func:`bucket_policy`.

Values known only once AWS made them (queue URLs, the bucket's name, the scaler role's ARN) come in
:class:`AsyncResources`; ``cortex render`` fills in the :data:`PLACEHOLDERS`, the component the real
ones. The API namespace's NetworkPolicy admits what these pods need already: the gateway listens on
8888 (the sidecars' traffic port, open to the load balancer), the worker's admin port is 15000
(metrics, Prometheus only); the user container's port is reached by the worker over loopback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cortex_iac.queue import contract
from cortex_iac.render import autoscaling, routing, workload
from cortex_iac.render.iam import partition_of, policy_document
from cortex_iac.render.workload import (
    API_NAMESPACE,
    RUNTIME_READINESS_PATH,
    RUNTIME_UID,
    TMP_VOLUME,
    HandlerContainer,
)
from cortex_iac.specs.kinds import GATEWAY_RESOURCES, QUEUE_WORKER_SIDECAR

if TYPE_CHECKING:
    from cortex_iac.specs import AsyncApiSpec, ClusterSpec, NodeGroupSpec

__all__ = [
    "COMPONENT", "GATEWAY_COMPONENT", "GATEWAY_REPLICAS", "PLACEHOLDERS", "TERMINATION_GRACE_PERIOD_SECONDS",
    "WORKER_CONTAINER", "AsyncContext", "AsyncObjects", "AsyncResources", "api_objects", "bucket_policy",
    "gateway_name", "gateway_policy", "key_prefix", "queue_policy", "render_api", "scaler_policy",
    "scaler_trust_policy", "worker_policy",
]

COMPONENT = "async-api"
GATEWAY_COMPONENT = "async-gateway"
# Cortex's name for the queue worker sidecar (already a reserved container name in the specs).
WORKER_CONTAINER = "dequeuer"
GATEWAY_CONTAINER = "gateway"
WORKER_ADMIN_PORT_NAME = "admin"
GATEWAY_PORT_NAME = "http"
# Cortex's AsyncAPI pods: terminationGracePeriodSeconds 60. The worker gets all but a margin of it to
# finish what it holds (then it releases the rest); the user containers keep serving that long.
TERMINATION_GRACE_PERIOD_SECONDS = int(contract.DEFAULT_GRACE_PERIOD_SECONDS)
WORKER_GRACE_SECONDS = TERMINATION_GRACE_PERIOD_SECONDS - contract.GRACE_PERIOD_MARGIN_SECONDS
# The gateway: two replicas (one may be rolled or evicted while the other answers), kept off the same
# node. Its drain: the ALB stops sending within the deregistration wait, then it finishes accepted
# uploads within its grace period.
GATEWAY_REPLICAS = 2
GATEWAY_DEREGISTRATION_SECONDS = 15
GATEWAY_GRACE_SECONDS = 30
GATEWAY_TERMINATION_GRACE_SECONDS = GATEWAY_DEREGISTRATION_SECONDS + GATEWAY_GRACE_SECONDS + 5
QUEUE_TRIGGER = "queue"
DEAD_LETTER_TRIGGER = "dead-letter-queue"
# Dead-letter messages per replica: recording one is a few S3 writes, so one replica takes many; the
# trigger's job is to keep (or bring up) a replica while any is there.
DEAD_LETTER_MESSAGES_PER_REPLICA = 100

PLACEHOLDERS = {
    "queue_url": "${queue_url}",
    "dead_letter_queue_url": "${dead_letter_queue_url}",
    "bucket": "${bucket}",
    "scaler_role_arn": "${scaler_role_arn}",
}
"""What ``cortex render`` writes where a value is only known once AWS has made the resource."""


@dataclass(frozen=True)
class AsyncResources:
    """The AWS side of one AsyncAPI as its objects name it: the queue and dead-letter queue URLs,
    the bucket's name and the KEDA scaler role's ARN (default: :data:`PLACEHOLDERS`), and the
    region (default ``us-east-1``)."""

    queue_url: str = PLACEHOLDERS["queue_url"]
    dead_letter_queue_url: str = PLACEHOLDERS["dead_letter_queue_url"]
    bucket: str = PLACEHOLDERS["bucket"]
    scaler_role_arn: str = PLACEHOLDERS["scaler_role_arn"]
    region: str = "us-east-1"


@dataclass(frozen=True)
class AsyncContext:
    """What an AsyncAPI's objects depend on besides its spec: the cluster's node groups (None:
    unknown), whether the load balancer has TLS, the namespace, the runtime image (the gateway and the
    worker run it, and handler containers too; required) and the AWS side."""

    runtime_image: str
    resources: AsyncResources = AsyncResources()
    node_groups: tuple[NodeGroupSpec, ...] | None = None
    https: bool = False
    namespace: str = API_NAMESPACE

    @classmethod
    def of_cluster(cls, cluster: ClusterSpec | None, runtime_image: str) -> AsyncContext:
        """The context of an AsyncAPI rendered without Pulumi (placeholders for the AWS values)."""
        if cluster is None:
            return cls(runtime_image=runtime_image)
        return cls(runtime_image=runtime_image, resources=AsyncResources(region=cluster.region),
                   node_groups=tuple(cluster.node_groups), https=bool(cluster.ssl_certificate_arn))


@dataclass(frozen=True)
class AsyncObjects:
    """Every Kubernetes object of one AsyncAPI, by role (``handler_source`` only with a handler)."""

    service_account: dict[str, Any]
    gateway_service_account: dict[str, Any]
    deployment: dict[str, Any]
    pod_disruption_budget: dict[str, Any]
    gateway_deployment: dict[str, Any]
    gateway_service: dict[str, Any]
    gateway_pod_disruption_budget: dict[str, Any]
    trigger_authentication: dict[str, Any]
    scaled_object: dict[str, Any]
    ingress: dict[str, Any]
    handler_source: dict[str, Any] | None = None

    def all(self) -> list[dict[str, Any]]:
        """The objects in apply order (what a pod needs first, the route to it last)."""
        objects = [self.service_account, self.gateway_service_account]
        if self.handler_source is not None:
            objects.append(self.handler_source)
        return [*objects, self.deployment, self.pod_disruption_budget, self.trigger_authentication,
                self.scaled_object, self.gateway_deployment, self.gateway_service,
                self.gateway_pod_disruption_budget, self.ingress]


def gateway_name(api_name: str) -> str:
    """Name of the API's gateway Deployment, Service, PDB and ServiceAccount: ``<api>-gateway``."""
    return f"{api_name}-gateway"


def scaler_auth_name(api_name: str) -> str:
    return f"{api_name}-queue-scaler"


def key_prefix(spec: AsyncApiSpec) -> str:
    """The API's key prefix in its bucket: the contract's ``workloads/<api>/``, below the prefix of a
    ``queue.bucket`` the user gives."""
    user_prefix = ""
    if spec.queue.bucket is not None:
        user_prefix = spec.queue.bucket.removeprefix("s3://").partition("/")[2]
    return user_prefix + contract.default_key_prefix(spec.name)


def user_bucket(spec: AsyncApiSpec) -> str | None:
    """The bucket named by ``queue.bucket``, or None (the API gets its own)."""
    return None if spec.queue.bucket is None else spec.queue.bucket.removeprefix("s3://").partition("/")[0]


def render_api(
    spec: AsyncApiSpec,
    cluster_spec: ClusterSpec | None = None,
    *,
    runtime_image: str,
    handler_sources: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every Kubernetes object of an AsyncAPI, for ``cortex render`` (no Pulumi involved); AWS values
    are :data:`PLACEHOLDERS`. See :func:`cortex_iac.render.realtime.render_api` for the arguments."""
    return api_objects(spec, AsyncContext.of_cluster(cluster_spec, runtime_image), handler_sources).all()


def api_objects(
    spec: AsyncApiSpec, context: AsyncContext, handler_sources: Mapping[str, str] | None = None
) -> AsyncObjects:
    """Every object of an AsyncAPI in ``context``, by role; raises SpecError if the API cannot run
    there (unknown node group, nothing it fits on)."""
    ns, name = context.namespace, spec.name
    handler = workload.handler_container(spec, ns, context.runtime_image, handler_sources, COMPONENT)
    allowed = workload.allowed_node_groups(spec, context.node_groups)
    return AsyncObjects(
        service_account=workload.service_account(name, ns, COMPONENT),
        gateway_service_account={**workload.service_account(name, ns, GATEWAY_COMPONENT),
                                 "metadata": _meta(gateway_name(name), ns, gateway_labels(name))},
        deployment=worker_deployment(spec, context, allowed, handler),
        pod_disruption_budget=_pod_disruption_budget(name, ns, worker_labels(name), worker_selector(name),
                                                     {"maxUnavailable": 1}),
        gateway_deployment=gateway_deployment(spec, context, allowed),
        gateway_service=gateway_service(name, ns),
        gateway_pod_disruption_budget=_pod_disruption_budget(
            gateway_name(name), ns, gateway_labels(name), gateway_selector(name), {"minAvailable": 1}),
        trigger_authentication=trigger_authentication(name, ns, context.resources.scaler_role_arn),
        scaled_object=scaled_object(spec, ns, context.resources),
        ingress=routing.gateway_ingress(
            spec, ns, service=gateway_name(name), health_path=contract.GATEWAY_HEALTH_PATH, https=context.https,
            deregistration_delay_seconds=GATEWAY_DEREGISTRATION_SECONDS + GATEWAY_GRACE_SECONDS,
            labels=gateway_labels(name),
        ),
        handler_source=None if handler is None else handler.config_map,
    )


def worker_labels(api_name: str) -> dict[str, str]:
    """Labels of the worker's objects and pods."""
    return workload.labels(api_name, COMPONENT)


def gateway_labels(api_name: str) -> dict[str, str]:
    """Labels of the gateway's objects and pods."""
    return workload.labels(api_name, GATEWAY_COMPONENT)


def worker_selector(api_name: str) -> dict[str, str]:
    """The worker pods' selector: the API's label and the component (the gateway's pods carry the
    same API label)."""
    return {**workload.selector_labels(api_name), "app.kubernetes.io/component": COMPONENT}


def gateway_selector(api_name: str) -> dict[str, str]:
    return {**workload.selector_labels(api_name), "app.kubernetes.io/component": GATEWAY_COMPONENT}


def _meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels}


def worker_config(spec: AsyncApiSpec, resources: AsyncResources) -> contract.WorkerConfig:
    """The queue worker's settings for a pod of ``spec``."""
    return contract.WorkerConfig(
        api_name=spec.name,
        queue_url=resources.queue_url,
        dead_letter_queue_url=resources.dead_letter_queue_url,
        bucket=resources.bucket,
        key_prefix=key_prefix(spec),
        user_port=spec.pod.port,
        max_concurrency=spec.pod.max_concurrency,
        max_attempts=spec.queue.max_attempts,
        request_timeout=float(spec.queue.request_timeout),
        grace_period=float(WORKER_GRACE_SECONDS),
        readiness_probe=readiness_of(spec),
    )


def gateway_config(spec: AsyncApiSpec, resources: AsyncResources) -> contract.GatewayConfig:
    """The gateway's settings for ``spec``."""
    return contract.GatewayConfig(
        api_name=spec.name,
        queue_url=resources.queue_url,
        bucket=resources.bucket,
        key_prefix=key_prefix(spec),
        endpoint=spec.networking.endpoint,
        max_body_bytes=int(spec.queue.max_payload_size.value),
        result_retention_days=spec.queue.retention_days,
        grace_period=float(GATEWAY_GRACE_SECONDS),
    )


def readiness_of(spec: AsyncApiSpec) -> contract.ReadinessProbe:
    """The user container's readiness the worker waits for: the probe of a container on ``pod.port``
    (a handler container: the runtime's /readyz), else a TCP connect to ``pod.port`` (Cortex's
    default)."""
    port = spec.pod.port
    for c in spec.pod.containers:
        if c.handler is not None and c.readiness_probe is None:
            return contract.ReadinessProbe("http_get", port, RUNTIME_READINESS_PATH)
        probe = c.readiness_probe
        if probe is not None and probe.http_get is not None and probe.http_get.port == port:
            return contract.ReadinessProbe("http_get", port, probe.http_get.path)
        if probe is not None and probe.tcp_socket is not None and probe.tcp_socket.port == port:
            return contract.ReadinessProbe("tcp_socket", port)
    return contract.ReadinessProbe("tcp_socket", port)


def _env(values: Mapping[str, str], region: str) -> list[dict[str, str]]:
    # Region through the AWS SDK's own variable (contract.AWS_ENV); credentials from EKS Pod Identity.
    return [{"name": k, "value": v} for k, v in {**values, "AWS_REGION": region}.items()]


def _pod_spec(
    spec: AsyncApiSpec,
    service_account: str,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    grace_seconds: int,
    allowed: Sequence[NodeGroupSpec] | None,
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace_seconds,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "affinity": {"nodeAffinity": workload.node_affinity(spec, allowed)},
    }
    if volumes:
        pod["volumes"] = volumes
    tolerations = workload.tolerations(spec, allowed)
    if tolerations:
        pod["tolerations"] = tolerations
    return pod


def worker_deployment(
    spec: AsyncApiSpec,
    context: AsyncContext,
    allowed: Sequence[NodeGroupSpec] | None,
    handler: HandlerContainer | None,
) -> dict[str, Any]:
    """The worker Deployment ``<api>`` (see the module docstring). ``replicas`` is ``init_replicas``,
    which only matters at creation: KEDA owns the field afterwards."""
    name, ns = spec.name, context.namespace
    # The user containers get SIGTERM only once the worker has had its grace period, so they answer
    # every request the worker still holds; a handler runtime then has the rest to exit.
    shutdown = workload.Shutdown(prestop_sleep_seconds=WORKER_GRACE_SECONDS,
                                 runtime_grace_seconds=TERMINATION_GRACE_PERIOD_SECONDS - WORKER_GRACE_SECONDS)
    containers = workload.user_containers(spec, shutdown, handler)
    containers.append({
        "name": WORKER_CONTAINER,
        "image": context.runtime_image,
        "command": list(contract.WORKER_COMMAND),
        "env": _env(worker_config(spec, context.resources).to_env(), context.resources.region),
        "ports": [{"name": WORKER_ADMIN_PORT_NAME, "containerPort": contract.WORKER_ADMIN_PORT, "protocol": "TCP"}],
        # Ready once the user container is (the worker checks it), and no longer while stopping.
        "readinessProbe": {"httpGet": {"path": contract.WORKER_HEALTH_PATH, "port": contract.WORKER_ADMIN_PORT},
                           "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 2},
        # Alive while its admin server accepts connections: not /healthz, which says 503 while the user
        # container is not ready yet (a slow model load must not restart the worker) and while draining.
        "livenessProbe": {"tcpSocket": {"port": contract.WORKER_ADMIN_PORT},
                          "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "resources": worker_resources(spec),
        "securityContext": workload.locked_down(RUNTIME_UID),
        "volumeMounts": [{"name": _WORKER_TMP, "mountPath": "/tmp"}],
    })
    volumes = [*workload.handler_volumes(handler), *workload.shm_volumes(spec), {"name": _WORKER_TMP, "emptyDir": {}}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, ns, worker_labels(name)),
        "spec": {
            "replicas": spec.autoscaling.init_replicas,
            "selector": {"matchLabels": worker_selector(name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": spec.update_strategy.max_surge, "maxUnavailable": spec.update_strategy.max_unavailable}},
            "template": {
                "metadata": {"labels": worker_labels(name)},
                "spec": _pod_spec(spec, name, containers, volumes, TERMINATION_GRACE_PERIOD_SECONDS, allowed),
            },
        },
    }


def worker_resources(spec: AsyncApiSpec) -> dict[str, dict[str, str]]:
    """The queue worker's requests (:data:`~cortex_iac.specs.kinds.QUEUE_WORKER_SIDECAR`, which the
    node-group fit check counts) and a memory limit that holds ``max_concurrency`` answers of the
    contract's largest size at once, above the sidecar's own limit: the worker reads each answer whole
    to check it is JSON, so a busy worker is never killed for holding what it is allowed to hold."""
    resources = QUEUE_WORKER_SIDECAR.to_k8s()
    answers = spec.pod.max_concurrency * contract.DEFAULT_MAX_RESULT_BYTES
    limit = QUEUE_WORKER_SIDECAR.memory_limit.value + answers
    resources["limits"]["memory"] = f"{int(limit) // 2**20}Mi"
    return resources


# The worker's own writable /tmp (read-only root filesystem), apart from a handler container's.
_WORKER_TMP = f"{WORKER_CONTAINER}-{TMP_VOLUME}"


def gateway_deployment(spec: AsyncApiSpec, context: AsyncContext, allowed: Sequence[NodeGroupSpec] | None
                       ) -> dict[str, Any]:
    """The gateway Deployment ``<api>-gateway``: :data:`GATEWAY_REPLICAS` replicas of the runtime
    image's gateway on the API's node groups, spread over nodes, rolled one at a time without going
    below the replica count."""
    name, ns = gateway_name(spec.name), context.namespace
    container = {
        "name": GATEWAY_CONTAINER,
        "image": context.runtime_image,
        "command": list(contract.GATEWAY_COMMAND),
        "env": _env(gateway_config(spec, context.resources).to_env(), context.resources.region),
        # /metrics has a port of its own, which the namespace's NetworkPolicy opens to Prometheus only;
        # the load balancer reaches 8888, which serves the API alone.
        "ports": [{"name": GATEWAY_PORT_NAME, "containerPort": contract.GATEWAY_PORT, "protocol": "TCP"},
                  {"name": WORKER_ADMIN_PORT_NAME, "containerPort": contract.GATEWAY_METRICS_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": contract.GATEWAY_HEALTH_PATH, "port": contract.GATEWAY_PORT},
                           "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 2},
        "livenessProbe": {"httpGet": {"path": contract.GATEWAY_HEALTH_PATH, "port": contract.GATEWAY_PORT},
                          "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        # The ALB keeps sending for a while after the pod is marked for deletion.
        "lifecycle": {"preStop": {"sleep": {"seconds": GATEWAY_DEREGISTRATION_SECONDS}}},
        "resources": GATEWAY_RESOURCES.to_k8s(),
        "securityContext": workload.locked_down(RUNTIME_UID),
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}],
    }
    pod = _pod_spec(spec, name, [container], [{"name": TMP_VOLUME, "emptyDir": {}}],
                    GATEWAY_TERMINATION_GRACE_SECONDS, allowed)
    pod["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": gateway_selector(spec.name)},
    }]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, ns, gateway_labels(spec.name)),
        "spec": {
            "replicas": GATEWAY_REPLICAS,
            "selector": {"matchLabels": gateway_selector(spec.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": gateway_labels(spec.name)}, "spec": pod},
        },
    }


def gateway_service(api_name: str, namespace: str) -> dict[str, Any]:
    """ClusterIP Service ``<api>-gateway`` in front of the gateway pods (port 8888)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(gateway_name(api_name), namespace, gateway_labels(api_name)),
        "spec": {
            "type": "ClusterIP",
            "selector": gateway_selector(api_name),
            "ports": [{"name": GATEWAY_PORT_NAME, "port": contract.GATEWAY_PORT, "targetPort": GATEWAY_PORT_NAME,
                       "protocol": "TCP"}],
        },
    }


def _pod_disruption_budget(name: str, namespace: str, labels: dict[str, str], selector: dict[str, str],
                           budget: dict[str, int]) -> dict[str, Any]:
    # Worker pods may be evicted one at a time (an evicted worker finishes or releases what it holds,
    # and SQS redelivers it); a gateway keeps one ready replica. Pods that are not ready never block
    # a node drain.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(name, namespace, labels),
        "spec": {**budget, "selector": {"matchLabels": selector}, "unhealthyPodEvictionPolicy": "AlwaysAllow"},
    }


def trigger_authentication(api_name: str, namespace: str, scaler_role_arn: str) -> dict[str, Any]:
    """KEDA's credentials for the API's queues: its own (EKS Pod Identity of the keda-operator service
    account) used to assume the API's scaler role (``roleArn``; ``identityOwner`` is exclusive with it
    and the workload's own role is not discoverable under Pod Identity, which puts no annotation on
    the service account)."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": _meta(scaler_auth_name(api_name), namespace, worker_labels(api_name)),
        "spec": {"podIdentity": {"provider": "aws", "roleArn": scaler_role_arn}},
    }


def scaled_object(spec: AsyncApiSpec, namespace: str, resources: AsyncResources) -> dict[str, Any]:
    """The worker's ScaledObject: ``ceil((visible + in-flight messages) / target_in_flight)`` replicas
    (KEDA's ``aws-sqs-queue`` scaler with ``scaleOnInFlight``, Cortex's metric), at least one while the
    dead-letter queue holds a message, between ``min_replicas`` and ``max_replicas``, stepped and
    stabilized as RealtimeAPIs are (:func:`cortex_iac.render.autoscaling.hpa_behavior`). From zero,
    the first visible message activates the Deployment (the metric lives in SQS, not in the pods)."""
    a = spec.autoscaling
    auth = {"name": scaler_auth_name(spec.name)}

    def trigger(name: str, url: str, per_replica: int) -> dict[str, Any]:
        return {
            "type": "aws-sqs-queue",
            "name": name,
            "authenticationRef": auth,
            "metadata": {
                "queueURL": url,
                "queueLength": str(per_replica),
                "activationQueueLength": "0",
                "scaleOnInFlight": "true",
                "awsRegion": resources.region,
            },
        }

    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(spec.name, namespace, worker_labels(spec.name)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "pollingInterval": autoscaling.CORTEX_TICK_SECONDS,
            "cooldownPeriod": a.downscale_stabilization_period,
            "minReplicaCount": a.min_replicas,
            "maxReplicaCount": a.max_replicas,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": autoscaling.hpa_behavior(spec.name, a)}},
            "triggers": [
                # target_in_flight is a whole number for AsyncAPIs (the scaler counts messages).
                trigger(QUEUE_TRIGGER, resources.queue_url, int(a.target_in_flight)),
                trigger(DEAD_LETTER_TRIGGER, resources.dead_letter_queue_url, DEAD_LETTER_MESSAGES_PER_REPLICA),
            ],
        },
    }


# --- IAM -------------------------------------------------------------------------------------------


def _s3_statements(sid: str, partition: str, bucket: str, prefix: str, actions: Sequence[str],
                   bucket_actions: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"Sid": f"{sid}Objects", "Effect": "Allow", "Action": list(actions),
         "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"},
        {"Sid": f"{sid}List", "Effect": "Allow", "Action": list(bucket_actions),
         "Resource": f"arn:{partition}:s3:::{bucket}", "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
    ]


def worker_policy(spec: AsyncApiSpec, *, bucket: str, queue_arn: str, dead_letter_queue_arn: str,
                  region: str) -> dict[str, Any]:
    """The worker role's inline policy: exactly the contract's worker actions on the API's prefix,
    queue and dead-letter queue, plus what ``iam.s3_read`` asks for the user's containers (they share
    the pod's role)."""
    partition = partition_of(region)
    statements = [
        *_s3_statements("Store", partition, bucket, key_prefix(spec), contract.WORKER_S3_ACTIONS,
                        contract.WORKER_S3_BUCKET_ACTIONS),
        {"Sid": "Queue", "Effect": "Allow", "Action": list(contract.WORKER_SQS_ACTIONS), "Resource": queue_arn},
        {"Sid": "DeadLetterQueue", "Effect": "Allow", "Action": list(contract.WORKER_DLQ_SQS_ACTIONS),
         "Resource": dead_letter_queue_arn},
    ]
    user = workload.iam_policy(spec, partition)
    if user is not None:
        statements += user["Statement"]
    return policy_document(statements)


def gateway_policy(spec: AsyncApiSpec, *, bucket: str, queue_arn: str, region: str) -> dict[str, Any]:
    """The gateway role's inline policy: the contract's gateway actions on the API's prefix, and
    sending to the API's queue."""
    partition = partition_of(region)
    return policy_document([
        *_s3_statements("Store", partition, bucket, key_prefix(spec), contract.GATEWAY_S3_ACTIONS,
                        contract.GATEWAY_S3_BUCKET_ACTIONS),
        {"Sid": "Queue", "Effect": "Allow", "Action": list(contract.GATEWAY_SQS_ACTIONS), "Resource": queue_arn},
    ])


def scaler_policy(queue_arn: str, dead_letter_queue_arn: str) -> dict[str, Any]:
    """The KEDA scaler role's inline policy: reading the two queues' attributes, nothing else."""
    return policy_document([{"Sid": "QueueDepth", "Effect": "Allow", "Action": list(contract.KEDA_SQS_ACTIONS),
                             "Resource": [queue_arn, dead_letter_queue_arn]}])


def scaler_trust_policy(keda_operator_role_arn: str) -> dict[str, Any]:
    """Trust of the scaler role: only KEDA's operator role may assume it (``sts:TagSession`` too: its
    Pod Identity session carries tags)."""
    return policy_document([{"Effect": "Allow", "Principal": {"AWS": keda_operator_role_arn},
                             "Action": ["sts:AssumeRole", "sts:TagSession"]}])


def queue_policy(queue_arn: str) -> dict[str, Any]:
    """The resource policy of a queue: every request without TLS is denied."""
    return policy_document([{"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "sqs:*",
                             "Resource": queue_arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}])


def bucket_policy(bucket: str, region: str) -> dict[str, Any]:
    """The resource policy of the API's own bucket: every request without TLS is denied."""
    arn = f"arn:{partition_of(region)}:s3:::{bucket}"
    return policy_document([{"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                             "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}])
