"""Wiring shared by the components: rendered objects into Pulumi resources."""

from __future__ import annotations

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
