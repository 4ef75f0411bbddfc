"""An API's identity and placement, shared by every API component: the IAM role its pods get
through EKS Pod Identity, and its objects' place in the cluster's API namespace.

The add-ons (``components/addons.py`` ``pod_identity_role``) make roles for charts' service
accounts with customer-managed policies; an API's role differs: an inline policy of exactly what
its spec asks (``iam.s3_read``), the cluster's ``iam_policy_arns`` attached, and children named
after the API component.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from typing import Any, cast

import pulumi
import pulumi_aws as aws

from cortex_iac.components.handle import ClusterHandle
from cortex_iac.errors import CortexError
from cortex_iac.render import iam
from cortex_iac.render.envoy import API_NAME_LABEL


def api_namespace(component: str, cluster: ClusterHandle) -> tuple[str, pulumi.Output[str]]:
    """The API namespace's plain name (what rendered objects embed) and an Output of it that waits
    for the namespace (what objects placed in it use); refuses an Output resolving to another name."""
    name = cluster.namespace_name

    def same(resolved: str) -> str:
        if resolved != name:
            raise CortexError(
                f"{component}: the cluster's API namespace is {resolved!r}, but its name was given as {name!r} "
                "(ClusterHandle's api_namespace_name must be the name api_namespace resolves to)"
            )
        return resolved

    return name, pulumi.Output.from_input(cluster.api_namespace).apply(same)


def placed(obj: dict[str, Any], namespace_name: str, namespace: pulumi.Input[str]) -> dict[str, Any]:
    """The metadata of a rendered object, with its namespace taken from ``namespace`` (an Output
    that waits for the namespace) when it is the API namespace ``namespace_name``."""
    meta: dict[str, Any] = copy.deepcopy(obj["metadata"])
    if meta.get("namespace") == namespace_name:
        meta["namespace"] = namespace
    return meta


def policy_attachment_names(name: str, arns: Sequence[str]) -> list[tuple[str, str, str | None]]:
    """``(arn, child name, former child name)`` of each distinct policy ARN attached to an API's role.

    The name is ``<name>-<policy name>-<first 8 hex digits of the ARN's sha256>``: the same policy
    name in two paths or accounts gives two names, and a name never depends on the other ARNs. The
    former name, ``<name>-<policy name>``, is returned (for an alias) where it was unambiguous, i.e.
    where it can have been deployed; None otherwise. Without the alias Pulumi would create the
    renamed attachment and then delete the old one, and deleting an attachment detaches the policy.
    """
    distinct = list(dict.fromkeys(arns))
    policy_names = [arn.rsplit("/", 1)[-1] for arn in distinct]
    return [
        (arn, f"{name}-{policy}-{hashlib.sha256(arn.encode()).hexdigest()[:8]}",
         f"{name}-{policy}" if policy_names.count(policy) == 1 else None)
        for arn, policy in zip(distinct, policy_names, strict=True)
    ]


def api_identity(
    parent: pulumi.Resource,
    name: str,
    api_name: str,
    kind: str,
    cluster: ClusterHandle,
    namespace: pulumi.Input[str],
    inline_policy: pulumi.Input[dict[str, Any]] | pulumi.Output[str] | None,
    *,
    service_account: str | None = None,
    policy_name: str = "s3-read",
    cluster_policies: bool = True,
    description: str | None = None,
    waits: list[pulumi.Resource] | None = None,
) -> aws.iam.Role:
    """The API's role and what gives it to the API's service account (``service_account``, default
    ``api_name``): ``<name>-role`` (trusting only that service account of that cluster and
    namespace), ``<name>-<policy_name>`` (``inline_policy``, when given: a document, an Output of
    one, e.g. of ARNs of resources the component creates, or its JSON as an Output), one attachment per cluster policy ARN (:func:`policy_attachment_names`; none
    without ``cluster_policies``) and ``<name>-pod-identity``. Returns the role; ``waits``, when
    given, gets what pods must wait for to start with their rights (policy, attachments, association)."""
    made: list[pulumi.Resource] = []
    account = api_name if service_account is None else service_account
    tags = {**cluster.tags, API_NAME_LABEL: api_name}
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{name}-role",
        assume_role_policy=pulumi.Output.all(cluster.cluster_name, namespace).apply(
            lambda names: iam.to_json(iam.pod_identity_trust_policy(names[0], names[1], account))
        ),
        description=description or f"Cortex {kind} {api_name}",
        tags=tags,
        opts=child,
    )
    if inline_policy is not None:
        made.append(aws.iam.RolePolicy(f"{name}-{policy_name}", role=role.id, policy=_policy_json(inline_policy),
                                       opts=child))
    for arn, attachment_name, former_name in policy_attachment_names(name, cluster.iam_policy_arns if cluster_policies else ()):
        made.append(aws.iam.RolePolicyAttachment(
            attachment_name,
            role=role.name,
            policy_arn=arn,
            opts=pulumi.ResourceOptions(parent=parent, aliases=[pulumi.Alias(name=former_name)] if former_name else None),
        ))
    made.append(aws.eks.PodIdentityAssociation(
        f"{name}-pod-identity",
        cluster_name=cluster.cluster_name,
        namespace=namespace,
        service_account=account,
        role_arn=role.arn,
        tags=tags,
        opts=child,
    ))
    if waits is not None:
        waits.extend(made)
    return role


def _policy_json(policy: pulumi.Input[dict[str, Any]] | pulumi.Output[str]) -> pulumi.Input[str]:
    """A policy document's JSON, whether given as a document, an Output of one, or JSON already."""
    if isinstance(policy, dict):
        return iam.to_json(policy)
    as_output = cast("pulumi.Output[dict[str, Any] | str]", pulumi.Output.from_input(policy))
    return as_output.apply(lambda value: value if isinstance(value, str) else iam.to_json(value))
