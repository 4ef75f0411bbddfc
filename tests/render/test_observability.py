"""Dashboards, Grafana / Alertmanager / DCGM values, and the objects shipping them.

No Grafana server can run here, so a dashboard is checked by: its JSON model round-trips through the
grafana-foundation-sdk's typed models unchanged (every field of a known type and name); every panel
names the provisioned Prometheus data source and has queries; every query parses (promtool, with
Grafana's variables given values); the ConfigMaps validate and fit Kubernetes' 1 MiB.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.models import dashboard as dashboard_m

from cortex_iac.errors import SpecError
from cortex_iac.render import addons
from cortex_iac.render.observability import addons as obs
from cortex_iac.render.observability import dashboards, queries
from cortex_iac.render.observability.dashboards import _plain, panel_queries
from cortex_iac.render.observability.rules import API_RULES_DIR, API_RULES_LABEL, api_rules
from cortex_iac.render.workload import API_NAMESPACE
from cortex_iac.specs import RealtimeApiSpec, load_apis
from cortex_iac.specs.observability import AlertingSpec, GrafanaSpec, ObservabilitySpec
from tests.kube import validate_all
from tests.needs import missing

BOARDS = {"api": dashboards.api_dashboard(API_NAMESPACE), "cluster": dashboards.cluster_dashboard()}


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        missing("promtool not on PATH (Debian: apt-get install -y prometheus)")
    assert binary is not None
    return binary


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_round_trips_through_the_sdk_models(name: str) -> None:
    board = BOARDS[name]
    assert _plain(dashboard_m.Dashboard.from_json(board).to_json()) == board


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_names_the_prometheus_data_source_and_has_queries(name: str) -> None:
    board = BOARDS[name]
    assert board["uid"] == f"cortex-{name}" and board["panels"]
    ref = {"type": "prometheus", "uid": obs.DATASOURCE_UID}
    for panel in board["panels"]:
        assert panel["datasource"] == ref, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == ref and target["expr"] and target["refId"], panel["title"]
        pos = panel["gridPos"]
        assert pos["w"] == 12 and pos["h"] == 8
    positions = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in board["panels"]]
    assert len(set(positions)) == len(positions), "panels overlap"


def test_the_api_dashboard_is_templated_on_the_api_name() -> None:
    (variable,) = BOARDS["api"]["templating"]["list"]
    assert variable["name"] == "api" and variable["type"] == "query"
    assert variable["query"] == f'label_values(cortex:api_max_replicas{{namespace="{API_NAMESPACE}"}}, api)'
    for title, expr in panel_queries(BOARDS["api"]):
        assert '"$api"' in expr, title


def test_the_per_api_panels_are_the_ones_the_issue_asks_for() -> None:
    titles = [p["title"] for p in BOARDS["api"]["panels"]]
    assert titles == [
        "Requests by status class", "Latency p50 / p95 / p99", "In flight vs target x replicas",
        "Queue-full 503s vs other 5xx", "Replicas", "Restarts (10m) and OOM kills", "CPU used vs requested",
        "Memory used vs requested", "GPU utilization", "Queue depth (AsyncAPI)",
    ]
    assert [p["title"] for p in BOARDS["cluster"]["panels"]] == [
        "Nodes by node group and capacity type", "Pending pods", "Karpenter: nodes launched and disrupted (10m)",
        "Spot interruptions (10m)", "Cost per hour (estimate)",
    ]


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    rules = []
    for name, board in BOARDS.items():
        for index, (_, expr) in enumerate(panel_queries(board)):
            concrete = expr.replace("$__rate_interval", "1m").replace("$api", "my-api")
            assert "$" not in concrete.replace('"$1"', ""), expr
            rules.append({"record": f"test:{name}_{index}", "expr": concrete})
    (tmp_path / "panels.yml").write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run([_promtool(), "check", "rules", "panels.yml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_dashboard_config_maps_validate_and_fit() -> None:
    maps = [obs.dashboard_config_map(name, board, addons.PROMETHEUS_NAMESPACE) for name, board in BOARDS.items()]
    assert validate_all(maps) == 2
    for cm in maps:
        assert cm["metadata"]["labels"][obs.DASHBOARD_LABEL] == "1"
        (text,) = cm["data"].values()
        assert json.loads(text)["uid"].startswith("cortex-")
        assert len(json.dumps(cm).encode()) < 1024 * 1024


def test_an_apis_rules_config_map_validates_and_is_named_after_its_content() -> None:
    (spec,) = load_apis([{"name": "my-api", "kind": "RealtimeAPI",
                          "pod": {"containers": [{"name": "api", "image": "example.com/a:1"}]}}], origin="test")
    assert isinstance(spec, RealtimeApiSpec)
    cm = obs.api_rules_config_map("my-api", api_rules(spec, API_NAMESPACE), addons.PROMETHEUS_NAMESPACE)
    assert validate_all([cm]) == 1
    assert cm["metadata"]["labels"][API_RULES_LABEL] == "1"
    assert cm["metadata"]["name"].startswith("cortex-rules-my-api-")
    assert yaml.safe_load(cm["data"]["my-api.yml"]) == api_rules(spec, API_NAMESPACE)
    (stricter,) = load_apis([{"name": "my-api", "kind": "RealtimeAPI", "alerts": {"error_ratio": 0.01},
                              "pod": {"containers": [{"name": "api", "image": "example.com/a:1"}]}}], origin="test")
    assert isinstance(stricter, RealtimeApiSpec)
    other = obs.api_rules_config_map("my-api", api_rules(stricter, API_NAMESPACE), addons.PROMETHEUS_NAMESPACE)
    assert other["metadata"]["name"] != cm["metadata"]["name"]


# --- values ---------------------------------------------------------------------------------------------


def test_grafana_reads_its_admin_from_the_secret_and_prometheus_as_its_data_source() -> None:
    values = obs.grafana_values(addons.PROMETHEUS_URL, GrafanaSpec(), addons.system_placement())
    assert values["admin"] == {"existingSecret": "grafana-admin", "userKey": "admin-user", "passwordKey": "admin-password"}
    assert "adminPassword" not in json.dumps(values)
    (source,) = values["datasources"]["datasources.yaml"]["datasources"]
    assert source == {"name": "Prometheus", "type": "prometheus", "uid": "prometheus", "url": addons.PROMETHEUS_URL,
                      "access": "proxy", "isDefault": True, "editable": False}
    assert values["sidecar"]["dashboards"]["label"] == obs.DASHBOARD_LABEL
    assert values["sidecar"]["dashboards"]["labelValue"] == "1"
    assert values["nodeSelector"] == addons.SYSTEM_NODE_LABELS
    assert "server" not in values["grafana.ini"]  # port-forward: served at /
    exposed = obs.grafana_values(addons.PROMETHEUS_URL, GrafanaSpec(expose="load-balancer"), {})
    assert exposed["grafana.ini"]["server"] == {"root_url": "%(protocol)s://%(domain)s/grafana/",
                                                "serve_from_sub_path": True}


def test_admin_secret_object_holds_no_password() -> None:
    obj = obs.grafana_admin_secret(addons.PROMETHEUS_NAMESPACE, "c")
    assert obj["stringData"] == {"admin-user": "admin"}
    assert validate_all([obj]) == 1


@pytest.mark.parametrize(("receiver", "key", "field"), [
    ("slack", "slack_configs", "api_url_file"),
    ("pagerduty", "pagerduty_configs", "routing_key_file"),
    ("webhook", "webhook_configs", "url_file"),
])
def test_alertmanager_reads_the_receiver_from_the_mounted_secret(receiver: str, key: str, field: str) -> None:
    spec = AlertingSpec(receiver=receiver)  # type: ignore[arg-type]
    values = obs.alertmanager_values(spec, {})
    (config,) = values["config"]["receivers"][0][key]
    assert config[field] == "/etc/alertmanager/cortex-receiver/receiver"
    assert values["extraSecretMounts"] == [{"name": "cortex-receiver", "mountPath": "/etc/alertmanager/cortex-receiver",
                                            "subPath": "", "secretName": "cortex-alert-receiver", "readOnly": True}]
    assert values["config"]["route"]["receiver"] == "cortex"


def test_no_receiver_mounts_nothing_and_sends_nowhere() -> None:
    values = obs.alertmanager_values(AlertingSpec(), {})
    assert values["config"]["receivers"] == [{"name": "cortex"}]
    assert "extraSecretMounts" not in values


@pytest.mark.parametrize("receiver", ["none", "slack", "pagerduty"])
def test_amtool_accepts_the_alertmanager_config(tmp_path: Path, receiver: str) -> None:
    """amtool (Debian's 0.25) checks the config; the webhook's ``url_file`` is newer than it (the
    chart's Alertmanager is 0.34), so that receiver is only checked structurally above."""
    amtool = shutil.which("amtool")
    if amtool is None:
        missing("amtool not on PATH (Debian: apt-get install -y prometheus-alertmanager)")
    assert amtool is not None
    config = obs.alertmanager_config(AlertingSpec(receiver=receiver, slack_channel="#ml" if receiver == "slack" else None))  # type: ignore[arg-type]
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run([amtool, "check-config", "am.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_values_carry_the_rules_alertmanager_and_exporters() -> None:
    rules: dict[str, Any] = {"recording_rules.yml": {"groups": []}, "alerting_rules.yml": {"groups": []}}
    values = addons.prometheus_values(rules=rules, alerting=AlertingSpec(receiver="slack"))
    assert values["alertmanager"]["enabled"] is True and values["alertmanager"]["persistence"] == {"enabled": False}
    assert values["kube-state-metrics"]["metricLabelsAllowlist"] == [
        "nodes=[cortex.dev/node-group,karpenter.sh/capacity-type,node.kubernetes.io/instance-type,karpenter.sh/nodepool]",
        "pods=[cortex.dev/api-name]",
    ]
    assert values["prometheus-node-exporter"] == {"enabled": True, "tolerations": [{"operator": "Exists"}]}
    assert values["prometheus-pushgateway"] == {"enabled": False}
    server = values["server"]
    # The server's own settings are kept by the merge.
    assert server["retention"] == addons.PROMETHEUS_RETENTION and server["nodeSelector"] == addons.PROMETHEUS_NODE_LABELS
    assert server["extraVolumes"] == [{"name": "cortex-api-rules", "emptyDir": {"sizeLimit": "64Mi"}}]
    mount = {"name": "cortex-api-rules", "mountPath": API_RULES_DIR}
    assert server["extraVolumeMounts"] == [{**mount, "readOnly": True}]
    sidecar = server["sidecarContainers"]["cortex-rules"]
    assert sidecar["image"] == "quay.io/kiwigrid/k8s-sidecar:2.10.1"
    assert {e["name"]: e["value"] for e in sidecar["env"]} == {
        "LABEL": API_RULES_LABEL, "LABEL_VALUE": "1", "FOLDER": API_RULES_DIR, "RESOURCE": "configmap",
        "NAMESPACE": addons.PROMETHEUS_NAMESPACE, "UNIQUE_FILENAMES": "true"}
    assert sidecar["volumeMounts"] == [mount]
    assert values["configmapReload"]["prometheus"] == {"extraVolumeMounts": [{**mount, "readOnly": True}],
                                                       "extraVolumeDirs": [API_RULES_DIR]}
    files = values["serverFiles"]
    assert files["recording_rules.yml"] == {"groups": []} and files["alerting_rules.yml"] == {"groups": []}
    assert files["prometheus.yml"]["rule_files"][-1] == f"{API_RULES_DIR}/*.yml"


def test_prometheus_keeps_both_shapes_latency_histograms() -> None:
    jobs = addons.prometheus_values()["scrapeConfigs"]
    kept = jobs["cortex-envoy"]["metric_relabel_configs"][0]["regex"].split("|")
    assert {"envoy_cluster_upstream_rq_time_bucket", "envoy_cluster_upstream_rq_time_count"} <= set(kept)
    kept = jobs["cortex-runtime"]["metric_relabel_configs"][0]["regex"].split("|")
    assert {"cortex_request_duration_seconds_bucket", "cortex_request_duration_seconds_count"} <= set(kept)


def test_dcgm_exporter_runs_on_gpu_nodes_and_is_scraped_by_annotation() -> None:
    values = obs.dcgm_exporter_values()
    assert values["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert values["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert values["serviceMonitor"] == {"enabled": False}
    assert values["service"]["annotations"]["prometheus.io/scrape"] == "true"


def test_node_labels_the_queries_use_are_the_ones_exported() -> None:
    sanitized = {"label_" + label.replace(".", "_").replace("/", "_").replace("-", "_")
                 for label in queries.NODE_LABELS_EXPORTED}
    assert {queries.NODE_GROUP_NODE_LABEL, queries.CAPACITY_TYPE_NODE_LABEL, queries.INSTANCE_TYPE_NODE_LABEL} <= sanitized
    assert queries.API_POD_LABEL == "label_cortex_dev_api_name"


# --- the stack's observability spec ---------------------------------------------------------------------


def _stack(observability: Any = None, secret: Any = None, **cluster: Any) -> Any:
    from cortex_iac.specs.stack import specs_from_values
    values: dict[str, Any] = {"cluster": {"cluster_name": "obs-test", "region": "us-east-1", **cluster}, "apis": []}
    if observability is not None:
        values["observability"] = observability
    if secret is not None:
        values["alertReceiverSecret"] = secret
    return specs_from_values(values, Path("."), "Pulumi.test.yaml")


def test_observability_defaults() -> None:
    assert _stack().observability == ObservabilitySpec()
    assert ObservabilitySpec().grafana.expose == "port-forward" and ObservabilitySpec().alerting.receiver == "none"


def test_a_receiver_needs_the_secret_and_refuses_it_in_clear() -> None:
    with pytest.raises(SpecError, match=r"Pulumi.test.yaml: cortex:alertReceiverSecret: missing; alerting.receiver 'slack'"):
        _stack({"alerting": {"receiver": "slack"}})
    with pytest.raises(SpecError, match=r"cortex:alertReceiverSecret: given in clear"):
        _stack({"alerting": {"receiver": "webhook"}}, secret="https://hooks.example/abc")
    with pytest.raises(SpecError, match=r"given but alerting.receiver is 'none'"):
        _stack({}, secret="<secret>")
    assert _stack({"alerting": {"receiver": "pagerduty"}}, secret="<secret>").observability.alerting.receiver == "pagerduty"


def test_bad_observability_values_name_the_field() -> None:
    with pytest.raises(SpecError, match=r"cortex:observability: alerting.receiver: 'email'.*slack"):
        _stack({"alerting": {"receiver": "email"}})
    with pytest.raises(SpecError, match=r"grafana.path"):
        _stack({"grafana": {"path": "grafana"}})
    with pytest.raises(SpecError, match=r"slack_channel.*only with receiver: slack"):
        _stack({"alerting": {"receiver": "pagerduty", "slack_channel": "#x"}}, secret="<secret>")
    with pytest.raises(SpecError, match=r"at most 3 CIDRs.*it has 4"):
        _stack({"grafana": {"expose": "load-balancer"}},
               operator_load_balancer_cidr_white_list=[f"10.0.{i}.0/24" for i in range(4)])
    with pytest.raises(SpecError, match=r"grafana.expose: 'load-balancer' is not allowed with grafana.enabled: false"):
        _stack({"grafana": {"expose": "load-balancer", "enabled": False}})


def test_a_stack_file_secure_receiver_secret_counts_as_given(tmp_path: Path) -> None:
    from cortex_iac.specs.stack import load_stack_file
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(yaml.safe_dump({"config": {
        "cortex:cluster": {"cluster_name": "obs-test", "region": "us-east-1"},
        "cortex:observability": {"alerting": {"receiver": "slack"}},
        "cortex:alertReceiverSecret": {"secure": "AAABAJ1x"},
    }}))
    assert load_stack_file(path).observability.alerting.receiver == "slack"
    path.write_text(path.read_text().replace("secure: AAABAJ1x", "https://hooks.example/in-clear").replace(
        "cortex:alertReceiverSecret:\n    ", "cortex:alertReceiverSecret: "))
    with pytest.raises(SpecError, match="given in clear"):
        load_stack_file(path)


def test_grafana_on_the_load_balancer_only_for_the_operator_allow_list() -> None:
    from cortex_iac.render import routing
    ingress = obs.grafana_ingress(GrafanaSpec(expose="load-balancer"), addons.PROMETHEUS_NAMESPACE,
                                  ("203.0.113.0/24",), https=True)
    assert validate_all([ingress]) == 1
    notes = ingress["metadata"]["annotations"]
    assert json.loads(notes["alb.ingress.kubernetes.io/conditions.grafana"]) == [
        {"field": "source-ip", "sourceIpConfig": {"values": ["203.0.113.0/24"]}}]
    assert notes["alb.ingress.kubernetes.io/healthcheck-path"] == "/grafana/api/health"
    assert json.loads(notes["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTP": 80}, {"HTTPS": 443}]
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == "/grafana" and path["backend"]["service"] == {"name": "grafana", "port": {"number": 80}}
    assert ingress["spec"]["ingressClassName"] == routing.INGRESS_CLASS
    from cortex_iac.specs import load_cluster
    params, _ = routing.ingress_class_objects(load_cluster({"cluster_name": "obs-test", "region": "us-east-1"}),
                                              API_NAMESPACE, extra_namespaces=(addons.PROMETHEUS_NAMESPACE,))
    (match,) = params["spec"]["namespaceSelector"]["matchExpressions"]
    assert match["values"] == sorted([API_NAMESPACE, "keda", addons.PROMETHEUS_NAMESPACE])
