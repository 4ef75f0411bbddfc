"""``cortex:api:BatchApi``: one Cortex BatchAPI (offline inference in batches) on a Cortex cluster.

A job gateway at ``networking.endpoint`` takes Cortex's submissions (``POST``), status requests
(``GET ?jobID=``) and stops (``DELETE ?jobID=``); per job it creates an SQS queue of the batches and
a Kubernetes Job of ``workers`` pods, each running our worker beside the user's containers. The
objects come from :mod:`cortex_iac.render.jobs`; the wiring is shared with TaskApi
(:mod:`cortex_iac.components._job_api`). Design: docs/design.md, "BatchAPI and TaskAPI".
"""

from __future__ import annotations

from cortex_iac.components._job_api import JobApi
from cortex_iac.specs import BatchApiSpec

__all__ = ["TYPE", "BatchApi"]

TYPE = "cortex:api:BatchApi"


class BatchApi(JobApi):
    """A Cortex BatchAPI.

    Args:
        name: component name; children are ``<name>-jobs`` (the DynamoDB job table),
            ``<name>-namespace`` (the job namespace ``cortex-job-<api>``), ``<name>-network-policy``,
            ``<name>-service-account`` (the workers'), ``<name>-handler`` (with a handler container),
            ``<name>-gateway-service-account``, ``<name>-gateway-rbac-role``,
            ``<name>-gateway-rbac-binding``, ``<name>-job-template``, ``<name>-deployment``,
            ``<name>-service``, ``<name>-pdb`` (the gateway's), ``<name>-ingress`` (with a load
            balancer); the workers' IAM role ``<name>-role`` with ``<name>-policy`` (the API's
            ``iam.s3_read`` and the worker's queue and table calls), the cluster's policies and
            ``<name>-pod-identity``; the gateway's ``<name>-gateway-role``, ``<name>-gateway-policy``
            and ``<name>-gateway-pod-identity`` (no cluster policies: it runs no user code).
        spec: the API.
        cluster: the Cluster component, or a :class:`~cortex_iac.components.handle.ClusterHandle`.
        opts: resource options.
        runtime_image: the serving runtime image (required: the gateway and the worker run it, and
            so does a container giving a ``handler``), a reference or an Output.

    Outputs: ``url`` (None without a load balancer), ``namespace`` (the gateway's), ``job_namespace``
    (the workers'), ``service_name``, ``table_name``, ``role_arn`` (the workers'),
    ``gateway_role_arn``.
    """

    TYPE = TYPE
    KIND = "BatchAPI"
    SPEC_CLASS = BatchApiSpec
    spec: BatchApiSpec
