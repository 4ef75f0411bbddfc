"""AsyncAPI rendering: every object validates (built-in kinds strictly, KEDA's against its CRDs), the
pods run what the runtime contract says with the spec's values, KEDA scales on both queues, and the
IAM documents are least privilege."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cortex_iac.queue import contract
from cortex_iac.render import async_api, autoscaling, workload
from cortex_iac.render.async_api import AsyncContext, AsyncResources, api_objects, render_api
from cortex_iac.specs import AsyncApiSpec, load_apis, load_cluster
from tests.kube import need_crds, validate_all
from tests.needs import missing

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "cortex-reference"
RUNTIME = "registry.example/cortex-serving:1"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "async-prime-counter" / "api.yaml"
RESOURCES = AsyncResources(
    queue_url="https://sqs.us-west-2.amazonaws.com/123456789012/q",
    dead_letter_queue_url="https://sqs.us-west-2.amazonaws.com/123456789012/dlq",
    bucket="store-bucket",
    scaler_role_arn="arn:aws:iam::123456789012:role/cortex/c/queue-scalers/s",
    region="us-west-2",
)
QUEUE_ARN = "arn:aws:sqs:us-west-2:123456789012:q"
DLQ_ARN = "arn:aws:sqs:us-west-2:123456789012:dlq"


def _api(**extra: Any) -> AsyncApiSpec:
    data = {"name": "summarize", "kind": "AsyncAPI",
            "pod": {"port": 9000, "max_concurrency": 4,
                    "containers": [{"name": "api", "image": "registry.example/model:1",
                                    "readiness_probe": {"http_get": {"path": "/ready", "port": 9000}}}]},
            **extra}
    (spec,) = load_apis([data], origin="test")
    assert isinstance(spec, AsyncApiSpec)
    return spec


def _example() -> AsyncApiSpec:
    (spec,) = load_apis(EXAMPLE)
    assert isinstance(spec, AsyncApiSpec)
    return spec


def _objects(spec: AsyncApiSpec, **context: Any) -> async_api.AsyncObjects:
    return api_objects(spec, AsyncContext(runtime_image=RUNTIME, resources=RESOURCES, **context))


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def _containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def test_every_reference_async_api_renders_valid_objects() -> None:
    need_crds()
    files = sorted((REFERENCE / "apis").glob("async__*.yaml")) if (REFERENCE / "apis").is_dir() else []
    if not files:
        missing(f"Cortex reference APIs not found at {REFERENCE}")
    cluster = load_cluster(REFERENCE / "cluster.yaml")
    for path in files:
        for cluster_spec in (None, cluster):
            (spec,) = load_apis(path)
            assert isinstance(spec, AsyncApiSpec)
            objects = render_api(spec, cluster_spec, runtime_image=RUNTIME)
            assert validate_all(objects) == 10
            kinds = sorted(o["kind"] for o in objects)
            assert kinds.count("Deployment") == 2 and "ScaledObject" in kinds and "TriggerAuthentication" in kinds


def test_synthetic_variants_validate() -> None:
    need_crds()
    handler = _example()
    for spec in (_api(), _api(autoscaling={"min_replicas": 0, "max_replicas": 3}), handler,
                 _api(queue={"bucket": "s3://their-bucket/teams/ml/"}, iam={"s3_read": ["s3://models/m/"]})):
        objects = _objects(spec).all()
        assert validate_all(objects) == len(objects)


def test_worker_pod_is_the_user_containers_and_the_queue_worker() -> None:
    spec = _api(queue={"max_attempts": 5, "request_timeout": "10m"})
    deployment = _objects(spec).deployment
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["api", async_api.WORKER_CONTAINER]
    assert pod["terminationGracePeriodSeconds"] == 60  # Cortex's
    assert pod["serviceAccountName"] == "summarize" and pod["automountServiceAccountToken"] is False
    user, worker = pod["containers"]
    # The user container answers until the worker has finished or released what it holds.
    assert user["lifecycle"] == {"preStop": {"sleep": {"seconds": async_api.WORKER_GRACE_SECONDS}}}
    assert async_api.WORKER_GRACE_SECONDS + contract.GRACE_PERIOD_MARGIN_SECONDS == 60
    assert worker["image"] == RUNTIME and worker["command"] == list(contract.WORKER_COMMAND)
    assert worker["readinessProbe"]["httpGet"] == {"path": contract.WORKER_HEALTH_PATH, "port": contract.WORKER_ADMIN_PORT}
    assert worker["securityContext"]["runAsNonRoot"] is True and worker["securityContext"]["readOnlyRootFilesystem"]
    # Room for max_concurrency (4) answers of the largest size the worker accepts, above its own 256Mi.
    assert worker["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"},
                                   "limits": {"memory": f"{256 + 4 * contract.DEFAULT_MAX_RESULT_BYTES // 2**20}Mi"}}
    env = _env(worker)
    assert env["AWS_REGION"] == "us-west-2"
    config = contract.WorkerConfig.from_env(env)
    assert config == contract.WorkerConfig(
        api_name="summarize", queue_url=RESOURCES.queue_url, bucket="store-bucket",
        dead_letter_queue_url=RESOURCES.dead_letter_queue_url, key_prefix="workloads/summarize/", user_port=9000,
        max_concurrency=4, max_attempts=5, request_timeout=600.0, grace_period=float(async_api.WORKER_GRACE_SECONDS),
        readiness_probe=contract.ReadinessProbe("http_get", 9000, "/ready"),
    )
    assert config.visibility_timeout == contract.DEFAULT_VISIBILITY_TIMEOUT_SECONDS
    # KEDA owns replicas after creation; init_replicas only at first.
    assert deployment["spec"]["replicas"] == spec.autoscaling.init_replicas


def test_worker_readiness_follows_the_container_on_the_pod_port() -> None:
    tcp = _api(pod={"port": 8080, "containers": [{"name": "a", "image": "m:1"}]})
    assert async_api.readiness_of(tcp) == contract.ReadinessProbe("tcp_socket", 8080)
    other_port = _api(pod={"port": 8080, "containers": [
        {"name": "a", "image": "m:1", "readiness_probe": {"http_get": {"path": "/x", "port": 9999}}}]})
    assert async_api.readiness_of(other_port) == contract.ReadinessProbe("tcp_socket", 8080)
    handler = _example()
    assert async_api.readiness_of(handler) == contract.ReadinessProbe("http_get", 8080, workload.RUNTIME_READINESS_PATH)
    worker = _containers(_objects(handler).deployment)[async_api.WORKER_CONTAINER]
    assert contract.WorkerConfig.from_env(_env(worker)).probe.path == "/readyz"


def test_gateway_runs_the_contracts_gateway_with_the_queue_settings() -> None:
    spec = _api(networking={"endpoint": "/v1/summarize"}, queue={"max_payload_size": "2Gi", "retention_days": 30})
    objects = _objects(spec)
    deployment = objects.gateway_deployment
    assert deployment["metadata"]["name"] == "summarize-gateway"
    assert deployment["spec"]["replicas"] == async_api.GATEWAY_REPLICAS == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "summarize-gateway"
    (gateway,) = pod["containers"]
    assert gateway["command"] == list(contract.GATEWAY_COMMAND) and gateway["image"] == RUNTIME
    assert gateway["ports"] == [{"name": "http", "containerPort": contract.GATEWAY_PORT, "protocol": "TCP"},
                                {"name": "admin", "containerPort": contract.GATEWAY_METRICS_PORT, "protocol": "TCP"}]
    # Metrics off the port the load balancer reaches, on the one only Prometheus may reach.
    assert contract.GATEWAY_METRICS_PORT == contract.WORKER_ADMIN_PORT != contract.GATEWAY_PORT
    config = contract.GatewayConfig.from_env(_env(gateway))
    assert config == contract.GatewayConfig(
        api_name="summarize", queue_url=RESOURCES.queue_url, bucket="store-bucket", key_prefix="workloads/summarize/",
        endpoint="/v1/summarize", max_body_bytes=2 * 1024**3, result_retention_days=30,
        grace_period=float(async_api.GATEWAY_GRACE_SECONDS),
    )
    # It drains within its grace period: preStop (the ALB stops sending) + the gateway's own grace.
    assert pod["terminationGracePeriodSeconds"] > async_api.GATEWAY_DEREGISTRATION_SECONDS + async_api.GATEWAY_GRACE_SECONDS
    assert objects.gateway_pod_disruption_budget["spec"]["minAvailable"] == 1


def test_gateway_and_worker_select_only_their_own_pods() -> None:
    objects = _objects(_api())
    worker_pods = objects.deployment["spec"]["template"]["metadata"]["labels"]
    gateway_pods = objects.gateway_deployment["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    for selector, own, other in (
        (objects.deployment["spec"]["selector"]["matchLabels"], worker_pods, gateway_pods),
        (objects.pod_disruption_budget["spec"]["selector"]["matchLabels"], worker_pods, gateway_pods),
        (objects.gateway_deployment["spec"]["selector"]["matchLabels"], gateway_pods, worker_pods),
        (objects.gateway_service["spec"]["selector"], gateway_pods, worker_pods),
        (objects.gateway_pod_disruption_budget["spec"]["selector"]["matchLabels"], gateway_pods, worker_pods),
    ):
        assert selects(selector, own) and not selects(selector, other)


def test_ingress_routes_the_endpoint_to_the_gateway() -> None:
    ingress = _objects(_api(networking={"endpoint": "/v1/summarize"}), https=True).ingress
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == "/v1/summarize" and path["pathType"] == "Prefix"
    assert path["backend"]["service"] == {"name": "summarize-gateway", "port": {"number": contract.GATEWAY_PORT}}
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == contract.GATEWAY_HEALTH_PATH
    assert json.loads(annotations["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTP": 80}, {"HTTPS": 443}]
    (rewrite,) = json.loads(annotations["alb.ingress.kubernetes.io/transforms.summarize-gateway"])
    assert rewrite["urlRewriteConfig"]["rewrites"] == [{"regex": "^/v1/summarize/?(.*)$", "replace": "/$1"}]
    assert ingress["metadata"]["namespace"] == workload.API_NAMESPACE  # never through the interceptor


@pytest.mark.parametrize("min_replicas", [0, 2])
def test_scaled_object_scales_on_visible_and_in_flight_messages(min_replicas: int) -> None:
    spec = _api(autoscaling={"min_replicas": min_replicas, "max_replicas": 9, "target_in_flight": 3,
                             "downscale_stabilization_period": "2m", "max_upscale_factor": 2})
    objects = _objects(spec)
    scaled = objects.scaled_object["spec"]
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "summarize"}
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (min_replicas, 9)
    assert scaled["cooldownPeriod"] == 120 and scaled["pollingInterval"] == autoscaling.CORTEX_TICK_SECONDS
    assert scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == autoscaling.hpa_behavior(
        "summarize", spec.autoscaling)
    queue, dead = scaled["triggers"]
    auth = objects.trigger_authentication["metadata"]["name"]
    assert queue == {"type": "aws-sqs-queue", "name": "queue", "authenticationRef": {"name": auth}, "metadata": {
        "queueURL": RESOURCES.queue_url, "queueLength": "3", "activationQueueLength": "0", "scaleOnInFlight": "true",
        "awsRegion": "us-west-2"}}
    assert dead["metadata"]["queueURL"] == RESOURCES.dead_letter_queue_url and dead["name"] == "dead-letter-queue"
    assert dead["metadata"]["activationQueueLength"] == "0"  # a dead letter brings a worker up, also from zero
    assert contract.KEDA_SCALES_ON_DEAD_LETTER_QUEUE


def test_target_in_flight_defaults_to_max_concurrency_in_the_trigger() -> None:
    (queue, _) = _objects(_api()).scaled_object["spec"]["triggers"]
    assert queue["metadata"]["queueLength"] == "4"


def test_trigger_authentication_assumes_the_scaler_role() -> None:
    auth = _objects(_api()).trigger_authentication
    assert auth["spec"] == {"podIdentity": {"provider": "aws", "roleArn": RESOURCES.scaler_role_arn}}


def test_render_without_cluster_writes_placeholders() -> None:
    objects = render_api(_api(), runtime_image=RUNTIME)
    text = json.dumps(objects)
    for placeholder in async_api.PLACEHOLDERS.values():
        assert placeholder in text


def test_user_bucket_prefix_is_the_api_prefix_below_it() -> None:
    spec = _api(queue={"bucket": "s3://their-bucket/teams/ml/"})
    assert async_api.key_prefix(spec) == "teams/ml/workloads/summarize/"
    assert async_api.user_bucket(spec) == "their-bucket"
    assert async_api.user_bucket(_api()) is None
    worker = _containers(_objects(spec).deployment)[async_api.WORKER_CONTAINER]
    assert _env(worker)["CORTEX_KEY_PREFIX"] == "teams/ml/workloads/summarize/"


# --- IAM -------------------------------------------------------------------------------------------


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    assert document["Version"] == "2012-10-17"
    return list(document["Statement"])


def _no_wildcards(document: dict[str, Any]) -> None:
    for statement in _statements(document):
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert all("*" not in action for action in actions), statement
        assert all(resource != "*" and not resource.endswith(":*") for resource in resources), statement


def test_worker_policy_is_the_contracts_worker_actions_on_its_own_prefix_and_queues() -> None:
    spec = _api(iam={"s3_read": ["s3://models/summarize/"]})
    document = async_api.worker_policy(spec, bucket="store-bucket", queue_arn=QUEUE_ARN, dead_letter_queue_arn=DLQ_ARN,
                                       region="us-west-2")
    _no_wildcards(document)
    by_sid = {s["Sid"]: s for s in _statements(document)}
    assert by_sid["StoreObjects"] == {"Sid": "StoreObjects", "Effect": "Allow", "Action": list(contract.WORKER_S3_ACTIONS),
                                      "Resource": "arn:aws:s3:::store-bucket/workloads/summarize/*"}
    assert by_sid["StoreList"]["Resource"] == "arn:aws:s3:::store-bucket"
    assert by_sid["StoreList"]["Condition"] == {"StringLike": {"s3:prefix": ["workloads/summarize/*"]}}
    assert by_sid["Queue"] == {"Sid": "Queue", "Effect": "Allow", "Action": list(contract.WORKER_SQS_ACTIONS),
                               "Resource": QUEUE_ARN}
    assert by_sid["DeadLetterQueue"]["Action"] == list(contract.WORKER_DLQ_SQS_ACTIONS)
    assert by_sid["DeadLetterQueue"]["Resource"] == DLQ_ARN
    # The user's own read access (the containers share the pod's role).
    assert by_sid["ReadObjects"]["Resource"] == ["arn:aws:s3:::models/summarize/*"]
    assert set(by_sid) == {"StoreObjects", "StoreList", "Queue", "DeadLetterQueue", "ReadObjects", "ListBucket0"}


def test_gateway_policy_puts_to_its_prefix_and_sends_to_its_queue_only() -> None:
    document = async_api.gateway_policy(_api(), bucket="store-bucket", queue_arn=QUEUE_ARN, region="us-west-2")
    _no_wildcards(document)
    by_sid = {s["Sid"]: s for s in _statements(document)}
    assert set(by_sid) == {"StoreObjects", "StoreList", "Queue"}
    assert by_sid["StoreObjects"]["Action"] == list(contract.GATEWAY_S3_ACTIONS)
    assert by_sid["StoreObjects"]["Resource"] == "arn:aws:s3:::store-bucket/workloads/summarize/*"
    assert by_sid["Queue"]["Action"] == ["sqs:SendMessage"] and by_sid["Queue"]["Resource"] == QUEUE_ARN


def test_scaler_reads_queue_attributes_only_and_trusts_only_keda() -> None:
    document = async_api.scaler_policy(QUEUE_ARN, DLQ_ARN)
    _no_wildcards(document)
    assert _statements(document) == [{"Sid": "QueueDepth", "Effect": "Allow", "Action": ["sqs:GetQueueAttributes"],
                                      "Resource": [QUEUE_ARN, DLQ_ARN]}]
    keda = "arn:aws:iam::123456789012:role/keda"
    (trust,) = _statements(async_api.scaler_trust_policy(keda))
    assert trust["Principal"] == {"AWS": keda} and set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession"}


def test_resource_policies_deny_requests_without_tls() -> None:
    (queue,) = _statements(async_api.queue_policy(QUEUE_ARN))
    assert queue["Effect"] == "Deny" and queue["Resource"] == QUEUE_ARN
    assert queue["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (bucket,) = _statements(async_api.bucket_policy("store-bucket", "us-west-2"))
    assert bucket["Effect"] == "Deny" and bucket["Resource"] == ["arn:aws:s3:::store-bucket", "arn:aws:s3:::store-bucket/*"]
    assert bucket["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_namespace_network_policy_admits_the_gateway_and_the_worker_metrics() -> None:
    policy = workload.network_policy()
    open_ports = [p["port"] for rule in policy["spec"]["ingress"] if "from" not in rule for p in rule["ports"]]
    assert contract.GATEWAY_PORT in open_ports  # from the load balancer (pod IPs in the VPC)
    (metrics,) = [rule for rule in policy["spec"]["ingress"] if "from" in rule]
    assert [p["port"] for p in metrics["ports"]] == [contract.WORKER_ADMIN_PORT] == [contract.GATEWAY_METRICS_PORT]
    assert contract.GATEWAY_METRICS_PORT not in open_ports


def test_the_example_renders_and_its_handler_counts_primes() -> None:
    import importlib.util

    spec = _example()
    assert spec.autoscaling.min_replicas == 0 and spec.queue.request_timeout == 300
    objects = _objects(spec)
    assert objects.handler_source is not None
    module_spec = importlib.util.spec_from_file_location("prime_counter", EXAMPLE.parent / "handler.py")
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    handler = module.Handler({"max_limit": 100_000})
    assert handler.handle_post({"limit": 100_000}) == {"limit": 100_000, "primes": 9592, "largest": 99991}
    assert handler.handle_post({"limit": 2}) == {"limit": 2, "primes": 0, "largest": 0}
    for bad in ({"limit": 1}, {"limit": 100_001}, {"limit": "9"}, {"limit": True}, [], None):
        assert handler.handle_post(bad).status_code == 400
