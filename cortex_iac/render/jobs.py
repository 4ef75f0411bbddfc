"""A Cortex BatchAPI or TaskAPI as its static Kubernetes objects and IAM policies (pure; plain dicts).

What Pulumi deploys per job API (the design: docs/design.md, "BatchAPI and TaskAPI"; the contract
with the processes: :mod:`cortex_iac.jobs.contract`, whose constants are used here, never copied):

- in the API namespace: the job gateway (ServiceAccount with a token, Deployment of
  ``GATEWAY_REPLICAS`` pods of the runtime image, Service on ``GATEWAY_PORT``, PodDisruptionBudget),
  the job template ConfigMap it reads, and the Ingress at ``networking.endpoint`` (no path rewrite:
  the gateway serves under its endpoint);
- the job namespace ``cortex-job-<api>`` (:func:`~cortex_iac.jobs.contract.job_namespace`) with its
  default-deny NetworkPolicy (nothing in; DNS, Pod Identity and AWS out), the workers'
  ServiceAccount (no token), the handler ConfigMap (with a ``handler`` container), and the gateway's
  Role there (exactly ``GATEWAY_RBAC_RULES``) bound to the gateway's ServiceAccount.

The job template (:func:`job_template`) is the ``batch/v1`` Job the gateway completes per job with
``cortex_iac.jobs.render.job_object``: a BatchAPI pod runs our worker as its only regular container
and the user's containers (image or ``handler``, from the workload layer) as native sidecars, so the
pod ends when the worker does; a TaskAPI pod runs the user's containers. The DynamoDB table's name
and the region are known only when the table exists: the objects carry :data:`TABLE_PLACEHOLDER`
and :data:`REGION_PLACEHOLDER` where they go, which the components replace with the table's outputs
(``cortex render`` shows them as they are). The IAM policy documents take the table's ARN.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cortex_iac.jobs.contract import (
    GATEWAY_COMMAND,
    GATEWAY_PORT,
    GATEWAY_RBAC_RULES,
    GATEWAY_RESOURCES,
    GATEWAY_S3_ACTIONS,
    HEALTH_PATH,
    JOB_TEMPLATE_DIR,
    JOB_TEMPLATE_KEY,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    WORKER_COMMAND,
    WORKER_CONTAINER_NAME,
    WORKER_JOB_ENV,
    WORKER_RESOURCES,
    Attr,
    GatewayConfig,
    JobKind,
    WorkerConfig,
    gateway_iam_statements,
    job_namespace,
    job_template_config_map_name,
    queue_arn_pattern,
    worker_iam_statements,
)
from cortex_iac.render import karpenter, routing, workload
from cortex_iac.render.iam import policy_document
from cortex_iac.render.workload import API_NAMESPACE, RUNTIME_UID, HandlerContainer
from cortex_iac.specs import BatchApiSpec, TaskApiSpec
from cortex_iac.specs.cluster import ANYWHERE

if TYPE_CHECKING:
    from cortex_iac.specs import ClusterSpec, NodeGroupSpec

JobApiSpec = BatchApiSpec | TaskApiSpec
"""A job API's spec."""

__all__ = [
    "CLUSTER_PLACEHOLDER", "COMPONENTS", "GATEWAY_REPLICAS", "REGION_PLACEHOLDER",
    "TABLE_PLACEHOLDER", "job_table",
    "TEMPLATE_CHECKSUM", "JobApiObjects", "JobContext", "gateway_config", "gateway_policy", "job_api_objects",
    "job_template", "queue_arn", "render_job_api", "worker_config", "worker_policy",
]

