"""``cortex:api:TrafficSplitter``: one endpoint in front of several RealtimeAPIs, by weight, with an
optional shadow that receives copies.

The objects come from :func:`cortex_iac.render.splitter.splitter_objects` (the router: an Envoy
Deployment with its ConfigMap, Service, PodDisruptionBudget and Ingress); this module only turns them
into Pulumi resources that depend on the target APIs. Why a router and not ALB weights or Gateway
API: docs/design.md, "TrafficSplitter".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from cortex_iac.components._kube import kube_object
from cortex_iac.components.handle import cluster_handle
from cortex_iac.components.identity import api_namespace
from cortex_iac.components.identity import placed as identity_placed
from cortex_iac.components.realtime_api import RealtimeApi
from cortex_iac.errors import CortexError
from cortex_iac.render import routing, splitter
from cortex_iac.specs import RealtimeApiSpec, TrafficSplitterSpec
from cortex_iac.specs.deployment import check_deployment

__all__ = ["TYPE", "TrafficSplitter"]

TYPE = "cortex:api:TrafficSplitter"


class TrafficSplitter(pulumi.ComponentResource):
    """A Cortex TrafficSplitter: ``networking.endpoint`` on the shared load balancer, each request
    sent to one of the splitter's RealtimeAPIs by weight, and ``weight`` percent of them copied to
    the shadow (if any), whose answers are ignored and can never slow down, fail or change a primary
    answer. Scale-to-zero targets are reached through the KEDA HTTP interceptor, which holds a
    request until a replica is ready, as for a direct request. A weight change (or a target added or
    removed) changes only the router's ConfigMap and Deployment, which rolls without failing a
    request (its pods drain like the API pods).

    Args:
        name: component name; children are ``<name>-envoy-config``, ``<name>-deployment``,
            ``<name>-service``, ``<name>-pdb`` and ``<name>-ingress`` (with a load balancer).
        spec: the splitter.
        cluster: the Cluster component, or a :class:`~cortex_iac.components.handle.ClusterHandle`.
        apis: the targets by API name: their ``RealtimeApi`` components (the router then waits for
            them) or, for APIs deployed elsewhere, their ``RealtimeApiSpec``. Other APIs may be
            given; every target of the spec must be.
        opts: resource options.

    Outputs: ``url`` (None without a load balancer; unknown until the ALB exists), ``namespace``,
    ``service_name``.
    """

    url: pulumi.Output[str | None]
    namespace: pulumi.Output[str]
    service_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        spec: TrafficSplitterSpec,
        cluster: Any,
        apis: Mapping[str, RealtimeApi | RealtimeApiSpec],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        handle = cluster_handle(cluster, f"TrafficSplitter {name!r}")
        specs, components = _targets(name, spec, apis)
        # The checks `cortex validate` runs (kind support, endpoints, targets that are RealtimeAPIs).
        check_deployment(None, [*specs.values(), spec])
        targets = splitter.targets_of(spec, specs)
        for target in targets:
            if target.scale_to_zero and handle.keda_http_interceptor is None:
                raise CortexError(
                    f"TrafficSplitter {name!r}: target {target.name!r} scales to zero (autoscaling.min_replicas: 0), "
                    "which needs the KEDA HTTP add-on, which the cluster lacks"
                )
        namespace_name = handle.namespace_name
        https = handle.load_balancer is not None and handle.load_balancer.certificate_arn is not None
        interceptor = None if handle.keda_http_interceptor is None else splitter.interceptor_upstream(
            handle.keda_http_interceptor)
        objects = splitter.splitter_objects(spec, targets, namespace_name, https=https, interceptor=interceptor)
        super().__init__(TYPE, name, None, opts)

        _, namespace = api_namespace(f"TrafficSplitter {name!r}", handle)
        on_cluster = pulumi.ResourceOptions(
            parent=self, provider=handle.k8s_provider, depends_on=list(handle.addon_releases.values())
        )

        # Rendered with the plain namespace name; placed in the one from the cluster's output, so the
        # objects wait for the namespace.
        def placed(obj: dict[str, Any]) -> Any:  # ObjectMeta's own field names, as rendered
            return identity_placed(obj, namespace_name, namespace)

        def make(key: str, obj: dict[str, Any], *depends_on: pulumi.Resource) -> Any:
            opts = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=list(depends_on) or None))
            return kube_object(f"{name}-{key}", obj, opts, metadata=placed(obj))

        # Named by its content: a new config is created before the old one goes.
        config = make("envoy-config", objects.envoy_config)
        # The router starts once its targets exist (their Services, InterceptorRoutes).
        deployment = make("deployment", objects.deployment, config, *components)
        service = make("service", objects.service)
        make("pdb", objects.pod_disruption_budget)
        url: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if handle.load_balancer is not None:
            # The route is published once the router runs.
            ingress = make("ingress", objects.ingress, service, deployment)
            endpoint = spec.networking.endpoint
            url = ingress.status.apply(lambda status: _url(status, endpoint, https))

        self.url = url
        self.namespace = namespace
        self.service_name = service.metadata.name
        self.register_outputs({"url": self.url, "namespace": self.namespace, "service_name": self.service_name})


def _targets(
    name: str, spec: object, apis: object
) -> tuple[dict[str, RealtimeApiSpec], list[pulumi.Resource]]:
    """The targets' specs by name and the components to wait for; one clear line for a bad argument."""
    if not isinstance(spec, TrafficSplitterSpec):
        raise CortexError(f"TrafficSplitter {name!r}: spec must be a TrafficSplitterSpec, got {type(spec).__name__}")
    if not isinstance(apis, Mapping):
        raise CortexError(f"TrafficSplitter {name!r}: apis must be a mapping of API name to RealtimeApi or "
                          f"RealtimeApiSpec, got {type(apis).__name__}")
    specs: dict[str, RealtimeApiSpec] = {}
    components: list[pulumi.Resource] = []
    for index, target in enumerate(spec.apis):
        if target.name == spec.name:
            raise CortexError(f"TrafficSplitter {name!r}: apis[{index}] {target.name!r} is the splitter itself "
                              "(names are unique in a cluster: its Service and Deployment would clash)")
        if target.name not in apis:
            given = ", ".join(sorted(map(str, apis))) or "none"
            raise CortexError(
                f"TrafficSplitter {name!r}: apis[{index}] {target.name!r} is not among the apis given "
                f"({given}); pass its RealtimeApi component, or its RealtimeApiSpec if it is deployed elsewhere"
            )
        value = apis[target.name]
        if isinstance(value, RealtimeApi):
            found = getattr(value, "spec", None)
            if not isinstance(found, RealtimeApiSpec):
                raise CortexError(f"TrafficSplitter {name!r}: the RealtimeApi given for {target.name!r} has no spec "
                                  "attribute (needs a RealtimeApi that keeps its spec)")
            components.append(value)
        elif isinstance(value, RealtimeApiSpec):
            found = value
        else:
            raise CortexError(f"TrafficSplitter {name!r}: apis[{target.name!r}] must be a RealtimeApi or a "
                              f"RealtimeApiSpec (a TrafficSplitter routes to RealtimeAPIs), got {type(value).__name__}")
        if found.name != target.name:
            raise CortexError(f"TrafficSplitter {name!r}: apis[{target.name!r}] is the API {found.name!r}")
        specs[target.name] = found
    return specs, components


def _url(status: Any, endpoint: str, https: bool) -> str | None:
    entries = getattr(getattr(status, "load_balancer", None), "ingress", None) or []
    hostname = next((e.hostname for e in entries if getattr(e, "hostname", None)), None)
    return None if hostname is None else routing.api_url(hostname, endpoint, https=https)

