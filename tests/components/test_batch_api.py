"""``cortex:api:BatchApi`` under the recording mock engine: exact children and inputs, the table,
least-privilege roles, the contract's Role, and the deploy-time values put where the render left
placeholders."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from cortex_iac.components.batch_api import TYPE, BatchApi
from cortex_iac.components.handle import ClusterHandle
from cortex_iac.errors import CortexError, SpecError
from cortex_iac.jobs import contract
from cortex_iac.plan.engine import FAKE_ACCOUNT, FAKE_REGION, Recording, record
from cortex_iac.render import iam, jobs
from cortex_iac.render.addons import LoadBalancerSettings
from cortex_iac.specs import BatchApiSpec, NodeGroupSpec, load_apis, load_cluster
from tests.clusters import BASE
from tests.specs.helpers import REFERENCE, requires_reference

STACK = "urn:pulumi:test::cortex::"
LB = LoadBalancerSettings("internet-facing", ("0.0.0.0/0",), None)
NODE_GROUPS = [NodeGroupSpec.model_validate({"name": "cpu", "instance_type": "m5.xlarge"})]
POLICY = "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"
IMAGE = "registry.example/cortex-serving:1"
TAGS = {"team": "ml", "cortex.dev/cluster-name": "cortex-test"}


def batch_spec(name: str = "sum", **extra: Any) -> BatchApiSpec:
    data = {"name": name, "kind": "BatchAPI", "pod": {"containers": [
        {"name": "api", "image": "example/sum:1", "command": ["uvicorn", "--port", "$(CORTEX_PORT)", "main:app"]}]},
        **extra}
    (spec,) = load_apis([data], origin="test")
    assert isinstance(spec, BatchApiSpec)
    return spec


def program(component: type, *specs: Any, runtime_image: Any = IMAGE, **ref: Any) -> Callable[[], None]:
    def run() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        cluster = ClusterHandle(k8s_provider=provider, cluster_name="cortex-test", node_group_specs=NODE_GROUPS,
                                iam_policy_arns=[POLICY], tags=TAGS, **{"load_balancer": LB, **ref})
        image = runtime_image() if callable(runtime_image) else runtime_image
        for spec in specs:
            api = component(spec.name, spec, cluster, runtime_image=image)
            for output in ("url", "namespace", "job_namespace", "service_name", "table_name"):
                pulumi.export(f"{spec.name}-{output}", getattr(api, output))

    return run


def children(rec: Recording, type_: str, name: str) -> list[tuple[str, str]]:
    (component,) = [r for r in rec.of_type(type_) if r.name == name]
    return sorted((r.type, r.name) for r in rec.children(component.urn))


def expected_children(name: str, *, worker_policy: bool = True, ingress: bool = True) -> list[tuple[str, str]]:
    return sorted([
        ("aws:dynamodb/table:Table", f"{name}-jobs"),
        ("kubernetes:core/v1:Namespace", f"{name}-namespace"),
        ("kubernetes:networking.k8s.io/v1:NetworkPolicy", f"{name}-network-policy"),
        ("kubernetes:core/v1:ServiceAccount", f"{name}-service-account"),
        ("kubernetes:core/v1:ServiceAccount", f"{name}-gateway-service-account"),
        ("kubernetes:rbac.authorization.k8s.io/v1:Role", f"{name}-gateway-rbac-role"),
        ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", f"{name}-gateway-rbac-binding"),
        ("kubernetes:core/v1:ConfigMap", f"{name}-job-template"),
        ("kubernetes:apps/v1:Deployment", f"{name}-deployment"),
        ("kubernetes:core/v1:Service", f"{name}-service"),
        ("kubernetes:policy/v1:PodDisruptionBudget", f"{name}-pdb"),
        *([("kubernetes:networking.k8s.io/v1:Ingress", f"{name}-ingress")] if ingress else []),
        ("aws:iam/role:Role", f"{name}-role"),
        *([("aws:iam/rolePolicy:RolePolicy", f"{name}-policy")] if worker_policy else []),
        ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{name}-CloudWatchAgentServerPolicy-110c90ad"),
        ("aws:eks/podIdentityAssociation:PodIdentityAssociation", f"{name}-pod-identity"),
        ("aws:iam/role:Role", f"{name}-gateway-role"),
        ("aws:iam/rolePolicy:RolePolicy", f"{name}-gateway-policy"),
        ("aws:eks/podIdentityAssociation:PodIdentityAssociation", f"{name}-gateway-pod-identity"),
    ])


def check_policy(text: str) -> list[dict[str, Any]]:
    """The statements of a policy document, after checking no action and no resource is ``*``."""
    document = json.loads(text)
    assert document["Version"] == iam.POLICY_VERSION
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert statement["Effect"] == "Allow"
        assert actions and all("*" not in a for a in actions), statement
        assert resources and "*" not in resources, statement
    return document["Statement"]  # type: ignore[no-any-return]


def table_arn(name: str) -> str:
    # What the test engine makes up for the table (cortex_iac.plan.engine.fake_outputs).
    return f"arn:aws:dynamodb:{FAKE_REGION}:{FAKE_ACCOUNT}:{name}-jobs"


def test_children_types_names_and_parents() -> None:
    rec = record(program(BatchApi, batch_spec()))
    assert children(rec, TYPE, "sum") == expected_children("sum")
    component = rec.find(TYPE, "sum")
    assert {r.parent for r in rec.resources if r.type not in (TYPE, "pulumi:providers:kubernetes")} == {component.urn}
    for r in rec.resources:
        if r.type.startswith("kubernetes:"):
            assert r.provider == f"{STACK}pulumi:providers:kubernetes::k8s", r.name
    assert rec.outputs["sum-namespace"] == "cortex-apis" and rec.outputs["sum-job_namespace"] == "cortex-job-sum"
    assert rec.outputs["sum-service_name"] == "sum" and rec.outputs["sum-table_name"] == "sum-jobs"
    assert rec.outputs["sum-url"] is None  # no ALB DNS name in the mock's Ingress status


def test_without_load_balancer_no_ingress() -> None:
    rec = record(program(BatchApi, batch_spec(), load_balancer=None))
    assert children(rec, TYPE, "sum") == expected_children("sum", ingress=False)


def test_job_table() -> None:
    rec = record(program(BatchApi, batch_spec()))
    table = rec.find("aws:dynamodb/table:Table", "sum-jobs")
    assert table.inputs == {
        "attributes": [{"name": "job_id", "type": "S"}, {"name": "sk", "type": "S"}],
        "hashKey": contract.TABLE_PARTITION_KEY,
        "rangeKey": contract.TABLE_SORT_KEY,
        "billingMode": "PAY_PER_REQUEST",
        "serverSideEncryption": {"enabled": True},
        "pointInTimeRecovery": {"enabled": True},
        "ttl": {"attributeName": contract.Attr.EXPIRES_AT, "enabled": True},
        "tags": {**TAGS, "cortex.dev/api-name": "sum"},
    }


def test_kubernetes_inputs_are_the_rendered_objects_with_the_tables_values() -> None:
    spec = batch_spec(iam={"s3_read": ["s3://data/sum/"]}, jobs={"retention": "24h"})
    rec = record(program(BatchApi, spec))
    context = jobs.JobContext(cluster_name="cortex-test", runtime_image=IMAGE, node_groups=tuple(NODE_GROUPS),
                              table_name="sum-jobs", region=FAKE_REGION)
    objects = jobs.job_api_objects(spec, context)
    expected = {
        ("kubernetes:core/v1:Namespace", "sum-namespace"): objects.namespace,
        ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "sum-network-policy"): objects.network_policy,
        ("kubernetes:core/v1:ServiceAccount", "sum-service-account"): objects.service_account,
        ("kubernetes:core/v1:ServiceAccount", "sum-gateway-service-account"): objects.gateway_service_account,
        ("kubernetes:rbac.authorization.k8s.io/v1:Role", "sum-gateway-rbac-role"): objects.role,
        ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "sum-gateway-rbac-binding"): objects.role_binding,
        ("kubernetes:core/v1:ConfigMap", "sum-job-template"): objects.job_template,
        ("kubernetes:apps/v1:Deployment", "sum-deployment"): objects.gateway_deployment,
        ("kubernetes:core/v1:Service", "sum-service"): objects.gateway_service,
        ("kubernetes:policy/v1:PodDisruptionBudget", "sum-pdb"): objects.gateway_pdb,
        ("kubernetes:networking.k8s.io/v1:Ingress", "sum-ingress"): objects.ingress,
    }
    for (type_, name), obj in expected.items():
        found = rec.find(type_, name).inputs
        if name == "sum-deployment":
            # The checksum is of the template as rendered with its placeholders (as the component renders it).
            annotations = found["spec"]["template"]["metadata"]["annotations"]
            obj["spec"]["template"]["metadata"]["annotations"] = annotations
        if name == "sum-job-template":
            obj["metadata"]["annotations"] = found["metadata"]["annotations"]
        assert found == obj, name
    placeholders = jobs.job_api_objects(spec, jobs.JobContext(cluster_name="cortex-test", runtime_image=IMAGE,
                                                              node_groups=tuple(NODE_GROUPS)))
    checksum = placeholders.job_template["metadata"]["annotations"][jobs.TEMPLATE_CHECKSUM]
    assert rec.find("kubernetes:core/v1:ConfigMap", "sum-job-template").inputs["metadata"]["annotations"] == {
        jobs.TEMPLATE_CHECKSUM: checksum}
    deployment = rec.find("kubernetes:apps/v1:Deployment", "sum-deployment").inputs
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {jobs.TEMPLATE_CHECKSUM: checksum}
    # The template the gateway reads holds no placeholder and no value known only once the table
    # exists: the gateway gives each job's workers its own table and region.
    text = rec.find("kubernetes:core/v1:ConfigMap", "sum-job-template").inputs["data"][contract.JOB_TEMPLATE_KEY]
    assert "<" not in text and "sum-jobs" not in text and FAKE_REGION not in text
    assert text == placeholders.job_template["data"][contract.JOB_TEMPLATE_KEY]
    env = {e["name"]: e["value"] for e in
           rec.find("kubernetes:apps/v1:Deployment", "sum-deployment").inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    config = contract.GatewayConfig.from_env(env)
    assert (config.table, config.aws_region, config.cluster_name, config.retention_seconds) == (
        "sum-jobs", FAKE_REGION, "cortex-test", 24 * 3600)


def test_rbac_role_has_exactly_the_contract_rules() -> None:
    rec = record(program(BatchApi, batch_spec()))
    role = rec.find("kubernetes:rbac.authorization.k8s.io/v1:Role", "sum-gateway-rbac-role").inputs
    assert role["rules"] == [dict(rule) for rule in contract.GATEWAY_RBAC_RULES]
    assert role["metadata"]["namespace"] == contract.job_namespace("sum")
    assert not rec.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    assert not rec.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")


def test_roles_trust_their_service_accounts_and_grant_least_privilege() -> None:
    spec = batch_spec(iam={"s3_read": ["s3://data/sum/"]})
    rec = record(program(BatchApi, spec))
    arn = table_arn("sum")
    queues = jobs.queue_arn(arn, "cortex-test", "sum")
    assert queues == f"arn:aws:sqs:{FAKE_REGION}:{FAKE_ACCOUNT}:{contract.queue_name_prefix('cortex-test', 'sum')}*"
    for role, account, namespace in (("sum-role", "sum", "cortex-job-sum"),
                                     ("sum-gateway-role", "sum-gateway", "cortex-apis")):
        trust = json.loads(rec.find("aws:iam/role:Role", role).inputs["assumeRolePolicy"])
        assert trust == iam.pod_identity_trust_policy("cortex-test", namespace, account)
        association = rec.find("aws:eks/podIdentityAssociation:PodIdentityAssociation", role.replace("role", "pod-identity"))
        assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == (namespace, account)
    worker = check_policy(rec.find("aws:iam/rolePolicy:RolePolicy", "sum-policy").inputs["policy"])
    assert worker == [*jobs._s3_statements(spec, "aws"),
                      *contract.worker_iam_statements(table_arn=arn, queue_arn=queues)]
    gateway = check_policy(rec.find("aws:iam/rolePolicy:RolePolicy", "sum-gateway-policy").inputs["policy"])
    assert gateway == [*contract.gateway_iam_statements("BatchAPI", table_arn=arn, queue_arn=queues),
                       *jobs._s3_statements(spec, "aws")]
    # The gateway runs no user code: the cluster's policies go to the workers' role only.
    attachments = [r.name for r in rec.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")]
    assert attachments == ["sum-CloudWatchAgentServerPolicy-110c90ad"]


def test_runtime_image_output_goes_into_the_gateway_and_the_template() -> None:
    spec = batch_spec()
    rec = record(program(BatchApi, spec, runtime_image=lambda: pulumi.Output.from_input("registry.example/rt@sha256:" + "ab" * 32)))
    deployment = rec.find("kubernetes:apps/v1:Deployment", "sum-deployment").inputs
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/rt@sha256:" + "ab" * 32
    template = json.loads(rec.find("kubernetes:core/v1:ConfigMap", "sum-job-template").inputs["data"][contract.JOB_TEMPLATE_KEY])
    assert template["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/rt@sha256:" + "ab" * 32


def test_bad_arguments_are_one_clear_error() -> None:
    with pytest.raises(CortexError, match=r"BatchApi 'sum': spec must be a BatchApiSpec, got S"):
        record(program(BatchApi, type("S", (), {"name": "sum"})()))  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"kind: 'BatchAPI' is not allowed \(a BatchAPI's job gateway and worker run in "
                                        r"the serving runtime image, and no runtime image is given"):
        record(program(BatchApi, batch_spec(), runtime_image=None))
    with pytest.raises(SpecError, match=r"node_groups\[0\]: 'gpu' is not allowed"):
        record(program(BatchApi, batch_spec(node_groups=["gpu"])))


def test_two_apis_do_not_share_names() -> None:
    rec = record(program(BatchApi, batch_spec("a"), batch_spec("b", networking={"endpoint": "/b"})))
    for name in ("a", "b"):
        assert children(rec, TYPE, name) == expected_children(name)
    assert len({r.urn for r in rec.resources}) == len(rec.resources)


@requires_reference
def test_every_reference_job_api_plans_on_the_reference_cluster() -> None:
    from cortex_iac.components.cluster import Cluster
    from cortex_iac.components.task_api import TaskApi

    cluster_spec = load_cluster(REFERENCE / "cluster.yaml")
    files = sorted(p for p in (REFERENCE / "apis").glob("*.yaml") if p.name.startswith(("batch__", "task__")))
    assert len(files) == 4
    for path in files:
        (spec,) = load_apis(path)

        def run(spec: Any = spec) -> None:
            cluster = Cluster(cluster_spec.cluster_name, cluster_spec)
            component = BatchApi if isinstance(spec, BatchApiSpec) else TaskApi
            component(spec.name, spec, cluster, runtime_image=IMAGE)

        rec = record(run, preview=True)
        type_ = TYPE if isinstance(spec, BatchApiSpec) else "cortex:api:TaskApi"
        names = {name for _, name in children(rec, type_, spec.name)}
        assert {f"{spec.name}-jobs", f"{spec.name}-deployment", f"{spec.name}-job-template"} <= names, path.name


def _changes(before: Callable[[], None], after: Callable[[], None]) -> dict[str, str]:
    from cortex_iac.plan.diff import diff_plans
    from cortex_iac.plan.plan import to_plan

    report = diff_plans(to_plan(record(before, preview=True)), to_plan(record(after, preview=True)))
    return {d.name: d.op for d in report.resources}


TEMPLATE_CHANGE = {"sum-job-template": "replace", "sum-deployment": "update"}


def test_a_retention_change_touches_the_gateway_and_its_template_only() -> None:
    # The template's text is only known at deploy time (it holds the table's name); its checksum
    # annotation, known in the plan, shows the change (and its replacement).
    changed = _changes(program(BatchApi, batch_spec()), program(BatchApi, batch_spec(jobs={"retention": "48h"})))
    assert changed == TEMPLATE_CHANGE


def test_a_container_change_leaves_the_table_and_roles_alone() -> None:
    other = batch_spec(pod={"containers": [{"name": "api", "image": "example/sum:2", "command": ["run"]}]})
    assert _changes(program(BatchApi, batch_spec()), program(BatchApi, other)) == TEMPLATE_CHANGE


def test_an_endpoint_change_touches_the_gateway_and_its_route_only() -> None:
    moved = batch_spec(networking={"endpoint": "/jobs/sum"})
    # The endpoint is in the gateway's settings, not in the job template.
    assert _changes(program(BatchApi, batch_spec()), program(BatchApi, moved)) == {
        "sum-deployment": "update", "sum-ingress": "update"}


def test_the_job_namespace_takes_the_clusters_api_egress_cidrs() -> None:
    # cluster.yaml's api_egress_cidrs bounds the job pods as it bounds the API pods.
    from cortex_iac.render.workload import network_policy

    rec = record(program(BatchApi, batch_spec(), api_egress_cidrs=("10.0.0.0/8",)))
    policy = rec.find("kubernetes:networking.k8s.io/v1:NetworkPolicy", "sum-network-policy").inputs
    expected = network_policy("cortex-job-sum", name="cortex-job-sum", ingress=False, egress_cidrs=["10.0.0.0/8"])
    assert policy["spec"] == expected["spec"]
    assert policy["spec"]["egress"][-1] == {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}
    # cortex render with that cluster.yaml says the same.
    cluster = load_cluster({**BASE, "api_egress_cidrs": ["10.0.0.0/8"]}, origin="cluster.yaml")
    rendered = jobs.render_job_api(batch_spec(), cluster, runtime_image=IMAGE)
    (job_policy,) = [o for o in rendered if o["kind"] == "NetworkPolicy"]
    assert job_policy["spec"] == expected["spec"]