# The component label of a job API's objects, by kind.
COMPONENTS: dict[str, str] = {"BatchAPI": "batch-api", "TaskAPI": "task-api"}
GATEWAY_CONTAINER = "gateway"
GATEWAY_PORT_NAME = "http"
# Two stateless gateways: one may roll or be evicted while the other answers.
GATEWAY_REPLICAS = 2
# On SIGTERM the gateway keeps answering while the ALB deregisters it (the readiness gate and the
# deregistration delay), then uvicorn finishes what it accepted.
GATEWAY_PRESTOP_SLEEP_SECONDS = 15
GATEWAY_GRACE_SECONDS = 45
# Pod-template annotation of the gateway: the sha256 of the job template it reads at start, so a
# changed template rolls the gateways.
TEMPLATE_CHECKSUM = "cortex.dev/job-template-sha256"
TEMPLATE_VOLUME = "job-template"
# jobs.api_key_secret: the Secret's key holding the API key, mounted into the gateway here.
API_KEY_SECRET_KEY = "api-key"
API_KEY_VOLUME = "api-key"
API_KEY_DIR = "/cortex/api-key"
# Where the table name and region go until the table exists (the components substitute them).
TABLE_PLACEHOLDER = "<job-table-name>"
REGION_PLACEHOLDER = "<aws-region>"
CLUSTER_PLACEHOLDER = "<cluster-name>"
# Job pods: the user's app gets SIGTERM when the worker is done (or the job stopped) and this long to exit.
JOB_GRACE_SECONDS = 30
# A user container (or the handler runtime) gets as long to start listening as the worker waits for
# it (WorkerConfig.app_wait_timeout): its readiness probe becomes a startup probe with that budget,
# instead of the 30 s three failed probes would give a model that is still loading.
STARTUP_BUDGET_SECONDS = int(WorkerConfig.app_wait_timeout)
# Karpenter never consolidates a node away under a running job pod (Cortex set the cluster
# autoscaler's safe-to-evict: "false"); spot interruptions still happen and are handled by the Job's
# pod failure policy.
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"


@dataclass(frozen=True)
class JobContext:
    """What a job API's objects depend on besides its spec: ``cluster_name`` (queue names),
    ``runtime_image`` (the gateway's and the worker's image, and a handler container's),
    ``node_groups`` (None: unknown, see ``realtime.ApiContext``), ``https`` (the ALB has a
    certificate), ``namespace`` (the API namespace, default :data:`API_NAMESPACE`), the table's
    ``table_name`` and ``region`` (default: the placeholders the components replace), and
    ``egress_cidrs``, where the job pods may connect (cluster.yaml's ``api_egress_cidrs``)."""

    cluster_name: str
    runtime_image: str
    node_groups: tuple[NodeGroupSpec, ...] | None = None
    https: bool = False
    namespace: str = API_NAMESPACE
    table_name: str = TABLE_PLACEHOLDER
    region: str = REGION_PLACEHOLDER
    egress_cidrs: tuple[str, ...] = ANYWHERE


@dataclass(frozen=True)
class JobApiObjects:
    """Every static Kubernetes object of one BatchAPI or TaskAPI, by role (``handler_source`` is
    None unless a container gives a handler)."""

    namespace: dict[str, Any]
    network_policy: dict[str, Any]
    service_account: dict[str, Any]
    gateway_service_account: dict[str, Any]
    role: dict[str, Any]
    role_binding: dict[str, Any]
    job_template: dict[str, Any]
    gateway_deployment: dict[str, Any]
    gateway_service: dict[str, Any]
    gateway_pdb: dict[str, Any]
    ingress: dict[str, Any]
    handler_source: dict[str, Any] | None = None

    def all(self) -> list[dict[str, Any]]:
        """The objects in apply order (namespace first, the route last)."""
        objects = [self.namespace, self.network_policy, self.service_account]
        if self.handler_source is not None:
            objects.append(self.handler_source)
        return objects + [self.gateway_service_account, self.role, self.role_binding, self.job_template,
                          self.gateway_deployment, self.gateway_service, self.gateway_pdb, self.ingress]


def labels(spec: JobApiSpec) -> dict[str, str]:
    """Labels of every object of the API (its pods too)."""
    return workload.labels(spec.name, COMPONENTS[spec.kind])


def gateway_name(api_name: str) -> str:
    """The gateway's ServiceAccount, Role and RoleBinding: ``<api>-gateway``."""
    return f"{api_name}-gateway"


def _gateway_selector(spec: JobApiSpec) -> dict[str, str]:
    # The gateway's pods only: the API label, plus the component (the workers are elsewhere anyway).
    return {**workload.selector_labels(spec.name), "app.kubernetes.io/component": COMPONENTS[spec.kind]}


