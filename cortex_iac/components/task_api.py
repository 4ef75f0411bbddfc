"""``cortex:api:TaskApi``: one Cortex TaskAPI (run a container's command once per submission) on a
Cortex cluster.

A job gateway at ``networking.endpoint`` takes Cortex's submissions (``POST``), status requests
(``GET ?jobID=``) and stops (``DELETE ?jobID=``); per task it creates a Kubernetes Job of one pod
running the user's containers, with the job spec at ``/cortex/spec/job.json``. The objects come from
:mod:`cortex_iac.render.jobs`; the wiring is shared with BatchApi
(:mod:`cortex_iac.components._job_api`). Design: docs/design.md, "BatchAPI and TaskAPI".
"""

from __future__ import annotations

from cortex_iac.components._job_api import JobApi
from cortex_iac.specs import TaskApiSpec

__all__ = ["TYPE", "TaskApi"]

TYPE = "cortex:api:TaskApi"


class TaskApi(JobApi):
    """A Cortex TaskAPI.

    Args:
        name: component name; children are ``<name>-jobs`` (the DynamoDB job table),
            ``<name>-namespace`` (the job namespace ``cortex-job-<api>``), ``<name>-network-policy``,
            ``<name>-service-account`` (the task pods'), ``<name>-gateway-service-account``, ``<name>-gateway-rbac-role``,
            ``<name>-gateway-rbac-binding``, ``<name>-job-template``, ``<name>-deployment``,
            ``<name>-service``, ``<name>-pdb`` (the gateway's), ``<name>-ingress`` (with a load
            balancer); the task pods' IAM role ``<name>-role`` with ``<name>-policy`` (the API's
            ``iam.s3_read``, when given), the cluster's policies and
            ``<name>-pod-identity``; the gateway's ``<name>-gateway-role``, ``<name>-gateway-policy``
            and ``<name>-gateway-pod-identity`` (no cluster policies: it runs no user code).
        spec: the API.
        cluster: the Cluster component, or a :class:`~cortex_iac.components.handle.ClusterHandle`.
        opts: resource options.
        runtime_image: the serving runtime image (required: the gateway runs it), a reference or
            an Output.

    Outputs: ``url`` (None without a load balancer), ``namespace`` (the gateway's), ``job_namespace``
    (the task pods'), ``service_name``, ``table_name``, ``role_arn`` (the task pods'),
    ``gateway_role_arn``.
    """

    TYPE = TYPE
    KIND = "TaskAPI"
    SPEC_CLASS = TaskApiSpec
    spec: TaskApiSpec
