"""``cortex:eks:NodeGroup``: one Cortex node group as Karpenter objects in an existing cluster."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

from cortex_iac.components._kube import custom_resource
from cortex_iac.errors import SpecError
from cortex_iac.render import karpenter
from cortex_iac.specs import NodeGroupSpec
from cortex_iac.specs.loader import revalidated


class NodeGroup(pulumi.ComponentResource):
    """A Cortex node group: an ``EC2NodeClass``, a dynamic ``NodePool`` and, with ``min_instances``,
    static floor ``NodePool``\\ s (see :mod:`cortex_iac.render.karpenter` for how each field maps).

    Needs Karpenter v1 with its CRDs in the cluster, and for ``min_instances > 0`` the chart value
    ``settings.featureGates.staticCapacity: true``. The Kubernetes provider comes from ``opts``
    (``providers=[k8s]``); ``opts.depends_on`` also holds back the children, so pass the Karpenter
    Helm release there.

    Args:
        name: component name; children are ``<name>-node-class``, ``<name>-node-pool``,
            ``<name>-floor-node-pool`` and ``<name>-floor-on-demand-node-pool``, and for
            Inferentia groups ``<name>-node-overlay``.
        spec: the node group.
        cluster_name: the EKS cluster's name, a plain string (object names derive from it, and a
            preview must know them); Kubernetes object names and the ``cortex.dev/cluster-name``
            tag derive from it.
        node_role_name: IAM role of the nodes (already allowed to join the cluster).
        subnet_selector_tags: tags of the subnets for nodes (default ``karpenter.sh/discovery:
            <cluster_name>``).
        security_group_selector_tags: tags of the nodes' security groups (same default).
        tags: extra tags for instances, volumes and network interfaces (default none).

    Outputs: ``node_class_name``, ``node_pool_name`` (the dynamic pool) and
    ``floor_node_pool_names`` (empty when ``min_instances`` is 0).
    """

    node_class_name: pulumi.Output[str]
    node_pool_name: pulumi.Output[str]
    floor_node_pool_names: list[pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        spec: NodeGroupSpec,
        *,
        cluster_name: str,
        node_role_name: pulumi.Input[str],
        subnet_selector_tags: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None,
        security_group_selector_tags: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None,
        tags: Mapping[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        _check_args(name, spec, cluster_name, node_role_name, subnet_selector_tags, security_group_selector_tags)
        spec = revalidated(spec, f"NodeGroup {name!r}")  # a spec made in code runs the spec's rules too
        karpenter.check_tags(tags or {})
        super().__init__("cortex:eks:NodeGroup", name, None, opts)

        # Render with plain values where they are plain, placing Outputs (the node role's name) as
        # they are: a preview then knows every field but the role, instead of nothing at all.
        default_selector = {karpenter.DISCOVERY_TAG: cluster_name}
        node_class = karpenter.node_class(
            cluster_name,
            spec,
            node_role=node_role_name,  # type: ignore[arg-type]  # an Input, placed as-is
            # Inputs too, placed as-is.
            subnet_selector_tags=subnet_selector_tags if subnet_selector_tags is not None else default_selector,  # type: ignore[arg-type]
            security_group_selector_tags=(
                security_group_selector_tags if security_group_selector_tags is not None else default_selector  # type: ignore[arg-type]
            ),
            tags=tags,
        )
        # The CRDs (installed with Karpenter) must exist first: what the component waits for, its
        # children wait for too.
        child = pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None)
        node_class_resource = custom_resource(f"{name}-node-class", node_class, child)
        # Pools after their class, so they are deleted first too.
        after_class = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[node_class_resource]))
        pools = karpenter.node_pools(cluster_name, spec)
        for suffix, pool in pools.items():
            custom_resource(f"{name}{suffix}-node-pool", pool, after_class)
        # Inferentia groups: tell Karpenter's scheduling simulation about the huge pages the node
        # class pre-allocates, or it never launches a node for a pod that requests them.
        overlay = karpenter.node_overlay(cluster_name, spec)
        if overlay is not None:
            custom_resource(f"{name}-node-overlay", overlay, child)

        self.node_class_name = pulumi.Output.from_input(node_class["metadata"]["name"])
        self.node_pool_name = pulumi.Output.from_input(pools[""]["metadata"]["name"])
        self.floor_node_pool_names = [pulumi.Output.from_input(p["metadata"]["name"]) for s, p in pools.items() if s]
        self.register_outputs(
            {
                "node_class_name": self.node_class_name,
                "node_pool_name": self.node_pool_name,
                "floor_node_pool_names": self.floor_node_pool_names,
            }
        )


def _check_args(
    name: str,
    spec: object,
    cluster_name: object,
    node_role_name: object,
    subnet_selector_tags: object,
    security_group_selector_tags: object,
) -> None:
    if not isinstance(name, str) or not name:
        raise SpecError(f"NodeGroup: name must be a non-empty string, got {name!r}")
    if not isinstance(spec, NodeGroupSpec):
        raise SpecError(f"NodeGroup {name!r}: spec must be a NodeGroupSpec, got {type(spec).__name__}")
    if not isinstance(cluster_name, str) or not cluster_name:
        raise SpecError(f"NodeGroup {name!r}: cluster_name must be a non-empty string, got {cluster_name!r}")
    if node_role_name is None or node_role_name == "":
        raise SpecError(f"NodeGroup {name!r}: node_role_name is required")
    for arg, value in (
        ("subnet_selector_tags", subnet_selector_tags),
        ("security_group_selector_tags", security_group_selector_tags),
    ):
        # An empty selector would match every subnet or security group in the account.
        if isinstance(value, Mapping) and not value:
            raise SpecError(f"NodeGroup {name!r}: {arg} must not be empty (it would match everything)")
