"""``cortex:api:AsyncApi`` under the recording mock engine: exact AWS children and inputs, the
rendered Kubernetes objects with the AWS values filled in, least-privilege roles, stability."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from cortex_iac.components.async_api import DEAD_LETTER_RETENTION_SECONDS, TYPE, AsyncApi
from cortex_iac.components.handle import ClusterHandle
from cortex_iac.errors import CortexError, SpecError
from cortex_iac.plan.engine import FAKE_ACCOUNT, FAKE_REGION, Recording, record
from cortex_iac.queue import contract
from cortex_iac.render import async_api, iam
from cortex_iac.render.addons import LoadBalancerSettings
from cortex_iac.render.async_api import AsyncContext, AsyncResources, api_objects
from cortex_iac.specs import AsyncApiSpec, NodeGroupSpec, load_apis
from tests.needs import missing

STACK = "urn:pulumi:test::cortex::"
LB = LoadBalancerSettings("internet-facing", ("0.0.0.0/0",), None)
NODE_GROUPS = [NodeGroupSpec.model_validate({"name": "cpu", "instance_type": "m5.xlarge"})]
POLICY = "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"
KEDA_ROLE = "arn:aws:iam::123456789012:role/cortex-test-keda-operator-role"
RUNTIME = "registry.example/cortex-serving:1"
SCALER_PATH = "/cortex/cortex-test/queue-scalers/"
TAGS = {"team": "ml", "cortex.dev/cluster-name": "cortex-test"}


def _api(name: str = "summarize", image: str = "registry.example/model:1", **extra: Any) -> AsyncApiSpec:
    data = {"name": name, "kind": "AsyncAPI", "pod": {"max_concurrency": 2, "containers": [{"name": "api", "image": image}]},
            **extra}
    (spec,) = load_apis([copy.deepcopy(data)], origin="test")
    assert isinstance(spec, AsyncApiSpec)
    return spec


def _handle(provider: Any, **extra: Any) -> ClusterHandle:
    values: dict[str, Any] = {
        "k8s_provider": provider, "cluster_name": "cortex-test", "node_group_specs": NODE_GROUPS, "load_balancer": LB,
        "iam_policy_arns": [POLICY], "tags": TAGS, "region": FAKE_REGION, "keda_operator_role_arn": KEDA_ROLE,
        "queue_scaler_role_path": SCALER_PATH, **extra,
    }
    return ClusterHandle(**values)


def _program(*specs: AsyncApiSpec, runtime_image: Any = RUNTIME, **handle: Any) -> Callable[[], None]:
    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        cluster = _handle(provider, **handle)
        for spec in specs:
            api = AsyncApi(spec.name, spec, cluster, runtime_image=runtime_image)
            pulumi.export(f"{spec.name}-queue", api.queue_url)
            pulumi.export(f"{spec.name}-bucket", api.bucket)

    return program


def _children(rec: Recording, name: str) -> list[tuple[str, str]]:
    component = rec.find(TYPE, name)
    return sorted((r.type, r.name) for r in rec.children(component.urn))


AWS_CHILDREN = [
    ("aws:sqs/queue:Queue", "summarize-dead-letter-queue"),
    ("aws:sqs/queue:Queue", "summarize-queue"),
    ("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy", "summarize-dead-letter-queue-redrive-allow"),
    ("aws:sqs/queuePolicy:QueuePolicy", "summarize-queue-policy"),
    ("aws:sqs/queuePolicy:QueuePolicy", "summarize-dead-letter-queue-policy"),
    ("aws:iam/role:Role", "summarize-role"),
    ("aws:iam/rolePolicy:RolePolicy", "summarize-worker"),
    ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "summarize-CloudWatchAgentServerPolicy-110c90ad"),
    ("aws:eks/podIdentityAssociation:PodIdentityAssociation", "summarize-pod-identity"),
    ("aws:iam/role:Role", "summarize-gateway-role"),
    ("aws:iam/rolePolicy:RolePolicy", "summarize-gateway-policy"),
    ("aws:eks/podIdentityAssociation:PodIdentityAssociation", "summarize-gateway-pod-identity"),
    ("aws:iam/role:Role", "summarize-scaler-role"),
    ("aws:iam/rolePolicy:RolePolicy", "summarize-scaler-policy"),
]
BUCKET_CHILDREN = [
    ("aws:s3/bucket:Bucket", "summarize-store"),
    ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "summarize-store-public-access-block"),
    ("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "summarize-store-ownership"),
    ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
     "summarize-store-encryption"),
    ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "summarize-store-lifecycle"),
    ("aws:s3/bucketPolicy:BucketPolicy", "summarize-store-policy"),
]
KUBE_CHILDREN = [
    ("kubernetes:core/v1:ServiceAccount", "summarize-service-account"),
    ("kubernetes:core/v1:ServiceAccount", "summarize-gateway-service-account"),
    ("kubernetes:apps/v1:Deployment", "summarize-deployment"),
    ("kubernetes:policy/v1:PodDisruptionBudget", "summarize-pdb"),
    ("kubernetes:keda.sh/v1alpha1:TriggerAuthentication", "summarize-trigger-authentication"),
    ("kubernetes:keda.sh/v1alpha1:ScaledObject", "summarize-scaled-object"),
    ("kubernetes:apps/v1:Deployment", "summarize-gateway-deployment"),
    ("kubernetes:core/v1:Service", "summarize-gateway-service"),
    ("kubernetes:policy/v1:PodDisruptionBudget", "summarize-gateway-pdb"),
    ("kubernetes:networking.k8s.io/v1:Ingress", "summarize-ingress"),
]


def _arn(service: str, name: str) -> str:
    return f"arn:aws:{service}:{FAKE_REGION}:{FAKE_ACCOUNT}:{name}"


def _url(name: str) -> str:
    return f"https://sqs.{FAKE_REGION}.amazonaws.com/{FAKE_ACCOUNT}/{name}"


def test_children_types_names_and_parents() -> None:
    rec = record(_program(_api()))
    assert _children(rec, "summarize") == sorted(AWS_CHILDREN + BUCKET_CHILDREN + KUBE_CHILDREN)
    component = rec.find(TYPE, "summarize")
    assert {r.parent for r in rec.resources if r.type not in (TYPE, "pulumi:providers:kubernetes")} == {component.urn}
    for r in rec.resources:
        if r.type.startswith("kubernetes:"):
            assert r.provider == f"{STACK}pulumi:providers:kubernetes::k8s", r.name
    assert rec.outputs == {"summarize-queue": _url("summarize-queue"), "summarize-bucket": "summarize-store"}


def test_a_user_bucket_gets_no_bucket_resources_and_the_prefix_below_it() -> None:
    spec = _api(queue={"bucket": "s3://their-bucket/ml/"})
    rec = record(_program(spec))
    assert _children(rec, "summarize") == sorted(AWS_CHILDREN + KUBE_CHILDREN)
    assert rec.outputs["summarize-bucket"] == "their-bucket"
    worker = json.loads(rec.find("aws:iam/rolePolicy:RolePolicy", "summarize-worker").inputs["policy"])
    assert worker["Statement"][0]["Resource"] == "arn:aws:s3:::their-bucket/ml/workloads/summarize/*"


def test_queues_redrive_after_max_attempts_encrypted_and_tls_only() -> None:
    spec = _api(queue={"max_attempts": 5, "retention_days": 3})
    rec = record(_program(spec))
    tags = {**TAGS, "cortex.dev/api-name": "summarize"}
    dlq = rec.find("aws:sqs/queue:Queue", "summarize-dead-letter-queue")
    assert dlq.inputs == {"messageRetentionSeconds": DEAD_LETTER_RETENTION_SECONDS,
                          "visibilityTimeoutSeconds": contract.DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
                          "sqsManagedSseEnabled": True, "tags": tags}
    queue = rec.find("aws:sqs/queue:Queue", "summarize-queue")
    assert "fifoQueue" not in queue.inputs  # standard (contract.FIFO)
    assert not contract.FIFO
    assert json.loads(queue.inputs.pop("redrivePolicy")) == {
        "deadLetterTargetArn": _arn("sqs", "summarize-dead-letter-queue"), "maxReceiveCount": 5}
    assert queue.inputs == {"visibilityTimeoutSeconds": contract.DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
                            "messageRetentionSeconds": 3 * 24 * 3600,
                            "receiveWaitTimeSeconds": contract.RECEIVE_WAIT_SECONDS,
                            "sqsManagedSseEnabled": True, "tags": tags}
    allow = rec.find("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy", "summarize-dead-letter-queue-redrive-allow")
    assert allow.inputs["queueUrl"] == _url("summarize-dead-letter-queue")
    assert json.loads(allow.inputs["redriveAllowPolicy"]) == {
        "redrivePermission": "byQueue", "sourceQueueArns": [_arn("sqs", "summarize-queue")]}
    for key in ("queue", "dead-letter-queue"):
        policy = rec.find("aws:sqs/queuePolicy:QueuePolicy", f"summarize-{key}-policy")
        assert policy.inputs["queueUrl"] == _url(f"summarize-{key}")
        assert json.loads(policy.inputs["policy"]) == async_api.queue_policy(_arn("sqs", f"summarize-{key}"))


def test_long_retention_keeps_queued_requests_as_long_as_sqs_allows() -> None:
    rec = record(_program(_api(queue={"retention_days": 30})))
    assert rec.find("aws:sqs/queue:Queue", "summarize-queue").inputs["messageRetentionSeconds"] == 14 * 24 * 3600


def test_bucket_is_private_encrypted_tls_only_and_expires_the_api_prefix() -> None:
    rec = record(_program(_api(queue={"retention_days": 9})))
    bucket = rec.find("aws:s3/bucket:Bucket", "summarize-store")
    assert bucket.inputs == {"forceDestroy": True, "tags": {**TAGS, "cortex.dev/api-name": "summarize"}}
    block = rec.find("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "summarize-store-public-access-block")
    assert block.inputs == {"bucket": "summarize-store-id", "blockPublicAcls": True, "blockPublicPolicy": True,
                            "ignorePublicAcls": True, "restrictPublicBuckets": True}
    ownership = rec.find("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "summarize-store-ownership")
    assert ownership.inputs == {"bucket": "summarize-store-id", "rule": {"objectOwnership": "BucketOwnerEnforced"}}
    encryption = rec.find("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                          "summarize-store-encryption")
    assert encryption.inputs == {"bucket": "summarize-store-id",
                                 "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}
    lifecycle = rec.find("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "summarize-store-lifecycle")
    assert lifecycle.inputs == {"bucket": "summarize-store-id", "rules": [{
        "id": "expire-requests", "status": "Enabled", "filter": {"prefix": "workloads/summarize/"},
        "expiration": {"days": 9}, "abortIncompleteMultipartUpload": {"daysAfterInitiation": 1}}]}
    policy = rec.find("aws:s3/bucketPolicy:BucketPolicy", "summarize-store-policy")
    assert json.loads(policy.inputs["policy"]) == async_api.bucket_policy("summarize-store", FAKE_REGION)
    assert block.urn in policy.dependencies


def test_kubernetes_inputs_are_the_rendered_objects_with_the_aws_values() -> None:
    spec = _api(autoscaling={"min_replicas": 0, "max_replicas": 3})
    rec = record(_program(spec))
    resources = AsyncResources(
        queue_url=_url("summarize-queue"), dead_letter_queue_url=_url("summarize-dead-letter-queue"),
        bucket="summarize-store", scaler_role_arn=_arn("iam", "summarize-scaler-role"), region=FAKE_REGION)
    objects = api_objects(spec, AsyncContext(runtime_image=RUNTIME, resources=resources, node_groups=tuple(NODE_GROUPS)))
    expected = {
        ("kubernetes:core/v1:ServiceAccount", "summarize-service-account"): objects.service_account,
        ("kubernetes:core/v1:ServiceAccount", "summarize-gateway-service-account"): objects.gateway_service_account,
        ("kubernetes:apps/v1:Deployment", "summarize-deployment"): objects.deployment,
        ("kubernetes:policy/v1:PodDisruptionBudget", "summarize-pdb"): objects.pod_disruption_budget,
        ("kubernetes:keda.sh/v1alpha1:TriggerAuthentication", "summarize-trigger-authentication"):
            objects.trigger_authentication,
        ("kubernetes:keda.sh/v1alpha1:ScaledObject", "summarize-scaled-object"): objects.scaled_object,
        ("kubernetes:apps/v1:Deployment", "summarize-gateway-deployment"): objects.gateway_deployment,
        ("kubernetes:core/v1:Service", "summarize-gateway-service"): objects.gateway_service,
        ("kubernetes:policy/v1:PodDisruptionBudget", "summarize-gateway-pdb"): objects.gateway_pod_disruption_budget,
        ("kubernetes:networking.k8s.io/v1:Ingress", "summarize-ingress"): objects.ingress,
    }
    for (type_, name), obj in expected.items():
        assert rec.find(type_, name).inputs == obj, name
    text = json.dumps([r.inputs for r in rec.resources])
    assert not any(placeholder in text for placeholder in async_api.PLACEHOLDERS.values())


def _statements(rec: Recording, name: str) -> list[dict[str, Any]]:
    document = json.loads(rec.find("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])
    return list(document["Statement"])


def test_no_api_role_has_a_wildcard_action_or_resource() -> None:
    rec = record(_program(_api(iam={"s3_read": ["s3://models/summarize/"]})))
    policies = rec.of_type("aws:iam/rolePolicy:RolePolicy")
    assert sorted(p.name for p in policies) == ["summarize-gateway-policy", "summarize-scaler-policy",
                                                 "summarize-worker"]
    for policy in policies:
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert actions and all("*" not in action for action in actions), (policy.name, statement)
            assert resources and all(r != "*" and ":*" not in r for r in resources), (policy.name, statement)


def test_each_role_grants_exactly_its_process_on_its_own_queue_and_prefix() -> None:
    rec = record(_program(_api()))
    queue, dlq = _arn("sqs", "summarize-queue"), _arn("sqs", "summarize-dead-letter-queue")
    worker = {s["Sid"]: s for s in _statements(rec, "summarize-worker")}
    assert worker["Queue"]["Action"] == list(contract.WORKER_SQS_ACTIONS) and worker["Queue"]["Resource"] == queue
    assert worker["DeadLetterQueue"]["Action"] == list(contract.WORKER_DLQ_SQS_ACTIONS)
    assert worker["DeadLetterQueue"]["Resource"] == dlq
    assert worker["StoreObjects"]["Resource"] == "arn:aws:s3:::summarize-store/workloads/summarize/*"
    gateway = {s["Sid"]: s for s in _statements(rec, "summarize-gateway-policy")}
    assert set(gateway) == {"StoreObjects", "StoreList", "Queue"}
    assert gateway["Queue"] == {"Sid": "Queue", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": queue}
    assert _statements(rec, "summarize-scaler-policy") == [
        {"Sid": "QueueDepth", "Effect": "Allow", "Action": ["sqs:GetQueueAttributes"], "Resource": [queue, dlq]}]


def test_roles_trust_only_their_service_accounts_and_keda() -> None:
    rec = record(_program(_api()))
    worker = rec.find("aws:iam/role:Role", "summarize-role")
    assert json.loads(worker.inputs["assumeRolePolicy"]) == iam.pod_identity_trust_policy(
        "cortex-test", "cortex-apis", "summarize")
    gateway = rec.find("aws:iam/role:Role", "summarize-gateway-role")
    assert json.loads(gateway.inputs["assumeRolePolicy"]) == iam.pod_identity_trust_policy(
        "cortex-test", "cortex-apis", "summarize-gateway")
    scaler = rec.find("aws:iam/role:Role", "summarize-scaler-role")
    assert scaler.inputs["path"] == SCALER_PATH
    assert json.loads(scaler.inputs["assumeRolePolicy"]) == async_api.scaler_trust_policy(KEDA_ROLE)
    associations = {r.name: r.inputs for r in rec.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")}
    assert {name: (a["serviceAccount"], a["roleArn"]) for name, a in associations.items()} == {
        "summarize-pod-identity": ("summarize", _arn("iam", "summarize-role")),
        "summarize-gateway-pod-identity": ("summarize-gateway", _arn("iam", "summarize-gateway-role")),
    }
    # The cluster's policies are for the API's own containers, not for the gateway.
    attachments = [r.name for r in rec.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")]
    assert attachments == ["summarize-CloudWatchAgentServerPolicy-110c90ad"]


def test_pods_wait_for_their_roles_and_the_store() -> None:
    rec = record(_program(_api()))
    deployment = rec.find("kubernetes:apps/v1:Deployment", "summarize-deployment")
    for type_, name in [("aws:iam/role:Role", "summarize-role"),
                        ("aws:iam/rolePolicy:RolePolicy", "summarize-worker"),
                        ("aws:eks/podIdentityAssociation:PodIdentityAssociation", "summarize-pod-identity"),
                        ("aws:s3/bucketPolicy:BucketPolicy", "summarize-store-policy"),
                        ("kubernetes:core/v1:ServiceAccount", "summarize-service-account")]:
        assert rec.find(type_, name).urn in deployment.dependencies, name
    gateway = rec.find("kubernetes:apps/v1:Deployment", "summarize-gateway-deployment")
    for type_, name in [("aws:iam/role:Role", "summarize-gateway-role"),
                        ("aws:iam/rolePolicy:RolePolicy", "summarize-gateway-policy"),
                        ("aws:eks/podIdentityAssociation:PodIdentityAssociation", "summarize-gateway-pod-identity")]:
        assert rec.find(type_, name).urn in gateway.dependencies, name
    scaled = rec.find("kubernetes:keda.sh/v1alpha1:ScaledObject", "summarize-scaled-object")
    assert deployment.urn in scaled.dependencies
    assert rec.find("kubernetes:keda.sh/v1alpha1:TriggerAuthentication", "summarize-trigger-authentication").urn in (
        scaled.dependencies)


def _inputs_by_urn(rec: Recording) -> dict[str, dict[str, Any]]:
    return {r.urn: r.inputs for r in rec.resources}


def test_changing_one_image_changes_only_that_worker_deployment() -> None:
    before = _inputs_by_urn(record(_program(_api("a"), _api("b"))))
    after = _inputs_by_urn(record(_program(_api("a", image="registry.example/model:2"), _api("b"))))
    assert before.keys() == after.keys()
    changed = sorted(urn.rsplit("::", 1)[-1] for urn in before if before[urn] != after[urn])
    assert changed == ["a-deployment"]


def test_a_runtime_image_output_reaches_the_gateway_and_the_worker() -> None:
    rec = record(_program(_api(), runtime_image=pulumi.Output.from_input("registry.example/cortex-serving:7")))
    for name in ("summarize-deployment", "summarize-gateway-deployment"):
        pod = rec.find("kubernetes:apps/v1:Deployment", name).inputs["spec"]["template"]["spec"]
        images = {c["name"]: c["image"] for c in pod["containers"]}
        ours = images.get(async_api.WORKER_CONTAINER) or images["gateway"]
        assert ours == "registry.example/cortex-serving:7", name


@pytest.mark.parametrize(("handle", "runtime_image", "message"), [
    ({"region": None}, RUNTIME, "the cluster handle has no region"),
    ({"keda_operator_role_arn": None}, RUNTIME, "the cluster has no KEDA operator role"),
    ({}, None, "runtime_image is required"),
])
def test_refuses_what_it_cannot_deploy(handle: dict[str, Any], runtime_image: Any, message: str) -> None:
    with pytest.raises(CortexError, match=message):
        record(_program(_api(), runtime_image=runtime_image, **handle))


def test_refuses_an_api_that_does_not_fit_its_node_groups() -> None:
    big = _api(pod={"containers": [{"name": "api", "image": "m:1", "compute": {"cpu": "64"}}]})
    with pytest.raises(SpecError, match="must fit an instance type"):
        record(_program(big))


REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "cortex-reference"


def test_every_reference_async_api_plans_on_the_reference_cluster_and_its_objects_validate() -> None:
    from cortex_iac.components.cluster import Cluster
    from cortex_iac.plan.plan import kubernetes_objects
    from cortex_iac.specs import load_cluster
    from tests.kube import need_crds, validate_all

    need_crds()
    files = sorted((REFERENCE / "apis").glob("async__*.yaml")) if (REFERENCE / "apis").is_dir() else []
    if not files:
        missing(f"Cortex reference APIs not found at {REFERENCE}")
    cluster_spec = load_cluster(REFERENCE / "cluster.yaml")
    for path in files:
        (spec,) = load_apis(path)

        def program(spec: Any = spec) -> None:
            cluster = Cluster(cluster_spec.cluster_name, cluster_spec)
            AsyncApi(spec.name, spec, cluster, runtime_image=RUNTIME)

        for preview in (True, False):
            rec = record(program, preview=preview)
            assert len(rec.children(rec.find(TYPE, spec.name).urn)) == len(AWS_CHILDREN + BUCKET_CHILDREN + KUBE_CHILDREN)
            mine = [o for o in kubernetes_objects(rec) if o["metadata"].get("labels", {}).get("cortex.dev/api-name") == spec.name]
            assert validate_all(mine) == 10, path.name


def test_auto_names_fit_aws_limits_for_the_longest_api_name() -> None:
    # Pulumi's auto-name is the resource name, "-" and 7 random characters.
    name = "a" * 42
    rec = record(_program(_api(name)))
    limits = {"aws:iam/role:Role": 64, "aws:sqs/queue:Queue": 80, "aws:s3/bucket:Bucket": 63}
    named = [r for r in rec.children(rec.find(TYPE, name).urn) if r.type in limits]
    assert len(named) == 6
    for r in named:
        assert len(r.name) + 8 <= limits[r.type], r.name
