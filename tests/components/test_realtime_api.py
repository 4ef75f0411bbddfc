"""``cortex:api:RealtimeApi`` under the recording mock engine: children, inputs, stability."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pulumi.runtime import mocks as pulumi_mocks

from cortex_iac.components.realtime_api import TYPE, ClusterRef, RealtimeApi, _url
from cortex_iac.components.runtime_image import (
    RegistryCredentials,
    RuntimeImage,
    image_tag,
)
from cortex_iac.errors import CortexError, SpecError
from cortex_iac.plan.diff import diff_plans
from cortex_iac.plan.engine import Recording, record
from cortex_iac.plan.plan import to_plan
from cortex_iac.render import iam
from cortex_iac.render.addons import LoadBalancerSettings
from cortex_iac.render.realtime import API_NAMESPACE, ApiContext, api_objects
from cortex_iac.specs import (
    NodeGroupSpec,
    RealtimeApiSpec,
    load_apis,
    read_handler_sources,
)
from tests.components.conftest import FAKE_DIGEST

STACK = "urn:pulumi:test::cortex::"
LB = LoadBalancerSettings("internet-facing", ("0.0.0.0/0",), "arn:aws:acm:us-east-1:123456789012:certificate/abc")
NODE_GROUPS = [NodeGroupSpec.model_validate({"name": "cpu", "instance_type": "m5.xlarge"})]
POLICY = "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"


def _api(name: str = "hello", image: str = "registry.example/model:1", **extra: Any) -> RealtimeApiSpec:
    data = {"name": name, "kind": "RealtimeAPI", "pod": {"containers": [{"name": "api", "image": image}]}, **extra}
    (spec,) = load_apis([copy.deepcopy(data)], origin="test")
    assert isinstance(spec, RealtimeApiSpec)
    return spec


def _program(*specs: RealtimeApiSpec, runtime_image: Any = None, **ref: Any) -> Callable[[], None]:
    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        cluster = ClusterRef(
            k8s_provider=provider, cluster_name="cortex-test", node_group_specs=NODE_GROUPS, load_balancer=LB,
            iam_policy_arns=[POLICY], tags={"team": "ml", "cortex.dev/cluster-name": "cortex-test"}, **ref,
        )
        image = runtime_image() if callable(runtime_image) else runtime_image
        for spec in specs:
            api = RealtimeApi(spec.name, spec, cluster, runtime_image=image)
            pulumi.export(f"{spec.name}-namespace", api.namespace)
            pulumi.export(f"{spec.name}-service", api.service_name)
            pulumi.export(f"{spec.name}-url", api.url)

    return program


def _children(rec: Recording, name: str) -> list[tuple[str, str]]:
    (component,) = [r for r in rec.of_type(TYPE) if r.name == name]
    return sorted((r.type, r.name) for r in rec.children(component.urn))


def test_children_types_names_and_parents() -> None:
    rec = record(_program(_api(iam={"s3_read": ["s3://models/hello/"]})))
    assert _children(rec, "hello") == sorted([
        ("kubernetes:core/v1:ServiceAccount", "hello-service-account"),
        ("kubernetes:core/v1:ConfigMap", "hello-envoy-config"),
        ("kubernetes:apps/v1:Deployment", "hello-deployment"),
        ("kubernetes:core/v1:Service", "hello-service"),
        ("kubernetes:policy/v1:PodDisruptionBudget", "hello-pdb"),
        ("kubernetes:keda.sh/v1alpha1:ScaledObject", "hello-scaled-object"),
        ("kubernetes:networking.k8s.io/v1:Ingress", "hello-ingress"),
        ("aws:iam/role:Role", "hello-role"),
        ("aws:iam/rolePolicy:RolePolicy", "hello-s3-read"),
        ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "hello-CloudWatchAgentServerPolicy-110c90ad"),
        ("aws:eks/podIdentityAssociation:PodIdentityAssociation", "hello-pod-identity"),
    ])
    # Every resource of the program is the component's child, except the provider.
    component = rec.find(TYPE, "hello")
    assert component.parent == f"{STACK}pulumi:pulumi:Stack::cortex-test"
    assert {r.parent for r in rec.resources if r.type not in (TYPE, "pulumi:providers:kubernetes")} == {component.urn}
    for r in rec.resources:
        if r.type.startswith("kubernetes:"):
            assert r.provider == f"{STACK}pulumi:providers:kubernetes::k8s", r.name
    assert rec.outputs == {"hello-namespace": API_NAMESPACE, "hello-service": "hello", "hello-url": None}


def test_kubernetes_inputs_are_the_rendered_objects() -> None:
    spec = _api(autoscaling={"min_replicas": 0, "max_replicas": 4})
    rec = record(_program(spec))
    objects = api_objects(spec, ApiContext(node_groups=tuple(NODE_GROUPS), https=True))
    expected = {
        ("kubernetes:core/v1:ServiceAccount", "hello-service-account"): objects.service_account,
        ("kubernetes:core/v1:ConfigMap", "hello-envoy-config"): objects.envoy_config,
        ("kubernetes:apps/v1:Deployment", "hello-deployment"): objects.deployment,
        ("kubernetes:core/v1:Service", "hello-service"): objects.service,
        ("kubernetes:policy/v1:PodDisruptionBudget", "hello-pdb"): objects.pod_disruption_budget,
        ("kubernetes:keda.sh/v1alpha1:ScaledObject", "hello-scaled-object"): objects.scaled_object,
        ("kubernetes:http.keda.sh/v1beta1:InterceptorRoute", "hello-interceptor-route"): objects.interceptor_route,
        ("kubernetes:networking.k8s.io/v1:Ingress", "hello-ingress"): objects.ingress,
    }
    for (type_, name), obj in expected.items():
        assert rec.find(type_, name).inputs == obj, name
    assert objects.ingress["metadata"]["namespace"] == "keda"  # scale-to-zero routes through the interceptor


def test_iam_role_trusts_pod_identity_and_grants_what_the_spec_asks() -> None:
    spec = _api(iam={"s3_read": ["s3://models/hello/"]})
    rec = record(_program(spec))
    role = rec.find("aws:iam/role:Role", "hello-role")
    assert json.loads(role.inputs["assumeRolePolicy"]) == iam.pod_identity_trust_policy("cortex-test", API_NAMESPACE, "hello")
    assert role.inputs["tags"] == {"team": "ml", "cortex.dev/cluster-name": "cortex-test", "cortex.dev/api-name": "hello"}
    policy = rec.find("aws:iam/rolePolicy:RolePolicy", "hello-s3-read")
    assert json.loads(policy.inputs["policy"]) == api_objects(spec, ApiContext()).iam_policy
    assert policy.inputs["role"] == "hello-role-id"
    attachment = rec.find("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "hello-CloudWatchAgentServerPolicy-110c90ad")
    assert attachment.inputs["policyArn"] == POLICY
    association = rec.find("aws:eks/podIdentityAssociation:PodIdentityAssociation", "hello-pod-identity")
    assert {k: association.inputs[k] for k in ("clusterName", "namespace", "serviceAccount", "roleArn")} == {
        "clusterName": "cortex-test", "namespace": API_NAMESPACE, "serviceAccount": "hello",
        "roleArn": "arn:aws:iam:us-east-1:123456789012:hello-role"}


def test_no_s3_read_means_no_inline_policy() -> None:
    rec = record(_program(_api()))
    assert rec.of_type("aws:iam/rolePolicy:RolePolicy") == []


def test_kubernetes_children_wait_for_the_cluster_add_ons() -> None:
    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        keda = k8s.core.v1.ConfigMap("keda-stand-in", metadata={"name": "x"}, opts=pulumi.ResourceOptions(provider=provider))
        cluster = ClusterRef(k8s_provider=provider, cluster_name="c", addon_releases={"keda": keda})
        RealtimeApi("hello", _api(), cluster)

    rec = record(program)
    keda_urn = rec.find("kubernetes:core/v1:ConfigMap", "keda-stand-in").urn
    for r in rec.children(rec.find(TYPE, "hello").urn):
        if r.type.startswith("kubernetes:"):
            assert keda_urn in r.dependencies, r.name
    # No load balancer: no Ingress, and no URL.
    assert rec.of_type("kubernetes:networking.k8s.io/v1:Ingress") == []


@pytest.fixture
def ignore_changes() -> Iterator[dict[str, list[str]]]:
    """Resource name -> ignoreChanges, as the program registered them."""
    seen: dict[str, list[str]] = {}
    original = pulumi_mocks.MockMonitor.RegisterResource

    def register(self: Any, request: Any) -> Any:
        seen[request.name] = list(request.ignoreChanges)
        return original(self, request)

    pulumi_mocks.MockMonitor.RegisterResource = register  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        pulumi_mocks.MockMonitor.RegisterResource = original  # type: ignore[method-assign]


def test_pulumi_leaves_replicas_to_keda(ignore_changes: dict[str, list[str]]) -> None:
    rec = record(_program(_api(autoscaling={"min_replicas": 2, "init_replicas": 5})))
    assert rec.find("kubernetes:apps/v1:Deployment", "hello-deployment").inputs["spec"]["replicas"] == 5
    assert ignore_changes["hello-deployment"] == ["spec.replicas"]
    assert all(not v for k, v in ignore_changes.items() if k != "hello-deployment")


def _inputs_by_urn(rec: Recording) -> dict[str, dict[str, Any]]:
    return {r.urn: r.inputs for r in rec.resources}


def test_changing_one_image_changes_only_that_deployment() -> None:
    before = _inputs_by_urn(record(_program(_api("a"), _api("b"))))
    after = _inputs_by_urn(record(_program(_api("a", image="registry.example/model:2"), _api("b"))))
    assert before.keys() == after.keys()
    changed = sorted(urn.rsplit("::", 1)[-1] for urn in before if before[urn] != after[urn])
    assert changed == ["a-deployment"]


def test_adding_an_api_changes_no_existing_resource() -> None:
    before = _inputs_by_urn(record(_program(_api("a"))))
    after = _inputs_by_urn(record(_program(_api("a"), _api("b", autoscaling={"min_replicas": 0}))))
    assert before.keys() <= after.keys()
    assert {urn: after[urn] for urn in before} == before
    assert len(after) > len(before)


def test_changing_concurrency_makes_a_new_envoy_config_and_rolls_the_pods() -> None:
    before = record(_program(_api()))
    after = record(_program(_api(pod={"max_concurrency": 3, "containers": [{"name": "api", "image": "registry.example/model:1"}]})))
    old = before.find("kubernetes:core/v1:ConfigMap", "hello-envoy-config").inputs["metadata"]["name"]
    new = after.find("kubernetes:core/v1:ConfigMap", "hello-envoy-config").inputs["metadata"]["name"]
    assert old != new and old.startswith("hello-envoy-") and new.startswith("hello-envoy-")
    volumes = after.find("kubernetes:apps/v1:Deployment", "hello-deployment").inputs["spec"]["template"]["spec"]["volumes"]
    assert {"name": "envoy-config", "configMap": {"name": new}} in volumes


def test_url_comes_from_the_ingress_status() -> None:
    status = SimpleNamespace(load_balancer=SimpleNamespace(ingress=[SimpleNamespace(hostname="k8s-cortexapi-1.elb.amazonaws.com")]))
    assert _url(status, "/hello", True) == "https://k8s-cortexapi-1.elb.amazonaws.com/hello"
    assert _url(None, "/hello", True) is None
    assert _url(SimpleNamespace(load_balancer=SimpleNamespace(ingress=[])), "/hello", False) is None


def test_cluster_without_the_needed_attributes_is_refused() -> None:
    def program() -> None:
        RealtimeApi("hello", _api(), SimpleNamespace(k8s_provider=None, cluster_name="c"))  # type: ignore[arg-type]

    with pytest.raises(CortexError, match=r"RealtimeApi 'hello': cluster must be a Cluster component or a "
                                          r"ClusterHandle, got SimpleNamespace"):
        record(program)


def test_scale_to_zero_needs_the_http_add_on() -> None:
    with pytest.raises(CortexError, match=r"RealtimeApi 'hello': autoscaling.min_replicas: 0 needs the KEDA HTTP add-on"):
        record(_program(_api(autoscaling={"min_replicas": 0}), keda_http_interceptor=None))


def test_prometheus_is_required() -> None:
    with pytest.raises(CortexError, match=r"RealtimeApi 'hello': the cluster has no Prometheus"):
        record(_program(_api(), prometheus_url=None))


def test_spec_problems_are_cortex_errors() -> None:
    with pytest.raises(CortexError, match=r"apis\[0\].node_groups\[0\]: 'gpu' is not allowed \(must be a node "
                                          r"group of the cluster \(cpu\)\)"):
        record(_program(_api(node_groups=["gpu"])))


# --- handler containers --------------------------------------------------------------------------

IRIS = Path(__file__).resolve().parents[2] / "examples" / "iris-classifier" / "api.yaml"
RUNTIME_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cortex-serving:src-0123456789abcdef"


def _handler_api(directory: Path, source: str = "class Handler: ...\n") -> RealtimeApiSpec:
    (directory / "serve.py").write_text(source)
    (directory / "api.yaml").write_text(
        "- {name: echo, kind: RealtimeAPI, pod: {containers: [{name: api, handler: {path: serve.py}}]}}\n")
    (spec,) = load_apis(directory / "api.yaml")
    assert isinstance(spec, RealtimeApiSpec)
    return spec


def test_handler_api_ships_its_file_and_runs_the_runtime_image() -> None:
    (spec,) = load_apis(IRIS)
    assert isinstance(spec, RealtimeApiSpec)
    rec = record(_program(spec, runtime_image=RUNTIME_IMAGE))
    assert ("kubernetes:core/v1:ConfigMap", "iris-classifier-handler") in _children(rec, "iris-classifier")
    objects = api_objects(spec, ApiContext(node_groups=tuple(NODE_GROUPS), https=True, runtime_image=RUNTIME_IMAGE),
                          read_handler_sources(spec))
    handler = rec.find("kubernetes:core/v1:ConfigMap", "iris-classifier-handler")
    deployment = rec.find("kubernetes:apps/v1:Deployment", "iris-classifier-deployment")
    assert handler.inputs == objects.handler_source
    assert deployment.inputs == objects.deployment
    assert deployment.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == RUNTIME_IMAGE
    assert handler.urn in deployment.dependencies  # the pod's file exists before the pod


def test_handler_api_without_a_runtime_image_is_refused() -> None:
    (spec,) = load_apis(IRIS)
    assert isinstance(spec, RealtimeApiSpec)
    with pytest.raises(SpecError) as caught:
        record(_program(spec))
    assert str(caught.value) == (
        f"{IRIS}: apis[0].pod.containers[0].handler: 'handler.py' is not allowed (a handler runs in the serving "
        "runtime image, and no runtime image is given: build and push it (cortex_iac/serving/README.md, or the "
        "RuntimeImage component) and give its reference as the stack config key cortex:runtimeImage, "
        "RealtimeApi's runtime_image, or --runtime-image)"
    )


def test_the_handler_file_is_read_when_the_spec_loads(tmp_path: Path) -> None:
    # What ships is what was validated: a file removed (or changed) after loading changes nothing.
    spec = _handler_api(tmp_path)
    (tmp_path / "serve.py").unlink()
    rec = record(_program(spec, runtime_image=RUNTIME_IMAGE))
    assert rec.find("kubernetes:core/v1:ConfigMap", "echo-handler").inputs["data"] == {"serve.py": "class Handler: ...\n"}


@pytest.mark.parametrize("preview", [False, True])
def test_runtime_image_output_goes_into_the_handler_container(tmp_path: Path, preview: bool) -> None:
    def built_image() -> pulumi.Output[str]:
        return RuntimeImage("serving", credentials=RegistryCredentials("AWS", "token")).image_ref

    spec = _handler_api(tmp_path)
    rec = record(_program(spec, runtime_image=built_image), preview=preview)
    deployment = rec.find("kubernetes:apps/v1:Deployment", "echo-deployment")
    (api,) = deployment.inputs["spec"]["template"]["spec"]["containers"]  # no sidecar in a handler pod
    tag = image_tag()
    assert api["image"] == ("$unknown" if preview else f"123456789012.dkr.ecr.us-east-1.amazonaws.com/serving:{tag}@{FAKE_DIGEST}")
    assert not [r for r in rec.resources if r.name == "echo-envoy-config"]
    assert rec.find("docker-build:index:Image", "serving-image").urn in deployment.dependencies
    # Everything else is what the renderer gives for a known image.
    objects = api_objects(spec, ApiContext(node_groups=tuple(NODE_GROUPS), https=True, runtime_image="x"),
                          read_handler_sources(spec))
    api["image"] = "x"
    assert deployment.inputs == objects.deployment


def test_changing_the_handler_makes_a_new_config_map_and_rolls_only_that_api(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    before = _inputs_by_urn(record(_program(_handler_api(tmp_path / "a"), _api("b"), runtime_image=RUNTIME_IMAGE)))
    changed_spec = _handler_api(tmp_path / "a", "class Handler:\n    pass\n")
    after = _inputs_by_urn(record(_program(changed_spec, _api("b"), runtime_image=RUNTIME_IMAGE)))
    assert before.keys() == after.keys()
    changed = sorted(urn.rsplit("::", 1)[-1] for urn in before if before[urn] != after[urn])
    assert changed == ["echo-deployment", "echo-handler"]
    old, new = (inputs[next(u for u in inputs if u.endswith("::echo-handler"))]["metadata"]["name"]
                for inputs in (before, after))
    assert old != new and old.startswith("echo-handler-") and new.startswith("echo-handler-")


# --- a namespace other than cortex-apis ----------------------------------------------------------

def _namespaced(rec: Recording, api: str) -> dict[str, dict[str, Any]]:
    return {r.name.removeprefix(f"{api}-"): r.inputs for r in rec.children(rec.find(TYPE, api).urn)
            if r.type.startswith("kubernetes:")}


def test_a_custom_api_namespace_is_used_in_the_query_and_the_interceptor_host() -> None:
    rec = record(_program(_api(autoscaling={"min_replicas": 0, "max_replicas": 3}), api_namespace="ml-apis"))
    objects = _namespaced(rec, "hello")
    query = objects["scaled-object"]["spec"]["triggers"][0]["metadata"]["query"]
    assert 'namespace="ml-apis"' in query and "cortex-apis" not in query
    assert objects["interceptor-route"]["spec"]["rules"][0]["hosts"] == ["hello.ml-apis"]
    transforms = json.loads(objects["ingress"]["metadata"]["annotations"][
        "alb.ingress.kubernetes.io/transforms.keda-add-ons-http-interceptor-proxy"])
    assert transforms[1]["hostHeaderRewriteConfig"]["rewrites"][0]["replace"] == "hello.ml-apis"
    assert {name: obj["metadata"]["namespace"] for name, obj in objects.items()} == {
        **{name: "ml-apis" for name in objects}, "ingress": "keda"}
    assert "cortex-apis" not in json.dumps([r.inputs for r in rec.resources])
    association = rec.find("aws:eks/podIdentityAssociation:PodIdentityAssociation", "hello-pod-identity")
    assert association.inputs["namespace"] == "ml-apis"
    assert rec.outputs["hello-namespace"] == "ml-apis"


@pytest.mark.parametrize("preview", [False, True])
def test_a_namespace_output_needs_its_plain_name_and_still_orders_the_objects(preview: bool) -> None:
    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        namespace = k8s.core.v1.Namespace("ns", metadata={"name": "team-b"}, opts=pulumi.ResourceOptions(provider=provider))
        cluster = ClusterRef(k8s_provider=provider, cluster_name="c", api_namespace=namespace.metadata.name,
                             api_namespace_name="team-b")
        RealtimeApi("hello", _api(), cluster)

    rec = record(program, preview=preview)
    ns_urn = rec.find("kubernetes:core/v1:Namespace", "ns").urn
    scaled = rec.find("kubernetes:keda.sh/v1alpha1:ScaledObject", "hello-scaled-object")
    assert 'namespace="team-b"' in scaled.inputs["spec"]["triggers"][0]["metadata"]["query"]
    assert scaled.inputs["metadata"]["namespace"] == "team-b"
    assert ns_urn in scaled.dependencies  # the namespace exists before the objects in it


def test_a_namespace_output_without_its_plain_name_is_refused() -> None:
    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        namespace = k8s.core.v1.Namespace("ns", metadata={"name": "team-b"}, opts=pulumi.ResourceOptions(provider=provider))
        RealtimeApi("hello", _api(), ClusterRef(k8s_provider=provider, cluster_name="c", api_namespace=namespace.metadata.name))

    with pytest.raises(CortexError, match=r"ClusterHandle: api_namespace is an Output; give the namespace's name as "
                                          r"api_namespace_name"):
        record(program)


def test_a_namespace_output_that_resolves_to_another_name_is_refused() -> None:
    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        namespace = k8s.core.v1.Namespace("ns", metadata={"name": "team-b"}, opts=pulumi.ResourceOptions(provider=provider))
        cluster = ClusterRef(k8s_provider=provider, cluster_name="c", api_namespace=namespace.metadata.name,
                             api_namespace_name="team-c")
        RealtimeApi("hello", _api(), cluster)

    with pytest.raises(CortexError, match=r"RealtimeApi 'hello': the cluster's API namespace is 'team-b', but its "
                                          r"name was given as 'team-c'"):
        record(program)



# --- cluster policies ----------------------------------------------------------------------------

ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


def _attachments(*arns: str) -> Recording:
    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        RealtimeApi("hello", _api(), ClusterRef(k8s_provider=provider, cluster_name="c", iam_policy_arns=list(arns)))

    return record(program)


def test_same_named_policies_of_other_paths_or_accounts_get_their_own_attachments() -> None:
    arns = ["arn:aws:iam::aws:policy/ReadModels", "arn:aws:iam::123456789012:policy/ReadModels",
            "arn:aws:iam::123456789012:policy/team-a/ReadModels"]
    rec = _attachments(*arns, arns[0])  # a policy given twice is attached once
    attachments = {r.inputs["policyArn"]: r for r in rec.of_type(ATTACHMENT)}
    assert sorted(attachments) == sorted(arns)
    for arn, r in attachments.items():
        assert r.name == f"hello-ReadModels-{hashlib.sha256(arn.encode()).hexdigest()[:8]}"
        # Never deployed under the ambiguous old name, so no alias to it.
        assert r.aliases == []


def test_the_former_attachment_name_is_an_alias_so_pulumi_renames_instead_of_detaching() -> None:
    rec = _attachments(POLICY)
    (attachment,) = rec.of_type(ATTACHMENT)
    assert attachment.name == "hello-CloudWatchAgentServerPolicy-110c90ad"
    # A plan of the former naming (what a stack deployed before holds) diffs to nothing: Pulumi moves
    # the resource to its new URN; a delete + create would detach the policy (the delete detaches it).
    head = to_plan(rec)
    base = copy.deepcopy(head)
    (old,) = [r for r in base["resources"] if r["type"] == ATTACHMENT]
    old["urn"], old["name"], old["aliases"] = attachment.aliases[0], "hello-CloudWatchAgentServerPolicy", []
    assert attachment.aliases == [attachment.urn.replace("-110c90ad", "")]
    assert diff_plans(base, head).resources == []