def render_job_api(
    spec: JobApiSpec,
    cluster_spec: ClusterSpec | None = None,
    *,
    runtime_image: str,
    handler_sources: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every static Kubernetes object of a BatchAPI or TaskAPI, for ``cortex render`` (no Pulumi):
    with ``cluster_spec`` its pods are placed on the API's node groups as a RealtimeAPI's are; the
    table name and region stay placeholders. ``handler_sources``: see ``realtime.render_api``."""
    if cluster_spec is None:
        context = JobContext(cluster_name="cortex", runtime_image=runtime_image)
    else:
        context = JobContext(cluster_name=cluster_spec.cluster_name, runtime_image=runtime_image,
                             node_groups=tuple(cluster_spec.node_groups), https=bool(cluster_spec.ssl_certificate_arn),
                             egress_cidrs=tuple(cluster_spec.api_egress_cidrs))
    return job_api_objects(spec, context, handler_sources).all()


def job_api_objects(
    spec: JobApiSpec, context: JobContext, handler_sources: Mapping[str, str] | None = None
) -> JobApiObjects:
    """Every static object of the API in ``context``, by role; raises SpecError if its pods cannot
    run there (unknown node group, nothing they fit on)."""
    ns, jobs_ns, name = context.namespace, job_namespace(spec.name), spec.name
    component = COMPONENTS[spec.kind]
    handler = workload.handler_container(spec, jobs_ns, context.runtime_image, handler_sources, component)
    template = job_template(spec, context, handler)
    template_text = json.dumps(template, indent=2, sort_keys=True)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        # The checksum (of the text with its placeholders) is known in a plan, where the filled-in text is
        # not: a changed template shows there.
        "metadata": {"name": job_template_config_map_name(name), "namespace": ns, "labels": labels(spec),
                     "annotations": {TEMPLATE_CHECKSUM: workload.sha256(template_text)}},
        "data": {JOB_TEMPLATE_KEY: template_text},
    }
    network_policy = workload.network_policy(jobs_ns, name=jobs_ns, ingress=False, egress_cidrs=context.egress_cidrs)
    gateway_account = workload.service_account(gateway_name(name), ns, component)
    # The gateway calls the Kubernetes API (create Jobs and ConfigMaps): it needs its token.
    gateway_account["automountServiceAccountToken"] = True
    return JobApiObjects(
        namespace=workload.render_namespace(jobs_ns, readiness_gate=False),
        network_policy=network_policy,
        service_account=workload.service_account(name, jobs_ns, component),
        gateway_service_account=gateway_account,
        role=role(spec),
        role_binding=role_binding(spec, ns),
        job_template=config_map,
        gateway_deployment=gateway_deployment(spec, context, template_text),
        gateway_service=gateway_service(spec, ns),
        gateway_pdb=gateway_pdb(spec, ns),
        ingress=routing.service_ingress(
            name, routing.endpoint_of(spec), ns, name, GATEWAY_PORT, https=context.https,
            deregistration_delay_seconds=GATEWAY_PRESTOP_SLEEP_SECONDS, labels=labels(spec),
            health={"healthcheck-path": HEALTH_PATH}, strip=False,
        ),
        handler_source=None if handler is None else handler.config_map,
    )


def role(spec: JobApiSpec) -> dict[str, Any]:
    """The gateway's Role in the job namespace: exactly the contract's ``GATEWAY_RBAC_RULES``."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": gateway_name(spec.name), "namespace": job_namespace(spec.name), "labels": labels(spec)},
        "rules": [json.loads(json.dumps(rule)) for rule in GATEWAY_RBAC_RULES],
    }


