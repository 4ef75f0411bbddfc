"""IAM policy and trust documents shared by the components (pure; plain dicts).

Roles for pods come in two kinds, and both are here so every component builds them the same way:

- EKS Pod Identity (:func:`pod_identity_trust_policy`): the cluster's add-ons and the APIs use it.
  An ``aws.eks.PodIdentityAssociation`` gives the role to a service account, and the
  ``eks-pod-identity-agent`` add-on (always installed by the Cluster) hands out the credentials;
  the trust policy names no account, and admits only sessions EKS tags with the same cluster,
  namespace and service account, so no other association can use the role.
- IRSA (:func:`irsa_trust_policy`): for tools that only know web-identity tokens. The trust
  policy names the cluster's OIDC provider and the one service account allowed.

No function needs the account id: resources are named by ARNs that come from other resources'
outputs, or with ``*`` in the account field where the resource is not created by us.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cortex_iac.errors import CortexError

POLICY_VERSION = "2012-10-17"

# The service principal EKS Pod Identity assumes roles as; it also tags the session with the
# cluster, namespace and service account, hence sts:TagSession.
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
POD_IDENTITY_ACTIONS = ("sts:AssumeRole", "sts:TagSession")

# The audience EKS writes into projected service-account tokens for IRSA.
IRSA_AUDIENCE = "sts.amazonaws.com"

_PARTITIONS = (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-iso-", "aws-iso"), ("us-isob-", "aws-iso-b"))


def partition_of(region: str) -> str:
    """The AWS partition of a region: ``aws`` for commercial regions, ``aws-cn``, ``aws-us-gov``, ..."""
    for prefix, partition in _PARTITIONS:
        if region.startswith(prefix):
            return partition
    return "aws"


def require_commercial_partition(region: str, where: str) -> None:
    """Raise CortexError unless ``region`` is in the ``aws`` partition.

    The bundled add-on policies (e.g. the AWS Load Balancer Controller's) hard-code ``arn:aws:``.
    ``where`` names the field, e.g. ``cluster.yaml: region``.
    """
    partition = partition_of(region)
    if partition != "aws":
        raise CortexError(
            f"{where}: {region!r} is in the {partition} partition; cortex_iac supports regions of the "
            "aws partition only"
        )


def policy_document(statements: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """An IAM policy document holding ``statements`` (in the given order)."""
    return {"Version": POLICY_VERSION, "Statement": [dict(s) for s in statements]}


def service_trust_policy(service: str, actions: Sequence[str] = ("sts:AssumeRole",)) -> dict[str, Any]:
    """Trust policy letting an AWS service principal (e.g. ``ec2.amazonaws.com``) assume the role.

    ``actions`` defaults to ``sts:AssumeRole``.
    """
    return policy_document(
        [{"Effect": "Allow", "Principal": {"Service": service}, "Action": _one_or_list(actions)}]
    )


def pod_identity_trust_policy(cluster_name: str, namespace: str, service_account: str) -> dict[str, Any]:
    """Trust policy of a role used through EKS Pod Identity (``pods.eks.amazonaws.com``) by one
    service account: ``StringEquals`` on the session tags EKS requests for the cluster, namespace
    and service account of the association.
    """
    statement = service_trust_policy(POD_IDENTITY_PRINCIPAL, POD_IDENTITY_ACTIONS)["Statement"][0]
    # Tag keys from the EKS User Guide, "List of session tags added by EKS Pod Identity".
    statement["Condition"] = {
        "StringEquals": {
            "aws:RequestTag/eks-cluster-name": cluster_name,
            "aws:RequestTag/kubernetes-namespace": namespace,
            "aws:RequestTag/kubernetes-service-account": service_account,
        }
    }
    return policy_document([statement])


def irsa_trust_policy(oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str) -> dict[str, Any]:
    """Trust policy of a role for one service account through IRSA.

    ``oidc_provider_arn`` is the cluster's IAM OIDC provider; ``oidc_issuer`` its issuer, with or
    without ``https://`` (the condition keys use it without). Only tokens for
    ``system:serviceaccount:<namespace>:<service_account>`` with the STS audience are accepted.
    """
    issuer = oidc_issuer.removeprefix("https://")
    if not issuer:
        raise CortexError("irsa_trust_policy oidc_issuer: empty; expected e.g. oidc.eks.<region>.amazonaws.com/id/<id>")
    return policy_document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{issuer}:aud": IRSA_AUDIENCE,
                    }
                },
            }
        ]
    )


def aws_managed_policy_arn(name: str, region: str = "") -> str:
    """ARN of an AWS managed policy, e.g. ``AmazonEKSWorkerNodePolicy``, in the region's partition
    (default ``aws``)."""
    return f"arn:{partition_of(region)}:iam::aws:policy/{name}"


def to_json(document: Mapping[str, Any]) -> str:
    """A policy document as the JSON text IAM resources take (keys in the order given)."""
    return json.dumps(document, indent=2)


def _one_or_list(values: Sequence[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else list(values)
