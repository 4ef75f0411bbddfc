"""``cortex:api:RealtimeApi``: one Cortex RealtimeAPI (one model) on a Cortex cluster.

The objects come from :func:`cortex_iac.render.realtime.api_objects`; this module only turns them
into Pulumi resources and adds the AWS side (an IAM role through EKS Pod Identity).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pulumi

from cortex_iac.components._kube import kube_object
from cortex_iac.components.handle import ClusterHandle, ClusterRef, cluster_handle
from cortex_iac.components.identity import api_identity, api_namespace, policy_attachment_names
from cortex_iac.components.identity import placed as identity_placed
from cortex_iac.errors import CortexError
from cortex_iac.render import realtime, routing
from cortex_iac.specs import RealtimeApiSpec
from cortex_iac.specs.deployment import check_deployment

__all__ = ["TYPE", "ApiCluster", "ClusterHandle", "ClusterRef", "RealtimeApi", "policy_attachment_names"]

if TYPE_CHECKING:
    from cortex_iac.components.cluster import Cluster

TYPE = "cortex:api:RealtimeApi"
# What the renderer gets as the runtime image when the real one is an Output (known at deploy time);
# the component then puts the Output into the handler container.
_IMAGE_FROM_OUTPUT = "cortex-serving-runtime:from-output"


ApiCluster = ClusterHandle
"""The former name of what a RealtimeApi takes of its cluster: :class:`ClusterHandle`."""


class RealtimeApi(pulumi.ComponentResource):
    """A Cortex RealtimeAPI: the model's containers behind an Envoy sidecar that enforces
    ``max_concurrency`` / ``max_queue_length``, autoscaled by KEDA on in-flight requests (to zero
    through the KEDA HTTP add-on), routed at ``networking.endpoint`` on the cluster's shared load
    balancer, with a least-privilege IAM role. What each object holds and why:
    :mod:`cortex_iac.render.realtime` and docs/design.md.

    Args:
        name: component name; children are ``<name>-service-account``, ``<name>-envoy-config``
            (image APIs: a handler container's pod has no sidecar),
            ``<name>-handler`` (with a handler container), ``<name>-deployment``, ``<name>-service``,
            ``<name>-pdb``, ``<name>-scaled-object``,
            ``<name>-interceptor-route`` (scale-to-zero only), ``<name>-ingress`` (with a load
            balancer), ``<name>-role``, ``<name>-s3-read`` (with ``iam.s3_read``),
            ``<name>-<policy name>-<hash of its ARN>`` per cluster policy (see
            :func:`policy_attachment_names`), ``<name>-pod-identity``.
        spec: the API.
        cluster: the Cluster component, or a :class:`~cortex_iac.components.handle.ClusterHandle` of
            a cluster made elsewhere.
        opts: resource options.
        runtime_image: the serving runtime image a container giving a ``handler`` runs (a reference
            such as ``<registry>/cortex-serving:<tag>``, or an Output such as
            :attr:`~cortex_iac.components.runtime_image.RuntimeImage.image_ref`); default none, then
            such containers are refused. The handler file is read from ``handler.path`` relative to
            the API file (:func:`~cortex_iac.specs.read_handler_sources`).

    Outputs: ``url`` (None without a load balancer; unknown until the ALB exists), ``namespace``,
    ``service_name``, ``role_arn``.

    Pulumi sets the Deployment's ``replicas`` (``init_replicas``) only at creation: KEDA owns the
    field afterwards (``ignore_changes``; with server-side apply Pulumi then leaves it to the
    autoscaler's field manager instead of fighting it).
    """

    spec: RealtimeApiSpec
    url: pulumi.Output[str | None]
    namespace: pulumi.Output[str]
    service_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        spec: RealtimeApiSpec,
        cluster: Cluster | ClusterHandle,
        opts: pulumi.ResourceOptions | None = None,
        *,
        runtime_image: pulumi.Input[str] | None = None,
    ) -> None:
        cluster = _check_args(name, spec, cluster)
        image_known = runtime_image is None or isinstance(runtime_image, str)
        # The deployment checks `cortex validate` runs: node groups, fit, the runtime image.
        check_deployment(cluster.node_group_specs, [spec], runtime_image=runtime_image if image_known else _IMAGE_FROM_OUTPUT)  # type: ignore[arg-type]
        namespace_name = cluster.namespace_name
        context = realtime.ApiContext(
            node_groups=None if cluster.node_group_specs is None else tuple(cluster.node_group_specs),
            https=cluster.load_balancer is not None and cluster.load_balancer.certificate_arn is not None,
            namespace=namespace_name,
            prometheus_address=str(cluster.prometheus_url),
            runtime_image=runtime_image if image_known else _IMAGE_FROM_OUTPUT,  # type: ignore[arg-type]
        )
        objects = realtime.api_objects(spec, context)
        deployment_spec = objects.deployment["spec"]
        if not image_known:
            deployment_spec = _with_runtime_image(deployment_spec, spec, runtime_image)  # type: ignore[arg-type]
        super().__init__(TYPE, name, None, opts)

        # The objects are rendered with the plain name; those placed in the namespace take it from
        # the cluster's output instead, so they wait for the namespace.
        namespace_name, namespace = api_namespace(f"RealtimeApi {name!r}", cluster)
        on_cluster = pulumi.ResourceOptions(
            parent=self, provider=cluster.k8s_provider, depends_on=list(cluster.addon_releases.values())
        )

        def placed(obj: dict[str, Any]) -> dict[str, Any]:
            return identity_placed(obj, namespace_name, namespace)

        def make(key: str, obj: dict[str, Any], *depends_on: pulumi.Resource,
                 ignore_changes: list[str] | None = None, spec: Any = None) -> Any:
            if spec is not None:
                obj = {**obj, "spec": spec}
            return kube_object(f"{name}-{key}", obj, pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(
                depends_on=list(depends_on) or None, ignore_changes=ignore_changes)), metadata=placed(obj))

        service_account = make("service-account", objects.service_account)
        pod_inputs: list[pulumi.Resource] = [service_account]
        if objects.envoy_config is not None:  # none in a pod whose runtime serves traffic itself
            # Its name changes with its content, so a new config is created before the old one goes.
            pod_inputs.append(make("envoy-config", objects.envoy_config))
        if objects.handler_source is not None:
            # Named by its content too: a changed handler is created before the old one goes.
            pod_inputs.append(make("handler", objects.handler_source))
        # The scale-from-zero handover (docs/design.md): the route to the pods never comes before a
        # ready pod, and the route through the interceptor comes before the API may scale to zero.
        # min_replicas >= 1: ScaledObject (raises the replica count) -> Deployment (waits for a
        # ready pod, render.realtime.routing_gate) -> Ingress. min_replicas 0: Deployment ->
        # ScaledObject, and Service -> InterceptorRoute -> Ingress -> ScaledObject.
        scale_to_zero = spec.autoscaling.min_replicas == 0
        scaled_object_first = None if scale_to_zero else make("scaled-object", objects.scaled_object)
        deployment = make("deployment", objects.deployment, *pod_inputs,
                          *([] if scaled_object_first is None else [scaled_object_first]),
                          ignore_changes=["spec.replicas"], spec=deployment_spec)
        service = make("service", objects.service)
        make("pdb", objects.pod_disruption_budget)
        route_after: list[pulumi.Resource] = [service] if scale_to_zero else [service, deployment]
        if objects.interceptor_route is not None:
            route_after = [make("interceptor-route", objects.interceptor_route, service)]

        url: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        ingress = None
        if cluster.load_balancer is not None:
            ingress = make("ingress", objects.ingress, *route_after)
            endpoint, https = routing.endpoint_of(spec), context.https
            url = ingress.status.apply(lambda status: _url(status, endpoint, https))
        if scale_to_zero:
            make("scaled-object", objects.scaled_object, deployment, *([] if ingress is None else [ingress]))

        role = api_identity(self, name, spec.name, "RealtimeAPI", cluster, namespace, objects.iam_policy)

        self.spec = spec
        self.url = url
        self.namespace = namespace
        self.service_name = service.metadata.name
        self.role_arn = role.arn
        self.register_outputs(
            {"url": self.url, "namespace": self.namespace, "service_name": self.service_name, "role_arn": self.role_arn}
        )


def _with_runtime_image(
    deployment_spec: dict[str, Any], spec: RealtimeApiSpec, image: pulumi.Input[str]
) -> dict[str, Any]:
    # A copy of the rendered Deployment spec whose handler container runs ``image`` (an Output).
    handlers = {c.name for c in spec.pod.containers if c.handler is not None}
    result = copy.deepcopy(deployment_spec)
    for container in result["template"]["spec"]["containers"]:
        if container["name"] in handlers:
            container["image"] = image
    return result


def _url(status: Any, endpoint: str, https: bool) -> str | None:
    # The load balancer controller writes the ALB's DNS name into the Ingress status; Pulumi waits
    # for it when creating the Ingress.
    entries = getattr(getattr(status, "load_balancer", None), "ingress", None) or []
    hostname = next((e.hostname for e in entries if getattr(e, "hostname", None)), None)
    return None if hostname is None else routing.api_url(hostname, endpoint, https=https)


def _check_args(name: str, spec: RealtimeApiSpec, cluster: object) -> ClusterHandle:
    if not isinstance(spec, RealtimeApiSpec):
        raise CortexError(f"RealtimeApi {name!r}: spec must be a RealtimeApiSpec, got {type(spec).__name__}")
    handle = cluster_handle(cluster, f"RealtimeApi {name!r}")
    if handle.prometheus_url is None:
        raise CortexError(f"RealtimeApi {name!r}: the cluster has no Prometheus, which the API's autoscaling queries")
    if spec.autoscaling.min_replicas == 0 and handle.keda_http_interceptor is None:
        raise CortexError(
            f"RealtimeApi {name!r}: autoscaling.min_replicas: 0 needs the KEDA HTTP add-on, which the cluster lacks"
        )
    return handle
