"""Wiring shared by the components: a rendered custom object into a Pulumi resource."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource


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
