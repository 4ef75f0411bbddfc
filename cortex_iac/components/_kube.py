"""Wiring shared by the components: rendered objects into Pulumi resources."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, cast

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.meta.v1 import ObjectMetaArgsDict


def custom_resource(
    name: str,
    obj: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    *,
    metadata: pulumi.Input[Mapping[str, Any]] | None = None,
) -> CustomResource:
    """A ``CustomResource`` of the rendered object ``obj`` (apiVersion, kind, metadata, spec).

    ``metadata`` replaces the rendered metadata when given (e.g. with a namespace taken from an
    Output so the object waits for its namespace). apiVersion and kind stay plain strings: they make
    the resource's type token.
    """
    return CustomResource(
        name,
        api_version=obj["apiVersion"],
        kind=obj["kind"],
        metadata=obj["metadata"] if metadata is None else metadata,
        spec=obj["spec"],
        opts=opts,
    )


def object_meta(metadata: Mapping[str, Any]) -> ObjectMetaArgsDict:
    """Rendered ``metadata`` as the typed argument of the Kubernetes resource classes.

    The same keys and values (a copy of the mapping): the renderers use ObjectMeta's own field
    names, and their output is checked by the Kubernetes schema validators in the tests, so this
    only tells the type checker what the renderers' ``dict[str, Any]`` holds.
    """
    return cast(ObjectMetaArgsDict, dict(metadata))


def with_values(obj: Any, values: Mapping[str, pulumi.Input[str]]) -> Any:
    """A copy of the rendered ``obj`` in which every string equal to a key of ``values`` is that
    value (an Output known once AWS made a resource); the renderers write placeholders there
    (e.g. :data:`cortex_iac.render.async_api.PLACEHOLDERS`). Only whole strings are replaced."""
    if isinstance(obj, str):
        return values.get(obj, obj)
    if isinstance(obj, Mapping):
        return {key: with_values(value, values) for key, value in obj.items()}
    if isinstance(obj, list):
        return [with_values(value, values) for value in obj]
    return obj


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@functools.cache
def _kube_classes() -> dict[tuple[str, str], Any]:
    # Looked up once: each attribute of the provider SDK's lazily loaded modules is a lookup through
    # its loader, and a plan makes thousands of these objects.
    import pulumi_kubernetes as k8s

    return {
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


def kube_object(
    name: str,
    obj: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    *,
    metadata: pulumi.Input[Mapping[str, Any]] | None = None,
    **fields: Any,
) -> Any:
    """The Pulumi resource of one rendered object, by its kind: the typed class of the built-in
    kinds the renderers make, with the object's top-level fields (``spec``, ``data``, ``rules``,
    ``roleRef``, ...) as the class's arguments; :func:`custom_resource` for the others.
    ``metadata`` replaces the rendered metadata when given (e.g. with a namespace from an Output,
    so the object waits for it), and ``fields`` replace top-level fields (e.g. ``data`` computed
    from Outputs). Typed ``Any``: the provider SDK's classes are not followed by the type checker."""
    classes = _kube_classes()
    meta = obj["metadata"] if metadata is None else metadata
    cls = classes.get((obj["apiVersion"], obj["kind"]))
    if cls is None:
        return custom_resource(name, {**obj, **fields}, opts, metadata=meta)
    args = {_CAMEL.sub("_", key).lower(): value for key, value in obj.items()
            if key not in ("apiVersion", "kind", "metadata")}
    args.update(fields)
    return cls(name, metadata=meta, opts=opts, **args)