def role_binding(spec: JobApiSpec, namespace: str) -> dict[str, Any]:
    """Binds the Role to the gateway's ServiceAccount (in the API namespace ``namespace``)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": gateway_name(spec.name), "namespace": job_namespace(spec.name), "labels": labels(spec)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": gateway_name(spec.name)},
        "subjects": [{"kind": "ServiceAccount", "name": gateway_name(spec.name), "namespace": namespace}],
    }


def gateway_config(spec: JobApiSpec, context: JobContext) -> GatewayConfig:
    """The gateway's settings (its pod's environment, ``GatewayConfig.to_env()``)."""
    kind: JobKind = "BatchAPI" if spec.kind == "BatchAPI" else "TaskAPI"
    return GatewayConfig(
        kind=kind,
        api_name=spec.name,
        cluster_name=context.cluster_name,
        endpoint=routing.endpoint_of(spec),
        namespace=job_namespace(spec.name),
        table=context.table_name,
        aws_region=context.region,
        s3_read=tuple(spec.iam.s3_read),
        retention_seconds=spec.jobs.retention,
        api_key_file=None if spec.jobs.api_key_secret is None else f"{API_KEY_DIR}/{API_KEY_SECRET_KEY}",
    )


def worker_config(spec: BatchApiSpec, context: JobContext) -> WorkerConfig:
    """The batch worker's static settings (the template's worker environment; the gateway adds the
    per-job ``WORKER_JOB_ENV``)."""
    return WorkerConfig(
        api_name=spec.name,
        table=context.table_name,
        aws_region=context.region,
        app_port=spec.pod.port,
        retention_seconds=spec.jobs.retention,
    )


def _env(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def gateway_deployment(spec: JobApiSpec, context: JobContext, template_text: str) -> dict[str, Any]:
    """The gateway Deployment: ``GATEWAY_REPLICAS`` pods of the runtime image running
    ``GATEWAY_COMMAND`` on ``GATEWAY_PORT``, ready and alive on ``HEALTH_PATH``, the job template
    mounted at ``JOB_TEMPLATE_DIR``, as our locked-down user, on the Cortex node groups (CPU, never the
    system nodes); rolls one pod at a time, never below the replica count. With
    ``jobs.api_key_secret`` the Secret's ``api-key`` is mounted at ``API_KEY_DIR`` and named by
    ``GatewayConfig.api_key_file``."""
    container: dict[str, Any] = {
        "name": GATEWAY_CONTAINER,
        "image": context.runtime_image,
        "command": list(GATEWAY_COMMAND),
        "ports": [{"name": GATEWAY_PORT_NAME, "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "env": _env(gateway_config(spec, context).to_env()),
        "readinessProbe": {"httpGet": {"path": HEALTH_PATH, "port": GATEWAY_PORT}, "periodSeconds": 5,
                           "timeoutSeconds": 1, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": HEALTH_PATH, "port": GATEWAY_PORT}, "periodSeconds": 10,
                          "timeoutSeconds": 5, "failureThreshold": 3},
        "lifecycle": {"preStop": {"sleep": {"seconds": GATEWAY_PRESTOP_SLEEP_SECONDS}}},
        "resources": json.loads(json.dumps(GATEWAY_RESOURCES)),
        "securityContext": workload.locked_down(RUNTIME_UID),
        "volumeMounts": [{"name": TEMPLATE_VOLUME, "mountPath": JOB_TEMPLATE_DIR, "readOnly": True},
                         {"name": workload.TMP_VOLUME, "mountPath": "/tmp"}],
    }
    volumes: list[dict[str, Any]] = [
        {"name": TEMPLATE_VOLUME, "configMap": {"name": job_template_config_map_name(spec.name)}},
        {"name": workload.TMP_VOLUME, "emptyDir": {}},
    ]
    if spec.jobs.api_key_secret is not None:
        # Not optional: without the Secret the gateway does not start, rather than serve without a key.
        volumes.append({"name": API_KEY_VOLUME, "secret": {
            "secretName": spec.jobs.api_key_secret, "items": [{"key": API_KEY_SECRET_KEY, "path": API_KEY_SECRET_KEY}]}})
        container["volumeMounts"].append({"name": API_KEY_VOLUME, "mountPath": API_KEY_DIR, "readOnly": True})
    selector = _gateway_selector(spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.name, "namespace": context.namespace, "labels": labels(spec),
                     # The one place a token is mounted on purpose: the gateway creates Jobs through
                     # the API server (its Role: the job namespace only). Said to checkov here, per
                     # object, so its check still covers every other pod.
                     "annotations": {"checkov.io/skip1": "CKV_K8S_38=the job gateway calls the Kubernetes API"}},
        "spec": {
            "replicas": GATEWAY_REPLICAS,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(spec),
                             "annotations": {TEMPLATE_CHECKSUM: workload.sha256(template_text)}},
                "spec": {
                    "serviceAccountName": gateway_name(spec.name),
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": GATEWAY_GRACE_SECONDS,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": volumes,
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": karpenter.NODE_GROUP_LABEL, "operator": "Exists"}]}]}}},
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector},
                    }],
                },
            },
        },
    }


def gateway_service(spec: JobApiSpec, namespace: str) -> dict[str, Any]:
    """ClusterIP Service of the gateways (the Ingress's backend; in-cluster clients use it too)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": labels(spec)},
        "spec": {
            "type": "ClusterIP",
            "selector": _gateway_selector(spec),
            "ports": [{"name": GATEWAY_PORT_NAME, "port": GATEWAY_PORT, "targetPort": GATEWAY_PORT_NAME,
                       "protocol": "TCP"}],
        },
    }


