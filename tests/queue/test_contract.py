"""The AsyncAPI runtime contract: settings round-trip through CORTEX_* variables, bad values name the
variable, the key layout and the status priority."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cortex_iac.queue import contract
from cortex_iac.queue.contract import GatewayConfig, QueueConfigError, ReadinessProbe, WorkerConfig

REQUIRED_GATEWAY = {"CORTEX_API_NAME": "echo", "CORTEX_QUEUE_URL": "https://sqs/q", "CORTEX_BUCKET": "b"}
REQUIRED_WORKER = {**REQUIRED_GATEWAY, "CORTEX_DEAD_LETTER_QUEUE_URL": "https://sqs/dlq"}


def test_the_contract_module_imports_neither_pydantic_nor_boto3() -> None:
    tree = ast.parse(Path(contract.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "json", "re", "collections", "dataclasses", "typing", "cortex_iac"}


def test_defaults_and_round_trip() -> None:
    gateway = GatewayConfig.from_env(REQUIRED_GATEWAY)
    assert (gateway.key_prefix, gateway.port, gateway.max_body_bytes, gateway.result_retention_days) == (
        "workloads/echo/", 8888, 100 * 1024 * 1024, 7)
    assert GatewayConfig.from_env(gateway.to_env()) == gateway
    worker = WorkerConfig.from_env({**REQUIRED_WORKER, "CORTEX_USER_PORT": "9000",
                                    "CORTEX_READINESS_PROBE": '{"http_get": {"path": "/ready", "port": 9000}}'})
    assert worker.probe == ReadinessProbe("http_get", 9000, "/ready")
    assert (worker.max_concurrency, worker.visibility_timeout, worker.max_attempts, worker.admin_port,
            worker.receive_wait) == (1, 60, 3, 15000, 20)
    assert WorkerConfig.from_env(worker.to_env()) == worker
    # No probe: TCP on the user port, as Cortex's dequeuer did.
    assert WorkerConfig.from_env(REQUIRED_WORKER).probe == ReadinessProbe("tcp_socket", 8080)


@pytest.mark.parametrize(("env", "message"), [
    ({}, "CORTEX_API_NAME is not set"),
    ({**REQUIRED_GATEWAY, "CORTEX_DEAD_LETTER_QUEUE_URL": ""}, "CORTEX_DEAD_LETTER_QUEUE_URL is not set"),
    ({**REQUIRED_WORKER, "CORTEX_MAX_CONCURRENCY": "101"}, "CORTEX_MAX_CONCURRENCY: 101 is not allowed (must be 1..100)"),
    ({**REQUIRED_WORKER, "CORTEX_VISIBILITY_TIMEOUT": "soon"}, "Config 'CORTEX_VISIBILITY_TIMEOUT' has value 'soon'"),
    ({**REQUIRED_WORKER, "CORTEX_KEY_PREFIX": "no-slash"}, "CORTEX_KEY_PREFIX: 'no-slash' is not allowed"),
    ({**REQUIRED_WORKER, "CORTEX_READINESS_PROBE": '{"exec": {}}'}, "Config 'CORTEX_READINESS_PROBE'"),
    ({**REQUIRED_WORKER, "CORTEX_ADMIN_PORT": "8080"}, "CORTEX_ADMIN_PORT: 8080 is not allowed"),
    ({**REQUIRED_WORKER, "CORTEX_RECEIVE_WAIT": "21"}, "CORTEX_RECEIVE_WAIT: 21 is not allowed"),
])
def test_bad_worker_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(QueueConfigError) as error:
        WorkerConfig.from_env(env)
    assert message in str(error.value)


def test_bad_gateway_settings_name_the_variable() -> None:
    with pytest.raises(QueueConfigError, match="CORTEX_ENDPOINT: 'api/' is not allowed"):
        GatewayConfig.from_env({**REQUIRED_GATEWAY, "CORTEX_ENDPOINT": "api/"})
    with pytest.raises(QueueConfigError, match="CORTEX_MAX_BODY_BYTES: 0 is not allowed"):
        GatewayConfig.from_env({**REQUIRED_GATEWAY, "CORTEX_MAX_BODY_BYTES": "0"})


def test_key_layout_is_cortex_s_under_the_api_prefix() -> None:
    prefix, rid = "workloads/echo/", "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert contract.payload_key(prefix, rid) == f"workloads/echo/{rid}/payload"
    assert contract.headers_key(prefix, rid) == f"workloads/echo/{rid}/headers.json"
    assert contract.status_key(prefix, rid, "in_progress") == f"workloads/echo/{rid}/status/in_progress"
    assert contract.result_key(prefix, rid) == f"workloads/echo/{rid}/result.json"
    assert contract.failure_key(prefix, rid) == f"workloads/echo/{rid}/failure.json"
    assert contract.ID_PATTERN.match(rid) and not contract.ID_PATTERN.match("../" + rid)


@pytest.mark.parametrize(("markers", "status"), [
    (set(), None),
    ({"in_queue"}, "in_queue"),
    ({"in_progress"}, "in_progress"),  # a fast worker wrote it before in_queue was visible
    ({"in_queue", "in_progress"}, "in_progress"),
    ({"in_queue", "in_progress", "failed"}, "failed"),
    ({"in_progress", "failed", "completed"}, "completed"),
])
def test_status_priority(markers: set[str], status: str | None) -> None:
    assert contract.resolve_status(markers) == status


def test_least_privilege_actions_have_no_wildcards() -> None:
    actions = (contract.GATEWAY_S3_ACTIONS + contract.GATEWAY_S3_BUCKET_ACTIONS + contract.GATEWAY_SQS_ACTIONS
               + contract.WORKER_S3_ACTIONS + contract.WORKER_S3_BUCKET_ACTIONS + contract.WORKER_SQS_ACTIONS
               + contract.WORKER_DLQ_SQS_ACTIONS + contract.KEDA_SQS_ACTIONS)
    assert all("*" not in action for action in actions)
    assert "sqs:ReceiveMessage" not in contract.GATEWAY_SQS_ACTIONS
    assert "s3:DeleteObject" not in contract.GATEWAY_S3_ACTIONS
