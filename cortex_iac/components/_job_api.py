"""What ``cortex:api:BatchApi`` and ``cortex:api:TaskApi`` share: one component class whose kind is
a class attribute (the two differ only in what :mod:`cortex_iac.render.jobs` renders for them).

The objects and policies come from :mod:`cortex_iac.render.jobs`; this module turns them into
Pulumi resources, creates the DynamoDB job table, and puts the table's name, region and the
cluster's name (Outputs) where the rendered objects hold placeholders.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pulumi
import pulumi_aws as aws

from cortex_iac.components._kube import kube_object
from cortex_iac.components.handle import ClusterHandle, cluster_handle
from cortex_iac.components.identity import api_identity, api_namespace
from cortex_iac.components.identity import placed as identity_placed
from cortex_iac.errors import CortexError
from cortex_iac.jobs.contract import JOB_TEMPLATE_KEY, job_namespace
from cortex_iac.render import jobs, routing
from cortex_iac.specs import BatchApiSpec, TaskApiSpec
from cortex_iac.specs.deployment import check_deployment

# What the renderer gets as the runtime image when the real one is an Output (known at deploy time).
_IMAGE_FROM_OUTPUT = "cortex-serving-runtime:from-output"


class JobApi(pulumi.ComponentResource):
    """A Cortex BatchAPI or TaskAPI (see :class:`~cortex_iac.components.batch_api.BatchApi` and
    :class:`~cortex_iac.components.task_api.TaskApi` for the children and outputs)."""

    TYPE: ClassVar[str]
    KIND: ClassVar[str]
    SPEC_CLASS: ClassVar[type[BatchApiSpec] | type[TaskApiSpec]]

    spec: Any
    url: pulumi.Output[str | None]
    namespace: pulumi.Output[str]
    job_namespace: pulumi.Output[str]
    service_name: pulumi.Output[str]
    table_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    gateway_role_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        spec: Any,
        cluster: Any,
        opts: pulumi.ResourceOptions | None = None,
        *,
        runtime_image: pulumi.Input[str] | None = None,
    ) -> None:
        kind = type(self).__name__
        if not isinstance(spec, self.SPEC_CLASS):
            raise CortexError(f"{kind} {name!r}: spec must be a {self.SPEC_CLASS.__name__}, got {type(spec).__name__}")
        handle: ClusterHandle = cluster_handle(cluster, f"{kind} {name!r}")
        image_known = runtime_image is None or isinstance(runtime_image, str)
        image = runtime_image if image_known else _IMAGE_FROM_OUTPUT
        # The deployment checks `cortex validate` runs: node groups, fit, kind support, the runtime image.
        check_deployment(handle.node_group_specs, [spec], runtime_image=image)  # type: ignore[arg-type]
        assert isinstance(image, str)  # check_deployment refuses a job API without one
        cluster_name = handle.cluster_name if isinstance(handle.cluster_name, str) else jobs.CLUSTER_PLACEHOLDER
        context = jobs.JobContext(
            cluster_name=cluster_name,
            runtime_image=image,
            node_groups=None if handle.node_group_specs is None else tuple(handle.node_group_specs),
            https=handle.load_balancer is not None and handle.load_balancer.certificate_arn is not None,
            namespace=handle.namespace_name,
            egress_cidrs=tuple(handle.api_egress_cidrs),
        )
        objects = jobs.job_api_objects(spec, context)
        super().__init__(self.TYPE, name, None, opts)

        child = pulumi.ResourceOptions(parent=self)
        table = aws.dynamodb.Table(f"{name}-jobs", **jobs.job_table({**handle.tags, "cortex.dev/api-name": spec.name}),
                                   opts=child)
        cluster_output = pulumi.Output.from_input(handle.cluster_name)
        # Where the rendered objects say "<job-table-name>" etc., the values once the table exists.
        values: dict[str, Any] = {
            jobs.TABLE_PLACEHOLDER: table.name,
            jobs.REGION_PLACEHOLDER: table.arn.apply(lambda arn: arn.split(":")[3]),
            jobs.CLUSTER_PLACEHOLDER: cluster_output,
            _IMAGE_FROM_OUTPUT: runtime_image,
        }

        namespace_name, namespace = api_namespace(f"{kind} {name!r}", handle)
        on_cluster = pulumi.ResourceOptions(
            parent=self, provider=handle.k8s_provider, depends_on=list(handle.addon_releases.values())
        )

        def placed(obj: dict[str, Any]) -> dict[str, Any]:
            return identity_placed(obj, namespace_name, namespace)

        # The job namespace is the component's own: its objects take its name from the resource.
        jobs_namespace = kube_object(f"{name}-namespace", objects.namespace, on_cluster)
        jobs_ns = jobs_namespace.metadata.name
        jobs_ns_name = job_namespace(spec.name)

        def in_jobs(obj: dict[str, Any]) -> dict[str, Any]:
            return identity_placed(obj, jobs_ns_name, jobs_ns)

        kube_object(f"{name}-network-policy", objects.network_policy, on_cluster, metadata=in_jobs(objects.network_policy))
        worker_account = kube_object(f"{name}-service-account", objects.service_account, on_cluster,
                                     metadata=in_jobs(objects.service_account))
        if objects.handler_source is not None:
            # Named by its content: a changed handler is created before the old one goes.
            kube_object(f"{name}-handler", objects.handler_source, on_cluster, metadata=in_jobs(objects.handler_source))
        gateway_account = kube_object(f"{name}-gateway-service-account", objects.gateway_service_account, on_cluster,
                                      metadata=placed(objects.gateway_service_account))
        rbac_role = kube_object(f"{name}-gateway-rbac-role", objects.role, on_cluster, metadata=in_jobs(objects.role))
        binding = kube_object(
            f"{name}-gateway-rbac-binding", objects.role_binding,
            pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[rbac_role, gateway_account])),
            metadata=in_jobs(objects.role_binding),
            subjects=jobs.substitute(objects.role_binding["subjects"], {namespace_name: namespace}),
        )
        template_text: str = objects.job_template["data"][JOB_TEMPLATE_KEY]
        # Its data holds the table's name, unknown in a plan; the checksum annotation is known there and
        # stands for the data (a change of it is the replacement a change of the data is).
        template = kube_object(
            f"{name}-job-template", objects.job_template,
            pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(replace_on_changes=["metadata.annotations"])),
            metadata=placed(objects.job_template),
            data={JOB_TEMPLATE_KEY: _filled(template_text, values)},
        )
        deployment = kube_object(
            f"{name}-deployment", objects.gateway_deployment,
            pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(
                depends_on=[gateway_account, binding, template, worker_account])),
            metadata=placed(objects.gateway_deployment),
            spec=jobs.substitute(objects.gateway_deployment["spec"], values),
        )
        service = kube_object(f"{name}-service", objects.gateway_service, on_cluster,
                              metadata=placed(objects.gateway_service))
        kube_object(f"{name}-pdb", objects.gateway_pdb, on_cluster, metadata=placed(objects.gateway_pdb))

        url: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if handle.load_balancer is not None:
            # Published once the gateways run.
            ingress = kube_object(
                f"{name}-ingress", objects.ingress,
                pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[service, deployment])),
                metadata=placed(objects.ingress),
            )
            endpoint, https = routing.endpoint_of(spec), context.https
            url = ingress.status.apply(lambda status: _url(status, endpoint, https))

        arns = pulumi.Output.all(table.arn, cluster_output)
        # Whether the pods' role has a policy depends on the spec only (asked with any table ARN).
        has_worker_policy = jobs.worker_policy(spec, _EXAMPLE_TABLE_ARN, "c") is not None
        worker_policy = arns.apply(lambda v: jobs.worker_policy(spec, v[0], v[1]) or {})
        role = api_identity(self, name, spec.name, self.KIND, handle, jobs_ns,
                            worker_policy if has_worker_policy else None, policy_name="policy")
        gateway_role = api_identity(
            self, f"{name}-gateway", spec.name, self.KIND, handle, namespace,
            arns.apply(lambda v: jobs.gateway_policy(spec, v[0], v[1])),
            service_account=jobs.gateway_name(spec.name), policy_name="policy", cluster_policies=False,
            description=f"Cortex {self.KIND} {spec.name} job gateway",
        )

        self.spec = spec
        self.url = url
        self.namespace = namespace
        self.job_namespace = jobs_ns
        self.service_name = service.metadata.name
        self.table_name = table.name
        self.role_arn = role.arn
        self.gateway_role_arn = gateway_role.arn
        self.register_outputs({
            "url": self.url, "namespace": self.namespace, "job_namespace": self.job_namespace,
            "service_name": self.service_name, "table_name": self.table_name, "role_arn": self.role_arn,
            "gateway_role_arn": self.gateway_role_arn,
        })


_EXAMPLE_TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t"


def _filled(text: str, values: dict[str, Any]) -> pulumi.Output[str]:
    # The rendered text with each placeholder it holds replaced by its (Output) value. The values
    # (table, region and cluster names, an image reference) hold no character JSON would escape.
    present = [key for key in values if key in text and values[key] is not None]
    def fill(resolved: list[Any]) -> str:
        result = text
        for key, value in zip(present, resolved, strict=True):
            result = result.replace(key, str(value))
        return result
    return pulumi.Output.all(*[values[key] for key in present]).apply(fill)


def _url(status: Any, endpoint: str, https: bool) -> str | None:
    entries = getattr(getattr(status, "load_balancer", None), "ingress", None) or []
    hostname = next((e.hostname for e in entries if getattr(e, "hostname", None)), None)
    return None if hostname is None else routing.api_url(hostname, endpoint, https=https)
