"""IAM documents: trust policies for Pod Identity, IRSA and services; partitions."""

from __future__ import annotations

import json

import pytest

from cortex_iac.errors import CortexError
from cortex_iac.render import iam

PROVIDER_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC123"
ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/ABC123"


def test_pod_identity_trust_policy_admits_one_service_account_of_one_cluster_by_session_tags() -> None:
    assert iam.pod_identity_trust_policy("demo", "kube-system", "karpenter") == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                # The tags EKS Pod Identity puts on the session it requests.
                "Condition": {
                    "StringEquals": {
                        "aws:RequestTag/eks-cluster-name": "demo",
                        "aws:RequestTag/kubernetes-namespace": "kube-system",
                        "aws:RequestTag/kubernetes-service-account": "karpenter",
                    }
                },
            }
        ],
    }


def test_service_trust_policy_has_a_single_action_by_default() -> None:
    assert iam.service_trust_policy("ec2.amazonaws.com")["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]


@pytest.mark.parametrize("issuer", [ISSUER, f"https://{ISSUER}"])
def test_irsa_trust_policy_names_one_service_account_and_the_sts_audience(issuer: str) -> None:
    doc = iam.irsa_trust_policy(PROVIDER_ARN, issuer, "cortex-apis", "fraud-score")
    assert doc == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": PROVIDER_ARN},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{ISSUER}:sub": "system:serviceaccount:cortex-apis:fraud-score",
                        f"{ISSUER}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def test_irsa_trust_policy_refuses_an_empty_issuer() -> None:
    with pytest.raises(CortexError, match="oidc_issuer: empty"):
        iam.irsa_trust_policy(PROVIDER_ARN, "https://", "ns", "sa")


@pytest.mark.parametrize(
    ("region", "partition"),
    [("us-east-1", "aws"), ("eu-west-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")],
)
def test_partition_of(region: str, partition: str) -> None:
    assert iam.partition_of(region) == partition
    assert iam.aws_managed_policy_arn("ReadOnlyAccess", region) == f"arn:{partition}:iam::aws:policy/ReadOnlyAccess"


def test_managed_policy_arn_defaults_to_the_aws_partition() -> None:
    assert iam.aws_managed_policy_arn("AmazonEKS_CNI_Policy") == "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"


def test_only_the_commercial_partition_is_supported() -> None:
    iam.require_commercial_partition("ap-south-1", "cluster.yaml: region")
    with pytest.raises(CortexError) as e:
        iam.require_commercial_partition("cn-north-1", "cluster.yaml: region")
    assert str(e.value) == (
        "cluster.yaml: region: 'cn-north-1' is in the aws-cn partition; cortex_iac supports regions of the aws partition only"
    )


def test_to_json_round_trips_and_keeps_statement_order() -> None:
    doc = iam.policy_document([{"Sid": "B", "Effect": "Allow"}, {"Sid": "A", "Effect": "Deny"}])
    assert json.loads(iam.to_json(doc)) == doc
    assert [s["Sid"] for s in json.loads(iam.to_json(doc))["Statement"]] == ["B", "A"]


def test_an_s3_read_path_without_a_trailing_slash_grants_no_sibling_prefix() -> None:
    from cortex_iac.render.workload import iam_policy
    from cortex_iac.specs import RealtimeApiSpec

    spec = RealtimeApiSpec.model_validate({
        "name": "a", "kind": "RealtimeAPI", "pod": {"containers": [{"name": "c", "image": "nginx"}]},
        "iam": {"s3_read": ["s3://models/resnet50", "s3://models/shared/"]},
    })
    policy = iam_policy(spec)
    assert policy is not None
    read, listing = policy["Statement"]
    assert read["Resource"] == ["arn:aws:s3:::models/resnet50", "arn:aws:s3:::models/resnet50/*", "arn:aws:s3:::models/shared/*"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["resnet50", "resnet50/*", "shared/*"]}}
