"""The scale-from-zero handover under the recording mock engine: which step waits for which.

Raising ``min_replicas`` from 0 moves the API's Ingress from the KEDA interceptor to the API's own
pods. Pulumi runs a resource's create or update only after those it depends on are done, and a
Deployment carrying ``pulumi.com/waitFor`` is done when that holds. So the order asserted here is
what keeps the ALB from routing to an API with no ready pod (docs/design.md, "Scale-from-zero
handover"); lowering it back to 0 is the mirror image.
"""

from __future__ import annotations

import copy
from typing import Any

import pulumi_kubernetes as k8s

from cortex_iac.components.realtime_api import ClusterRef, RealtimeApi
from cortex_iac.plan.engine import Recording, record
from cortex_iac.render.addons import LoadBalancerSettings
from cortex_iac.render.realtime import MIN_REPLICAS_ANNOTATION, ONE_POD_READY, SKIP_AWAIT, WAIT_FOR
from cortex_iac.specs import NodeGroupSpec, RealtimeApiSpec, load_apis

LB = LoadBalancerSettings("internet-facing", ("0.0.0.0/0",), None)
NODE_GROUPS = [NodeGroupSpec.model_validate({"name": "cpu", "instance_type": "m5.xlarge"})]
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
ROUTE = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
SERVICE = "kubernetes:core/v1:Service"


def _record(min_replicas: int, *, load_balancer: bool = True) -> Recording:
    data = {"name": "hello", "kind": "RealtimeAPI", "pod": {"containers": [{"name": "api", "image": "r.example/m:1"}]},
            "autoscaling": {"min_replicas": min_replicas, "max_replicas": 4}}
    (spec,) = load_apis([copy.deepcopy(data)], origin="test")
    assert isinstance(spec, RealtimeApiSpec)

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        cluster = ClusterRef(k8s_provider=provider, cluster_name="c", node_group_specs=NODE_GROUPS,
                             load_balancer=LB if load_balancer else None)
        RealtimeApi("hello", spec, cluster)

    return record(program)


def _urn(rec: Recording, type_: str, name: str) -> str:
    return rec.find(type_, name).urn


def _deps(rec: Recording, type_: str, name: str) -> set[str]:
    return set(rec.find(type_, name).dependencies)


def _annotations(rec: Recording, type_: str, name: str) -> dict[str, Any]:
    return dict(rec.find(type_, name).inputs["metadata"].get("annotations", {}))


def test_direct_route_waits_for_a_ready_pod_which_waits_for_the_new_minimum() -> None:
    rec = _record(2)
    deployment = _urn(rec, DEPLOYMENT, "hello-deployment")
    scaled = _urn(rec, SCALED_OBJECT, "hello-scaled-object")
    # The Deployment waits for one ready pod, and its min-replicas annotation makes a raised minimum
    # an update of it (so the wait runs again); its template carries neither (no rollout).
    assert _annotations(rec, DEPLOYMENT, "hello-deployment") == {WAIT_FOR: ONE_POD_READY, MIN_REPLICAS_ANNOTATION: "2"}
    template = rec.find(DEPLOYMENT, "hello-deployment").inputs["spec"]["template"]["metadata"]["annotations"]
    assert WAIT_FOR not in template and MIN_REPLICAS_ANNOTATION not in template
    # KEDA gets the new minimum first (it raises the replica count), then the Deployment's wait,
    # then the Ingress switches to the pods.
    assert scaled in _deps(rec, DEPLOYMENT, "hello-deployment")
    assert deployment not in _deps(rec, SCALED_OBJECT, "hello-scaled-object")
    assert {deployment, _urn(rec, SERVICE, "hello-service")} <= _deps(rec, INGRESS, "hello-ingress")
    assert rec.of_type(ROUTE) == []
    # The Service has pods to wait for: Pulumi's own check stays.
    assert SKIP_AWAIT not in _annotations(rec, SERVICE, "hello-service")


def test_interceptor_route_comes_before_the_api_may_scale_to_zero() -> None:
    rec = _record(0)
    deployment = _urn(rec, DEPLOYMENT, "hello-deployment")
    route = _urn(rec, ROUTE, "hello-interceptor-route")
    ingress = _urn(rec, INGRESS, "hello-ingress")
    # No pod needs to exist: no wait on the Deployment beyond Pulumi's own (which passes at 0
    # replicas), none on the Service's endpoints.
    assert _annotations(rec, DEPLOYMENT, "hello-deployment") == {MIN_REPLICAS_ANNOTATION: "0"}
    assert _annotations(rec, SERVICE, "hello-service") == {SKIP_AWAIT: "true"}
    # The interceptor knows the host before the ALB sends it requests, and the ScaledObject allows
    # zero replicas only once the ALB routes through the interceptor.
    assert route in _deps(rec, INGRESS, "hello-ingress")
    assert _urn(rec, SERVICE, "hello-service") in _deps(rec, ROUTE, "hello-interceptor-route")
    assert {deployment, ingress} <= _deps(rec, SCALED_OBJECT, "hello-scaled-object")
    assert _urn(rec, SCALED_OBJECT, "hello-scaled-object") not in _deps(rec, DEPLOYMENT, "hello-deployment")


def test_without_a_load_balancer_the_order_still_holds() -> None:
    rec = _record(0, load_balancer=False)
    assert rec.of_type(INGRESS) == []
    assert _urn(rec, DEPLOYMENT, "hello-deployment") in _deps(rec, SCALED_OBJECT, "hello-scaled-object")
    rec = _record(1, load_balancer=False)
    assert _urn(rec, SCALED_OBJECT, "hello-scaled-object") in _deps(rec, DEPLOYMENT, "hello-deployment")


def test_ingress_moves_namespace_so_pulumi_creates_the_new_one_before_deleting_the_old() -> None:
    # Same Pulumi resource, new namespace: a replacement the Kubernetes provider does create-first
    # (only a same-name same-namespace replacement must delete first), and nothing asks otherwise.
    before, after = _record(0), _record(3)
    old, new = before.find(INGRESS, "hello-ingress"), after.find(INGRESS, "hello-ingress")
    assert old.urn == new.urn
    assert (old.inputs["metadata"]["namespace"], new.inputs["metadata"]["namespace"]) == ("keda", "cortex-apis")
    assert old.inputs["metadata"]["name"] == new.inputs["metadata"]["name"]
    assert not old.delete_before_replace and not new.delete_before_replace
