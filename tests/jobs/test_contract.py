"""The job contract: settings round-trip through the environment, bad values name the variable,
names and permissions are what the infrastructure renders from."""

from __future__ import annotations

import pytest

from cortex_iac.jobs.contract import (
    GATEWAY_RBAC_RULES,
    GatewayConfig,
    JobConfigError,
    WorkerConfig,
    gateway_iam_statements,
    queue_arn_pattern,
    queue_name,
    worker_iam_statements,
)

GATEWAY_ENV = {"CORTEX_KIND": "BatchAPI", "CORTEX_API_NAME": "sum", "CORTEX_CLUSTER_NAME": "prod",
               "CORTEX_ENDPOINT": "/sum", "CORTEX_JOB_NAMESPACE": "cortex-job-sum", "CORTEX_JOB_TABLE": "sum-jobs",
               "AWS_REGION": "eu-west-1"}


def test_gateway_settings_round_trip_and_in_cluster_default() -> None:
    config = GatewayConfig.from_env({**GATEWAY_ENV, "CORTEX_S3_READ": '["s3://b/x/"]',
                                     "KUBERNETES_SERVICE_HOST": "10.100.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert config.kube_api_url == "https://10.100.0.1:443" and config.s3_read == ("s3://b/x/",)
    assert GatewayConfig.from_env(config.to_env()) == config
    worker = WorkerConfig(api_name="sum", job_id="j", sqs_url="u", table="t", aws_region="r", max_receive_count=3)
    assert WorkerConfig.from_env(worker.to_env()) == worker


@pytest.mark.parametrize(("env", "message"), [
    ({"CORTEX_PORT": "http"}, "Config 'CORTEX_PORT' has value 'http'. Not a valid int."),
    ({"CORTEX_KIND": "AsyncAPI"}, "kind: 'AsyncAPI' is not allowed (must be BatchAPI or TaskAPI)"),
    ({"CORTEX_ENDPOINT": "/-/x"}, "endpoint: '/-/x' is not allowed (must start with / and not with /-/)"),
    ({"CORTEX_JOB_TABLE": ""}, "CORTEX_JOB_TABLE not set (GatewayConfig)"),
    ({"CORTEX_S3_READ": "s3://b"}, "Config 'CORTEX_S3_READ' has value 's3://b'. Not valid JSON"),
])
def test_bad_gateway_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(JobConfigError) as error:
        GatewayConfig.from_env({**GATEWAY_ENV, **env})
    assert str(error.value).startswith(message)


def test_worker_renewal_must_beat_the_visibility_timeout() -> None:
    with pytest.raises(JobConfigError, match="renew_interval: 30.0 is not allowed"):
        WorkerConfig(api_name="a", job_id="j", sqs_url="u", table="t", aws_region="r", renew_interval=30.0)


def test_queue_names_fit_sqs_and_the_iam_prefix() -> None:
    name = queue_name("prod", "a" * 42, "7fffffffffffffff")
    assert len(name) == 78 and name.endswith(".fifo")
    pattern = queue_arn_pattern("prod", "a" * 42)
    assert pattern.startswith("arn:aws:sqs:*:*:cx_") and pattern.endswith("_b_" + "a" * 42 + "_*")
    assert name.startswith(pattern.rsplit(":", 1)[1].rstrip("*"))
    assert queue_name("prod", "sum", "1") != queue_name("dev", "sum", "1")


def test_no_wildcard_action_or_cluster_scope() -> None:
    statements = gateway_iam_statements("BatchAPI", table_arn="t", queue_arn="q") + \
        worker_iam_statements(table_arn="t", queue_arn="q")
    actions = [a for s in statements for a in s["Action"]]
    assert actions and not [a for a in actions if "*" in a]
    assert [s["Action"] for s in gateway_iam_statements("TaskAPI", table_arn="t", queue_arn="q")] == \
        [["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]]
    verbs = {v for rule in GATEWAY_RBAC_RULES for v in rule["verbs"]}
    assert verbs == {"create", "get", "delete", "list"}  # no watch, update, patch or escalate
