"""The static objects of BatchAPIs and TaskAPIs (render/jobs.py): schema-valid, the contract's rules
and settings exactly, least-privilege policies, and a job template the run-time render completes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cortex_iac.jobs import contract
from cortex_iac.jobs.render import check_template, job_object
from cortex_iac.render import jobs
from cortex_iac.render.jobs import JobContext, job_api_objects, render_job_api
from cortex_iac.specs import BatchApiSpec, TaskApiSpec, load_apis, load_cluster
from tests.kube import validate_all
from tests.specs.helpers import REFERENCE, requires_reference

IMAGE = "registry.example/cortex-serving:1"
TABLE_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/sum-jobs-abc1234"
JOB_FILES = sorted(p.name for p in (REFERENCE / "apis").glob("*.yaml") if p.name.startswith(("batch__", "task__"))) \
    if (REFERENCE / "apis").is_dir() else []


def _batch(**extra: Any) -> BatchApiSpec:
    data = {"name": "sum", "kind": "BatchAPI", "pod": {"containers": [
        {"name": "api", "image": "example/sum:1", "command": ["uvicorn", "--port", "$(CORTEX_PORT)", "main:app"]}]}}
    (spec,) = load_apis([{**data, **extra}], origin="test")
    assert isinstance(spec, BatchApiSpec)
    return spec


def _task(**extra: Any) -> TaskApiSpec:
    data = {"name": "train", "kind": "TaskAPI", "pod": {"containers": [
        {"name": "trainer", "image": "example/train:1", "command": ["python", "main.py"]}]}}
    (spec,) = load_apis([{**data, **extra}], origin="test")
    assert isinstance(spec, TaskApiSpec)
    return spec


def _context(**extra: Any) -> JobContext:
    return JobContext(cluster_name="cortex-dev", runtime_image=IMAGE, **extra)


def _template(objects: jobs.JobApiObjects) -> dict[str, Any]:
    return json.loads(objects.job_template["data"][contract.JOB_TEMPLATE_KEY])  # type: ignore[no-any-return]


@requires_reference
@pytest.mark.parametrize("name", JOB_FILES)
def test_every_reference_job_api_renders_valid_objects(name: str) -> None:
    assert len(JOB_FILES) == 4
    cluster = load_cluster(REFERENCE / "cluster.yaml")
    for spec in load_apis(REFERENCE / "apis" / name):
        for cluster_spec in (None, cluster):
            objects = render_job_api(spec, cluster_spec, runtime_image=IMAGE)  # type: ignore[arg-type]
            assert validate_all(objects) == 11
            (config_map,) = [o for o in objects if o["metadata"]["name"] == contract.job_template_config_map_name(spec.name)]
            template = json.loads(config_map["data"][contract.JOB_TEMPLATE_KEY])
            check_template(template, spec.kind)  # type: ignore[arg-type]
            # What the gateway makes of it per job is valid too.
            worker_env = {"CORTEX_JOB_ID": "7fffffffffffffff", "CORTEX_SQS_URL": "https://sqs.example/q.fifo",
                          "CORTEX_MAX_RECEIVE_COUNT": "3"} if spec.kind == "BatchAPI" else None
            job = job_object(template, kind=spec.kind, api_name=spec.name, job_id="7fffffffffffffff",  # type: ignore[arg-type]
                             parallelism=3, active_deadline_seconds=600, ttl_seconds_after_finished=3600,
                             worker_env=worker_env)
            assert validate_all([job]) == 1


def test_objects_and_places() -> None:
    objects = job_api_objects(_batch(), _context())
    assert [(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objects.all()] == [
        ("Namespace", "cortex-job-sum", None),
        ("NetworkPolicy", "cortex-job-sum", "cortex-job-sum"),
        ("ServiceAccount", "sum", "cortex-job-sum"),
        ("ServiceAccount", "sum-gateway", "cortex-apis"),
        ("Role", "sum-gateway", "cortex-job-sum"),
        ("RoleBinding", "sum-gateway", "cortex-job-sum"),
        ("ConfigMap", "sum-job-template", "cortex-apis"),
        ("Deployment", "sum", "cortex-apis"),
        ("Service", "sum", "cortex-apis"),
        ("PodDisruptionBudget", "sum", "cortex-apis"),
        ("Ingress", "sum", "cortex-apis"),
    ]
    assert validate_all(objects.all()) == 11
    # Workers: no Kubernetes token; the gateway: its token (it calls the API server).
    assert objects.service_account["automountServiceAccountToken"] is False
    assert objects.gateway_service_account["automountServiceAccountToken"] is True
    # Nothing may reach the worker pods; they reach DNS, Pod Identity and AWS.
    policy = objects.network_policy["spec"]
    assert policy["podSelector"] == {} and policy["ingress"] == [] and policy["policyTypes"] == ["Ingress", "Egress"]
    assert len(policy["egress"]) == 3
    assert "elbv2.k8s.aws/pod-readiness-gate-inject" not in objects.namespace["metadata"]["labels"]
    assert objects.namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_role_is_exactly_the_contract_rules_in_the_job_namespace() -> None:
    for spec in (_batch(), _task()):
        objects = job_api_objects(spec, _context())
        assert objects.role["rules"] == [dict(rule) for rule in contract.GATEWAY_RBAC_RULES]
        assert objects.role["metadata"]["namespace"] == contract.job_namespace(spec.name)
        binding = objects.role_binding
        assert binding["metadata"]["namespace"] == contract.job_namespace(spec.name)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": f"{spec.name}-gateway"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{spec.name}-gateway",
                                        "namespace": "cortex-apis"}]


def test_gateway_runs_the_contract_command_with_settings_that_read_back() -> None:
    spec = _batch(iam={"s3_read": ["s3://data/sum/"]}, jobs={"retention": "48h"}, networking={"endpoint": "/jobs/sum"})
    objects = job_api_objects(spec, _context(table_name="sum-jobs-x", region="eu-west-1"))
    pod = objects.gateway_deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE and container["command"] == list(contract.GATEWAY_COMMAND)
    assert container["ports"] == [{"name": "http", "containerPort": contract.GATEWAY_PORT, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": contract.HEALTH_PATH, "port": contract.GATEWAY_PORT}
    env = {e["name"]: e["value"] for e in container["env"]}
    config = contract.GatewayConfig.from_env(env)
    assert config == contract.GatewayConfig(
        kind="BatchAPI", api_name="sum", cluster_name="cortex-dev", endpoint="/jobs/sum", namespace="cortex-job-sum",
        table="sum-jobs-x", aws_region="eu-west-1", s3_read=("s3://data/sum/",), retention_seconds=48 * 3600,
    )
    assert pod["serviceAccountName"] == "sum-gateway" and pod["automountServiceAccountToken"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[contract.JOB_TEMPLATE_DIR]["readOnly"] is True
    assert {"name": "job-template", "configMap": {"name": "sum-job-template"}} in pod["volumes"]
    assert objects.gateway_deployment["spec"]["replicas"] == 2
    assert container["securityContext"]["runAsNonRoot"] is True and container["securityContext"]["readOnlyRootFilesystem"]
    # The Service and PDB select the gateways.
    selector = objects.gateway_deployment["spec"]["selector"]["matchLabels"]
    assert objects.gateway_service["spec"]["selector"] == selector == objects.gateway_pdb["spec"]["selector"]["matchLabels"]
    assert objects.gateway_service["spec"]["ports"][0]["port"] == contract.GATEWAY_PORT


def test_gateway_rolls_when_the_job_template_changes() -> None:
    def checksum(spec: BatchApiSpec) -> str:
        objects = job_api_objects(spec, _context())
        return objects.gateway_deployment["spec"]["template"]["metadata"]["annotations"][jobs.TEMPLATE_CHECKSUM]  # type: ignore[no-any-return]

    assert checksum(_batch()) == checksum(_batch())
    assert checksum(_batch()) != checksum(_batch(pod={"port": 9000, "containers": [
        {"name": "api", "image": "example/sum:1", "command": ["run"]}]}))


def test_ingress_routes_the_endpoint_to_the_gateway_unrewritten() -> None:
    ingress = job_api_objects(_batch(networking={"endpoint": "/jobs/sum"}), _context(https=True)).ingress
    annotations = ingress["metadata"]["annotations"]
    assert not any(".transforms." in key or key.endswith("transforms.sum") for key in annotations)
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == contract.HEALTH_PATH
    # Depth 2 (/jobs/sum), a direct rule: routing.group_order's -2 x depth - 1.
    assert annotations["alb.ingress.kubernetes.io/group.order"] == "-5"
    assert json.loads(annotations["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTP": 80}, {"HTTPS": 443}]
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path == {"path": "/jobs/sum", "pathType": "Prefix",
                    "backend": {"service": {"name": "sum", "port": {"number": contract.GATEWAY_PORT}}}}


def test_batch_template_worker_first_user_containers_as_native_sidecars() -> None:
    spec = _batch(pod={"port": 9000, "containers": [
        {"name": "api", "image": "example/sum:1", "command": ["run", "$(CORTEX_PORT)"], "env": {"A": "1"},
         "readiness_probe": {"http_get": {"path": "/healthz", "port": 9000}, "period_seconds": 5}},
        {"name": "helper", "image": "example/helper:1", "command": ["help"]}]})
    template = _template(job_api_objects(spec, _context(table_name="t", region="r")))
    pod = template["spec"]["template"]["spec"]
    assert "name" not in template["metadata"] and template["metadata"]["namespace"] == "cortex-job-sum"
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "sum"
    assert pod["automountServiceAccountToken"] is False
    assert template["spec"]["template"]["metadata"]["annotations"] == {"karpenter.sh/do-not-disrupt": "true"}
    (worker,) = pod["containers"]
    assert worker["name"] == contract.WORKER_CONTAINER_NAME and worker["command"] == list(contract.WORKER_COMMAND)
    env = {e["name"]: e["value"] for e in worker["env"]}
    assert not set(contract.WORKER_JOB_ENV) & set(env)
    # The table and region are the gateway's, set per job: the template holds no value known only once
    # the table exists (so a plan shows it, and prices its pod, in full).
    assert "t" not in env.values() and "r" not in env.values()
    per_job = {"CORTEX_JOB_ID": "0123456789abcdef", "CORTEX_SQS_URL": "https://q", "CORTEX_MAX_RECEIVE_COUNT": "2",
               "CORTEX_JOB_TABLE": "t", "AWS_REGION": "r"}
    config = contract.WorkerConfig.from_env({**env, **per_job})
    assert (config.app_port, config.table, config.aws_region, config.max_receive_count) == (9000, "t", "r", 2)
    assert worker["resources"] == contract.WORKER_RESOURCES
    api, helper = pod["initContainers"]
    assert [c["restartPolicy"] for c in (api, helper)] == ["Always", "Always"]
    # CORTEX_PORT comes first, so $(CORTEX_PORT) in the command and later variables expand.
    assert api["env"] == [{"name": "CORTEX_PORT", "value": "9000"}, {"name": "A", "value": "1"}]
    assert api["command"] == ["run", "$(CORTEX_PORT)"]
    # The readiness probe gates the worker as a startup probe with the worker's wait budget.
    assert "readinessProbe" not in api and "lifecycle" not in api
    assert api["startupProbe"]["httpGet"] == {"path": "/healthz", "port": 9000}
    assert api["startupProbe"]["periodSeconds"] == 5 and api["startupProbe"]["failureThreshold"] == 120
    assert "startupProbe" not in helper and "readinessProbe" not in helper


def test_batch_template_default_probe_is_a_startup_probe() -> None:
    pod = _template(job_api_objects(_batch(), _context()))["spec"]["template"]["spec"]
    (api,) = pod["initContainers"]
    assert api["startupProbe"] == {"tcpSocket": {"port": 8080}, "periodSeconds": 10, "timeoutSeconds": 1,
                                   "failureThreshold": 60, "successThreshold": 1}


def test_batch_handler_container_runs_the_runtime_from_a_config_map_in_the_job_namespace(tmp_path: Path) -> None:
    (tmp_path / "sum.py").write_text("class Handler:\n    def handle_post(self, payload):\n        return sum(payload)\n")
    data = [{"name": "sum", "kind": "BatchAPI", "pod": {"containers": [{"name": "api", "handler": {"path": "sum.py"}}]}}]
    (spec,) = load_apis(data, origin="test", base_dir=tmp_path)
    assert isinstance(spec, BatchApiSpec)
    objects = job_api_objects(spec, _context())
    assert objects.handler_source is not None
    assert objects.handler_source["metadata"]["namespace"] == "cortex-job-sum"
    assert validate_all(objects.all()) == 12
    pod = _template(objects)["spec"]["template"]["spec"]
    (api,) = pod["initContainers"]
    assert api["image"] == IMAGE and api["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert {"name": "handler", "configMap": {"name": objects.handler_source["metadata"]["name"]}} in pod["volumes"]
    env = {e["name"]: e["value"] for e in api["env"]}
    assert env["CORTEX_PORT"] == "8080" and env["CORTEX_HANDLER_PATH"] == "/opt/cortex/handler/sum.py"
    # The worker's end-of-job POST reaches the handler's on_job_complete (only a BatchAPI's runtime serves it).
    assert env["CORTEX_ON_JOB_COMPLETE"] == "true"


def test_task_template_runs_the_user_containers_without_probes_or_worker() -> None:
    spec = _task(pod={"containers": [{"name": "trainer", "image": "example/train:1", "command": ["python", "main.py"],
                                      "compute": {"gpu": 1}}]})
    pod = _template(job_api_objects(spec, _context()))["spec"]["template"]["spec"]
    (trainer,) = pod["containers"]
    assert "initContainers" not in pod
    assert trainer["command"] == ["python", "main.py"]
    assert not {"readinessProbe", "startupProbe", "lifecycle", "env"} & set(trainer)
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def _statements(document: dict[str, Any] | None) -> list[dict[str, Any]]:
    assert document is not None and document["Version"] == "2012-10-17"
    statements: list[dict[str, Any]] = document["Statement"]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert all("*" not in action for action in actions), statement
        assert "*" not in resources, statement
        assert statement["Effect"] == "Allow"
    return statements


def test_gateway_policy_is_the_contract_on_the_table_and_the_apis_queues() -> None:
    queues = "arn:aws:sqs:eu-west-1:123456789012:" + contract.queue_name_prefix("cortex-dev", "sum") + "*"
    assert jobs.queue_arn(TABLE_ARN, "cortex-dev", "sum") == queues
    batch = _statements(jobs.gateway_policy(_batch(iam={"s3_read": ["s3://data/in/"]}), TABLE_ARN, "cortex-dev"))
    assert batch[:2] == [
        {"Effect": "Allow", "Action": list(contract.GATEWAY_DYNAMODB_ACTIONS), "Resource": [TABLE_ARN]},
        {"Effect": "Allow", "Action": list(contract.GATEWAY_SQS_ACTIONS), "Resource": [queues]},
    ]
    # The listers read what the API may read, and nothing else.
    assert {a for s in batch[2:] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])} == set(
        contract.GATEWAY_S3_ACTIONS)
    assert batch[2]["Resource"] == ["arn:aws:s3:::data/in/*"]
    task = _statements(jobs.gateway_policy(_task(iam={"s3_read": ["s3://data/in/"]}), TABLE_ARN, "cortex-dev"))
    assert task == [{"Effect": "Allow", "Action": list(contract.GATEWAY_DYNAMODB_ACTIONS), "Resource": [TABLE_ARN]}]


def test_worker_policy_adds_the_worker_to_the_apis_own_grants() -> None:
    queues = jobs.queue_arn(TABLE_ARN, "cortex-dev", "sum")
    statements = _statements(jobs.worker_policy(_batch(), TABLE_ARN, "cortex-dev"))
    assert statements == contract.worker_iam_statements(table_arn=TABLE_ARN, queue_arn=queues)
    with_s3 = _statements(jobs.worker_policy(_batch(iam={"s3_read": ["s3://models/sum"]}), TABLE_ARN, "cortex-dev"))
    assert with_s3[0]["Action"] == "s3:GetObject" and with_s3[0]["Resource"] == [
        "arn:aws:s3:::models/sum", "arn:aws:s3:::models/sum/*"]
    assert with_s3[-2:] == statements
    assert jobs.worker_policy(_task(), TABLE_ARN, "cortex-dev") is None
    assert _statements(jobs.worker_policy(_task(iam={"s3_read": ["s3://bucket/"]}), TABLE_ARN, "c"))[0]["Sid"] == "ReadObjects"
    with pytest.raises(ValueError, match="not a DynamoDB table ARN"):
        jobs.queue_arn("arn:aws:s3:::bucket", "c", "sum")


def test_substitute_replaces_placeholders_only_where_whole() -> None:
    objects = job_api_objects(_batch(), _context())
    deployment = copy.deepcopy(objects.gateway_deployment)
    replaced = jobs.substitute(deployment, {jobs.TABLE_PLACEHOLDER: "T", jobs.REGION_PLACEHOLDER: "R"})
    env = {e["name"]: e["value"] for e in replaced["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CORTEX_JOB_TABLE"] == "T" and env["AWS_REGION"] == "R"
    assert deployment == objects.gateway_deployment  # a copy, the input unchanged


def test_the_fit_check_counts_the_workers_resources() -> None:
    from cortex_iac.specs.kinds import BATCH_WORKER, KINDS

    assert KINDS["BatchAPI"].sidecar == BATCH_WORKER and BATCH_WORKER.to_k8s() == contract.WORKER_RESOURCES
    assert KINDS["TaskAPI"].sidecar is None  # a task pod runs the user's containers only


def test_api_key_secret_is_mounted_and_named_to_the_gateway() -> None:
    objects = job_api_objects(_batch(jobs={"api_key_secret": "cortex-api-key"}), _context())
    pod = objects.gateway_deployment["spec"]["template"]["spec"]
    assert {"name": "api-key", "secret": {"secretName": "cortex-api-key",
                                          "items": [{"key": "api-key", "path": "api-key"}]}} in pod["volumes"]
    (container,) = pod["containers"]
    assert {"name": "api-key", "mountPath": "/cortex/api-key", "readOnly": True} in container["volumeMounts"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert contract.GatewayConfig.from_env(env).api_key_file == "/cortex/api-key/api-key"
    assert validate_all([objects.gateway_deployment]) == 1
    # Off by default, as Cortex.
    default = job_api_objects(_batch(), _context()).gateway_deployment["spec"]["template"]["spec"]
    assert all("secret" not in v for v in default["volumes"])
    assert contract.GatewayConfig.from_env(
        {e["name"]: e["value"] for e in default["containers"][0]["env"]}).api_key_file is None


def test_s3_write_goes_to_the_pods_not_to_the_gateway() -> None:
    spec = _task(iam={"s3_read": ["s3://data/iris/"], "s3_write": ["s3://models/iris/", "s3://models/iris/"]})
    statements = _statements(jobs.worker_policy(spec, TABLE_ARN, "c"))
    assert {"Sid": "WriteObjects", "Effect": "Allow", "Action": "s3:PutObject",
            "Resource": ["arn:aws:s3:::models/iris/*"]} in statements
    batch = _batch(iam={"s3_read": ["s3://data/in/"], "s3_write": ["s3://data/out"]})
    gateway = _statements(jobs.gateway_policy(batch, TABLE_ARN, "c"))
    assert not any(s["Action"] == "s3:PutObject" for s in gateway)
    worker = _statements(jobs.worker_policy(batch, TABLE_ARN, "c"))
    assert [s for s in worker if s.get("Sid") == "WriteObjects"] == [
        {"Sid": "WriteObjects", "Effect": "Allow", "Action": "s3:PutObject",
         "Resource": ["arn:aws:s3:::data/out", "arn:aws:s3:::data/out/*"]}]
    # Only writes: no read or list statement appears.
    only_write = _statements(jobs.worker_policy(_task(iam={"s3_write": ["s3://models/"]}), TABLE_ARN, "c"))
    assert only_write == [{"Sid": "WriteObjects", "Effect": "Allow", "Action": "s3:PutObject",
                           "Resource": ["arn:aws:s3:::models/*"]}]
