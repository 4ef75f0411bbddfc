"""RealtimeAPI rendering: golden files, real validators, and the decisions the objects encode.

Golden files live in tests/render/golden/realtime/; after an intended change, rewrite them with
``CORTEX_UPDATE_GOLDEN=1 pytest tests/render/test_realtime.py`` and review the diff.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cortex_iac.errors import SpecError
from cortex_iac.render import autoscaling, envoy, realtime, routing
from cortex_iac.render.realtime import (
    API_NAMESPACE,
    ENVOY_CONFIG_CHECKSUM,
    RUNTIME_COMMAND,
    RUNTIME_UID,
    ApiContext,
    api_objects,
    iam_policy,
    render_api,
    render_namespace,
)
from cortex_iac.render.workload import runtime_liveness_probe
from cortex_iac.serving.config import RuntimeConfig
from cortex_iac.specs import (
    ClusterSpec,
    RealtimeApiSpec,
    load_apis,
    load_cluster,
    read_handler_sources,
)
from cortex_iac.specs import pod as pod_spec
from cortex_iac.versions import SERVING_BASE_IMAGE
from tests.kube import validate_all
from tests.needs import missing

GOLDEN = Path(__file__).parent / "golden" / "realtime"
REPO = Path(__file__).resolve().parents[2]
REFERENCE_APIS = Path(__file__).resolve().parents[3] / "shared" / "cortex-reference" / "apis"

CLUSTER: dict[str, Any] = {
    "cluster_name": "cortex-test",
    "region": "us-west-2",
    "ssl_certificate_arn": "arn:aws:acm:us-west-2:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
    "api_load_balancer_cidr_white_list": ["10.0.0.0/8", "192.0.2.0/24"],
    "tags": {"team": "ml"},
    "node_groups": [
        {"name": "cpu", "instance_type": "m5.xlarge", "priority": 10},
        {"name": "cpu-spot", "instance_type": "m5.xlarge", "priority": 50, "spot": True},
        {"name": "gpu", "instance_type": "g4dn.xlarge", "priority": 20},
        {"name": "inf", "instance_type": "inf1.xlarge"},
    ],
}


def _container(**extra: Any) -> dict[str, Any]:
    return {"name": "api", "image": "registry.example/model:1", **extra}


# Synthetic APIs: one feature each, on CLUSTER.
SYNTHETIC: dict[str, dict[str, Any]] = {
    "gpu": {
        "name": "gpu-model", "kind": "RealtimeAPI",
        "pod": {"max_concurrency": 4, "containers": [_container(compute={"cpu": "1", "mem": "4Gi", "gpu": 1})]},
        "autoscaling": {"min_replicas": 2, "max_replicas": 8, "target_in_flight": 3},
    },
    "inferentia": {
        "name": "inf-model", "kind": "RealtimeAPI",
        "pod": {"port": 9000, "containers": [_container(compute={"cpu": "500m", "mem": "2Gi", "inf": 1})]},
    },
    "multi-container": {
        "name": "two-parts", "kind": "RealtimeAPI",
        "node_groups": ["cpu", "cpu-spot"],
        "pod": {"containers": [
            _container(name="web", readiness_probe={"tcp_socket": {"port": 8080}}),
            _container(name="model", image="registry.example/tfs:2", compute={"cpu": "2", "mem": "3Gi"},
                       env={"MODEL": "resnet", "THREADS": "4"}, command=["/serve"], args=["--port=8500"]),
        ]},
    },
    "scale-to-zero": {
        "name": "sleepy", "kind": "RealtimeAPI",
        "pod": {"max_concurrency": 2, "max_queue_length": 10, "containers": [_container()]},
        "networking": {"endpoint": "/v1/sleepy.model"},
        "autoscaling": {"min_replicas": 0, "max_replicas": 3, "downscale_stabilization_period": "30s"},
    },
    "shm": {
        "name": "shm-model", "kind": "RealtimeAPI",
        "pod": {"containers": [_container(compute={"cpu": "1", "mem": "4Gi", "shm": "1Gi"})]},
    },
    "probes": {
        "name": "probed", "kind": "RealtimeAPI",
        "update_strategy": {"max_surge": 1, "max_unavailable": 0},
        "iam": {"s3_read": ["s3://models/probed/", "s3://models/shared/", "s3://other-bucket"]},
        "autoscaling": {"window": "30s", "max_upscale_factor": 3, "max_downscale_factor": 0.5,
                        "upscale_tolerance": 0.1, "downscale_tolerance": 0.02, "init_replicas": 3},
        "pod": {"containers": [
            _container(
                readiness_probe={"http_get": {"path": "/ready", "port": 8080}, "initial_delay_seconds": 5,
                                 "period_seconds": 3, "failure_threshold": 2},
                liveness_probe={"exec": {"command": ["/bin/check", "--live"]}, "timeout_seconds": 2},
                pre_stop={"exec": {"command": ["/shutdown", "--graceful"]}},
            ),
            _container(name="sidecar", image="registry.example/helper:1",
                       liveness_probe={"tcp_socket": {"port": 9100}}, pre_stop={"exec": {"command": ["/stop"]}}),
        ]},
    },
}


def _spec(data: dict[str, Any]) -> RealtimeApiSpec:
    (spec,) = load_apis([copy.deepcopy(data)], origin="test")
    assert isinstance(spec, RealtimeApiSpec)
    return spec


def _cluster(**changes: Any) -> ClusterSpec:
    return load_cluster({**copy.deepcopy(CLUSTER), **changes}, origin="test")


def _reference_files() -> list[Path]:
    return sorted(REFERENCE_APIS.glob("realtime__*.yaml")) if REFERENCE_APIS.is_dir() else []


def _need_reference() -> None:
    if not REFERENCE_APIS.is_dir():
        missing(f"Cortex reference APIs not found at {REFERENCE_APIS} (shared/ is only beside the repo)")


def _check_golden(name: str, objects: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, width=120)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("CORTEX_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.is_file(), f"{path} missing; run with CORTEX_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{path} differs from the rendering; rerun with CORTEX_UPDATE_GOLDEN=1 and review"


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [o["kind"] for o in objects]
    assert len(kinds) == len(set(kinds)), kinds
    return {o["kind"]: o for o in objects}


# --- golden files and validators -----------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(SYNTHETIC))
def test_synthetic_golden_and_valid(case: str) -> None:
    objects = render_api(_spec(SYNTHETIC[case]), _cluster())
    assert validate_all(objects) == len(objects) >= 7
    _check_golden(f"synthetic-{case}", objects)


@pytest.mark.parametrize("path", _reference_files(), ids=lambda p: p.stem)
def test_reference_apis_golden_and_valid(path: Path) -> None:
    (spec,) = load_apis(path)
    assert isinstance(spec, RealtimeApiSpec)
    objects = render_api(spec)  # no cluster spec: what `cortex render` gives for a bare cortex.yaml
    assert validate_all(objects) == len(objects)
    _check_golden(path.stem.removeprefix("realtime__"), objects)


def test_reference_apis_are_all_exercised() -> None:
    _need_reference()
    assert len(_reference_files()) >= 12


@pytest.mark.parametrize("path", _reference_files(), ids=lambda p: p.stem)
def test_reference_apis_valid_on_a_cluster(path: Path) -> None:
    (spec,) = load_apis(path)
    assert isinstance(spec, RealtimeApiSpec)
    objects = render_api(spec, _cluster())
    assert validate_all(objects) == len(objects)


def test_cluster_objects_golden_and_valid() -> None:
    objects = [render_namespace(), *routing.ingress_class_objects(_cluster(), API_NAMESPACE)]
    assert validate_all(objects) == 3
    _check_golden("cluster-objects", objects)


def test_ingress_class_without_tls_has_no_certificate_nor_redirect() -> None:
    params, _ = routing.ingress_class_objects(_cluster(ssl_certificate_arn=None), API_NAMESPACE)
    assert "certificateArn" not in params["spec"] and "sslRedirectPort" not in params["spec"]
    ingress = _by_kind(render_api(_spec(SYNTHETIC["shm"]), _cluster(ssl_certificate_arn=None)))["Ingress"]
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTP": 80}]'


# --- autoscaling ---------------------------------------------------------------------------------

def _behavior(kubernetes_version: str = "1.34", **autoscaling_fields: Any) -> dict[str, Any]:
    data = copy.deepcopy(SYNTHETIC["shm"])
    data["autoscaling"] = autoscaling_fields
    return autoscaling.hpa_behavior("x", _spec(data).autoscaling, kubernetes_version)


def test_step_limits_become_percent_policies_rounded_down() -> None:
    b = _behavior(max_upscale_factor=1.5, max_downscale_factor=0.9)
    assert b["scaleUp"]["policies"] == [
        {"type": "Percent", "value": 50, "periodSeconds": 10}, {"type": "Pods", "value": 1, "periodSeconds": 10}]
    # 1 - 0.9 is 0.09999999999999998 in floats; the percent must still be 10, not 9.
    assert b["scaleDown"]["policies"][0]["value"] == 10
    assert b["scaleUp"]["selectPolicy"] == b["scaleDown"]["selectPolicy"] == "Max"
    assert _behavior(max_upscale_factor=1.005)["scaleUp"]["policies"][0]["value"] == 1
    assert _behavior(max_upscale_factor=4.333)["scaleUp"]["policies"][0]["value"] == 333
    assert _behavior(max_downscale_factor=0)["scaleDown"]["policies"][0]["value"] == 100


def test_windows_land_in_the_behavior() -> None:
    b = _behavior(upscale_stabilization_period="2m", downscale_stabilization_period="10m")
    assert b["scaleUp"]["stabilizationWindowSeconds"] == 120
    assert b["scaleDown"]["stabilizationWindowSeconds"] == 600


def test_tolerances_only_where_kubernetes_applies_them() -> None:
    # 1.34 (pinned): HPAConfigurableTolerance is alpha and off; the field would be dropped.
    assert autoscaling.hpa_behavior("x", _spec(SYNTHETIC["shm"]).autoscaling) == _behavior("1.34")
    assert "tolerance" not in _behavior("1.34")["scaleUp"]
    b = _behavior("1.35", upscale_tolerance=0.25, downscale_tolerance=0)
    assert (b["scaleUp"]["tolerance"], b["scaleDown"]["tolerance"]) == ("0.25", "0")



def test_tolerance_renders_valid_for_the_crd_and_kubernetes_1_35() -> None:
    so = _by_kind(render_api(_spec(SYNTHETIC["probes"]), _cluster()))["ScaledObject"]
    so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] = autoscaling.hpa_behavior(
        "probed", _spec(SYNTHETIC["probes"]).autoscaling, "1.35")
    assert validate_all([so]) == 1


def test_scaled_object_uses_the_envoy_inflight_query_and_target() -> None:
    spec = _spec(SYNTHETIC["probes"])
    so = _by_kind(render_api(spec, _cluster()))["ScaledObject"]
    (trigger,) = so["spec"]["triggers"]
    assert trigger["metadata"]["query"] == envoy.inflight_query(API_NAMESPACE, "probed", 30)
    assert trigger["metadata"]["threshold"] == "1"  # target_in_flight defaults to max_concurrency
    assert trigger["metricType"] == "AverageValue"
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 100)
    assert so["spec"]["scaleTargetRef"]["name"] == "probed"


def test_fractional_target_in_flight() -> None:
    data = copy.deepcopy(SYNTHETIC["gpu"])
    data["autoscaling"]["target_in_flight"] = 2.5
    so = _by_kind(render_api(_spec(data), _cluster()))["ScaledObject"]
    assert so["spec"]["triggers"][0]["metadata"]["threshold"] == "2.5"


def test_scale_to_zero_is_one_scaled_object_with_both_triggers_and_a_matching_route() -> None:
    objects = _by_kind(render_api(_spec(SYNTHETIC["scale-to-zero"]), _cluster()))
    so, route, ingress = objects["ScaledObject"], objects["InterceptorRoute"], objects["Ingress"]
    assert [t["name"] for t in so["spec"]["triggers"]] == ["in-flight", "interceptor"]
    push = so["spec"]["triggers"][1]
    assert push["type"] == "external-push"
    assert push["metadata"] == {
        "scalerAddress": "keda-add-ons-http-external-scaler.keda:9090", "interceptorRoute": route["metadata"]["name"]}
    assert so["spec"]["minReplicaCount"] == 0 and so["spec"]["cooldownPeriod"] == 30
    assert objects["Deployment"]["spec"]["replicas"] == 0
    # The interceptor's per-replica target is the pod's capacity.
    assert route["spec"]["scalingMetric"] == {"concurrency": {"targetValue": 12}}
    assert route["spec"]["target"] == {"service": "sleepy", "port": 8888}
    assert route["metadata"]["namespace"] == API_NAMESPACE
    # The ALB sends the path to the interceptor with the Host the route matches.
    assert ingress["metadata"]["namespace"] == routing.KEDA_NAMESPACE
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "keda-add-ons-http-interceptor-proxy", "port": {"number": 8080}}
    annotations = ingress["metadata"]["annotations"]
    transforms = yaml.safe_load(annotations["alb.ingress.kubernetes.io/transforms.keda-add-ons-http-interceptor-proxy"])
    (host_rewrite,) = [t for t in transforms if t["type"] == "host-header-rewrite"]
    assert host_rewrite["hostHeaderRewriteConfig"]["rewrites"][0]["replace"] == route["spec"]["rules"][0]["hosts"][0]
    assert annotations["alb.ingress.kubernetes.io/healthcheck-port"] == "9090"


def test_always_on_api_has_no_interceptor() -> None:
    objects = render_api(_spec(SYNTHETIC["gpu"]), _cluster())
    kinds = [o["kind"] for o in objects]
    assert "InterceptorRoute" not in kinds
    assert [t["name"] for t in _by_kind(objects)["ScaledObject"]["spec"]["triggers"]] == ["in-flight"]


# --- routing -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("endpoint", "request_path", "app_path"), [
    ("/sleepy", "/sleepy", "/"),
    ("/sleepy", "/sleepy/", "/"),
    ("/sleepy", "/sleepy/predict/x", "/predict/x"),
    ("/v1/a.b", "/v1/a.b/run", "/run"),
])
def test_endpoint_prefix_is_stripped_like_cortex(endpoint: str, request_path: str, app_path: str) -> None:
    data = copy.deepcopy(SYNTHETIC["shm"])
    data["networking"] = {"endpoint": endpoint}
    ingress = _by_kind(render_api(_spec(data), _cluster()))["Ingress"]
    (transform,) = yaml.safe_load(ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/transforms.shm-model"])
    (rewrite,) = transform["urlRewriteConfig"]["rewrites"]
    # The ALB's regex and $1 replacement, evaluated the same way here.
    assert re.sub(rewrite["regex"], rewrite["replace"].replace("$1", r"\1"), request_path) == app_path
    # A '.' in the endpoint is literal, not "any character".
    assert re.fullmatch(rewrite["regex"], request_path.replace(".", "X")) is None or "." not in endpoint
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == endpoint


def test_deeper_endpoints_are_evaluated_first() -> None:
    def order(endpoint: str) -> int:
        data = copy.deepcopy(SYNTHETIC["shm"])
        data["networking"] = {"endpoint": endpoint}
        ingress = _by_kind(render_api(_spec(data), _cluster()))["Ingress"]
        return int(ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/group.order"])

    assert order("/a/b/c") < order("/a/b") < order("/a")


def test_api_url() -> None:
    assert routing.api_url("lb.example", "/x", https=True) == "https://lb.example/x"
    assert routing.api_url("lb.example", "/x/y", https=False) == "http://lb.example/x/y"


# --- deployment ----------------------------------------------------------------------------------

def _deployment(data: dict[str, Any], cluster: ClusterSpec | None = None) -> dict[str, Any]:
    return _by_kind(render_api(_spec(data), cluster if cluster is not None else _cluster()))["Deployment"]


def _pod(data: dict[str, Any], cluster: ClusterSpec | None = None) -> dict[str, Any]:
    return _deployment(data, cluster)["spec"]["template"]["spec"]


def test_envoy_checksum_follows_the_envoy_config_only() -> None:
    base = copy.deepcopy(SYNTHETIC["gpu"])
    checksum = _deployment(base)["spec"]["template"]["metadata"]["annotations"][ENVOY_CONFIG_CHECKSUM]
    image = copy.deepcopy(base)
    image["pod"]["containers"][0]["image"] = "registry.example/model:2"
    assert _deployment(image)["spec"]["template"]["metadata"]["annotations"][ENVOY_CONFIG_CHECKSUM] == checksum
    concurrency = copy.deepcopy(base)
    concurrency["pod"]["max_concurrency"] = 5
    objects = _by_kind(render_api(_spec(concurrency), _cluster()))
    new = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"][ENVOY_CONFIG_CHECKSUM]
    assert new != checksum
    assert new == hashlib.sha256(objects["ConfigMap"]["data"]["envoy.yaml"].encode()).hexdigest()


def test_proxy_sidecar_is_locked_down_and_serves_the_service_port() -> None:
    objects = _by_kind(render_api(_spec(SYNTHETIC["gpu"]), _cluster()))
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    proxy = pod["containers"][-1]
    assert proxy["name"] == "proxy" and proxy["image"].startswith("envoyproxy/envoy:")
    assert proxy["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10101, "runAsGroup": 10101, "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert {p["name"]: p["containerPort"] for p in proxy["ports"]} == {"http": 8888, "envoy-metrics": 15000}
    assert proxy["livenessProbe"] == envoy.liveness_probe(15000)  # run live in tests/live/test_sidecar_liveness.py
    assert objects["Service"]["spec"]["ports"][0]["port"] == 8888
    assert objects["Service"]["spec"]["selector"] == pod_labels_selector(objects["Deployment"])
    plan = envoy.drain_plan()
    assert pod["terminationGracePeriodSeconds"] == plan.termination_grace_period_seconds
    assert pod["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": plan.app_prestop_sleep_seconds}}
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize(("written", "seconds"), [(None, 60), ("45s", 45), ("1s", 1)])
def test_request_timeout_sets_the_route_timeout_and_the_whole_drain(written: str | None, seconds: int) -> None:
    data = {"name": "echo", "kind": "RealtimeAPI", "pod": {"containers": [_container()]}}
    if written is not None:
        data["pod"]["request_timeout"] = written
    objects = _by_kind(render_api(_spec(data), _cluster()))
    config = yaml.safe_load(objects["ConfigMap"]["data"]["envoy.yaml"])
    route = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][-1]["typed_config"][
        "route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["timeout"] == f"{seconds}s"
    plan = envoy.drain_plan(request_timeout_seconds=seconds)
    assert plan.drain_timeout_seconds == seconds + 1
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    api, proxy = pod["containers"]
    assert pod["terminationGracePeriodSeconds"] == plan.termination_grace_period_seconds
    assert api["lifecycle"]["preStop"] == {"sleep": {"seconds": plan.app_prestop_sleep_seconds}}
    assert proxy["lifecycle"]["preStop"]["exec"]["command"] == plan.envoy_prestop_command
    annotations = objects["Ingress"]["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/target-group-attributes"] == (
        f"deregistration_delay.timeout_seconds={plan.app_prestop_sleep_seconds}")


@pytest.mark.parametrize(("written", "seconds"), [(None, 60), ("45s", 45), ("1s", 1)])
def test_request_timeout_sets_the_runtime_timeout_and_the_whole_drain_without_a_sidecar(
        written: str | None, seconds: int) -> None:
    data = _handler_api()
    if written is not None:
        data["pod"]["request_timeout"] = written
    objects = _by_kind([o for o in _handler_objects(data) if "-handler-" not in o["metadata"]["name"]])
    assert "ConfigMap" not in objects  # no Envoy config: the pod has no sidecar
    plan = envoy.drain_plan(request_timeout_seconds=seconds)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    assert pod["terminationGracePeriodSeconds"] == plan.termination_grace_period_seconds
    assert "lifecycle" not in api  # SIGTERM at once: the runtime drains itself
    annotations = objects["Ingress"]["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/target-group-attributes"] == (
        f"deregistration_delay.timeout_seconds={plan.app_prestop_sleep_seconds}")
    config = RuntimeConfig.from_env({e["name"]: e["value"] for e in api["env"]})
    assert config.request_timeout == seconds
    # It accepts for the deregistration time, then finishes what it accepted (the request timeout
    # + 1 s), and exits a second before the kubelet would kill it.
    assert config.drain_seconds == plan.deregistration_seconds
    assert config.grace_period == plan.termination_grace_period_seconds - 1
    assert config.drain_seconds + seconds + 1 < config.grace_period


def test_request_timeout_limit_is_the_load_balancer_idle_timeout() -> None:
    assert pod_spec.MAX_REQUEST_TIMEOUT_SECONDS == routing.ALB_IDLE_TIMEOUT_SECONDS
    assert envoy.DEFAULT_REQUEST_TIMEOUT_SECONDS == pod_spec.DEFAULT_REQUEST_TIMEOUT_SECONDS


def pod_labels_selector(deployment: dict[str, Any]) -> dict[str, str]:
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    return selector


def test_gpu_api_runs_only_on_gpu_nodes_and_tolerates_their_taint() -> None:
    pod = _pod(SYNTHETIC["gpu"])
    required = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "cortex.dev/node-group", "operator": "In", "values": ["gpu"]}]
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_inferentia_gets_neuron_devices_and_huge_pages() -> None:
    pod = _pod(SYNTHETIC["inferentia"])
    resources = pod["containers"][0]["resources"]
    assert resources["limits"] == {"memory": "2Gi", "aws.amazon.com/neuron": "1", "hugepages-2Mi": "256Mi"}
    assert resources["requests"]["hugepages-2Mi"] == "256Mi"
    assert pod["tolerations"] == [{"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"}]
    two = copy.deepcopy(SYNTHETIC["inferentia"])
    two["pod"]["containers"][0]["compute"]["inf"] = 2
    with pytest.raises(SpecError, match=r"apis\[0\].pod: needs .* inf 2 .*must fit an instance type of the node groups it may use"):
        render_api(_spec(two), _cluster())
    assert _pod(two, _cluster(node_groups=[{"name": "big-inf", "instance_type": "inf1.6xlarge"}]))[
        "containers"][0]["resources"]["limits"]["hugepages-2Mi"] == "512Mi"



def test_unpinned_cpu_api_prefers_high_priority_groups_and_avoids_accelerators() -> None:
    affinity = _pod(SYNTHETIC["shm"])["affinity"]["nodeAffinity"]
    required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
    assert required == [{"key": "cortex.dev/node-group", "operator": "In", "values": ["cpu", "cpu-spot"]}]
    preferred = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [(p["weight"], p["preference"]["matchExpressions"][0]["values"]) for p in preferred] == [
        (50, ["cpu-spot"]), (10, ["cpu"])]
    assert "tolerations" not in _pod(SYNTHETIC["shm"])


def test_cpu_api_pinned_to_a_gpu_group_tolerates_it() -> None:
    data = copy.deepcopy(SYNTHETIC["shm"])
    data["node_groups"] = ["gpu"]
    pod = _pod(data)
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in pod["affinity"]["nodeAffinity"]


def test_without_a_cluster_pods_go_to_any_cortex_node_group() -> None:
    pod = _by_kind(render_api(_spec(SYNTHETIC["shm"])))["Deployment"]["spec"]["template"]["spec"]
    assert pod["affinity"]["nodeAffinity"] == {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "cortex.dev/node-group", "operator": "Exists"}]}]}}
    pinned = copy.deepcopy(SYNTHETIC["shm"])
    pinned["node_groups"] = ["a", "b"]
    pod = _by_kind(render_api(_spec(pinned)))["Deployment"]["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "cortex.dev/node-group", "operator": "In", "values": ["a", "b"]}]}]



def test_shm_is_an_in_memory_volume_at_dev_shm() -> None:
    pod = _pod(SYNTHETIC["shm"])
    (shm,) = [v for v in pod["volumes"] if "emptyDir" in v]
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert pod["containers"][0]["volumeMounts"] == [{"name": shm["name"], "mountPath": "/dev/shm"}]
    assert pod["containers"][0]["resources"]["limits"] == {"memory": "4Gi"}


def test_probes_and_pre_stop_hooks_map_one_to_one() -> None:
    api, sidecar, proxy = _pod(SYNTHETIC["probes"])["containers"]
    assert api["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": 8080}, "initialDelaySeconds": 5, "timeoutSeconds": 1,
        "periodSeconds": 3, "successThreshold": 1, "failureThreshold": 2}
    assert api["livenessProbe"]["exec"] == {"command": ["/bin/check", "--live"]}
    assert api["livenessProbe"]["timeoutSeconds"] == 2
    drain = envoy.drain_plan().app_prestop_sleep_seconds
    assert api["lifecycle"] == {"preStop": {"exec": {"command": [
        "/bin/sh", "-c", f'sleep {drain}; exec "$@"', "--", "/shutdown", "--graceful"]}}}
    assert sidecar["livenessProbe"]["tcpSocket"] == {"port": 9100}
    assert sidecar["lifecycle"] == {"preStop": {"exec": {"command": [
        "/bin/sh", "-c", f'sleep {drain}; exec "$@"', "--", "/stop"]}}}
    # A readiness probe targets pod.port already: no default probe is added.
    assert "readinessProbe" not in sidecar
    assert proxy["name"] == "proxy"


def test_exec_pre_stop_runs_after_the_drain_sleep_with_its_arguments_intact(tmp_path: Path) -> None:
    data = copy.deepcopy(SYNTHETIC["shm"])
    out = tmp_path / "out"
    data["pod"]["containers"][0]["pre_stop"] = {"exec": {"command": [
        "/bin/sh", "-c", 'printf "%s|" "$@" > "$0"; exit 3', str(out), "a b", "it's", '"q"', "$HOME"]}}
    command = _pod(data)["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    drain = envoy.drain_plan().app_prestop_sleep_seconds
    assert command[:4] == ["/bin/sh", "-c", f'sleep {drain}; exec "$@"', "--"]
    # Run it as the kubelet would (sh, no further shell), minus the wait.
    result = subprocess.run([*command[:2], command[2].replace(f"sleep {drain}", "sleep 0"), *command[3:]],
                            timeout=10, check=False)
    assert out.read_text() == 'a b|it\'s|"q"|$HOME|'
    assert result.returncode == 3  # the hook's own outcome is what the kubelet sees



def test_default_tcp_readiness_probe_only_when_nothing_probes_the_port() -> None:
    data = copy.deepcopy(SYNTHETIC["multi-container"])
    web, model, _ = _pod(data)["containers"]
    assert "readinessProbe" not in model  # web already probes 8080
    del data["pod"]["containers"][0]["readiness_probe"]
    web, model, _ = _pod(data)["containers"]
    assert web["readinessProbe"]["tcpSocket"] == {"port": 8080}
    assert "readinessProbe" not in model


@pytest.mark.parametrize(("min_replicas", "budget"), [
    (0, {"minAvailable": 1}),  # no pod at zero; the one a request woke is not evicted
    (1, {"minAvailable": 1}),  # the only pod is not evicted before another one runs
    (2, {"maxUnavailable": 1}),
    (5, {"maxUnavailable": 1}),
])
def test_disruption_budget_never_evicts_the_last_ready_pod(min_replicas: int, budget: dict[str, int]) -> None:
    data = copy.deepcopy(SYNTHETIC["shm"])
    data["autoscaling"] = {"min_replicas": min_replicas, "max_replicas": 8}
    pdb = _by_kind(render_api(_spec(data), _cluster()))["PodDisruptionBudget"]
    assert pdb["spec"] == {**budget, "selector": {"matchLabels": {"cortex.dev/api-name": "shm-model"}},
                           "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    assert validate_all([pdb]) == 1


def test_update_strategy_and_init_replicas() -> None:
    spec = _deployment(SYNTHETIC["probes"])["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert spec["replicas"] == 3


def test_user_containers_drop_privileges_but_may_run_as_root() -> None:
    for container in _pod(SYNTHETIC["multi-container"])["containers"][:-1]:
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


# --- handler containers (the serving runtime) ----------------------------------------------------

RUNTIME_IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/cortex-serving:0.1.0-0123456789ab"
IRIS = REPO / "examples" / "iris-classifier" / "api.yaml"
SERVING = REPO / "cortex_iac" / "serving"


def _handler_api(**handler: Any) -> dict[str, Any]:
    return {"name": "echo", "kind": "RealtimeAPI",
            "pod": {"port": 9000, "containers": [{"name": "api", "handler": {"path": "echo.py", **handler}}]}}


def _handler_objects(data: dict[str, Any], source: str = "class Handler: ...\n", **kwargs: Any) -> list[dict[str, Any]]:
    spec = _spec(data)
    return render_api(spec, _cluster(), **{"runtime_image": RUNTIME_IMAGE,
                                           "handler_sources": {c.name: source for c in spec.pod.containers}, **kwargs})


def _handler_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return deployment["spec"]["template"]


def _handler_config_map(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap" and "-handler-" in o["metadata"]["name"]]
    return config_map


def test_iris_example_golden_and_valid() -> None:
    (spec,) = load_apis(IRIS)
    assert isinstance(spec, RealtimeApiSpec)
    objects = render_api(spec, runtime_image=RUNTIME_IMAGE, handler_sources=read_handler_sources(spec))
    assert validate_all(objects) == len(objects) == 7  # no Envoy ConfigMap: the pod has no sidecar
    _check_golden("iris-classifier", objects)
    assert _handler_config_map(objects)["data"] == {"handler.py": (IRIS.parent / "handler.py").read_text()}


def test_handler_container_runs_the_runtime_with_the_spec_settings() -> None:
    objects = _handler_objects(_handler_api(config={"k": [1, 2]}, threads_per_process=3, max_batch_size=8,
                                            batch_interval=0.05, python_requirements=["numpy==2.3.0"]))
    pod = _handler_pod(objects)["spec"]
    (api,) = pod["containers"]  # no Envoy sidecar: the runtime admits requests itself
    assert (api["image"], api["command"]) == (RUNTIME_IMAGE, ["python", "-m", "cortex_iac.serving"])
    env = {e["name"]: e["value"] for e in api["env"]}
    plan = envoy.drain_plan()
    assert RuntimeConfig.from_env(env) == RuntimeConfig(
        handler_path="/opt/cortex/handler/echo.py", handler_config={"k": [1, 2]}, threads_per_process=3,
        max_batch_size=8, batch_interval=0.05, python_requirements=("numpy==2.3.0",),
        # The sidecar's ports, limits and drain (render/envoy.py), in the runtime.
        port=8888, metrics_port=15000, max_concurrency=1, max_queue_length=100, request_timeout=60.0,
        retry_after=1, max_connections=1024, request_headers_timeout=10.0, keep_alive=620.0,
        drain_seconds=plan.deregistration_seconds,
        # SIGTERM comes at once; the runtime must be gone before the kubelet kills it.
        grace_period=plan.termination_grace_period_seconds - 1,
    )
    assert "lifecycle" not in api
    assert {p["name"]: p["containerPort"] for p in api["ports"]} == {"http": 8888, "cortex-metrics": 15000}
    assert api["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": 8888}
    # Over loopback to the metrics port, which the traffic port's connection cap does not cover (run
    # against the real runtime in tests/live/test_runtime_request_path.py).
    assert api["livenessProbe"] == runtime_liveness_probe(15000)
    assert api["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    config_map = _handler_config_map(objects)
    assert api["volumeMounts"] == [{"name": "handler", "mountPath": "/opt/cortex/handler", "readOnly": True},
                                   {"name": "tmp", "mountPath": "/tmp"}]
    assert {"name": "handler", "configMap": {"name": config_map["metadata"]["name"]}} in pod["volumes"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert config_map["data"] == {"echo.py": "class Handler: ...\n"}
    service = next(o for o in objects if o["kind"] == "Service")
    assert service["spec"]["ports"] == [{"name": "http", "port": 8888, "targetPort": "http", "protocol": "TCP"}]
    assert validate_all(objects) == len(objects)


def test_a_handler_pod_keeps_the_sidecar_drain_for_its_image_containers() -> None:
    data = _handler_api()
    data["pod"]["containers"].append(_container(name="helper", pre_stop={"exec": {"command": ["flush"]}}))
    api, helper = _handler_pod(_handler_objects(data))["spec"]["containers"]
    plan = envoy.drain_plan()
    # The image container outlives the runtime's drain, which needs no hook.
    assert helper["lifecycle"]["preStop"]["exec"]["command"][:3] == [
        "/bin/sh", "-c", f'sleep {plan.app_prestop_sleep_seconds}; exec "$@"']
    assert "lifecycle" not in api


def test_the_runtime_closes_idle_connections_after_everything_in_front_of_it() -> None:
    # Whatever sends requests on kept-alive connections must close idle ones first, or a request sent
    # as the runtime closes one fails (the keep-alive race the sidecar's 1 s upstream timeout avoids).
    (api,) = _handler_pod(_handler_objects(_handler_api()))["spec"]["containers"]
    keep_alive = RuntimeConfig.from_env({e["name"]: e["value"] for e in api["env"]}).keep_alive
    assert keep_alive > routing.ALB_IDLE_TIMEOUT_SECONDS
    assert keep_alive > realtime.INTERCEPTOR_IDLE_CONNECTION_SECONDS
    assert keep_alive > envoy.UPSTREAM_IDLE_TIMEOUT_SECONDS  # the TrafficSplitter routers


def test_a_pre_stop_on_a_realtime_handler_container_is_refused() -> None:
    data = _handler_api()
    data["pod"]["containers"][0]["pre_stop"] = {"exec": {"command": ["/bin/true"]}}
    with pytest.raises(SpecError, match=r"pod\.containers\[0\]\.pre_stop.*not supported on a RealtimeAPI's handler "
                                        r"container: the serving runtime drains itself on SIGTERM"):
        _spec(data)


def test_spec_probes_env_and_shm_of_a_handler_container() -> None:
    data = _handler_api()
    data["pod"]["containers"][0].update(
        readiness_probe={"http_get": {"path": "/warm", "port": 9000}}, liveness_probe={"tcp_socket": {"port": 9000}},
        env={"MODEL": "small"}, compute={"cpu": "1", "mem": "2Gi", "shm": "256Mi"})
    api = _handler_pod(_handler_objects(data))["spec"]["containers"][0]
    # The runtime listens on the pod's traffic port, not pod.port: probes of pod.port go there.
    assert api["readinessProbe"]["httpGet"] == {"path": "/warm", "port": 8888}
    assert api["livenessProbe"]["tcpSocket"] == {"port": 8888}
    assert api["env"][-1] == {"name": "MODEL", "value": "small"}
    assert [m["mountPath"] for m in api["volumeMounts"]] == ["/opt/cortex/handler", "/tmp", "/dev/shm"]


def test_image_containers_next_to_a_handler_get_no_default_probe() -> None:
    data = _handler_api()
    data["pod"]["containers"].append(_container(name="helper"))
    helper = _handler_pod(_handler_objects(data))["spec"]["containers"][1]
    assert helper["name"] == "helper" and "readinessProbe" not in helper
    assert helper["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_a_new_handler_is_a_new_config_map_and_rolls_the_pods() -> None:
    def names(source: str, path: str = "echo.py", image: str = RUNTIME_IMAGE) -> tuple[str, Any]:
        objects = _handler_objects(_handler_api(path=path), source, runtime_image=image)
        return _handler_config_map(objects)["metadata"]["name"], _handler_pod(objects)

    name, template = names("class Handler: ...\n")
    source = "class Handler: ...\n"
    expected = "echo-handler-" + hashlib.sha256(f"echo.py\0{source}".encode()).hexdigest()[:10]
    assert name == expected
    assert names("class Handler:\n    pass\n")[0] != name
    assert names(source, path="other/echo.py")[0] == name  # only the file name is shipped
    assert names(source, path="serve.py")[0] != name
    changed = names("class Handler:\n    pass\n")[1]
    assert changed != template and changed["metadata"] == template["metadata"]
    assert names(source, image=RUNTIME_IMAGE + "x")[0] == name  # a new runtime image rolls pods, same ConfigMap



def test_runtime_pins_agree_with_the_dockerfile() -> None:
    dockerfile = (SERVING / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)$", dockerfile, re.MULTILINE) == [SERVING_BASE_IMAGE]
    assert re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE) == [f"{RUNTIME_UID}:{RUNTIME_UID}"]
    assert 'CMD ["python", "-m", "cortex_iac.serving"]' in dockerfile
    assert list(RUNTIME_COMMAND) == ["python", "-m", "cortex_iac.serving"]


def test_objects_share_no_dicts() -> None:
    # Two objects holding the same dict would change together when one is edited (and YAML output
    # would carry anchors).
    objects = render_api(_spec(SYNTHETIC["scale-to-zero"]), _cluster())
    seen: dict[int, str] = {}

    def walk(value: Any, where: str) -> None:
        if isinstance(value, (dict, list)):
            assert id(value) not in seen, f"{where} is the same object as {seen[id(value)]}"
            seen[id(value)] = where
            for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
                walk(item, f"{where}.{key}")

    for obj in objects:
        walk(obj, f"{obj['kind']}")


# --- IAM -----------------------------------------------------------------------------------------

def test_iam_policy_grants_exactly_the_s3_prefixes() -> None:
    policy = iam_policy(_spec(SYNTHETIC["probes"]))
    assert policy == {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadObjects", "Effect": "Allow", "Action": "s3:GetObject", "Resource": [
            "arn:aws:s3:::models/probed/*", "arn:aws:s3:::models/shared/*", "arn:aws:s3:::other-bucket/*"]},
        {"Sid": "ListBucket0", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::models",
         "Condition": {"StringLike": {"s3:prefix": ["probed/*", "shared/*"]}}},
        {"Sid": "ListBucket1", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::other-bucket"},
    ]}
    assert iam_policy(_spec(SYNTHETIC["gpu"])) is None


def test_api_objects_carry_the_policy_and_context_namespace() -> None:
    objects = api_objects(_spec(SYNTHETIC["probes"]), ApiContext(namespace="team-a"))
    assert objects.iam_policy is not None
    assert {o["metadata"]["namespace"] for o in objects.all()} == {"team-a"}


def test_context_namespace_is_in_the_query_and_the_interceptor_host() -> None:
    objects = api_objects(_spec(SYNTHETIC["scale-to-zero"]), ApiContext(namespace="team-a"))
    assert objects.scaled_object["spec"]["triggers"][0]["metadata"]["query"] == envoy.inflight_query("team-a", "sleepy", 60)
    assert objects.interceptor_route is not None
    assert objects.interceptor_route["spec"]["rules"][0]["hosts"] == ["sleepy.team-a"]
    transforms = yaml.safe_load(objects.ingress["metadata"]["annotations"][
        "alb.ingress.kubernetes.io/transforms.keda-add-ons-http-interceptor-proxy"])
    assert transforms[1]["hostHeaderRewriteConfig"]["rewrites"][0]["replace"] == "sleepy.team-a"


def test_the_api_namespace_network_policy_admits_only_the_sidecars_ports() -> None:
    from cortex_iac.render.workload import network_policy

    policy = network_policy()
    validate_all([policy])
    spec = policy["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress", "Egress"]
    ports = sorted(p["port"] for rule in spec["ingress"] for p in rule["ports"])
    assert ports == [8888, 15000]  # never an app's own port: only its Envoy reaches it, over loopback
    (metrics,) = [rule for rule in spec["ingress"] if rule["ports"][0]["port"] == 15000]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "prometheus"}}}]