def gateway_pdb(spec: JobApiSpec, namespace: str) -> dict[str, Any]:
    """Voluntary disruptions take at most one gateway at a time (unready ones always)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": labels(spec)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _gateway_selector(spec)},
                 "unhealthyPodEvictionPolicy": "AlwaysAllow"},
    }


def job_template(spec: JobApiSpec, context: JobContext, handler: HandlerContainer | None) -> dict[str, Any]:
    """The ``batch/v1`` Job the gateway completes per job (``JOB_TEMPLATE_KEY``; see the contract):
    no name and no per-job fields, ``restartPolicy: Never``, the workers' ServiceAccount (no token),
    placed like the API's other pods, never disrupted on purpose by Karpenter.

    BatchAPI: ``containers`` is the worker alone (``WORKER_COMMAND``, its static settings, posting
    to ``pod.port``); the user's containers are native sidecars (``initContainers`` with
    ``restartPolicy: Always``), image containers with ``CORTEX_PORT`` first in their environment (Cortex
    commands say ``$(CORTEX_PORT)``). TaskAPI: the user's containers. No preStop hooks and no readiness
    probes: a readiness probe (the user's, the runtime's, or the TCP probe of ``pod.port`` the
    workload layer adds) becomes a startup probe with a budget of :data:`STARTUP_BUDGET_SECONDS`,
    which holds the worker back until the app listens; TaskAPI containers have none.
    """
    allowed = workload.allowed_node_groups(spec, context.node_groups)
    shutdown = workload.Shutdown(prestop_sleep_seconds=0, runtime_grace_seconds=JOB_GRACE_SECONDS - 5)
    users = [_job_container(c, spec) for c in workload.user_containers(spec, shutdown, handler)]
    pod: dict[str, Any] = {
        "serviceAccountName": spec.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": JOB_GRACE_SECONDS,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
    }
    if isinstance(spec, BatchApiSpec):
        pod["initContainers"] = [{**c, "restartPolicy": "Always"} for c in users]
        pod["containers"] = [_worker_container(spec, context)]
    else:
        pod["containers"] = users
    volumes = [*workload.handler_volumes(handler), *workload.shm_volumes(spec)]
    if volumes:
        pod["volumes"] = volumes
    pod["affinity"] = {"nodeAffinity": workload.node_affinity(spec, allowed)}
    tolerations = workload.tolerations(spec, allowed)
    if tolerations:
        pod["tolerations"] = tolerations
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"namespace": job_namespace(spec.name), "labels": labels(spec)},
        "spec": {"template": {"metadata": {"labels": labels(spec), "annotations": {DO_NOT_DISRUPT: "true"}},
                              "spec": pod}},
    }


def _job_container(container: dict[str, Any], spec: JobApiSpec) -> dict[str, Any]:
    # A user container as the workload layer renders it, made fit for a job pod (job_template).
    c = dict(container)
    c.pop("lifecycle", None)
    readiness = c.pop("readinessProbe", None)
    if spec.kind == "BatchAPI":
        if readiness is not None:
            period = int(readiness.get("periodSeconds", 10))
            c["startupProbe"] = {**readiness, "successThreshold": 1,
                                 "failureThreshold": max(int(readiness.get("failureThreshold", 3)),
                                                         math.ceil(STARTUP_BUDGET_SECONDS / period))}
        env = c.get("env", [])
        if not any(e["name"] == "CORTEX_PORT" for e in env):
            c["env"] = [{"name": "CORTEX_PORT", "value": str(spec.pod.port)}, *env]
    return c


def _worker_container(spec: BatchApiSpec, context: JobContext) -> dict[str, Any]:
    env = {k: v for k, v in worker_config(spec, context).to_env().items() if k not in WORKER_JOB_ENV}
    return {
        "name": WORKER_CONTAINER_NAME,
        "image": context.runtime_image,
        "command": list(WORKER_COMMAND),
        "env": _env(env),
        "resources": json.loads(json.dumps(WORKER_RESOURCES)),
        "securityContext": workload.locked_down(RUNTIME_UID),
    }


# ---- AWS


def job_table(tags: Mapping[str, str]) -> dict[str, Any]:
    """The arguments of the API's DynamoDB job table (``aws.dynamodb.Table``): the contract's keys
    (both strings), on-demand billing (jobs come in bursts; an idle API costs nothing), encrypted at
    rest with the AWS managed KMS key (``aws/dynamodb``, its use logged in CloudTrail),
    point-in-time recovery (a job's history survives a bad write for 35 days), and the TTL on
    ``Attr.EXPIRES_AT`` that ends a record's retention."""
    return {
        "attributes": [{"name": TABLE_PARTITION_KEY, "type": "S"}, {"name": TABLE_SORT_KEY, "type": "S"}],
        "hash_key": TABLE_PARTITION_KEY,
        "range_key": TABLE_SORT_KEY,
        "billing_mode": "PAY_PER_REQUEST",
        "server_side_encryption": {"enabled": True},
        "point_in_time_recovery": {"enabled": True},
        "ttl": {"attribute_name": Attr.EXPIRES_AT, "enabled": True},
        "tags": dict(tags),
    }



def queue_arn(table_arn: str, cluster_name: str, api_name: str) -> str:
    """The IAM resource of the API's queues (``queue_arn_pattern``), in the table's partition,
    region and account (read from its ARN, ``arn:<partition>:dynamodb:<region>:<account>:table/..``)."""
    parts = table_arn.split(":")
    if len(parts) < 6 or parts[2] != "dynamodb":
        raise ValueError(f"not a DynamoDB table ARN: {table_arn!r}")
    return queue_arn_pattern(cluster_name, api_name, partition=parts[1], region=parts[3], account=parts[4])


def _s3_statements(spec: JobApiSpec, partition: str) -> list[dict[str, Any]]:
    # The API's own S3 grants (iam.s3_read, iam.s3_write), as its pods' role has them.
    document = workload.iam_policy(spec, partition)
    return [] if document is None else list(document["Statement"])


def _lister_statements(spec: JobApiSpec, partition: str) -> list[dict[str, Any]]:
    # What the gateway's listers need of those: the reads (GATEWAY_S3_ACTIONS), never the writes.
    return [s for s in _s3_statements(spec, partition) if s["Action"] in GATEWAY_S3_ACTIONS]


def gateway_policy(spec: JobApiSpec, table_arn: str, cluster_name: str) -> dict[str, Any]:
    """The gateway role's policy: the contract's ``gateway_iam_statements`` on the table (and, for a
    BatchAPI, the API's queues), plus (BatchAPI) the listers' S3 reads on the API's ``iam.s3_read``
    grants only, as the API's own role has them."""
    kind: JobKind = "BatchAPI" if spec.kind == "BatchAPI" else "TaskAPI"
    partition = table_arn.split(":")[1]
    statements = gateway_iam_statements(kind, table_arn=table_arn, queue_arn=queue_arn(table_arn, cluster_name, spec.name))
    if kind == "BatchAPI":
        statements += _lister_statements(spec, partition)
    return policy_document(statements)


def worker_policy(spec: JobApiSpec, table_arn: str, cluster_name: str) -> dict[str, Any] | None:
    """The job pods' role policy: the API's own grants (``iam.s3_read``) plus, for a BatchAPI, the
    worker's ``worker_iam_statements``; None for a TaskAPI without ``iam.s3_read``."""
    partition = table_arn.split(":")[1]
    statements = _s3_statements(spec, partition)
    if spec.kind == "BatchAPI":
        statements += worker_iam_statements(table_arn=table_arn, queue_arn=queue_arn(table_arn, cluster_name, spec.name))
    return policy_document(statements) if statements else None


def substitute(obj: Any, values: Mapping[str, Any]) -> Any:
    """``obj`` (plain JSON) with every string equal to a key of ``values`` replaced by its value
    (e.g. :data:`TABLE_PLACEHOLDER` by the table's name Output)."""
    if isinstance(obj, dict):
        return {k: substitute(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [substitute(v, values) for v in obj]
    if isinstance(obj, str) and obj in values:
        return values[obj]
    return obj
