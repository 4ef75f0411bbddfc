"""``cortex:api:AsyncApi``: one Cortex AsyncAPI (submit, then poll) on a Cortex cluster.

The Kubernetes objects and IAM documents come from :mod:`cortex_iac.render.async_api`; this module
makes the AWS side (queues, the payload/result bucket, three roles) and turns the rendered objects
into Pulumi resources with the AWS values filled in. Why a gateway per API, a standard queue and a
bucket per API: docs/design.md, "AsyncAPI infrastructure".
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws

from cortex_iac.components._kube import kube_object, with_values
from cortex_iac.components.handle import ClusterHandle, cluster_handle
from cortex_iac.components.identity import api_identity, api_namespace
from cortex_iac.components.identity import placed as identity_placed
from cortex_iac.errors import CortexError
from cortex_iac.queue import contract
from cortex_iac.render import async_api, routing
from cortex_iac.render.envoy import API_NAME_LABEL
from cortex_iac.render.iam import to_json
from cortex_iac.specs import AsyncApiSpec
from cortex_iac.specs.deployment import check_deployment

if TYPE_CHECKING:
    from cortex_iac.components.cluster import Cluster

__all__ = ["DEAD_LETTER_RETENTION_SECONDS", "TYPE", "AsyncApi"]

TYPE = "cortex:api:AsyncApi"
# SQS's longest message retention: a dead letter waits for a worker to record it failed, and a
# request waits in the queue as long as its results would be kept (at most this).
MAX_QUEUE_RETENTION_SECONDS = 14 * 24 * 3600
DEAD_LETTER_RETENTION_SECONDS = MAX_QUEUE_RETENTION_SECONDS
# Uploads the gateway started and never completed (a client gone mid-body) are removed after a day.
ABORT_INCOMPLETE_UPLOADS_DAYS = 1
# What the renderer gets as the runtime image when the real one is an Output; replaced by it afterwards.
_IMAGE_FROM_OUTPUT = "cortex-serving-runtime:from-output"


class AsyncApi(pulumi.ComponentResource):
    """A Cortex AsyncAPI: ``POST <endpoint>`` stores the request and answers its id at once,
    ``GET <endpoint>/<id>`` answers its status and result; queue workers (the user's containers and
    our ``dequeuer`` sidecar) scale with the queue, to zero. What each object holds and why:
    :mod:`cortex_iac.render.async_api` and docs/design.md.

    Children (AWS): ``<name>-dead-letter-queue`` and ``<name>-queue`` (standard SQS queues, SSE-SQS;
    the queue redrives to the DLQ after ``queue.max_attempts`` receives; each with a TLS-only
    ``-policy``), ``<name>-dead-letter-queue-redrive-allow`` (only the API's queue may use the DLQ);
    without ``queue.bucket`` the bucket ``<name>-store`` with ``-public-access-block``,
    ``-ownership``, ``-encryption`` (SSE-S3), ``-lifecycle`` (``queue.retention_days`` on the API's
    prefix) and ``-policy`` (TLS only); the worker role (``<name>-role``, ``<name>-worker``, cluster
    policy attachments, ``<name>-pod-identity``), the gateway role (``<name>-gateway-role``,
    ``<name>-gateway-policy``, ``<name>-gateway-pod-identity``) and the KEDA scaler role
    (``<name>-scaler-role``, ``<name>-scaler-policy``).

    Children (Kubernetes): ``<name>-service-account``, ``<name>-gateway-service-account``,
    ``<name>-handler`` (with a handler container), ``<name>-deployment``, ``<name>-pdb``,
    ``<name>-trigger-authentication``, ``<name>-scaled-object``, ``<name>-gateway-deployment``,
    ``<name>-gateway-service``, ``<name>-gateway-pdb``, ``<name>-ingress`` (with a load balancer).

    Args:
        name: component name.
        spec: the API.
        cluster: the Cluster component, or a :class:`~cortex_iac.components.handle.ClusterHandle`
            with ``region`` and ``keda_operator_role_arn``.
        opts: resource options.
        runtime_image: the serving runtime image (required: the gateway and the worker run it, and
            so do handler containers); a reference or an Output.

    Outputs: ``url`` (None without a load balancer), ``namespace``, ``queue_url``,
    ``dead_letter_queue_url``, ``bucket``, ``role_arn`` (the workers'), ``gateway_role_arn``.

    The worker Deployment's ``replicas`` (``init_replicas``) is set only at creation: KEDA owns it.
    """

    spec: AsyncApiSpec
    url: pulumi.Output[str | None]
    namespace: pulumi.Output[str]
    queue_url: pulumi.Output[str]
    dead_letter_queue_url: pulumi.Output[str]
    bucket: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    gateway_role_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        spec: AsyncApiSpec,
        cluster: Cluster | ClusterHandle,
        opts: pulumi.ResourceOptions | None = None,
        *,
        runtime_image: pulumi.Input[str] | None = None,
    ) -> None:
        handle, region, keda_role_arn = _check_args(name, spec, cluster, runtime_image)
        image_known = isinstance(runtime_image, str)
        image = runtime_image if isinstance(runtime_image, str) else _IMAGE_FROM_OUTPUT
        # The deployment checks `cortex validate` runs: kind, node groups, fit, the runtime image.
        check_deployment(handle.node_group_specs, [spec], runtime_image=image)
        namespace_name = handle.namespace_name
        context = async_api.AsyncContext(
            runtime_image=image,
            resources=async_api.AsyncResources(region=region),
            node_groups=None if handle.node_group_specs is None else tuple(handle.node_group_specs),
            https=handle.load_balancer is not None and handle.load_balancer.certificate_arn is not None,
            namespace=namespace_name,
        )
        objects = async_api.api_objects(spec, context)
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**handle.tags, API_NAME_LABEL: spec.name}

        # --- queues ---------------------------------------------------------------------------------
        dead_letters = aws.sqs.Queue(
            f"{name}-dead-letter-queue",
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
            visibility_timeout_seconds=contract.DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=child,
        )
        queue = aws.sqs.Queue(
            f"{name}-queue",
            # Standard, not FIFO (contract.FIFO): see docs/design.md.
            visibility_timeout_seconds=contract.DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
            message_retention_seconds=min(spec.queue.retention_days * 24 * 3600, MAX_QUEUE_RETENTION_SECONDS),
            receive_wait_time_seconds=contract.RECEIVE_WAIT_SECONDS,
            sqs_managed_sse_enabled=True,
            redrive_policy=dead_letters.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": spec.queue.max_attempts})),
            tags=tags,
            opts=child,
        )
        aws.sqs.RedriveAllowPolicy(
            f"{name}-dead-letter-queue-redrive-allow",
            queue_url=dead_letters.url,
            redrive_allow_policy=queue.arn.apply(
                lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})),
            opts=child,
        )
        for key, made in (("queue", queue), ("dead-letter-queue", dead_letters)):
            aws.sqs.QueuePolicy(
                f"{name}-{key}-policy", queue_url=made.url,
                policy=made.arn.apply(lambda arn: to_json(async_api.queue_policy(arn))), opts=child,
            )

        # --- payload and result store ------------------------------------------------------------------
        bucket_name = async_api.user_bucket(spec)
        bucket: pulumi.Output[str]
        store_ready: list[pulumi.Resource] = []
        if bucket_name is not None:
            bucket = pulumi.Output.from_input(bucket_name)
        else:
            bucket, store_ready = self._bucket(name, spec, region, tags)

        # --- roles ------------------------------------------------------------------------------------
        _, namespace = api_namespace(f"AsyncApi {name!r}", handle)
        worker_document = pulumi.Output.all(bucket, queue.arn, dead_letters.arn).apply(
            lambda v: to_json(async_api.worker_policy(spec, bucket=v[0], queue_arn=v[1], dead_letter_queue_arn=v[2],
                                                      region=region)))
        worker_waits: list[pulumi.Resource] = []
        role = api_identity(self, name, spec.name, "AsyncAPI worker", handle, namespace, worker_document,
                            policy_name="worker", waits=worker_waits)
        gateway_document = pulumi.Output.all(bucket, queue.arn).apply(
            lambda v: to_json(async_api.gateway_policy(spec, bucket=v[0], queue_arn=v[1], region=region)))
        gateway_waits: list[pulumi.Resource] = []
        gateway_role = api_identity(
            self, f"{name}-gateway", spec.name, "AsyncAPI gateway", handle, namespace, gateway_document,
            service_account=async_api.gateway_name(spec.name), policy_name="policy", cluster_policies=False,
            waits=gateway_waits,
        )
        # Named so that its auto-name (+ 8 characters) fits IAM's 64 even for a 42-character API name.
        scaler_role = aws.iam.Role(
            f"{name}-scaler-role",
            path=handle.queue_scaler_role_path,
            assume_role_policy=pulumi.Output.from_input(keda_role_arn).apply(
                lambda arn: to_json(async_api.scaler_trust_policy(arn))),
            description=f"Cortex AsyncAPI {spec.name}: KEDA reads its queue depths",
            tags=tags,
            opts=child,
        )
        scaler_policy = aws.iam.RolePolicy(
            f"{name}-scaler-policy",
            role=scaler_role.id,
            policy=pulumi.Output.all(queue.arn, dead_letters.arn).apply(
                lambda arns: to_json(async_api.scaler_policy(arns[0], arns[1]))),
            opts=child,
        )

        # --- Kubernetes objects ------------------------------------------------------------------------
        values: dict[str, pulumi.Input[str]] = {
            async_api.PLACEHOLDERS["queue_url"]: queue.url,
            async_api.PLACEHOLDERS["dead_letter_queue_url"]: dead_letters.url,
            async_api.PLACEHOLDERS["bucket"]: bucket,
            async_api.PLACEHOLDERS["scaler_role_arn"]: scaler_role.arn,
        }
        if not image_known:
            assert runtime_image is not None
            values[_IMAGE_FROM_OUTPUT] = runtime_image
        on_cluster = pulumi.ResourceOptions(
            parent=self, provider=handle.k8s_provider, depends_on=list(handle.addon_releases.values()))

        def make(key: str, obj: dict[str, Any] | None, *depends_on: pulumi.Resource,
                 ignore_changes: list[str] | None = None) -> Any:
            if obj is None:
                return None
            filled = with_values(obj, values)
            return kube_object(
                f"{name}-{key}", filled,
                pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(
                    depends_on=list(depends_on), ignore_changes=ignore_changes)),
                metadata=identity_placed(filled, namespace_name, namespace),
            )

        service_account = make("service-account", objects.service_account)
        gateway_account = make("gateway-service-account", objects.gateway_service_account)
        handler = make("handler", objects.handler_source)
        pod_inputs = [r for r in (service_account, handler) if r is not None]
        # Pods start with their rights (role, policy, association) and a store that is ready.
        deployment = make("deployment", objects.deployment, *pod_inputs, role, *worker_waits, *store_ready,
                          ignore_changes=["spec.replicas"])
        assert deployment is not None and gateway_account is not None
        make("pdb", objects.pod_disruption_budget)
        auth = make("trigger-authentication", objects.trigger_authentication, scaler_policy)
        assert auth is not None
        make("scaled-object", objects.scaled_object, deployment, auth)
        gateway = make("gateway-deployment", objects.gateway_deployment, gateway_account, gateway_role, *gateway_waits,
                       *store_ready)
        service = make("gateway-service", objects.gateway_service)
        make("gateway-pdb", objects.gateway_pod_disruption_budget)
        assert gateway is not None and service is not None

        url: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if handle.load_balancer is not None:
            ingress = make("ingress", objects.ingress, service, gateway)
            endpoint, https = spec.networking.endpoint, context.https
            url = ingress.status.apply(lambda status: _url(status, endpoint, https))

        self.spec = spec
        self.url = url
        self.namespace = namespace
        self.queue_url = queue.url
        self.dead_letter_queue_url = dead_letters.url
        self.bucket = bucket
        self.role_arn = role.arn
        self.gateway_role_arn = gateway_role.arn
        self.register_outputs({
            "url": self.url, "namespace": self.namespace, "queue_url": self.queue_url,
            "dead_letter_queue_url": self.dead_letter_queue_url, "bucket": self.bucket, "role_arn": self.role_arn,
            "gateway_role_arn": self.gateway_role_arn,
        })

    def _bucket(self, name: str, spec: AsyncApiSpec, region: str, tags: dict[str, str]
                ) -> tuple[pulumi.Output[str], list[pulumi.Resource]]:
        """The API's own bucket and its settings; returns its name and what the pods wait for."""
        child = pulumi.ResourceOptions(parent=self)
        # Deleting the API deletes what it stored: its results are only reachable through its gateway.
        bucket = aws.s3.Bucket(f"{name}-store", force_destroy=True, tags=tags, opts=child)
        public = aws.s3.BucketPublicAccessBlock(
            f"{name}-store-public-access-block", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child,
        )
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-store-ownership", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=child,
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-store-encryption", bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=(
                    aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"))),
            ],
            opts=child,
        )
        lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-store-lifecycle", bucket=bucket.id,
            rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-requests",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=async_api.key_prefix(spec)),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=spec.queue.retention_days),
                abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=ABORT_INCOMPLETE_UPLOADS_DAYS),
            )],
            opts=child,
        )
        # After the public access block: a policy is only accepted once it cannot be public.
        policy = aws.s3.BucketPolicy(
            f"{name}-store-policy", bucket=bucket.id,
            policy=bucket.bucket.apply(lambda b: to_json(async_api.bucket_policy(b, region))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public]),
        )
        return bucket.bucket, [public, ownership, encryption, lifecycle, policy]


