"""Rendered Kubernetes objects (plain dicts from ``cortex_iac.render``) into Pulumi resources, one
function for every kind the API components create, so each component lists only what it creates and
in which order (and the tests compare the resources' inputs with the rendered objects)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

_CLASSES: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "Ingress"): k8s.networking.v1.Ingress,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def kube_object(
    name: str,
    obj: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    *,
    metadata: pulumi.Input[Mapping[str, Any]] | None = None,
    **fields: Any,
) -> pulumi.CustomResource:
    """The Pulumi resource of the rendered built-in object ``obj``: its top-level fields (``spec``,
    ``data``, ``rules``, ``roleRef``, ...) as the class's arguments, ``metadata`` replacing the
    rendered metadata when given (e.g. with a namespace from an Output, so the object waits for
    it), and ``fields`` replacing top-level fields (e.g. ``data`` computed from Outputs). Raises
    KeyError for a kind not listed here (custom resources: ``_kube.custom_resource``)."""
    cls = _CLASSES[(obj["apiVersion"], obj["kind"])]
    args = {_CAMEL.sub("_", key).lower(): value for key, value in obj.items()
            if key not in ("apiVersion", "kind", "metadata")}
    args.update(fields)
    return cls(name, metadata=obj["metadata"] if metadata is None else metadata, opts=opts, **args)  # type: ignore[no-any-return]
