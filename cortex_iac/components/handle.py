"""The read-only cluster handle every API component takes: what an API needs of its cluster.

The :class:`~cortex_iac.components.cluster.Cluster` component exposes one as ``cluster.handle``;
for a cluster made elsewhere (another stack, another tool), fill one in by hand. API components
accept either (:func:`cluster_handle`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pulumi

from cortex_iac.errors import CortexError
from cortex_iac.render.addons import LoadBalancerSettings
from cortex_iac.render.autoscaling import PROMETHEUS_ADDRESS
from cortex_iac.render.routing import INTERCEPTOR_PROXY_SERVICE
from cortex_iac.render.workload import API_NAMESPACE
from cortex_iac.specs import NodeGroupSpec
from cortex_iac.specs.cluster import ANYWHERE

if TYPE_CHECKING:
    import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class ClusterHandle:
    """What an API component needs of its cluster; immutable once made.

    - ``k8s_provider``: the Kubernetes provider of the cluster.
    - ``cluster_name``: the EKS cluster's name (for Pod Identity associations).
    - ``api_namespace``: the shared API namespace (default :data:`~cortex_iac.render.workload.API_NAMESPACE`),
      plain or as an Output that resolves once the namespace exists (API objects then wait for it).
    - ``api_namespace_name``: the same name as plain text, needed when ``api_namespace`` is an
      Output, since rendered objects embed it (the autoscaling query, the interceptor's Host);
      default: ``api_namespace`` itself.
    - ``node_group_specs``: the cluster's Cortex node groups (None: unknown; pods then go to any
      node labelled ``cortex.dev/node-group``).
    - ``load_balancer``: the shared API load balancer's settings (None: no AWS Load Balancer
      Controller, so APIs get no route and no URL).
    - ``prometheus_url``: the Prometheus the ScaledObjects query (None: no Prometheus).
    - ``keda_http_interceptor``: the KEDA HTTP add-on's interceptor Service (None: not installed,
      so ``min_replicas: 0`` is refused).
    - ``iam_policy_arns``: policies attached to every API's role (cluster.yaml's ``iam_policy_arns``).
    - ``tags``: tags of every AWS resource (cluster.yaml's ``tags`` + ``cortex.dev/cluster-name``).
    - ``addon_releases``: what the APIs' Kubernetes objects must wait for (KEDA and its CRDs, the
      load balancer controller and its IngressClass, Prometheus), by name.
    - ``region``: the cluster's AWS region (AsyncAPI: the KEDA scaler and the SDKs in its pods need
      it); None: unknown, which AsyncApi refuses.
    - ``keda_operator_role_arn``: KEDA's own IAM role (EKS Pod Identity of ``keda/keda-operator``),
      which each AsyncAPI's queue scaler role trusts; None: KEDA has no AWS role, which AsyncApi refuses.
    - ``queue_scaler_role_path``: the IAM path of the AsyncAPI scaler roles, under which KEDA's role
      may assume roles (:func:`~cortex_iac.render.addons.queue_scaler_role_path`); default ``/``.
    - ``api_egress_cidrs``: where API and job pods may connect beyond DNS and AWS credentials
      (cluster.yaml's ``api_egress_cidrs``; the job namespaces' NetworkPolicies take it, the API
      namespace's is the cluster's own); default the internet.

    A cluster made elsewhere needs, made once: the namespace of
    :func:`~cortex_iac.render.workload.render_namespace`, the IngressClass of
    :func:`~cortex_iac.render.routing.ingress_class_objects`, KEDA (+ the HTTP add-on for
    scale-to-zero) in namespace ``keda``, the AWS Load Balancer Controller, the EKS Pod Identity
    agent, and a Prometheus scraping the API pods (:func:`~cortex_iac.render.envoy.prometheus_scrape_job`).
    """

    k8s_provider: k8s.Provider
    cluster_name: pulumi.Input[str]
    api_namespace: pulumi.Input[str] = API_NAMESPACE
    api_namespace_name: str | None = None
    node_group_specs: Sequence[NodeGroupSpec] | None = None
    load_balancer: LoadBalancerSettings | None = None
    prometheus_url: str | None = PROMETHEUS_ADDRESS
    keda_http_interceptor: str | None = INTERCEPTOR_PROXY_SERVICE
    iam_policy_arns: Sequence[str] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    addon_releases: Mapping[str, pulumi.Resource] = field(default_factory=dict)
    region: str | None = None
    keda_operator_role_arn: pulumi.Input[str] | None = None
    queue_scaler_role_path: str = "/"
    api_egress_cidrs: Sequence[str] = ANYWHERE

    def __post_init__(self) -> None:
        # Read-only: copies the caller cannot change afterwards.
        if self.node_group_specs is not None:
            object.__setattr__(self, "node_group_specs", tuple(self.node_group_specs))
        object.__setattr__(self, "iam_policy_arns", tuple(self.iam_policy_arns))
        object.__setattr__(self, "api_egress_cidrs", tuple(self.api_egress_cidrs))
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))
        object.__setattr__(self, "addon_releases", MappingProxyType(dict(self.addon_releases)))

    @property
    def namespace_name(self) -> str:
        """The API namespace's name as plain text (see ``api_namespace_name``)."""
        name = self.api_namespace if self.api_namespace_name is None else self.api_namespace_name
        if not isinstance(name, str):
            raise CortexError(
                "ClusterHandle: api_namespace is an Output; give the namespace's name as api_namespace_name too "
                "(the API's objects embed it before the Output resolves)"
            )
        return name

    @property
    def namespaces(self) -> Mapping[str, str]:
        """``{"apis": namespace_name}``; kept for programs written against ``ClusterRef``."""
        return {"apis": self.namespace_name}


ClusterRef = ClusterHandle
"""The former name of :class:`ClusterHandle` (same class)."""


def cluster_handle(cluster: Any, component: str) -> ClusterHandle:
    """The handle of ``cluster``: a :class:`ClusterHandle` as is, or the ``handle`` of a
    :class:`~cortex_iac.components.cluster.Cluster`. ``component`` names the caller in the error."""
    if isinstance(cluster, ClusterHandle):
        return cluster
    handle = getattr(cluster, "handle", None)
    if isinstance(handle, ClusterHandle):
        return handle
    if all(hasattr(cluster, key) for key in _FIELDS) and hasattr(cluster, "namespaces"):
        # An object with the attributes a handle has (programs written before the handle existed).
        names = cluster.namespaces
        return ClusterHandle(**{key: getattr(cluster, key) for key in _FIELDS},
                             api_namespace_name=names.get("apis") if isinstance(names, Mapping) else None)
    raise CortexError(
        f"{component}: cluster must be a Cluster component or a ClusterHandle, got {type(cluster).__name__}"
    )


_FIELDS = ("k8s_provider", "cluster_name", "api_namespace", "node_group_specs", "load_balancer", "prometheus_url",
           "keda_http_interceptor", "iam_policy_arns", "tags", "addon_releases")