def _url(status: Any, endpoint: str, https: bool) -> str | None:
    entries = getattr(getattr(status, "load_balancer", None), "ingress", None) or []
    hostname = next((e.hostname for e in entries if getattr(e, "hostname", None)), None)
    return None if hostname is None else routing.api_url(hostname, endpoint, https=https)


def _check_args(name: str, spec: object, cluster: object, runtime_image: object
                ) -> tuple[ClusterHandle, str, pulumi.Input[str]]:
    if not isinstance(spec, AsyncApiSpec):
        raise CortexError(f"AsyncApi {name!r}: spec must be an AsyncApiSpec, got {type(spec).__name__}")
    handle = cluster_handle(cluster, f"AsyncApi {name!r}")
    if runtime_image is None:
        raise CortexError(f"AsyncApi {name!r}: runtime_image is required: the gateway and the queue worker run "
                          "the serving runtime image (cortex_iac/serving/README.md)")
    if handle.region is None:
        raise CortexError(f"AsyncApi {name!r}: the cluster handle has no region (the queue scaler and the pods' "
                          "AWS SDKs need it); give ClusterHandle's region")
    if handle.keda_operator_role_arn is None:
        raise CortexError(f"AsyncApi {name!r}: the cluster has no KEDA operator role (KEDA reads the queue depths "
                          "with it); install KEDA with the Cluster, or give ClusterHandle's keda_operator_role_arn")
    return handle, handle.region, handle.keda_operator_role_arn
